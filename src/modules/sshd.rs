//! The sshd drop-in: validated with `sshd -t` before it stays, and password
//! login is only disabled once the login user has a key in place, so the
//! operator is never locked out.

use super::{facts, fail, ModuleError, Script};
use crate::engine::{Change, Host, Step, TaskContext};
use crate::render::layout::SSHD_DROP_IN;

pub type Args = super::NoArgs;

pub async fn plan<H: Host>(
    _: &Args,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<Vec<Change>, ModuleError> {
    let Some(file) = ctx.files.get(SSHD_DROP_IN) else {
        return Err(fail("no sshd drop-in rendered"));
    };
    let user = &ctx.inv.node(ctx.role).ssh.user;
    let out = facts(host, &Script::new(FACTS).args([SSHD_DROP_IN, user])).await?;
    let lines: Vec<&str> = out.lines().collect();
    let [sha, meta, keys, include] = lines.as_slice() else {
        return Err(fail(format!("unexpected sshd facts: {out}")));
    };
    if *include != "include" {
        return Err(fail("/etc/ssh/sshd_config does not include /etc/ssh/sshd_config.d/*.conf; add `Include /etc/ssh/sshd_config.d/*.conf` at its top"));
    }
    if !ctx.inv.hardening.password_authentication && *keys != "keys" {
        return Err(fail(format!(
            "refusing to disable password login: user {user} has no ~/.ssh/authorized_keys on this host, so it could lock you out"
        )));
    }
    if *sha == crate::sha256_hex(&file.content) && *meta == "644 root root" {
        return Ok(Vec::new());
    }
    let script = Script::new(INSTALL).arg(SSHD_DROP_IN);
    let diff = if ctx.opts.diff {
        let old = if *sha == "missing" {
            String::new()
        } else {
            facts(host, &Script::new(r#"cat -- "$1""#).arg(SSHD_DROP_IN)).await?
        };
        Some(
            similar::TextDiff::from_lines(
                old.as_str(),
                String::from_utf8_lossy(&file.content).as_ref(),
            )
            .unified_diff()
            .header(SSHD_DROP_IN, SSHD_DROP_IN)
            .to_string(),
        )
    } else {
        None
    };
    Ok(vec![Change::new(
        format!(
            "{} {SSHD_DROP_IN} (validated with sshd -t)",
            if *sha == "missing" {
                "create"
            } else {
                "update"
            }
        ),
        vec![Step::Run {
            script,
            stdin: Some(file.content.clone()),
        }],
    )
    .with_diff(diff)])
}

/// $1 the drop-in, $2 the login user.
const FACTS: &str = r#"if [ -f "$1" ]; then sha256sum < "$1" | cut -d' ' -f1; stat -c '%a %U %G' -- "$1"; else echo missing; echo -; fi
home=$(getent passwd -- "$2" | cut -d: -f6); if [ -s "$home/.ssh/authorized_keys" ]; then echo keys; else echo nokeys; fi
if grep -qiE '^[[:space:]]*Include[[:space:]]+/etc/ssh/sshd_config.d/' /etc/ssh/sshd_config; then echo include; else echo noinclude; fi"#;

/// Installs the drop-in from stdin, validates, and puts the previous file
/// back if sshd rejects it. $1 the drop-in.
const INSTALL: &str = r#"set -e
f=$1
mkdir -p /run/sshd "$(dirname -- "$f")"
if [ -f "$f" ]; then cp -p "$f" "$f.ocfo-prev"; fi
cat > "$f.ocfo-new"; chmod 0644 "$f.ocfo-new"; chown root:root "$f.ocfo-new"; mv -f "$f.ocfo-new" "$f"
if ! err=$(sshd -t 2>&1); then
  if [ -f "$f.ocfo-prev" ]; then mv -f "$f.ocfo-prev" "$f"; else rm -f "$f"; fi
  echo "sshd -t rejected the new configuration (previous one kept): $err" >&2; exit 1
fi
rm -f "$f.ocfo-prev""#;
