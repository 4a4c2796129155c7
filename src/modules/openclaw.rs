//! OpenClaw itself: the pinned npm package under its own prefix, the node's
//! plugin channels, and `openclaw config validate` of the installed config.

use serde::Deserialize;

use super::{facts, fail, ModuleError, Script};
use crate::engine::{Change, Host, Step, TaskContext};
use crate::inventory::channel_is_plugin;
use crate::layout::{GATEWAY_ENV_FILE, NODE_HOME, OPENCLAW_PREFIX};

pub type Args = super::NoArgs;

pub type PluginArgs = super::NoArgs;

pub type ValidateArgs = super::NoArgs;

pub async fn plan<H: Host>(
    _: &Args,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<Vec<Change>, ModuleError> {
    let want = &ctx.inv.openclaw.version;
    let out = facts(
        host,
        &Script::new(INSTALLED_VERSION).args([OPENCLAW_PREFIX, NODE_HOME]),
    )
    .await?;
    let have = out.trim();
    if have == want {
        return Ok(Vec::new());
    }
    let script =
        Script::new(INSTALL).args([OPENCLAW_PREFIX, NODE_HOME, &format!("openclaw@{want}")]);
    Ok(vec![Change::new(
        format!("install openclaw@{want} (now: {have})"),
        vec![Step::run(script)],
    )])
}

/// $1 the npm prefix, $2 Node's home. The version is read from the
/// package's top-level `"version"` line when the file is laid out the usual
/// way (a top-level key indented by exactly two spaces, as npm's own files
/// are); any other layout is parsed by Node, which takes tens of ms to start
/// on every deploy.
const INSTALLED_VERSION: &str = r#"pkg="$1/lib/node_modules/openclaw/package.json"
if [ -f "$pkg" ]; then
  v=$(sed -n '/^  "version": "[0-9A-Za-z.+-]*",\{0,1\}$/{s/^  "version": "//;s/",\{0,1\}$//;p;q;}' "$pkg" 2>/dev/null)
  if [ -n "$v" ]; then echo "$v"; else "$2/bin/node" -p 'require(process.argv[1]).version' "$pkg" 2>/dev/null || echo unreadable; fi
else echo none; fi"#;

/// $1 the npm prefix, $2 Node's home, $3 `openclaw@<version>`. Node on PATH
/// (plugins shell out to npm) and the system CA bundle (hosts behind a
/// TLS-inspecting proxy).
const INSTALL: &str = r#"set -e
mkdir -p -- "$1"
PATH="$1/bin:$2/bin:/usr/local/bin:/usr/bin:/bin" NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
  "$2/bin/npm" install -g --prefix "$1" --no-fund --no-audit --no-update-notifier --loglevel=error "$3"
test -x "$1/bin/openclaw""#;

/// Plugin channels, pinned to the OpenClaw version. OpenClaw's own doctor may
/// install a configured plugin by itself when any command starts, after which
/// `plugins install` says "already exists": so the install runs with
/// `--force` and success is judged by the installed package, not the exit code.
pub async fn plan_plugins<H: Host>(
    _: &PluginArgs,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<Vec<Change>, ModuleError> {
    let ids = ctx.inv.channel_ids(ctx.role);
    let plugins: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|c| channel_is_plugin(c))
        .collect();
    if plugins.is_empty() {
        return Ok(Vec::new());
    }
    let home = &ctx.layout.home;
    let user = &ctx.layout.user;
    let version = &ctx.inv.openclaw.version;
    let out = facts(
        host,
        &Script::new(PLUGIN_VERSIONS)
            .args([user, home])
            .args(plugins.iter().copied()),
    )
    .await?;
    let mut changes = Vec::new();
    for line in out.lines() {
        let Some((id, have)) = line.split_once(' ') else {
            continue;
        };
        if have == version {
            continue;
        }
        let spec = format!("@openclaw/{id}@{version}");
        let script = Script::new(PLUGIN_INSTALL).args([
            user.as_str(),
            home,
            OPENCLAW_PREFIX,
            NODE_HOME,
            &ctx.layout.config_path,
            &spec,
            version,
            id,
        ]);
        changes.push(Change::new(
            format!("install plugin {spec} (now: {have})"),
            vec![Step::run(script)],
        ));
    }
    Ok(changes)
}

/// Everything under the gateway user's home is read and written as that
/// user, never by root: the agent it runs may have planted links there.
/// Where OpenClaw 2026.9 keeps an npm-installed plugin: a project folder per
/// plugin next to the config (`~/.openclaw/npm/projects/openclaw-<id>-<hash>`).
/// $1 the user, $2 its home, then the plugin ids; one line `<id> <version>`
/// (or `none`) each.
const PLUGIN_VERSIONS: &str = r#"cd /
user=$1; shift
exec runuser -u "$user" -- sh -c '
home=$1; shift
for id in "$@"; do
  v=$(cat "$home"/.openclaw/npm/projects/openclaw-"$id"-*/node_modules/@openclaw/"$id"/package.json 2>/dev/null | sed -n "s/^ *\"version\": *\"\([^\"]*\)\".*/\1/p" | head -n1)
  echo "$id ${v:-none}"
done' sh "$@""#;

/// `plugins install` rewrites the config it is given; ours is put back so
/// the file stays exactly as rendered (and a re-deploy changes nothing).
/// npm (which OpenClaw runs for the install) reads no `~/.npmrc` and git
/// no `~/.gitconfig`: both are the agent's to write (a registry of its
/// choosing, `script-shell`, `core.hooksPath`, ...).
/// $1 user, $2 home, $3 npm prefix, $4 Node's home, $5 config, $6 spec,
/// $7 version, $8 plugin id.
pub(crate) const PLUGIN_INSTALL: &str = r#"cd /
user=$1; shift
exec runuser -u "$user" -- sh -c '
home=$1 prefix=$2 node=$3 config=$4 spec=$5 version=$6 id=$7
cd "$home" || exit 1
rm -f -- "$config.ocfo-keep"
if [ -f "$config" ]; then cp -p -- "$config" "$config.ocfo-keep"; fi
log=$(env HOME="$home" PATH="$prefix/bin:$node/bin:/usr/local/bin:/usr/bin:/bin" NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
  NPM_CONFIG_USERCONFIG=/dev/null GIT_CONFIG_GLOBAL=/dev/null OPENCLAW_INCLUDE_ROOTS=/etc/openclaw/switches \
  OPENCLAW_CONFIG_PATH="$config" "$prefix/bin/openclaw" plugins install --force "$spec" 2>&1)
if [ -f "$config.ocfo-keep" ]; then mv -f -- "$config.ocfo-keep" "$config"; fi
if ! grep -qs "\"version\": *\"$version\"" "$home"/.openclaw/npm/projects/openclaw-"$id"-*/node_modules/@openclaw/"$id"/package.json; then
  printf "%s\n" "$log" | tail -n 20 >&2
  echo "plugin $spec is not installed after openclaw plugins install" >&2
  exit 1
fi' sh "$@""#;

#[derive(Debug, Deserialize)]
struct Validation {
    valid: bool,
    #[serde(default)]
    warnings: Vec<serde_json::Value>,
    #[serde(default)]
    errors: Vec<serde_json::Value>,
    /// 2026.9.6 names the failing keys here (`{path, message}`).
    #[serde(default)]
    issues: Vec<serde_json::Value>,
}

impl Validation {
    /// `path: message` per problem (at most 10), or the raw entries.
    fn problems(self) -> String {
        let all: Vec<serde_json::Value> = self
            .issues
            .into_iter()
            .chain(self.errors)
            .chain(self.warnings)
            .collect();
        let mut lines: Vec<String> = all
            .iter()
            .take(10)
            .map(|p| match (p["path"].as_str(), p["message"].as_str()) {
                (Some(path), Some(m)) => format!("{path}: {m}"),
                (None, Some(m)) => m.to_string(),
                _ => p.to_string(),
            })
            .collect();
        if all.len() > 10 {
            lines.push(format!("and {} more", all.len() - 10));
        }
        if lines.is_empty() {
            "no reason given".into()
        } else {
            lines.join("; ")
        }
    }
}

// VALIDATED_STAMP remembers what was last validated: the CLI takes seconds
// to start, and a config, environment and OpenClaw that did not change need
// no new verdict.
use crate::layout::VALIDATED_STAMP;

/// `openclaw config validate --json` as the gateway user, with the node's
/// environment file loaded so `${VAR}` references resolve; skipped when its
/// inputs are the ones that last passed.
pub async fn validate<H: Host>(
    _: &ValidateArgs,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<(), ModuleError> {
    let inputs = |mode: &str| validate_inputs(ctx, mode);
    let out = facts(host, &inputs("compare")).await?;
    let mut lines = out.lines();
    let (now, last) = (
        lines.next().unwrap_or("").trim(),
        lines.next().unwrap_or("").trim(),
    );
    if !now.is_empty() && now == last {
        return Ok(());
    }
    let script = Script::new(VALIDATE).args([
        GATEWAY_ENV_FILE,
        &ctx.layout.user,
        &ctx.layout.home,
        OPENCLAW_PREFIX,
        NODE_HOME,
        &ctx.layout.config_path,
    ]);
    let out = host.run(&script.render(), None).await?;
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
                    crate::terminal::escape(&ctx.redactor.redact(&w.to_string()))
                );
            }
            facts(host, &inputs("record")).await?;
            Ok(())
        }
        Some(v) => Err(fail(format!(
            "openclaw config validate says the config is invalid: {}",
            ctx.redactor.redact(&v.problems())
        ))),
        None => Err(fail(format!(
            "openclaw config validate failed ({}): {}",
            out.status.map_or("killed".into(), |c| format!("exit {c}")),
            ctx.redactor.redact(out.stderr.trim())
        ))),
    }
}

