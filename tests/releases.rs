#![cfg(feature = "system-tests")]
//! The releases ocfo supports besides Debian 12 (tests/deploy.rs,
//! tests/drill.rs and tests/scanners.rs cover that one in depth): Debian 13
//! and Ubuntu 24.04, the guide's own. On each, a fresh lab pair from
//! `ocfo lab up --suite` is deployed, converges to a no-op, has its drift
//! repaired, passes the independent scanners with the release's own
//! ssh-audit policy, and fails over and back in a drill with the chat world
//! (the standby answers, the conversation travels both ways).
//!
//! The Ubuntu pair (the guide's) also proves an OpenClaw upgrade end to end:
//! it is first deployed with 2026.9.5, then upgraded to 2026.9.6 while
//! OpenClaw's own `/readyz` on both nodes is polled: some node serves at
//! every moment, the conversation continues, both end on the new version
//! and the standby steps down. A roll back to 2026.9.5 is refused before any
//! change (OpenClaw 2026.9.6 migrated the databases past what 2026.9.5
//! reads) with the pair serving on, and an unknown version is refused by
//! validation; the next deploy converges.
//!
//! The two labs run one after the other (a lock): side by side on a small
//! machine they would measure each other's load.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::system::*;

static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::new(());

const OLD: &str = "2026.9.5";
const NEW: &str = "2026.9.6";

#[test]
fn debian_13() {
    release(
        "tests/releases.rs#trixie",
        "trixie",
        "Hardened Debian 13 (version 1)",
        "13",
        false,
    );
}

#[test]
fn ubuntu_24_04_and_an_openclaw_upgrade() {
    release(
        "tests/releases.rs#noble",
        "noble",
        "Hardened Ubuntu Server 24.04 LTS (version 2)",
        "24.04",
        true,
    );
}

