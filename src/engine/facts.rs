//! Host facts gathered once per host in one round trip, before any task.

use std::collections::BTreeMap;

use super::host::{Host, HostError};

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Facts {
    /// `/etc/os-release` ID, e.g. `debian`, `ubuntu`.
    pub os_id: String,
    pub os_version: String,
    pub os_codename: String,
    /// `uname -m`, e.g. `x86_64`, `aarch64`.
    pub arch: String,
    /// `systemd` when systemd is PID 1.
    pub init: String,
    pub users: Vec<String>,
    pub hostname: String,
    /// Seconds since the host booted when facts were read (the clock of
    /// systemd's `*TimestampMonotonic`): what this run started after.
    pub uptime_at_start: f64,
    /// Handlers an earlier run's changes asked for and that never ran
    /// (`layout::PENDING_HANDLERS`): that run failed or was cut short.
    pub pending_handlers: Vec<String>,
}

/// The releases ocfo is verified on: deploy, drift repair, a drill with the
/// chat world and the scanners pass there in CI, on lab hosts of each
/// (`ocfo lab up --suite`; docs/deploy.md, "Supported hosts").
pub const SUPPORTED_RELEASES: &[(&str, &str, &str)] = &[
    ("debian", "12", "Debian 12 (bookworm)"),
    ("debian", "13", "Debian 13 (trixie)"),
    ("ubuntu", "24.04", "Ubuntu 24.04 (noble)"),
];

impl Facts {
    /// `None` when ocfo supports this host's release; else why not, with
    /// what is supported.
    pub fn unsupported_release(&self) -> Option<String> {
        if SUPPORTED_RELEASES
            .iter()
            .any(|(id, v, _)| *id == self.os_id && *v == self.os_version)
        {
            return None;
        }
        let named = SUPPORTED_RELEASES
            .iter()
            .map(|r| r.2)
            .collect::<Vec<_>>()
            .join(", ");
        let found = format!("{} {} ({})", self.os_id, self.os_version, self.os_codename);
        Some(format!(
            "`{found}` is not a supported release (supported: {named})"
        ))
    }

    /// Node.js's name for the architecture (`x64`, `arm64`).
    pub fn node_arch(&self) -> Option<&'static str> {
        match self.arch.as_str() {
            "x86_64" | "amd64" => Some("x64"),
            "aarch64" | "arm64" => Some("arm64"),
            _ => None,
        }
    }

    pub fn has_user(&self, user: &str) -> bool {
        self.users.iter().any(|u| u == user)
    }
}

pub const SCRIPT: &str = r#"
. /etc/os-release 2>/dev/null
echo "os_id=${ID:-unknown}"
echo "os_version=${VERSION_ID:-}"
echo "os_codename=${VERSION_CODENAME:-}"
echo "arch=$(uname -m)"
if [ -d /run/systemd/system ]; then echo init=systemd; else echo "init=$(cat /proc/1/comm 2>/dev/null)"; fi
echo "hostname=$(hostname 2>/dev/null || cat /etc/hostname)"
echo "users=$(getent passwd | cut -d: -f1 | tr '\n' ',')"
echo "uptime=$(cut -d' ' -f1 /proc/uptime)"
echo "pending_handlers=$(head -c 4096 /var/lib/ocfo/pending-handlers 2>/dev/null | tr '\n' ',')"
"#;

pub async fn gather<H: Host>(host: &H) -> Result<Facts, HostError> {
    let out = host.check(SCRIPT).await?;
    Ok(parse(&out.stdout))
}

pub fn parse(text: &str) -> Facts {
    let kv: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| kv.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    Facts {
        os_id: get("os_id"),
        os_version: get("os_version"),
        os_codename: get("os_codename"),
        arch: get("arch"),
        init: get("init"),
        hostname: get("hostname"),
        uptime_at_start: get("uptime").parse().unwrap_or(0.0),
        pending_handlers: get("pending_handlers")
            .split(',')
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .collect(),
        users: get("users")
            .split(',')
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_the_script_output() {
        let f = super::parse("os_id=debian\nos_version=12\nos_codename=bookworm\narch=x86_64\ninit=systemd\nhostname=h\nusers=root,daemon,openclaw,\n");
        assert_eq!(f.os_id, "debian");
        assert_eq!(f.node_arch(), Some("x64"));
        assert!(f.has_user("openclaw"));
        assert!(!f.has_user("nobody2"));
        assert!(f.pending_handlers.is_empty());
        let f = super::parse("pending_handlers=restart gateway,reload sshd,\n");
        assert_eq!(f.pending_handlers, ["restart gateway", "reload sshd"]);
        assert!(super::SCRIPT.contains(crate::layout::PENDING_HANDLERS));
    }
}
