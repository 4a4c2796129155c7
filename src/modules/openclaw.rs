//! OpenClaw itself: the pinned npm package under its own prefix, the node's
//! plugin channels, and `openclaw config validate` of the installed config.

use serde::Deserialize;

use super::{facts, fail, ModuleError, Script};
use crate::engine::{Change, Host, Step, TaskContext};
use crate::inventory::channel_is_plugin;
use crate::layout::{GATEWAY_ENV_FILE, NODE_HOME, OPENCLAW_PREFIX};

super::no_args!(Args);

super::no_args!(PluginArgs);

super::no_args!(ValidateArgs);

use crate::layout::OPENCLAW_BUILD_USER as BUILD_USER;

pub async fn plan<H: Host>(
    _: &Args,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<Vec<Change>, ModuleError> {
    let want = &ctx.inv.openclaw.version;
    let lock = &ctx.inv.openclaw.lock;
    let out = facts(host, &Script::new(INSTALLED_TREE).arg(OPENCLAW_PREFIX)).await?;
    let have = Tree::parse(&out);
    if have.lock.as_deref() == Some(lock.sha256.as_str()) {
        return Ok(Vec::new());
    }
    let script = Script::new(INSTALL)
        .args([
            lock.sha256.as_str(),
            want,
            OPENCLAW_PREFIX,
            NODE_HOME,
            BUILD_USER,
            &lock.vouched_by,
            &ctx.layout.user,
            &ctx.layout.home,
            crate::layout::GATEWAY_UNIT,
        ])
        .args(plugin_ids(ctx));
    Ok(vec![Change::new(
        format!(
            "{}install openclaw@{want} from its lock (sha256 {}, {} packages, {}) as {BUILD_USER}, no dependency scripts (now: {})",
            version_change(have.version.as_deref(), want),
            &lock.sha256[..12],
            lock.packages,
            lock.vouched_by,
            have.describe()
        ),
        vec![Step::Run {
            script,
            stdin: Some(lock.text.as_bytes().to_vec()),
        }],
    )])
}

/// `upgrade OpenClaw A → B: ` (or downgrade, or nothing for a first install
/// or the same version's tree): what a reader of `--check` needs first.
fn version_change(have: Option<&str>, want: &str) -> String {
    let Some(have) = have.filter(|h| !h.is_empty() && *h != want) else {
        return String::new();
    };
    // Numeric parts compare as numbers (2026.10.1 > 2026.9.6); a
    // pre-release suffix (`-beta.1`) sorts before its release.
    let key = |v: &str| -> (Vec<u64>, bool) {
        let (release, pre) = match v.split_once('-') {
            Some((r, _)) => (r, true),
            None => (v, false),
        };
        (
            release.split('.').map(|p| p.parse().unwrap_or(0)).collect(),
            !pre,
        )
    };
    let word = if key(want) > key(have) {
        "upgrade"
    } else {
        "downgrade (roll back)"
    };
    format!("{word} OpenClaw {have} → {want}: ")
}

/// What [`INSTALLED_TREE`] found.
#[derive(Debug, Default, PartialEq)]
pub struct Tree {
    /// The SHA-256 of the lock the tree was installed from.
    pub lock: Option<String>,
    pub version: Option<String>,
    /// An install of `npm install -g` (before ocfo locked the tree).
    pub unlocked: bool,
}

impl Tree {
    pub fn parse(out: &str) -> Tree {
        let mut t = Tree::default();
        for line in out.lines() {
            match line.trim().split_once(' ') {
                Some(("lock", sum))
                    if sum.len() == 64 && sum.bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    t.lock = Some(sum.to_string())
                }
                Some(("openclaw", v)) => t.version = Some(v.to_string()),
                Some(("unlocked", v)) if v != "none" => {
                    t.unlocked = true;
                    t.version = Some(v.to_string());
                }
                _ => {}
            }
        }
        t
    }

    fn describe(&self) -> String {
        let v = crate::terminal::escape(self.version.as_deref().unwrap_or("?")).into_owned();
        match (&self.lock, self.unlocked) {
            (Some(sum), _) => format!("openclaw@{v}, lock sha256 {}", &sum[..12]),
            (None, true) => format!("openclaw@{v}, unlocked (npm install -g)"),
            (None, false) => "none".into(),
        }
    }
}

