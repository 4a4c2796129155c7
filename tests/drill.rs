#![cfg(feature = "system-tests")]
//! End to end in the lab with the real OpenClaw and a warm standby (the
//! default): drills with each fault, what `ocfo status` reports at each
//! stage, a network blip shorter than fall × interval, a frozen (busy)
//! primary within stall_grace, re-deploys that change
//! hot and restart-class settings (no promotion), a planned switchover and
//! back, a re-deploy during a promotion, and a standby power cycle.

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

const WATCHING: &str = "standby (warm, watching, channels off)";
const PROMOTED: &str = "standby (warm, promoted, channels live)";

fn promotions(inv: &str) -> u64 {
    status(inv)[1]["monitor"]["counters"]["promotions"]
        .as_u64()
        .unwrap_or(0)
}

fn gateway_pid(lab: &TestLab, node: &str) -> String {
    lab.ssh_ok(node, "systemctl show -p MainPID --value openclaw-gateway")
        .trim()
        .to_string()
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

    // Status: the primary serves, the warm standby watches, its gateway up.
    wait_for("standby watching", Duration::from_secs(180), || {
        standby_role(&inv) == WATCHING
    });
    let s = status(&inv);
    assert_eq!(s[0]["role"], "primary");
    assert_eq!(s[0]["gateway_healthy"], true);
    assert_eq!(s[1]["gateway_active"], "active");
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
        // Measured to the standby's channel start, switched on live.
        assert!(
            report["timeline"].to_string().contains("channel started"),
            "{report:#}"
        );
        assert_eq!(report["fallback_restart"], false, "{report:#}");
        eprintln!(
            "drill {fault}: failover {} ms, failback {} ms",
            report["failover_ms"], report["failback_ms"]
        );
    }
    // The cut is gone: nothing blocks the standby's probes any more.
    assert!(!lab
        .ssh_ok("primary", "iptables -S INPUT")
        .contains("ocfo-drill"));

    // A cut shorter than fall × interval (3 × 1 s) does not promote.
    wait_for("standby watching", Duration::from_secs(60), || {
        standby_role(&inv) == WATCHING
    });
    let before: serde_json::Value = status(&inv)[1]["monitor"]["counters"].clone();
    ok(&["lab", "cut", "primary", "standby", "--name", "tdrill"]);
    std::thread::sleep(Duration::from_secs(1));
    ok(&["lab", "heal", "--name", "tdrill"]);
    std::thread::sleep(Duration::from_secs(6));
    let after = status(&inv);
    assert_eq!(after[1]["role"], WATCHING);
    assert_eq!(
        after[1]["monitor"]["counters"]["promotions"], before["promotions"],
        "a short blip promoted the standby"
    );

    // A busy primary (its gateway frozen for 5 s, as OpenClaw's event loop
    // is while it loads a plugin) accepts connections without answering:
    // within stall_grace (10 s) that is not a failover.
    lab.ssh_ok(
        "primary",
        "pid=$(systemctl show -p MainPID --value openclaw-gateway); kill -STOP $pid; sleep 5; kill -CONT $pid",
    );
    std::thread::sleep(Duration::from_secs(3));
    let after = status(&inv);
    assert_eq!(after[1]["role"], WATCHING);
    assert_eq!(
        after[1]["monitor"]["counters"]["promotions"], before["promotions"],
        "a 5 s stall of the primary's gateway promoted the standby"
    );
    assert!(
        after[1]["monitor"]["recent_probes"]
            .as_array()
            .is_some_and(|p| p
                .iter()
                .any(|r| r["detail"].as_str().is_some_and(|d| d.contains("busy")))),
        "the monitor never saw the stall: {:#}",
        after[1]["monitor"]["recent_probes"]
    );

    // A hot change (the model fallbacks): applied by OpenClaw itself, no
    // gateway restart, no promotion.
    let base = std::fs::read_to_string(&inv_path).unwrap();
    let (pid_p, pid_s, promos) = (
        gateway_pid(&lab, "primary"),
        gateway_pid(&lab, "standby"),
        promotions(&inv),
    );
    std::fs::write(
        &inv_path,
        base.replace(
            "fallbacks: [anthropic/claude-sonnet-4-5]",
            "fallbacks: [anthropic/claude-haiku-4-5]",
        ),
    )
    .unwrap();
    let hot = ok(&["deploy", &inv]);
    assert!(hot.contains("OpenClaw config"), "{hot}");
    assert!(
        !hot.contains("restart openclaw-gateway"),
        "a hot change restarted the gateway:\n{hot}"
    );
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(
        (gateway_pid(&lab, "primary"), gateway_pid(&lab, "standby")),
        (pid_p.clone(), pid_s)
    );
    assert_eq!(promotions(&inv), promos);
    assert!(lab
        .ssh_ok(
            "primary",
            "journalctl -u openclaw-gateway --since '-60s' --no-pager"
        )
        .contains("config hot reload applied"));

    // A restart-class change (the gateway's environment): the primary's
    // gateway restarts under a hold on the standby's monitor: no promotion.
    std::fs::write(
        &inv_path,
        base.replace("  env: {}", "  env: {OCFO_TEST_RESTART: \"1\"}"),
    )
    .unwrap();
    let restart = ok(&["deploy", &inv]);
    assert!(restart.contains("restart openclaw-gateway"), "{restart}");
    assert!(restart.contains("monitor was held"), "{restart}");
    assert_ne!(gateway_pid(&lab, "primary"), pid_p);
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(promotions(&inv), promos, "a re-deploy failed the pair over");
    // The standby's gateway restarted too (the same environment change): it
    // is down for its start, then armed again by the monitor.
    wait_for(
        "standby watching and armed again",
        Duration::from_secs(180),
        || standby_role(&inv) == WATCHING,
    );
    assert_eq!(promotions(&inv), promos, "a re-deploy failed the pair over");
    std::fs::write(&inv_path, &base).unwrap();
    ok(&["deploy", &inv]);

    // A planned switchover: the standby serves before the primary stops.
    wait_for("standby watching", Duration::from_secs(120), || {
        standby_role(&inv) == WATCHING
    });
    let out = ocfo(&["switchover", &inv, "--json"]);
    let sw: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("switchover --json:\n{}", text(&out)));
    assert!(out.status.success() && sw["ok"] == true, "{sw:#}");
    assert_eq!(sw["no_serve_ms"], 0, "{sw:#}");
    assert_eq!(
        lab.ssh("primary", "systemctl is-active openclaw-gateway")
            .status
            .code(),
        Some(3),
        "the primary's gateway is stopped for its maintenance"
    );
    // The monitor does not fight it, not even past the hold-down.
    std::thread::sleep(Duration::from_secs(20));
    assert_eq!(
        standby_role(&inv),
        "standby (warm, promoted, channels live, switchover)"
    );
    let out = ocfo(&["switchover", &inv, "--back", "--json"]);
    let back: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("switchover --back --json:\n{}", text(&out)));
    assert!(out.status.success() && back["ok"] == true, "{back:#}");
    assert_eq!(back["no_serve_ms"], 0);
    assert_eq!(standby_role(&inv), WATCHING);
    eprintln!("switchover: {sw}\nback: {back}");

    // A re-deploy during a promotion leaves the standby's channels on.
    lab.ssh_ok("primary", "systemctl stop openclaw-gateway");
    wait_for("standby promoted", Duration::from_secs(120), || {
        standby_role(&inv) == PROMOTED
    });
    let redeploy = ocfo(&["deploy", &inv, "--limit", "standby"]);
    assert!(redeploy.status.success(), "{}", text(&redeploy));
    // Deploy leaves the promoted standby's automations on and its channel
    // running (that state is the monitor's).
    let switch = lab.ssh_ok("standby", "cat /etc/openclaw/switches/standby.json");
    assert!(switch.contains("\"enabled\": true"), "{switch}");
    assert_eq!(standby_role(&inv), PROMOTED);

    // Power-cycle the promoted standby: its gateway boots unarmed (no
    // credentials, channel stopped), the monitor starts watching, finds the
    // primary still down and promotes it again.
    ok(&["lab", "stop", "standby", "--name", "tdrill"]);
    ok(&["lab", "start", "standby", "--name", "tdrill"]);
    wait_for(
        "standby promoted after its reboot",
        Duration::from_secs(180),
        || standby_role(&inv) == PROMOTED,
    );
    // The primary returns: the standby steps down after the hold-down.
    lab.ssh_ok("primary", "systemctl start openclaw-gateway");
    wait_for("standby watching again", Duration::from_secs(180), || {
        standby_role(&inv) == WATCHING && status(&inv)[1]["gateway_active"] == "active"
    });
    // And a power cycle while watching comes back watching.
    ok(&["lab", "stop", "standby", "--name", "tdrill"]);
    ok(&["lab", "start", "standby", "--name", "tdrill"]);
    wait_for(
        "standby watching after its reboot",
        Duration::from_secs(180),
        || standby_role(&inv) == WATCHING,
    );
}
