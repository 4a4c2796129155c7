//! A corpus of broken inventories: each must give exit 1, a message that names
//! the place (file:line:column and key path), no secret value and no panic.

mod common;

use common::*;

struct Case {
    name: &'static str,
    from: &'static str,
    to: &'static str,
    /// Expected in the error line (after `FILE:LINE:COL: `).
    message: &'static str,
    /// Which line the error is on, relative to the first line of `to`.
    line_offset: isize,
}

const fn case(
    name: &'static str,
    from: &'static str,
    to: &'static str,
    message: &'static str,
) -> Case {
    Case {
        name,
        from,
        to,
        message,
        line_offset: 0,
    }
}

const CASES: &[Case] = &[
    // The parser notices an unclosed list where the next key begins.
    Case {
        line_offset: 1,
        ..case(
            "syntax error",
            "  port: 22\n",
            "  port: [22\n",
            "invalid YAML",
        )
    },
    case(
        "tab indentation",
        "  user: root\n",
        "  user: root\n\tport2: 1\n",
        "invalid YAML",
    ),
    case(
        "wrong type: list for string",
        "  branch: main",
        "  branch: [main]",
        "workspace.branch: expected a string, found a list",
    ),
    case(
        "wrong type: string for port",
        "  port: 18789",
        "  port: eighteen",
        "openclaw.port: expected an integer",
    ),
    case(
        "wrong type: mapping for nodes",
        "nodes:\n",
        "nodes: 3\nnodes_:\n",
        "nodes: expected a mapping",
    ),
    Case {
        line_offset: 1,
        ..case(
            "duplicate key",
            "  fall: 3\n",
            "  fall: 3\n  fall: 4\n",
            "duplicate key `fall`",
        )
    },
    case(
        "unknown top-level key",
        "channels:\n",
        "chanels:\n",
        "unknown key `chanels`",
    ),
    case(
        "unknown nested key",
        "  rise: 5\n",
        "  rize: 5\n",
        "did you mean `rise`?",
    ),
    case(
        "channel on both nodes",
        "    channels: [discord]",
        "    channels: [discord, telegram]",
        "owned by both nodes",
    ),
    case(
        "unknown channel",
        "    channels: [telegram]",
        "    channels: [telegram, slack]",
        "channel `slack` is not defined",
    ),
    case(
        "standby without channel",
        "    channels: [discord]",
        "    channels: []",
        "the standby owns no channel",
    ),
    case(
        "shared token",
        "    token: {env: T_DISCORD_TOKEN}",
        "    token: {env: T_TELEGRAM_TOKEN}",
        "use the same credential",
    ),
    case(
        "missing env var",
        "{env: T_WEBHOOK}",
        "{env: T_SURELY_UNSET_VAR}",
        "environment variable `T_SURELY_UNSET_VAR` is not set",
    ),
    case(
        "unreadable secret file",
        "{env: T_WEBHOOK}",
        "{file: /nonexistent/ocfo/webhook}",
        "cannot read secret file",
    ),
    case(
        "failing secret command",
        "{env: T_WEBHOOK}",
        "{command: \"exit 7\"}",
        "exit status 7",
    ),
    case(
        "literal required secret",
        "{env: T_GATEWAY_TOKEN}",
        "\"gw-s3cr3t-token-0002\"",
        "must be a secret reference",
    ),
    case(
        "duration without unit",
        "  interval: 2s",
        "  interval: 2",
        "has no unit",
    ),
    case(
        "bad duration unit",
        "  hold_down: 60s",
        "  hold_down: 60 parsecs",
        "unknown unit",
    ),
    case(
        "timeout not below interval",
        "  timeout: 1500ms",
        "  timeout: 3s",
        "must be shorter than `monitor.interval`",
    ),
    case("fall zero", "  fall: 3", "  fall: 0", "out of range"),
    case(
        "bad ip address",
        "100.100.1.20\n",
        "100.100.1.256\n",
        "is not an IP address",
    ),
    case("bad cidr", "100.64.0.0/10", "100.64.0.0/40", "prefix `/40`"),
    case(
        "port out of range",
        "  port: 22\n",
        "  port: 70000\n",
        "70000 is out of range",
    ),
    case(
        "port zero",
        "  port: 18789",
        "  port: 0",
        "0 is out of range",
    ),
    case(
        "old node",
        "  version: 24.21.0",
        "  version: 22.12.0",
        "too old or unsupported",
    ),
    case(
        "bad node version",
        "  version: 24.21.0",
        "  version: lts",
        "not a version",
    ),
    case(
        "same hosts",
        "    host: 192.0.2.20",
        "    host: 192.0.2.10",
        "a failover pair needs two machines",
    ),
    case(
        "bad bind",
        "  bind: tailnet",
        "  bind: everywhere",
        "`everywhere` is not one of",
    ),
    Case {
        line_offset: 1,
        ..case(
            "bad sandbox",
            "  bind: tailnet",
            "  bind: tailnet\n  sandbox: none",
            "`none` is not one of strict, relaxed",
        )
    },
    case(
        "bad name",
        "name: testpair",
        "name: Test Pair",
        "must be lower-case",
    ),
    case(
        "unknown node",
        "  standby:\n",
        "  standbye:\n",
        "did you mean `standby`?",
    ),
    case(
        "missing required key",
        "  repo: git@example.invalid:you/ws.git\n",
        "  rep0: x\n",
        "unknown key `rep0`",
    ),
    case(
        "channels in openclaw.config",
        "  config: {}",
        "  config: {channels: {slack: {}}}",
        "go under the top-level `channels`",
    ),
];

