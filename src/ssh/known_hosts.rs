//! known_hosts, as OpenSSH reads it: plain and hashed (`|1|salt|hash`) host
//! entries, `[host]:port`, comma lists, `*`/`?` patterns and `!` negation,
//! `@revoked` keys; `@cert-authority` lines are ignored (no certificates).

use std::path::Path;

use data_encoding::BASE64;
use hmac::{KeyInit, Mac};
use russh::keys::ssh_key::{HashAlg, PublicKey};

/// What known_hosts says about a host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Trusted,
    /// The host is known, with other keys: a possible man in the middle.
    Changed {
        line: usize,
        recorded: String,
    },
    Revoked {
        line: usize,
    },
    Unknown,
}

/// The name a host has in known_hosts: `host`, or `[host]:port` off port 22.
pub fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

pub fn check(text: &str, host: &str, port: u16, key: &PublicKey) -> Verdict {
    let name = host_pattern(host, port);
    let mut changed = None;
    let mut trusted = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next().unwrap_or("");
        let mut revoked = false;
        if first.starts_with('@') {
            match first {
                "@revoked" => revoked = true,
                _ => continue, // @cert-authority and unknown markers
            }
            first = fields.next().unwrap_or("");
        }
        let (Some(algo), Some(b64)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !hosts_match(first, &name) {
            continue;
        }
        // A line OpenSSH could not parse is skipped, as OpenSSH skips it.
        let Ok(recorded) = PublicKey::from_openssh(&format!("{algo} {b64}")) else {
            continue;
        };
        let same = recorded.key_data() == key.key_data();
        // A revoked key is refused wherever the @revoked line stands.
        if revoked {
            if same {
                return Verdict::Revoked { line: i + 1 };
            }
            continue;
        }
        if same {
            trusted = true;
        } else {
            changed.get_or_insert(Verdict::Changed {
                line: i + 1,
                recorded: fingerprint(&recorded),
            });
        }
    }
    if trusted {
        Verdict::Trusted
    } else {
        changed.unwrap_or(Verdict::Unknown)
    }
}

/// OpenSSH's rule: a negated match wins over any positive one.
fn hosts_match(list: &str, name: &str) -> bool {
    let mut matched = false;
    for entry in list.split(',') {
        if let Some(neg) = entry.strip_prefix('!') {
            if glob(neg, name) {
                return false;
            }
        } else if entry.starts_with("|1|") {
            matched |= hashed_match(entry, name);
        } else {
            matched |= glob(entry, name);
        }
    }
    matched
}

fn hashed_match(entry: &str, name: &str) -> bool {
    let mut parts = entry.split('|').skip(2);
    let (Some(salt), Some(hash)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (
        BASE64.decode(salt.as_bytes()),
        BASE64.decode(hash.as_bytes()),
    ) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// `*` any run, `?` one character; case-insensitive like OpenSSH.
pub fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// Appends `host key` to the file atomically (rewrite + rename), creating it
/// with mode 0600 and its folder when missing.
pub fn append(path: &Path, host: &str, port: u16, key: &PublicKey) -> std::io::Result<()> {
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let openssh = key
        .to_openssh()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    // Drop the key's comment: known_hosts lines are `host algo base64`.
    let mut parts = openssh.split_whitespace();
    let (algo, b64) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    text.push_str(&format!("{} {algo} {b64}\n", host_pattern(host, port)));
    crate::fsutil::write_atomic(path, text.as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILLnJlF0kzCctridxVoSn19SFpsTfdw07lWD5uYnFodk";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIuMchbq9euyXLqmhLz2UYjMN+BZRaqlm2iV1PgS2ary";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    #[test]
    fn plain_port_and_lists() {
        let kh = format!("10.0.0.5,example.org {KEY_A}\n[10.0.0.6]:2222 {KEY_A}\n");
        assert_eq!(check(&kh, "example.org", 22, &key(KEY_A)), Verdict::Trusted);
        assert_eq!(check(&kh, "10.0.0.6", 2222, &key(KEY_A)), Verdict::Trusted);
        assert_eq!(check(&kh, "10.0.0.6", 22, &key(KEY_A)), Verdict::Unknown);
        assert!(matches!(
            check(&kh, "10.0.0.5", 22, &key(KEY_B)),
            Verdict::Changed { line: 1, .. }
        ));
    }

    #[test]
    fn hashed_entries() {
        // `ssh-keygen -H` output for host "10.231.0.11".
        let salt = BASE64.encode(b"0123456789abcdefghij");
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(b"0123456789abcdefghij").unwrap();
        mac.update(b"10.231.0.11");
        let hash = BASE64.encode(&mac.finalize().into_bytes());
        let kh = format!("|1|{salt}|{hash} {KEY_A}\n");
        assert_eq!(check(&kh, "10.231.0.11", 22, &key(KEY_A)), Verdict::Trusted);
        assert_eq!(check(&kh, "10.231.0.12", 22, &key(KEY_A)), Verdict::Unknown);
    }

    #[test]
    fn patterns_negation_markers_and_junk() {
        let kh = format!(
            "# comment\n\ngarbage\n*.lab,!bad.lab {KEY_A}\n@cert-authority *.lab {KEY_B}\n@revoked old.lab {KEY_A}\nold.lab {KEY_A}\n"
        );
        assert_eq!(check(&kh, "good.lab", 22, &key(KEY_A)), Verdict::Trusted);
        assert_eq!(check(&kh, "bad.lab", 22, &key(KEY_A)), Verdict::Unknown);
        assert_eq!(
            check(&kh, "old.lab", 22, &key(KEY_A)),
            Verdict::Revoked { line: 6 }
        );
        // The CA line does not make KEY_B a host key of good.lab.
        assert!(matches!(
            check(&kh, "good.lab", 22, &key(KEY_B)),
            Verdict::Changed { .. }
        ));
    }

    #[test]
    fn append_creates_a_private_file_and_round_trips() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        append(&path, "h", 2200, &key(KEY_A)).unwrap();
        append(&path, "h2", 22, &key(KEY_B)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(check(&text, "h", 2200, &key(KEY_A)), Verdict::Trusted);
        assert_eq!(check(&text, "h2", 22, &key(KEY_B)), Verdict::Trusted);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn globs() {
        assert!(glob("*.example.com", "a.example.com"));
        assert!(glob("10.0.0.?", "10.0.0.7"));
        assert!(!glob("10.0.0.?", "10.0.0.17"));
        assert!(glob("HOST", "host"));
    }
}
