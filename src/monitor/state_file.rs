//! What the monitor shows the world: `/var/lib/ocfo/monitor-state.json`,
//! rewritten atomically after every probe round. Informational only: after a
//! restart the role comes from reality, not from this file.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::machine::StandbyRole;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeRecord {
    pub at: String,
    pub ok: bool,
    pub latency_ms: u64,
    /// The TCP connect's share of it, when it connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<u64>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transition {
    pub at: String,
    pub from: StandbyRole,
    pub to: StandbyRole,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counters {
    pub probes: u64,
    pub probe_failures: u64,
    pub promotions: u64,
    pub demotions: u64,
    pub failed_actions: u64,
    /// Restarts of the watching gateway over its memory bound.
    #[serde(default)]
    pub recycles: u64,
    /// Warm: time spent watching since the gateway was first armed in this
    /// monitor's life, and of it time armed (a promotion then only starts
    /// the channels), in milliseconds: the share is the standby's readiness,
    /// which recycles and restarts of its gateway cost.
    #[serde(default)]
    pub watching_ms: u64,
    #[serde(default)]
    pub armed_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorState {
    pub version: String,
    pub name: String,
    pub pid: u32,
    pub role: StandbyRole,
    pub since: String,
    pub pinned: bool,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    pub recent_probes: VecDeque<ProbeRecord>,
    pub counters: Counters,
    pub transitions: VecDeque<Transition>,
    pub last_error: Option<String>,
    /// How the last promotion's time was spent, for `ocfo drill`.
    #[serde(default)]
    pub last_promotion: Option<PromotionTiming>,
    pub updated: String,
    /// `warm` or `cold`.
    #[serde(default)]
    pub standby: String,
    /// Warm: whether the standby's channels run (started at promotion).
    #[serde(default)]
    pub channels_live: bool,
    /// Warm: whether the watching gateway holds its channel credentials with
    /// its channels stopped, so a promotion only starts them.
    #[serde(default)]
    pub armed: Option<bool>,
    /// Warm: whether the standby's own gateway answers (down is a degraded pair).
    #[serde(default)]
    pub local_gateway_up: Option<bool>,
    /// Deploy's hold, while it is in force.
    #[serde(default)]
    pub hold: Option<super::requests::Hold>,
    /// A planned switchover is in force.
    #[serde(default)]
    pub switchover: bool,
    /// Since when (RFC 3339) every primary channel fails while its gateway serves.
    #[serde(default)]
    pub primary_channels_failing_since: Option<String>,
    /// The last messages to the users (takeover, failback), newest last.
    #[serde(default)]
    pub announcements: VecDeque<Announcement>,
    /// The last conversation catch-up after a promotion.
    #[serde(default)]
    pub last_catch_up: Option<CatchUp>,
    /// The last conversation hand-back at a failback.
    #[serde(default)]
    pub last_hand_back: Option<HandBack>,
    /// Warm: the watching gateway's anonymous memory at the last reading (MiB).
    #[serde(default)]
    pub gateway_memory_mib: Option<u64>,
}

/// What the standby did to give the outage's conversation back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandBack {
    pub at: String,
    /// `taken` (the primary restored it), `failed`, `nothing_to_hand_back`
    /// (the standby never had a conversation) or `not_handed_back` (the
    /// standby had not caught up: its conversation is not the primary's).
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<u64>,
    /// From the last snapshot to the primary serving with it.
    pub wait_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What the standby did to continue the primary's conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatchUp {
    pub at: String,
    /// `caught_up`, `nothing_new` (the newest snapshot was already active)
    /// or `failed`.
    pub outcome: String,
    /// The snapshot restored (its commit) and when it was taken (Unix s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<u64>,
    /// Fetch and restore, while the standby served.
    pub prepare_ms: u64,
    /// Gateway stopped until it served again (channels started).
    pub offline_ms: u64,
    /// When it served again with the conversation (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One message the standby sent its users, or did not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    pub at: String,
    /// `takeover` or `failback`.
    pub kind: String,
    pub channel: String,
    pub target: String,
    /// `sent`, `failed` or `suppressed`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

pub const KEEP_ANNOUNCEMENTS: usize = 10;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PromotionTiming {
    pub at: String,
    pub pull_ms: u64,
    pub pull_ok: bool,
    /// Cold: starting the gateway until healthy. Warm: switching the
    /// channels on until OpenClaw reports them started.
    pub start_ms: u64,
    /// Serving: cold, the gateway is healthy; warm, the channels started.
    pub healthy: bool,
    /// When the monitor decided to promote (Unix ms, the standby's clock).
    #[serde(default)]
    pub decided_at_ms: u64,
    /// When the standby began to serve (Unix ms, the standby's clock): warm,
    /// OpenClaw's own start time of the channel.
    #[serde(default)]
    pub serving_at_ms: Option<u64>,
    /// Warm: the live switch failed and the gateway was restarted instead.
    #[serde(default)]
    pub fallback_restart: bool,
    #[serde(default)]
    pub planned: bool,
}

pub const KEEP_PROBES: usize = 20;
pub const KEEP_TRANSITIONS: usize = 20;

impl MonitorState {
    pub fn save(&self, path: &str) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::fsutil::write_atomic(std::path::Path::new(path), &json, 0o644)
    }

    pub fn load(path: &str) -> Result<MonitorState, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        serde_json::from_str(&text).map_err(|e| format!("{path} is not a monitor state file: {e}"))
    }

    /// `ocfo monitor status` for people. The probes' details hold what the
    /// primary's `/readyz` said (its `failing` reasons), errors hold what
    /// commands printed: escaped for the terminal (`terminal::escape`).
    pub fn summary(&self) -> String {
        use crate::terminal::escape as e;
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}: {}{} since {} (pid {}, ocfo {})",
            e(&self.name),
            self.role.as_str(),
            if self.pinned {
                ", PINNED (flapping primary)"
            } else {
                ""
            },
            e(&self.since),
            self.pid,
            e(&self.version)
        );
        let c = &self.counters;
        let _ = writeln!(
            out,
            "probes: {} ({} failed), now {} failing / {} healthy in a row; promotions {}, demotions {}, failed actions {}",
            c.probes, c.probe_failures, self.consecutive_failures, self.consecutive_successes, c.promotions, c.demotions, c.failed_actions
        );
        if let Some(m) = self.gateway_memory_mib {
            let _ = writeln!(
                out,
                "watching gateway: {m} MiB anonymous memory; recycled {} time{}",
                c.recycles,
                if c.recycles == 1 { "" } else { "s" }
            );
        }
        if let Some(p) = self.recent_probes.back() {
            let _ = writeln!(
                out,
                "last probe: {} {} ({} ms) at {}",
                if p.ok { "ok" } else { "FAILED" },
                e(&p.detail),
                p.latency_ms,
                e(&p.at)
            );
        }
        for t in self.transitions.iter().rev().take(5) {
            let _ = writeln!(
                out,
                "  {} {} -> {}: {}",
                e(&t.at),
                t.from.as_str(),
                t.to.as_str(),
                e(&t.reason)
            );
        }
        if let Some(c) = &self.last_catch_up {
            let snapshot = match (&c.snapshot, c.taken_at) {
                (Some(commit), Some(at)) => format!(
                    " to the primary's conversation as it was at {} ({})",
                    crate::clock::hhmmss_utc(at),
                    e(&commit[..commit.len().min(12)])
                ),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "last catch-up: {} at {}{snapshot}; restore {} ms, offline {} ms{}",
                e(&c.outcome),
                e(&c.at),
                c.prepare_ms,
                c.offline_ms,
                c.detail
                    .as_ref()
                    .map(|d| format!(": {}", e(d)))
                    .unwrap_or_default()
            );
        }
        if let Some(h) = &self.last_hand_back {
            let _ = writeln!(
                out,
                "last hand-back: {} at {}{}; {} ms{}",
                e(&h.outcome),
                e(&h.at),
                h.taken_at
                    .map(|t| format!(
                        " of the conversation as it was at {}",
                        crate::clock::hhmmss_utc(t)
                    ))
                    .unwrap_or_default(),
                h.wait_ms,
                h.detail
                    .as_ref()
                    .map(|d| format!(": {}", e(d)))
                    .unwrap_or_default()
            );
        }
        if let Some(err) = &self.last_error {
            let _ = writeln!(out, "last error: {}", e(err));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    /// The primary's `/readyz` said `failing: ["\e]0;owned\a", …]`; the
    /// monitor keeps it as the probe's detail, and `ocfo monitor status`
    /// shows it escaped (issue 16, finding 8).
    #[test]
    fn a_lying_readyz_reason_is_shown_escaped() {
        let lie = "telegram\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}1m\u{7f}\u{202e}\u{2066}\u{feff}";
        let state = serde_json::json!({
            "version": lie, "name": lie, "pid": 1, "role": "watching", "since": lie,
            "pinned": false, "consecutive_failures": 1, "consecutive_successes": 0,
            "recent_probes": [{"at": lie, "ok": false, "latency_ms": 3, "detail": format!("not ready: {lie}")}],
            "counters": {"probes": 1, "probe_failures": 1, "promotions": 0, "demotions": 0, "failed_actions": 0},
            "transitions": [{"at": lie, "from": "watching", "to": "promoted", "reason": lie}],
            "last_error": lie, "updated": lie
        });
        let s: super::MonitorState = serde_json::from_value(state).unwrap();
        let text = s.summary();
        assert!(
            !text
                .replace('\n', "")
                .chars()
                .any(crate::terminal::is_hidden),
            "{text:?}"
        );
        assert!(
            text.contains("not ready: telegram\\u{1b}]0;owned"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 5, "{text}");
    }

    #[test]
    fn the_last_catch_up_is_summarised_with_its_snapshot_time() {
        let state = serde_json::json!({
            "version": "0.1.0", "name": "cc", "pid": 1, "role": "promoted", "since": "t",
            "pinned": false, "consecutive_failures": 0, "consecutive_successes": 0,
            "recent_probes": [], "counters": {"probes": 1, "probe_failures": 1, "promotions": 1, "demotions": 0, "failed_actions": 0},
            "transitions": [], "last_error": null, "updated": "t",
            "last_catch_up": {"at": "2026-12-06T22:35:50Z", "outcome": "caught_up",
                "snapshot": "165ce79826402888c16afc7b098725458f4974dc", "taken_at": 1796596509,
                "prepare_ms": 4645, "offline_ms": 32265, "serving_at_ms": 1796596549661u64}
        });
        let s: super::MonitorState = serde_json::from_value(state).unwrap();
        let text = s.summary();
        assert!(
            text.contains("last catch-up: caught_up at 2026-12-06T22:35:50Z to the primary's conversation as it was at 22:35:09 UTC (165ce7982640); restore 4645 ms, offline 32265 ms\n"),
            "{text}"
        );
    }
}
