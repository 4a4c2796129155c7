//! The daemon: probe every `interval`, feed the state machine, carry out its
//! decisions, publish the state file, keep systemd's watchdog fed.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::actions::Actions;
use super::arming::Arming;
use super::config::{ChannelFailure, MonitorConfig, ProbeMode, StandbyMode};
use super::machine::{Decision, Input, Machine, StandbyRole, Thresholds};
use super::notify::Notifier;
use super::probe::{probe_any_with, Probe, ProbeResult};
use super::state_file::{
    Counters, MonitorState, ProbeRecord, Transition, KEEP_PROBES, KEEP_TRANSITIONS,
};
use crate::clock::{rfc3339_now, unix_ms};

mod announce;
mod catch_up;
mod hand_back;
mod recycle;

pub trait Prober: Send + Sync {
    /// One round; the primary's connect may take `connect_within` at most
    /// (shorter than the timeout while a failure is being confirmed).
    fn probe(&self, connect_within: Duration) -> impl Future<Output = ProbeResult> + Send;
}

pub struct HttpProber {
    pub urls: Vec<String>,
    pub mode: ProbeMode,
    pub timeout: Duration,
    /// The gateway token, read once from the environment at start.
    pub token: Option<String>,
    pub channels: Vec<String>,
    /// A chain's later standby: the standbys before it (`/healthz`).
    pub standbys_before: Vec<String>,
    pub chain: std::sync::Mutex<super::chain::ChainView>,
}

