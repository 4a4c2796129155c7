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

/// Reads a known_hosts file as bytes. A missing file is empty; any other
/// failure is an error, never "no keys": treating an unreadable file as empty
/// would let `--accept-new-host-keys` accept a changed key.
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    match crate::fsutil::read_regular_capped(path, MAX_FILE) {
        Ok(bytes) => Ok(bytes),
        Err(crate::fsutil::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(Vec::new())
        }
        Err(crate::fsutil::ReadError::Io(e)) => Err(e.to_string()),
        Err(e) => Err(format!("it is {e}")),
    }
}

/// Far beyond any real known_hosts (a line is ~100 bytes).
const MAX_FILE: u64 = 64 * 1024 * 1024;

/// The verdict for `host`'s `key`. The text is bytes: a line that is not
/// UTF-8 (a stray Latin-1 comment, corruption) is skipped on its own and can
/// never match, rather than making the whole file unreadable.
pub fn check(text: impl AsRef<[u8]>, host: &str, port: u16, key: &PublicKey) -> Verdict {
    let name = host_pattern(host, port);
    let mut changed = None;
    let mut trusted = false;
    for (i, raw) in text.as_ref().split(|b| *b == b'\n').enumerate() {
        let Ok(raw) = std::str::from_utf8(raw) else {
            continue;
        };
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

/// Appends a `host key` line, creating the file (mode 0600) and its folder
/// when missing. Existing lines are never rewritten: the line is appended
/// under an exclusive lock, and the file is checked again under that lock, so
/// two connections recording keys at once both keep their line and a key
/// recorded meanwhile by someone else is not duplicated or contradicted.
pub fn append(path: &Path, host: &str, port: u16, key: &PublicKey) -> std::io::Result<()> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    lock(&file)?;
    let mut text = Vec::new();
    (&mut file).take(MAX_FILE).read_to_end(&mut text)?;
    match check(&text, host, port, key) {
        Verdict::Trusted => return Ok(()),
        Verdict::Unknown => {}
        Verdict::Changed { line, .. } | Verdict::Revoked { line } => {
            return Err(std::io::Error::other(format!(
                "line {line} now records another key for this host"
            )))
        }
    }
    let openssh = key
        .to_openssh()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    // Drop the key's comment: known_hosts lines are `host algo base64`.
    let mut parts = openssh.split_whitespace();
    let (algo, b64) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut line = String::new();
    if text.last().is_some_and(|b| *b != b'\n') {
        line.push('\n');
    }
    line.push_str(&format!("{} {algo} {b64}\n", host_pattern(host, port)));
    // One write call on an O_APPEND descriptor: the line lands whole at the end.
    file.write_all(line.as_bytes())?;
    file.sync_data()
    // Closing the file releases the lock.
}

/// An exclusive flock, waiting a bounded time for another ocfo to finish.
fn lock(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        // SAFETY: flock(2) on a descriptor we own; no memory is passed.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::WouldBlock {
            return Err(err);
        }
        if std::time::Instant::now() > deadline {
            return Err(std::io::Error::other(
                "another process holds the lock on it for more than 10s",
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
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

    #[test]
    fn non_utf8_lines_are_skipped_not_the_whole_file() {
        let mut kh = b"# caf\xe9 \xff\n".to_vec();
        kh.extend_from_slice(format!("10.0.0.5 {KEY_A}\n").as_bytes());
        kh.extend_from_slice(b"10.0.0.5 \xff\xfe junk\n");
        assert!(matches!(
            check(&kh, "10.0.0.5", 22, &key(KEY_B)),
            Verdict::Changed { line: 2, .. }
        ));
        assert_eq!(check(&kh, "10.0.0.5", 22, &key(KEY_A)), Verdict::Trusted);
    }

    #[test]
    fn append_keeps_existing_bytes_and_refuses_a_changed_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let mut before = b"# caf\xe9\n".to_vec();
        before.extend_from_slice(format!("old {KEY_A}").as_bytes()); // no final newline
        std::fs::write(&path, &before).unwrap();
        append(&path, "new", 22, &key(KEY_B)).unwrap();
        let after = std::fs::read(&path).unwrap();
        assert!(after.starts_with(&before));
        assert_eq!(
            &after[before.len()..],
            format!("\nnew {KEY_B}\n").as_bytes()
        );
        // Recording again is a no-op; a different key for a known host is refused.
        append(&path, "new", 22, &key(KEY_B)).unwrap();
        assert!(append(&path, "old", 22, &key(KEY_B)).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), after);
    }

    #[test]
    fn unreadable_known_hosts_is_an_error_missing_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(&dir.path().join("absent")).unwrap(), Vec::<u8>::new());
        let err = read(dir.path()).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        assert!(append(dir.path(), "h", 22, &key(KEY_A)).is_err());
    }

    #[test]
    fn concurrent_appends_keep_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for i in 0..40 {
                        append(&path, &format!("h{t}-{i}"), 22, &key(KEY_A)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 80, "{text}");
        for t in 0..2 {
            for i in 0..40 {
                assert_eq!(
                    check(&text, &format!("h{t}-{i}"), 22, &key(KEY_A)),
                    Verdict::Trusted
                );
            }
        }
    }
}
