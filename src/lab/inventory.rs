//! The lab's inventory: a complete working one for the two hosts.

use std::path::Path;

use super::sys::{other, LabError};
use super::{image, LabState, MIRROR_MOUNT, WORKSPACE_MOUNT};

/// The fake channel tokens, written as `{file: ...}` secrets in the lab
/// folder like any real credential: a literal token in the inventory would
/// make every command warn about the lab itself. Relative to the lab folder.
pub const FAKE_TOKEN_FILES: [&str; 2] = ["secrets/telegram_token", "secrets/discord_token"];

pub fn write(lab: &LabState) -> Result<(), LabError> {
    let p = lab.host("primary")?;
    let s = lab.host("standby")?;
    write_fake_tokens(&lab.dir, &lab.name)?;
    let cas: Vec<String> = super::machine_ca_certificates()
        .iter()
        .map(|c| c.display().to_string())
        .collect();
    let text = text(&Params {
        name: &lab.name,
        dir: &lab.dir,
        primary: &p.address,
        standby: &s.address,
        subnet: &lab.subnet,
        cas: &cas,
    });
    crate::fsutil::write_atomic(&lab.inventory_path(), text.as_bytes(), 0o644)
        .map_err(|e| other(format!("cannot write the inventory: {e}")))
}

/// Fake but distinct per lab (validate rejects one token on two channels),
/// mode 0600 like every secret file; rewritten only when missing.
fn write_fake_tokens(dir: &Path, name: &str) -> Result<(), LabError> {
    let values = [
        format!("123456789:lab-fake-telegram-token-{name}"),
        format!("lab-fake-discord-token-{name}"),
    ];
    for (file, value) in FAKE_TOKEN_FILES.iter().zip(values) {
        let path = dir.join(file);
        if !path.exists() {
            crate::fsutil::write_atomic(&path, format!("{value}\n").as_bytes(), 0o600)
                .map_err(|e| other(format!("cannot write {}: {e}", path.display())))?;
        }
    }
    Ok(())
}

struct Params<'a> {
    name: &'a str,
    dir: &'a Path,
    primary: &'a str,
    standby: &'a str,
    subnet: &'a str,
    cas: &'a [String],
}

fn text(p: &Params<'_>) -> String {
    let dir = p.dir.display();
    let cas: Vec<String> = p.cas.iter().map(|c| format!("\"{c}\"")).collect();
    format!(
        r#"# Written by `ocfo lab up` for lab `{name}`: two local hosts that behave like
# fresh VPSes. The bridge plays the tailnet, so Tailscale is off; Node comes
# from a local mirror; the workspace repository is shared by both hosts.
# Channel tokens are fake (files in secrets/): the gateways start, but no chat
# is reachable.
name: {name}

ssh:
  user: root
  port: 22
  identity_file: {dir}/id_ed25519
  known_hosts: {dir}/known_hosts

nodes:
  primary:
    host: {pa}
    private_address: {pa}
    channels: [telegram]
  standby:
    host: {sa}
    private_address: {sa}
    channels: [discord]

network:
  private_cidr: {subnet}
  tailscale:
    enabled: false
  extra_ca_certificates: [{cas}]

node:
  version: {node}
  mirror: "file://{mirror}"

openclaw:
  version: 2026.9.6
  port: 18789
  bind: custom
  gateway_token: {{file: {dir}/secrets/gateway_token}}
  model:
    primary: anthropic/claude-opus-4-6
    fallbacks: [anthropic/claude-sonnet-4-5]
  env: {{}}
  config: {{}}
  # The fake channels cannot drain against real APIs; do not wait minutes.
  stop_timeout: 20s

channels:
  telegram:
    botToken: {{file: {dir}/{tg}}}
    dmPolicy: allowlist
    allowFrom: ["tg:123456789"]
  discord:
    token: {{file: {dir}/{dc}}}
    dmPolicy: allowlist
    allowFrom: ["123456789012345678"]

workspace:
  repo: {ws}
  branch: main
  deploy_key: {{file: {dir}/workspace_deploy_key}}
  push_interval: 5m

# The monitor's defaults (interval 1s, timeout 800ms, fall 3, rise 5,
# hold_down 60s, stall_grace 10s), written out to show what is tunable.
monitor:
  interval: 1s
  timeout: 800ms
  fall: 3
  rise: 5
  hold_down: 60s
  stall_grace: 10s
  # The fake tokens never connect, so the primary's channel always fails its
  # readiness check: judge the gateway only.
  channel_failure: ignore

hardening:
  fail2ban: true
  unattended_upgrades: true
  password_authentication: false
"#,
        name = p.name,
        pa = p.primary,
        sa = p.standby,
        subnet = p.subnet,
        cas = cas.join(", "),
        node = image::NODE_VERSION,
        mirror = MIRROR_MOUNT,
        ws = WORKSPACE_MOUNT,
        tg = FAKE_TOKEN_FILES[0],
        dc = FAKE_TOKEN_FILES[1],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{load_str, LoadOptions};

    /// The generated inventory, with its secret files in place, validates
    /// with no diagnostic at all: no warning about literal credentials.
    #[test]
    fn lab_inventory_validates_without_warnings() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("secrets")).unwrap();
        std::fs::write(dir.join("secrets/gateway_token"), "0123abcd\n").unwrap();
        std::fs::write(dir.join("workspace_deploy_key"), "fake key\n").unwrap();
        write_fake_tokens(dir, "ops").unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "pem").unwrap();
        let text = text(&Params {
            name: "ops",
            dir,
            primary: "10.231.6.11",
            standby: "10.231.6.12",
            subnet: "10.231.6.0/24",
            cas: &[ca.display().to_string()],
        });
        assert!(!text.contains("lab-fake"), "a literal token in:\n{text}");
        let loaded = load_str(&text, &dir.join("inventory.yaml"), LoadOptions::default());
        assert!(
            loaded.report.diagnostics.is_empty(),
            "{}",
            loaded.report.render(false)
        );
        assert!(loaded.inventory.is_some());
        assert_eq!(loaded.secrets.values().count(), 4);
    }

    #[test]
    fn fake_tokens_are_private_distinct_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        write_fake_tokens(tmp.path(), "ops").unwrap();
        let read = |f: &str| std::fs::read_to_string(tmp.path().join(f)).unwrap();
        let (tg, dc) = (read(FAKE_TOKEN_FILES[0]), read(FAKE_TOKEN_FILES[1]));
        assert_ne!(tg, dc);
        for f in FAKE_TOKEN_FILES {
            let mode = std::fs::metadata(tmp.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        std::fs::write(tmp.path().join(FAKE_TOKEN_FILES[0]), "changed\n").unwrap();
        write_fake_tokens(tmp.path(), "ops").unwrap();
        assert_eq!(read(FAKE_TOKEN_FILES[0]), "changed\n");
    }
}
