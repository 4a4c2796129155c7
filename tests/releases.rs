#![cfg(feature = "system-tests")]
//! The releases ocfo supports besides Debian 12 (tests/deploy.rs,
//! tests/drill.rs and tests/scanners.rs cover that one in depth): Debian 13
//! and Ubuntu 24.04, the guide's own. On each, a fresh lab pair from
//! `ocfo lab up --suite` is deployed, converges to a no-op, has its drift
//! repaired, passes the independent scanners with the release's own
//! ssh-audit policy, and fails over and back in a drill with the chat world
//! (the standby answers, the conversation travels both ways).
//!
//! The two labs run one after the other (a lock): side by side on a small
//! machine they would measure each other's load.

mod common;

use std::sync::Mutex;

use common::system::*;

static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn debian_13() {
    release(
        "tests/releases.rs#trixie",
        "trixie",
        "Hardened Debian 13 (version 1)",
        "13",
    );
}

#[test]
fn ubuntu_24_04() {
    release(
        "tests/releases.rs#noble",
        "noble",
        "Hardened Ubuntu Server 24.04 LTS (version 2)",
        "24.04",
    );
}

fn release(key: &str, suite: &str, ssh_audit_policy: &str, version: &str) {
    let _serial = ONE_LAB_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let lab = TestLab::up_with(key, &["--suite", suite]);
    let inv = lab.inventory();
    let os = lab.ssh_ok("primary", ". /etc/os-release; echo \"$VERSION_ID\"");
    assert_eq!(
        os.trim(),
        version,
        "the lab's hosts run the release asked for"
    );

    // A supported release deploys without --allow-unsupported-os.
    let first = ok(&["deploy", &inv]);
    assert!(!first.contains("not verified"), "{first}");
    let again = ok(&["deploy", &inv]);
    assert!(
        again.contains("changed=0") && !again.contains("changed=1"),
        "a second deploy must change nothing:\n{again}"
    );

    // Drift: the sshd drop-in gone on both hosts, the monitor stopped.
    for node in ["primary", "standby"] {
        lab.ssh_ok(node, "rm -f /etc/ssh/sshd_config.d/10-ocfo.conf");
    }
    lab.ssh_ok("standby", "systemctl stop ocfo-monitor.service");
    let repair = ok(&["deploy", &inv]);
    assert!(
        repair.matches("sshd_config.d/10-ocfo.conf").count() >= 2
            && repair.contains("start ocfo-monitor.service"),
        "deploy must repair the drift:\n{repair}"
    );
    assert_eq!(
        lab.ssh_ok("standby", "systemctl is-active ocfo-monitor.service")
            .trim(),
        "active"
    );
    let settled = ok(&["deploy", &inv]);
    assert!(
        settled.contains("changed=0") && !settled.contains("changed=1"),
        "after the repair a deploy changes nothing:\n{settled}"
    );

    common::scan::independent_scanners(&lab, ssh_audit_policy);

    // The whole story: the standby answers, remembers the primary's
    // conversation, and gives the outage's back at failback.
    let out = ocfo(&[
        "drill",
        &inv,
        "--fault",
        "stop",
        "--json",
        "--wait",
        "300s",
        "--max-failover",
        "120s",
        "--max-failback",
        "300s",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("drill --json:\n{}", text(&out)));
    assert!(
        out.status.success() && report["ok"] == true,
        "{suite}: drill failed:\n{report:#}\n{}",
        text(&out)
    );
    assert!(
        report["answered_ms"].as_u64().is_some_and(|a| a > 0),
        "{report:#}"
    );
    assert!(
        report["user"]["handed_back_ms"]
            .as_u64()
            .is_some_and(|a| a > 0),
        "{report:#}"
    );
    assert_eq!(
        report["user"]["answered_twice"],
        serde_json::json!([]),
        "{report:#}"
    );
    let status = ok(&["status", &inv]);
    assert!(status.contains("/healthz ok"), "status:\n{status}");
}
