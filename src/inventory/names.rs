//! Whitelists for inventory strings that end up in remote shell scripts,
//! systemd units and git/npm command lines. Quoting at the point of use is the
//! other half of the defence; these rules make a hostile or mistyped value an
//! error at `validate` instead of a surprise on the host.

/// A POSIX-portable login name as `useradd` accepts it by default:
/// `[a-z_][a-z0-9_-]{0,31}`.
pub fn user_name(u: &str) -> Result<(), String> {
    let mut chars = u.chars();
    let ok = u.len() <= 32
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{u}` is not a valid user name: lower-case letters, digits, `_` and `-`, starting with a letter or `_`, at most 32 long"
        ))
    }
}

/// Where ssh connects: exactly a host name (RFC 1123 labels of letters,
/// digits and `-`; `_` too, which `~/.ssh/config` aliases often use), an
/// IPv4 or an IPv6 address. Nothing else: the value is printed, handed to
/// the resolver and to ssh's config matching, and an invisible or
/// right-to-left character would make two hosts look the same.
pub fn host(h: &str) -> Result<(), String> {
    if h.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let name = h.strip_suffix('.').unwrap_or(h);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let labels: Vec<&str> = name.split('.').collect();
    // All-digit labels are only ever a mistyped IPv4 address (`10.0.0.256`).
    let numeric = labels
        .iter()
        .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_digit()));
    if name.len() <= 253 && labels.iter().all(|l| label_ok(l)) && !numeric {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a host name or address: a host name (letters, digits, `-` and `_` in labels separated by `.`), an IPv4 or an IPv6 address",
            crate::terminal::escape(h)
        ))
    }
}

/// An npm version or dist-tag (`2026.9.6`, `1.2.3-beta.1+build`, `latest`).
pub fn package_version(v: &str) -> Result<(), String> {
    let ok = v.len() <= 64
        && !v.starts_with('-')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{v}` is not a version: letters, digits, `.`, `+` and `-` only, not starting with `-`"
        ))
    }
}

/// A git branch name: git's ref rules, narrowed to `[A-Za-z0-9._/-]`.
pub fn branch(b: &str) -> Result<(), String> {
    let chars_ok = b
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'));
    let shape_ok = b.len() <= 200
        && !b.starts_with(['-', '/', '.'])
        && !b.ends_with(['/', '.'])
        && !b.ends_with(".lock")
        && !b.contains("..")
        && !b.contains("//")
        && !b.contains("/.");
    if chars_ok && shape_ok {
        Ok(())
    } else {
        Err(format!(
            "`{b}` is not a valid git branch name: letters, digits, `.`, `_`, `/` and `-`; not starting with `-`, `/` or `.`, no `..`, not ending with `/`, `.` or `.lock`"
        ))
    }
}

/// Why a repository URL is refused, with a hint when there is a better way.
pub struct RepoProblem {
    pub message: String,
    pub hint: Option<&'static str>,
}

/// A git remote: an SSH (`git@host:path`) or URL form. It must not look like
/// an option, hold whitespace or control characters, or carry a password.
pub fn repo(r: &str) -> Result<(), RepoProblem> {
    let plain = |message: String| RepoProblem {
        message,
        hint: None,
    };
    if r.starts_with('-') {
        return Err(plain(
            "a repository must not start with `-` (git would read it as an option)".into(),
        ));
    }
    if r.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(plain(
            "a repository must not contain spaces or control characters".into(),
        ));
    }
    // `ext::<command>` runs a command; no remote-helper transport is needed
    // to clone a workspace.
    if let Some((transport, _)) = r.split_once("::") {
        let looks_like_a_transport = !transport.is_empty()
            && transport
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if looks_like_a_transport {
            return Err(plain(format!(
                "remote-helper transports (`{transport}::`) are not allowed; use an ssh, https or file URL"
            )));
        }
    }
    if let Some((_, rest)) = r.split_once("://") {
        let authority = rest.split('/').next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if userinfo.contains(':') {
                // The message must not quote the URL: it holds the password.
                return Err(RepoProblem {
                    message: "credentials in the repository URL (`user:password@`) would be stored in the inventory, the unit files and the hosts' git config".into(),
                    hint: Some("for an https:// remote put the token in `workspace.token` (a secret reference) and the user name in `workspace.token_username`; or use an SSH URL with `workspace.deploy_key`"),
                });
            }
        }
    }
    Ok(())
}

