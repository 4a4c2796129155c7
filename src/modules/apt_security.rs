//! The Debian security archive as an apt source. Many VPS images have it;
//! minimal ones (debootstrap, some providers' images) do not, and then
//! unattended-upgrades has no security updates to install. ocfo adds
//! `deb http://security.debian.org/debian-security <codename>-security main`
//! in its own file only when no other source names the security archive.
//! Not Debian (Ubuntu has its own archive layout): nothing to do.

use super::{facts, ModuleError, Script};
use crate::engine::{Change, Host, Step, TaskContext};
use crate::layout::APT_SECURITY_SOURCE;

super::no_args!(Args);

pub async fn plan<H: Host>(
    _: &Args,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<Vec<Change>, ModuleError> {
    let f = &ctx.facts;
    if f.os_id != "debian" || f.os_codename.is_empty() || !valid_codename(&f.os_codename) {
        return Ok(Vec::new());
    }
    let line = format!(
        "deb http://security.debian.org/debian-security {}-security main",
        f.os_codename
    );
    let content = format!("# Managed by ocfo: Debian security updates.\n{line}\n");
    let out = facts(host, &Script::new(FACTS).arg(APT_SECURITY_SOURCE)).await?;
    let mut lines = out.lines();
    let (other, ours) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    if other == "other" {
        if ours != "missing" {
            return Ok(vec![Change::new(
                format!("remove {APT_SECURITY_SOURCE} (another source has the security archive)"),
                vec![Step::run(
                    Script::new(r#"rm -f -- "$1""#).arg(APT_SECURITY_SOURCE),
                )],
            )]);
        }
        return Ok(Vec::new());
    }
    if ours == crate::sha256_hex(content.as_bytes()) {
        return Ok(Vec::new());
    }
    Ok(vec![Change::new(
        format!("add the security archive: {line} (then apt-get update)"),
        vec![
            Step::Put {
                path: APT_SECURITY_SOURCE.to_string(),
                content: content.into_bytes(),
                mode: 0o644,
                owner: "root".into(),
                group: "root".into(),
            },
            Step::run(Script::new("apt-get update -qq")),
        ],
    )])
}

/// Other files naming the security archive (one-line or deb822 format), then
/// our own file's checksum. $1 our file.
const FACTS: &str = r#"if grep -lsE '^[^#]*(security\.debian\.org|debian-security)' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -qvxF -- "$1"; then echo other; else echo none; fi
if [ -f "$1" ]; then sha256sum < "$1" | cut -d' ' -f1; else echo missing; fi"#;

fn valid_codename(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

impl super::Module for Args {
    const PREFETCHABLE: bool = true;

    async fn plan<H: Host>(
        &self,
        host: &H,
        ctx: &TaskContext<'_>,
    ) -> Result<Vec<Change>, ModuleError> {
        plan(self, host, ctx).await
    }
}
