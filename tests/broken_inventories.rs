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
    Case {
        line_offset: 1,
        ..case(
            "channel type that is not an id",
            "  discord:\n    token:",
            "  discord:\n    type: Discord Bot\n    token:",
            "is not an OpenClaw channel id",
        )
    },
    Case {
        line_offset: 2,
        ..case(
            "second bot of one platform sharing the token",
            "  discord:\n    token: {env: T_DISCORD_TOKEN}",
            "  discord:\n    type: telegram\n    token: {env: T_TELEGRAM_TOKEN}",
            "use the same credential",
        )
    },
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
    Case {
        line_offset: 1,
        ..case(
            "monitor binary source not a URL",
            "  hold_down: 60s",
            "  hold_down: 60s\n  binary_source: /srv/releases",
            "must be an https://, http:// or file:/// URL",
        )
    },
    Case {
        line_offset: 1,
        ..case(
            "monitor binary checksum not a sha256",
            "  hold_down: 60s",
            "  hold_down: 60s\n  binary_sha256: {x86_64: abc123}",
            "monitor.binary_sha256.x86_64: `abc123` is not a SHA-256",
        )
    },
    Case {
        line_offset: 1,
        ..case(
            "monitor binary checksum for an unknown arch",
            "  hold_down: 60s",
            "  hold_down: 60s\n  binary_sha256: {x86-64: abc}",
            "unknown key `x86-64`",
        )
    },
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
        "node version ocfo does not pin, no node.sha256",
        "  version: 24.21.0",
        "  version: 24.22.0",
        "set node.sha256",
    ),
    Case {
        line_offset: 1,
        ..case(
            "node.sha256 that is not a SHA-256",
            "  version: 24.21.0\n",
            "  version: 24.21.0\n  sha256: {x64: abc}\n",
            "node.sha256.x64: `abc` is not a SHA-256",
        )
    },
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
    // A chain's third node: on its own machine, with its own channel.
    Case {
        line_offset: 2,
        ..case(
            "standby2 on the standby's machine",
            "    channels: [discord]\n",
            "    channels: [discord]\n  standby2:\n    host: 192.0.2.20\n    private_address: 100.100.1.30\n    channels: [telegram2]\n",
            "the standby2's host is the standby's (`192.0.2.20`): each node of the chain needs its own machine",
        )
    },
    Case {
        line_offset: 4,
        ..case(
            "standby2 sharing the primary's channel",
            "    channels: [discord]\n",
            "    channels: [discord]\n  standby2:\n    host: 192.0.2.30\n    private_address: 100.100.1.30\n    channels: [telegram]\n",
            "channel `telegram` is owned by primary and standby2",
        )
    },
    Case {
        line_offset: 2,
        ..case(
            "standby2 without a channel",
            "    channels: [discord]\n",
            "    channels: [discord]\n  standby2:\n    host: 192.0.2.30\n    private_address: 100.100.1.30\n",
            "the standby2 owns no channel",
        )
    },
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
    // An https:// workspace takes a token, not an SSH key: the error is on
    // the key, two lines below the repository.
    Case {
        line_offset: 2,
        ..case(
            "https workspace with a deploy key",
            "  repo: git@example.invalid:you/ws.git\n",
            "  repo: https://example.invalid/you/ws.git\n",
            "workspace.deploy_key: an SSH deploy key is not used by an https:// repository",
        )
    },
    // The password part holds `s3cr3t`: run_case fails if it is printed.
    case(
        "credentials in the workspace URL",
        "  repo: git@example.invalid:you/ws.git\n",
        "  repo: https://bot:ghp-s3cr3t-in-url@example.invalid/you/ws.git\n",
        "credentials in the repository URL",
    ),
    case(
        "token for an SSH workspace",
        "  push_interval: 5m\n",
        "  token: {env: T_GIT_TOKEN}\n  push_interval: 5m\n",
        "`token` is for https:// repositories",
    ),
    case(
        "token over plain http",
        "  repo: git@example.invalid:you/ws.git\n  branch: main\n  deploy_key: {command: \"printf 'DEPLOYKEY-s3cr3t-material'\"}\n",
        "  repo: http://example.invalid/you/ws.git\n  branch: main\n  token: {env: T_GIT_TOKEN}\n",
        "plain http:// would send `workspace.token` unencrypted",
    ),
    Case {
        line_offset: 3,
        ..case(
            "token as a literal",
            "  repo: git@example.invalid:you/ws.git\n  branch: main\n  deploy_key: {command: \"printf 'DEPLOYKEY-s3cr3t-material'\"}\n",
            "  repo: https://example.invalid/you/ws.git\n  branch: main\n  token_username: bot\n  token: ghp-s3cr3t-literal\n",
            "workspace.token",
        )
    },
    Case {
        line_offset: 2,
        ..case(
            "bad token user name",
            "  repo: git@example.invalid:you/ws.git\n  branch: main\n  deploy_key: {command: \"printf 'DEPLOYKEY-s3cr3t-material'\"}\n",
            "  repo: https://example.invalid/you/ws.git\n  branch: main\n  token_username: \"a:b\"\n  token: {env: T_GIT_TOKEN}\n",
            "is not a user name git can send",
        )
    },
    case(
        "shell in a branch",
        "  branch: main",
        "  branch: \"main$(id);'\"",
        "is not a valid git branch name",
    ),
    case(
        "NUL in a branch",
        "  branch: main",
        "  branch: \"ma\\0in\"",
        "is not a valid git branch name",
    ),
    case(
        "branch like an option",
        "  branch: main",
        "  branch: --upload-pack=x",
        "is not a valid git branch name",
    ),
    case(
        "shell in the OpenClaw version",
        "  version: 2026.9.6",
        "  version: \"2026.9.6; curl x|sh\"",
        "openclaw.version: `2026.9.6; curl x|sh` is not a version",
    ),
    case(
        "OpenClaw version ocfo ships no lock for, no openclaw.lockfile",
        "  version: 2026.9.6",
        "  version: 2026.9.7",
        "openclaw.version: ocfo ships npm locks for OpenClaw 2026.9.5, 2026.9.6 only: for 2026.9.7, set openclaw.lockfile",
    ),
    Case {
        line_offset: 1,
        ..case(
            "openclaw.lockfile that does not exist",
            "  version: 2026.9.6",
            "  version: 2026.9.6\n  lockfile: no-such-lock.json",
            "openclaw.lockfile: cannot read `no-such-lock.json`",
        )
    },
    Case {
        line_offset: 1,
        ..case(
            "the build user as the gateway user",
            "  version: 2026.9.6",
            "  version: 2026.9.6\n  user: ocfo-build",
            "openclaw.user: `ocfo-build` is the user ocfo builds OpenClaw's npm tree as",
        )
    },
    case(
        "shell in the ssh user",
        "  user: root\n",
        "  user: \"root$(id)\"\n",
        "ssh.user: `root$(id)` is not a valid user name",
    ),
    case(
        "password in the repo URL",
        "  repo: git@example.invalid:you/ws.git",
        "  repo: https://me:hunter2@example.invalid/you/ws.git",
        "credentials in the repository URL",
    ),
    case(
        "repo like an option",
        "  repo: git@example.invalid:you/ws.git",
        "  repo: --upload-pack=touch /tmp/x",
        "must not start with `-`",
    ),
    case(
        "absurd duration",
        "  push_interval: 5m",
        "  push_interval: 99999999999h",
        "`99999999999h` is too long: at most 24h",
    ),
    case(
        "missing CA file",
        "  extra_ca_certificates: []",
        "  extra_ca_certificates: [/nonexistent/ocfo/ca.crt]",
        "extra_ca_certificates[0]: cannot read `/nonexistent/ocfo/ca.crt`",
    ),
    case(
        "CA files with the same name",
        "  extra_ca_certificates: []",
        "  extra_ca_certificates: [/etc/hostname, /etc/hostname]",
        "installs as `hostname.crt`, like extra_ca_certificates[0]",
    ),
    case(
        "escape sequence in a key",
        "channels:\n",
        "\"ch\\e[2Janels\":\n",
        "unknown key `ch\\u{1b}[2Janels`",
    ),
    case(
        "NUL in an env value",
        "    ANTHROPIC_API_KEY: {env: T_ANTHROPIC_KEY}",
        "    ANTHROPIC_API_KEY: \"sk-\\0-x\"",
        "openclaw.env.ANTHROPIC_API_KEY: contains a NUL byte",
    ),
    case(
        "NUL in a literal channel token",
        "    botToken: {env: T_TELEGRAM_TOKEN}",
        "    botToken: \"tg-\\0-x\"",
        "channels.telegram.botToken: contains a NUL byte",
    ),
    case(
        "escape sequence in a host",
        "    host: 192.0.2.20",
        "    host: \"192.0.2.20\\e[2J\"",
        "is not a host name or address",
    ),
    // Issue 16: a host is exactly a host name, IPv4 or IPv6.
    case(
        "zero-width space in a host",
        "    host: 192.0.2.20",
        "    host: \"vps1\\u200B.example.com\"",
        "is not a host name or address",
    ),
    case(
        "right-to-left override in a host",
        "    host: 192.0.2.20",
        "    host: \"vps1\\u202Emoc.example\"",
        "is not a host name or address",
    ),
    case(
        "mistyped IPv4 host",
        "    host: 192.0.2.20",
        "    host: 192.0.2.256",
        "is not a host name or address",
    ),
    case(
        "user and port in a host",
        "    host: 192.0.2.20",
        "    host: root@vps1:22",
        "is not a host name or address",
    ),
    Case {
        line_offset: 1,
        ..case(
            "PATH in openclaw.env",
            "    ANTHROPIC_API_KEY: {env: T_ANTHROPIC_KEY}",
            "    ANTHROPIC_API_KEY: {env: T_ANTHROPIC_KEY}\n    PATH: /home/openclaw/.local/bin:/usr/bin:/bin",
            "openclaw.env.PATH: `PATH` changes where programs are found",
        )
    },
    Case {
        line_offset: 1,
        ..case(
            "a proxy in openclaw.env",
            "    ANTHROPIC_API_KEY: {env: T_ANTHROPIC_KEY}",
            "    ANTHROPIC_API_KEY: {env: T_ANTHROPIC_KEY}\n    https_proxy: http://proxy.invalid:3128",
            "list it in `openclaw.env_allow`",
        )
    },
    Case {
        line_offset: 1,
        ..case(
            "LD_PRELOAD in openclaw.env",
            "    ANTHROPIC_API_KEY: {env: T_ANTHROPIC_KEY}",
            "    ANTHROPIC_API_KEY: {env: T_ANTHROPIC_KEY}\n    LD_PRELOAD: /home/openclaw/x.so",
            "openclaw.env.LD_PRELOAD: `LD_PRELOAD` cannot be set here",
        )
    },
    case(
        "a refused name in env_allow",
        "  config: {}",
        "  env_allow: [PATH, LD_PRELOAD]\n  config: {}",
        "openclaw.env_allow[1]: `LD_PRELOAD` cannot be allowed",
    ),
    Case {
        line_offset: 1,
        ..case(
            "bidirectional override in an env value",
            "    ANTHROPIC_API_KEY: {env: T_ANTHROPIC_KEY}",
            "    ANTHROPIC_API_KEY: {env: T_ANTHROPIC_KEY}\n    GREETING: \"hi \\u202Eereht\"",
            "openclaw.env.GREETING: contains a control, bidirectional or invisible",
        )
    },
    case(
        "invisible character in a channel label",
        "    botToken: {env: T_TELEGRAM_TOKEN}",
        "    label: \"@my_bot\\u2066 on Telegram\"\n    botToken: {env: T_TELEGRAM_TOKEN}",
        "a label is one line",
    ),
    Case {
        line_offset: 1,
        ..case(
            "space in the Node.js mirror",
            "  version: 24.21.0\n",
            "  version: 24.21.0\n  mirror: \"https://x.invalid/dist; curl y|sh\"\n",
            "must be an https://, http:// or file:/// URL without spaces",
        )
    },
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
        !stderr.contains('\u{1b}') && !stdout.contains('\u{1b}'),
        "{name}: raw escape sequence in output:\n{stderr:?}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "{name}: password echoed:\n{stderr}"
    );
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

