//! What the monitor shows the world: `/var/lib/ocfo/monitor-state.json`,
//! rewritten atomically after every probe round. Informational only: after a
//! restart the role comes from reality, not from this file.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::machine::Role;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeRecord {
    pub at: String,
    pub ok: bool,
    pub latency_ms: u64,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transition {
    pub at: String,
    pub from: Role,
    pub to: Role,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counters {
    pub probes: u64,
    pub probe_failures: u64,
    pub promotions: u64,
    pub demotions: u64,
    pub failed_actions: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorState {
    pub version: String,
    pub name: String,
    pub pid: u32,
    pub role: Role,
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PromotionTiming {
    pub at: String,
    pub pull_ms: u64,
    pub pull_ok: bool,
    pub start_ms: u64,
    pub healthy: bool,
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
}
