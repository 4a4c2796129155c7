//! `ocfo status`: what each node really runs, one round trip per node, both
//! nodes in parallel.

use serde::Serialize;

use crate::engine::Host;
use crate::inventory::{Inventory, Role};
use crate::layout::{
    GATEWAY_UNIT, LAST_DEPLOY, MONITOR_STATE_FILE, MONITOR_UNIT, NODE_HOME, OCFO_BINARY,
    OPENCLAW_PREFIX,
};
use crate::monitor::MonitorState;
use crate::shell::Script;
use crate::standby_client::{check, local_health_url, parse_state};

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
    /// SHA-256 of the lock the node's OpenClaw tree was installed from
    /// (`/opt/openclaw/.ocfo-tree`); empty for a tree ocfo did not lock.
    /// Two nodes with the same value run the same tree.
    pub openclaw_lock: String,
    pub node_version: String,
    pub last_deploy: String,
}

/// $1 the gateway's unit, $2 its `/healthz` as the node sees it, $3
/// OpenClaw's `package.json`, $4 `node`, $5 `ocfo`, $6 the monitor's unit,
/// $7 the last deploy's stamp, $8 the monitor's state file, $9 the
/// OpenClaw tree's stamp (its lock's hash).
const STATUS: &str = r#"echo "gateway_active=$(systemctl is-active -- "$1" 2>/dev/null)"
echo "gateway_enabled=$(systemctl is-enabled -- "$1" 2>/dev/null)"
echo "healthz=$(curl -s -m 2 -- "$2" 2>/dev/null | head -c 300 | tr -d '\n')"
echo "openclaw=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$3" 2>/dev/null | head -n1)"
echo "openclaw_lock=$(sed -n 's/^lock //p' "$9" 2>/dev/null | head -n1)"
echo "node=$("$4" --version 2>/dev/null)"
echo "ocfo=$("$5" --version 2>/dev/null)"
echo "monitor_active=$(systemctl is-active -- "$6" 2>/dev/null)"
echo "last_deploy=$(cat -- "$7" 2>/dev/null)"
echo "--monitor-state--"
cat -- "$8" 2>/dev/null || true
"#;

fn script(inv: &Inventory, role: Role) -> Script {
    Script::new(STATUS).args([
        GATEWAY_UNIT.to_string(),
        local_health_url(inv, role),
        format!("{OPENCLAW_PREFIX}/lib/node_modules/openclaw/package.json"),
        format!("{NODE_HOME}/bin/node"),
        OCFO_BINARY.to_string(),
        MONITOR_UNIT.to_string(),
        LAST_DEPLOY.to_string(),
        MONITOR_STATE_FILE.to_string(),
        format!("{OPENCLAW_PREFIX}/.ocfo-tree"),
    ])
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
        openclaw_lock: String::new(),
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
    let out = match check(host, &script(inv, role)).await {
        Ok(o) => o.stdout,
        Err(e) => {
            s.error = Some(e);
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
    s.gateway_healthy = crate::openclaw::healthz_ok(&get("healthz"));
    s.openclaw_version = get("openclaw");
    s.openclaw_lock = get("openclaw_lock");
    s.node_version = get("node");
    s.ocfo_version = get("ocfo").trim_start_matches("ocfo ").to_string();
    s.last_deploy = get("last_deploy");
    if role.is_standby() {
        s.monitor_active = Some(get("monitor_active"));
        s.monitor = parse_state(state);
    }
    s.role = match role {
        Role::Primary => "primary".into(),
        Role::Standby | Role::Standby2 => match (&s.monitor, s.monitor_active.as_deref()) {
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
                    if let Some(share) = armed_share(&m.counters) {
                        tags.push(format!("armed only {share:.1} % of its watching time"));
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
                        crate::clock::rfc3339(h.until),
                        h.by
                    ));
                }
                tags.retain(|t| !t.is_empty());
                format!("{role} ({})", tags.join(", "))
            }
            _ => format!("{role} (monitor not running)"),
        },
    };
    s
}

/// The share of its watching time a warm standby was armed, when that is
/// under the 99 % a standby should reach (issue 18), after a minute at least.
fn armed_share(c: &crate::monitor::state_file::Counters) -> Option<f64> {
    let share = c.armed_ms as f64 * 100.0 / c.watching_ms.max(1) as f64;
    (c.watching_ms >= 60_000 && share < 99.0).then_some(share)
}

