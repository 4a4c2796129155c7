//! What a run did, per task and per host: the recap and the `--json` report.

use serde::Serialize;

use crate::inventory::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Changed,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    pub task: String,
    pub status: Status,
    /// One line per change (planned under `--check`, made otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diffs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub duration_ms: u128,
    pub handler: bool,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Counts {
    pub ok: usize,
    pub changed: usize,
    pub failed: usize,
    pub skipped: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub node: Role,
    pub host: String,
    pub counts: Counts,
    pub tasks: Vec<TaskReport>,
    /// A failure outside any task (connection, lock, facts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub interrupted: bool,
    pub duration_ms: u128,
    /// SSH round trips (commands) on this host during the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round_trips: Option<u64>,
    /// What the run did around the task list (the standby's hold).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl HostReport {
    pub fn new(node: Role, host: &str) -> Self {
        HostReport {
            node,
            host: host.to_string(),
            counts: Counts::default(),
            tasks: Vec::new(),
            error: None,
            interrupted: false,
            duration_ms: 0,
            round_trips: None,
            notes: Vec::new(),
        }
    }

    pub fn push(&mut self, t: TaskReport) {
        match t.status {
            Status::Ok => self.counts.ok += 1,
            Status::Changed => self.counts.changed += 1,
            Status::Failed => self.counts.failed += 1,
            Status::Skipped => self.counts.skipped += 1,
        }
        self.tasks.push(t);
    }

    pub fn failed(&self) -> bool {
        self.error.is_some() || self.counts.failed > 0
    }
}