/// [`VALIDATED_INPUTS`] in `mode` for this node.
pub fn validate_inputs(ctx: &TaskContext<'_>, mode: &str) -> Script {
    Script::new(VALIDATED_INPUTS).args([
        mode,
        GATEWAY_ENV_FILE,
        OPENCLAW_PREFIX,
        &ctx.layout.user,
        &ctx.layout.config_path,
        &ctx.layout.home,
        VALIDATED_STAMP,
    ])
}

/// A checksum of what validation depends on: the env file and the package
/// (root's), the config and the plugins (read as the gateway user). With
/// `compare`, prints it and the last validated one; with `record`, stores it.
/// $1 mode, $2 env file, $3 npm prefix, $4 user, $5 config, $6 home, $7 stamp.
const VALIDATED_INPUTS: &str = r#"sum=$( {
  cat -- "$2" "$3/lib/node_modules/openclaw/package.json"
  cd / && runuser -u "$4" -- sh -c 'cat -- "$1" "$2"/.openclaw/npm/projects/openclaw-*-*/node_modules/@openclaw/*/package.json' sh "$5" "$6"
} 2>/dev/null | sha256sum | cut -d' ' -f1 )
case $1 in
  compare) echo "$sum"; cat -- "$7" 2>/dev/null || echo none ;;
  record) mkdir -p -- "$(dirname -- "$7")" && echo "$sum" > "$7" ;;