/// "Telegram on both nodes": two named entries of one platform, one per
/// node, validate; two of one platform on the same node do not.
/// standby2 knows the standby is there by its running gateway: a cold
/// standby (gateway stopped while watching) cannot be in a chain.
#[test]
fn a_chain_needs_warm_standbys() {
    let base = std::fs::read_to_string(fixture("valid.yaml")).unwrap();
    let source = base
        .replacen(
            "    channels: [discord]\n",
            "    channels: [discord]\n  standby2:\n    host: 192.0.2.30\n    private_address: 100.100.1.30\n    channels: [telegram2]\n",
            1,
        )
        .replacen("monitor:\n", "monitor:\n  standby: cold\n", 1);
    let (_, stderr, code) = run_case("cold chain", &source);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr
            .contains("inventory.yaml:17:5: nodes.standby2: a chain of three needs warm standbys"),
        "{stderr}"
    );
}

#[test]
fn one_platform_on_both_nodes_needs_two_bots_one_per_node() {
    let base = std::fs::read_to_string(fixture("valid.yaml")).unwrap();
    let two_bots = base
        .replace(
            "  discord:\n    token: {env: T_DISCORD_TOKEN}",
            "  rescue-bot:\n    type: telegram\n    label: \"@rescue_bot\"\n    botToken: {env: T_DISCORD_TOKEN}",
        )
        .replace("    channels: [discord]", "    channels: [rescue-bot]");
    let (stdout, stderr, code) = run_case("telegram on both nodes", &two_bots);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let same_node = two_bots
        .replace("    channels: [rescue-bot]", "    channels: []")
        .replace(
            "    channels: [telegram]",
            "    channels: [telegram, rescue-bot]",
        );
    let (_, stderr, code) = run_case("two telegram bots on the primary", &same_node);
    assert_eq!(code, 1, "{stderr}");
    let line = same_node
        .lines()
        .position(|l| l.contains("[telegram, rescue-bot]"))
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!(
            "error: inventory.yaml:{line}:26: nodes.primary.channels[1]: channels `telegram` and `rescue-bot` are both telegram channels on the primary"
        )),
        "{stderr}"
    );
    let bad_label = two_bots.replace("\"@rescue_bot\"", "\"line one\\nline two\"");
    let (_, stderr, code) = run_case("empty label", &bad_label);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("channels.rescue-bot.label: a label is one line"),
        "{stderr}"
    );
}

