//! The typed inventory: what `load` produces once every check has passed.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::diagnostics::Location;
use crate::secrets::SecretRef;

use super::units::{Cidr, Version};

/// The architectures the release process builds static Linux binaries for
/// (Rust's names, which are also `uname -m`'s): the keys of
/// `monitor.binary_sha256`.
pub const MONITOR_ARCHS: &[&str] = &["x86_64", "aarch64"];

#[derive(Debug, Clone)]
pub struct Inventory {
    /// The file it was read from, for messages and relative paths.
    pub file: PathBuf,
    pub name: String,
    pub primary: NodeSpec,
    pub standby: NodeSpec,
    /// The chain's last node (`nodes.standby2`): it serves only when the
    /// primary and the standby are both down, as it sees them.
    pub standby2: Option<NodeSpec>,
    pub network: Network,
    pub node: NodeJs,
    pub openclaw: OpenClaw,
    /// Channel blocks in file order, each owned by exactly one node.
    pub channels: IndexMap<String, Channel>,
    pub workspace: Workspace,
    pub monitor: MonitorSettings,
    pub hardening: Hardening,
    /// The operator's own tasks (`tasks: FILE`), run after ocfo's.
    pub tasks: Option<super::tasks::UserTasks>,
}

impl Inventory {
    /// Every node, in priority order.
    pub fn nodes(&self) -> Vec<&NodeSpec> {
        [&self.primary, &self.standby]
            .into_iter()
            .chain(self.standby2.as_ref())
            .collect()
    }

    /// The inventory's roles, in priority order.
    pub fn roles(&self) -> Vec<Role> {
        self.nodes().iter().map(|n| n.role).collect()
    }

    /// The node of `role`; a role the inventory lacks (`standby2` of a pair)
    /// reads as the standby: callers take roles from `roles()`.
    pub fn node(&self, role: Role) -> &NodeSpec {
        match role {
            Role::Primary => &self.primary,
            Role::Standby => &self.standby,
            Role::Standby2 => self.standby2.as_ref().unwrap_or(&self.standby),
        }
    }

    /// The node's own channel blocks, in the order the node lists them.
    pub fn channels_of(&self, role: Role) -> impl Iterator<Item = &Channel> {
        self.node(role)
            .channels
            .iter()
            .filter_map(|c| self.channels.get(c))
    }

    /// OpenClaw's ids of the node's channels (`telegram`, `discord`): what
    /// its config, `/readyz` and `channels.status` call them.
    pub fn channel_ids(&self, role: Role) -> Vec<String> {
        self.channels_of(role).map(|c| c.kind.clone()).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Standby,
    /// The third node of a chain: a standby behind the standby.
    Standby2,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Primary, Role::Standby, Role::Standby2];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Standby => "standby",
            Role::Standby2 => "standby2",
        }
    }

    /// Runs the monitor and serves only when the nodes before it are down.
    pub fn is_standby(self) -> bool {
        self != Role::Primary
    }

    /// The standbys before this node in the chain: alive, they take over
    /// before it does.
    pub fn standbys_before(self) -> &'static [Role] {
        match self {
            Role::Primary | Role::Standby => &[],
            Role::Standby2 => &[Role::Standby],
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSettings {
    pub user: String,
    pub port: u16,
    pub identity_file: Option<String>,
    pub known_hosts: String,
    /// Whether `user` / `port` were written in the inventory; when not,
    /// `~/.ssh/config` may set them for the host.
    pub user_explicit: bool,
    pub port_explicit: bool,
}

#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub role: Role,
    /// Address or `~/.ssh/config` alias used for SSH.
    pub host: String,
    /// Where the standby probes this node's gateway.
    pub private_address: IpAddr,
    pub channels: Vec<String>,
    /// The inventory's `ssh` defaults with this node's overrides applied.
    pub ssh: SshSettings,
}

