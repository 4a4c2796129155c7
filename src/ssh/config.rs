//! The part of `~/.ssh/config` ocfo honours: `Host` blocks (patterns with `*`,
//! `?`, `!`) setting HostName, User, Port and IdentityFile. As in OpenSSH the
//! first value found for a key wins.

use std::path::{Path, PathBuf};

use super::known_hosts::glob;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<String>,
}

/// Looks `alias` up in the config file text.
pub fn lookup(text: &str, alias: &str) -> HostConfig {
    let mut out = HostConfig::default();
    let mut active = true; // lines before the first Host apply to all
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once(|c: char| c.is_whitespace() || c == '=') {
            Some((k, v)) => (
                k.to_ascii_lowercase(),
                v.trim_start_matches(|c: char| c.is_whitespace() || c == '=')
                    .trim(),
            ),
            None => continue,
        };
        let value = value.trim_matches('"');
        match key.as_str() {
            "host" => active = host_matches(value, alias),
            // `Match` blocks need evaluation we do not do: skip their bodies.
            "match" => active = false,
            _ if !active => {}
            "hostname" => {
                out.hostname
                    .get_or_insert_with(|| value.replace("%h", alias));
            }
            "user" => {
                out.user.get_or_insert_with(|| value.to_string());
            }
            "port" if out.port.is_none() => out.port = value.parse().ok(),
            "identityfile" => out.identity_files.push(value.to_string()),
            _ => {}
        }
    }
    out
}

fn host_matches(patterns: &str, alias: &str) -> bool {
    let mut matched = false;
    for p in patterns.split_whitespace() {
        if let Some(neg) = p.strip_prefix('!') {
            if glob(neg, alias) {
                return false;
            }
        } else if glob(p, alias) {
            matched = true;
        }
    }
    matched
}

pub fn default_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".ssh/config"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_match_wins_and_patterns() {
        let text = "Host prod\n  HostName 203.0.113.10\n  User deploy\n  Port 2222\n  IdentityFile ~/.ssh/prod\n\
                    Host *\n  User nobody\n  IdentityFile ~/.ssh/id_ed25519\n\
                    Host !prod p*\n  Port 1\n";
        let c = lookup(text, "prod");
        assert_eq!(c.hostname.as_deref(), Some("203.0.113.10"));
        assert_eq!(c.user.as_deref(), Some("deploy"));
        assert_eq!(c.port, Some(2222));
        assert_eq!(c.identity_files, ["~/.ssh/prod", "~/.ssh/id_ed25519"]);
        let other = lookup(text, "pX");
        assert_eq!(other.user.as_deref(), Some("nobody"));
        assert_eq!(other.port, Some(1));
        assert_eq!(other.hostname, None);
    }

    #[test]
    fn equals_syntax_and_case() {
        let c = lookup("host a\nHOSTNAME=10.0.0.1\nport = 2200\n", "a");
        assert_eq!(c.hostname.as_deref(), Some("10.0.0.1"));
        assert_eq!(c.port, Some(2200));
    }
}
