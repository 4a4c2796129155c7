#![cfg(feature = "system-tests")]
//! End to end in the lab with the real OpenClaw and a warm standby (the
//! default): drills with each fault, what `ocfo status` reports at each
//! stage, a network blip shorter than fall × interval, a frozen (busy)
//! primary within stall_grace, re-deploys that change
//! hot and restart-class settings (no promotion), a planned switchover and
//! back, a re-deploy during a promotion, and a standby power cycle.

mod common;

use std::time::Duration;

use common::system::*;

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

#[test]
fn drills_status_blips_redeploy_and_power_cycle() {
    let lab = TestLab::up(file!());
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

    // The primary's bot answers, through OpenClaw and the model stand-in:
    // its answer quotes what the user wrote.
    let answer = lab.chat("primary", "Remember the word kumquat, please.");
    assert!(
        answer.contains("Remember the word kumquat, please."),
        "{answer}"
    );
    // Each node's own credentials (auth profiles in the agent database)
    // must never reach the other node: a canary row in the primary's.
    const PRIMARY_CANARY: &str = "canary-primary-only-7f3a9c";
    const STANDBY_CANARY: &str = "canary-standby-own-41d2";
    let plant = |node: &str, key: &str, value: &str| {
        lab.ssh_ok(
            node,
            &format!(
                "runuser -u openclaw -- sqlite3 /home/openclaw/.openclaw/agents/main/agent/openclaw-agent.sqlite \
                 \"INSERT OR REPLACE INTO auth_profile_store VALUES('{key}', '{{\\\"note\\\":\\\"{value}\\\"}}', 0)\""
            ),
        )
    };
    plant("primary", "ocfo-test-primary", PRIMARY_CANARY);
    // The standby's bot does not answer while it watches: nothing polls it.
    let quiet = ocfo(&[
        "lab", "chat", "--name", &lab.name, "--to", "standby", "--wait", "5s", "hello?",
    ]);
    assert!(!quiet.status.success());
    assert!(
        text(&quiet).contains(&format!("nothing polls @{}_standby_bot", lab.name)),
        "{}",
        text(&quiet)
    );

    // Each fault: the drill passes and reports its timeline, the machine's
    // side and the user's.
    let drills_began = lab.ssh_ok("standby", "date +%s").trim().to_string();
    for fault in ["stop", "kill", "cut"] {
        // Workspace RPO: what the agent writes 10 s before a crash or a cut
        // is in the checkout the standby pulled when it promoted.
        let note = format!("rpo-{fault}.md");
        if fault != "stop" {
            lab.ssh_ok(
                "primary",
                &format!("runuser -u openclaw -- sh -c 'echo \"{fault}: the word is kumquat\" > /home/openclaw/workspace/{note}'"),
            );
            std::thread::sleep(Duration::from_secs(10));
        }
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
        // The user's side: the standby's bot answered, its takeover and
        // failback messages arrived, no message was answered twice, and the
        // message in flight at the fault has an outcome.
        let user = &report["user"];
        assert!(
            report["answered_ms"].as_u64().is_some_and(|a| a > 0),
            "{report:#}"
        );
        assert!(user["announced_ms"].as_u64().is_some(), "{report:#}");
        assert!(
            user["failback_announced_ms"].as_u64().is_some(),
            "{report:#}"
        );
        assert!(user["primary_answered_ms"].as_u64().is_some(), "{report:#}");
        assert_eq!(user["answered_twice"], serde_json::json!([]), "{report:#}");
        let outcome = user["before_fault"]["outcome"].as_str().unwrap_or("");
        assert!(
            ["answered", "answered_late", "lost"].contains(&outcome),
            "{report:#}"
        );
        if fault == "cut" {
            assert_eq!(user["cut_both_answered"], true, "{report:#}");
        }
        if fault != "stop" {
            let pulled = lab.ssh_ok(
                "standby",
                "journalctl -u ocfo-monitor -o cat --no-pager | grep 'workspace pulled' | tail -n 1",
            );
            let revision = pulled
                .split_whitespace()
                .find_map(|w| w.strip_prefix("revision="))
                .unwrap_or_else(|| panic!("no pulled revision in {pulled:?}"));
            let seen = lab.ssh(
                "standby",
                // As the checkout's owner: root's git refuses another
                // user's repository ("dubious ownership").
                &format!(
                    "runuser -u openclaw -- git -C /home/openclaw/workspace show {revision}:{note}"
                ),
            );
            let seen = text(&seen);
            assert!(
                seen.contains(&format!("{fault}: the word is kumquat")),
                "the standby promoted with {revision}, without the write made 10 s before the {fault}: {seen}"
            );
        }
        // The conversation carried over: a word told to the primary (and in
        // its snapshot) before the fault is quoted by the standby's bot
        // after its catch-up (the drill fails otherwise).
        assert!(user["word"].as_str().is_some(), "{report:#}");
        assert!(
            user["remembered_ms"].as_u64().is_some_and(|r| r > 0),
            "{report:#}"
        );
        // And back: a word told to the standby during the outage is quoted
        // by the primary's bot after the failback (the standby handed the
        // outage's conversation back before it stepped down).
        assert!(user["outage_word"].as_str().is_some(), "{report:#}");
        assert!(
            user["handed_back_ms"].as_u64().is_some_and(|r| r > 0),
            "{report:#}"
        );
        if fault == "stop" {
            // The standby has an agent database of its own now.
            plant("standby", "ocfo-test-standby", STANDBY_CANARY);
        }
        eprintln!(
            "drill {fault}: answered {} ms, remembered {} ms, failover {} ms, failback {} ms, message in flight {outcome}",
            report["answered_ms"], user["remembered_ms"], report["failover_ms"], report["failback_ms"]
        );
    }
    // The monitor started no Node process to promote or demote: it speaks
    // OpenClaw's gateway protocol itself (git pulls and pushes the
    // workspace). Node runs only once the standby serves, for the
    // conversation catch-up (OpenClaw's `backup git restore`, and its CLI
    // while the restarted gateway still refuses connections).
    let journal = lab.ssh_ok(
        "standby",
        &format!("journalctl -u ocfo-monitor -o cat --since @{drills_began} | grep -E 'child process|transition' || true"),
    );
    assert!(journal.contains("program=git"), "{journal}");
    let mut serving = false;
    for line in journal.lines() {
        if line.contains("transition") {
            serving = line.contains("to=\"promoted\"");
        } else if line.contains("openclaw") || line.contains("node") {
            assert!(
                serving,
                "the monitor started Node before the standby served:\n{journal}"
            );
        }
    }

    // What the user read: per drill, a takeover message saying it was a
    // drill, the word that the standby has the conversation back, and a
    // failback message, from the standby's bot. OpenClaw itself may add a
    // notice of its own: when a demotion stopped the channel while a reply
    // was being delivered (its delivery recovery, at the next start), or
    // when a restored snapshot held a turn in flight (its restart
    // recovery); any other unprompted message is a bug.
    const OPENCLAW_RECOVERY: &[&str] = &[
        "couldn’t confirm whether my previous reply reached this chat",
        "continuing your interrupted request",
    ];
    let standby_said: Vec<String> = lab
        .transcript()
        .iter()
        .filter(|l| {
            l["node"] == "standby" && l["direction"] == "from_bot" && l.get("answers").is_none()
        })
        .map(|l| l["text"].as_str().unwrap().to_string())
        .collect();
    let (recovery, announced): (Vec<&String>, Vec<&String>) = standby_said
        .iter()
        .partition(|m| OPENCLAW_RECOVERY.iter().any(|r| m.contains(r)));
    if !recovery.is_empty() {
        eprintln!("OpenClaw's own recovery notices: {recovery:#?}");
    }
    let (caught_up, announced): (Vec<&String>, Vec<&String>) = announced
        .into_iter()
        .partition(|m| m.contains("I have our conversation back, as it was at "));
    assert_eq!(caught_up.len(), 3, "{standby_said:#?}");
    assert_eq!(announced.len(), 6, "{standby_said:#?}");
    for (i, m) in announced.iter().enumerate() {
        if i % 2 == 0 {
            assert!(
                m.contains("failover drill") && m.contains(&format!("@{}_standby_bot", lab.name)),
                "{m}"
            );
        } else {
            assert!(
                m.contains(&format!("Please continue on @{}_primary_bot", lab.name)),
                "{m}"
            );
        }
    }
    // Each node keeps its own secrets: after three failovers and
    // failbacks, nothing on the standby (config, state, logs, the
    // workspace it pulled) holds the primary's own bot token. The token
    // reaches grep on stdin, never in an argv.
    let primary_only = std::fs::read_to_string(lab.path("secrets/telegram_primary_token"))
        .unwrap()
        .trim()
        .to_string();
    assert!(!primary_only.is_empty());
    let found = lab.ssh_with_input(
        "standby",
        "grep -rlF -f - /etc /home /root /var /run /srv /tmp 2>/dev/null; true",
        format!("{primary_only}\n").as_bytes(),
    );
    assert!(
        found.status.success() && found.stdout.is_empty(),
        "the primary's own bot token is on the standby in: {}",
        text(&found)
    );
    // The same search finds the standby's own token: it can fail.
    let own = std::fs::read_to_string(lab.path("secrets/telegram_standby_token")).unwrap();
    let found = lab.ssh_with_input(
        "standby",
        "grep -rlF -f - /etc /home /root /var /run /srv /tmp 2>/dev/null; true",
        format!("{}\n", own.trim()).as_bytes(),
    );
    assert!(!found.stdout.is_empty(), "{}", text(&found));
    // Conversations travelled three times; auth profiles never did: the
    // standby's database holds its own canary (kept across its catch-ups)
    // and not the primary's, and no branch of the remote holds the
    // primary's.
    let rows = lab.ssh_ok(
        "standby",
        "runuser -u openclaw -- sqlite3 /home/openclaw/.openclaw/agents/main/agent/openclaw-agent.sqlite 'SELECT store_json FROM auth_profile_store'",
    );
    assert!(rows.contains(STANDBY_CANARY), "{rows}");
    assert!(!rows.contains(PRIMARY_CANARY), "{rows}");
    // The other way, after three hand-backs: the primary keeps its own.
    let rows = lab.ssh_ok(
        "primary",
        "runuser -u openclaw -- sqlite3 /home/openclaw/.openclaw/agents/main/agent/openclaw-agent.sqlite 'SELECT store_json FROM auth_profile_store'",
    );
    assert!(rows.contains(PRIMARY_CANARY), "{rows}");
    assert!(!rows.contains(STANDBY_CANARY), "{rows}");
    let found = lab.ssh_with_input(
        "primary",
        "grep -rlF -f - /etc /home /root /var /run /srv /tmp 2>/dev/null; true",
        format!("{STANDBY_CANARY}\n").as_bytes(),
    );
    assert!(found.stdout.is_empty(), "{}", text(&found));
    let found = lab.ssh_with_input(
        "standby",
        "grep -rlF -f - /etc /home /root /var /run /srv /tmp 2>/dev/null; true",
        format!("{PRIMARY_CANARY}\n").as_bytes(),
    );
    assert!(found.stdout.is_empty(), "{}", text(&found));
    let remote = lab.path("workspace.git");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"git -C "$1" grep -l "$2" $(git -C "$1" for-each-ref --format='%(refname)' refs/heads) || true"#)
        .args(["sh", remote.to_str().unwrap(), PRIMARY_CANARY])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "{}",
        text(&out)
    );
    // The same search finds the conversations that did travel.
    let out = std::process::Command::new("git")
        .args([
            "-C",
            remote.to_str().unwrap(),
            "grep",
            "-l",
            "please remember the word",
            "refs/heads/ocfo/conversation-primary",
            "refs/heads/ocfo/conversation-handback",
        ])
        .output()
        .unwrap();
    assert!(!out.stdout.is_empty(), "{}", text(&out));

    // The cut is gone: nothing blocks the standby's probes any more.
    assert!(!lab
        .ssh_ok("primary", "iptables -S INPUT")
        .contains("ocfo-drill"));

    // A cut shorter than fall × interval (3 × 1 s) does not promote.
    wait_for("standby watching", Duration::from_secs(60), || {
        standby_role(&inv) == WATCHING
    });
    let before: serde_json::Value = status(&inv)[1]["monitor"]["counters"].clone();
    ok(&["lab", "cut", "primary", "standby", "--name", &lab.name]);
    std::thread::sleep(Duration::from_secs(1));
    ok(&["lab", "heal", "--name", &lab.name]);
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
    assert!(base.contains("maxTokens: 4096"), "{base}");
    let (pid_p, pid_s, promos) = (
        lab.main_pid("primary", "openclaw-gateway"),
        lab.main_pid("standby", "openclaw-gateway"),
        promotions(&inv),
    );
    std::fs::write(
        &inv_path,
        base.replace("maxTokens: 4096", "maxTokens: 4000"),
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
        (
            lab.main_pid("primary", "openclaw-gateway"),
            lab.main_pid("standby", "openclaw-gateway")
        ),
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
        base.replace("  env: {}", "  env: {LAB_TEST_RESTART: \"1\"}"),
    )
    .unwrap();
    let restart = ok(&["deploy", &inv]);
    assert!(restart.contains("restart openclaw-gateway"), "{restart}");
    assert!(restart.contains("monitor was held"), "{restart}");
    assert_ne!(lab.main_pid("primary", "openclaw-gateway"), pid_p);
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
    // The users were told: planned maintenance, then back; in between, the
    // standby took the primary's conversation over for the switchover too.
    let (caught_up, said): (Vec<String>, Vec<String>) = lab
        .transcript()
        .iter()
        .filter(|l| {
            l["node"] == "standby" && l["direction"] == "from_bot" && l.get("answers").is_none()
        })
        .map(|l| l["text"].as_str().unwrap().to_string())
        .partition(|m| m.contains("I have our conversation back"));
    assert_eq!(caught_up.len(), 4, "{caught_up:#?}");
    let n = said.len();
    assert!(
        n >= 2 && said[n - 2].contains("planned maintenance"),
        "{said:#?}"
    );
    assert!(said[n - 1].contains("is back"), "{said:#?}");

    // A second poller on the primary's bot token (what a second gateway on
    // one token does): Telegram's 409 for the one that waited, OpenClaw
    // says so in its log, and its channel comes back once the other one
    // stops (its own back-off: ~30 s).
    let world = std::fs::read_to_string(lab.path("world.json")).unwrap();
    let world: serde_json::Value = serde_json::from_str(&world).unwrap();
    let token = world["bots"][0]["token"].as_str().unwrap().to_string();
    let root = format!(
        "http://{}.1:8081",
        lab.address("primary").rsplit_once('.').unwrap().0
    );
    let log_conflicts_before = lab
        .ssh_ok("primary", "journalctl -u openclaw-gateway --no-pager -o cat | grep -c 'getUpdates conflict' || true")
        .trim()
        .parse::<u32>()
        .unwrap_or(0);
    // The token reaches curl on stdin (a config file), never a command line.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "for i in 1 2 3; do printf 'url = \"{root}/bot%s/getUpdates?timeout=5\"\n' \"$TOKEN\" | curl -s -m 8 -K - ; echo; done"
        ))
        .env("TOKEN", &token)
        .output()
        .unwrap();
    let rogue = String::from_utf8_lossy(&out.stdout).into_owned();
    wait_for("OpenClaw logs the 409", Duration::from_secs(60), || {
        lab.ssh_ok("primary", "journalctl -u openclaw-gateway --no-pager -o cat | grep -c 'getUpdates conflict' || true")
            .trim()
            .parse::<u32>()
            .unwrap_or(0)
            > log_conflicts_before
    });
    // The chat world recorded the conflicts, with their times.
    let conflicts = std::fs::read_to_string(lab.path("world.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"event\":\"conflict\"") && l.contains("\"bot\":\"primary\""))
        .count();
    assert!(
        conflicts > 0,
        "no 409 in the record; the rogue poller got:\n{rogue}"
    );
    let back = lab.chat("primary", "Still there after the conflict?");
    assert!(back.contains("Still there after the conflict?"), "{back}");

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
    ok(&["lab", "stop", "standby", "--name", &lab.name]);
    ok(&["lab", "start", "standby", "--name", &lab.name]);
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
    ok(&["lab", "stop", "standby", "--name", &lab.name]);
    ok(&["lab", "start", "standby", "--name", &lab.name]);
    wait_for(
        "standby watching after its reboot",
        Duration::from_secs(180),
        || standby_role(&inv) == WATCHING,
    );
}