fn run_case(name: &str, source: &str) -> (String, String, i32) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.yaml");
    std::fs::write(&path, source).unwrap();
    let out = ocfo().arg("validate").arg(&path).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(
        !stderr.contains("panicked"),
        "{name}: ocfo panicked:\n{stderr}"
    );
    assert_no_secrets(name, &stdout);
    assert_no_secrets(name, &stderr);
    (
        stdout,
        stderr.replace(&path.display().to_string(), "inventory.yaml"),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn the_base_fixture_is_valid() {
    let out = ocfo()
        .arg("validate")
        .arg(fixture("valid.yaml"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("valid"));
}

#[test]
fn every_broken_inventory_is_located_and_rejected() {
    let base = std::fs::read_to_string(fixture("valid.yaml")).unwrap();
    let mut failures = Vec::new();
    for c in CASES {
        assert!(
            base.contains(c.from),
            "{}: fixture has no `{}`",
            c.name,
            c.from
        );
        let source = base.replacen(c.from, c.to, 1);
        let at = base.find(c.from).unwrap();
        let first_line = base[..at].matches('\n').count() + 1 + c.to.starts_with('\n') as usize;
        let line = (first_line as isize + c.line_offset) as usize;
        let (_, stderr, code) = run_case(c.name, &source);
        let located = stderr.lines().any(|l| {
            l.starts_with(&format!("error: inventory.yaml:{line}:")) && l.contains(c.message)
        }) || stderr
            .lines()
            .any(|l| l.starts_with("  hint:") && l.contains(c.message))
            && stderr.contains(&format!("inventory.yaml:{line}:"));
        if code != 1 || !located {
            failures.push(format!("{} (want exit 1 and `inventory.yaml:{line}:` with `{}`), got exit {code}:\n{stderr}", c.name, c.message));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn empty_file() {
    let (_, stderr, code) = run_case("empty", "");
    assert_eq!(code, 1);
    assert!(stderr.contains("the inventory is empty"), "{stderr}");
}

#[test]
fn binary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.yaml");
    std::fs::write(&path, [0x7f, b'E', b'L', b'F', 0, 0xff, 0xfe, 3, 0, 0x80]).unwrap();
    let out = ocfo().arg("validate").arg(&path).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("binary file"), "{stderr}");
}

#[test]
fn nul_bytes_in_text() {
    let (_, stderr, code) = run_case("nul", "name: a\0b\n");
    assert_eq!(code, 1, "{stderr}");
}

#[test]
fn missing_file() {
    let out = ocfo()
        .args(["validate", "/nonexistent/inventory.yaml"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("cannot read the inventory"), "{stderr}");
}

#[test]
fn all_problems_are_listed_at_once() {
    let base = std::fs::read_to_string(fixture("valid.yaml")).unwrap();
    let source = base
        .replacen("  fall: 3", "  fall: 0", 1)
        .replacen("  port: 18789", "  port: 0", 1)
        .replacen("channels:\n", "chanels:\n", 1);
    let (_, stderr, code) = run_case("many", &source);
    assert_eq!(code, 1);
    for want in ["monitor.fall", "openclaw.port", "unknown key `chanels`"] {
        assert!(stderr.contains(want), "missing `{want}` in:\n{stderr}");
    }
}

#[test]
fn json_output_names_places_without_values() {
    let base = std::fs::read_to_string(fixture("valid.yaml")).unwrap();
    let source = base.replacen("{env: T_DISCORD_TOKEN}", "{env: T_TELEGRAM_TOKEN}", 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.yaml");
    std::fs::write(&path, source).unwrap();
    let out = ocfo()
        .args(["validate", "--json"])
        .arg(&path)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_no_secrets("validate --json", &stdout);
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["valid"], false);
    let diag = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["message"].as_str().unwrap().contains("same credential"))
        .expect("the shared-token error");
    assert_eq!(diag["path"], "channels.discord.token");
    assert!(diag["location"]["line"].as_u64().unwrap() > 0);
}

#[test]
fn no_secrets_lints_without_credentials() {
    let out = ocfo()
        .env_remove("T_GATEWAY_TOKEN")
        .args(["validate", "--no-secrets"])
        .arg(fixture("valid.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let out = ocfo()
        .env_remove("T_GATEWAY_TOKEN")
        .arg("validate")
        .arg(fixture("valid.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("`T_GATEWAY_TOKEN` is not set"));
}

#[test]
fn standby_pairing_policy_is_a_warning() {
    let base = std::fs::read_to_string(fixture("valid.yaml")).unwrap();
    let source = base.replacen(
        "    token: {env: T_DISCORD_TOKEN}\n    dmPolicy: allowlist\n",
        "    token: {env: T_DISCORD_TOKEN}\n",
        1,
    );
    let (stdout, stderr, code) = run_case("pairing", &source);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("warning:") && stderr.contains("pairing"),
        "{stderr}"
    );
    assert!(stdout.contains("valid (1 warning)"), "{stdout}");
}
