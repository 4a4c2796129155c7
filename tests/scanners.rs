#![cfg(feature = "system-tests")]
//! Hardening measured by independent tools on a freshly deployed lab
//! (docs/security.md): ssh-audit's "Hardened Debian 12 (version 3)" policy on
//! both hosts, Lynis's hardening index on the primary, and systemd's exposure
//! score of every ocfo unit. ocfo's own SSH client (russh) and a stock
//! OpenSSH client must still log in after all of it.

mod common;

use std::process::Command;

use common::system::*;

const SSH_AUDIT_POLICY: &str = "Hardened Debian 12 (version 3)";
const LYNIS_MIN_INDEX: u32 = 80;
/// (node, unit, highest allowed exposure)
const UNIT_GOALS: [(&str, &str, f64); 6] = [
    ("primary", "openclaw-gateway.service", 5.0),
    ("primary", "ocfo-workspace-push.service", 3.0),
    ("primary", "ocfo-workspace-watch.service", 3.0),
    ("primary", "ocfo-conversation-push.service", 3.0),
    // Root (it stops and starts the gateway), but no capability and only
    // its state folder writable: 1.8 offline.
    ("primary", "ocfo-conversation-take-back.service", 3.0),
    ("standby", "ocfo-monitor.service", 4.0),
];

/// `Hardening index : 81 [################    ]` -> 81
fn lynis_index(report: &str) -> Option<u32> {
    report
        .lines()
        .find(|l| l.contains("Hardening index"))?
        .split(':')
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `→ Overall exposure level for x.service: 1.4 OK :-)` -> 1.4
fn exposure(out: &str) -> Option<f64> {
    out.lines()
        .find(|l| l.contains("Overall exposure level"))?
        .rsplit_once(": ")?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn parses_scanner_output() {
    assert_eq!(
        lynis_index("  Hardening index : 81 [################    ]\n"),
        Some(81)
    );
    assert_eq!(
        exposure("→ Overall exposure level for ocfo-monitor.service: 2.4 OK :-)\n"),
        Some(2.4)
    );
    assert_eq!(exposure("nothing"), None);
}

#[test]
fn independent_scanners_pass_on_a_deployed_lab() {
    let ssh_audit = common::tools::ssh_audit();
    let lab = TestLab::up(file!());
    let inv = lab.inventory();
    ok(&["deploy", &inv]);

    // ssh-audit: the built-in policy passes on both hosts.
    for node in ["primary", "standby"] {
        let addr = lab.address(node);
        let out = Command::new(&ssh_audit)
            .args(["-P", SSH_AUDIT_POLICY, &addr])
            .env("NO_COLOR", "1")
            .output()
            .expect("ssh-audit runs");
        assert!(
            out.status.success(),
            "{node}: ssh-audit policy `{SSH_AUDIT_POLICY}` failed:\n{}",
            text(&out)
        );
    }

    // systemd-analyze security: every unit at or under its goal.
    for (node, unit, goal) in UNIT_GOALS {
        let out = lab.ssh_ok(node, &format!("systemd-analyze security {unit} 2>&1"));
        let level = exposure(&out)
            .unwrap_or_else(|| panic!("{node}: no exposure level for {unit}:\n{out}"));
        assert!(
            level <= goal,
            "{node}: {unit} exposure {level} is above its goal {goal}:\n{out}"
        );
    }

    // Lynis, installed on the primary from Debian's archive.
    let report = lab.ssh_ok(
        "primary",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lynis >/dev/null \
         && lynis audit system --quick --no-colors 2>&1",
    );
    let index =
        lynis_index(&report).unwrap_or_else(|| panic!("no Lynis hardening index:\n{report}"));
    assert!(
        index >= LYNIS_MIN_INDEX,
        "Lynis hardening index {index} < {LYNIS_MIN_INDEX}:\n{}",
        report
            .lines()
            .filter(|l| l.contains('[') && (l.contains("WARNING") || l.contains("SUGGESTION")))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Both clients still log in: ocfo's russh (status) and stock OpenSSH.
    let status = ok(&["status", &inv]);
    assert!(status.contains("/healthz ok"), "status:\n{status}");
    for node in ["primary", "standby"] {
        assert_eq!(lab.ssh_ok(node, "echo in").trim(), "in");
    }
}