/// The inventory with `openclaw.version` set to `v`.
fn set_openclaw_version(lab: &TestLab, v: &str) {
    let path = lab.inventory();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut done = false;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("  version: 2026.") {
                done = true;
                format!("  version: {v}")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(done, "no openclaw.version line in {path}");
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
}

/// Who served at a moment of a deploy.
type Sample = (bool, bool, f64);

/// OpenClaw's own `/readyz` on each node, every 250 ms, until `stop`:
/// `(primary ready, standby ready, seconds since the first)` per sample. A node is ready when its
/// channels run (the standby's are stopped while it watches).
fn poll_serving(lab: &TestLab, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Sample>> {
    let token = std::fs::read_to_string(lab.path("secrets/gateway_token")).unwrap();
    let addrs = [lab.address("primary"), lab.address("standby")];
    std::thread::spawn(move || {
        let ready = |addr: &str| {
            // The token reaches curl on its stdin (a config line), never argv.
            let mut child = std::process::Command::new("curl")
                .args(["-s", "-m", "1", "-K", "-"])
                .arg(format!("http://{addr}:18789/readyz"))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("curl runs");
            use std::io::Write;
            let _ = writeln!(
                child.stdin.take().unwrap(),
                "header = \"Authorization: Bearer {}\"",
                token.trim()
            );
            child
                .wait_with_output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("\"ready\":true"))
        };
        let mut samples = Vec::new();
        let t0 = std::time::Instant::now();
        while !stop.load(Ordering::SeqCst) {
            let at = t0.elapsed().as_secs_f64();
            samples.push((ready(&addrs[0]), ready(&addrs[1]), at));
            std::thread::sleep(Duration::from_millis(250));
        }
        samples
    })
}

/// `ocfo deploy` while polling who serves: its output and the samples.
fn deploy_polled(lab: &TestLab) -> (std::process::Output, Vec<Sample>) {
    let stop = Arc::new(AtomicBool::new(false));
    let poller = poll_serving(lab, stop.clone());
    let out = ocfo(&["deploy", &lab.inventory()]);
    stop.store(true, Ordering::SeqCst);
    (out, poller.join().unwrap())
}

/// Every sample had a node serving; else the gap's place in the run (a
/// and what the standby's monitor said meanwhile.
fn assert_always_served(lab: &TestLab, what: &str, samples: &[Sample], out: &str) {
    assert!(
        samples.len() > 20,
        "{what}: too few samples ({})",
        samples.len()
    );
    let gaps: Vec<usize> = (0..samples.len())
        .filter(|&i| !samples[i].0 && !samples[i].1)
        .collect();
    if let (Some(first), Some(last)) = (gaps.first(), gaps.last()) {
        eprintln!(
            "{}\n{}",
            lab.journal("standby", "ocfo-monitor", 200),
            lab.journal("primary", "openclaw-gateway", 60)
        );
        panic!(
            "{what}: {} of {} samples had no node serving, from {:.1}s to {:.1}s of {:.1}s:\n{out}",
            gaps.len(),
            samples.len(),
            samples[*first].2,
            samples[*last].2,
            samples[samples.len() - 1].2
        );
    }
}

/// A deploy's output that changed nothing on either node.
fn assert_converged(out: &str, what: &str) {
    assert!(out.matches("changed=0 ").count() == 2, "{what}:\n{out}");
}

fn versions(lab: &TestLab) -> String {
    ok(&["status", &lab.inventory()])
        .lines()
        .filter(|l| l.contains("versions"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// 2026.9.5 → 2026.9.6 with the chat world; the roll back and an unknown
/// version refused; converged after.
fn upgrade(lab: &TestLab) {
    let inv = lab.inventory();
    assert_eq!(versions(lab).matches(&format!("openclaw {OLD}")).count(), 2);
    let word = format!("quince-{}", std::process::id());
    lab.chat("primary", &format!("Remember the word {word}, please."));

    set_openclaw_version(lab, NEW);
    // `--check` exits 2 when changes are pending.
    let check = text(&ocfo(&["deploy", &inv, "--check"]));
    assert_eq!(
        check
            .matches(&format!("upgrade OpenClaw {OLD} → {NEW}"))
            .count(),
        2,
        "--check shows the upgrade as one on both nodes:\n{check}"
    );

    // A failed upgrade first: the new version with a config it rejects. The
    // standby goes first and fails at OpenClaw's own validation; the
    // primary is never touched and serves throughout.
    let good = std::fs::read_to_string(&inv).unwrap();
    let rejected = good.replacen(
        "  config:\n",
        "  config:\n    gateway:\n      ocfoUnknownKey: true\n",
        1,
    );
    assert_ne!(rejected, good, "no openclaw.config in {inv}");
    std::fs::write(&inv, rejected).unwrap();
    let primary_pid = lab.main_pid("primary", "openclaw-gateway");
    let (out, samples) = deploy_polled(lab);
    let out_text = text(&out);
    assert!(!out.status.success(), "{out_text}");
    assert!(
        out_text.contains("Unrecognized key: \"ocfoUnknownKey\"")
            && out_text.contains("upgrade stopped before the primary"),
        "{out_text}"
    );
    assert!(
        samples.iter().all(|(p, _, _)| *p),
        "the primary served throughout the failed upgrade:\n{out_text}"
    );
    assert_eq!(lab.main_pid("primary", "openclaw-gateway"), primary_pid);
    assert_eq!(
        lab.ssh_ok(
            "primary",
            "sed -n 's/^openclaw //p' /opt/openclaw/.ocfo-tree"
        ),
        format!("{OLD}\n")
    );
    // The config fixed, the next run converges: the standby's gateway is
    // restarted onto the tree the failed run switched (its restart was
    // owed), then the upgrade goes on as if nothing had failed.
    std::fs::write(&inv, good).unwrap();
    let (out, samples) = deploy_polled(lab);
    let out_text = text(&out);
    assert!(out.status.success(), "the upgrade failed:\n{out_text}");
    assert_always_served(lab, "upgrade", &samples, &out_text);
    assert!(
        samples.iter().any(|(p, s, _)| *s && !p),
        "the standby served alone while the primary restarted:\n{out_text}"
    );
    assert_eq!(versions(lab).matches(&format!("openclaw {NEW}")).count(), 2);
    wait_for(
        "the standby to step down after the upgrade",
        Duration::from_secs(400),
        || ok(&["status", &inv]).contains("(warm, watching, channels off)"),
    );
    let answer = lab.chat("primary", "Which word did I ask you to remember?");
    assert!(
        answer.contains(&word),
        "the conversation continues:\n{answer}"
    );
    // Every promotion was the upgrade's own (a planned switchover), and the
    // standby stepped down at the first try.
    let promotions = lab.ssh_ok(
        "standby",
        "journalctl -u ocfo-monitor -o cat --no-pager | grep -E 'to=\"promoting\"|could not step down' || true",
    );
    assert!(
        !promotions.is_empty()
            && promotions
                .lines()
                .all(|l| l.contains("reason=\"planned switchover\"")),
        "only the upgrade's planned switchover may promote the standby:\n{promotions}"
    );

    // The roll back: refused on the first node it reaches (the standby), so
    // the primary is never touched and serves on.
    set_openclaw_version(lab, OLD);
    let (out, samples) = deploy_polled(lab);
    let out_text = text(&out);
    assert!(!out.status.success(), "{out_text}");
    assert!(
        out_text.contains(&format!("openclaw@{OLD} cannot open this node's data"))
            && out_text.contains("upgrade stopped before the primary"),
        "{out_text}"
    );
    assert!(
        samples.iter().all(|(p, _, _)| *p),
        "the primary served throughout the refused roll back:\n{out_text}"
    );
    assert_eq!(versions(lab).matches(&format!("openclaw {NEW}")).count(), 2);

    // An unknown version: refused by validation, before any connection.
    set_openclaw_version(lab, "2026.9.99");
    let out = ocfo(&["deploy", &inv]);
    let out_text = text(&out);
    assert!(!out.status.success());
    assert!(
        out_text.contains("2026.9.99") && out_text.contains("lockfile"),
        "{out_text}"
    );

    set_openclaw_version(lab, NEW);
    let settled = ok(&["deploy", &inv]);
    assert_converged(
        &settled,
        "back on the new version, a deploy changes nothing",
    );
    assert!(ok(&["status", &inv]).contains("(warm, watching, channels off)"));
}

fn release(key: &str, suite: &str, ssh_audit_policy: &str, version: &str, upgrades: bool) {
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
    let status = ok(&["lab", "status", "--name", &lab.name, "--json"]);
    assert!(
        status.contains(&format!("\"suite\": \"{suite}\"")),
        "{status}"
    );

    if upgrades {
        set_openclaw_version(&lab, OLD);
    }
    // A supported release deploys without --allow-unsupported-os.
    let first = ok(&["deploy", &inv]);
    assert!(!first.contains("not verified"), "{first}");
    let again = ok(&["deploy", &inv]);
    assert_converged(&again, "a second deploy must change nothing");

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
    assert_converged(&settled, "after the repair a deploy changes nothing");

    common::scan::independent_scanners(&lab, ssh_audit_policy);

    if upgrades {
        upgrade(&lab);
    }

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
