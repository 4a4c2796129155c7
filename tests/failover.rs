#![cfg(feature = "system-tests")]
//! The monitor in the lab, observed with plain SSH: the primary's gateway
//! stops → the standby serves; it comes back → after the hold-down the
//! standby steps down, and what it wrote is on an `ocfo/standby-*` branch;
//! kill -9 of the monitor in either role → systemd restarts it and it
//! converges from reality. This lab runs a *cold* standby (gateway stopped
//! until promotion), so cold mode keeps its own test and drill.

mod common;

use std::time::Duration;

use common::system::*;

fn role(lab: &TestLab) -> String {
    let out = lab.ssh("standby", "ocfo monitor status --json");
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["role"].as_str().map(String::from))
        .unwrap_or_default()
}

#[test]
fn failover_failback_and_monitor_crashes() {
    let lab = TestLab::up(file!());
    // A short hold-down keeps the test quick; a cold standby.
    let inv = std::fs::read_to_string(lab.inventory())
        .unwrap()
        .replace("hold_down: 60s", "hold_down: 15s\n  standby: cold");
    let inv_path = lab.path("inventory-fast.yaml");
    std::fs::write(&inv_path, inv).unwrap();
    ok(&["deploy", inv_path.to_str().unwrap()]);
    let (p, s) = (lab.address("primary"), lab.address("standby"));
    wait_for(
        "the monitor watching a healthy primary",
        Duration::from_secs(60),
        || role(&lab) == "watching",
    );

    // Kill -9 while watching: restarted by systemd, still watching.
    let pid = lab.main_pid("standby", "ocfo-monitor");
    lab.ssh_ok(
        "standby",
        "kill -9 $(systemctl show -p MainPID --value ocfo-monitor)",
    );
    wait_for("the monitor restarted", Duration::from_secs(30), || {
        let now = lab.main_pid("standby", "ocfo-monitor");
        now != pid && now != "0" && role(&lab) == "watching"
    });

    // The agent owns the workspace. Hooks it plants no longer run at all
    // (the monitor's git sets core.hooksPath=/dev/null), but its own
    // .git/config still counts: a smudge filter it planted runs during the
    // promotion's pull. That filter must see none of the monitor's
    // environment (the gateway token, a webhook URL), and when it hangs
    // past git_timeout (30 s) the whole process tree is killed, not only
    // the first process.
    let token = std::fs::read_to_string(lab.path("secrets/gateway_token")).unwrap();
    let hook = "#!/bin/sh\ntouch /home/openclaw/hook-ran\n";
    let filter = "#!/bin/sh\nenv > /home/openclaw/hook-env\nsleep 171\ncat\n";
    lab.ssh_ok(
        "standby",
        &format!(
            "for h in post-merge reference-transaction; do printf '{hook}' > /home/openclaw/workspace/.git/hooks/$h; chmod 755 /home/openclaw/workspace/.git/hooks/$h; chown openclaw: /home/openclaw/workspace/.git/hooks/$h; done; \
             printf '{filter}' > /home/openclaw/filter.sh; chmod 755 /home/openclaw/filter.sh; chown openclaw: /home/openclaw/filter.sh; \
             runuser -u openclaw -- git -C /home/openclaw/workspace config filter.agent.smudge /home/openclaw/filter.sh; \
             runuser -u openclaw -- sh -c 'mkdir -p /home/openclaw/workspace/.git/info && echo \"* filter=agent\" > /home/openclaw/workspace/.git/info/attributes'"
        ),
    );
    // Something new to pull, so git checks a file out through the filter.
    let repo = lab.path("workspace.git");
    let clone = lab.path("hook-clone");
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let _ = std::fs::remove_dir_all(&clone);
    git(&[
        "clone",
        "-q",
        repo.to_str().unwrap(),
        clone.to_str().unwrap(),
    ]);
    std::fs::write(clone.join("from-primary.md"), "new\n").unwrap();
    let c = clone.to_str().unwrap();
    git(&["-C", c, "add", "-A"]);
    git(&[
        "-C",
        c,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-q",
        "-m",
        "new",
    ]);
    git(&["-C", c, "push", "-q", "origin", "HEAD:main"]);

    // The primary's gateway stops: the standby's gateway serves.
    lab.ssh_ok("primary", "systemctl stop openclaw-gateway");
    let took = wait_for(
        "the standby's gateway serving",
        Duration::from_secs(240),
        || {
            lab.ssh(
                "standby",
                &format!("curl -sf -m 2 http://{s}:18789/healthz"),
            )
            .status
            .success()
        },
    );
    eprintln!("failover: standby healthy {took:?} after the primary's gateway stopped");
    // The promotion's pull waits out git_timeout (30 s) on the hanging filter
    // before the standby's channel starts.
    wait_for("the standby promoted", Duration::from_secs(120), || {
        role(&lab) == "promoted"
    });
    assert!(
        !lab.ssh("standby", "test -e /home/openclaw/hook-ran")
            .status
            .success(),
        "a git hook the agent planted ran"
    );
    let hook_env = lab.ssh_ok("standby", "cat /home/openclaw/hook-env");
    assert!(
        hook_env.contains("HOME=/home/openclaw"),
        "the filter did not run: {hook_env}"
    );
    assert!(
        !hook_env.contains("OCFO_") && !hook_env.contains(token.trim()),
        "the monitor's environment reached the agent's git hook:\n{hook_env}"
    );
    assert!(
        !lab.ssh("standby", "pgrep -f 'sleep 171'").status.success(),
        "the hook's child outlived git_timeout"
    );
    let state = lab.ssh_ok("standby", "ocfo monitor status --json");
    assert!(
        state.contains("git pull of the workspace failed"),
        "{state}"
    );
    lab.ssh_ok("standby", "rm -f /home/openclaw/workspace/.git/hooks/post-merge /home/openclaw/workspace/.git/hooks/reference-transaction /home/openclaw/workspace/.git/info/attributes; runuser -u openclaw -- git -C /home/openclaw/workspace config --unset filter.agent.smudge");

    // The standby writes while promoted.
    lab.ssh_ok(
        "standby",
        "runuser -u openclaw -- sh -c 'echo during-outage > /home/openclaw/workspace/outage.md'",
    );

    // Kill -9 while promoted: restarted, and promoted again from reality.
    lab.ssh_ok(
        "standby",
        "kill -9 $(systemctl show -p MainPID --value ocfo-monitor)",
    );
    std::thread::sleep(Duration::from_secs(4));
    wait_for(
        "the monitor back, promoted",
        Duration::from_secs(30),
        || role(&lab) == "promoted",
    );
    assert_eq!(
        lab.ssh_ok("standby", "systemctl is-active openclaw-gateway")
            .trim(),
        "active"
    );

    // The primary comes back: after the hold-down the standby steps down.
    lab.ssh_ok("primary", "systemctl start openclaw-gateway");
    wait_for("the primary healthy", Duration::from_secs(90), || {
        lab.ssh(
            "standby",
            &format!("curl -sf -m 2 http://{p}:18789/healthz"),
        )
        .status
        .success()
    });
    let took = wait_for(
        "the standby's gateway stopped",
        Duration::from_secs(120),
        || {
            role(&lab) == "watching"
                && String::from_utf8_lossy(
                    &lab.ssh("standby", "systemctl is-active openclaw-gateway")
                        .stdout,
                )
                .trim()
                    == "inactive"
        },
    );
    eprintln!("failback: standby stopped {took:?} after the primary was healthy");

    // Nothing the standby wrote is lost: it is on an ocfo/standby-* branch.
    let repo = lab.path("workspace.git");
    let branches = std::process::Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args([
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/ocfo/",
        ])
        .output()
        .unwrap();
    let branches = String::from_utf8_lossy(&branches.stdout).to_string();
    // (Beside it, ocfo's conversation snapshot branches.)
    let branch = branches
        .lines()
        .find(|b| b.starts_with("ocfo/standby-"))
        .unwrap_or_else(|| panic!("no ocfo/standby-* branch in {}: {branches}", repo.display()));
    let file = std::process::Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["show", &format!("{branch}:outage.md")])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&file.stdout).trim(),
        "during-outage"
    );
    // ...and never on the main branch.
    let main = std::process::Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["show", "main:outage.md"])
        .output()
        .unwrap();
    assert!(!main.status.success());

    // The cold drill: measured up to the standby's gateway answering. A
    // drill whose standby never answered (seen once in CI, not reproduced
    // since in 10 drills) leaves what each side said.
    let report = lab.drill_ok(
        &[
            inv_path.to_str().unwrap(),
            "--fault",
            "stop",
            "--wait",
            "120s",
            "--max-failover",
            "150s",
            "--max-failback",
            "180s",
        ],
        &[
            ("standby", "openclaw-gateway"),
            ("standby", "ocfo-monitor"),
            ("primary", "openclaw-gateway"),
        ],
    );
    let timeline = report["timeline"].to_string();
    assert!(timeline.contains("gateway answers /healthz"), "{timeline}");
    eprintln!("cold drill: failover {} ms", report["failover_ms"]);
}
