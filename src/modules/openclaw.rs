//! OpenClaw itself: the pinned npm package under its own prefix, the node's
//! plugin channels, and `openclaw config validate` of the installed config.

use serde::Deserialize;

use super::{facts, fail, q, ModuleError};
use crate::engine::{Change, Host, Step, TaskContext};
use crate::inventory::channel_is_plugin;
use crate::render::layout::{GATEWAY_ENV_FILE, NODE_HOME, OPENCLAW_PREFIX, SWITCH_DIR};

pub type Args = super::NoArgs;

pub type PluginArgs = super::NoArgs;

pub type ValidateArgs = super::NoArgs;

/// The environment npm and openclaw need: Node on PATH (plugins shell out to
/// npm) and the system CA bundle (hosts behind a TLS-inspecting proxy).
fn node_env() -> String {
    format!(
        "PATH={OPENCLAW_PREFIX}/bin:{NODE_HOME}/bin:/usr/local/bin:/usr/bin:/bin NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt OPENCLAW_INCLUDE_ROOTS={SWITCH_DIR}"
    )
}

pub async fn plan<H: Host>(
    _: &Args,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<Vec<Change>, ModuleError> {
    let want = &ctx.inv.openclaw.version;
    let pkg = format!("{OPENCLAW_PREFIX}/lib/node_modules/openclaw/package.json");
    let out = facts(
        host,
        &format!("if [ -f {pkg} ]; then {NODE_HOME}/bin/node -p \"require('{pkg}').version\" 2>/dev/null || echo unreadable; else echo none; fi"),
    )
    .await?;
    let have = out.trim();
    if have == want {
        return Ok(Vec::new());
    }
    let script = format!(
        "set -e\nmkdir -p {OPENCLAW_PREFIX}\n{env} {NODE_HOME}/bin/npm install -g --prefix {OPENCLAW_PREFIX} --no-fund --no-audit --no-update-notifier --loglevel=error {spec}\n\
         test -x {OPENCLAW_PREFIX}/bin/openclaw",
        env = node_env(),
        spec = q(&format!("openclaw@{want}")),
    );
    Ok(vec![Change::new(
        format!("install openclaw@{want} (now: {have})"),
        vec![Step::run(script)],
    )])
}

/// Where OpenClaw 2026.9 keeps an npm-installed plugin: a project folder per
/// plugin next to the config (`~/.openclaw/npm/projects/openclaw-<id>-<hash>`).
fn plugin_package_glob(home: &str, id: &str) -> String {
    format!(
        "{home}/.openclaw/npm/projects/openclaw-{id}-*/node_modules/@openclaw/{id}/package.json"
    )
}

/// Plugin channels, pinned to the OpenClaw version. OpenClaw's own doctor may
/// install a configured plugin by itself when any command starts, after which
/// `plugins install` says "already exists": so the install runs with
/// `--force` and success is judged by the installed package, not the exit code.
pub async fn plan_plugins<H: Host>(
    _: &PluginArgs,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<Vec<Change>, ModuleError> {
    let plugins: Vec<&str> = ctx
        .inv
        .node(ctx.role)
        .channels
        .iter()
        .map(String::as_str)
        .filter(|c| channel_is_plugin(c))
        .collect();
    if plugins.is_empty() {
        return Ok(Vec::new());
    }
    let home = &ctx.layout.home;
    let version = &ctx.inv.openclaw.version;
    let mut script = String::new();
    for p in &plugins {
        script.push_str(&format!(
            "v=$(cat {glob} 2>/dev/null | sed -n 's/^ *\"version\": *\"\\([^\"]*\\)\".*/\\1/p' | head -n1); echo {p} \"${{v:-none}}\"\n",
            glob = plugin_package_glob(&q(home), p),
            p = q(p)
        ));
    }
    let out = facts(host, &script).await?;
    let user = q(&ctx.layout.user);
    let mut changes = Vec::new();
    for line in out.lines() {
        let Some((id, have)) = line.split_once(' ') else {
            continue;
        };
        if have == version {
            continue;
        }
        let spec = format!("@openclaw/{id}@{version}");
        // `plugins install` rewrites the config it is given; ours is put back
        // so the file stays exactly as rendered (and a re-deploy changes nothing).
        let script = format!(
            "cd {home}\nif [ -f {config} ]; then cp -p {config} {config}.ocfo-keep; fi\n\
             log=$(runuser -u {user} -- env HOME={home} {env} OPENCLAW_CONFIG_PATH={config} {OPENCLAW_PREFIX}/bin/openclaw plugins install --force {spec} 2>&1)\n\
             if [ -f {config}.ocfo-keep ]; then mv -f {config}.ocfo-keep {config}; fi\n\
             if ! grep -qs '\"version\": *\"{version}\"' {glob}; then printf '%s\\n' \"$log\" | tail -n 20 >&2; echo 'plugin {spec} is not installed after `openclaw plugins install`' >&2; exit 1; fi",
            home = q(home),
            env = node_env(),
            config = q(&ctx.layout.config_path),
            spec = q(&spec),
            glob = plugin_package_glob(&q(home), id),
        );
        changes.push(Change::new(
            format!("install plugin {spec} (now: {have})"),
            vec![Step::run(script)],
        ));
    }
    Ok(changes)
}

#[derive(Debug, Deserialize)]
struct Validation {
    valid: bool,
    #[serde(default)]
    warnings: Vec<serde_json::Value>,
    #[serde(default)]
    errors: Vec<serde_json::Value>,
}

/// Remembers what was last validated: the CLI takes seconds to start, and a
/// config, environment and OpenClaw that did not change need no new verdict.
const VALIDATED_STAMP: &str = "/var/lib/ocfo/openclaw-validated";

/// `openclaw config validate --json` as the gateway user, with the node's
/// environment file loaded so `${VAR}` references resolve; skipped when its
/// inputs are the ones that last passed.
pub async fn validate<H: Host>(
    _: &ValidateArgs,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<(), ModuleError> {
    let inputs = format!(
        "cat {config} {GATEWAY_ENV_FILE} {OPENCLAW_PREFIX}/lib/node_modules/openclaw/package.json {plugins} 2>/dev/null | sha256sum | cut -d' ' -f1",
        config = q(&ctx.layout.config_path),
        plugins = plugin_package_glob(&q(&ctx.layout.home), "*"),
    );
    let out = facts(
        host,
        &format!("{inputs}; cat {VALIDATED_STAMP} 2>/dev/null || echo none"),
    )
    .await?;
    let mut lines = out.lines();
    let (now, last) = (
        lines.next().unwrap_or("").trim(),
        lines.next().unwrap_or("").trim(),
    );
    if !now.is_empty() && now == last {
        return Ok(());
    }
    let script = format!(
        // A scratch state folder: the CLI's doctor takes the state's SQLite
        // lock, and a gateway starting at that moment exits (78) for good.
        // Installed plugins are linked in so they are validated too.
        "set -a; . {GATEWAY_ENV_FILE}; set +a\ncd {home}\nscratch=$(runuser -u {user} -- mktemp -d)\ntrap 'rm -rf \"$scratch\"' EXIT\n\
         if [ -d {home}/.openclaw/npm ]; then ln -s {home}/.openclaw/npm \"$scratch/npm\"; fi\n\
         runuser -u {user} -- env HOME={home} {env} OPENCLAW_STATE_DIR=\"$scratch\" OPENCLAW_CONFIG_PATH={config} {OPENCLAW_PREFIX}/bin/openclaw config validate --json",
        home = q(&ctx.layout.home),
        user = q(&ctx.layout.user),
        env = node_env(),
        config = q(&ctx.layout.config_path),
    );
    let out = host.run(&script, None).await?;
    // The JSON document is the last `{` line block of stdout; log lines may precede it.
    let json_start = out.stdout.find('{');
    let parsed: Option<Validation> =
        json_start.and_then(|i| serde_json::from_str(&out.stdout[i..]).ok());
    match parsed {
        Some(v) if v.valid => {
            for w in v.warnings {
                tracing::warn!(
                    "{}: openclaw config: {}",
                    host.name(),
                    ctx.redactor.redact(&w.to_string())
                );
            }
            host.check(&format!(
                "mkdir -p $(dirname {VALIDATED_STAMP}) && {inputs} > {VALIDATED_STAMP}"
            ))
            .await?;
            Ok(())
        }
        Some(v) => Err(fail(format!(
            "openclaw config validate says the config is invalid: {}",
            ctx.redactor.redact(
                &serde_json::Value::Array(v.errors.into_iter().chain(v.warnings).collect())
                    .to_string()
            )
        ))),
        None => Err(fail(format!(
            "openclaw config validate failed ({}): {}",
            out.status.map_or("killed".into(), |c| format!("exit {c}")),
            ctx.redactor.redact(out.stderr.trim())
        ))),
    }
}