impl Prober for HttpProber {
    async fn probe(&self, connect_within: Duration) -> ProbeResult {
        let primary = probe_any_with(
            &self.urls,
            Probe {
                mode: self.mode,
                timeout: self.timeout,
                connect_timeout: connect_within.min(self.timeout),
                token: self.token.as_deref(),
                channels: &self.channels,
            },
        );
        if self.standbys_before.is_empty() {
            return primary.await;
        }
        // All at once: the answer costs one timeout, not three.
        let alive = probe_any_with(
            &self.standbys_before,
            Probe {
                mode: ProbeMode::Healthz,
                timeout: self.timeout,
                connect_timeout: self.timeout,
                token: None,
                channels: &[],
            },
        );
        let ready: Vec<String> = self
            .standbys_before
            .iter()
            .map(|u| u.replace("/healthz", "/readyz"))
            .collect();
        let serving = probe_any_with(
            &ready,
            Probe {
                mode: ProbeMode::Readyz,
                timeout: self.timeout,
                connect_timeout: self.timeout,
                token: self.token.as_deref(),
                channels: &[],
            },
        );
        let (primary, alive, serving) = futures::future::join3(primary, alive, serving).await;
        match self.chain.lock() {
            Ok(mut chain) => chain.see(primary, &alive, &serving, tokio::time::Instant::now()),
            Err(_) => primary,
        }
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
    /// Since when every primary channel fails while its gateway serves.
    channels_failing_since: Option<Instant>,
    /// Since when the primary accepts connections without answering.
    stalled_since: Option<Instant>,
    /// Warm: which gateway we armed, and our own gateway's silence.
    arming: Arming,
    /// The users were told of the current promotion (so they are told of
    /// its end).
    told: bool,
    /// When the users were last told of an unplanned takeover: within the
    /// flap window they are not told again.
    told_unplanned_at: Option<Instant>,
    /// Rung by the sentinel when the primary closes its connection: probe now.
    wake: Arc<tokio::sync::Notify>,
    /// This promotion's conversation is the primary's, continued (the
    /// catch-up restored it, or it was active already): it may be handed
    /// back at the failback.
    holds_conversation: bool,
    /// A chain's later standby: the last probe found the primary down but a
    /// standby before this one alive (it serves, or takes over itself).
    up_by_standby_before: bool,
    /// Warm: when the watching gateway is restarted over its memory bound.
    recycler: super::arming::Recycler,
    /// Until then our own gateway is restarting on purpose: its silence is
    /// not a degraded pair.
    restarting_until: Option<Instant>,
    /// The last publish: when, and whether the standby was watching warm
    /// and armed since then (the time is counted at the next publish).
    accounted: (Instant, bool, bool),
    /// The watching gateway was armed once: the time before (its first
    /// start, seconds to a minute) is `NOT ARMED` in status, not a share.
    armed_once: bool,
    /// When the last probe started: confirmations are spaced from it.
    probe_started: Instant,
}

/// After a failure, the next probe starts this soon after the last one
/// started, not a whole interval later: a second "gone" confirms a refused or
/// draining gateway (one restarting in place is back within it), and silence
/// is followed closely until it has lasted `fall_window`.
const CONFIRM_AFTER: Duration = Duration::from_millis(250);

/// How long an armed gateway may take to reload its config and the channel
/// plugin with the credentials (seconds of CPU on a small VPS).
const ARM_TIMEOUT: Duration = Duration::from_secs(90);

impl<P: Prober, A: Actions> Daemon<P, A> {
    /// Starts from reality: is our gateway running right now?
    pub async fn start(config: MonitorConfig, prober: P, actions: A, notifier: Notifier) -> Self {
        let started = Instant::now();
        // Serving means: warm, the channel switches are on; cold, the gateway runs.
        let running = match config.standby {
            StandbyMode::Warm => actions.channels_live().await,
            StandbyMode::Cold => actions.gateway_active().await,
        };
        // A gateway that serves our channels was armed by us before.
        let armed = match (config.standby, running) {
            (StandbyMode::Warm, true) => actions.gateway_instance().await,
            _ => None,
        };
        let switchover = actions.switchover_requested().await;
        let t = Thresholds {
            fall: config.fall,
            fall_window: config.fall_window,
            definitive_fall: config.definitive_fall,
            rise: config.rise,
            hold_down: config.hold_down,
            max_promotions: config.flap.max_promotions,
            flap_window: config.flap.window,
        };
        let machine = Machine::recover_with(t, running, switchover, Duration::ZERO);
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
            standby: config.standby.as_str().to_string(),
            channels_live: running && config.standby == StandbyMode::Warm,
            local_gateway_up: None,
            armed: armed.as_ref().map(|_| true),
            hold: None,
            switchover,
            primary_channels_failing_since: None,
            announcements: Default::default(),
            last_catch_up: None,
            last_hand_back: None,
            gateway_memory_mib: None,
        };
        // What the users were told survives a restart of the monitor: a
        // promotion they heard of gets its failback message.
        let previous = MonitorState::load(&config.state_file).ok();
        let told = running
            && previous
                .as_ref()
                .and_then(|p| {
                    p.announcements
                        .iter()
                        .rev()
                        .find(|a| a.outcome == "sent" && a.kind != "caught_up")
                })
                .is_some_and(|a| a.kind == "takeover");
        let recycle_mib = match config.standby {
            StandbyMode::Warm => config.recycle_above_mib,
            StandbyMode::Cold => 0,
        };
        let mut d = Daemon {
            config,
            prober,
            actions,
            notifier,
            machine,
            state,
            started,
            accounted: (started, false, false),
            armed_once: false,
            probe_started: started,
            events: Vec::new(),
            channels_failing_since: None,
            stalled_since: None,
            arming: Arming::new(armed),
            told,
            told_unplanned_at: None,
            wake: Arc::new(tokio::sync::Notify::new()),
            holds_conversation: false,
            up_by_standby_before: false,
            recycler: super::arming::Recycler::new(recycle_mib),
            restarting_until: None,
        };
        if let Some(p) = previous {
            d.state.announcements = p.announcements;
            d.state.last_catch_up = p.last_catch_up;
            d.state.last_hand_back = p.last_hand_back;
        }
        tracing::info!(
            role = d.machine.role.as_str(),
            standby = d.config.standby.as_str(),
            serving = running,
            "monitor started"
        );
        let what = match d.config.standby {
            StandbyMode::Warm => format!(
                "warm standby, channels {}",
                if running { "on" } else { "off" }
            ),
            StandbyMode::Cold => format!(
                "cold standby, local gateway {}",
                if running { "running" } else { "stopped" }
            ),
        };
        d.notify(
            "started",
            &format!("monitor started as {} ({what})", d.machine.role.as_str()),
        );
        d
    }

