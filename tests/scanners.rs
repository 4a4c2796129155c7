#![cfg(feature = "system-tests")]
//! Hardening measured by independent tools on a freshly deployed lab
//! (docs/security.md): ssh-audit's "Hardened Debian 12 (version 3)" policy on
//! both hosts, Lynis's hardening index on the primary, and systemd's exposure
//! score of every ocfo unit. ocfo's own SSH client (russh) and a stock
//! OpenSSH client must still log in after all of it.

mod common;

use common::scan::{exposure, lynis_index};
use common::system::*;

const SSH_AUDIT_POLICY: &str = "Hardened Debian 12 (version 3)";
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
    let lab = TestLab::up(file!());
    let inv = lab.inventory();
    ok(&["deploy", &inv]);

    common::scan::independent_scanners(&lab, SSH_AUDIT_POLICY);

    // Both clients still log in: ocfo's russh (status) and stock OpenSSH.
    let status = ok(&["status", &inv]);
    assert!(status.contains("/healthz ok"), "status:\n{status}");
    for node in ["primary", "standby"] {
        assert_eq!(lab.ssh_ok(node, "echo in").trim(), "in");
    }
}