/// `ocfo status` for people. Everything but the node's role and its
/// inventory host came from the host, which may lie: escaped for the
/// terminal (`terminal::escape`).
pub fn text(nodes: &[NodeStatus], local_version: &str) -> String {
    use crate::terminal::escape as e;
    use std::fmt::Write;
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            e(s).into_owned()
        }
    };
    let mut out = String::new();
    for n in nodes {
        let _ = writeln!(out, "{} ({})  {}", n.node, e(&n.host), e(&n.role));
        if let Some(err) = &n.error {
            let _ = writeln!(out, "  unreachable: {}", e(err));
            continue;
        }
        let _ = writeln!(
            out,
            "  gateway   {} / {}{}",
            e(&n.gateway_active),
            e(&n.gateway_enabled),
            if n.gateway_healthy {
                ", /healthz ok"
            } else {
                ", /healthz not answering"
            }
        );
        if let Some(m) = &n.monitor {
            let last = m
                .transitions
                .back()
                .map(|t| format!("{} -> {} at {}", t.from.as_str(), t.to.as_str(), e(&t.at)))
                .unwrap_or_else(|| "none".into());
            let _ = writeln!(
                out,
                "  monitor   {} since {}; last transition: {last}",
                m.role.as_str(),
                e(&m.since)
            );
        } else if let Some(a) = &n.monitor_active {
            let _ = writeln!(out, "  monitor   {} (no state file)", e(a));
        }
        let ocfo_note = if !n.ocfo_version.is_empty() && n.ocfo_version != local_version {
            format!(" (this ocfo: {local_version})")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  versions  openclaw {}, node {}, ocfo {}{ocfo_note}",
            or_dash(&n.openclaw_version),
            or_dash(&n.node_version),
            or_dash(&n.ocfo_version)
        );
        let tree = if n.openclaw_lock.is_empty() {
            "openclaw not installed from a lock".to_string()
        } else {
            let short: String = n.openclaw_lock.chars().take(12).collect();
            let differs = nodes
                .iter()
                .any(|o| o.error.is_none() && o.openclaw_lock != n.openclaw_lock);
            format!(
                "openclaw lock sha256 {}{}",
                e(&short),
                if differs { " (the nodes differ)" } else { "" }
            )
        };
        let _ = writeln!(out, "  tree      {tree}");
        let _ = writeln!(out, "  deployed  {}", or_dash(&n.last_deploy));
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::inventory::Role;
    use crate::modules::testkit::{ok, Fixture, ScriptedHost};

    /// A standby that lies in every field `ocfo status` prints: escape
    /// sequences (a title change, a screen clear), C1 CSI, a right-to-left
    /// override and a zero-width space (issue 16, finding 8).
    #[tokio::test]
    async fn a_lying_host_cannot_write_to_the_terminal() {
        let lie = "x\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}1m\u{202e}y\u{200b}";
        let state = serde_json::json!({
            "version": lie, "name": lie, "pid": 1, "role": "watching", "since": lie,
            "pinned": false, "consecutive_failures": 0, "consecutive_successes": 0,
            "recent_probes": [], "counters": {"probes": 0, "probe_failures": 0, "promotions": 0,
            "demotions": 0, "failed_actions": 0},
            "transitions": [{"at": lie, "from": "watching", "to": "promoted", "reason": lie}],
            "last_error": lie, "updated": lie, "standby": lie,
            "hold": {"until": 1, "by": lie, "reason": lie}
        });
        let answer = format!(
            "gateway_active={lie}\ngateway_enabled={lie}\nopenclaw={lie}\nopenclaw_lock={lie}\nnode={lie}\nocfo={lie}\nmonitor_active=active\nlast_deploy={lie}\n--monitor-state--\n{state}\n"
        );
        let host = ScriptedHost::new(move |_| ok(&answer));
        let fx = Fixture::load(|_| {});
        let mut nodes = Vec::new();
        for role in Role::ALL {
            nodes.push(super::node_status(&fx.inv, role, Ok(&host)).await);
        }
        nodes.push(
            super::node_status::<ScriptedHost>(&fx.inv, Role::Primary, Err(lie.into())).await,
        );
        assert!(nodes[1].monitor.is_some(), "the state file did not parse");
        let text = super::text(&nodes, "0.1.0");
        let shown = text.replace('\n', "");
        assert!(!shown.chars().any(crate::terminal::is_hidden), "{text:?}");
        assert!(text.contains("x\\u{1b}]0;owned\\u{7}"), "{text}");
        assert!(text.contains("\\u{202e}y\\u{200b}"), "{text}");
    }

    /// Each node's tree is shown by its lock's hash, in the JSON (a new
    /// field, the others unchanged) and the text, which says when the two
    /// nodes differ (issue 16, finding 3).
    #[tokio::test]
    async fn the_tree_of_each_node_is_shown_and_a_difference_said() {
        let fx = Fixture::load(|_| {});
        let answer = |lock: &'static str| {
            ScriptedHost::new(move |_| {
                ok(&format!(
                    "gateway_active=active\nopenclaw=2026.9.6\nopenclaw_lock={lock}\nnode=v24.21.0\n--monitor-state--\n"
                ))
            })
        };
        let a = "1e3482c870c5436dd49d10e100e5066a00b248a27b6555b264f6ac153cf797d5";
        let b = "ab".repeat(32);
        let b: &'static str = Box::leak(b.into_boxed_str());
        let same = [
            super::node_status(&fx.inv, Role::Primary, Ok(&answer(a))).await,
            super::node_status(&fx.inv, Role::Standby, Ok(&answer(a))).await,
        ];
        assert_eq!(same[0].openclaw_lock, a);
        let json = serde_json::to_value(&same[0]).unwrap();
        assert_eq!(json["openclaw_lock"], a);
        assert_eq!(json["openclaw_version"], "2026.9.6");
        let text = super::text(&same, "0.1.0");
        assert!(
            text.contains("  tree      openclaw lock sha256 1e3482c870c5\n"),
            "{text}"
        );
        assert!(!text.contains("differ"), "{text}");
        let differ = [
            super::node_status(&fx.inv, Role::Primary, Ok(&answer(a))).await,
            super::node_status(&fx.inv, Role::Standby, Ok(&answer(b))).await,
        ];
        let text = super::text(&differ, "0.1.0");
        assert!(text.contains("abababababab (the nodes differ)"), "{text}");
        let unlocked = [super::node_status(&fx.inv, Role::Primary, Ok(&answer(""))).await];
        let counters = |armed_ms, watching_ms| crate::monitor::state_file::Counters {
            armed_ms,
            watching_ms,
            ..Default::default()
        };
        assert_eq!(
            super::armed_share(&counters(990, 1000)),
            None,
            "too short to say"
        );
        assert_eq!(super::armed_share(&counters(99_000, 100_000)), None);
        assert_eq!(super::armed_share(&counters(90_000, 100_000)), Some(90.0));
        assert!(super::text(&unlocked, "0.1.0").contains("openclaw not installed from a lock"));
    }
}