/// The risky names of `openclaw.env` (docs/inventory.md) validate once the
/// operator lists them in `openclaw.env_allow`.
#[test]
fn risky_env_names_validate_with_an_opt_in() {
    let base = std::fs::read_to_string(fixture("valid.yaml")).unwrap();
    let source = base.replacen(
        "    ANTHROPIC_API_KEY: {env: T_ANTHROPIC_KEY}",
        "    ANTHROPIC_API_KEY: {env: T_ANTHROPIC_KEY}\n    PATH: /home/openclaw/.local/bin:/opt/openclaw/bin:/opt/node/bin:/usr/bin:/bin\n    HTTPS_PROXY: http://proxy.invalid:3128",
        1,
    );
    let source = source.replacen(
        "  config: {}",
        "  env_allow: [PATH, HTTPS_PROXY]\n  config: {}",
        1,
    );
    let (stdout, stderr, code) = run_case("opt-in", &source);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // A PATH without OpenClaw's and Node's folders cannot start the gateway
    // (`openclaw` is `#!/usr/bin/env node`): said at the value, with the fix.
    let source = source.replacen(
        "/home/openclaw/.local/bin:/opt/openclaw/bin:/opt/node/bin:/usr/bin:/bin",
        "/home/openclaw/.local/bin:/usr/bin:/bin",
        1,
    );
    let (_, stderr, code) = run_case("PATH without node", &source);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("openclaw.env.PATH")
            && stderr.contains("`/opt/openclaw/bin` and `/opt/node/bin`"),
        "{stderr}"
    );
    // An opt-in for a name that needs none is a mistake worth saying.
    let source = base.replacen(
        "  config: {}",
        "  env_allow: [ANTHROPIC_API_KEY]\n  config: {}",
        1,
    );
    let (_, stderr, code) = run_case("needless opt-in", &source);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("needs no opt-in"), "{stderr}");
}

