#![cfg(feature = "system-tests")]
//! End to end in the lab with the real OpenClaw: drills with each fault, what
//! `ocfo status` reports at each stage, a network blip shorter than
//! fall × interval, a re-deploy during a promotion, and a standby power cycle.

mod common;

use std::time::{Duration, Instant};

use common::system::*;

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("timed out after {timeout:?} waiting for: {what}");
}

fn status(inv: &str) -> serde_json::Value {
    let out = ocfo(&["status", inv, "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("status --json:\n{}", text(&out)))
}

fn standby_role(inv: &str) -> String {
    status(inv)[1]["role"].as_str().unwrap_or("").to_string()
}

#[test]
fn drills_status_blips_redeploy_and_power_cycle() {
    let lab = TestLab::up("tdrill", "10.249.4.0/24");
    let inv = std::fs::read_to_string(lab.inventory())
        .unwrap()
        .replace("hold_down: 60s", "hold_down: 15s\n  # Deliberate drills, one after another, are not a flapping primary.\n  flap: {max_promotions: 10, window: 15m}");
    let inv_path = lab.path("inventory-fast.yaml");
    std::fs::write(&inv_path, inv).unwrap();
    let inv = inv_path.to_str().unwrap().to_string();
    ok(&["deploy", &inv]);

    // Status: the primary serves, the standby watches.
    wait_for("standby watching", Duration::from_secs(120), || {
        standby_role(&inv) == "standby (watching)"
    });
    let s = status(&inv);
    assert_eq!(s[0]["role"], "primary");
    assert_eq!(s[0]["gateway_healthy"], true);
    assert_eq!(s[1]["gateway_active"], "inactive");
    assert_eq!(s[1]["openclaw_version"], "2026.9.6");
    assert!(!s[1]["last_deploy"].as_str().unwrap().is_empty());

    // Each fault: the drill passes and reports its timeline.
    for fault in ["stop", "kill", "cut"] {
        let out = ocfo(&[
            "drill",
            &inv,
            "--fault",
            fault,
            "--json",
            "--wait",
            "180s",
            "--max-failover",
            "120s",
            "--max-failback",
            "180s",
        ]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("drill --json:\n{}", text(&out)));
        assert!(
            out.status.success() && report["ok"] == true,
            "drill {fault} failed:\n{report:#}\n{}",
            text(&out)
        );
        assert_eq!(report["restored"], true);
        assert!(report["failover_ms"].as_u64().unwrap() > 0);
        eprintln!(
            "drill {fault}: failover {} ms, failback {} ms",
            report["failover_ms"], report["failback_ms"]
        );
    }
    // The cut is gone: nothing blocks the standby's probes any more.
    assert!(!lab
        .ssh_ok("primary", "iptables -S INPUT")
        .contains("ocfo-drill"));

    // A cut shorter than fall × interval (3 × 2 s) does not promote.
    wait_for("standby watching", Duration::from_secs(60), || {
        standby_role(&inv) == "standby (watching)"
    });
    let before: serde_json::Value = status(&inv)[1]["monitor"]["counters"].clone();
    ok(&["lab", "cut", "primary", "standby", "--name", "tdrill"]);
    std::thread::sleep(Duration::from_secs(3));
    ok(&["lab", "heal", "--name", "tdrill"]);
    std::thread::sleep(Duration::from_secs(6));
    let after = status(&inv);
    assert_eq!(after[1]["role"], "standby (watching)");
    assert_eq!(
        after[1]["monitor"]["counters"]["promotions"], before["promotions"],
        "a short blip promoted the standby"
    );

    // A re-deploy during a promotion leaves the promoted gateway running.
    lab.ssh_ok("primary", "systemctl stop openclaw-gateway");
    wait_for("standby promoted", Duration::from_secs(120), || {
        standby_role(&inv) == "standby (promoted)" && status(&inv)[1]["gateway_healthy"] == true
    });
    let redeploy = ocfo(&["deploy", &inv, "--limit", "standby"]);
    assert!(redeploy.status.success(), "{}", text(&redeploy));
    assert_eq!(
        lab.ssh_ok("standby", "systemctl is-active openclaw-gateway")
            .trim(),
        "active"
    );
    assert_eq!(standby_role(&inv), "standby (promoted)");

    // Power-cycle the promoted standby: its monitor comes back promoted? No:
    // the gateway unit is not enabled, so after a boot the gateway is down and
    // the monitor starts watching, sees the primary down, and promotes again.
    ok(&["lab", "stop", "standby", "--name", "tdrill"]);
    ok(&["lab", "start", "standby", "--name", "tdrill"]);
    wait_for(
        "standby promoted after its reboot",
        Duration::from_secs(180),
        || standby_role(&inv) == "standby (promoted)",
    );
    // The primary returns: the standby steps down after the hold-down.
    lab.ssh_ok("primary", "systemctl start openclaw-gateway");
    wait_for("standby watching again", Duration::from_secs(180), || {
        standby_role(&inv) == "standby (watching)"
            && status(&inv)[1]["gateway_active"] == "inactive"
    });
    // And a power cycle while watching comes back watching.
    ok(&["lab", "stop", "standby", "--name", "tdrill"]);
    ok(&["lab", "start", "standby", "--name", "tdrill"]);
    wait_for(
        "standby watching after its reboot",
        Duration::from_secs(120),
        || standby_role(&inv) == "standby (watching)",
    );
}