esac"#;

/// `openclaw config validate` as the gateway user against a scratch state
/// folder: the CLI's doctor takes the state's SQLite lock, and a gateway
/// starting at that moment exits (78) for good. Installed plugins are linked
/// in (by the user: root never writes in the user's folders) so they are
/// validated too. $1 env file, $2 user, $3 home, $4 npm prefix, $5 Node's
/// home, $6 config.
///
/// The environment file is the gateway user's environment (`openclaw.env`
/// fills it, `PATH` and proxies included when allowed): root never sources
/// it. Root calls every tool by its path, and only the user's shell reads
/// the file, from its stdin (it is root's, 0600), in an environment holding
/// nothing of root's (`env -i`): what the file sets then acts with the
/// user's rights, as in the gateway itself.
pub(crate) const VALIDATE: &str = r#"cd /
user=$2 home=$3
as_user() { /sbin/runuser -u "$user" -- /usr/bin/env -i "$@"; }
scratch=$(as_user /bin/mktemp -d)
trap 'as_user /bin/rm -rf -- "$scratch"' EXIT
as_user /bin/sh -c 'if [ -d "$1" ]; then /bin/ln -s -- "$1" "$2/npm"; fi' sh "$home/.openclaw/npm" "$scratch"
/bin/cat -- "$1" | as_user HOME="$home" PATH="$4/bin:$5/bin:/usr/local/bin:/usr/bin:/bin" NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
  OPENCLAW_INCLUDE_ROOTS=/etc/openclaw/switches \
  OPENCLAW_STATE_DIR="$scratch" OPENCLAW_CONFIG_PATH="$6" /bin/sh -c '