/// `openclaw.lockfile` (issue 16, finding 3): a lock next to the
/// inventory installs another version; one with a package that is not
/// pinned by its sha512 is refused at the key, naming the package.
#[test]
fn an_operators_lockfile_pins_another_version_or_is_refused() {
    let base = std::fs::read_to_string(fixture("valid.yaml")).unwrap();
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("locks/openclaw-2026.9.6.json"),
    )
    .unwrap();
    let mut lock: serde_json::Value = serde_json::from_str(&shipped).unwrap();
    lock["packages"][""]["dependencies"]["openclaw"] = "2026.9.7".into();
    lock["packages"]["node_modules/openclaw"]["version"] = "2026.9.7".into();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.yaml");
    let validate = |lock: &serde_json::Value| {
        std::fs::write(
            dir.path().join("openclaw.lock.json"),
            serde_json::to_string_pretty(lock).unwrap(),
        )
        .unwrap();
        std::fs::write(
            &path,
            base.replacen(
                "  version: 2026.9.6",
                "  version: 2026.9.7\n  lockfile: openclaw.lock.json",
                1,
            ),
        )
        .unwrap();
        let out = ocfo().arg("validate").arg(&path).output().unwrap();
        let (stdout, stderr) = text(&out);
        (out.status.code(), format!("{stdout}{stderr}"))
    };
    let (code, out) = validate(&lock);
    assert_eq!(code, Some(0), "{out}");
    lock["packages"]["node_modules/yaml"]
        .as_object_mut()
        .unwrap()
        .remove("integrity");
    let (code, out) = validate(&lock);
    assert_eq!(code, Some(1), "{out}");
    let line = base
        .lines()
        .position(|l| l == "  version: 2026.9.6")
        .unwrap()
        + 2;
    assert!(
        out.contains(&format!(
            "inventory.yaml:{line}:13: openclaw.lockfile: `openclaw.lock.json` is not a lock of openclaw 2026.9.7: package `node_modules/yaml` has no single sha512 `integrity`"
        )),
        "{out}"
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

const SSH_WORKSPACE: &str = "  repo: git@example.invalid:you/ws.git\n  branch: main\n  deploy_key: {command: \"printf 'DEPLOYKEY-s3cr3t-material'\"}\n";

#[test]
fn https_workspace_with_a_token_is_valid() {
    let base = std::fs::read_to_string(fixture("valid.yaml")).unwrap();
    let source = base.replacen(
        SSH_WORKSPACE,
        "  repo: https://example.invalid/you/ws.git\n  branch: main\n  token: {env: T_GIT_TOKEN}\n",
        1,
    );
    assert_ne!(source, base);
    let (stdout, stderr, code) = run_case("https token", &source);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("warning:"), "{stderr}");
    assert!(stdout.contains("valid"), "{stdout}");
}

