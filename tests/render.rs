//! `ocfo render`: the rendered tree for the example inventory is compared with
//! the golden copy in tests/golden/example (regenerate with OCFO_UPDATE_GOLDEN=1
//! and review the diff), and secrets land only where they belong.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;

fn example_env(cmd: &mut std::process::Command, home: &Path) {
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(
        home.join(".ssh/openclaw_workspace_deploy"),
        format!("{DEPLOY_KEY}\n"),
    )
    .unwrap();
    cmd.env("HOME", home)
        .env("TS_AUTHKEY", SECRETS[0].1)
        .env("OPENCLAW_GATEWAY_TOKEN", SECRETS[1].1)
        .env("ANTHROPIC_API_KEY", SECRETS[2].1)
        .env("TELEGRAM_BOT_TOKEN", SECRETS[3].1)
        .env("DISCORD_STANDBY_BOT_TOKEN", SECRETS[4].1)
        .env("OCFO_WEBHOOK_URL", SECRETS[5].1);
}

/// Each file's path below the root, its bytes and its mode.
type Tree = BTreeMap<String, (Vec<u8>, u32)>;

fn read_tree(root: &Path) -> Tree {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                if rel != ".ocfo-render" {
                    let mode = e.metadata().unwrap().permissions().mode() & 0o7777;
                    out.insert(rel, (std::fs::read(&p).unwrap(), mode));
                }
            }
        }
    }
    out
}

/// `ocfo render --show-secrets` of `source` (written into `dir`), which
/// must succeed without printing a secret: the tree, stdout and stderr.
fn render_shown(dir: &Path, source: &str) -> (Tree, String, String) {
    let inv = dir.join("inventory.yaml");
    std::fs::write(&inv, source).unwrap();
    let out_dir = dir.join("out");
    let out = ocfo()
        .arg("render")
        .arg(&inv)
        .arg("--out")
        .arg(&out_dir)
        .arg("--show-secrets")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_no_secrets("render stdout", &stdout);
    assert_no_secrets("render stderr", &stderr);
    (read_tree(&out_dir), stdout, stderr)
}

fn render_example(extra: &[&str]) -> (tempfile::TempDir, std::process::Output) {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = ocfo();
    example_env(&mut cmd, &tmp.path().join("home"));
    let out = cmd
        .arg("render")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("inventory.example.yaml"))
        .arg("--out")
        .arg(tmp.path().join("out"))
        .args(extra)
        .output()
        .unwrap();
    (tmp, out)
}

#[test]
fn example_validates_with_its_env_vars_set() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = ocfo();
    example_env(&mut cmd, tmp.path());
    let out = cmd
        .arg("validate")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("inventory.example.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
}

