//! The SSH transport: russh on tokio, one connection per host.
//!
//! `config` reads `~/.ssh/config`, `known_hosts` verifies host keys (an
//! unknown host is refused unless `--accept-new-host-keys`; a changed key is
//! always refused), `session` authenticates (a configured key only, through the agent
//! when it is passphrase-protected; otherwise agent keys, then default key files)
//! and runs scripts and writes files over channels of the one connection.

pub mod config;
pub mod known_hosts;
mod session;

use std::path::PathBuf;

pub use session::{public_key_of, put_script, ConnectOptions, HostSession, SshTarget};

use crate::inventory::{Inventory, Role};
use crate::secrets::expand_tilde;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot connect to {host}: {reason}")]
    Connect { host: String, reason: String },
    #[error("{host} is not in {known_hosts} (host key {fingerprint}); check the fingerprint, then re-run with --accept-new-host-keys to record it")]
    UnknownHostKey {
        host: String,
        fingerprint: String,
        known_hosts: String,
    },
    #[error("HOST KEY CHANGED for {host}: it presents {fingerprint}, but {known_hosts}:{line} records {recorded}. Someone may be intercepting the connection, or the host was reinstalled; ocfo refuses to connect. If the change is expected, remove line {line} of {known_hosts} and re-run with --accept-new-host-keys")]
    ChangedHostKey {
        host: String,
        fingerprint: String,
        recorded: String,
        known_hosts: String,
        line: usize,
    },
    #[error("the host key of {host} ({fingerprint}) is marked @revoked in {known_hosts}:{line}; ocfo refuses to connect")]
    RevokedHostKey {
        host: String,
        fingerprint: String,
        known_hosts: String,
        line: usize,
    },
    #[error(
        "{known_hosts}: {reason}; ocfo does not connect to {host} without verifying its host key"
    )]
    KnownHosts {
        host: String,
        known_hosts: String,
        reason: String,
    },
    #[error("{}", auth_message(.host, .tried, .encrypted))]
    Auth {
        host: String,
        tried: Vec<String>,
        encrypted: Vec<String>,
    },
    #[error("{host}: passwordless sudo is not available ({stderr}); give the login user NOPASSWD sudo, or log in as root")]
    Sudo { host: String, stderr: String },
    #[error("{host}: `{command}` did not finish within {secs}s")]
    Timeout {
        host: String,
        command: String,
        secs: u64,
    },
    #[error("{host}: `{command}` failed: {stderr}")]
    Remote {
        host: String,
        command: String,
        stderr: String,
    },
}

fn auth_message(host: &str, tried: &[String], encrypted: &[String]) -> String {
    let mut s = format!("authentication failed for {host}");
    if tried.is_empty() && encrypted.is_empty() {
        s.push_str(": no key to try (no ssh-agent keys, no identity file found); set ssh.identity_file or load a key with ssh-add");
    } else if !tried.is_empty() {
        s.push_str(&format!("; tried {}", tried.join(", ")));
    }
    for e in encrypted {
        s.push_str(&format!("; {e} is passphrase-protected: add it to your agent with `ssh-add {e}` so ocfo can use it"));
    }
    s
}

