//! The sshd drop-in: validated with `sshd -t` before it stays, and password
//! login is only disabled once the login user has a key in place, so the
//! operator is never locked out.

use super::{facts, fail, q, ModuleError};
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
    let p = q(SSHD_DROP_IN);
    let script = format!(
        "if [ -f {p} ]; then sha256sum < {p} | cut -d' ' -f1; stat -c '%a %U %G' {p}; else echo missing; echo -; fi\n\
         home=$(getent passwd {u} | cut -d: -f6); if [ -s \"$home/.ssh/authorized_keys\" ]; then echo keys; else echo nokeys; fi\n\
         if grep -qiE '^[[:space:]]*Include[[:space:]]+/etc/ssh/sshd_config.d/' /etc/ssh/sshd_config; then echo include; else echo noinclude; fi",
        u = q(user)
    );
    let out = facts(host, &script).await?;
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
    // Install, validate, and put the previous file back if sshd rejects it.
    let script = format!(
        "set -e\nf={p}\nmkdir -p /run/sshd /etc/ssh/sshd_config.d\n\
         if [ -f \"$f\" ]; then cp -p \"$f\" \"$f.ocfo-prev\"; fi\n\
         cat > \"$f.ocfo-new\"; chmod 0644 \"$f.ocfo-new\"; chown root:root \"$f.ocfo-new\"; mv -f \"$f.ocfo-new\" \"$f\"\n\
         if ! err=$(sshd -t 2>&1); then\n  if [ -f \"$f.ocfo-prev\" ]; then mv -f \"$f.ocfo-prev\" \"$f\"; else rm -f \"$f\"; fi\n  echo \"sshd -t rejected the new configuration (previous one kept): $err\" >&2; exit 1\nfi\n\
         rm -f \"$f.ocfo-prev\""
    );
    let diff = if ctx.opts.diff {
        let old = if *sha == "missing" {
            String::new()
        } else {
            host.check(&format!("cat {p}")).await?.stdout
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