    /// Applies the channel policy: a primary whose gateway serves while all
    /// its channels fail is down only under `failover`, after the grace.
    fn judge(&mut self, r: &ProbeResult) -> bool {
        // A chain's later standby: a standby before it that lives takes over
        // first (nothing to promote for), but until it serves, this one
        // keeps serving (make before break).
        if r.before == Some(super::probe::StandbyBefore::Alive)
            && self.machine.role != StandbyRole::Watching
        {
            return false;
        }
        if !r.stalled {
            self.stalled_since = None;
        }
        if r.ok {
            self.channels_failing_since = None;
            return true;
        }
        // Busy, not gone: OpenClaw's event loop blocks for seconds while it
        // loads a plugin (a hot config reload); only a lasting stall is down.
        // Refused, reset, draining or unreachable counts at once.
        if r.stalled {
            let since = *self.stalled_since.get_or_insert_with(Instant::now);
            return since.elapsed() < self.config.probe.stall_grace;
        }
        if r.channels_failing.is_empty() {
            self.channels_failing_since = None;
            return false;
        }
        match self.config.probe.channel_failure {
            ChannelFailure::Ignore => true,
            // Serving, the standby steps down only for a primary whose
            // channels run: one whose gateway is back but whose channel
            // stays down (a bad token, OpenClaw's crash-loop breaker) would
            // leave the users with no bot at all.
            ChannelFailure::Failover if self.machine.role != StandbyRole::Watching => {
                if self.state.primary_channels_failing_since.is_none() {
                    self.state.primary_channels_failing_since = Some(rfc3339_now());
                    self.notify(
                        "primary_channel_down",
                        &format!(
                            "the primary's gateway answers but its channel{} {} fail{}: the standby keeps serving until {} run{} again",
                            if r.channels_failing.len() == 1 { "" } else { "s" },
                            r.channels_failing.join(", "),
                            if r.channels_failing.len() == 1 { "s" } else { "" },
                            if r.channels_failing.len() == 1 { "it" } else { "they" },
                            if r.channels_failing.len() == 1 { "s" } else { "" },
                        ),
                    );
                }
                self.channels_failing_since.get_or_insert_with(Instant::now);
                false
            }
            ChannelFailure::Failover => {
                let since = *self.channels_failing_since.get_or_insert_with(Instant::now);
                if self.state.primary_channels_failing_since.is_none() {
                    self.state.primary_channels_failing_since = Some(rfc3339_now());
                }
                since.elapsed() < self.config.probe.channel_grace
            }
        }
    }

    /// Warm and watching: is our own gateway up? Down is a degraded pair:
    /// systemd restarts it, we say so once per change.
    fn watching_warm(&self) -> bool {
        self.config.standby == StandbyMode::Warm && self.machine.role == StandbyRole::Watching
    }

    /// `answered`: our gateway's health answer, taken alongside the probe of
    /// the primary (never before it: a gateway busy reloading its plugin
    /// must not slow down the detection of a failed primary).
    async fn check_local_gateway(&mut self, answered: Option<bool>) {
        let Some(answered) = answered.filter(|_| self.watching_warm()) else {
            return;
        };
        if !answered && self.restarting_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let up = self.arming.answered(answered);
        let before = self.state.local_gateway_up;
        self.state.local_gateway_up = Some(up);
        match (before, up) {
            (Some(true) | None, false) => self.notify(
                "degraded",
                "the warm standby's own gateway is down: the pair is degraded (systemd restarts it; a promotion now would restart it)",
            ),
            (Some(false), true) => self.notify("recovered", "the warm standby's own gateway is up again"),
            _ => {}
        }
        if up && answered {
            self.ensure_armed(false).await;
        }
    }

    /// Warm: arms the running gateway unless it is the one already armed.
    /// `now` skips the wait after a failed attempt (a promotion needs it).
    async fn ensure_armed(&mut self, now: bool) -> bool {
        let Some(instance) = self.actions.gateway_instance().await else {
            return false;
        };
        if self.arming.is_armed(&instance) {
            return true;
        }
        if !self.arming.should_arm(&instance, Instant::now(), now) {
            return false;
        }
        let started = Instant::now();
        match self.arm(&instance).await {
            Ok(()) => {
                tracing::info!(
                    ms = started.elapsed().as_millis() as u64,
                    "standby armed: channel credentials loaded, channels stopped"
                );
                self.arming.succeeded(instance);
                self.state.armed = Some(true);
                true
            }
            Err(e) => {
                self.arming.failed(Instant::now());
                self.state.armed = Some(false);
                self.action_failed(
                    "arm_failed",
                    format!("arming the warm standby failed (a promotion would be slower): {e}"),
                );
                false
            }
        }
    }

