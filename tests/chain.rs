#![cfg(feature = "system-tests")]
//! A chain of three (`ocfo lab up --nodes 3`), with the chat world: the
//! primary's host powered off, the standby serves and standby2 waits; the
//! standby's host off too, standby2 serves on its own bot with the primary's
//! conversation; then back in order: the standby takes over again and
//! standby2 steps down, the primary returns and the standby steps down.
//! Every answer comes from the bot written to, none twice.

mod common;

use std::time::Duration;

use common::system::*;

fn monitor(lab: &TestLab, node: &str) -> serde_json::Value {
    let out = lab.ssh(node, "ocfo monitor status --json");
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

fn role(lab: &TestLab, node: &str) -> String {
    monitor(lab, node)["role"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn promotions(lab: &TestLab, node: &str) -> u64 {
    monitor(lab, node)["counters"]["promotions"]
        .as_u64()
        .unwrap_or_default()
}

fn lab_cmd(lab: &TestLab, what: &str, node: &str) {
    ok(&["lab", what, "--name", &lab.name, node]);
}

#[test]
fn a_chain_of_three_fails_over_in_order_and_back() {
    let lab = TestLab::up_with(file!(), &["--nodes", "3"]);
    let status = ok(&["lab", "status", "--name", &lab.name]);
    assert!(status.contains("standby2"), "{status}");
    // A short hold-down keeps the test quick; snapshots every 20 s.
    let inv = std::fs::read_to_string(lab.inventory())
        .unwrap()
        .replace("hold_down: 60s", "hold_down: 20s")
        .replace(
            "push_interval: 5m",
            "push_interval: 5m\n  conversation_interval: 20s",
        );
    let inv_path = lab.path("inventory-chain.yaml");
    std::fs::write(&inv_path, inv).unwrap();
    let inv = inv_path.to_str().unwrap();
    let deployed = ok(&["deploy", inv]);
    assert!(deployed.contains("standby2"), "{deployed}");
    let again = ok(&["deploy", inv]);
    assert_eq!(
        again.matches("changed=0 ").count(),
        3,
        "a second deploy changed something:\n{again}"
    );
    for node in ["standby", "standby2"] {
        wait_for(
            &format!("the {node}'s monitor watching"),
            Duration::from_secs(120),
            || role(&lab, node) == "watching",
        );
    }
    let status = ok(&["status", inv]);
    assert!(status.contains("standby2"), "{status}");
    for secret in lab.secret_values() {
        for (what, out) in [("deploy", &deployed), ("status", &status)] {
            assert!(!out.contains(&secret), "{what} printed a secret");
        }
    }
    // standby2 holds only its own bot's token, never the others'.
    let token = |f: &str| {
        std::fs::read_to_string(lab.path(&format!("secrets/{f}")))
            .unwrap()
            .trim()
            .to_string()
    };
    let others = [
        token("telegram_primary_token"),
        token("telegram_standby_token"),
    ];
    for t in &others {
        let hits = lab.ssh(
            "standby2",
            &format!("grep -rlF -- '{t}' /etc /home/openclaw /run /var/lib/ocfo 2>/dev/null"),
        );
        assert!(
            hits.stdout.is_empty(),
            "another node's bot token on standby2: {}",
            String::from_utf8_lossy(&hits.stdout)
        );
    }

    // A drill of the double fault: the primary and the standby broken at
    // once; standby2 must take over, answer, remember the primary's word,
    // and hand the outage back once the primary returns.
    let report = lab.drill_ok(
        &[
            inv,
            "--on",
            "primary,standby",
            "--fault",
            "stop",
            "--wait",
            "180s",
            "--max-failover",
            "150s",
            "--max-failback",
            "200s",
        ],
        &[
            ("standby2", "ocfo-monitor"),
            ("standby2", "openclaw-gateway"),
        ],
    );
    assert_eq!(report["taker"], "standby2", "{report:#}");
    assert!(report["user"]["answered_ms"].is_u64(), "{report:#}");
    assert!(report["user"]["remembered_ms"].is_u64(), "{report:#}");
    let timeline = report["timeline"].to_string();
    assert!(
        timeline.contains("standby2's monitor decided to promote"),
        "{timeline}"
    );
    eprintln!(
        "double-fault drill: failover {} ms, answered {} ms, remembered {} ms",
        report["failover_ms"], report["user"]["answered_ms"], report["user"]["remembered_ms"]
    );
    wait_for(
        "the standby watching again",
        Duration::from_secs(120),
        || role(&lab, "standby") == "watching",
    );
    assert_eq!(
        promotions(&lab, "standby"),
        0,
        "the standby promoted during the double fault"
    );
    // A drill on a standby alone fails nothing over: refused, saying so.
    let refused = ocfo(&["drill", inv, "--on", "standby"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused).contains("a fault on a standby alone fails nothing over"));

    // The word the primary is told must reach standby2 through its snapshot.
    let word = format!("quince-{:04x}", rand::random::<u16>());
    let answer = lab.chat("primary", &format!("Please remember the word {word}."));
    assert!(!answer.trim().is_empty());
    let repo = lab.path("workspace.git");
    wait_for(
        "a conversation snapshot of the primary holding the word",
        Duration::from_secs(120),
        || {
            std::process::Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args([
                    "grep",
                    "-q",
                    "-F",
                    "-e",
                    &word,
                    "refs/heads/ocfo/conversation-primary",
                    "--",
                ])
                .status()
                .is_ok_and(|s| s.success())
        },
    );

    // One fault: the primary's host is gone. The standby serves; standby2,
    // seeing the standby alive, waits however long it lasts.
    lab_cmd(&lab, "stop", "primary");
    wait_for("the standby promoted", Duration::from_secs(120), || {
        role(&lab, "standby") == "promoted"
    });
    let answer = lab.chat("standby", "The primary is gone; are you there?");
    assert!(!answer.trim().is_empty());
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(role(&lab, "standby2"), "watching");
    let standby2_promotions = promotions(&lab, "standby2");
    assert_eq!(standby2_promotions, 1, "only the drill's promotion");

    // Two faults: the standby's host is gone too. standby2 serves, and
    // continues the primary's conversation.
    lab_cmd(&lab, "stop", "standby");
    // (After the standby's grace: 60 s of silence.)
    let took = wait_for("standby2 promoted", Duration::from_secs(240), || {
        role(&lab, "standby2") == "promoted"
    });
    eprintln!("double fault: standby2 promoted {took:?} after the standby's host stopped");
    let mut remembered = false;
    for _ in 0..12 {
        let a = lab.chat("standby2", "Which word did I ask you to remember?");
        if a.contains(&word) {
            remembered = true;
            break;
        }
        std::thread::sleep(Duration::from_secs(10));
    }
    assert!(
        remembered,
        "standby2 never quoted the word told to the primary"
    );

    // Back in order. The standby's host first: it takes over (the primary
    // is still down) and standby2 steps down after its hold-down, telling
    // its users to go to the standby's bot.
    lab_cmd(&lab, "start", "standby");
    wait_for(
        "the standby serving again",
        Duration::from_secs(240),
        || role(&lab, "standby") == "promoted",
    );
    wait_for("standby2 stepped down", Duration::from_secs(180), || {
        role(&lab, "standby2") == "watching"
    });
    let m = monitor(&lab, "standby2");
    assert_eq!(m["last_hand_back"]["outcome"], "not_handed_back", "{m:#}");
    let answer = lab.chat("standby", "Are you back?");
    assert!(!answer.trim().is_empty());

    // Then the primary: the standby steps down; standby2 stays quiet.
    lab_cmd(&lab, "start", "primary");
    wait_for("the standby stepped down", Duration::from_secs(400), || {
        role(&lab, "standby") == "watching"
    });
    assert_eq!(role(&lab, "standby2"), "watching");
    assert_eq!(promotions(&lab, "standby2"), standby2_promotions + 1);
    // ...and gave the primary the outage's conversation first.
    let m = monitor(&lab, "standby");
    if m["last_hand_back"]["outcome"] != "taken" {
        eprintln!(
            "{}\n{}\n{}",
            lab.journal("primary", "ocfo-conversation-take-back", 80),
            lab.journal("standby", "ocfo-monitor", 120),
            text(&lab.ssh(
                "standby",
                "runuser -u openclaw -- git -C /home/openclaw/conversation-replica log --oneline -5 --all",
            )),
        );
        panic!("the standby's hand-back was not taken: {m:#}");
    }
    let answer = lab.chat("primary", "Back to you?");
    assert!(!answer.trim().is_empty());

    // The user's view: standby2 announced its takeover and, stepping down,
    // sent the user to the standby's bot; no message was answered twice.
    let transcript = lab.transcript();
    let said_by = |node: &str| -> Vec<String> {
        transcript
            .iter()
            .filter(|l| l["node"] == node && l["direction"] == "from_bot")
            .filter_map(|l| l["text"].as_str().map(String::from))
            .collect()
    };
    let standby2 = said_by("standby2");
    assert!(
        standby2.iter().any(|t| t.contains("answering here on")),
        "no takeover announcement from standby2: {standby2:?}"
    );
    assert!(
        standby2
            .iter()
            .any(|t| t.contains("the first standby is back") && t.contains("@tchain_standby_bot")),
        "standby2 did not send the user to the standby's bot: {standby2:?}"
    );
    let mut answered: Vec<(String, u64)> = transcript
        .iter()
        .filter(|l| l["direction"] == "from_bot")
        .flat_map(|l| {
            let node = l["node"].as_str().unwrap_or_default().to_string();
            l["answers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(move |a| Some((node.clone(), a.as_u64()?)))
        })
        .collect();
    let n = answered.len();
    answered.sort();
    answered.dedup();
    assert_eq!(
        answered.len(),
        n,
        "a message was answered twice: {transcript:#?}"
    );
}