/// The connection target for a node: the inventory's settings, with
/// `~/.ssh/config` filling HostName, and User, Port and IdentityFile where the
/// inventory does not set them.
pub fn target_for(inv: &Inventory, role: Role, ssh_config: Option<&str>) -> SshTarget {
    let node = inv.node(role);
    let ssh = &node.ssh;
    let cfg = ssh_config
        .map(|t| config::lookup(t, &node.host))
        .unwrap_or_default();
    let mut identity_files: Vec<PathBuf> = Vec::new();
    if let Some(f) = &ssh.identity_file {
        identity_files.push(crate::inventory::laptop_path(inv, f));
    }
    identity_files.extend(cfg.identity_files.iter().map(|f| expand_tilde(f)));
    // A configured key is the one to use: offering every agent key first
    // spends sshd's MaxAuthTries and trips fail2ban (OpenSSH's IdentitiesOnly).
    let identities_only = !identity_files.is_empty();
    if !identities_only {
        for default in ["~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"] {
            identity_files.push(expand_tilde(default));
        }
    }
    SshTarget {
        name: role.to_string(),
        hostname: cfg.hostname.unwrap_or_else(|| node.host.clone()),
        port: if ssh.port_explicit {
            ssh.port
        } else {
            cfg.port.unwrap_or(ssh.port)
        },
        user: if ssh.user_explicit {
            ssh.user.clone()
        } else {
            cfg.user.unwrap_or_else(|| ssh.user.clone())
        },
        identity_files,
        identities_only,
        known_hosts: crate::inventory::laptop_path(inv, &ssh.known_hosts),
    }
}

/// Connects to a node as the inventory says, reading `~/.ssh/config`.
pub async fn connect_node(
    inv: &Inventory,
    role: Role,
    opts: ConnectOptions,
) -> Result<HostSession, SshError> {
    let text = config::default_path().and_then(|p| std::fs::read_to_string(p).ok());
    let target = target_for(inv, role, text.as_deref());
    HostSession::connect(&target, opts).await
}

/// What `deploy`, `status`, `switchover` and `drill` call to get a
/// [`Host`](crate::engine::Host) for a node: [`connect_node`] with strict
/// host keys unless `accept_new_host_keys`, the error as text.
pub async fn connect(
    inv: &Inventory,
    role: Role,
    accept_new_host_keys: bool,
) -> Result<HostSession, String> {
    let opts = ConnectOptions {
        accept_new_host_keys,
        ..Default::default()
    };
    connect_node(inv, role, opts)
        .await
        .map_err(|e| e.to_string())
}

/// Both nodes at once, with strict host keys, for the commands that act on
/// the pair (`switchover`, `drill`): one error if either cannot be reached
/// (the other's connection is closed first).
pub async fn connect_pair(inv: &Inventory) -> Result<(HostSession, HostSession), String> {
    let (p, s) = tokio::join!(
        connect(inv, Role::Primary, false),
        connect(inv, Role::Standby, false)
    );
    match (p, s) {
        (Ok(p), Ok(s)) => Ok((p, s)),
        (Ok(one), Err(e)) | (Err(e), Ok(one)) => {
            one.close().await;
            Err(e)
        }
        (Err(e), Err(_)) => Err(e),
    }
}

/// Several nodes at once, in `roles`' order, with strict host keys: one
/// error if any cannot be reached (the others' connections closed first).
pub async fn connect_all(inv: &Inventory, roles: &[Role]) -> Result<Vec<HostSession>, String> {
    let results = futures::future::join_all(roles.iter().map(|r| connect(inv, *r, false))).await;
    if let Some(e) = results.iter().find_map(|r| r.as_ref().err()).cloned() {
        for s in results.into_iter().flatten() {
            s.close().await;
        }
        return Err(e);
    }
    Ok(results.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{load_file, LoadOptions};

    fn inventory() -> Inventory {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid.yaml");
        let loaded = load_file(
            &path,
            LoadOptions {
                resolve_secrets: false,
            },
        );
        loaded.inventory.expect("the fixture is valid")
    }

    #[test]
    fn a_configured_identity_file_is_the_only_one_offered() {
        let inv = inventory();
        let t = target_for(
            &inv,
            Role::Primary,
            Some("Host *\n  IdentityFile /keys/prod\n"),
        );
        assert!(t.identities_only);
        assert_eq!(t.identity_files, [PathBuf::from("/keys/prod")]);
        let t = target_for(&inv, Role::Primary, None);
        assert!(!t.identities_only);
        assert!(t
            .identity_files
            .iter()
            .any(|p| p.ends_with(".ssh/id_ed25519")));
    }
}
