//! `ocfo drill --junit FILE` from the command line, without a pair: a drill
//! that cannot even connect still leaves CI a JUnit report saying so (exit 1),
//! and neither the report nor the output carries a secret.

mod common;

use common::*;

#[test]
fn a_drill_that_cannot_connect_still_writes_its_junit_report() {
    let tmp = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(fixture("valid.yaml")).unwrap();
    // Port 1 on this machine: refused at once, no waiting for a timeout.
    let source = base
        .replacen("  port: 22\n", "  port: 1\n", 1)
        .replacen("host: 192.0.2.10", "host: 127.0.0.1", 1)
        .replacen("host: 192.0.2.20", "host: 127.0.0.2", 1);
    let inv = tmp.path().join("inventory.yaml");
    std::fs::write(&inv, source).unwrap();
    std::fs::write(tmp.path().join("known_hosts"), "").unwrap();
    let report = tmp.path().join("reports/drill.xml");
    let out = ocfo()
        .arg("drill")
        .arg(&inv)
        .arg("--junit")
        .arg(&report)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_no_secrets("drill stdout", &stdout);
    assert_no_secrets("drill stderr", &stderr);
    let xml = std::fs::read_to_string(&report).expect("the JUnit report is written");
    assert_no_secrets("drill.xml", &xml);
    assert!(
        xml.contains("<testsuite name=\"ocfo drill testpair (stop)\" tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"1\""),
        "{xml}"
    );
    assert!(xml.contains("<failure message=\"cannot connect: "), "{xml}");
}

/// `--on` names the nodes the fault breaks: the primary, or in a chain of
/// three the primary and the standby. Anything else is refused before any
/// connection, saying what is possible.
#[test]
fn a_drill_breaks_the_primary_or_a_chains_first_two() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = tmp.path().join("inventory.yaml");
    std::fs::write(
        &inv,
        std::fs::read_to_string(fixture("valid.yaml")).unwrap(),
    )
    .unwrap();
    for (on, says) in [
        (
            "primary,standby2",
            "--on standby2: not a node of this inventory (primary, standby)",
        ),
        ("standby", "a fault on a standby alone fails nothing over"),
        (
            "primary,standby",
            "a drill breaks the primary (`--on primary`), or in a chain of three",
        ),
        ("nobody", "--on nobody: not a node of this inventory"),
    ] {
        let out = ocfo()
            .arg("drill")
            .arg(&inv)
            .args(["--on", on])
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "--on {on}: {stdout}{stderr}");
        assert!(stderr.contains(says), "--on {on}: {stderr}");
        assert!(
            !stderr.contains("cannot connect"),
            "--on {on} connected: {stderr}"
        );
    }
}
