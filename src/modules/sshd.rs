//! The sshd drop-in: validated with `sshd -t` before it stays, and password
//! login is only disabled once the login user has a key in place, so the
//! operator is never locked out. Before the drop-in, the host keys and moduli
//! the drop-in relies on: a 4096-bit RSA host key (generated when missing or
//! shorter; ssh-audit's Debian 12 policy wants exactly that size) and
//! `/etc/ssh/moduli` without groups under 3072 bits.
//!
//! The algorithm lists are the host release's: OpenSSH 9.2 (Debian 12),
//! 9.6 (Ubuntu 24.04) and 10.0 (Debian 13) know different key exchanges,
//! and ssh-audit's hardening guide for each release orders them (and the
//! MACs) differently. The template renders Debian 12's; the host's facts pick
//! the lines that replace them here, because rendering happens before any
//! host is reached (`ocfo render` shows Debian 12's).

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
    let content = for_release(&file.content, &ctx.facts.os_id, &ctx.facts.os_version);
    let mut changes = host_key_changes(rsa_bits, ed25519, weak_moduli);
    if *sha == crate::sha256_hex(&content) && *meta == "600 root root" {
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
            similar::TextDiff::from_lines(old.as_str(), String::from_utf8_lossy(&content).as_ref())
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
                stdin: Some(content),
            }],
        )
        .with_diff(diff),
    );
    Ok(changes)
}

/// `(os id, version, KexAlgorithms, MACs)` where they differ from the
/// template's Debian 12 lists: ssh-audit's "Hardened Debian 13 (version 1)"
/// (post-quantum key exchanges only, OpenSSH 10.0 has ML-KEM; russh
/// negotiates `mlkem768x25519-sha256`) and "Hardened Ubuntu Server 24.04 LTS
/// (version 2)" (OpenSSH 9.6 knows sntrup761 only by its @openssh.com name).
const RELEASE_ALGORITHMS: &[(&str, &str, &str, &str)] = &[
    (
        "debian",
        "13",
        "mlkem768x25519-sha256,sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com",
        "hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com",
    ),
    (
        "ubuntu",
        "24.04",
        "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,diffie-hellman-group18-sha512,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512",
        "hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com",
    ),
];

/// The rendered drop-in with the host release's `KexAlgorithms` and `MACs`.
fn for_release(rendered: &[u8], os_id: &str, os_version: &str) -> Vec<u8> {
    let Some((_, _, kex, macs)) = RELEASE_ALGORITHMS
        .iter()
        .find(|(id, v, _, _)| *id == os_id && *v == os_version)
    else {
        return rendered.to_vec();
    };
    let text = String::from_utf8_lossy(rendered);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.starts_with("KexAlgorithms ") {
            out.push_str(&format!("KexAlgorithms {kex}\n"));
        } else if line.starts_with("MACs ") {
            out.push_str(&format!("MACs {macs}\n"));
        } else {
            out.push_str(line);
        }
    }
    out.into_bytes()
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
    fn algorithms_follow_the_release() {
        let rendered = b"# x\nKexAlgorithms a,b\nCiphers c\nMACs m1,m2\nCompression no\n";
        assert_eq!(
            super::for_release(rendered, "debian", "12"),
            rendered.to_vec()
        );
        assert_eq!(
            super::for_release(rendered, "alpine", "3.20"),
            rendered.to_vec()
        );
        let trixie = String::from_utf8(super::for_release(rendered, "debian", "13")).unwrap();
        assert!(
            trixie.starts_with("# x\nKexAlgorithms mlkem768x25519-sha256,"),
            "{trixie}"
        );
        assert!(
            trixie.contains("\nCiphers c\nMACs hmac-sha2-512-etm@openssh.com,"),
            "{trixie}"
        );
        assert!(
            trixie.ends_with("umac-128-etm@openssh.com\nCompression no\n"),
            "{trixie}"
        );
        let noble = String::from_utf8(super::for_release(rendered, "ubuntu", "24.04")).unwrap();
        assert!(
            noble.contains("KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256,"),
            "{noble}"
        );
        assert!(
            !noble.contains("a,b") && !noble.contains("m1,m2"),
            "{noble}"
        );
    }

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