#[derive(Debug, Clone)]
pub struct Network {
    pub private_cidr: Cidr,
    pub tailscale: Tailscale,
    pub extra_ca_certificates: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Tailscale {
    pub enabled: bool,
    pub auth_key: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct NodeJs {
    pub version: Version,
    pub mirror: String,
    /// `node.sha256`: the tarball's SHA-256 per Node arch (`x64`, `arm64`),
    /// for a version ocfo does not pin or a build of one's own
    /// (`inventory::node_pins`).
    pub sha256: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bind {
    Loopback,
    Lan,
    Tailnet,
    Custom,
}

impl Bind {
    pub const NAMES: [&'static str; 4] = ["loopback", "lan", "tailnet", "custom"];

    pub fn parse(s: &str) -> Option<Bind> {
        Some(match s {
            "loopback" => Bind::Loopback,
            "lan" => Bind::Lan,
            "tailnet" => Bind::Tailnet,
            "custom" => Bind::Custom,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Bind::Loopback => "loopback",
            Bind::Lan => "lan",
            Bind::Tailnet => "tailnet",
            Bind::Custom => "custom",
        }
    }
}

#[derive(Debug, Clone)]
pub struct OpenClaw {
    pub version: String,
    pub port: u16,
    pub bind: Bind,
    pub gateway_token: Secret,
    pub model: Model,
    /// Extra variables for the gateway's environment file.
    pub env: IndexMap<String, Value>,
    /// Raw OpenClaw config deep-merged into both nodes' files (a mapping).
    pub config: Value,
    /// The system user that runs the gateway.
    pub user: String,
    /// How long the gateway may drain when stopped (systemd TimeoutStopSec).
    pub stop_timeout: Duration,
    /// How tightly systemd confines the gateway (docs/security.md).
    pub sandbox: Sandbox,
    /// The npm tree to install `version` from: ocfo's own lock for the
    /// version, or `openclaw.lockfile` (`inventory::openclaw_locks`).
    pub lock: super::openclaw_locks::Lock,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sandbox {
    /// Read-only system, other homes hidden, no privileged system calls.
    #[default]
    Strict,
    /// Read-only system only, for agents whose tools need more.
    Relaxed,
}

impl Sandbox {
    pub fn as_str(self) -> &'static str {
        match self {
            Sandbox::Strict => "strict",
            Sandbox::Relaxed => "relaxed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Model {
    pub primary: String,
    pub fallbacks: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Channel {
    /// The entry's name under `channels`: what nodes list.
    pub name: String,
    /// OpenClaw's channel id (`telegram`, `discord`, ...): the entry's `type`,
    /// or its name when it has none (the short form, `telegram: {...}`).
    pub kind: String,
    /// How announcements name this channel to its users (`label`), e.g.
    /// "@my_assistant_bot on Telegram".
    pub label: Option<String>,
    /// OpenClaw's own keys for the channel, passed through (a mapping):
    /// ocfo's keys (`type`, `label`) are not in it.
    pub settings: Value,
    pub loc: Location,
}

impl Channel {
    /// What a user is told to write to: the label, else the platform's name.
    pub fn display_name(&self) -> String {
        match &self.label {
            Some(l) => l.clone(),
            None => platform_name(&self.kind),
        }
    }
}

/// "Telegram", "Discord", ...: a channel id as people write it.
pub fn platform_name(kind: &str) -> String {
    match kind {
        "whatsapp" => "WhatsApp".into(),
        "msteams" => "Microsoft Teams".into(),
        "imessage" => "iMessage".into(),
        "googlechat" => "Google Chat".into(),
        _ => {
            let mut c = kind.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
    }
}

#[derive(Debug, Clone)]
pub struct Workspace {
    pub repo: String,
    pub branch: String,
    pub auth: WorkspaceAuth,
    pub push_interval: Duration,
    /// The agent's conversations travel too (`backup git`, on
    /// [`crate::layout::CONVERSATION_BRANCH`]); on unless turned off.
    pub conversations: bool,
    /// How often the primary checks for new conversation to snapshot.
    pub conversation_interval: Duration,
}

/// How git authenticates to the workspace remote.
#[derive(Debug, Clone)]
pub enum WorkspaceAuth {
    /// An SSH remote (`git@host:path`, `ssh://`, or a local path): the
    /// deploy key, through `core.sshCommand`.
    DeployKey(Secret),
    /// An `https://` remote with a token, handed to git by ocfo's credential
    /// helper from a 0600 file: never in the URL, a command line or git's config.
    Token { token: Secret, username: String },
    /// An `https://` remote without credentials: a public repository, which
    /// can be cloned and pulled but not pushed to.
    Anonymous,
}

impl WorkspaceAuth {
    /// Name used by playbooks (`when: workspace.auth == "token"`).
    pub fn as_str(&self) -> &'static str {
        match self {
            WorkspaceAuth::DeployKey(_) => "deploy_key",
            WorkspaceAuth::Token { .. } => "token",
            WorkspaceAuth::Anonymous => "none",
        }
    }
}

impl Workspace {
    /// `host[:port]` of an `https://` remote, the only server the credential
    /// helper answers for.
    pub fn https_host(&self) -> Option<&str> {
        let rest = self.repo.strip_prefix("https://")?;
        let authority = rest.split(['/', '?', '#']).next()?;
        Some(authority.rsplit('@').next().unwrap_or(authority))
    }
}

/// How the standby probes the primary (`monitor.probe`), in the inventory
/// and in the monitor's config alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeMode {
    /// `/healthz`: the gateway process is live (blind to a drain).
    Healthz,
    /// `/readyz` with the gateway token: not draining, started, and the
    /// channels judged by `channel_failure` (the default).
    Readyz,
}

/// `monitor.fall_window`: longer than a 1 s network blip with room to
/// spare, short enough that a cut primary is replaced within 3 s (issue 19).
pub const DEFAULT_FALL_WINDOW: Duration = Duration::from_millis(1250);

#[derive(Debug, Clone)]
pub struct MonitorSettings {
    pub interval: Duration,
    pub timeout: Duration,
    pub fall: u32,
    /// How long the primary must keep failing before a promotion.
    pub fall_window: Duration,
    pub rise: u32,
    pub hold_down: Duration,
    pub probe: ProbeMode,
    pub webhook: Option<Secret>,
    /// This many promotions within `flap_window` pin the standby promoted.
    pub flap_max_promotions: u32,
    pub flap_window: Duration,
    pub standby: StandbyMode,
    pub channel_failure: ChannelFailure,
    pub channel_grace: Duration,
    /// How long a primary that accepts the connection but does not answer
    /// (busy, e.g. loading a plugin) may stay so before it counts as down.
    pub stall_grace: Duration,
    /// Where the standby fetches a static Linux ocfo when the laptop's own
    /// binary cannot run there: `<base>/v<ver>/ocfo-<ver>-<arch>-linux`.
    pub binary_source: Option<String>,
    /// SHA-256 of that file per architecture (`x86_64`, `aarch64`), pinned
    /// by the operator; checked against what this ocfo was built to vouch for.
    pub binary_sha256: std::collections::BTreeMap<String, String>,
    /// What the standby tells its users at takeover and failback.
    pub announce: super::announce::Announce,
    /// A warm standby's watching gateway is restarted (and armed again)
    /// while the primary is healthy once its memory passes this many MiB;
    /// 0: never.
    pub recycle_above_mib: u32,
}

/// What a primary whose gateway serves but whose channels all fail means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelFailure {
    /// Down, once every channel has failed for `channel_grace`: the
    /// standby's own channel is then the user's only way in.
    #[default]
    Failover,
    /// Only the gateway itself counts.
    Ignore,
}

/// How the standby waits: gateway stopped (cold), or running with its
/// channels and automations switched off (warm).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StandbyMode {
    #[default]
    Warm,
    Cold,
}

impl StandbyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StandbyMode::Warm => "warm",
            StandbyMode::Cold => "cold",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Hardening {
    pub fail2ban: bool,
    pub unattended_upgrades: bool,
    pub password_authentication: bool,
}

/// A secret reference and where in the inventory it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Secret {
    pub reference: SecretRef,
    /// Key path, e.g. `channels.telegram.botToken`: the key of its resolved value.
    pub path: String,
    pub loc: Location,
}

/// A free-form value (channel blocks, `openclaw.config`, `openclaw.env`) in
/// which any leaf may be a secret reference.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Value>),
    Map(IndexMap<String, Value>),
    Secret(Secret),
}

impl Value {
    pub fn as_map(&self) -> Option<&IndexMap<String, Value>> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map().and_then(|m| m.get(key))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Every secret reference inside, depth first.
    pub fn secrets(&self) -> Vec<&Secret> {
        let mut out = Vec::new();
        self.collect_secrets(&mut out);
        out
    }

    fn collect_secrets<'a>(&'a self, out: &mut Vec<&'a Secret>) {
        match self {
            Value::Secret(s) => out.push(s),
            Value::Seq(items) => items.iter().for_each(|v| v.collect_secrets(out)),
            Value::Map(m) => m.values().for_each(|v| v.collect_secrets(out)),
            _ => {}
        }
    }
}

/// Whether a key names something that is usually a credential (`botToken`,
/// `appSecret`, `password`, `apiKey`, `private_key`): its last word is one
/// of the credential words. `maxTokens`, `tokenLimit` or `keyFile` are not.
pub fn key_looks_secret(key: &str) -> bool {
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if c == '_' || c == '-' || c == '.' {
            words.push(std::mem::take(&mut word));
        } else if c.is_ascii_uppercase() && prev_lower {
            // camelCase: a new word (an all-caps run stays one word).
            words.push(std::mem::take(&mut word));
            word.push(c.to_ascii_lowercase());
        } else {
            word.push(c.to_ascii_lowercase());
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
    }
    words.push(word);
    let last = words
        .iter()
        .rev()
        .find(|w| !w.is_empty())
        .map_or("", String::as_str);
    matches!(
        last,
        "token"
            | "secret"
            | "password"
            | "passwd"
            | "passphrase"
            | "key"
            | "apikey"
            | "credential"
            | "credentials"
    )
}

/// Channels OpenClaw ships in its core; every other channel is a plugin
/// (`@openclaw/<id>`) that must be installed and trusted.
pub const BUILTIN_CHANNELS: &[&str] = &["telegram"];

pub fn channel_is_plugin(name: &str) -> bool {
    !BUILTIN_CHANNELS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::key_looks_secret;

    #[test]
    fn credential_keys_by_their_last_word() {
        for k in [
            "botToken",
            "token",
            "appToken",
            "apiKey",
            "api_key",
            "x-api-key",
            "password",
            "signingSecret",
            "client_secret",
            "privateKey",
            "passphrase",
            "PASSWORD",
        ] {
            assert!(key_looks_secret(k), "{k}");
        }
        for k in [
            "maxTokens",
            "max_tokens",
            "tokenLimit",
            "keyFile",
            "tokenFile",
            "allowFrom",
            "monkey",
            "accessKeyId",
            "",
        ] {
            assert!(!key_looks_secret(k), "{k}");
        }
    }
}
