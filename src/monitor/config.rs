//! The monitor's configuration (`/etc/ocfo/monitor.yaml`), written by `ocfo
//! render`/`deploy` from the inventory and read by the daemon at start.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::inventory::units::{format_duration, parse_duration};

mod dur {
    use super::*;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

mod opt_dur {
    use super::*;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => parse_duration(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// The monitor's modes are the inventory's own (one type each, written to
/// `monitor.yaml` as the inventory spells them).
pub use crate::inventory::{ChannelFailure, ProbeMode, StandbyMode};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Every path to the primary's gateway; it is down only when all fail.
    pub urls: Vec<String>,
    /// A chain's later standby: the `/healthz` of each standby before it.
    /// While one of them lives it takes over, so this one waits: the
    /// primary counts as up (docs/monitor.md, "A chain of standbys").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub standbys_before: Vec<String>,
    /// How long a standby before this one may be silent (a restart of its
    /// gateway) before it counts as gone; written only for a chain.
    #[serde(with = "opt_dur", default, skip_serializing_if = "Option::is_none")]
    pub standby_grace: Option<Duration>,
    pub mode: ProbeMode,
    /// The environment variable holding the gateway token: with it, `/readyz`
    /// names what fails (draining, a channel, ...), not only `ready: false`.
    #[serde(default)]
    pub token_env: Option<String>,
    /// The primary's own channels: a `failing` entry naming one of them is a
    /// channel problem, judged by `channel_failure`; anything else is down.
    #[serde(default)]
    pub primary_channels: Vec<String>,
    #[serde(default)]
    pub channel_failure: ChannelFailure,
    /// How long every primary channel must fail before `failover` counts it.
    #[serde(with = "dur", default = "default_channel_grace")]
    pub channel_grace: Duration,
    /// How long a primary may accept connections without answering (its
    /// event loop busy, e.g. loading a plugin) before it counts as down.
    #[serde(with = "dur", default = "default_stall_grace")]
    pub stall_grace: Duration,
    #[serde(with = "dur")]
    pub interval: Duration,
    #[serde(with = "dur")]
    pub timeout: Duration,
}

fn default_definitive_fall() -> u32 {
    2
}

fn default_fall_window() -> Duration {
    crate::inventory::DEFAULT_FALL_WINDOW
}

fn default_channel_grace() -> Duration {
    Duration::from_secs(60)
}

fn default_stall_grace() -> Duration {
    Duration::from_secs(10)
}

/// A warm standby's switches: root-owned JSON files the gateway's config
/// `$include`s, so the monitor turns channels and automations on and off by
/// rewriting them, and OpenClaw applies that without a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchConfig {
    /// Folder of the switch file `standby.json` (also `OPENCLAW_INCLUDE_ROOTS`).
    pub dir: String,
    /// The standby's channels, switched on at promotion.
    pub channels: Vec<String>,
    /// Whether automations (cron jobs, heartbeats) run when promoted.
    pub cron_when_promoted: bool,
    /// How long a switched-on channel may take to start before the monitor
    /// restarts the gateway instead.
    #[serde(with = "dur")]
    pub verify_timeout: Duration,
    /// The standby's channel credentials (root's), copied to `secrets_file`
    /// (the gateway user's) when the monitor arms the standby.
    #[serde(default)]
    pub secrets_source: String,
    #[serde(default)]
    pub secrets_file: String,
    /// Channels that read their token from a file at start (Telegram): the
    /// monitor writes it at promotion and removes it at demotion; they are
    /// not in the switch file.
    #[serde(default)]
    pub token_files: Vec<TokenFile>,
}

impl SwitchConfig {
    /// The channels armed through the switch file and the credentials file
    /// (SecretRefs): all but the token-file ones.
    pub fn switched_channels(&self) -> Vec<String> {
        self.channels
            .iter()
            .filter(|c| !self.token_files.iter().any(|t| &t.channel == *c))
            .cloned()
            .collect()
    }
}

/// A token-file channel's token: under `key` in `secrets_source`, written
/// to `path` (the gateway user's, 0600) while the standby serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    pub channel: String,
    pub key: String,
    pub path: String,
}

