//! What a task sees: the inventory, the node's rendered files, its facts, and
//! the run's options; and the variables that `when:` and `{{ }}` read.

use std::sync::Arc;

use serde_json::json;

use crate::inventory::{Inventory, Role, Secrets};
use crate::layout::{self, Layout};
use crate::render::NodeFiles;
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

/// Every variable except `facts`: what is known without the host, so the
/// operator's file templates (rendered before any connection, and shown by
/// `ocfo render`) see the same values as the tasks that install them.
pub fn base_vars(inv: &Inventory, role: Role, layout: &Layout) -> serde_json::Value {
    json!({
        "role": role.as_str(),
        "name": inv.name,
        "hardening": {
            "fail2ban": inv.hardening.fail2ban,
            "unattended_upgrades": inv.hardening.unattended_upgrades,
            "password_authentication": inv.hardening.password_authentication,
        },
        "tailscale": { "enabled": inv.network.tailscale.enabled },
        "monitor": { "standby": inv.monitor.standby.as_str() },
        "extra_ca_certificates": !inv.network.extra_ca_certificates.is_empty(),
        "workspace": { "auth": inv.workspace.auth.as_str() },
        "openclaw": {
            "user": inv.openclaw.user,
            "port": inv.openclaw.port,
            "version": inv.openclaw.version,
        },
        "nodes": {
            "primary": { "private_address": inv.primary.private_address.to_string() },
            "standby": { "private_address": inv.standby.private_address.to_string() },
        },
        "layout": {
            "home": layout.home,
            "config_path": layout.config_path,
            "workspace": layout.workspace,
            "deploy_key": layout.deploy_key,
            "private_dir": layout.private_dir,
            "workspace_token": layout.workspace_token,
            "git_credential_helper": layout::GIT_CREDENTIAL_HELPER,
            "gateway_env": layout::GATEWAY_ENV_FILE,
            "gateway_restart_keys": layout::GATEWAY_RESTART_KEYS,
            "gateway_unit": layout::GATEWAY_UNIT,
            "monitor_unit": layout::MONITOR_UNIT,
            "monitor_config": layout::MONITOR_CONFIG,
            "monitor_env": layout::MONITOR_ENV_FILE,
            "standby_secrets_source": layout::STANDBY_SECRETS_SOURCE,
            "push_service": layout::PUSH_SERVICE,
            "push_timer": layout::PUSH_TIMER,
            "push_script": layout::PUSH_SCRIPT,
            "systemd_dir": layout::SYSTEMD_DIR,
            "ca_dir": layout::CA_DIR,
            "state_dir": layout::MONITOR_STATE_DIR,
        },
    })
}