#[test]
fn example_renders_as_the_golden_tree() {
    let (tmp, out) = render_example(&[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_no_secrets("render stdout", &stdout);
    assert_no_secrets("render stderr", &stderr);
    let got = read_tree(&tmp.path().join("out"));
    let golden_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/example");
    if std::env::var_os("OCFO_UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(&golden_dir);
        for (rel, (bytes, _)) in &got {
            let p = golden_dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
    }
    let want = read_tree(&golden_dir);
    let got_names: Vec<_> = got.keys().collect();
    let want_names: Vec<_> = want.keys().collect();
    assert_eq!(
        got_names, want_names,
        "rendered file set differs from tests/golden/example"
    );
    for (rel, (bytes, _)) in &got {
        assert_eq!(
            String::from_utf8_lossy(bytes),
            String::from_utf8_lossy(&want[rel].0),
            "{rel} differs from its golden copy (OCFO_UPDATE_GOLDEN=1 regenerates; review the diff)"
        );
        assert_no_secrets(rel, &String::from_utf8_lossy(bytes));
    }
}

#[test]
fn each_channel_is_enabled_on_exactly_one_node() {
    let (tmp, out) = render_example(&[]);
    assert!(out.status.success());
    let config = |node: &str| -> serde_json::Value {
        let p = tmp
            .path()
            .join("out")
            .join(node)
            .join("home/openclaw/.openclaw/openclaw.json");
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let (p, s) = (config("primary"), config("standby"));
    let names = |c: &serde_json::Value| {
        c["channels"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&p), ["telegram"]);
    assert_eq!(names(&s), ["discord"]);
    // Discord is a plugin: trusted only where it runs.
    assert_eq!(s["plugins"]["entries"]["discord"]["enabled"], true);
    assert!(p.get("plugins").is_none());
    // The other node's channel and its token reference never appear.
    let ptext = p.to_string();
    assert!(
        !ptext.contains("discord") && !ptext.contains("OCFO_DISCORD"),
        "{ptext}"
    );
    let stext = s.to_string();
    assert!(
        !stext.contains("telegram") && !stext.contains("OCFO_TELEGRAM"),
        "{stext}"
    );
    assert_eq!(p["gateway"]["auth"]["token"], "${OCFO_GATEWAY_TOKEN}");
    assert_eq!(p["gateway"]["mode"], "local");
    assert_eq!(
        s["agents"]["defaults"]["model"]["primary"],
        "anthropic/claude-opus-4-6"
    );
}

#[test]
fn show_secrets_puts_values_only_in_mode_0600_secret_files_of_their_node() {
    let (tmp, out) = render_example(&["--show-secrets"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_no_secrets("render --show-secrets stdout", &stdout);
    assert_no_secrets("render --show-secrets stderr", &stderr);
    let tree = read_tree(&tmp.path().join("out"));
    let secret_files = [
        "etc/openclaw/gateway.env",
        "home/openclaw/.ssh/ocfo_workspace_key",
        "etc/ocfo/monitor.env",
        "etc/ocfo/standby-channels.json",
    ];
    let mut seen: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (rel, (bytes, mode)) in &tree {
        let content = String::from_utf8_lossy(bytes);
        let is_secret_file = secret_files.iter().any(|s| rel.ends_with(s));
        for (name, value) in SECRETS.iter().chain([("DEPLOY_KEY", DEPLOY_KEY)].iter()) {
            if content.contains(value) {
                assert!(is_secret_file, "{name} leaked into {rel}");
                assert_eq!(*mode, 0o600, "{rel} holds secrets but has mode {mode:o}");
                seen.entry(name).or_default().push(rel.clone());
            }
        }
    }
    let nodes_of = |name: &str| seen.get(name).cloned().unwrap_or_default();
    assert_eq!(
        nodes_of("T_TELEGRAM_TOKEN"),
        ["primary/etc/openclaw/gateway.env"]
    );
    // A warm standby's channel credentials: only in the monitor's source
    // (it hands them to the gateway when it arms it), not in the gateway's
    // environment, so a freshly started gateway cannot connect.
    assert_eq!(
        nodes_of("T_DISCORD_TOKEN"),
        ["standby/etc/ocfo/standby-channels.json"]
    );
    // Both gateways, and the standby's monitor (it unlocks /readyz's reasons).
    assert_eq!(
        nodes_of("T_GATEWAY_TOKEN"),
        [
            "primary/etc/openclaw/gateway.env",
            "standby/etc/ocfo/monitor.env",
            "standby/etc/openclaw/gateway.env"
        ]
    );
    assert_eq!(nodes_of("DEPLOY_KEY").len(), 2);
    assert_eq!(nodes_of("T_WEBHOOK"), ["standby/etc/ocfo/monitor.env"]);
    // The Tailscale key is used by deploy's `tailscale up`, never written.
    assert!(nodes_of("T_TS_AUTHKEY").is_empty());
}

#[test]
fn refuses_to_overwrite_a_foreign_folder() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("precious.txt"), "keep").unwrap();
    let mut cmd = ocfo();
    example_env(&mut cmd, &tmp.path().join("home"));
    let out = cmd
        .arg("render")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("inventory.example.yaml"))
        .arg("--out")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("not empty"));
    assert!(tmp.path().join("precious.txt").exists());
}

/// An https:// workspace with a token: the token lands only in the gateway
/// user's 0600 file on each node, git gets it from the credential helper
/// (which answers only for the repository's host), and nothing SSH-related
/// is rendered for the workspace.
#[test]
fn https_workspace_token_reaches_git_only_through_the_helper() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(fixture("valid.yaml")).unwrap();
    let source = base.replacen(
        "  repo: git@example.invalid:you/ws.git\n  branch: main\n  deploy_key: {command: \"printf 'DEPLOYKEY-s3cr3t-material'\"}\n",
        "  repo: https://git.example.invalid:8443/you/ws.git\n  branch: main\n  token: {env: T_GIT_TOKEN}\n  token_username: drill-bot\n",
        1,
    );
    assert_ne!(source, base);
    let (tree, stdout, stderr) = render_shown(tmp.path(), &source);
    assert!(!stdout.contains(GIT_TOKEN) && !stderr.contains(GIT_TOKEN));
    for node in ["primary", "standby"] {
        let token = &tree[&format!("{node}/home/openclaw/.ocfo/workspace-token")];
        assert_eq!(String::from_utf8_lossy(&token.0), format!("{GIT_TOKEN}\n"));
        assert_eq!(token.1, 0o600);
        let helper = &tree[&format!("{node}/usr/local/lib/ocfo/git-credential-workspace")];
        assert_eq!(helper.1, 0o755);
        assert!(!tree.contains_key(&format!("{node}/home/openclaw/.ssh/ocfo_workspace_key")));
    }
    for (rel, (bytes, _)) in &tree {
        let content = String::from_utf8_lossy(bytes);
        if !rel.ends_with(".ocfo/workspace-token") {
            assert!(!content.contains(GIT_TOKEN), "the token leaked into {rel}");
        }
    }
    let push = String::from_utf8_lossy(&tree["primary/usr/local/lib/ocfo/workspace-push"].0);
    // No ssh command for an https:// remote: GIT_SSH_COMMAND stays unset.
    assert!(push.contains("ssh_command=''\n"), "{push}");

    // The helper itself, run as git runs it, against the rendered token file.
    let helper =
        String::from_utf8_lossy(&tree["primary/usr/local/lib/ocfo/git-credential-workspace"].0)
            .replace(
                "/home/openclaw/.ocfo/workspace-token",
                &tmp.path()
                    .join("out")
                    .join("primary/home/openclaw/.ocfo/workspace-token")
                    .display()
                    .to_string(),
            );
    let script = tmp.path().join("helper");
    std::fs::write(&script, helper).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ask = |action: &str, request: &str| -> String {
        use std::io::Write;
        let mut child = std::process::Command::new(&script)
            .arg(action)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(request.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let ours = "protocol=https\nhost=git.example.invalid:8443\npath=you/ws.git\n\n";
    assert_eq!(
        ask("get", ours),
        format!("username=drill-bot\npassword={GIT_TOKEN}\n")
    );
    assert_eq!(
        ask("get", "protocol=https\nhost=evil.example.invalid\n\n"),
        ""
    );
    assert_eq!(
        ask("get", "protocol=http\nhost=git.example.invalid:8443\n\n"),
        ""
    );
    assert_eq!(ask("erase", ours), "");
    assert_eq!(ask("store", ours), "");

    // And git itself, configured as the workspace module configures it,
    // gets the credential from it.
    let mut git = std::process::Command::new("git")
        .args(["-c", "credential.helper="])
        .arg("-c")
        .arg(format!("credential.helper={}", script.display()))
        .args(["credential", "fill"])
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("HOME", tmp.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        git.stdin
            .take()
            .unwrap()
            .write_all(b"protocol=https\nhost=git.example.invalid:8443\n\n")
            .unwrap();
    }
    let filled = git.wait_with_output().unwrap();
    let filled_out = String::from_utf8_lossy(&filled.stdout);
    assert!(filled.status.success(), "{:?}", filled);
    assert!(
        filled_out.contains(&format!("username=drill-bot\npassword={GIT_TOKEN}\n")),
        "{filled_out}"
    );
}

/// "Telegram on both nodes": each node's config has its own `telegram`
/// block with its own bot; the standby's token reaches only the standby (as
/// the armed standby's credentials file), and no ocfo key reaches OpenClaw.
#[test]
fn telegram_on_both_nodes_renders_one_bot_per_node() {
    let tmp = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(fixture("valid.yaml")).unwrap();
    let source = base
        .replacen(
            "  discord:\n    token: {env: T_DISCORD_TOKEN}",
            "  rescue-bot:\n    type: telegram\n    label: \"@rescue_bot\"\n    botToken: {env: T_DISCORD_TOKEN}",
            1,
        )
        .replacen("    channels: [discord]", "    channels: [rescue-bot]", 1);
    let (tree, _, _) = render_shown(tmp.path(), &source);
    let config = |node: &str| -> serde_json::Value {
        serde_json::from_slice(&tree[&format!("{node}/home/openclaw/.openclaw/openclaw.json")].0)
            .unwrap()
    };
    let (p, s) = (config("primary"), config("standby"));
    // Two bots, two accounts: each node's is named after it, so OpenClaw
    // never takes one bot's message ids for the other's.
    assert_eq!(
        p["channels"]["telegram"]["accounts"]["primary"]["botToken"],
        "${OCFO_TELEGRAM_BOTTOKEN}"
    );
    assert_eq!(p["channels"]["telegram"]["defaultAccount"], "primary");
    assert_eq!(p["channels"]["telegram"]["dmPolicy"], "allowlist", "{p}");
    // A warm standby's Telegram token arrives in a file at promotion; no
    // SecretRef file is needed then.
    let account = &s["channels"]["telegram"]["accounts"]["standby"];
    assert!(account.get("botToken").is_none(), "{s}");
    assert_eq!(
        account["tokenFile"], "/run/ocfo-standby/telegram.token",
        "{s}"
    );
    assert_eq!(s["channels"]["telegram"]["defaultAccount"], "standby");
    assert!(s.get("secrets").is_none(), "{s}");
    assert_eq!(s["channels"].as_object().unwrap().len(), 1);
    // Telegram is built in: no plugin to trust on either node.
    assert!(
        p.get("plugins").is_none() && s.get("plugins").is_none(),
        "{s}"
    );
    for c in [&p, &s] {
        let t = &c["channels"]["telegram"];
        assert!(t.get("type").is_none() && t.get("label").is_none(), "{t}");
    }
    let (primary_token, standby_token) = (SECRETS[3].1, SECRETS[4].1);
    for (rel, (bytes, mode)) in &tree {
        let content = String::from_utf8_lossy(bytes);
        if content.contains(primary_token) {
            assert_eq!(rel, "primary/etc/openclaw/gateway.env");
            assert_eq!(*mode, 0o600);
        }
        if content.contains(standby_token) {
            assert_eq!(rel, "standby/etc/ocfo/standby-channels.json");
            assert_eq!(*mode, 0o600);
        }
    }
    let monitor = String::from_utf8_lossy(&tree["standby/etc/ocfo/monitor.yaml"].0).into_owned();
    assert!(
        monitor.contains("primary_channels:\n  - telegram"),
        "{monitor}"
    );
    assert!(monitor.contains("channels:\n  - telegram"), "{monitor}");
    assert!(
        monitor.contains("token_files:\n  - channel: telegram\n    key: OCFO_RESCUE_BOT_BOTTOKEN\n    path: /run/ocfo-standby/telegram.token"),
        "{monitor}"
    );
    // Removed at every start of the gateway.
    let unit =
        String::from_utf8_lossy(&tree["standby/etc/systemd/system/openclaw-gateway.service"].0)
            .into_owned();
    assert!(
        unit.contains("ExecStartPre=+/bin/rm -f /run/ocfo-standby/channels.json /run/ocfo-standby/telegram.token\n"),
        "{unit}"
    );
}

/// A chain of three (`nodes.standby2`): each node gets its own bot's token
/// and nobody else's, and only standby2's monitor waits for the standby.
#[test]
fn a_chain_of_three_gives_each_node_only_its_own_bot() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let last_token = "7100000003:tg-standby2-s3cr3t-0008";
    let token_file = tmp.path().join("last-bot.token");
    std::fs::write(&token_file, format!("{last_token}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let base = std::fs::read_to_string(fixture("valid.yaml")).unwrap();
    let source = base
        .replacen(
            "    channels: [discord]\n",
            "    channels: [discord]\n  standby2:\n    host: 192.0.2.30\n    private_address: 100.100.1.30\n    channels: [last-bot]\n",
            1,
        )
        .replacen(
            "  discord:\n",
            &format!(
                "  last-bot:\n    type: telegram\n    botToken: {{file: {}}}\n    dmPolicy: allowlist\n    allowFrom: [\"tg:123456789\"]\n  discord:\n",
                token_file.display()
            ),
            1,
        );
    let (tree, stdout, stderr) = render_shown(tmp.path(), &source);
    assert!(!stdout.contains(last_token) && !stderr.contains(last_token));
    assert!(
        tree.keys().any(|k| k.starts_with("standby2/")),
        "no standby2 tree: {:?}",
        tree.keys().collect::<Vec<_>>()
    );
    let owner = |value: &str| -> Vec<String> {
        tree.iter()
            .filter(|(_, (bytes, _))| String::from_utf8_lossy(bytes).contains(value))
            .map(|(rel, (_, mode))| {
                assert_eq!(*mode, 0o600, "{rel} holds a token");
                rel.clone()
            })
            .collect()
    };
    assert_eq!(owner(SECRETS[3].1), ["primary/etc/openclaw/gateway.env"]);
    assert!(owner(SECRETS[4].1)
        .iter()
        .all(|r| r.starts_with("standby/")));
    assert_eq!(
        owner(last_token),
        ["standby2/etc/ocfo/standby-channels.json"]
    );
    let monitor = |node: &str| {
        String::from_utf8_lossy(&tree[&format!("{node}/etc/ocfo/monitor.yaml")].0).into_owned()
    };
    assert!(
        monitor("standby2").contains("standbys_before:\n  - http://100.100.1.20:"),
        "{}",
        monitor("standby2")
    );
    assert!(!monitor("standby").contains("standbys_before"));
    // Stepping down for the standby, standby2 sends its users to the
    // standby's bot (the fixture's Discord one).
    assert!(
        monitor("standby2").contains("failback_to_standby: \"✅ testpair: the first standby is back since {since}, the main assistant not yet. Please continue on Discord;"),
        "{}",
        monitor("standby2")
    );
    assert!(!monitor("standby").contains("failback_to_standby"));
    assert!(monitor("standby2").contains("channels:\n  - telegram"));
    let config: serde_json::Value =
        serde_json::from_slice(&tree["standby2/home/openclaw/.openclaw/openclaw.json"].0).unwrap();
    assert_eq!(config["channels"]["telegram"]["defaultAccount"], "standby2");
    assert_eq!(config["channels"].as_object().unwrap().len(), 1, "{config}");
}