/// How the monitor runs the `openclaw` CLI against the standby's gateway:
/// as the gateway's user, with its environment file (the gateway token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenClawCli {
    pub bin: String,
    pub user: String,
    pub home: String,
    pub path: String,
    pub config_path: String,
    /// `OPENCLAW_INCLUDE_ROOTS`: where the config's `$include`s may live.
    pub include_roots: String,
    /// The gateway's environment file.
    pub gateway_env: String,
    /// The monitor's own device key for OpenClaw's gateway protocol (root's,
    /// 0600, made on first use and paired once with the standby's gateway).
    #[serde(default = "default_device_key")]
    pub device_key: String,
}

fn default_device_key() -> String {
    crate::layout::MONITOR_DEVICE_KEY.to_string()
}

/// What the standby tells its users at takeover and failback
/// (`monitor.announce` in the inventory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnounceConfig {
    pub recipients: Vec<crate::inventory::announce::Recipient>,
    /// `{since}` and `{why}` are filled in when sent.
    pub takeover: String,
    pub failback: String,
    /// A chain's standby2: the failback when it steps down for the standby
    /// (the primary still down), naming the standby's channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback_to_standby: Option<String>,
    /// After the conversation catch-up; `{upto}` is filled in when sent.
    #[serde(default = "default_caught_up")]
    pub caught_up: String,
    /// The longest one message may take.
    #[serde(with = "dur")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlapConfig {
    /// More promotions than this within `window` pin the standby promoted.
    pub max_promotions: u32,
    #[serde(with = "dur")]
    pub window: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub unit: String,
    /// The standby's own gateway, checked after it is started.
    pub health_url: String,
    #[serde(with = "dur")]
    pub start_timeout: Duration,
    pub start_attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceConfig {
    pub path: String,
    pub user: String,
    pub branch: String,
    #[serde(with = "dur")]
    pub git_timeout: Duration,
}

/// Where the primary's conversation snapshots come from and go to
/// (`monitor::conversation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationConfig {
    /// The replica: OpenClaw's git backup repository, the gateway user's.
    pub repo: String,
    /// The primary's branch of the workspace remote.
    pub branch: String,
    pub agent: String,
    /// The live agent database.
    pub database: String,
    /// Root's record of the snapshot this node activated last.
    pub activated_file: String,
    /// Bounds the fetch and the restore, each.
    #[serde(with = "dur")]
    pub timeout: Duration,
    /// The standby's snapshot script, run in hand-back mode at the failback
    /// (none: the outage's conversation is not handed back).
    #[serde(default)]
    pub push_script: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The environment variable holding the webhook URL (a secret, kept in
    /// the unit's mode-0600 EnvironmentFile, never in this file).
    pub webhook_env: String,
    #[serde(with = "dur")]
    pub timeout: Duration,
    pub retries: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// The assistant's name (`inventory.name`), for notifications.
    pub name: String,
    pub probe: ProbeConfig,
    pub fall: u32,
    /// How long the primary must keep failing, from the start of the first
    /// failed probe to the start of the last, before the standby promotes;
    /// failures are confirmed back to back meanwhile (docs/monitor.md).
    #[serde(with = "dur", default = "default_fall_window")]
    pub fall_window: Duration,
    /// Definitive failures (refused, reset, draining) in a row that promote
    /// without waiting for `fall`; 0 turns the fast path off.
    #[serde(default = "default_definitive_fall")]
    pub definitive_fall: u32,
    pub rise: u32,
    #[serde(with = "dur")]
    pub hold_down: Duration,
    pub flap: FlapConfig,
    pub gateway: GatewayConfig,
    pub workspace: Option<WorkspaceConfig>,
    /// Conversation catch-up after a promotion; none when off.
    #[serde(default)]
    pub conversation: Option<ConversationConfig>,
    pub state_file: String,
    pub notify: Option<NotifyConfig>,
    #[serde(default)]
    pub standby: StandbyMode,
    /// Present for a warm standby.
    #[serde(default)]
    pub switches: Option<SwitchConfig>,
    /// Deploy's hold: while this file names a future expiry, failures do
    /// not promote.
    #[serde(default = "default_hold_file")]
    pub hold_file: String,
    /// A planned switchover: while this file exists the standby serves.
    #[serde(default = "default_switchover_file")]
    pub switchover_file: String,
    /// A drill is on: while this file names a future expiry, a promotion is
    /// announced as a drill.
    #[serde(default = "default_drill_file")]
    pub drill_file: String,
    pub openclaw: OpenClawCli,
    /// No announcements when absent.
    #[serde(default)]
    pub announce: Option<AnnounceConfig>,
    /// Warm: restart the watching gateway while the primary is healthy once
    /// its memory (anonymous, its cgroup's) passes this many MiB; 0: never.
    #[serde(default)]
    pub recycle_above_mib: u32,
}

