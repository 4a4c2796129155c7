//! Node.js from the official tarball: downloaded on the host from
//! `node.mirror` (size-capped), its SHA-256 checked against one the mirror
//! cannot forge (pinned in ocfo for the versions it supports, or
//! `node.sha256` in the inventory), unpacked to /opt/node-v<ver>-linux-<arch>,
//! and /opt/node switched to it atomically. A version switch converges the
//! same way.

use super::download::{fetch_function, MAX_NODE_TARBALL};
use super::{facts, fail, ModuleError, Script};
use crate::engine::{Change, Host, Step, TaskContext};
use crate::inventory::node_pins;
use crate::layout::NODE_HOME;

super::no_args!(Args);

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
    let (sha256, vouched_by) =
        node_pins::expected(&version, arch, &ctx.inv.node.sha256).map_err(fail)?;
    let current = lines.get(1).copied().unwrap_or("none");
    let mirror = ctx.inv.node.mirror.trim_end_matches('/');
    let script = Script::new(INSTALL).args([
        format!("{mirror}/v{version}"),
        name,
        NODE_HOME.to_string(),
        sha256.clone(),
        vouched_by.clone(),
        MAX_NODE_TARBALL.to_string(),
    ]);
    Ok(vec![Change::new(
        format!(
            "install Node.js v{version} ({arch}) from {mirror}, sha256 {} ({vouched_by}) (now: {current})",
            &sha256[..12]
        ),
        vec![Step::run(script)],
    )])
}

/// $1 the release's base URL, $2 `node-v<ver>-linux-<arch>`, $3 the link to
/// switch, $4 the tarball's SHA-256, $5 who vouches for it (for the error),
/// $6 the most bytes the tarball may have. The mirror's own SHASUMS256.txt
/// is not read: whoever serves the tarball would write it too.
const INSTALL: &str = concat!(
    "# install Node.js\n",
    fetch_function!(),
    r#"set -eu
base=$1; name=$2; home=$3; want=$4; vouched=$5; max=$6
tmp=$(mktemp -d); trap 'rm -rf -- "$tmp"' EXIT
file="$name.tar.gz"
ocfo_fetch "$base/$file" "$tmp/$file" "$max"
if ! printf '%s  %s\n' "$want" "$tmp/$file" | sha256sum -c --quiet --status -; then
  got=$(sha256sum < "$tmp/$file" | cut -d' ' -f1)
  echo "checksum mismatch for $base/$file: expected sha256 $want ($vouched), got $got: refusing to install it" >&2
  exit 1
fi
rm -rf -- "/opt/$name.ocfo-new"; mkdir -p -- "/opt/$name.ocfo-new"
tar -xzf "$tmp/$file" -C "/opt/$name.ocfo-new" --strip-components=1 --no-same-owner
rm -rf -- "/opt/$name"; mv -- "/opt/$name.ocfo-new" "/opt/$name"
"/opt/$name/bin/node" --version >/dev/null
ln -sfn -- "/opt/$name" "$home.ocfo-new" && mv -Tf -- "$home.ocfo-new" "$home"
"#
);

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testkit::{ok, Fixture, ScriptedHost};

    async fn plan_with(
        edit: impl FnOnce(&mut crate::inventory::Inventory),
    ) -> Result<Script, String> {
        let fx = Fixture::load(edit);
        let host = ScriptedHost::new(|_| ok("none\nnone\nnonpm\n"));
        let changes = plan(&Args {}, &host, &fx.ctx())
            .await
            .map_err(|e| e.to_string())?;
        match &changes[0].steps[0] {
            Step::Run { script, .. } => Ok(script.clone()),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_tarball_is_checked_against_ocfos_pin_not_the_mirror() {
        let script = plan_with(|_| {}).await.unwrap();
        let args = script.arguments();
        assert_eq!(args[1], "node-v24.21.0-linux-x64");
        assert_eq!(args[3], node_pins::pinned("24.21.0", "x64").unwrap());
        assert!(args[4].starts_with("pinned in ocfo"), "{args:?}");
        assert_eq!(args[5], MAX_NODE_TARBALL.to_string());
        assert!(!INSTALL.contains("SHASUMS256"));
    }

    #[tokio::test]
    async fn the_inventorys_checksum_wins_and_an_unpinned_version_is_refused() {
        let own = "ab".repeat(32);
        let o = own.clone();
        let script = plan_with(move |inv| {
            inv.node.sha256.insert("x64".into(), o);
        })
        .await
        .unwrap();
        assert_eq!(script.arguments()[3], own);
        assert_eq!(script.arguments()[4], "node.sha256.x64 in the inventory");
        let err = plan_with(|inv| {
            inv.node.version = crate::inventory::units::Version::parse("24.22.0").unwrap();
        })
        .await
        .unwrap_err();
        assert!(err.contains("set node.sha256.x64"), "{err}");
    }

    /// The install run by the local `sh` against a `file://` mirror that
    /// serves a forged tarball with its own matching SHASUMS256.txt: refused
    /// before anything is unpacked (before, the mirror's list was the
    /// reference, so it passed).
    #[test]
    fn a_mirror_cannot_vouch_for_its_own_tarball() {
        let dir = tempfile::tempdir().unwrap();
        let name = "node-v24.21.0-linux-x64-ocfo-test";
        let rel = dir.path().join("v24.21.0");
        std::fs::create_dir_all(&rel).unwrap();
        let forged = b"forged tarball";
        std::fs::write(rel.join(format!("{name}.tar.gz")), forged).unwrap();
        std::fs::write(
            rel.join("SHASUMS256.txt"),
            format!("{}  {name}.tar.gz\n", crate::sha256_hex(forged)),
        )
        .unwrap();
        let home = dir.path().join("node");
        let run = |max: u64| {
            let script = Script::new(INSTALL).args([
                format!("file://{}", rel.display()),
                name.to_string(),
                home.display().to_string(),
                node_pins::pinned("24.21.0", "x64").unwrap().to_string(),
                "pinned in ocfo".to_string(),
                max.to_string(),
            ]);
            std::process::Command::new("sh")
                .args(["-c", &script.render()])
                .output()
                .unwrap()
        };
        let out = run(MAX_NODE_TARBALL);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains("checksum mismatch"), "{err}");
        assert!(err.contains("(pinned in ocfo)"), "{err}");
        assert!(!std::path::Path::new(&format!("/opt/{name}")).exists());
        assert!(!home.exists());
        // Over the size cap: refused before the checksum is even computed.
        let out = run(4);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("larger than the limit of 4 bytes"), "{err}");
    }
}
