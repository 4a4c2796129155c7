#![cfg(feature = "system-tests")]
//! `ocfo deploy` against a real lab: a fresh deploy, a no-op re-deploy,
//! drift found by --check and repaired, the operator never locked out, and no
//! secret in any output.

mod common;

use std::process::Output;

use common::system::*;

struct Run {
    code: i32,
    text: String,
    json: serde_json::Value,
}

fn deploy(lab: &TestLab, extra: &[&str], outputs: &mut Vec<String>) -> Run {
    let inv = lab.inventory();
    let mut args = vec!["deploy", inv.as_str(), "--json"];
    args.extend_from_slice(extra);
    let out: Output = ocfo(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = text(&out);
    outputs.push(all.clone());
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("deploy --json printed no JSON ({e}):\n{all}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        text: all,
        json,
    }
}

fn changed(run: &Run) -> Vec<String> {
    let mut v = Vec::new();
    for host in run.json["hosts"].as_array().unwrap() {
        for t in host["tasks"].as_array().unwrap() {
            if t["status"] == "changed" {
                v.push(format!(
                    "{}: {}",
                    host["node"].as_str().unwrap(),
                    t["task"].as_str().unwrap()
                ));
            }
        }
    }
    v
}

fn secrets(lab: &TestLab) -> Vec<String> {
    lab.secret_values()
}

#[test]
fn deploy_converges_and_repairs_drift() {
    // The Discord variant: a plugin channel on the standby, armed through
    // its SecretRef file (the default lab's Telegram standby is covered by
    // tests/drill.rs).
    let lab = TestLab::up_with(file!(), &["--standby-channel", "discord"]);
    let mut outputs = Vec::new();

    let first = deploy(&lab, &[], &mut outputs);
    assert_eq!(first.code, 0, "first deploy failed:\n{}", first.text);
    assert!(!changed(&first).is_empty());

    let second = deploy(&lab, &[], &mut outputs);
    assert_eq!(second.code, 0, "{}", second.text);
    assert_eq!(
        changed(&second),
        Vec::<String>::new(),
        "a re-deploy changed things:\n{}",
        second.text
    );
    let check = deploy(&lab, &["--check"], &mut outputs);
    assert_eq!(
        check.code, 0,
        "--check right after a deploy must find nothing:\n{}",
        check.text
    );
    let lock_sum = the_tree_is_the_locked_one_on_both_nodes(&lab, &first);

    // The primary's workspace watcher runs and pushes a write within
    // seconds (its first crash-looped on a clashing flag while deploy and
    // this test saw "started").
    lab.ssh_ok(
        "primary",
        "runuser -u openclaw -- sh -c 'echo watched > /home/openclaw/workspace/watched.md'",
    );
    let remote = lab.path("workspace.git");
    let pushed = wait_for(
        "the watcher's push",
        std::time::Duration::from_secs(30),
        || {
            std::process::Command::new("git")
                .arg("--git-dir")
                .arg(&remote)
                .args(["cat-file", "-e", "main:watched.md"])
                .status()
                .is_ok_and(|s| s.success())
        },
    );
    eprintln!("a workspace write reached the remote in {pushed:?}");
    assert!(pushed < std::time::Duration::from_secs(10), "{pushed:?}");
    assert_eq!(
        lab.ssh_ok("primary", "systemctl is-active ocfo-workspace-watch; systemctl show -p NRestarts --value ocfo-workspace-watch"),
        "active\n0\n"
    );

    // The pair as deployed: primary serving, reachable from the standby over
    // the private network; standby's gateway installed but stopped; monitor up.
    let primary = lab.address("primary");
    let health = lab.ssh_ok(
        "standby",
        &format!("curl -s -m 5 http://{primary}:18789/healthz"),
    );
    assert!(health.contains("\"ok\":true"), "{health}");
    assert_eq!(
        lab.ssh_ok("primary", "systemctl is-active openclaw-gateway")
            .trim(),
        "active"
    );
    let standby_gw = lab.ssh(
        "standby",
        "systemctl is-active openclaw-gateway; systemctl is-enabled openclaw-gateway",
    );
    // A warm standby (the default): its gateway runs, its channel switched off.
    assert_eq!(
        String::from_utf8_lossy(&standby_gw.stdout).trim(),
        "active\nenabled"
    );
    let switch = lab.ssh_ok(
        "standby",
        "stat -c '%U %a' /etc/openclaw/switches/standby.json; cat /etc/openclaw/switches/standby.json",
    );
    let monitor_log = || {
        lab.ssh_ok(
            "standby",
            "journalctl -u ocfo-monitor --no-pager -o short-precise | tail -40; cat /var/lib/ocfo/monitor-state.json",
        )
    };
    assert!(
        switch.starts_with("root 644"),
        "{switch}\n{}",
        monitor_log()
    );
    // Automations off; the channel enabled in config but stopped at run
    // time: the monitor arms the gateway (credentials loaded, channel
    // stopped), so a promotion is a bare `channels.start`.
    let switch_json: serde_json::Value =
        serde_json::from_str(switch.split_once('\n').map_or("", |x| x.1)).unwrap_or_default();
    assert_eq!(switch_json["cron"]["enabled"], false, "{switch}");
    assert_ne!(
        switch_json["channels"]["discord"]["enabled"], false,
        "{switch}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let state = lab.ssh_ok("standby", "cat /var/lib/ocfo/monitor-state.json");
        let v: serde_json::Value = serde_json::from_str(&state).unwrap_or_default();
        if v["armed"] == true {
            assert_eq!(v["channels_live"], false, "{state}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the monitor did not arm the warm standby within 180 s:\n{}",
            monitor_log()
        );
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    // Armed means: the credentials in a file only root and the gateway's
    // user can reach, and the channel never started (OpenClaw's own log).
    assert_eq!(
        lab.ssh_ok(
            "standby",
            "stat -c '%U %G %a' /run/ocfo-standby /run/ocfo-standby/channels.json"
        ),
        "root openclaw 750\nopenclaw openclaw 600\n"
    );
    let gateway_log = lab.ssh_ok(
        "standby",
        "journalctl -u openclaw-gateway --no-pager -o cat | grep -i discord || true",
    );
    assert!(
        !gateway_log.contains("starting provider"),
        "the watching standby started its channel:\n{gateway_log}"
    );
    assert!(
        gateway_log.contains("configured but unavailable"),
        "a fresh standby gateway should start without its channel credentials:\n{gateway_log}"
    );
    assert_eq!(
        lab.ssh_ok("standby", "systemctl is-active ocfo-monitor")
            .trim(),
        "active"
    );
    assert!(lab
        .ssh_ok("standby", "ocfo monitor status")
        .contains("watching"));
    // Secrets only in mode-0600 files; none in the config.
    assert_eq!(
        lab.ssh_ok("primary", "stat -c %a /etc/openclaw/gateway.env")
            .trim(),
        "600"
    );
    let config = lab.ssh_ok("primary", "cat /home/openclaw/.openclaw/openclaw.json");
    for s in secrets(&lab) {
        assert!(!config.contains(&s), "a secret is in openclaw.json");
    }

    // Drift: each is found by --check (exit 2) and repaired by deploy.
    let drifts: &[(&str, &str, &str)] = &[
        (
            "primary",
            "echo '{}' > /home/openclaw/.openclaw/openclaw.json",
            "OpenClaw config",
        ),
        (
            "primary",
            "chmod 0644 /etc/openclaw/gateway.env",
            "OpenClaw environment and restart-class settings",
        ),
        (
            "standby",
            // The monitor re-arms a standby whose switch file is gone (it
            // writes the file itself), so it is stopped first: the drift
            // stays until deploy puts both back.
            "systemctl stop ocfo-monitor && rm /etc/openclaw/switches/standby.json",
            "channel switches (warm standby)",
        ),
        (
            "standby",
            "systemctl stop openclaw-gateway",
            "gateway enabled and running (warm standby)",
        ),
        ("primary", "ufw disable", "firewall"),
        ("standby", "systemctl stop fail2ban", "fail2ban running"),
        (
            "standby",
            "rm /etc/ssh/sshd_config.d/10-ocfo.conf",
            "sshd hardening",
        ),
        ("primary", "rm -rf /opt/node /opt/node-v*", "Node.js"),
        (
            "standby",
            "systemctl stop ocfo-monitor",
            "monitor enabled and running (standby)",
        ),
        (
            "primary",
            "systemctl stop ocfo-workspace-watch",
            "workspace watcher running (primary)",
        ),
    ];
    for (node, script, task) in drifts {
        lab.ssh_ok(node, script);
        let mut check = deploy(&lab, &["--check", "--diff"], &mut outputs);
        // A stopped unit that systemd started again before the check (the
        // watcher is WantedBy= and PartOf= the gateway: a gateway restart
        // starts it; seen once in CI) is a drift that healed itself, not
        // one --check missed: say so, and drift it again.
        if let (0, Some(unit)) = (check.code, script.strip_prefix("systemctl stop ")) {
            let state = lab.ssh(node, &format!("systemctl is-active {unit}"));
            if String::from_utf8_lossy(&state.stdout).trim() == "active" {
                eprintln!(
                    "`{script}` healed itself before the check:\n{}",
                    lab.journal(node, unit, 20)
                );
                lab.ssh_ok(node, script);
                check = deploy(&lab, &["--check", "--diff"], &mut outputs);
            }
        }
        assert_eq!(check.code, 2, "--check missed `{script}`:\n{}", check.text);
        assert!(
            changed(&check)
                .iter()
                .any(|c| c == &format!("{node}: {task}")),
            "`{script}`: expected `{task}` in {:?}",
            changed(&check)
        );
        let fix = deploy(&lab, &[], &mut outputs);
        assert_eq!(
            fix.code, 0,
            "deploy did not repair `{script}`:\n{}",
            fix.text
        );
        let after = deploy(&lab, &["--check"], &mut outputs);
        assert_eq!(
            after.code, 0,
            "still drifted after repairing `{script}`:\n{}",
            after.text
        );
        // After every deploy the operator still logs in.
        lab.ssh_ok("primary", "true");
        lab.ssh_ok("standby", "true");
    }
    assert_eq!(
        lab.ssh_ok("primary", "systemctl is-active openclaw-gateway")
            .trim(),
        "active"
    );

    // A second deploy on a host that is being deployed fails clearly.
    lab.ssh_ok(
        "primary",
        "mkdir /run/ocfo-deploy.lock && echo 'someone else' > /run/ocfo-deploy.lock/owner",
    );
    let locked = deploy(&lab, &[], &mut outputs);
    assert_eq!(locked.code, 1);
    assert!(
        locked.text.contains("another deploy holds the lock")
            && locked.text.contains("someone else"),
        "{}",
        locked.text
    );
    assert_eq!(
        locked.json["hosts"][1]["error"],
        serde_json::Value::Null,
        "the standby is not held up by the primary's lock"
    );
    lab.ssh_ok("primary", "rm -rf /run/ocfo-deploy.lock");

    // The agent (the gateway user, after one prompt injection) plants tools
    // where the operator's PATH for it looks first. A deploy that restarts
    // the gateway (config validation, the hold's `/readyz` probe: both once
    // ran as root after sourcing the gateway's environment) runs none of
    // them as root.
    lab.ssh_ok(
        "primary",
        r##"runuser -u openclaw -- /usr/bin/env HOME=/home/openclaw /bin/sh -c '
set -e
mkdir -p "$HOME/.local/bin"
for t in runuser curl head sed cat env mktemp sh printf grep tr stat id; do
  printf "#!/bin/sh\necho \"\$(/usr/bin/id -u) $t\" >> $HOME/.planted.log\nexport PATH=/usr/sbin:/usr/bin:/sbin:/bin\nexec $t \"\$@\"\n" > "$HOME/.local/bin/$t"
  chmod 755 "$HOME/.local/bin/$t"
done
: > "$HOME/.planted.log"'"##,
    );
    let planted_inv = lab.path("inventory-planted.yaml");
    let original = std::fs::read_to_string(lab.inventory()).unwrap();
    assert!(original.contains("\n  env: {}\n"));
    std::fs::write(
        &planted_inv,
        original.replace(
            "\n  env: {}\n",
            // OpenClaw's and Node's folders stay on it: `openclaw` is
            // `#!/usr/bin/env node`, so without them neither `config
            // validate` nor the gateway starts.
            "\n  env: {PATH: \"/home/openclaw/.local/bin:/opt/openclaw/bin:/opt/node/bin:/usr/local/bin:/usr/bin:/bin\"}\n  env_allow: [PATH]\n",
        ),
    )
    .unwrap();
    let planted = ocfo(&["deploy", planted_inv.to_str().unwrap()]);
    outputs.push(text(&planted));
    assert!(planted.status.success(), "{}", text(&planted));
    assert!(lab
        .ssh_ok("primary", "cat /etc/openclaw/gateway.env")
        .contains("/home/openclaw/.local/bin"));
    let ran = lab.ssh_ok("primary", "cat /home/openclaw/.planted.log");
    assert!(
        !ran.lines().any(|l| l.starts_with("0 ")),
        "root ran a tool the gateway user planted:\n{ran}"
    );
    let restored = ocfo(&["deploy", &lab.inventory()]);
    assert!(restored.status.success(), "{}", text(&restored));

    // The Discord variant still fails over: the armed plugin channel is
    // started by one RPC (its fake token never connects: the drill measures
    // the machine's side, and says why not the user's).
    let drill = ocfo(&[
        "drill",
        &lab.inventory(),
        "--json",
        "--wait",
        "180s",
        "--max-failover",
        "120s",
        "--max-failback",
        "180s",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&drill.stdout)
        .unwrap_or_else(|_| panic!("drill --json:\n{}", text(&drill)));
    assert!(
        drill.status.success() && report["ok"] == true,
        "the Discord variant's drill failed:\n{report:#}\n{}",
        String::from_utf8_lossy(&drill.stderr)
    );
    assert!(
        report["timeline"].to_string().contains("channel started"),
        "{report:#}"
    );
    assert_eq!(report["fallback_restart"], false, "{report:#}");
    assert!(report.get("user").is_none(), "{report:#}");
    assert!(
        String::from_utf8_lossy(&drill.stderr).contains("uses Discord"),
        "{}",
        text(&drill)
    );
    outputs.push(text(&drill));

    a_tampered_lock_switches_nothing(&lab, &lock_sum, &mut outputs);
    a_version_without_the_plugin_changes_nothing(&lab, &lock_sum, &mut outputs);

    // No secret value in anything deploy printed.
    for out in &outputs {
        for s in secrets(&lab) {
            assert!(!out.contains(&s), "deploy output leaks a secret:\n{out}");
        }
    }
}

/// Issue 16, finding 3: both nodes run the tree of ocfo's lock, installed by
/// the build user with no dependency's scripts, then root's; `ocfo status`
/// shows it. Returns the lock's SHA-256.
fn the_tree_is_the_locked_one_on_both_nodes(lab: &TestLab, first: &Run) -> String {
    let lock = concat!(env!("CARGO_MANIFEST_DIR"), "/locks/openclaw-2026.9.6.json");
    let out = std::process::Command::new("sha256sum")
        .arg(lock)
        .output()
        .unwrap();
    let sum = String::from_utf8_lossy(&out.stdout)[..64].to_string();
    let tree = format!("/opt/openclaw-2026.9.6-{}", &sum[..12]);
    for node in ["primary", "standby"] {
        assert_eq!(
            lab.ssh_ok(node, "cat /opt/openclaw/.ocfo-tree; readlink /opt/openclaw"),
            format!("lock {sum}\nopenclaw 2026.9.6\n{tree}\n"),
            "{node}"
        );
        // Root's tree, nothing of the build user's left in it or running;
        // OpenClaw's own lifecycle completed; no setuid file.
        let odd = lab.ssh_ok(
            node,
            "find /opt/openclaw/ \\( ! -user root -o ! -group root -o -perm /6022 ! -type l \\) -print | head -5; \
             ls /opt/openclaw/lib/node_modules/openclaw/.openclaw-lifecycle-pending 2>&1 >/dev/null | grep -c 'No such' ; \
             for p in /proc/[0-9]*; do stat -c %U \"$p\" 2>/dev/null; done | grep -cx ocfo-build; getent passwd ocfo-build | cut -d: -f6,7; ls -d /opt/openclaw*",
        );
        assert_eq!(
            odd,
            format!("1\n0\n/nonexistent:/usr/sbin/nologin\n/opt/openclaw\n{tree}\n"),
            "{node}"
        );
        assert!(lab
            .ssh_ok(
                node,
                "cd /tmp && runuser -u openclaw -- env HOME=/tmp PATH=/opt/node/bin:/usr/bin:/bin /opt/openclaw/bin/openclaw --version"
            )
            .contains("2026.9.6"));
    }
    for host in first.json["hosts"].as_array().unwrap() {
        for t in host["tasks"].as_array().unwrap() {
            if t["task"] == "OpenClaw package" {
                eprintln!(
                    "{}: OpenClaw package took {} ms: {}",
                    host["node"], t["duration_ms"], t["changes"]
                );
            }
        }
    }
    let status = ocfo(&["status", &lab.inventory(), "--json"]);
    assert!(status.status.success(), "{}", text(&status));
    let nodes: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let locks: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["openclaw_lock"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(locks, [sum.as_str(), sum.as_str()], "{nodes:#}");
    sum
}

/// A lock whose one package's sha512 matches no tarball: `npm ci`
/// refuses the tarball, the deploy fails, and the live tree, the gateway
/// and the next deploy are untouched.
fn a_tampered_lock_switches_nothing(lab: &TestLab, lock_sum: &str, outputs: &mut Vec<String>) {
    let lock = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/locks/openclaw-2026.9.6.json"
    ))
    .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&lock).unwrap();
    // One character changed: a sha512 no tarball has. (Another package's
    // sha512 would not do: npm's cache is content-addressed, so it would
    // install that package's tarball in its place, exactly as vouched.)
    let own = v["packages"]["node_modules/yaml"]["integrity"]
        .as_str()
        .unwrap()
        .to_string();
    let at = "sha512-".len();
    let flipped = if own[at..].starts_with('A') { "B" } else { "A" };
    let tampered_sum = format!("{}{flipped}{}", &own[..at], &own[at + 1..]);
    assert_ne!(tampered_sum, own);
    v["packages"]["node_modules/yaml"]["integrity"] = tampered_sum.into();
    let tampered = lab.path("tampered-lock.json");
    std::fs::write(&tampered, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let inv = lab.path("inventory-tampered.yaml");
    let original = std::fs::read_to_string(lab.inventory()).unwrap();
    std::fs::write(
        &inv,
        original.replacen(
            "  version: 2026.9.6\n",
            &format!("  version: 2026.9.6\n  lockfile: {}\n", tampered.display()),
            1,
        ),
    )
    .unwrap();
    // The standby only: a failing upgrade on the primary would first hand
    // service over (hold.rs), which is not what this checks.
    let out = ocfo(&["deploy", inv.to_str().unwrap(), "--limit", "standby"]);
    let all = text(&out);
    outputs.push(all.clone());
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("EINTEGRITY") || all.contains("integrity"),
        "{all}"
    );
    assert!(all.contains("nothing was switched"), "{all}");
    assert_eq!(
        lab.ssh_ok(
            "standby",
            "sed -n 's/^lock //p' /opt/openclaw/.ocfo-tree; ls -d /opt/openclaw* | wc -l; systemctl is-active openclaw-gateway"
        ),
        format!("{lock_sum}\n2\nactive\n")
    );
    let check = ocfo(&["deploy", &lab.inventory(), "--check"]);
    assert!(check.status.success(), "{}", text(&check));
}

/// OpenClaw 2026.9.1 exists on npm, its Discord plugin does not (the
/// plugin's first 2026.9 release is 2026.9.2): a pair whose standby has a
/// Discord channel cannot run it. The whole pair is deployed: the standby
/// goes first, stops at its OpenClaw task before anything is downloaded or
/// switched, and the primary is never touched.
fn a_version_without_the_plugin_changes_nothing(
    lab: &TestLab,
    lock_sum: &str,
    outputs: &mut Vec<String>,
) {
    // A lock of openclaw@2026.9.1 alone (npm's own resolved URL and
    // sha512): enough for validation; the install stops before `npm ci`.
    let lock = serde_json::json!({
        "name": "ocfo-openclaw",
        "lockfileVersion": 3,
        "requires": true,
        "packages": {
            "": {"name": "ocfo-openclaw", "dependencies": {"openclaw": "2026.9.1"}},
            "node_modules/openclaw": {
                "version": "2026.9.1",
                "resolved": "https://registry.npmjs.org/openclaw/-/openclaw-2026.9.1.tgz",
                "integrity": "sha512-0Ve0631CdgkJDwd4NNG1BawIdF5yCL2sO+Tts8amStw+H6vKURTj0K4rOa4+hFpJk1Dnw5LyKl5twzwX1VtA2w=="
            }
        }
    });
    let lock_path = lab.path("openclaw-2026.9.1-lock.json");
    std::fs::write(&lock_path, lock.to_string()).unwrap();
    let inv = lab.path("inventory-2026.9.1.yaml");
    let original = std::fs::read_to_string(lab.inventory()).unwrap();
    std::fs::write(
        &inv,
        original.replacen(
            "  version: 2026.9.6\n",
            &format!("  version: 2026.9.1\n  lockfile: {}\n", lock_path.display()),
            1,
        ),
    )
    .unwrap();
    let primary_pid = lab.main_pid("primary", "openclaw-gateway");
    let out = ocfo(&["deploy", inv.to_str().unwrap()]);
    let all = text(&out);
    outputs.push(all.clone());
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("OpenClaw's plugin @openclaw/discord has no version 2026.9.1 on npm")
            && all.contains("Nothing was switched")
            && all.contains("upgrade stopped before the primary"),
        "{all}"
    );
    for node in ["primary", "standby"] {
        assert_eq!(
            lab.ssh_ok(
                node,
                "sed -n 's/^lock //p' /opt/openclaw/.ocfo-tree; systemctl is-active openclaw-gateway"
            ),
            format!("{lock_sum}\nactive\n"),
            "{node}"
        );
    }
    assert_eq!(lab.main_pid("primary", "openclaw-gateway"), primary_pid);
    let check = ocfo(&["deploy", &lab.inventory(), "--check"]);
    assert!(check.status.success(), "{}", text(&check));
}