#[test]
fn https_workspace_without_a_token_is_a_warning() {
    let base = std::fs::read_to_string(fixture("valid.yaml")).unwrap();
    let source = base.replacen(
        SSH_WORKSPACE,
        "  repo: https://example.invalid/you/public-ws.git\n  branch: main\n",
        1,
    );
    let (stdout, stderr, code) = run_case("https public", &source);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("warning:")
            && stderr.contains("workspace.repo")
            && stderr.contains("cannot push"),
        "{stderr}"
    );
    assert!(stdout.contains("valid (1 warning)"), "{stdout}");
}

/// Runs `ocfo validate` on `path` and fails the test if it takes longer than
/// `limit`: these inputs used to hang, abort or take minutes.
fn validate_within(path: &std::path::Path, limit: std::time::Duration) -> (String, i32) {
    let start = std::time::Instant::now();
    let mut child = ocfo()
        .arg("validate")
        .arg(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "ocfo validate {} took longer than {limit:?}",
                path.display()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_no_secrets("validate", &stderr);
    (stderr, out.status.code().unwrap_or(-1))
}

/// Far above the fraction of a second these take, even on a loaded CI
/// machine; far below "hangs forever".
const QUICK: std::time::Duration = std::time::Duration::from_secs(30);

fn with_webhook(reference: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let base = std::fs::read_to_string(fixture("valid.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.yaml");
    std::fs::write(&path, base.replacen("{env: T_WEBHOOK}", reference, 1)).unwrap();
    (dir, path)
}

fn mkfifo(path: &std::path::Path) {
    let st = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn billion_laughs_is_refused_quickly() {
    let mut src = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..12 {
        let alias = format!("*a{}", i - 1);
        let items = [alias.as_str(); 9].join(", ");
        src.push_str(&format!("a{i}: &a{i} [{items}]\n"));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.yaml");
    std::fs::write(&path, src).unwrap();
    let (stderr, code) = validate_within(&path, QUICK);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("expands to more than"), "{stderr}");
}

#[test]
fn deep_nesting_is_a_located_error() {
    let base = std::fs::read_to_string(fixture("valid.yaml")).unwrap();
    let deep = format!(
        "  config: {{x: {}1{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.yaml");
    std::fs::write(&path, base.replacen("  config: {}", &deep, 1)).unwrap();
    let (stderr, code) = validate_within(&path, QUICK);
    assert_eq!(code, 1, "{stderr}");
    // The parser's own limit or ours, whichever trips first; either is located.
    assert!(
        stderr.contains("inventory.yaml:34:")
            && (stderr.contains("nested more than 64") || stderr.contains("recursion limit")),
        "{stderr}"
    );
}

#[test]
fn fifty_thousand_keys_are_quick_and_do_not_flood() {
    let mut src = std::fs::read_to_string(fixture("valid.yaml")).unwrap();
    for i in 0..50_000 {
        src.push_str(&format!("junk{i}: 1\n"));
    }
    src.push_str("junk7: 2\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.yaml");
    std::fs::write(&path, src).unwrap();
    let (stderr, code) = validate_within(&path, QUICK);
    assert_eq!(code, 1);
    assert!(
        stderr.lines().count() < 300,
        "{} lines",
        stderr.lines().count()
    );
    assert!(stderr.contains("more problem(s) not listed"), "{stderr}");
}

#[test]
fn an_inventory_that_is_a_fifo_or_device_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("inventory.yaml");
    mkfifo(&fifo);
    for path in [fifo.as_path(), std::path::Path::new("/dev/zero")] {
        let (stderr, code) = validate_within(path, QUICK);
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains("not a regular file"), "{stderr}");
    }
}

#[test]
fn a_huge_inventory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.yaml");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(5 * 1024 * 1024).unwrap();
    let (stderr, code) = validate_within(&path, QUICK);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("larger than the limit of 4 MiB"),
        "{stderr}"
    );
}

