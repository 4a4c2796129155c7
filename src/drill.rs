//! `ocfo drill`: break the primary on purpose, measure the failover and the
//! failback, and put the primary back whatever happens.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::engine::Host;
use crate::inventory::Inventory;
use crate::monitor::machine::Role;
use crate::monitor::MonitorState;
use crate::render::layout::GATEWAY_UNIT;
use crate::shell::quote;
use crate::status::local_health_url;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// Stop the primary's gateway unit.
    Stop,
    /// SIGKILL the primary's gateway and keep it down.
    Kill,
    /// Block the standby's probes at the primary's firewall (the gateway keeps running).
    Cut,
}

#[derive(Debug, Clone)]
pub struct DrillOptions {
    pub fault: Fault,
    pub max_failover: Duration,
    pub max_failback: Duration,
    /// The longest any phase may take before the drill gives up.
    pub phase_timeout: Duration,
    /// How long preflight waits for a healthy, idle pair before refusing
    /// (zero: check once).
    pub wait: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    pub phase: &'static str,
    pub event: String,
    /// Milliseconds since the phase began (fault injection, or restore).
    pub at_ms: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct DrillReport {
    pub fault: Option<Fault>,
    pub ok: bool,
    pub error: Option<String>,
    pub timeline: Vec<Mark>,
    /// Fault → standby's monitor decides to promote.
    pub detection_ms: Option<u64>,
    pub pull_ms: Option<u64>,
    pub gateway_start_ms: Option<u64>,
    /// Fault → the standby serves: warm, OpenClaw started its channel; cold,
    /// its gateway answers /healthz.
    pub failover_ms: Option<u64>,
    /// Warm: the live switch failed and the monitor restarted the gateway.
    pub fallback_restart: bool,
    /// Restore → primary healthy again.
    pub primary_recovery_ms: Option<u64>,
    /// Restore → standby demoted and its gateway stopped.
    pub failback_ms: Option<u64>,
    pub max_failover_ms: u64,
    pub max_failback_ms: u64,
    pub restored: bool,
}

fn fault_script(inv: &Inventory, fault: Fault) -> String {
    match fault {
        Fault::Stop => format!("systemctl stop --no-block {GATEWAY_UNIT}"),
        // Killed, then stopped so that Restart=always does not bring it back.
        Fault::Kill => format!(
            "pid=$(systemctl show -p MainPID --value {GATEWAY_UNIT}); [ \"$pid\" -gt 0 ] && kill -9 \"$pid\"; systemctl stop --no-block {GATEWAY_UNIT}"
        ),
        Fault::Cut => cut_rule(inv, "-I"),
    }
}

fn cut_rule(inv: &Inventory, op: &str) -> String {
    format!(
        "iptables -w {op} INPUT {}-s {} -p tcp --dport {} -m comment --comment ocfo-drill -j DROP",
        if op == "-I" { "1 " } else { "" },
        inv.standby.private_address,
        inv.openclaw.port
    )
}

fn restore_script(inv: &Inventory, fault: Fault) -> String {
    match fault {
        Fault::Stop | Fault::Kill => format!("systemctl start {GATEWAY_UNIT}"),
        Fault::Cut => format!(
            "while {}; do {}; done",
            cut_rule(inv, "-C"),
            cut_rule(inv, "-D")
        ),
    }
}

/// What the standby sees, in one round trip: its monitor's state, its own
/// gateway, and the primary's health over the private network.
struct Observation {
    state: Option<MonitorState>,
    own_up: bool,
    primary_up: bool,
    unit: String,
}

impl Observation {
    fn warm(&self) -> bool {
        self.state.as_ref().is_some_and(|s| s.standby == "warm")
    }

    fn role(&self) -> Option<Role> {
        self.state.as_ref().map(|s| s.role)
    }

