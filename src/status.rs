//! `ocfo status`: what each node really runs, one round trip per node, both
//! nodes in parallel.

use serde::Serialize;

use crate::engine::Host;
use crate::inventory::{Bind, Inventory, Role};
use crate::monitor::MonitorState;
use crate::render::layout::{GATEWAY_UNIT, MONITOR_UNIT, NODE_HOME, OCFO_BINARY, OPENCLAW_PREFIX};

pub const LAST_DEPLOY: &str = "/var/lib/ocfo/last-deploy";

#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub node: Role,
    pub host: String,
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// primary, standby (watching), standby (promoted), ...
    pub role: String,
    pub gateway_active: String,
    pub gateway_enabled: String,
    pub gateway_healthy: bool,
    pub monitor_active: Option<String>,
    pub monitor: Option<MonitorState>,
    pub ocfo_version: String,
    pub openclaw_version: String,
    pub node_version: String,
    pub last_deploy: String,
}

/// Where the node's own gateway answers, seen from the node.
pub fn local_health_url(inv: &Inventory, role: Role) -> String {
    let addr = match inv.openclaw.bind {
        Bind::Loopback => "127.0.0.1".to_string(),
        _ => match inv.node(role).private_address {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        },
    };
    format!("http://{addr}:{}/healthz", inv.openclaw.port)
}

fn script(inv: &Inventory, role: Role) -> String {
    format!(
        r#"echo "gateway_active=$(systemctl is-active {GATEWAY_UNIT} 2>/dev/null)"
echo "gateway_enabled=$(systemctl is-enabled {GATEWAY_UNIT} 2>/dev/null)"
echo "healthz=$(curl -s -m 2 {url} 2>/dev/null | head -c 300 | tr -d '\n')"
echo "openclaw=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' {OPENCLAW_PREFIX}/lib/node_modules/openclaw/package.json 2>/dev/null | head -n1)"
echo "node=$({NODE_HOME}/bin/node --version 2>/dev/null)"
echo "ocfo=$({OCFO_BINARY} --version 2>/dev/null)"
echo "monitor_active=$(systemctl is-active {MONITOR_UNIT} 2>/dev/null)"
echo "last_deploy=$(cat {LAST_DEPLOY} 2>/dev/null)"
echo "--monitor-state--"
cat /var/lib/ocfo/monitor-state.json 2>/dev/null || true
"#,
        url = crate::shell::quote(&local_health_url(inv, role)),
    )
}

pub async fn node_status<H: Host>(
    inv: &Inventory,
    role: Role,
    host: Result<&H, String>,
) -> NodeStatus {
    let mut s = NodeStatus {
        node: role,
        host: inv.node(role).host.clone(),
        reachable: false,
        error: None,
        role: "unknown".into(),
        gateway_active: String::new(),
        gateway_enabled: String::new(),
        gateway_healthy: false,
        monitor_active: None,
        monitor: None,
        ocfo_version: String::new(),
        openclaw_version: String::new(),
        node_version: String::new(),
        last_deploy: String::new(),
    };
    let host = match host {
        Ok(h) => h,
        Err(e) => {
            s.error = Some(e);
            s.role = "unreachable".into();
            return s;
        }
    };
    let out = match host.check(&script(inv, role)).await {
        Ok(o) => o.stdout,
        Err(e) => {
            s.error = Some(e.to_string());
            return s;
        }
    };
    s.reachable = true;
    let (head, state) = out
        .split_once("--monitor-state--\n")
        .unwrap_or((out.as_str(), ""));
    let get = |k: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    s.gateway_active = get("gateway_active");
    s.gateway_enabled = get("gateway_enabled");
    s.gateway_healthy = serde_json::from_str::<serde_json::Value>(&get("healthz"))
        .ok()
        .and_then(|v| v.get("ok").cloned())
        == Some(serde_json::Value::Bool(true));
    s.openclaw_version = get("openclaw");
    s.node_version = get("node");
    s.ocfo_version = get("ocfo").trim_start_matches("ocfo ").to_string();
    s.last_deploy = get("last_deploy");
    if role == Role::Standby {
        s.monitor_active = Some(get("monitor_active"));
        s.monitor = serde_json::from_str(state.trim()).ok();
    }
    s.role = match role {
        Role::Primary => "primary".into(),
        Role::Standby => match (&s.monitor, s.monitor_active.as_deref()) {
            (Some(m), Some("active")) => {
                let mut tags = vec![m.standby.clone(), m.role.as_str().to_string()];
                if m.standby == "warm" {
                    tags.push(
                        if m.channels_live {
                            "channels live"
                        } else {
                            "channels off"
                        }
                        .into(),
                    );
                    if m.local_gateway_up == Some(false) {
                        tags.push("DEGRADED: own gateway down".into());
                    } else if !m.channels_live && m.armed == Some(false) {
                        tags.push("NOT ARMED: a promotion would be slower".into());
                    }
                }
                if m.pinned {
                    tags.push("pinned".into());
                }
                if m.switchover {
                    tags.push("switchover".into());
                }
                if let Some(h) = &m.hold {
                    tags.push(format!(
                        "held until {} by {}",
                        unix_to_rfc3339(h.until),
                        h.by
                    ));
                }
                tags.retain(|t| !t.is_empty());
                format!("standby ({})", tags.join(", "))
            }
            _ => "standby (monitor not running)".into(),
        },
    };
    s
}

/// Unix seconds as RFC 3339 UTC.
pub fn unix_to_rfc3339(secs: u64) -> String {
    crate::clock::rfc3339(secs)
}
