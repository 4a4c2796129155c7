//! The lab's inventory: a complete working one for the two hosts.

use std::path::Path;

use super::sys::{other, LabError};
use super::{image, LabState, StandbyChannel, MIRROR_MOUNT, WORKSPACE_MOUNT};

/// The Discord variant's token, fake (no Discord stand-in): its gateway
/// loads the Discord plugin, arms and starts it, but never connects.
pub const FAKE_DISCORD_TOKEN_FILE: &str = "secrets/discord_token";

/// Every secret file a lab writes in its folder, relative to it.
pub fn secret_files() -> Vec<&'static str> {
    let mut v: Vec<&str> = super::world::TELEGRAM_TOKEN_FILES
        .iter()
        .map(|(_, f, _)| *f)
        .collect();
    v.extend([super::world::MODEL_KEY_FILE, FAKE_DISCORD_TOKEN_FILE]);
    v
}

pub fn write(lab: &LabState, world: &super::world::WorldConfig) -> Result<(), LabError> {
    let p = lab.host("primary")?;
    let s = lab.host("standby")?;
    let s2 = lab.hosts.get("standby2").map(|h| h.address.as_str());
    write_fake_discord_token(&lab.dir, &lab.name)?;
    let cas: Vec<String> = super::machine_ca_certificates()
        .iter()
        .map(|c| c.display().to_string())
        .collect();
    let text = text(&Params {
        name: &lab.name,
        dir: &lab.dir,
        primary: &p.address,
        standby: &s.address,
        standby2: s2,
        subnet: &lab.subnet,
        cas: &cas,
        telegram_root: &world.telegram_root(),
        model_url: &world.model_base_url(),
        standby_channel: lab.standby_channel,
        node_sha256: &image::node_mirror_sha256()?,
    });
    crate::fsutil::write_atomic(&lab.inventory_path(), text.as_bytes(), 0o644)
        .map_err(|e| other(format!("cannot write the inventory: {e}")))
}

