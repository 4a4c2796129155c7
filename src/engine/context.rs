//! What a task sees: the inventory, the node's rendered files, its facts, and
//! the run's options; and the variables that `when:` and `{{ }}` read.

use std::sync::Arc;

use serde_json::json;

use crate::inventory::{Inventory, Role, Secrets};
use crate::layout::Layout;
use crate::render::{base_vars, NodeFiles};
use crate::secrets::Redactor;

use super::facts::Facts;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Plan only: report what would change, change nothing.
    pub check: bool,
    /// Collect unified diffs of file changes (secrets redacted).
    pub diff: bool,
    /// The binary uploaded as the standby's monitor: `--monitor-binary`, or
    /// this very executable, read once when the run starts (a rebuild during
    /// a deploy must not change what is uploaded).
    pub monitor_binary: Option<Arc<Vec<u8>>>,
    /// Whether `monitor_binary` was named by the operator (then it is used
    /// whatever the host's architecture; otherwise only on a matching host).
    pub monitor_binary_explicit: bool,
    /// `--monitor-fetch`: the standby fetches its ocfo from
    /// `monitor.binary_source` even when this binary could run there.
    pub monitor_fetch: bool,
    /// `--allow-unsupported-os`: deploy to a release ocfo does not support.
    pub allow_unsupported_os: bool,
}

pub struct TaskContext<'a> {
    pub inv: &'a Inventory,
    pub role: Role,
    pub facts: &'a Facts,
    /// The node's files with real secret values (what is installed).
    pub files: &'a NodeFiles,
    pub secrets: &'a Secrets,
    pub layout: &'a Layout,
    pub opts: &'a RunOptions,
    pub redactor: &'a Redactor,
}

impl TaskContext<'_> {
    /// Variables for `when:` and `{{ }}` in playbooks.
    pub fn vars(&self) -> minijinja::Value {
        let mut v = base_vars(self.inv, self.role, self.layout);
        v["facts"] = json!(self.facts);
        minijinja::Value::from(minijinja::value::Serde(v))
    }
}