/// $1 the prefix. One `cat` of a small file when the tree is ocfo's; the
/// version of an older `npm install -g` install otherwise (for the change's
/// summary only).
const INSTALLED_TREE: &str = r#"cat -- "$1/.ocfo-tree" 2>/dev/null || {
  v=$(sed -n '/^  "version": "[0-9A-Za-z.+-]*",\{0,1\}$/{s/^  "version": "//;s/",\{0,1\}$//;p;q;}' "$1/lib/node_modules/openclaw/package.json" 2>/dev/null)
  echo "unlocked ${v:-none}"
}"#;

/// Installs the locked tree into a fresh folder and switches the prefix to
/// it; any failure leaves the live install as it was. The lock is stdin.
/// $1 the lock's SHA-256, $2 the version, $3 the prefix (a link to the
/// tree), $4 Node's home, $5 the build user, $6 who vouches for the lock,
/// $7-$9 the gateway's user, home and unit (whose environment the check
/// runs in: its config path and include roots), then the node's plugin
/// channel ids.
///
/// - Each plugin must exist at `version` on npm (`npm view`, as the build
///   user): a version without it stops here, before anything is
///   downloaded or switched, not after the tree switched.
/// - `npm ci` installs exactly the lock (a tarball whose sha512 differs is
///   refused), with no package's install scripts, as the build user, in an
///   environment holding nothing of root's and reading no npmrc.
/// - OpenClaw's own postinstall (the only script the tree needs: it
///   completes the "package lifecycle", without which the first start
///   fails in a root-owned tree) runs as the build user too.
/// - Then the build user's processes are ended, the tree becomes root's
///   (`chown -h`: no link is followed; no setuid, group or world write,
///   readable by all, whatever umask a PAM session gave the build), and
///   `/opt/openclaw` switches to it
///   with one rename, like `/opt/node`. Before that, the new build reads
///   the node's data with OpenClaw's read-only `doctor --lint`: OpenClaw
///   never reverses its database migrations and an older build refuses a
///   newer schema at start ("cannot open your existing data"; its answer
///   is read bounded: 120 s, 64 KiB), so a
///   rollback across a migration stops here, with the old tree serving,
///   instead of leaving a gateway that cannot start. The tree a running gateway was
///   started from stays until the next install (Node loads its lazy
///   modules by their real path), older ones are removed.
pub(crate) const INSTALL: &str = r#"set -eu
want=$1 version=$2 prefix=$3 node=$4 builder=$5 vouched=$6 user=$7 home=$8 unit=$9
shift 9
umask 022
parent=$(dirname -- "$prefix")
tree="$parent/openclaw-$version-$(printf '%.12s' "$want")"
new="$tree.ocfo-new"
# The build's home and cache: next to the tree, not under $TMPDIR (a
# hardened host's pam_tmpdir gives root a private /tmp/user/0 that the
# build user cannot enter).
lock=$(mktemp); build=$(mktemp -d -p "$parent" .ocfo-build.XXXXXX)
trap 'rm -rf -- "$lock" "$build" "$new"' EXIT
cat > "$lock"
got=$(sha256sum < "$lock" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "the lock arrived as sha256 $got, not $want ($vouched): refusing it" >&2
  exit 1
fi
if ! id -u -- "$builder" >/dev/null 2>&1; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin -- "$builder"
fi
as_builder() {
  runuser -u "$builder" -- /usr/bin/env -i HOME="$build" PATH="$node/bin:/usr/bin:/bin" \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt NPM_CONFIG_USERCONFIG=/dev/null \
    /bin/sh -c 'umask 022 && cd "$1" && shift && exec "$@"' sh "$@"
}
stop_builder() { runuser -u "$builder" -- /bin/sh -c 'kill -s KILL -1' 2>/dev/null || true; }
stop_builder
rm -rf -- "$new"
mkdir -m 0755 -- "$new" "$new/bin" "$new/lib"
printf '{"name": "ocfo-openclaw", "private": true, "dependencies": {"openclaw": "%s"}}\n' "$version" > "$new/lib/package.json"
cp -- "$lock" "$new/lib/package-lock.json"
chmod 0644 -- "$new/lib/package.json" "$new/lib/package-lock.json"
chown -- "$builder" "$new/lib" "$build"
for id in "$@"; do
  if ! said=$(as_builder "$build" "$node/bin/npm" view "@openclaw/$id@$version" version --no-update-notifier \
      --globalconfig="$build/no-npmrc" --cache="$build/cache" --logs-dir="$build/logs" 2>&1 | head -c 4096) \
    || [ "$(printf '%s\n' "$said" | tail -n 1)" != "$version" ]; then
    why=$(printf '%s\n' "$said" | sed -n 's/^npm error //p' | grep -v '^ *$' | head -n 2 | paste -sd ' ' -)
    echo "OpenClaw's plugin @openclaw/$id has no version $version on npm (${why:-npm said nothing}): this node's $id channel runs on it, and plugins go with OpenClaw's version. Nothing was switched; choose an OpenClaw version that has the plugin" >&2
    exit 1
  fi
done
if ! as_builder "$new/lib" "$node/bin/npm" ci --ignore-scripts --no-audit --no-fund --no-update-notifier --loglevel=error \
    --globalconfig="$build/no-npmrc" --cache="$build/cache" --logs-dir="$build/logs" >&2; then
  echo "npm ci of openclaw@$version from its lock (sha256 $want, $vouched) failed: nothing was switched" >&2
  exit 1
fi
pkg="$new/lib/node_modules/openclaw"
as_builder "$pkg" "$node/bin/node" scripts/postinstall-bundled-plugins.mjs >&2
if [ -e "$pkg/.openclaw-lifecycle-pending" ]; then
  echo "OpenClaw's postinstall left $pkg/.openclaw-lifecycle-pending: nothing was switched" >&2
  exit 1
fi
stop_builder
chown -R -h root:root -- "$new"
chmod -R u-s,g-ws,o-w,a+rX -- "$new"
ln -s -- ../lib/node_modules/.bin/openclaw "$new/bin/openclaw"
test -x "$new/bin/openclaw"
if id -u -- "$user" >/dev/null 2>&1 && [ -d "$home/.openclaw" ]; then
  unit_env=$(systemctl show -p Environment --value -- "$unit" 2>/dev/null | tr ' ' '\n')
  config=$(printf '%s\n' "$unit_env" | sed -n 's/^OPENCLAW_CONFIG_PATH=//p')
  roots=$(printf '%s\n' "$unit_env" | sed -n 's/^OPENCLAW_INCLUDE_ROOTS=//p')
  lint=$(cd / && timeout 120 runuser -u "$user" -- /usr/bin/env -i HOME="$home" \
    OPENCLAW_CONFIG_PATH="${config:-$home/.openclaw/openclaw.json}" OPENCLAW_INCLUDE_ROOTS="$roots" \
    PATH="$new/bin:$node/bin:/usr/bin:/bin" OPENCLAW_SKIP_GMAIL_WATCHER=1 \
    "$new/bin/openclaw" doctor --lint --json 2>&1 | head -c 65536 || true)
  case $lint in
    *"cannot open your existing data"*|*"newer schema version"*)
      why=$(printf '%s\n' "$lint" | sed -n 's/.*\(OpenClaw [a-z]* database [^ ]* uses newer schema version [0-9]*; this build supports [0-9]*\).*/\1/p' | head -n 3)
      echo "openclaw@$version cannot open this node's data: ${why:-its doctor refused it}. OpenClaw does not reverse its database migrations: a rollback across one needs the backup taken before the upgrade, restored with the gateway stopped (docs/deploy.md, \"Upgrading and rolling back\"). Nothing was switched; this node keeps the OpenClaw it runs" >&2
      exit 1 ;;
  esac
