//! `monitor.announce`: what the standby tells its users when it takes over
//! and when it hands back, and to whom: direct-message users of its own
//! channels' allowlists, never a group, never anyone else.

use indexmap::IndexMap;

use crate::diagnostics::Location;

use super::model::{Channel, Value};

/// The announcements as the inventory asks for them.
#[derive(Debug, Clone, PartialEq)]
pub struct Announce {
    /// Off only when the inventory says so (`enabled: false`); on otherwise,
    /// which means "to every allowlisted DM user of the standby's channels".
    pub enabled: bool,
    /// Who, per standby channel entry (allowlist entries); `None` is every
    /// direct-message user in each channel's `allowFrom`.
    pub to: Option<IndexMap<String, Vec<String>>>,
    pub takeover: String,
    pub failback: String,
    /// Once the standby restored the primary's conversation (`{upto}`: the
    /// time of the snapshot it restored).
    pub caught_up: String,
    pub loc: Option<Location>,
}

impl Default for Announce {
    fn default() -> Self {
        Announce {
            enabled: true,
            to: None,
            takeover: DEFAULT_TAKEOVER.into(),
            failback: DEFAULT_FAILBACK.into(),
            caught_up: DEFAULT_CAUGHT_UP.into(),
            loc: None,
        }
    }
}

/// `{why}` is one of [`WHY_DOWN`], [`WHY_PLANNED`], [`WHY_DRILL`].
pub const DEFAULT_TAKEOVER: &str = "⚠️ {assistant}: the main assistant ({primary}) {why} at {since}. This is its standby, answering here on {standby} until it is back: write to me here meanwhile.";
pub const DEFAULT_FAILBACK: &str = "✅ {assistant}: the main assistant is back since {since}. Please continue on {primary}; this standby ({standby}) goes quiet now.";
/// A chain's standby2 stepping down for the standby (the primary still
/// down); `{primary}` names the standby's channels there.
pub const DEFAULT_FAILBACK_TO_STANDBY: &str = "✅ {assistant}: the first standby is back since {since}, the main assistant not yet. Please continue on {primary}; this second standby ({standby}) goes quiet now.";
pub const DEFAULT_CAUGHT_UP: &str = "🧠 {assistant}: I have our conversation back, as it was at {upto}. Anything you wrote after that is not in it: if it matters, please tell me again.";
pub const WHY_DOWN: &str = "stopped answering";
pub const WHY_PLANNED: &str = "went offline for planned maintenance";
pub const WHY_DRILL: &str = "was stopped on purpose in a failover drill (nothing is wrong)";

/// Filled in by `render`: they do not change at runtime.
pub const STATIC_PLACEHOLDERS: [&str; 3] = ["assistant", "primary", "standby"];
/// Filled in by the monitor when it sends.
pub const RUNTIME_PLACEHOLDERS: [&str; 3] = ["since", "why", "upto"];

/// The `{name}`s in a text; `Err` names a broken or unknown one.
pub fn check_placeholders(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err("a `{` without its `}`".into());
        };
        let name = &after[..close];
        if !STATIC_PLACEHOLDERS.contains(&name) && !RUNTIME_PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder `{{{name}}}` (known: {})",
                STATIC_PLACEHOLDERS
                    .iter()
                    .chain(RUNTIME_PLACEHOLDERS.iter())
                    .map(|p| format!("{{{p}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// Replaces `{name}` with its value, for the given names only.
pub fn fill(text: &str, values: &[(&str, &str)]) -> String {
    let mut out = text.to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// The direct-message target OpenClaw's `message send` takes for one
/// `allowFrom` entry of a channel of this kind, or `None` when the entry is
/// not one person reachable by DM (a wildcard, a group, a user name
/// OpenClaw would have to look up, a platform ocfo cannot address).
pub fn dm_target(kind: &str, entry: &str) -> Option<String> {
    let entry = entry.trim();
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    match kind {
        // Telegram user ids are positive; groups and channels are negative.
        "telegram" => {
            let id = entry
                .strip_prefix("tg:")
                .or_else(|| entry.strip_prefix("telegram:"))
                .unwrap_or(entry);
            digits(id).then(|| id.to_string())
        }
        "discord" => {
            let id = entry
                .strip_prefix("user:")
                .or_else(|| entry.strip_prefix("discord:"))
                .or_else(|| entry.strip_prefix("<@").and_then(|s| s.strip_suffix('>')))
                .unwrap_or(entry);
            digits(id).then(|| format!("user:{id}"))
        }
        _ => None,
    }
}

/// The strings of a channel's `allowFrom`.
pub fn allow_from(channel: &Channel) -> Vec<String> {
    match channel.settings.get("allowFrom") {
        Some(Value::Seq(items)) => items
            .iter()
            .filter_map(|v| match v {
                Value::Str(s) => Some(s.clone()),
                Value::Int(i) => Some(i.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether OpenClaw admits only an explicit list of DM users on it.
pub fn has_allowlist(channel: &Channel) -> bool {
    channel.settings.get("dmPolicy").and_then(Value::as_str) == Some("allowlist")
        && !allow_from(channel).is_empty()
}

/// One message to send: through which channel (OpenClaw's id), to whom.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Recipient {
    pub channel: String,
    pub target: String,
}

/// Who is told, for the standby's channels: each allowlisted DM user (or
/// those `to` names), once per channel.
pub fn recipients(announce: &Announce, standby_channels: &[&Channel]) -> Vec<Recipient> {
    if !announce.enabled {
        return Vec::new();
    }
    let mut out: Vec<Recipient> = Vec::new();
    for channel in standby_channels {
        if !has_allowlist(channel) {
            continue;
        }
        let entries = match &announce.to {
            Some(to) => to.get(&channel.name).cloned().unwrap_or_default(),
            None => allow_from(channel),
        };
        for entry in entries {
            if let Some(target) = dm_target(&channel.kind, &entry) {
                let r = Recipient {
                    channel: channel.kind.clone(),
                    target,
                };
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dm_targets_per_platform() {
        assert_eq!(
            dm_target("telegram", "tg:123456789").as_deref(),
            Some("123456789")
        );
        assert_eq!(dm_target("telegram", "telegram:42").as_deref(), Some("42"));
        assert_eq!(dm_target("telegram", "42").as_deref(), Some("42"));
        assert_eq!(dm_target("telegram", "-1001234"), None, "a group");
        assert_eq!(dm_target("telegram", "*"), None);
        assert_eq!(dm_target("telegram", "@someone"), None);
        assert_eq!(
            dm_target("discord", "123456789012345678").as_deref(),
            Some("user:123456789012345678")
        );
        assert_eq!(dm_target("discord", "<@99>").as_deref(), Some("user:99"));
        assert_eq!(dm_target("slack", "U123"), None);
    }

    #[test]
    fn placeholders_are_checked_and_filled() {
        assert!(check_placeholders(DEFAULT_TAKEOVER).is_ok());
        assert!(check_placeholders(DEFAULT_FAILBACK).is_ok());
        assert!(check_placeholders(DEFAULT_FAILBACK_TO_STANDBY).is_ok());
        assert!(check_placeholders("{nope}")
            .unwrap_err()
            .contains("`{nope}`"));
        assert!(check_placeholders("{since").is_err());
        assert_eq!(
            fill("{a} and {b} and {a}", &[("a", "x")]),
            "x and {b} and x"
        );
    }
}