    /// Until OpenClaw reports the standby's channels armed (or ARM_TIMEOUT).
    async fn wait_armed(&self) -> Result<(), String> {
        let deadline = Instant::now() + ARM_TIMEOUT;
        loop {
            // OpenClaw re-reads its config ~0.3 s after a write, then
            // reloads the channel plugin.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let last = match self.actions.channels_armed().await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "not armed {}s later: {last}",
                    ARM_TIMEOUT.as_secs()
                ));
            }
        }
    }

    async fn arm(&mut self, instance: &str) -> Result<(), String> {
        self.actions.arm_channels().await?;
        self.wait_armed().await?;
        // A gateway that restarted meanwhile started unarmed (its unit
        // removes the credentials file): arm that one next round.
        match self.actions.gateway_instance().await {
            Some(now) if now == instance => Ok(()),
            _ => Err("the gateway restarted while it was being armed".into()),
        }
    }

    /// Warm and promoted: a gateway that restarted (a crash, systemd) came
    /// back unarmed, its channels stopped: arm it and start them again.
    async fn check_promoted_gateway(&mut self) {
        if self.config.standby != StandbyMode::Warm || self.machine.role != StandbyRole::Promoted {
            return;
        }
        let Some(instance) = self.actions.gateway_instance().await else {
            return;
        };
        if self.arming.is_armed(&instance)
            || self.arming.waiting(Instant::now())
            || !self.actions.gateway_healthy().await
        {
            return;
        }
        self.notify(
            "restarted",
            "the promoted standby's gateway restarted: arming it and starting its channels again",
        );
        if !self.ensure_armed(false).await {
            return;
        }
        match self.actions.switch_channels(true).await {
            // A fresh process: its automations start from the switch file.
            Ok(()) => self.automations(true).await,
            Err(e) => {
                self.arming.forget();
                self.action_failed(
                    "start_failed",
                    format!("starting the standby's channels again failed: {e}"),
                );
            }
        }
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn notify(&mut self, event: &str, message: &str) {
        self.events.push(format!("{event}: {message}"));
        self.notifier.send(event, message);
    }

    fn transition(&mut self, from: StandbyRole, to: StandbyRole, reason: &str) {
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
        let warm_watching = self.watching_warm();
        let local = async {
            if warm_watching {
                Some(self.actions.gateway_healthy().await)
            } else {
                None
            }
        };
        // Confirming a failure, a connect that takes a few round trips lost
        // its SYN: waiting out the whole timeout would only delay the answer.
        let connect_within = if self.confirming() {
            super::probe::confirming_connect_timeout(
                self.state
                    .recent_probes
                    .iter()
                    .filter(|p| p.ok)
                    .filter_map(|p| p.connect_ms),
                self.config.probe.timeout,
            )
        } else {
            self.config.probe.timeout
        };
        self.probe_started = Instant::now();
        let started = self.probe_started.duration_since(self.started);
        let (result, local_answer) = tokio::join!(self.prober.probe(connect_within), local);
        self.state.counters.probes += 1;
        if !result.ok {
            self.state.counters.probe_failures += 1;
            tracing::warn!(detail = %result.detail, "primary probe failed");
        }
        self.state.recent_probes.push_back(ProbeRecord {
            at: rfc3339_now(),
            ok: result.ok,
            latency_ms: result.latency_ms,
            connect_ms: result.connect_ms,
            detail: result.detail.clone(),
        });
        while self.state.recent_probes.len() > KEEP_PROBES {
            self.state.recent_probes.pop_front();
        }
        self.up_by_standby_before = result.ok && result.before.is_some();
        let healthy = self.judge(&result);
        if self.channels_failing_since.is_none() {
            self.state.primary_channels_failing_since = None;
        }
        let hold = self.actions.hold().await;
        if hold.is_some() != self.state.hold.is_some() {
            match &hold {
                Some(h) => self.notify(
                    "hold",
                    &format!(
                        "held by {} ({}): failures do not promote until the hold ends",
                        h.by, h.reason
                    ),
                ),
                None => self.notify("hold_released", "the hold ended; failures promote again"),
            }
        }
        self.state.hold = hold;
        let switchover = self.actions.switchover_requested().await;
        if switchover != self.state.switchover {
            self.notify(
                "switchover",
                if switchover {
                    "planned switchover requested: the standby serves until it ends"
                } else {
                    "planned switchover ended: the standby steps down once the primary is ready"
                },
            );
        }
        self.state.switchover = switchover;
        self.check_local_gateway(local_answer).await;
        self.check_promoted_gateway().await;
        let input = Input {
            healthy,
            definitive: !healthy && result.definitive,
            held: self.state.hold.is_some(),
            switchover,
            started: Some(started),
        };
        let decision = self.machine.on_input(input, self.now());
        match decision {
            Some(Decision::Promote { reason }) => self.promote(&reason).await,
            Some(Decision::Demote { reason }) => self.demote(&reason).await,
            Some(Decision::Pin { reason }) => {
                tracing::error!("{reason}");
                self.notify("pinned", &reason);
            }
            None => self.maybe_recycle().await,
        }
        self.publish();
    }

    fn publish(&mut self) {
        let (since, watching, armed) = self.accounted;
        let ms = since.elapsed().as_millis() as u64;
        if watching {
            self.state.counters.watching_ms += ms;
            if armed {
                self.state.counters.armed_ms += ms;
            }
        }
        self.armed_once |= self.state.armed == Some(true);
        self.accounted = (
            Instant::now(),
            self.armed_once
                && self.machine.role == StandbyRole::Watching
                && self.config.standby == StandbyMode::Warm,
            self.state.armed == Some(true),
        );
        self.state.role = self.machine.role;
        if self.machine.role == StandbyRole::Promoted && self.config.standby == StandbyMode::Warm {
            self.state.local_gateway_up = None;
        }
        self.state.pinned = self.machine.pinned;
        self.state.consecutive_failures = self.machine.failures;
        self.state.consecutive_successes = self.machine.successes;
        self.state.updated = rfc3339_now();
        if let Err(e) = self.state.save(&self.config.state_file) {
            tracing::warn!("cannot write {}: {e}", self.config.state_file);
        }
    }

    async fn promote(&mut self, reason: &str) {
        let decided_at_ms = unix_ms();
        self.holds_conversation = false;
        self.transition(StandbyRole::Watching, StandbyRole::Promoting, reason);
        let planned = self.machine.planned;
        self.notify(
            "promoting",
            &if planned {
                "planned switchover: promoting the standby".to_string()
            } else {
                format!("primary is down ({reason}); promoting the standby")
            },
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
        let (healthy, serving_at_ms, fallback_restart) = match self.config.standby {
            StandbyMode::Cold => {
                self.catch_up_before_start().await;
                let ok = self.start_cold().await;
                (ok, ok.then(unix_ms), false)
            }
            StandbyMode::Warm => self.switch_on().await,
        };
        self.state.counters.promotions += 1;
        self.state.channels_live = self.config.standby == StandbyMode::Warm;
        self.state.last_promotion = Some(super::state_file::PromotionTiming {
            at: rfc3339_now(),
            pull_ms,
            pull_ok,
            start_ms: start_start.elapsed().as_millis() as u64,
            healthy,
            decided_at_ms,
            serving_at_ms,
            fallback_restart,
            planned,
        });
        self.machine.promoted(self.now());
        let what = match self.config.standby {
            StandbyMode::Cold => "standby gateway",
            StandbyMode::Warm => "standby's channels",
        };
        self.transition(
            StandbyRole::Promoting,
            StandbyRole::Promoted,
            &if healthy {
                format!("{what} serving")
            } else {
                format!("{what} switched on but not serving")
            },
        );
        if healthy {
            self.publish();
            self.announce_takeover(decided_at_ms).await;
            self.notify(
                "promoted",
                &match self.config.standby {
                    StandbyMode::Cold => "the standby's gateway is serving".to_string(),
                    StandbyMode::Warm => format!(
                        "the standby's channels started live{}",
                        if fallback_restart {
                            " (after a gateway restart)"
                        } else {
                            ""
                        }
                    ),
                },
            );
            // Answering first, remembering a few seconds later.
            self.catch_up().await;
        } else {
            self.notify(
                "promoted_unhealthy",
                "the standby was promoted but is not serving; systemd keeps restarting its gateway",
            );
        }
    }

    /// Cold: start the gateway and wait for it, retrying with backoff.
    async fn start_cold(&mut self) -> bool {
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
                if self.wait_healthy(self.config.gateway.start_timeout).await {
                    return true;
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
        false
    }

    async fn wait_healthy(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.actions.gateway_healthy().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        false
    }

    /// Until OpenClaw reports every switched channel started (or `within` ends).
    async fn wait_started(
        &mut self,
        since_ms: u64,
        within: Duration,
    ) -> Result<Option<u64>, String> {
        let deadline = Instant::now() + within;
        let mut last = "no answer from OpenClaw".to_string();
        while Instant::now() < deadline {
            match self.actions.channels_started(since_ms).await {
                Ok(c) if c.all_started() => {
                    return Ok(Some(c.started_at_ms.unwrap_or_else(unix_ms)))
                }
                Ok(c) => {
                    last = c
                        .not_started
                        .iter()
                        .map(|(ch, why)| format!("{ch}: {why}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                }
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Err(last)
    }

    /// Warm: start the armed gateway's channels and check that OpenClaw
    /// started them; if the live path fails, restart the gateway, arm it and
    /// start them, and say so. Returns (serving, serving since, restarted).
    async fn switch_on(&mut self) -> (bool, Option<u64>, bool) {
        let verify = self
            .config
            .switches
            .as_ref()
            .map_or(Duration::from_secs(20), |s| s.verify_timeout);
        let since_ms = unix_ms();
        // systemd's word, not a health answer: a starved event loop answers
        // slowly, and a restart would cost far more than a slow answer.
        let local_up = self.actions.gateway_active().await;
        let live = if !local_up {
            Err("the standby's own gateway was not running".to_string())
        } else if !self.wait_healthy(self.config.gateway.start_timeout).await {
            // Still starting (a reboot): wait for it rather than restart it.
            Err("the standby's own gateway did not answer".to_string())
        } else if !self.ensure_armed(true).await {
            Err("the standby's gateway could not be armed".to_string())
        } else {
            match self.actions.switch_channels(true).await {
                Err(e) => Err(e),
                Ok(()) => self.wait_started(since_ms, verify).await,
            }
        };
        let reason = match live {
            Ok(at) => {
                self.automations(true).await;
                return (true, at, false);
            }
            Err(e) => e,
        };
        self.action_failed(
            "live_switch_failed",
            format!("the standby's channels did not start live ({reason}); restarting its gateway instead"),
        );
        let since_ms = unix_ms();
        if let Err(e) = self.actions.restart_gateway().await {
            self.action_failed(
                "start_failed",
                format!("restarting {} failed: {e}", self.config.gateway.unit),
            );
            return (false, None, true);
        }
        match self.serve_again(since_ms).await {
            Ok(at) => (true, at, true),
            Err(e) => {
                self.action_failed("start_failed", e);
                (false, None, true)
            }
        }
    }

    /// After the promoted standby's gateway was (re)started: wait for it,
    /// and, warm, arm it, start its channels and automations. Returns when
    /// it serves again (warm: OpenClaw's start time of the channels).
    async fn serve_again(&mut self, since_ms: u64) -> Result<Option<u64>, String> {
        if !self.wait_healthy(self.config.gateway.start_timeout).await {
            return Err("the standby's gateway is not healthy after its restart".into());
        }
        let Some(verify) = self.config.switches.as_ref().map(|s| s.verify_timeout) else {
            return Ok(Some(unix_ms()));
        };
        if !self.ensure_armed(true).await {
            return Err("the restarted gateway could not be armed".into());
        }
        self.actions.switch_channels(true).await.map_err(|e| {
            format!("the standby's channels did not start after a gateway restart: {e}")
        })?;
        let at = self.wait_started(since_ms, verify).await.map_err(|e| {
            format!("the standby's channels did not start after a gateway restart either: {e}")
        })?;
        self.automations(true).await;
        Ok(at)
    }

    /// Warm: automations on at promotion (after the channels serve, since
    /// the config change reloads the channel plugin), off at demotion.
    async fn automations(&mut self, on: bool) {
        if let Err(e) = self.actions.switch_automations(on).await {
            self.action_failed(
                "automations_failed",
                format!(
                    "switching the standby's automations {} failed: {e}",
                    if on { "on" } else { "off" }
                ),
            );
        }
    }

    async fn demote(&mut self, reason: &str) {
        self.transition(StandbyRole::Promoted, StandbyRole::Demoting, reason);
        self.notify(
            "demoting",
            &if self.up_by_standby_before {
                format!("the primary is still down, but a standby before this one lives ({reason}): it serves, so this one steps down")
            } else {
                format!("primary is back ({reason}); demoting the standby")
            },
        );
        self.publish();
        if let hand_back::HandedBack::StayPromoted(why) = self.hand_back().await {
            self.action_failed("hand_back_failed", format!("staying promoted: {why}"));
            self.machine.revert(StandbyRole::Promoted, self.now());
            self.transition(StandbyRole::Demoting, StandbyRole::Promoted, &why);
            return;
        }
        // Said while the standby can still send: a cold one's gateway stops,
        // a warm one gives its token back with its channel.
        self.announce_failback().await;
        let stopped = match self.config.standby {
            StandbyMode::Cold => self.actions.stop_gateway().await,
            StandbyMode::Warm => self.actions.switch_channels(false).await,
        };
        if let Err(e) = stopped {
            self.action_failed(
                "stop_failed",
                format!("stepping down failed; staying promoted: {e}"),
            );
            self.machine.revert(StandbyRole::Promoted, self.now());
            self.transition(
                StandbyRole::Demoting,
                StandbyRole::Promoted,
                "could not step down",
            );
            return;
        }
        self.state.channels_live = false;
        // The standby no longer serves: say so now (ocfo drill's failback
        // ends here), the rest of the demotion is housekeeping.
        self.publish();
        if self.config.standby == StandbyMode::Warm {
            self.automations(false).await;
        }
        match self.actions.save_workspace().await {
            Ok(Some(branch)) => self.notify("workspace_saved", &format!("what the standby wrote while promoted is on branch {branch}")),
            Ok(None) => {}
            Err(e) => self.action_failed("save_failed", format!("saving the standby's workspace changes failed (they stay in its checkout): {e}")),
        }
        if self.config.standby == StandbyMode::Warm {
            // Watching means ready to fail over in seconds: wait out the
            // plugin reload the automations switch caused, and make sure the
            // channels are stopped with their credentials still loaded.
            if let Err(e) = self.wait_armed().await {
                self.arming.forget();
                self.state.armed = Some(false);
                self.action_failed(
                    "arm_failed",
                    format!("after the demotion the standby is not armed: {e}"),
                );
            }
        }
        self.state.counters.demotions += 1;
        self.machine.demoted(self.now());
        self.transition(
            StandbyRole::Demoting,
            StandbyRole::Watching,
            match self.config.standby {
                StandbyMode::Cold => "standby gateway stopped",
                StandbyMode::Warm => "standby's channels switched off",
            },
        );
        self.notify("demoted", "the standby is watching again");
    }

    /// What the sentinel rings to make the daemon probe at once.
    pub fn waker(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }

    /// A watching standby that saw the primary fail, and is not held.
    fn confirming(&self) -> bool {
        self.machine.role == StandbyRole::Watching
            && self.machine.failures > 0
            && self.state.hold.is_none()
    }

    /// When to probe again sooner than the interval: a failure while
    /// watching is confirmed at once, a probe every `CONFIRM_AFTER` at most
    /// (back to back when each waits out its connect), so a failover waits
    /// for `fall_window` of failing, not for `fall` whole intervals.
    fn confirm_at(&self) -> Option<tokio::time::Instant> {
        self.confirming()
            .then_some(self.probe_started + CONFIRM_AFTER)
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
        let wake = self.wake.clone();
        let mut confirm: Option<tokio::time::Instant> = None;
        loop {
            // A round on the interval, at once when the sentinel saw the
            // primary close its connection, or soon to confirm a "gone".
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tick.tick() => {}
                _ = wake.notified() => {}
                _ = tokio::time::sleep_until(confirm.unwrap_or_else(tokio::time::Instant::now)), if confirm.is_some() => {}
            }
            heartbeat.store(u64::MAX, Ordering::SeqCst);
            self.step().await;
            heartbeat.store(self.started.elapsed().as_secs(), Ordering::SeqCst);
            confirm = self.confirm_at();
            super::sd_notify::notify(&format!(
                "STATUS={} ({} consecutive failures)",
                self.machine.role.as_str(),
                self.machine.failures
            ));
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
