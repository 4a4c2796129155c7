//! Every module planned with hostile values straight into the module layer
//! (as if the inventory's validation had been bypassed): no value may reach
//! a script as code, only as a quoted argument.

use serde_json::json;

use super::testkit::{ok, Fixture, ScriptedHost};
use super::{plan, verify, ModuleCall};
use crate::engine::{CmdOutput, Step};

const MARK: &str = "pwned";

fn hostile(i: usize) -> String {
    [
        "$(touch /tmp/pwned)",
        "'; touch /tmp/pwned;'",
        "`touch /tmp/pwned`",
        "x\ntouch /tmp/pwned\n",
        "x\"; touch /tmp/pwned; \"",
    ][i % 5]
        .to_string()
}

/// The script with its single-quoted spans removed: what `sh` would read as
/// code rather than as literal text.
fn unquoted(script: &str) -> String {
    let mut out = String::new();
    let mut chars = script.chars();
    let mut in_double = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '"' => {
                in_double = !in_double;
                out.push(c);
            }
            '\'' if !in_double => {
                for n in chars.by_ref() {
                    if n == '\'' {
                        break;
                    }
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[test]
fn the_detector_catches_a_value_spliced_into_a_script() {
    // The plugin script as it was: the version inside single quotes.
    let version = hostile(1);
    let old = format!("if ! grep -qs '\"version\": *\"{version}\"' /x; then exit 1; fi");
    assert!(unquoted(&old).contains(MARK));
    let old = format!("git push -q origin HEAD:refs/heads/{}", hostile(0));
    assert!(unquoted(&old).contains(MARK));
    let new = crate::shell::Script::new("git push -q origin \"$1\"")
        .arg(hostile(1))
        .render();
    assert!(!unquoted(&new).contains(MARK), "{new}");
}

/// `sh -n`: every script ocfo sends is valid POSIX shell (dash).
fn assert_parses(script: &str) {
    let out = std::process::Command::new("sh")
        .args(["-n", "-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn answer(script: &str) -> CmdOutput {
    if script.contains("sshd_config.d/") && script.contains("authorized_keys") {
        return ok("missing\n-\nkeys\ninclude\n4096\ned25519\n0\n");
    }
    if script.contains(".git\" ]") {
        return ok("none\n");
    }
    if script.contains("prune=$1") {
        // files: one `missing` per file argument.
        let n = script.matches("ocfo_workspace_key").count().max(1);
        return ok(&"missing\n".repeat(n));
    }
    if script.contains("cache_age") {
        return ok("hostile absent\ncache_age 999999\n");
    }
    if script.contains("PLUGIN") || script.contains("openclaw-\"$id\"") {
        return ok(&format!("{} none\n", hostile(2).replace('\n', " ")));
    }
    ok("")
}

#[tokio::test]
async fn hostile_values_never_become_script_text() {
    let mut fx = Fixture::load(|inv| {
        inv.name = format!("lab{}", hostile(0));
        inv.monitor.binary_source = Some(format!("https://x/{}", hostile(2)));
        inv.monitor
            .binary_sha256
            .insert("x86_64".into(), "a".repeat(64));
        inv.openclaw.version = hostile(1);
        inv.workspace.repo = hostile(2);
        inv.workspace.branch = hostile(3);
        inv.node.mirror = format!("https://x/{}", hostile(4));
        inv.primary.ssh.user = hostile(0);
        // A channel whose OpenClaw id is hostile: it names a plugin to install.
        let mut channel = inv.channels[0].clone();
        channel.name = "hostile".into();
        channel.kind = hostile(1);
        inv.channels.insert("hostile".into(), channel);
        inv.primary.channels.push("hostile".into());
    });
    // The standby fetches its ocfo, from a hostile source.
    fx.opts.monitor_fetch = true;
    let ctx = fx.ctx();
    let calls: Vec<(&str, serde_json::Value)> = vec![
        ("apt", json!({"packages": [hostile(0), hostile(3)]})),
        (
            "user",
            json!({"name": hostile(1), "home": hostile(2), "shell": hostile(3)}),
        ),
        (
            "directory",
            json!({"path": format!("/srv/{}", hostile(0)), "mode": "0700", "owner": hostile(1), "group": hostile(4)}),
        ),
        ("files", json!({"paths": [fx.layout.deploy_key.clone()]})),
        ("sshd", json!({})),
        ("ufw", json!({})),
        (
            "systemd",
            json!({"unit": hostile(2), "enabled": true, "state": "started"}),
        ),
        ("systemd", json!({"unit": hostile(3), "action": "restart"})),
        ("node", json!({})),
        ("openclaw", json!({})),
        ("openclaw_plugins", json!({})),
        ("tailscale", json!({})),
        ("workspace", json!({})),
        ("monitor_binary", json!({})),
    ];
    let host = ScriptedHost::new(answer);
    let mut steps = 0;
    for (module, args) in &calls {
        let call: ModuleCall = serde_json::from_value(json!({ *module: args })).unwrap();
        let changes = plan(&call, &host, &ctx)
            .await
            .unwrap_or_else(|e| panic!("{module}: {e}"));
        assert!(!changes.is_empty(), "{module} planned nothing to check");
        for step in changes.iter().flat_map(|c| &c.steps) {
            if let Step::Run { script, .. } = step {
                steps += 1;
                assert!(!script.text().contains(MARK), "{module}: {}", script.text());
                let sent = script.render();
                assert!(!unquoted(&sent).contains(MARK), "{module}:\n{sent}");
                assert_parses(&sent);
            }
        }
    }
    let validate: ModuleCall = serde_json::from_value(json!({"openclaw_validate": {}})).unwrap();
    let _ = verify(&validate, &host, &ctx).await;
    let sent = host.sent.lock().unwrap();
    assert!(sent.len() > calls.len());
    for (script, _) in sent.iter() {
        assert!(!unquoted(script).contains(MARK), "facts script:\n{script}");
        assert_parses(script);
    }
    assert!(steps > calls.len(), "{steps}");
}

/// The type system stops `Step::Run` and `facts()` from taking a string; a
/// module could still hand `host.run`/`host.check` a `format!`. None may.
#[test]
fn modules_send_only_rendered_scripts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/modules");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.ends_with("hostile.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            for call in ["host.run(", "host.check(", ".check(&"] {
                if let Some(at) = line.find(call) {
                    let rest = &line[at + call.len()..];
                    assert!(
                        rest.starts_with("&script.render()") || line.trim_start().starts_with("//"),
                        "{}:{}: a module sends a script that is not a rendered Script: {line}",
                        path.display(),
                        i + 1
                    );
                }
            }
        }
    }
}