fn default_caught_up() -> String {
    crate::inventory::announce::DEFAULT_CAUGHT_UP.to_string()
}

fn default_drill_file() -> String {
    crate::layout::DRILL_FILE.to_string()
}

fn default_hold_file() -> String {
    crate::layout::HOLD_FILE.to_string()
}

fn default_switchover_file() -> String {
    crate::layout::SWITCHOVER_FILE.to_string()
}

impl MonitorConfig {
    pub fn from_yaml(text: &str) -> Result<MonitorConfig, String> {
        let c: MonitorConfig = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        let problems = c.problems();
        if problems.is_empty() {
            Ok(c)
        } else {
            Err(problems.join("; "))
        }
    }

    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).unwrap_or_default()
    }

    /// Every problem, so a bad config is fixed in one go.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.probe.urls.is_empty() {
            p.push("probe.urls is empty".to_string());
        }
        for u in self
            .probe
            .urls
            .iter()
            .chain(&self.probe.standbys_before)
            .chain([&self.gateway.health_url])
        {
            if super::probe::Url::parse(u).is_err() {
                p.push(format!("`{u}` is not an http://host:port/path URL"));
            }
        }
        if self.probe.timeout >= self.probe.interval {
            p.push("probe.timeout must be shorter than probe.interval".into());
        }
        if self.probe.interval.is_zero() {
            p.push("probe.interval must be longer than zero".into());
        }
        if self.fall == 0 || self.rise == 0 {
            p.push("fall and rise must be at least 1".into());
        }
        if self.flap.max_promotions == 0 {
            p.push("flap.max_promotions must be at least 1".into());
        }
        if self.standby == StandbyMode::Warm && self.switches.is_none() {
            p.push("a warm standby needs `switches`".into());
        }
        if let Some(sw) = &self.switches {
            if sw.channels.is_empty() {
                p.push("switches.channels is empty: a warm standby must own a channel".into());
            }
            for c in &sw.channels {
                if c.is_empty()
                    || !c
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    p.push(format!("switches.channels: `{c}` is not a channel id"));
                }
            }
        }
        if self.gateway.start_attempts == 0 {
            p.push("gateway.start_attempts must be at least 1".into());
        }
        p
    }
}

/// The switch file's content. The channels are always enabled in config: a
/// watching standby's are stopped at run time (see
/// `render::openclaw_config::armed_refs`), because
/// OpenClaw reloads a channel's plugin (seconds of CPU) whenever its
/// `enabled` changes. `cron` carries the automations, on only when promoted.
/// `nudge` writes `enabled: true` explicitly or leaves it implicit (the same
/// meaning), so the monitor can make OpenClaw re-read the config, and the
/// credentials file with it, without changing what the config says.
/// Written by deploy (`modules::switches`) and by the monitor when it arms
/// and switches.
pub fn switch_content(channels: &[String], cron_on: bool, nudge: bool) -> String {
    use serde_json::json;
    let chans: serde_json::Map<String, serde_json::Value> = channels
        .iter()
        .map(|c| {
            let v = if nudge {
                json!({})
            } else {
                json!({ "enabled": true })
            };
            (c.clone(), v)
        })
        .collect();
    serde_json::to_string_pretty(&json!({
        "channels": chans,
        "cron": { "enabled": cron_on },
    }))
    .unwrap_or_default()
        + "\n"
}
