//! The sshd drop-in: validated with `sshd -t` before it stays, and password
//! login is only disabled once the login user has a key in place, so the
//! operator is never locked out. Before the drop-in, the host keys and moduli
//! the drop-in relies on: a 4096-bit RSA host key (generated when missing or
//! shorter; ssh-audit's Debian 12 policy wants exactly that size) and
//! `/etc/ssh/moduli` without groups under 3072 bits.

use super::{facts, fail, ModuleError, Script};
use crate::engine::{Change, Host, Step, TaskContext};
use crate::layout::SSHD_DROP_IN;

super::no_args!(Args);

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
    let [sha, meta, keys, include, rsa_bits, ed25519, weak_moduli] = lines.as_slice() else {
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
    let mut changes = host_key_changes(rsa_bits, ed25519, weak_moduli);
    if *sha == crate::sha256_hex(&file.content) && *meta == "600 root root" {
        return Ok(changes);
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
    changes.push(
        Change::new(
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
        .with_diff(diff),
    );
    Ok(changes)
}

fn host_key_changes(rsa_bits: &str, ed25519: &str, weak_moduli: &str) -> Vec<Change> {
    let mut changes = Vec::new();
    if ed25519 != "ed25519" {
        changes.push(Change::new(
            "generate the Ed25519 host key",
            vec![Step::run(Script::new(NEW_ED25519_KEY))],
        ));
    }
    if rsa_bits.parse::<u32>().unwrap_or(0) < 4096 {
        changes.push(Change::new(
            format!(
                "generate a 4096-bit RSA host key (now: {})",
                if rsa_bits == "none" {
                    "none".to_string()
                } else {
                    format!("{rsa_bits} bits")
                }
            ),
            vec![Step::run(Script::new(NEW_RSA_KEY))],
        ));
    }
    if weak_moduli.trim().parse::<u32>().unwrap_or(0) > 0 {
        changes.push(Change::new(
            format!(
                "remove {} Diffie-Hellman moduli under 3072 bits from /etc/ssh/moduli",
                weak_moduli.trim()
            ),
            vec![Step::run(Script::new(STRONG_MODULI))],
        ));
    }
    changes
}

const NEW_ED25519_KEY: &str =
    "rm -f /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub
ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key";

const NEW_RSA_KEY: &str = "rm -f /etc/ssh/ssh_host_rsa_key /etc/ssh/ssh_host_rsa_key.pub
ssh-keygen -q -t rsa -b 4096 -N '' -f /etc/ssh/ssh_host_rsa_key";

/// The fifth field is the size minus one, hence 3071.
const STRONG_MODULI: &str = "set -e
awk '$1 ~ /^#/ || NF < 7 || $5 >= 3071' /etc/ssh/moduli > /etc/ssh/moduli.ocfo-new
chmod 0644 /etc/ssh/moduli.ocfo-new
mv -f /etc/ssh/moduli.ocfo-new /etc/ssh/moduli";

/// $1 the drop-in, $2 the login user. Then three lines: the RSA host key's
/// size in bits (or `none`), whether the Ed25519 host key exists, and how
/// many moduli are under 3072 bits.
const FACTS: &str = r#"if [ -f "$1" ]; then sha256sum < "$1" | cut -d' ' -f1; stat -c '%a %U %G' -- "$1"; else echo missing; echo -; fi
home=$(getent passwd -- "$2" | cut -d: -f6); if [ -s "$home/.ssh/authorized_keys" ]; then echo keys; else echo nokeys; fi
if grep -qiE '^[[:space:]]*Include[[:space:]]+/etc/ssh/sshd_config.d/' /etc/ssh/sshd_config; then echo include; else echo noinclude; fi
if [ -s /etc/ssh/ssh_host_rsa_key ] && b=$(ssh-keygen -l -f /etc/ssh/ssh_host_rsa_key 2>/dev/null | cut -d' ' -f1); then echo "${b:-none}"; else echo none; fi
if [ -s /etc/ssh/ssh_host_ed25519_key ]; then echo ed25519; else echo noed25519; fi
if [ -f /etc/ssh/moduli ]; then awk '$1 !~ /^#/ && NF >= 7 && $5 < 3071' /etc/ssh/moduli | wc -l; else echo 0; fi"#;

/// Installs the drop-in from stdin, validates, and puts the previous file
/// back if sshd rejects it. $1 the drop-in.
const INSTALL: &str = r#"set -e
f=$1
mkdir -p /run/sshd "$(dirname -- "$f")"
if [ -f "$f" ]; then cp -p "$f" "$f.ocfo-prev"; fi
cat > "$f.ocfo-new"; chmod 0600 "$f.ocfo-new"; chown root:root "$f.ocfo-new"; mv -f "$f.ocfo-new" "$f"
if ! err=$(sshd -t 2>&1); then
  if [ -f "$f.ocfo-prev" ]; then mv -f "$f.ocfo-prev" "$f"; else rm -f "$f"; fi
  echo "sshd -t rejected the new configuration (previous one kept): $err" >&2; exit 1
fi
rm -f "$f.ocfo-prev""#;

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

#[cfg(test)]
mod tests {
    #[test]
    fn host_keys_and_moduli() {
        assert!(super::host_key_changes("4096", "ed25519", "0").is_empty());
        let c = super::host_key_changes("3072", "ed25519", "12");
        assert_eq!(c.len(), 2);
        assert!(c[0].summary.contains("3072 bits"), "{}", c[0].summary);
        assert!(c[1].summary.contains("12 "), "{}", c[1].summary);
        assert_eq!(super::host_key_changes("none", "noed25519", "0").len(), 2);
    }
}