/// The name a CA certificate gets in the hosts' certificate folder: its file
/// stem reduced to `[A-Za-z0-9_-]`, plus `.crt` (what update-ca-certificates
/// reads). Two inventory entries with the same name would overwrite each other.
pub fn ca_certificate_name(local: &std::path::Path, index: usize) -> String {
    let stem = local
        .file_stem()
        .and_then(|s| s.to_str())
        .map(|s| {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect::<String>()
        })
        .unwrap_or_else(|| format!("ca-{index}"));
    format!("{stem}.crt")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        for ok in ["root", "openclaw", "_svc", "a-b_c9", &"a".repeat(32)] {
            assert!(user_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Root",
            "9a",
            "-a",
            "a b",
            "a;id",
            "$(id)",
            "a\0b",
            &"a".repeat(33),
        ] {
            assert!(user_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hosts() {
        for ok in [
            "vps1.example.com",
            "192.0.2.10",
            "2001:db8::1",
            "::1",
            "my_vps",
            "a-b.c",
            "host.",
            &format!("{}.com", "a".repeat(63)),
        ] {
            assert!(host(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-oProxyCommand=x",
            "vps1\u{202e}.example.com",
            "vps1\u{200b}",
            "ex\u{ad}ample.com",
            "\u{feff}vps1",
            "vps 1",
            "vps1\u{1b}[2J",
            "100.100.1.256",
            "a..b",
            ".a",
            "a-.b",
            "[::1]",
            "user@host",
            "host:22",
            "vps1.exаmple.com", // Cyrillic а
            &"a".repeat(64),
        ] {
            let e = host(bad).unwrap_err();
            assert!(!e.chars().any(crate::terminal::is_hidden), "{e:?}");
        }
    }

    #[test]
    fn versions() {
        for ok in ["2026.9.6", "1.2.3-beta.1+build.5", "latest"] {
            assert!(package_version(ok).is_ok(), "{ok}");
        }
        for bad in ["-v", "1.0; rm -rf /", "$(id)", "1.0\n", "a b", "1'2"] {
            assert!(package_version(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn branches() {
        for ok in ["main", "release/2026.9", "feat_x-1"] {
            assert!(branch(ok).is_ok(), "{ok}");
        }
        for bad in [
            "-f", "a..b", "$(id)", "a;b", "x'y", "a\0b", "a b", "a/", "/a", ".a", "a.lock", "a//b",
            "a/.b", "a@{1}", "a~1",
        ] {
            assert!(branch(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn repos() {
        for ok in [
            "git@github.com:you/ws.git",
            "ssh://git@host:2222/you/ws.git",
            "https://github.com/you/ws.git",
            "file:///srv/ws.git",
            "ssh://git@[::1]/you/ws.git",
            "git@[::1]:you/ws.git",
        ] {
            assert!(repo(ok).is_ok(), "{ok}");
        }
        for bad in [
            "-uhttps://x",
            "git@h:a b",
            "git@h:a\nb",
            "git@h:a\u{1b}b",
            "ext::sh%-c%touch%/tmp/x",
            "fd::3",
        ] {
            assert!(repo(bad).is_err(), "{bad:?}");
        }
        let p = repo("https://me:hunter2@github.com/you/ws.git")
            .err()
            .unwrap();
        assert!(p.message.contains("password") && !p.message.contains("hunter2"));
        assert!(p.hint.unwrap().contains("deploy_key"));
    }
}