/// Fake but distinct per lab (validate rejects one token on two channels),
/// mode 0600 like every secret file; rewritten only when missing.
fn write_fake_discord_token(dir: &Path, name: &str) -> Result<(), LabError> {
    let path = dir.join(FAKE_DISCORD_TOKEN_FILE);
    if !path.exists() {
        crate::fsutil::write_atomic(
            &path,
            format!("lab-fake-discord-token-{name}\n").as_bytes(),
            0o600,
        )
        .map_err(|e| other(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

struct Params<'a> {
    name: &'a str,
    dir: &'a Path,
    primary: &'a str,
    standby: &'a str,
    /// A chain's third host (`ocfo lab up --nodes 3`), its own Telegram bot.
    standby2: Option<&'a str>,
    subnet: &'a str,
    cas: &'a [String],
    telegram_root: &'a str,
    model_url: &'a str,
    standby_channel: StandbyChannel,
    /// `(arch, sha256)` of the lab mirror's tarball: the lab builds its own
    /// (from registry packages), so its checksum is not Node's.
    node_sha256: &'a (String, String),
}

/// The channel block of the chat world's bot for `TELEGRAM_TOKEN_FILES[i]`
/// (a node's own bot, named `<node>-bot`).
fn telegram_bot(p: &Params<'_>, i: usize) -> String {
    let (node, token_file, _) = super::world::TELEGRAM_TOKEN_FILES[i];
    format!(
        r#"  {node}-bot:
    type: telegram
    label: "@{name}_{node}_bot"
    botToken: {{file: {dir}/{token_file}}}
    apiRoot: "{root}"
    replyToMode: all
    dmPolicy: allowlist
    allowFrom: ["tg:{user}"]"#,
        name = p.name,
        dir = p.dir.display(),
        root = p.telegram_root,
        user = super::world::lab_user().id,
    )
}

fn text(p: &Params<'_>) -> String {
    let dir = p.dir.display();
    let cas: Vec<String> = p.cas.iter().map(|c| format!("\"{c}\"")).collect();
    let (standby_entry, standby_block) = match p.standby_channel {
        StandbyChannel::Telegram => ("standby-bot", telegram_bot(p, 1)),
        StandbyChannel::Discord => (
            "discord",
            format!(
                r#"  # The Discord variant: a real plugin load and arming, with a fake
  # token (there is no Discord stand-in), so its channel never connects.
  discord:
    token: {{file: {dir}/{FAKE_DISCORD_TOKEN_FILE}}}
    dmPolicy: allowlist
    allowFrom: ["123456789012345678"]"#
            ),
        ),
    };
    let (standby2_node, standby2_block) = match p.standby2 {
        None => (String::new(), String::new()),
        Some(address) => (
            format!(
                r#"
  # The chain's last node: it serves only when both others are down.
  standby2:
    host: {address}
    private_address: {address}
    channels: [standby2-bot]"#
            ),
            format!("\n{}", telegram_bot(p, 2)),
        ),
    };
    format!(
        r#"# Written by `ocfo lab up` for lab `{name}`: local hosts that behave like
# fresh VPSes. The bridge plays the tailnet, so Tailscale is off; Node comes
# from a local mirror; the workspace repository is shared by both hosts.
# The chat world on this machine stands in for Telegram's Bot API and for a
# model provider (docs/lab.md): `ocfo lab chat` writes to the bots.
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
    channels: [primary-bot]
  standby:
    host: {sa}
    private_address: {sa}
    channels: [{standby_entry}]{standby2_node}

network:
  private_cidr: {subnet}
  tailscale:
    enabled: false
  extra_ca_certificates: [{cas}]

node:
  version: {node}
  mirror: "file://{mirror}"
  # The lab mirror's own build of Node, so not the checksum ocfo pins.
  sha256: {{{node_arch}: {node_sum}}}

openclaw:
  version: 2026.9.6
  port: 18789
  bind: custom
  gateway_token: {{file: {dir}/secrets/gateway_token}}
  model:
    primary: lab/{model}
    fallbacks: []
  env: {{}}
  config:
    # The chat world's model stand-in, an OpenAI-compatible custom provider.
    models:
      providers:
        lab:
          baseUrl: "{model_url}"
          api: openai-completions
          apiKey: {{file: {dir}/{model_key}}}
          models:
            - id: {model}
              name: Lab echo model
              reasoning: false
              input: [text]
              contextWindow: 128000
              maxTokens: 4096
  # The lab's chats drain in seconds; do not wait minutes.
  stop_timeout: 20s

channels:
  # A Telegram bot per node, each its own token: the chat world's Bot API
  # stand-in serves both (apiRoot). Every answer quotes the message it
  # answers (replyToMode), so drills and tests know which question it is for.
  primary-bot:
    type: telegram
    label: "@{name}_primary_bot"
    botToken: {{file: {dir}/{tg_primary}}}
    apiRoot: "{root}"
    replyToMode: all
    dmPolicy: allowlist
    allowFrom: ["tg:{user}"]
{standby_block}{standby2_block}

workspace:
  repo: {ws}
  branch: main
  deploy_key: {{file: {dir}/workspace_deploy_key}}
  push_interval: 5m

# The monitor's defaults (interval 1s, timeout 800ms, fall 3 over 1250ms,
# rise 5, hold_down 60s, stall_grace 10s), written out to show what is tunable.
monitor:
  interval: 1s
  timeout: 800ms
  fall: 3
  fall_window: 1250ms
  rise: 5
  hold_down: 60s
  stall_grace: 10s

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
        node_arch = p.node_sha256.0,
        node_sum = p.node_sha256.1,
        mirror = MIRROR_MOUNT,
        ws = WORKSPACE_MOUNT,
        tg_primary = super::world::TELEGRAM_TOKEN_FILES[0].1,
        root = p.telegram_root,
        user = super::world::lab_user().id,
        model_url = p.model_url,
        model_key = super::world::MODEL_KEY_FILE,
        model = super::world::model_id(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{load_str, LoadOptions};

    /// Loads a lab inventory, which must validate with no diagnostic at all.
    fn load_clean(text: &str, dir: &Path) -> crate::inventory::Loaded {
        let loaded = load_str(text, &dir.join("inventory.yaml"), LoadOptions::default());
        assert!(
            loaded.report.diagnostics.is_empty(),
            "{}",
            loaded.report.render(false)
        );
        loaded
    }

    fn lab_text(dir: &Path, standby_channel: StandbyChannel) -> String {
        lab_text_with(dir, standby_channel, None)
    }

    fn lab_text_with(
        dir: &Path,
        standby_channel: StandbyChannel,
        standby2: Option<&str>,
    ) -> String {
        std::fs::create_dir_all(dir.join("secrets")).unwrap();
        for f in ["secrets/gateway_token", "workspace_deploy_key"]
            .into_iter()
            .chain(secret_files())
        {
            std::fs::write(dir.join(f), format!("value-of-{f}-0123456789\n")).unwrap();
        }
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "pem").unwrap();
        text(&Params {
            name: "ops",
            dir,
            primary: "10.231.6.11",
            standby: "10.231.6.12",
            standby2,
            subnet: "10.231.6.0/24",
            cas: &[ca.display().to_string()],
            telegram_root: "http://10.231.6.1:8081",
            model_url: "http://10.231.6.1:8082/v1",
            standby_channel,
            node_sha256: &("x64".into(), "0123abcd".repeat(8)),
        })
    }

    /// Both variants, with their secret files in place, validate with no
    /// diagnostic at all: no warning about literal credentials.
    #[test]
    fn lab_inventories_validate_without_warnings() {
        for (variant, standby_kind) in [
            (StandbyChannel::Telegram, "telegram"),
            (StandbyChannel::Discord, "discord"),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let text = lab_text(tmp.path(), variant);
            assert!(!text.contains("value-of"), "a literal secret in:\n{text}");
            let loaded = load_clean(&text, tmp.path());
            let inv = loaded.inventory.as_ref().unwrap();
            assert_eq!(
                inv.channel_ids(crate::inventory::Role::Primary),
                ["telegram"]
            );
            assert_eq!(
                inv.channel_ids(crate::inventory::Role::Standby),
                [standby_kind]
            );
            // Gateway token, deploy key, the model key, two channel tokens.
            assert_eq!(loaded.secrets.values().count(), 5);
            // The lab mirror's build is what the hosts check against.
            assert_eq!(inv.node.sha256["x64"], "0123abcd".repeat(8));
        }
    }

    /// `lab up --nodes 3`: a chain whose third node owns a third bot, and
    /// whose monitor there waits for the standby as well as the primary.
    #[test]
    fn a_three_node_lab_is_a_chain() {
        let tmp = tempfile::tempdir().unwrap();
        let text = lab_text_with(tmp.path(), StandbyChannel::Telegram, Some("10.231.6.13"));
        let loaded = load_clean(&text, tmp.path());
        let inv = loaded.inventory.as_ref().unwrap();
        use crate::inventory::Role;
        assert_eq!(inv.roles(), [Role::Primary, Role::Standby, Role::Standby2]);
        assert_eq!(inv.channel_ids(Role::Standby2), ["telegram"]);
        assert_eq!(loaded.secrets.values().count(), 6);
        let m = crate::render::monitor_config(inv, Role::Standby2);
        assert_eq!(m.probe.urls, ["http://10.231.6.11:18789/readyz"]);
        assert_eq!(
            m.probe.standbys_before,
            ["http://10.231.6.12:18789/healthz"]
        );
        assert_eq!(m.gateway.health_url, "http://10.231.6.13:18789/healthz");
        let standby = crate::render::monitor_config(inv, Role::Standby);
        assert!(standby.probe.standbys_before.is_empty());
        assert_ne!(
            standby.switches.unwrap().token_files,
            m.switches.unwrap().token_files,
            "each standby is handed its own bot's token"
        );
    }

    #[test]
    fn the_fake_discord_token_is_private_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        write_fake_discord_token(tmp.path(), "ops").unwrap();
        let path = tmp.path().join(FAKE_DISCORD_TOKEN_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, "changed\n").unwrap();
        write_fake_discord_token(tmp.path(), "ops").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "changed\n");
    }
}