fi
printf 'lock %s\nopenclaw %s\n' "$want" "$version" > "$new/.ocfo-tree"
old=$(readlink -- "$prefix" 2>/dev/null || true)
if [ "$old" = "$tree" ]; then
  rm -rf -- "$tree.ocfo-old"; mv -- "$tree" "$tree.ocfo-old"; old="$tree.ocfo-old"
else
  rm -rf -- "$tree"
fi
mv -- "$new" "$tree"
if [ -d "$prefix" ] && [ ! -L "$prefix" ]; then
  rm -rf -- "$prefix.ocfo-unlocked"; mv -- "$prefix" "$prefix.ocfo-unlocked"; old="$prefix.ocfo-unlocked"
fi
ln -sfn -- "$tree" "$prefix.ocfo-new" && mv -Tf -- "$prefix.ocfo-new" "$prefix"
for d in "$parent"/openclaw-* "$prefix.ocfo-unlocked"; do
  [ "$d" = "$tree" ] || [ "$d" = "$old" ] || [ -L "$d" ] || [ ! -d "$d" ] && continue
  case $d in
    *.ocfo-new|*.ocfo-old|"$prefix.ocfo-unlocked") rm -rf -- "$d" ;;
    *) if [ -f "$d/.ocfo-tree" ]; then rm -rf -- "$d"; fi ;;
  esac
