//! The variables templates see: what is known without the host, the same
//! for ocfo's rendered files, the operator's file templates and (with the
//! host's facts added by `engine::context`) the tasks' `when:` and `{{ }}`.

use serde_json::json;

use crate::inventory::{Inventory, Role};
use crate::layout::{self, Layout};

/// Every variable except `facts`: what is known without the host, so the
/// operator's file templates (rendered before any connection, and shown by
/// `ocfo render`) see the same values as the tasks that install them.
pub fn base_vars(inv: &Inventory, role: Role, layout: &Layout) -> serde_json::Value {
    json!({
        // Every standby of a chain runs the standby's tasks: `role` is
        // `primary` or `standby`; `node` says which one (`standby2`).
        "role": if role.is_standby() { "standby" } else { "primary" },
        "node": role.as_str(),
        "name": inv.name,
        "hardening": {
            "fail2ban": inv.hardening.fail2ban,
            "unattended_upgrades": inv.hardening.unattended_upgrades,
            "password_authentication": inv.hardening.password_authentication,
        },
        "tailscale": { "enabled": inv.network.tailscale.enabled },
        "monitor": { "standby": inv.monitor.standby.as_str() },
        "extra_ca_certificates": !inv.network.extra_ca_certificates.is_empty(),
        "workspace": {
            "auth": inv.workspace.auth.as_str(),
            "conversations": inv.workspace.conversations,
        },
        "openclaw": {
            "user": inv.openclaw.user,
            "port": inv.openclaw.port,
            "version": inv.openclaw.version,
        },
        "nodes": {
            "primary": { "private_address": inv.primary.private_address.to_string() },
            "standby": { "private_address": inv.standby.private_address.to_string() },
            "standby2": inv.standby2.as_ref().map(|n| json!({ "private_address": n.private_address.to_string() })),
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
            "watch_service": layout::WATCH_SERVICE,
            "push_script": layout::PUSH_SCRIPT,
            "conversation_push_script": layout::CONVERSATION_PUSH_SCRIPT,
            "conversation_push_service": layout::CONVERSATION_PUSH_SERVICE,
            "conversation_push_timer": layout::CONVERSATION_PUSH_TIMER,
            "take_back_config": layout::TAKE_BACK_CONFIG,
            "take_back_service": layout::TAKE_BACK_SERVICE,
            "take_back_timer": layout::TAKE_BACK_TIMER,
            "systemd_dir": layout::SYSTEMD_DIR,
            "ca_dir": layout::CA_DIR,
            "state_dir": layout::MONITOR_STATE_DIR,
        },
    })
}
