//! The daemon: probe every `interval`, feed the state machine, carry out its
//! decisions, publish the state file, keep systemd's watchdog fed.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::actions::{rfc3339_now, Actions};
use super::config::{MonitorConfig, ProbeMode};
use super::machine::{Decision, Machine, Role, Thresholds};
use super::notify::Notifier;
use super::probe::{probe_any, ProbeResult};
use super::state_file::{
    Counters, MonitorState, ProbeRecord, Transition, KEEP_PROBES, KEEP_TRANSITIONS,
};

pub trait Prober: Send + Sync {
    fn probe(&self) -> impl Future<Output = ProbeResult> + Send;
}

pub struct HttpProber {
    pub urls: Vec<String>,
    pub mode: ProbeMode,
    pub timeout: Duration,
}

impl Prober for HttpProber {
    async fn probe(&self) -> ProbeResult {
        probe_any(&self.urls, self.mode, self.timeout).await
    }
}

pub struct Daemon<P, A> {
    config: MonitorConfig,
    prober: P,
    actions: A,
    notifier: Notifier,
    pub machine: Machine,
    pub state: MonitorState,
    started: Instant,
    /// Every notification, also when no webhook is set (for logs and tests).
    pub events: Vec<String>,
}

impl<P: Prober, A: Actions> Daemon<P, A> {
    /// Starts from reality: is our gateway running right now?
    pub async fn start(config: MonitorConfig, prober: P, actions: A, notifier: Notifier) -> Self {
        let started = Instant::now();
        let running = actions.gateway_active().await;
        let t = Thresholds {
            fall: config.fall,
            rise: config.rise,
            hold_down: config.hold_down,
            max_promotions: config.flap.max_promotions,
            flap_window: config.flap.window,
        };
        let machine = Machine::recover(t, running, Duration::ZERO);
        let state = MonitorState {
            version: env!("CARGO_PKG_VERSION").to_string(),
            name: config.name.clone(),
            pid: std::process::id(),
            role: machine.role,
            since: rfc3339_now(),
            pinned: false,
            consecutive_failures: 0,
            consecutive_successes: 0,
            recent_probes: Default::default(),
            counters: Counters::default(),
            transitions: Default::default(),
            last_error: None,
            last_promotion: None,
            updated: rfc3339_now(),
        };
        let mut d = Daemon {
            config,
            prober,
            actions,
            notifier,
            machine,
            state,
            started,
            events: Vec::new(),
        };
        tracing::info!(
            role = d.machine.role.as_str(),
            gateway_running = running,
            "monitor started"
        );
        d.notify(
            "started",
            &format!(
                "monitor started as {} (local gateway {})",
                d.machine.role.as_str(),
                if running { "running" } else { "stopped" }
            ),
        );
        d
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn notify(&mut self, event: &str, message: &str) {
        self.events.push(format!("{event}: {message}"));
        self.notifier.send(event, message);
    }

    fn transition(&mut self, from: Role, to: Role, reason: &str) {
        tracing::info!(from = from.as_str(), to = to.as_str(), reason, "transition");
        self.state.transitions.push_back(Transition {
            at: rfc3339_now(),
            from,
            to,
            reason: reason.to_string(),
        });
        while self.state.transitions.len() > KEEP_TRANSITIONS {
            self.state.transitions.pop_front();
        }
        self.state.since = rfc3339_now();
    }

    fn action_failed(&mut self, event: &str, message: String) {
        tracing::error!("{message}");
        self.state.counters.failed_actions += 1;
        self.state.last_error = Some(message.clone());
        self.notify(event, &message);
    }

    /// One round: probe, decide, act, publish.
    pub async fn step(&mut self) {
        let result = self.prober.probe().await;
        self.state.counters.probes += 1;
        if !result.ok {
            self.state.counters.probe_failures += 1;
            tracing::warn!(detail = %result.detail, "primary probe failed");
        }
        self.state.recent_probes.push_back(ProbeRecord {
            at: rfc3339_now(),
            ok: result.ok,
            latency_ms: result.latency_ms,
            detail: result.detail.clone(),
        });
        while self.state.recent_probes.len() > KEEP_PROBES {
            self.state.recent_probes.pop_front();
        }
        let decision = self.machine.on_probe(result.ok, self.now());
        match decision {
            Some(Decision::Promote { reason }) => self.promote(&reason).await,
            Some(Decision::Demote { reason }) => self.demote(&reason).await,
            Some(Decision::Pin { reason }) => {
                tracing::error!("{reason}");
                self.notify("pinned", &reason);
            }
            None => {}
        }
        self.publish();
    }

    fn publish(&mut self) {
        self.state.role = self.machine.role;
        self.state.pinned = self.machine.pinned;
        self.state.consecutive_failures = self.machine.failures;
        self.state.consecutive_successes = self.machine.successes;
        self.state.updated = rfc3339_now();
        if let Err(e) = self.state.save(&self.config.state_file) {
            tracing::warn!("cannot write {}: {e}", self.config.state_file);
        }
    }

    async fn promote(&mut self, reason: &str) {
        self.transition(Role::Watching, Role::Promoting, reason);
        self.notify(
            "promoting",
            &format!("primary is down ({reason}); promoting the standby"),
        );
        self.publish();
        let pull_start = Instant::now();
        let pull_ok = match self.actions.pull_workspace().await {
            Ok(rev) => {
                tracing::info!(revision = %rev, "workspace pulled");
                true
            }
            // Stale files beat no assistant: promotion goes on.
            Err(e) => {
                self.action_failed(
                    "pull_failed",
                    format!("git pull of the workspace failed (promoting anyway): {e}"),
                );
                false
            }
        };
        let pull_ms = pull_start.elapsed().as_millis() as u64;
        let start_start = Instant::now();
        let mut healthy = false;
        for attempt in 1..=self.config.gateway.start_attempts {
            if let Err(e) = self.actions.start_gateway().await {
                self.action_failed(
                    "start_failed",
                    format!(
                        "starting {} failed (attempt {attempt}): {e}",
                        self.config.gateway.unit
                    ),
                );
            } else {
                let deadline = Instant::now() + self.config.gateway.start_timeout;
                while Instant::now() < deadline {
                    if self.actions.gateway_healthy().await {
                        healthy = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                if healthy {
                    break;
                }
                self.action_failed(
                    "start_failed",
                    format!(
                        "the standby's gateway is not healthy {}s after start (attempt {attempt})",
                        self.config.gateway.start_timeout.as_secs()
                    ),
                );
            }
            tokio::time::sleep(Duration::from_secs(2u64.pow(attempt.min(5)))).await;
        }
        self.state.counters.promotions += 1;
        self.state.last_promotion = Some(super::state_file::PromotionTiming {
            at: rfc3339_now(),
            pull_ms,
            pull_ok,
            start_ms: start_start.elapsed().as_millis() as u64,
            healthy,
        });
        self.machine.promoted(self.now());
        self.transition(
            Role::Promoting,
            Role::Promoted,
            if healthy {
                "standby gateway healthy"
            } else {
                "standby gateway started but not healthy"
            },
        );
        if healthy {
            self.notify("promoted", "the standby's gateway is serving");
        } else {
            self.notify(
                "promoted_unhealthy",
                "the standby's gateway was started but is not healthy; systemd keeps restarting it",
            );
        }
    }

    async fn demote(&mut self, reason: &str) {
        self.transition(Role::Promoted, Role::Demoting, reason);
        self.notify(
            "demoting",
            &format!("primary is back ({reason}); demoting the standby"),
        );
        self.publish();
        if let Err(e) = self.actions.stop_gateway().await {
            self.action_failed(
                "stop_failed",
                format!(
                    "stopping {} failed; staying promoted: {e}",
                    self.config.gateway.unit
                ),
            );
            self.machine.promoted(self.now());
            self.transition(
                Role::Demoting,
                Role::Promoted,
                "gateway could not be stopped",
            );
            return;
        }
        match self.actions.save_workspace().await {
            Ok(Some(branch)) => self.notify("workspace_saved", &format!("what the standby wrote while promoted is on branch {branch}")),
            Ok(None) => {}
            Err(e) => self.action_failed("save_failed", format!("saving the standby's workspace changes failed (they stay in its checkout): {e}")),
        }
        self.state.counters.demotions += 1;
        self.machine.demoted(self.now());
        self.transition(Role::Demoting, Role::Watching, "standby gateway stopped");
        self.notify("demoted", "the standby is watching again");
    }

    /// Runs until `shutdown` resolves (SIGTERM), then publishes and returns.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let heartbeat = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        if let Some(every) = super::sd_notify::watchdog_interval() {
            let (hb, stop, limit) = (
                heartbeat.clone(),
                stop.clone(),
                (self.config.probe.interval * 3).as_secs().max(10),
            );
            // Long actions (stopping a gateway can take minutes) run inside a
            // step, so the main loop's heartbeat is checked, not required.
            let started = self.started;
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let age = started
                        .elapsed()
                        .as_secs()
                        .saturating_sub(hb.load(Ordering::SeqCst));
                    if age <= limit || hb.load(Ordering::SeqCst) == u64::MAX {
                        super::sd_notify::notify("WATCHDOG=1");
                    }
                    tokio::time::sleep(every).await;
                }
            });
        }
        super::sd_notify::notify("READY=1");
        self.publish();
        let mut tick = tokio::time::interval(self.config.probe.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tick.tick() => {
                    heartbeat.store(u64::MAX, Ordering::SeqCst);
                    self.step().await;
                    heartbeat.store(self.started.elapsed().as_secs(), Ordering::SeqCst);
                    super::sd_notify::notify(&format!("STATUS={} ({} consecutive failures)", self.machine.role.as_str(), self.machine.failures));
                }
            }
        }
        stop.store(true, Ordering::SeqCst);
        super::sd_notify::notify("STOPPING=1");
        tracing::info!(
            role = self.machine.role.as_str(),
            "monitor stopping; the gateway is left as it is"
        );
        self.publish();
    }
}