done
"#;

/// The node's channels that are OpenClaw plugins (installed at OpenClaw's
/// version).
fn plugin_ids(ctx: &TaskContext<'_>) -> Vec<String> {
    let mut ids: Vec<String> = ctx
        .inv
        .channel_ids(ctx.role)
        .into_iter()
        .filter(|c| channel_is_plugin(c))
        .collect();
    ids.sort();
    ids.dedup();
    ids
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
    let plugins = plugin_ids(ctx);
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
            .args(plugins.iter().map(String::as_str)),
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
  cat -- "$2" "$3/lib/node_modules/openclaw/package.json" "$3/.ocfo-tree"
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

impl super::Module for Args {
    const PREFETCHABLE: bool = true;
    const UPGRADE: bool = true;

    async fn plan<H: Host>(
        &self,
        host: &H,
        ctx: &TaskContext<'_>,
    ) -> Result<Vec<Change>, ModuleError> {
        plan(self, host, ctx).await
    }
}

impl super::Module for PluginArgs {
    const PREFETCHABLE: bool = true;

    async fn plan<H: Host>(
        &self,
        host: &H,
        ctx: &TaskContext<'_>,
    ) -> Result<Vec<Change>, ModuleError> {
        plan_plugins(self, host, ctx).await
    }
}

/// A pure check: it plans nothing, and verifies on every real run.
impl super::Module for ValidateArgs {
    const PREFETCHABLE: bool = true;
    const CHECK: bool = true;

    async fn plan<H: Host>(
        &self,
        _host: &H,
        _ctx: &TaskContext<'_>,
    ) -> Result<Vec<Change>, ModuleError> {
        Ok(Vec::new())
    }

    async fn verify<H: Host>(&self, host: &H, ctx: &TaskContext<'_>) -> Result<(), ModuleError> {
        validate(self, host, ctx).await
    }

    fn check_reads(&self, ctx: &TaskContext<'_>) -> Vec<String> {
        vec![validate_inputs(ctx, "compare").render()]
    }
}

#[cfg(test)]
mod version_tests {
    use super::version_change;

    #[test]
    fn an_upgrade_reads_as_one() {
        assert_eq!(
            version_change(Some("2026.9.5"), "2026.9.6"),
            "upgrade OpenClaw 2026.9.5 → 2026.9.6: "
        );
        assert_eq!(
            version_change(Some("2026.9.6"), "2026.9.5"),
            "downgrade (roll back) OpenClaw 2026.9.6 → 2026.9.5: "
        );
        assert!(version_change(Some("2026.9.6"), "2026.10.1").starts_with("upgrade"));
        assert!(version_change(Some("2026.9.1-beta.1"), "2026.9.1").starts_with("upgrade"));
        assert_eq!(version_change(None, "2026.9.6"), "");
        assert_eq!(version_change(Some("2026.9.6"), "2026.9.6"), "");
    }
}

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

    use super::*;
    use crate::modules::testkit::{ok, Fixture, ScriptedHost};
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn exe(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn sh(script: &str, stdin: &[u8], path: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .args(["-c", script])
            .env("PATH", path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    async fn plan_for(installed: &'static str, fx: &Fixture) -> (Vec<Change>, Vec<String>) {
        let host = ScriptedHost::new(move |_| ok(installed));
        let changes = plan(&Args {}, &host, &fx.ctx()).await.unwrap();
        let sent = host
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|(s, _)| s.clone())
            .collect();
        (changes, sent)
    }

    /// A tree installed from the lock ocfo wants is one `cat` and no change;
    /// any other tree (an `npm install -g` one, another lock) is reinstalled
    /// from the lock, sent as the step's stdin, never as `npm install -g`.
    #[tokio::test]
    async fn the_tree_is_installed_from_the_lock_and_a_matching_one_is_left_alone() {
        let fx = Fixture::load(|_| {});
        let lock = fx.inv.openclaw.lock.clone();
        assert!(lock.vouched_by.starts_with("shipped with ocfo"), "{lock:?}");
        let stamp: &'static str =
            Box::leak(format!("lock {}\nopenclaw 2026.9.6\n", lock.sha256).into_boxed_str());
        let (changes, sent) = plan_for(stamp, &fx).await;
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].contains(r#"cat -- "$1/.ocfo-tree""#), "{}", sent[0]);

        let (changes, _) = plan_for("unlocked 2026.9.6\n", &fx).await;
        assert_eq!(changes.len(), 1);
        let c = &changes[0];
        assert!(
            c.summary
                .contains("now: openclaw@2026.9.6, unlocked (npm install -g)"),
            "{}",
            c.summary
        );
        assert!(c.summary.contains(&lock.sha256[..12]), "{}", c.summary);
        let Step::Run { script, stdin } = &c.steps[0] else {
            panic!("{:?}", c.steps)
        };
        assert_eq!(stdin.as_deref(), Some(lock.text.as_bytes()));
        let args = script.arguments();
        assert_eq!(args[0], lock.sha256);
        assert_eq!(args[1], "2026.9.6");
        assert_eq!(args[4], BUILD_USER);
        let text = script.render();
        assert!(!text.contains("install -g"), "{text}");
        assert!(text.contains("ci --ignore-scripts"), "{text}");
        assert!(text.contains("chown -R -h root:root"), "{text}");

        // Another lock for the same version: a different tree, reinstalled.
        let other = "lock ".to_string() + &"ab".repeat(32) + "\nopenclaw 2026.9.6\n";
        let (changes, _) = plan_for(Box::leak(other.into_boxed_str()), &fx).await;
        assert!(changes[0]
            .summary
            .contains("now: openclaw@2026.9.6, lock sha256 abababababab"));
    }

    #[test]
    fn the_installed_tree_is_the_stamp_or_the_version_of_an_unlocked_install() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("prefix");
        let read = || {
            let script = Script::new(INSTALLED_TREE).arg(prefix.to_str().unwrap());
            let out = sh(&script.render(), b"", "/usr/bin:/bin");
            Tree::parse(&String::from_utf8(out.stdout).unwrap())
        };
        assert_eq!(read(), Tree::default());
        let pkg = prefix.join("lib/node_modules/openclaw");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(
            pkg.join("package.json"),
            "{\n  \"name\": \"openclaw\",\n  \"version\": \"2026.9.5\"\n}\n",
        )
        .unwrap();
        assert_eq!(
            read(),
            Tree {
                lock: None,
                version: Some("2026.9.5".into()),
                unlocked: true
            }
        );
        let sum = "0f".repeat(32);
        std::fs::write(
            prefix.join(".ocfo-tree"),
            format!("lock {sum}\nopenclaw 2026.9.6\n"),
        )
        .unwrap();
        assert_eq!(read().lock, Some(sum));
        // A stamp that is not a checksum is no tree ocfo knows.
        assert_eq!(Tree::parse("lock nope\n").lock, None);
    }

    /// [`INSTALL`] run by the local `sh` with `runuser` and `chown`
    /// stood in for, and an `npm` that refuses a lock holding `tampered` the
    /// way `npm ci` refuses a tarball whose sha512 differs (EINTEGRITY).
    /// An install from a good lock switches the prefix to the new tree; a
    /// tampered lock, a lock damaged on the way or a postinstall that did
    /// not complete switch nothing and leave nothing behind.
    #[test]
    fn a_failed_install_switches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let fakebin = d.join("fakebin");
        // A hardened host's root has a private TMPDIR (pam_tmpdir).
        let root_tmp = d.join("tmp-user-0");
        std::fs::create_dir(&root_tmp).unwrap();
        // Runs only the build steps (`env -i ...`): anything else, such as
        // ending the build user's processes, is recorded, never run here.
        exe(
            &fakebin.join("runuser"),
            "#!/bin/sh\nshift 3\ncase $1 in /usr/bin/env) exec \"$@\" ;; esac\necho \"runuser $*\" >> \"$CHOWN_LOG\"\n",
        );
        exe(
            &fakebin.join("chown"),
            "#!/bin/sh\necho \"$*\" >> \"$CHOWN_LOG\"\n",
        );
        let node = d.join("node");
        exe(
            &node.join("bin/npm"),
            &r#"#!/bin/sh
if [ "$1" = view ]; then
  # The registry: the Discord plugin exists at 2026.9.6, no other.
  case $2 in
    @openclaw/discord@2026.9.6) echo 2026.9.6; exit 0 ;;
    *) echo "npm error code E404"; echo "npm error 404 No match found for version ${2##*@}" >&2; exit 1 ;;
  esac
fi
[ "$1" = ci ] && [ "$2" = --ignore-scripts ] || { echo "not npm ci --ignore-scripts: $*" >&2; exit 2; }
[ "$NPM_CONFIG_USERCONFIG" = /dev/null ] || exit 3
# Root's $TMPDIR may be private to root (pam_tmpdir): the build's cache
# must not be under it.
case "$*" in *"--cache=ROOT_TMPDIR"*) echo "the cache is under root's private TMPDIR" >&2; exit 5 ;; esac
[ "$(stat -c %a package.json package-lock.json)" = "644
644" ] || { echo "the build user cannot read the project" >&2; exit 4; }
if grep -q tampered package-lock.json; then echo "npm error code EINTEGRITY" >&2; exit 1; fi
mkdir -p node_modules/openclaw/scripts node_modules/.bin
# OpenClaw's doctor, as an older build answers on newer data.
printf '#!/bin/sh\n[ -e "$HOME/newer" ] && echo "This OpenClaw build cannot open your existing data. OpenClaw state database /h/s.sqlite uses newer schema version 18; this build supports 17. Refused"\necho openclaw\n' > node_modules/openclaw/openclaw.mjs
chmod +x node_modules/openclaw/openclaw.mjs
ln -s ../openclaw/openclaw.mjs node_modules/.bin/openclaw
grep -q keep-marker package-lock.json && echo keep > node_modules/openclaw/scripts/keep
echo 1 > node_modules/openclaw/.openclaw-lifecycle-pending
"#
            .replace("ROOT_TMPDIR", root_tmp.to_str().unwrap()),
        );
        exe(
            &node.join("bin/node"),
            "#!/bin/sh\n[ \"$1\" = scripts/postinstall-bundled-plugins.mjs ] || exit 2\n[ -e scripts/keep ] || rm -f .openclaw-lifecycle-pending\n",
        );
        let opt = d.join("opt");
        let prefix = opt.join("openclaw");
        // The install of `npm install -g`, before locks.
        std::fs::create_dir_all(prefix.join("lib/node_modules/openclaw")).unwrap();
        let chown_log = d.join("chown.log");
        let path = format!("{}:/usr/bin:/bin", fakebin.display());
        // The gateway's home, with data for the new build's doctor to read.
        let home = d.join("gwhome");
        std::fs::create_dir_all(home.join(".openclaw")).unwrap();
        let install_with = |lock: &str, want: &str, plugins: &[&str]| {
            let script = Script::new(INSTALL)
                .args([
                    want,
                    "2026.9.6",
                    prefix.to_str().unwrap(),
                    node.to_str().unwrap(),
                    "nobody",
                    "test",
                    "root",
                    home.to_str().unwrap(),
                    "ocfo-test-absent.service",
                ])
                .args(plugins.iter().copied());
            let script = format!(
                "CHOWN_LOG='{}'; export CHOWN_LOG\nTMPDIR='{}'; ROOT_TMPDIR=$TMPDIR; export TMPDIR ROOT_TMPDIR\n{}",
                chown_log.display(),
                root_tmp.display(),
                script.render()
            );
            let out = sh(&script, lock.as_bytes(), &path);
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let install = |lock: &str, want: &str| install_with(lock, want, &[]);
        let listing = || {
            let mut v: Vec<String> = std::fs::read_dir(&opt)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };

        let good = "{\"good\": 1}\n";
        let good_sum = crate::sha256_hex(good.as_bytes());
        let (ok, err) = install(good, &good_sum);
        assert!(ok, "{err}");
        let tree = format!("openclaw-2026.9.6-{}", &good_sum[..12]);
        assert_eq!(
            std::fs::read_link(&prefix).unwrap(),
            opt.join(&tree),
            "{:?}",
            listing()
        );
        assert_eq!(
            std::fs::read_to_string(prefix.join(".ocfo-tree")).unwrap(),
            format!("lock {good_sum}\nopenclaw 2026.9.6\n")
        );
        assert!(prefix.join("bin/openclaw").exists());
        assert!(!prefix
            .join("lib/node_modules/openclaw/.openclaw-lifecycle-pending")
            .exists());
        assert_eq!(
            std::fs::read_to_string(prefix.join("lib/package-lock.json")).unwrap(),
            good
        );
        let chowns = std::fs::read_to_string(&chown_log).unwrap();
        // Between the build and root taking the tree over, the build user's
        // processes are ended.
        let after_build = &chowns[chowns.rfind("-- nobody ").expect(&chowns)..];
        let stop = after_build.find("kill -s KILL -1").expect(after_build);
        let take = after_build.find("-R -h root:root --").expect(after_build);
        assert!(stop < take, "{chowns}");
        // The old install is kept until the next switch (a running gateway
        // still loads from it), nothing else is left.
        assert_eq!(
            listing(),
            ["openclaw", tree.as_str(), "openclaw.ocfo-unlocked"]
        );

        // A refused install switches nothing and leaves nothing behind.
        let refused = |lock: &str, want: Option<&str>, plugins: &[&str], says: &[&str]| {
            let sum = crate::sha256_hex(lock.as_bytes());
            let (ok, err) = install_with(lock, want.unwrap_or(&sum), plugins);
            assert!(!ok, "{lock}");
            for s in says {
                assert!(err.contains(s), "{lock}: {err}");
            }
            assert_eq!(std::fs::read_link(&prefix).unwrap(), opt.join(&tree));
            assert_eq!(
                listing(),
                ["openclaw", tree.as_str(), "openclaw.ocfo-unlocked"]
            );
        };
        for (lock, want, says) in [
            ("{\"tampered\": 1}\n", None, "EINTEGRITY"),
            (
                "{\"keep-marker\": 1}\n",
                None,
                ".openclaw-lifecycle-pending",
            ),
            (
                "{\"good\": 2}\n",
                Some(good_sum.as_str()),
                "the lock arrived as sha256",
            ),
        ] {
            refused(lock, want, &[], &[says]);
        }

        // A build that cannot open the node's data (a roll back across
        // OpenClaw's migrations) is refused before the switch.
        std::fs::write(home.join("newer"), "").unwrap();
        refused(
            "{\"older\": 1}\n",
            None,
            &[],
            &[
                "openclaw@2026.9.6 cannot open this node's data: OpenClaw state database /h/s.sqlite uses newer schema version 18; this build supports 17.",
                "Nothing was switched",
            ],
        );
        std::fs::remove_file(home.join("newer")).unwrap();

        // A plugin channel whose plugin npm does not have at this version
        // stops the install before anything is downloaded or switched.
        refused(
            "{\"plugged\": 1}\n",
            None,
            &["discord", "matrix"],
            &[
                "OpenClaw's plugin @openclaw/matrix has no version 2026.9.6 on npm (code E404 404 No match found for version 2026.9.6)",
                "Nothing was switched",
            ],
        );

        // The next good install keeps the one before and removes the unlocked one.
        let next = "{\"good\": 3}\n";
        let next_sum = crate::sha256_hex(next.as_bytes());
        let (ok, err) = install_with(next, &next_sum, &["discord"]);
        assert!(ok, "{err}");
        let next_tree = format!("openclaw-2026.9.6-{}", &next_sum[..12]);
        let mut want = vec!["openclaw", tree.as_str(), next_tree.as_str()];
        want.sort();
        assert_eq!(listing(), want);
    }
}
