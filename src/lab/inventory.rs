//! The lab's inventory: a complete working one for the two hosts.

use super::sys::{other, LabError};
use super::{image, LabState, MIRROR_MOUNT, WORKSPACE_MOUNT};

pub fn write(lab: &LabState) -> Result<(), LabError> {
    let p = lab.host("primary")?;
    let s = lab.host("standby")?;
    let dir = lab.dir.display();
    let cas: Vec<String> = super::machine_ca_certificates()
        .iter()
        .map(|c| format!("\"{}\"", c.display()))
        .collect();
    let text = format!(
        r#"# Written by `ocfo lab up` for lab `{name}`: two local hosts that behave like
# fresh VPSes. The bridge plays the tailnet, so Tailscale is off; Node comes
# from a local mirror; the workspace repository is shared by both hosts.
# Channel tokens are fake: the gateways start, but no chat is reachable.
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
    botToken: "123456789:lab-fake-telegram-token-{name}"
    dmPolicy: allowlist
    allowFrom: ["tg:123456789"]
  discord:
    token: "lab-fake-discord-token-{name}"
    dmPolicy: allowlist
    allowFrom: ["123456789012345678"]

workspace:
  repo: {ws}
  branch: main
  deploy_key: {{file: {dir}/workspace_deploy_key}}
  push_interval: 5m

monitor:
  interval: 2s
  timeout: 1500ms
  fall: 3
  rise: 5
  hold_down: 60s
  # The fake tokens never connect, so the primary's channel always fails its
  # readiness check: judge the gateway only.
  channel_failure: ignore

hardening:
  fail2ban: true
  unattended_upgrades: true
  password_authentication: false
"#,
        name = lab.name,
        pa = p.address,
        sa = s.address,
        subnet = lab.subnet,
        cas = cas.join(", "),
        node = image::NODE_VERSION,
        mirror = MIRROR_MOUNT,
        ws = WORKSPACE_MOUNT,
    );
    crate::fsutil::write_atomic(&lab.inventory_path(), text.as_bytes(), 0o644)
        .map_err(|e| other(format!("cannot write the inventory: {e}")))
}