#[test]
fn secret_files_that_block_or_never_end_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("webhook");
    mkfifo(&fifo);
    let huge = dir.path().join("huge");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(2 * 1024 * 1024)
        .unwrap();
    for (file, want) in [
        (fifo.display().to_string(), "not a regular file"),
        ("/dev/zero".to_string(), "not a regular file"),
        (huge.display().to_string(), "larger than the limit of 1 MiB"),
    ] {
        let (_keep, path) = with_webhook(&format!("{{file: {file}}}"));
        let (stderr, code) = validate_within(&path, QUICK);
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stderr.contains("monitor.notify.webhook") && stderr.contains(want),
            "{want}: {stderr}"
        );
    }
}

#[test]
fn a_secret_command_with_endless_output_is_stopped() {
    let (_keep, path) = with_webhook("{command: \"yes tok\"}");
    let (stderr, code) = validate_within(&path, QUICK);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("monitor.notify.webhook") && stderr.contains("printed more than 1024 KiB"),
        "{stderr}"
    );
}

#[test]
fn a_non_utf8_env_secret_says_so() {
    use std::os::unix::ffi::OsStrExt;
    let out = ocfo()
        .env(
            "T_WEBHOOK",
            std::ffi::OsStr::from_bytes(b"https://hooks.example.invalid/\xff"),
        )
        .arg("validate")
        .arg(fixture("valid.yaml"))
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("environment variable `T_WEBHOOK` is not valid UTF-8"),
        "{stderr}"
    );
}