    /// Serving: warm, the channels are switched on; cold, the gateway answers.
    fn standby_serving(&self) -> bool {
        if self.warm() {
            self.state.as_ref().is_some_and(|s| s.channels_live)
        } else {
            self.own_up || self.unit == "active"
        }
    }
}

async fn observe<H: Host>(inv: &Inventory, standby: &H) -> Result<Observation, String> {
    let primary_url = local_health_url(inv, crate::inventory::Role::Primary);
    let script = format!(
        "curl -s -m 1 {own} | grep -q '\"ok\":true' && echo own=up || echo own=down\n\
         curl -s -m 1 {primary} | grep -q '\"ok\":true' && echo primary=up || echo primary=down\n\
         echo \"unit=$(systemctl is-active {GATEWAY_UNIT})\"\necho --state--\ncat /var/lib/ocfo/monitor-state.json 2>/dev/null || true",
        own = quote(&local_health_url(inv, crate::inventory::Role::Standby)),
        primary = quote(&primary_url),
    );
    let out = standby
        .check(&script)
        .await
        .map_err(|e| e.to_string())?
        .stdout;
    let (head, state) = out.split_once("--state--\n").unwrap_or((out.as_str(), ""));
    Ok(Observation {
        state: serde_json::from_str(state.trim()).ok(),
        own_up: head.contains("own=up"),
        primary_up: head.contains("primary=up"),
        unit: head
            .lines()
            .find_map(|l| l.strip_prefix("unit="))
            .unwrap_or("")
            .to_string(),
    })
}

struct Clock {
    start: Instant,
}

impl Clock {
    fn ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

pub async fn run<H: Host>(
    inv: &Inventory,
    primary: &H,
    standby: &H,
    opts: &DrillOptions,
    cancel: &AtomicBool,
) -> DrillReport {
    let mut report = DrillReport {
        fault: Some(opts.fault),
        max_failover_ms: opts.max_failover.as_millis() as u64,
        max_failback_ms: opts.max_failback.as_millis() as u64,
        ..Default::default()
    };
    // Preflight: refuse to break anything unless the pair is healthy and idle.
    let waited = Instant::now();
    loop {
        let problem = match observe(inv, standby).await {
            Err(e) => Some(format!("cannot read the standby: {e}")),
            Ok(o) => preflight_problem(o),
        };
        match problem {
            None => break,
            Some(p) if waited.elapsed() >= opts.wait || cancel.load(Ordering::SeqCst) => {
                report.error = Some(format!("preflight: {p}; not injecting a fault"));
                return report;
            }
            Some(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    let promotions_before = observe(inv, standby)
        .await
        .ok()
        .and_then(|o| o.state)
        .map_or(0, |s| s.counters.promotions);

    let clock = Clock {
        start: Instant::now(),
    };
    if let Err(e) = primary.check(&fault_script(inv, opts.fault)).await {
        report.error = Some(format!("injecting the fault failed: {e}"));
        restore(inv, primary, opts.fault, &mut report).await;
        return report;
    }
    report.timeline.push(Mark {
        phase: "failover",
        event: format!("fault injected on the primary ({:?})", opts.fault).to_lowercase(),
        at_ms: 0,
    });

    let failover = async {
        let mut detected = false;
        loop {
            if cancel.load(Ordering::SeqCst) {
                return Err("interrupted".to_string());
            }
            if clock.start.elapsed() > opts.phase_timeout {
                return Err(format!(
                    "the standby did not take over within {}s",
                    opts.phase_timeout.as_secs()
                ));
            }
            let o = observe(inv, standby).await?;
            let warm = o.warm();
            if let Some(s) = &o.state {
                if !detected
                    && s.counters.promotions >= promotions_before
                    && s.role != Role::Watching
                {
                    detected = true;
                    report.detection_ms = Some(clock.ms());
                    report.timeline.push(Mark {
                        phase: "failover",
                        event: "standby's monitor decided to promote".into(),
                        at_ms: clock.ms(),
                    });
                }
                let promoted =
                    s.role == Role::Promoted && s.counters.promotions > promotions_before;
                if promoted && (warm || o.own_up) {
                    let t = s.last_promotion.clone();
                    if let Some(t) = &t {
                        report.pull_ms = Some(t.pull_ms);
                        report.gateway_start_ms = Some(t.start_ms);
                        report.fallback_restart = t.fallback_restart;
                        if !t.healthy {
                            return Err(format!(
                                "the standby was promoted but does not serve: {}",
                                s.last_error.clone().unwrap_or_default()
                            ));
                        }
                    }
                    // Warm: failover ends when OpenClaw started the channel, by
                    // the standby's own clock relative to its decision (the
                    // verification after it is bookkeeping, not downtime).
                    let serving = match (&t, report.detection_ms) {
                        (Some(t), Some(d)) if warm => t
                            .serving_at_ms
                            .map(|at| d + at.saturating_sub(t.decided_at_ms)),
                        _ => None,
                    };
                    let at = serving.unwrap_or_else(|| clock.ms());
                    report.failover_ms = Some(at);
                    report.timeline.push(Mark {
                        phase: "failover",
                        event: if warm {
                            "standby's channel started (OpenClaw's own start time)".into()
                        } else {
                            "standby's gateway answers /healthz".into()
                        },
                        at_ms: at,
                    });
                    if warm {
                        report.timeline.push(Mark {
                            phase: "failover",
                            event: "monitor verified the channel with OpenClaw".into(),
                            at_ms: clock.ms(),
                        });
                    }
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    .await;
    if let Err(e) = failover {
        report.error = Some(e);
        restore(inv, primary, opts.fault, &mut report).await;
        return report;
    }

    let clock = Clock {
        start: Instant::now(),
    };
    restore(inv, primary, opts.fault, &mut report).await;
    if !report.restored {
        return report;
    }
    report.timeline.push(Mark {
        phase: "failback",
        event: "primary restored".into(),
        at_ms: 0,
    });
    let failback = async {
        let mut primary_seen = false;
        loop {
            if cancel.load(Ordering::SeqCst) {
                return Err("interrupted".to_string());
            }
            if clock.start.elapsed() > opts.phase_timeout {
                return Err(format!(
                    "the standby did not step down within {}s",
                    opts.phase_timeout.as_secs()
                ));
            }
            let o = observe(inv, standby).await?;
            if o.primary_up && !primary_seen {
                primary_seen = true;
                report.primary_recovery_ms = Some(clock.ms());
                report.timeline.push(Mark {
                    phase: "failback",
                    event: "primary healthy again".into(),
                    at_ms: clock.ms(),
                });
            }
            // Stepped down: no longer serving (a warm standby then finishes
            // its demotion, still Demoting, before it is ready again).
            let stepping_down = matches!(o.role(), Some(Role::Watching | Role::Demoting));
            if primary_seen && stepping_down && !o.standby_serving() {
                report.failback_ms = Some(clock.ms());
                report.timeline.push(Mark {
                    phase: "failback",
                    event: if o.warm() {
                        "standby demoted, its channels switched off".into()
                    } else {
                        "standby demoted, its gateway stopped".into()
                    },
                    at_ms: clock.ms(),
                });
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    .await;
    if let Err(e) = failback {
        report.error = Some(e);
        return report;
    }
    let slo_failover = report
        .failover_ms
        .is_some_and(|m| m <= report.max_failover_ms);
    let slo_failback = report
        .failback_ms
        .is_some_and(|m| m <= report.max_failback_ms);
    if !slo_failover {
        report.error = Some(format!(
            "failover took {} ms, over --max-failover {} ms",
            report.failover_ms.unwrap_or(0),
            report.max_failover_ms
        ));
    } else if !slo_failback {
        report.error = Some(format!(
            "failback took {} ms, over --max-failback {} ms",
            report.failback_ms.unwrap_or(0),
            report.max_failback_ms
        ));
    }
    report.ok = report.error.is_none();
    report
}

fn preflight_problem(o: Observation) -> Option<String> {
    if !o.primary_up {
        Some("the primary's gateway is not healthy (as seen from the standby)".to_string())
    } else if o.role() != Some(Role::Watching) {
        Some(format!(
            "the standby's monitor is not watching (it is {})",
            o.state.as_ref().map_or("not running", |s| s.role.as_str())
        ))
    } else if o
        .state
        .as_ref()
        .is_some_and(|s| s.hold.is_some() || s.switchover)
    {
        Some("the standby's monitor is held by a deploy or a switchover".to_string())
    } else if o.warm() && !o.own_up {
        Some("the warm standby's own gateway is down (a degraded pair)".to_string())
    } else if o.warm() && o.state.as_ref().is_some_and(|s| s.armed != Some(true)) {
        // Right after a deploy or a monitor restart: arming takes seconds,
        // and a failover before it would measure the arming too.
        Some("the warm standby is not armed yet (its channel credentials are loading)".to_string())
    } else if o.standby_serving() {
        Some(if o.warm() {
            "the standby's channels are switched on".to_string()
        } else {
            "the standby's gateway is running".to_string()
        })
    } else {
        None
    }
}

async fn restore<H: Host>(inv: &Inventory, primary: &H, fault: Fault, report: &mut DrillReport) {
    if report.restored {
        return;
    }
    match primary.check(&restore_script(inv, fault)).await {
        Ok(_) => report.restored = true,
        Err(e) => {
            let msg = format!(
                "RESTORING THE PRIMARY FAILED: {e}; fix it by hand: `{}` on the primary",
                restore_script(inv, fault)
            );
            report.error = Some(match report.error.take() {
                Some(prev) => format!("{prev}; {msg}"),
                None => msg,
            });
        }
    }
}

pub fn timeline(r: &DrillReport) -> String {
    let mut s = format!(
        "FAILOVER DRILL ({})\n",
        r.fault
            .map_or("?".into(), |f| format!("{f:?}").to_lowercase())
    );
    let mut phase = "";
    for m in &r.timeline {
        if m.phase != phase {
            phase = m.phase;
            s.push_str(&format!("  {phase}\n"));
        }
        s.push_str(&format!(
            "    +{:>6.1}s  {}\n",
            m.at_ms as f64 / 1000.0,
            m.event
        ));
    }
    // Sub-second steps (a git pull) in milliseconds, the rest in seconds.
    let secs = |v: Option<u64>| match v {
        None => "-".to_string(),
        Some(m) if m < 1000 => format!("{m}ms"),
        Some(m) => format!("{:.1}s", m as f64 / 1000.0),
    };
    s.push_str(&format!(
        "  failover {} (detection {}, git pull {}, {} {}); failback {} (primary healthy after {})\n",
        secs(r.failover_ms),
        secs(r.detection_ms),
        secs(r.pull_ms),
        if r.fallback_restart { "live switch FAILED, gateway restart + verify" } else { "switch/start + verify" },
        secs(r.gateway_start_ms),
        secs(r.failback_ms),
        secs(r.primary_recovery_ms)
    ));
    s.push_str(&format!(
        "  primary restored: {}\n",
        if r.restored { "yes" } else { "NO" }
    ));
    match &r.error {
        None => s.push_str("  result: PASS\n"),
        Some(e) => s.push_str(&format!("  result: FAIL: {e}\n")),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watching_warm(armed: Option<bool>) -> Observation {
        let mut state: MonitorState = serde_json::from_value(serde_json::json!({
            "version": "0", "name": "t", "pid": 1, "role": "watching", "since": "",
            "pinned": false, "consecutive_failures": 0, "consecutive_successes": 0,
            "updated": "", "standby": "warm", "recent_probes": [], "counters": {"probes": 0, "probe_failures": 0, "promotions": 0, "demotions": 0, "failed_actions": 0}, "transitions": []
        }))
        .unwrap();
        state.armed = armed;
        Observation {
            state: Some(state),
            own_up: true,
            primary_up: true,
            unit: "active".into(),
        }
    }

    #[test]
    fn a_warm_standby_must_be_armed_before_a_drill() {
        assert_eq!(preflight_problem(watching_warm(Some(true))), None);
        for armed in [None, Some(false)] {
            let p = preflight_problem(watching_warm(armed)).unwrap();
            assert!(p.contains("not armed"), "{p}");
        }
    }
}