env_file=$(/bin/cat)
set -a
eval "$env_file"
set +a
cd "$HOME" && exec "$1/bin/openclaw" config validate --json </dev/null' sh "$4""#;

#[cfg(test)]
mod tests {
    /// [`super::PLUGIN_INSTALL`] run by the local `sh`, `runuser` and the
    /// `openclaw` CLI stood in for by scripts (the latter records its
    /// environment and "installs" the plugin), with a `~/.npmrc` and a
    /// `~/.gitconfig` planted in HOME: npm and git under the install are
    /// told to read neither.
    #[test]
    fn plugin_installs_read_no_npmrc_or_gitconfig_of_the_gateway_user() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let exe = |path: &std::path::Path, text: &str| {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        exe(
            &d.join("fakebin/runuser"),
            "#!/bin/sh\nshift 3\nexec \"$@\"\n",
        );
        exe(
            &d.join("prefix/bin/openclaw"),
            "#!/bin/sh\nenv > \"$HOME/env.txt\"\np=\"$HOME/.openclaw/npm/projects/openclaw-telegram-1/node_modules/@openclaw/telegram\"\nmkdir -p \"$p\"\necho '{\"version\": \"2026.9.6\"}' > \"$p/package.json\"\n",
        );
        let home = d.join("home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(home.join(".npmrc"), "registry=http://agent.invalid/\n").unwrap();
        let script = crate::shell::Script::new(super::PLUGIN_INSTALL).args([
            "me".to_string(),
            home.display().to_string(),
            d.join("prefix").display().to_string(),
            d.join("node").display().to_string(),
            home.join("openclaw.json").display().to_string(),
            "@openclaw/telegram@2026.9.6".into(),
            "2026.9.6".into(),
            "telegram".into(),
        ]);
        let out = std::process::Command::new("sh")
            .args(["-c", &script.render()])
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", d.join("fakebin").display()),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(home.join("env.txt")).unwrap();
        assert!(
            env.lines().any(|l| l == "NPM_CONFIG_USERCONFIG=/dev/null"),
            "{env}"
        );
        assert!(
            env.lines().any(|l| l == "GIT_CONFIG_GLOBAL=/dev/null"),
            "{env}"
        );
    }

    /// The installed version as [`super::INSTALLED_VERSION`] reads it, with
    /// a `node` that answers `from-node` (or none at all).
    fn installed(package_json: Option<&str>, with_node: bool) -> String {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("prefix");
        let node_home = dir.path().join("node");
        if let Some(text) = package_json {
            let pkg = prefix.join("lib/node_modules/openclaw");
            std::fs::create_dir_all(&pkg).unwrap();
            std::fs::write(pkg.join("package.json"), text).unwrap();
        }
        if with_node {
            std::fs::create_dir_all(node_home.join("bin")).unwrap();
            let node = node_home.join("bin/node");
            std::fs::write(&node, "#!/bin/sh\necho from-node\n").unwrap();
            std::process::Command::new("chmod")
                .arg("+x")
                .arg(&node)
                .status()
                .unwrap();
        }
        let script = crate::shell::Script::new(super::INSTALLED_VERSION)
            .args([prefix.to_str().unwrap(), node_home.to_str().unwrap()])
            .render();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    #[test]
    fn the_version_line_is_read_without_node_and_anything_unusual_goes_to_node() {
        let npm_layout = "{\n  \"name\": \"openclaw\",\n  \"version\": \"2026.9.6\",\n  \"openclaw\": {\n    \"version\": \"9\"\n  }\n}\n";
        assert_eq!(installed(Some(npm_layout), false), "2026.9.6");
        // Only the top-level key counts, wherever it is.
        let nested_first =
            "{\n  \"engines\": {\n    \"version\": \"1\"\n  },\n  \"version\": \"2026.10.1\"\n}\n";
        assert_eq!(installed(Some(nested_first), false), "2026.10.1");
        assert_eq!(
            installed(Some("{\"name\":\"openclaw\",\"version\":\"1.0.0\"}"), true),
            "from-node"
        );
        assert_eq!(
            installed(Some("{\"version\":\"1.0.0\"}"), false),
            "unreadable"
        );
        assert_eq!(installed(None, true), "none");
    }
}