#[test]
fn a_short_secret_is_a_warning() {
    let out = ocfo()
        .env("T_WEBHOOK", "ab1")
        .arg("validate")
        .arg(fixture("valid.yaml"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning:")
            && stderr.contains("monitor.notify.webhook")
            && stderr.contains("shorter than 8 characters"),
        "{stderr}"
    );
    assert!(!stdout.contains("ab1") && !stderr.contains("ab1"));
}

#[test]
fn a_hanging_secret_command_is_stopped_with_its_children() {
    // Runs in the inventory's folder: the background child's pid lands there.
    let (dir, path) = with_webhook("{command: \"sleep 600 & echo $! > child.pid; sleep 600\"}");
    let start = std::time::Instant::now();
    let (stderr, code) = validate_within(&path, std::time::Duration::from_secs(90));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("monitor.notify.webhook") && stderr.contains("no result within 30s"),
        "{stderr}"
    );
    assert!(start.elapsed() >= std::time::Duration::from_secs(30));
    let pid = std::fs::read_to_string(dir.path().join("child.pid")).unwrap();
    // Gone, or a zombie waiting for init to reap it.
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap_or_default();
    let alive = status
        .lines()
        .find(|l| l.starts_with("State:"))
        .is_some_and(|l| !l.contains("Z (zombie)"));
    assert!(!alive, "the command's background child {pid} survived");
}

#[test]
fn monitor_binary_keys_are_valid_and_a_pin_without_source_warns() {
    let base = std::fs::read_to_string(fixture("valid.yaml")).unwrap();
    let sha = "0123456789abcdef".repeat(4);
    let pinned = format!("  hold_down: 60s\n  binary_sha256: {{aarch64: {sha}}}\n");
    let source = base.replacen("  hold_down: 60s\n", &pinned, 1);
    assert_ne!(source, base);
    let (stdout, stderr, code) = run_case("pin only", &source);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("monitor.binary_sha256") && stderr.contains("no effect"),
        "{stderr}"
    );
    assert!(stdout.contains("valid (1 warning)"), "{stdout}");

    let both = format!("{pinned}  binary_source: https://releases.example/ocfo/\n");
    let source = base.replacen("  hold_down: 60s\n", &both, 1);
    let (stdout, stderr, code) = run_case("source and pin", &source);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("warning:"), "{stderr}");
    assert!(stdout.contains("valid"), "{stdout}");
}
