//! Node.js from the official tarball: downloaded on the host from
//! `node.mirror`, SHA-256 checked against the release's SHASUMS256.txt,
//! unpacked to /opt/node-v<ver>-linux-<arch>, and /opt/node switched to it
//! atomically. A version switch converges the same way.

use super::{facts, fail, ModuleError, Script};
use crate::engine::{Change, Host, Step, TaskContext};
use crate::render::layout::NODE_HOME;

pub type Args = super::NoArgs;

pub async fn plan<H: Host>(
    _: &Args,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<Vec<Change>, ModuleError> {
    let arch = ctx.facts.node_arch().ok_or_else(|| {
        fail(format!(
            "Node.js has no official build for architecture `{}`",
            ctx.facts.arch
        ))
    })?;
    let version = ctx.inv.node.version.to_string();
    let name = format!("node-v{version}-linux-{arch}");
    let dir = format!("/opt/{name}");
    let out = facts(
        host,
        &Script::new(r#"readlink -- "$1" || echo none; "$1/bin/node" --version 2>/dev/null || echo none; [ -x "$1/bin/npm" ] && echo npm || echo nonpm"#)
            .arg(NODE_HOME),
    )
    .await?;
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    if lines.first() == Some(&dir.as_str())
        && lines.get(1) == Some(&format!("v{version}").as_str())
        && lines.get(2) == Some(&"npm")
    {
        return Ok(Vec::new());
    }
    let current = lines.get(1).copied().unwrap_or("none");
    let mirror = ctx.inv.node.mirror.trim_end_matches('/');
    let script =
        Script::new(INSTALL).args([format!("{mirror}/v{version}"), name, NODE_HOME.to_string()]);
    Ok(vec![Change::new(
        format!(
            "install Node.js v{version} ({arch}) from {mirror}, checksum-verified (now: {current})"
        ),
        vec![Step::run(script)],
    )])
}

/// $1 the release's base URL, $2 `node-v<ver>-linux-<arch>`, $3 the link to switch.
const INSTALL: &str = r#"set -eu
base=$1; name=$2; home=$3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
curl -fsSL --retry 3 --connect-timeout 15 -o "$tmp/SHASUMS256.txt" -- "$base/SHASUMS256.txt"
file=""
for ext in tar.gz tar.xz; do
  if grep -E "^[0-9a-f]{64}  $name\.$ext\$" "$tmp/SHASUMS256.txt" > "$tmp/sum"; then file="$name.$ext"; break; fi
done
[ -n "$file" ] || { echo "$base/SHASUMS256.txt lists no $name.tar.gz or .tar.xz" >&2; exit 1; }
curl -fsSL --retry 3 --connect-timeout 15 -o "$tmp/$file" -- "$base/$file"
(cd "$tmp" && sha256sum -c --quiet sum) || { echo "checksum mismatch for $file: refusing to install it" >&2; exit 1; }
rm -rf "/opt/$name.ocfo-new"; mkdir -p "/opt/$name.ocfo-new"
tar -xf "$tmp/$file" -C "/opt/$name.ocfo-new" --strip-components=1 --no-same-owner
rm -rf "/opt/$name"; mv "/opt/$name.ocfo-new" "/opt/$name"
"/opt/$name/bin/node" --version >/dev/null
ln -sfn "/opt/$name" "$home.ocfo-new" && mv -Tf "$home.ocfo-new" "$home"
"#;
