//! The daemon with a scripted primary and fake actions, on tokio's paused
//! clock: minutes of failover behaviour run in milliseconds.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use super::actions::{Actions, Senses};
use super::config::*;
use super::daemon::{Daemon, Prober};
use super::machine::StandbyRole;
use super::notify::Notifier;
use super::probe::ProbeResult;

fn config(dir: &std::path::Path) -> MonitorConfig {
    MonitorConfig {
        name: "test".into(),
        probe: ProbeConfig {
            standbys_before: Vec::new(),
            standby_grace: None,
            urls: vec!["http://10.0.0.1:18789/healthz".into()],
            mode: ProbeMode::Healthz,
            interval: Duration::from_secs(2),
            timeout: Duration::from_millis(1500),
            token_env: None,
            primary_channels: vec!["telegram".into()],
            channel_failure: ChannelFailure::Failover,
            channel_grace: Duration::from_secs(60),
            stall_grace: Duration::from_secs(10),
        },
        fall: 3,
        fall_window: Duration::from_millis(1250),
        definitive_fall: 2,
        rise: 5,
        hold_down: Duration::from_secs(60),
        flap: FlapConfig {
            max_promotions: 3,
            window: Duration::from_secs(600),
        },
        gateway: GatewayConfig {
            unit: "openclaw-gateway.service".into(),
            health_url: "http://10.0.0.2:18789/healthz".into(),
            start_timeout: Duration::from_secs(20),
            start_attempts: 3,
        },
        workspace: None,
        conversation: None,
        state_file: dir.join("state.json").display().to_string(),
        notify: None,
        standby: StandbyMode::Cold,
        switches: None,
        hold_file: dir.join("hold.json").display().to_string(),
        switchover_file: dir.join("switchover.json").display().to_string(),
        drill_file: dir.join("drill.json").display().to_string(),
        openclaw: super::config::OpenClawCli {
            bin: "/opt/openclaw/bin/openclaw".into(),
            user: "openclaw".into(),
            home: "/home/openclaw".into(),
            path: "/usr/bin:/bin".into(),
            config_path: "/home/openclaw/.openclaw/openclaw.json".into(),
            include_roots: dir.join("switches").display().to_string(),
            gateway_env: "/etc/openclaw/gateway.env".into(),
            device_key: dir.join("device.key").display().to_string(),
        },
        announce: None,
        recycle_above_mib: 0,
    }
}

fn warm_config(dir: &std::path::Path) -> MonitorConfig {
    MonitorConfig {
        standby: StandbyMode::Warm,
        switches: Some(SwitchConfig {
            dir: dir.join("switches").display().to_string(),
            channels: vec!["discord".into()],
            cron_when_promoted: true,
            verify_timeout: Duration::from_secs(20),
            secrets_source: "/etc/ocfo/standby-channels.json".into(),
            secrets_file: "/run/ocfo-standby/channels.json".into(),
            token_files: vec![],
        }),
        ..config(dir)
    }
}

/// The primary's health, one entry per probe; empty means healthy.
/// `+` healthy, `-` down, `c` serving but its channels fail, `s` connected
/// but no answer (stalled), `g` gone (refused, reset or draining).
struct Script(Mutex<VecDeque<char>>);

impl Prober for Script {
    async fn probe(&self, _connect_within: Duration) -> ProbeResult {
        let c = self.0.lock().unwrap().pop_front().unwrap_or('+');
        let mut r = match c {
            '+' => ProbeResult::up("HTTP 200"),
            '-' => ProbeResult::down("no answer within 800ms (no connection)"),
            'g' => ProbeResult::gone("Connection refused (os error 111)"),
            's' => ProbeResult {
                stalled: true,
                ..ProbeResult::down("no answer within 800ms (connected: busy?)")
            },
            _ => ProbeResult::down("HTTP 503, failing: telegram"),
        };
        if c == 'c' {
            r.channels_failing = vec!["telegram".into()];
        }
        r
    }
}

fn script(s: &str) -> Script {
    Script(Mutex::new(s.chars().collect()))
}

#[derive(Default)]
struct Fake {
    running: Mutex<bool>,
    log: Mutex<Vec<String>>,
    pull_fails: bool,
    starts_unhealthy: bool,
    /// The start after a catch-up's activation answers only this much later
    /// (a slow start on a loaded host).
    slow_catch_up_start: Option<Duration>,
    healthy_at: Mutex<Option<tokio::time::Instant>>,
    save_branch: Option<String>,
    /// Warm: the switch files' state.
    switched_on: Mutex<bool>,
    /// Warm: OpenClaw never starts the channel live (needs a restart).
    live_switch_broken: bool,
    /// Warm: the channel never starts, not even after a restart.
    channel_broken: bool,
    restarted: Mutex<bool>,
    hold: Mutex<Option<super::requests::Hold>>,
    switchover: Mutex<bool>,
    /// Warm: the local gateway is down while watching.
    local_down: Mutex<bool>,
    /// Warm: the gateway process (bumped by each restart) and the one armed.
    instance: Mutex<u32>,
    armed_instance: Mutex<Option<u32>>,
    /// Warm: OpenClaw never takes the credentials.
    arm_broken: bool,
    /// A drill's lease is on.
    drill: Mutex<bool>,
    /// Sending a message to the users fails.
    announce_broken: bool,
    /// The primary's newest conversation snapshot not yet active here.
    snapshot: Option<super::conversation::Snapshot>,
    /// `backup git restore` fails.
    restore_broken: bool,
    /// The standby's last snapshot at the failback (none: no conversation).
    hand_back: Option<super::conversation::Snapshot>,
    /// Polls of the returned branch before the primary has taken it
    /// (`u32::MAX`: never).
    taken_after: Mutex<u32>,
    /// The gateway's anonymous memory (bytes).
    memory: Mutex<Option<u64>>,
}

impl Fake {
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Senses for &Fake {
    async fn gateway_memory(&self) -> Option<u64> {
        *self.memory.lock().unwrap()
    }
    async fn gateway_active(&self) -> bool {
        *self.running.lock().unwrap() && !*self.local_down.lock().unwrap()
    }
    async fn gateway_healthy(&self) -> bool {
        !self.starts_unhealthy
            && *self.running.lock().unwrap()
            && !*self.local_down.lock().unwrap()
            && self
                .healthy_at
                .lock()
                .unwrap()
                .is_none_or(|t| tokio::time::Instant::now() >= t)
    }
    async fn channels_live(&self) -> bool {
        *self.switched_on.lock().unwrap()
    }
    async fn channels_armed(&self) -> Result<(), String> {
        // OpenClaw reloads the plugin with the credentials: seconds.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let armed = *self.armed_instance.lock().unwrap() == Some(*self.instance.lock().unwrap());
        if armed && !*self.switched_on.lock().unwrap() {
            Ok(())
        } else {
            Err("discord: blocked: configured but unavailable".into())
        }
    }
    async fn gateway_instance(&self) -> Option<String> {
        let up = *self.running.lock().unwrap() && !*self.local_down.lock().unwrap();
        up.then(|| format!("{}@1", *self.instance.lock().unwrap()))
    }
    async fn channels_started(
        &self,
        _since_ms: u64,
    ) -> Result<crate::openclaw::ChannelCheck, String> {
        // OpenClaw takes a few seconds to load the plugin and start it.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let on = *self.switched_on.lock().unwrap();
        let restarted = *self.restarted.lock().unwrap();
        let started = on && !self.channel_broken && (!self.live_switch_broken || restarted);
        Ok(crate::openclaw::ChannelCheck {
            started: if started {
                vec!["discord".into()]
            } else {
                vec![]
            },
            not_started: if started {
                vec![]
            } else {
                vec![("discord".into(), "blocked: plugin failed to load".into())]
            },
            started_at_ms: started.then_some(1),
        })
    }
    async fn hold(&self) -> Option<super::requests::Hold> {
        self.hold.lock().unwrap().clone()
    }
    async fn switchover_requested(&self) -> bool {
        *self.switchover.lock().unwrap()
    }
    async fn drill(&self) -> Option<super::requests::Hold> {
        self.drill.lock().unwrap().then(|| super::requests::Hold {
            until: u64::MAX,
            by: "drill".into(),
            reason: "test".into(),
        })
    }
}

impl Actions for &Fake {
    async fn pull_workspace(&self) -> Result<String, String> {
        self.log.lock().unwrap().push("pull".into());
        if self.pull_fails {
            Err("remote unreachable".into())
        } else {
            Ok("abc123".into())
        }
    }
    async fn start_gateway(&self) -> Result<(), String> {
        let after_activation = self.log().iter().any(|l| l.starts_with("activate"));
        if let (Some(d), true) = (self.slow_catch_up_start, after_activation) {
            let mut at = self.healthy_at.lock().unwrap();
            if at.is_none() {
                *at = Some(tokio::time::Instant::now() + d);
            }
        }
        self.log.lock().unwrap().push("start".into());
        *self.running.lock().unwrap() = true;
        // A new process: started without credentials, channels stopped.
        *self.instance.lock().unwrap() += 1;
        *self.switched_on.lock().unwrap() = false;
        Ok(())
    }
    async fn stop_gateway(&self) -> Result<(), String> {
        self.log.lock().unwrap().push("stop".into());
        *self.running.lock().unwrap() = false;
        Ok(())
    }
    async fn save_workspace(&self) -> Result<Option<String>, String> {
        self.log.lock().unwrap().push("save".into());
        Ok(self.save_branch.clone())
    }
    async fn switch_channels(&self, on: bool) -> Result<(), String> {
        self.log
            .lock()
            .unwrap()
            .push(if on { "switch on" } else { "switch off" }.into());
        // OpenClaw starts only an armed gateway's channels (credentials loaded).
        let armed = *self.armed_instance.lock().unwrap() == Some(*self.instance.lock().unwrap());
        if on && !armed {
            return Err("channels.start: discord: configured but unavailable".into());
        }
        *self.switched_on.lock().unwrap() = on;
        Ok(())
    }
    async fn switch_automations(&self, on: bool) -> Result<(), String> {
        self.log.lock().unwrap().push(
            if on {
                "automations on"
            } else {
                "automations off"
            }
            .into(),
        );
        Ok(())
    }
    async fn arm_channels(&self) -> Result<(), String> {
        self.log.lock().unwrap().push("arm".into());
        *self.switched_on.lock().unwrap() = false;
        if !self.arm_broken {
            *self.armed_instance.lock().unwrap() = Some(*self.instance.lock().unwrap());
        }
        Ok(())
    }
    async fn restart_gateway(&self) -> Result<(), String> {
        self.log.lock().unwrap().push("restart".into());
        *self.restarted.lock().unwrap() = true;
        *self.local_down.lock().unwrap() = false;
        // A new process: started without credentials, channels stopped.
        *self.instance.lock().unwrap() += 1;
        *self.switched_on.lock().unwrap() = false;
        Ok(())
    }
    async fn fetch_conversation(&self) -> Result<Option<super::conversation::Snapshot>, String> {
        self.log.lock().unwrap().push("fetch conversation".into());
        Ok(self.snapshot.clone())
    }
    async fn quiesce_gateway(&self, _limit: Duration) -> Result<(), String> {
        self.log.lock().unwrap().push("quiesce".into());
        *self.switched_on.lock().unwrap() = false;
        Ok(())
    }
    async fn restore_conversation(&self, s: &super::conversation::Snapshot) -> Result<(), String> {
        self.log
            .lock()
            .unwrap()
            .push(format!("restore {}", &s.commit[..7]));
        tokio::time::sleep(Duration::from_secs(3)).await;
        if self.restore_broken {
            Err("backup git restore: integrity check failed".into())
        } else {
            Ok(())
        }
    }
    async fn activate_conversation(&self, s: &super::conversation::Snapshot) -> Result<(), String> {
        // Only offline: OpenClaw has no live import.
        assert!(
            !*self.running.lock().unwrap(),
            "activated while the gateway runs"
        );
        self.log
            .lock()
            .unwrap()
            .push(format!("activate {}", &s.commit[..7]));
        Ok(())
    }
    async fn hand_back_conversation(
        &self,
    ) -> Result<Option<super::conversation::Snapshot>, String> {
        self.log.lock().unwrap().push("hand back".into());
        Ok(self.hand_back.clone())
    }
    async fn hand_back_taken(&self, s: &super::conversation::Snapshot) -> Result<bool, String> {
        let mut left = self.taken_after.lock().unwrap();
        if *left == 0 {
            self.log
                .lock()
                .unwrap()
                .push(format!("taken {}", &s.commit[..7]));
            return Ok(true);
        }
        *left = left.saturating_sub(u32::from(*left != u32::MAX));
        Ok(false)
    }
    async fn withdraw_hand_back(&self) -> Result<(), String> {
        self.log.lock().unwrap().push("withdraw".into());
        Ok(())
    }
    async fn announce(&self, channel: &str, target: &str, text: &str) -> Result<(), String> {
        self.log
            .lock()
            .unwrap()
            .push(format!("announce {channel}:{target}: {text}"));
        if self.announce_broken {
            Err("gateway not reachable".into())
        } else {
            Ok(())
        }
    }
}

async fn warm<'a>(dir: &std::path::Path, s: &str, fake: &'a Fake) -> Daemon<Script, &'a Fake> {
    *fake.running.lock().unwrap() = true;
    Daemon::start(
        warm_config(dir),
        script(s),
        fake,
        Notifier::new(None, "test"),
    )
    .await
}

#[tokio::test(start_paused = true)]
async fn warm_promotion_switches_channels_on_live_and_demotion_off() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake {
        save_branch: Some("ocfo/standby-w".into()),
        ..Default::default()
    };
    let mut d = warm(dir.path(), "---", &fake).await;
    assert_eq!(d.machine.role, StandbyRole::Watching);
    let t0 = tokio::time::Instant::now();
    rounds(&mut d, 3).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    // Armed while watching; then no restart and no start: the gateway was
    // running, its credentials loaded, all along.
    // Automations only once the channels serve: their config change makes
    // OpenClaw reload the channel plugin.
    assert_eq!(fake.log(), ["arm", "pull", "switch on", "automations on"]);
    let p = d.state.last_promotion.clone().unwrap();
    assert!(p.healthy && !p.fallback_restart, "{p:?}");
    assert!(d.state.channels_live);
    assert!(
        d.events
            .iter()
            .any(|e| e.starts_with("promoted: the standby's channels started live")),
        "{:?}",
        d.events
    );
    // Primary back: demote after the hold-down; the gateway keeps running.
    for _ in 0..60 {
        rounds(&mut d, 1).await;
        if d.machine.role == StandbyRole::Watching {
            break;
        }
    }
    assert!(t0.elapsed() >= Duration::from_secs(60));
    assert_eq!(
        fake.log(),
        [
            "arm",
            "pull",
            "switch on",
            "automations on",
            "switch off",
            "automations off",
            "save"
        ]
    );
    // Still armed: the next promotion only starts the channels again.
    assert_eq!(d.state.armed, Some(true));
    assert!(
        *fake.running.lock().unwrap(),
        "the warm gateway keeps running"
    );
    assert!(!d.state.channels_live);
}

#[tokio::test(start_paused = true)]
async fn warm_live_switch_failure_falls_back_to_a_restart_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake {
        live_switch_broken: true,
        ..Default::default()
    };
    let mut d = warm(dir.path(), "---", &fake).await;
    rounds(&mut d, 3).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    // The restarted gateway starts unarmed: armed again, then started.
    assert_eq!(
        fake.log(),
        [
            "arm",
            "pull",
            "switch on",
            "restart",
            "arm",
            "switch on",
            "automations on"
        ]
    );
    let p = d.state.last_promotion.clone().unwrap();
    assert!(p.healthy && p.fallback_restart, "{p:?}");
    assert!(
        d.events.iter().any(|e| e.starts_with("live_switch_failed")),
        "{:?}",
        d.events
    );
    assert!(
        d.events
            .iter()
            .any(|e| e.contains("after a gateway restart")),
        "{:?}",
        d.events
    );
}

#[tokio::test(start_paused = true)]
async fn warm_channel_that_never_starts_is_reported_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake {
        channel_broken: true,
        ..Default::default()
    };
    let mut d = warm(dir.path(), "---", &fake).await;
    rounds(&mut d, 3).await;
    let p = d.state.last_promotion.clone().unwrap();
    assert!(!p.healthy && p.fallback_restart, "{p:?}");
    assert!(
        d.events.iter().any(|e| e.starts_with("promoted_unhealthy")),
        "{:?}",
        d.events
    );
    assert!(
        d.state
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("blocked"),
        "{:?}",
        d.state.last_error
    );
}

#[tokio::test(start_paused = true)]
async fn warm_restart_recovers_promoted_from_the_switch_files() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    *fake.switched_on.lock().unwrap() = true;
    let d = warm(dir.path(), "", &fake).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    let fake = Fake::default();
    let d = warm(dir.path(), "", &fake).await;
    assert_eq!(d.machine.role, StandbyRole::Watching);
}

#[tokio::test(start_paused = true)]
async fn a_down_warm_gateway_is_a_degraded_pair_and_promotion_restarts_it() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    let mut d = warm(dir.path(), &format!("{}---", "+".repeat(16)), &fake).await;
    *fake.local_down.lock().unwrap() = true;
    rounds(&mut d, 14).await;
    assert_eq!(
        d.state.local_gateway_up,
        Some(true),
        "14 s without an answer is a plugin reload, not an outage"
    );
    rounds(&mut d, 2).await;
    assert_eq!(d.state.local_gateway_up, Some(false));
    assert_eq!(
        d.events
            .iter()
            .filter(|e| e.starts_with("degraded"))
            .count(),
        1,
        "{:?}",
        d.events
    );
    rounds(&mut d, 3).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    // Starting channels on a dead gateway cannot work: restart, arm, start.
    assert_eq!(
        fake.log(),
        ["pull", "restart", "arm", "switch on", "automations on"]
    );
    assert!(d.state.last_promotion.clone().unwrap().healthy);
}

#[tokio::test(start_paused = true)]
async fn a_restarted_watching_gateway_is_armed_again_and_a_failed_arming_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    let mut d = warm(dir.path(), "", &fake).await;
    rounds(&mut d, 3).await;
    assert_eq!(fake.log(), ["arm"], "armed once, not every round");
    assert_eq!(d.state.armed, Some(true));
    // Armed from the first round on: all of the watching time but the start.
    let c = &d.state.counters;
    assert!(
        c.watching_ms >= 4_000 && c.armed_ms == c.watching_ms,
        "{c:?}"
    );
    // systemd restarts the gateway: a new process, no credentials.
    *fake.instance.lock().unwrap() += 1;
    rounds(&mut d, 2).await;
    assert_eq!(fake.log(), ["arm", "arm"]);
    let c = &d.state.counters;
    assert!(
        c.armed_ms == c.watching_ms,
        "re-armed within its round: {c:?}"
    );
    assert!(!d.state.channels_live, "arming never starts a channel");

    let fake = Fake {
        arm_broken: true,
        ..Default::default()
    };
    let mut d = warm(dir.path(), "", &fake).await;
    rounds(&mut d, 10).await;
    // Tried once (it waits out OpenClaw's reload), reported, then retried
    // after a pause, not every round.
    let tries = fake.log().iter().filter(|l| *l == "arm").count();
    assert_eq!(tries, 1, "{:?}", fake.log());
    assert_eq!(d.state.armed, Some(false));
    // Never armed: no share to speak of (status says NOT ARMED).
    let c = &d.state.counters;
    assert!(c.watching_ms == 0 && c.armed_ms == 0, "{c:?}");
    assert!(
        d.events.iter().any(|e| e.starts_with("arm_failed")),
        "{:?}",
        d.events
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    rounds(&mut d, 1).await;
    assert_eq!(fake.log().iter().filter(|l| *l == "arm").count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_promoted_gateway_that_restarts_gets_its_channels_back() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    let mut d = warm(dir.path(), "---", &fake).await;
    rounds(&mut d, 3).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    assert!(*fake.switched_on.lock().unwrap());
    // It crashes and systemd starts it again: unarmed, channels stopped.
    *fake.instance.lock().unwrap() += 1;
    *fake.switched_on.lock().unwrap() = false;
    rounds(&mut d, 1).await;
    assert!(*fake.switched_on.lock().unwrap(), "{:?}", fake.log());
    assert_eq!(
        fake.log(),
        [
            "arm",
            "pull",
            "switch on",
            "automations on",
            "arm",
            "switch on",
            "automations on"
        ]
    );
    assert!(
        d.events.iter().any(|e| e.starts_with("restarted")),
        "{:?}",
        d.events
    );
    assert_eq!(d.machine.role, StandbyRole::Promoted);
}

#[tokio::test(start_paused = true)]
async fn a_hold_keeps_a_restarting_primary_from_failing_over_until_the_lease_ends() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    *fake.hold.lock().unwrap() = Some(super::requests::Hold {
        until: u64::MAX,
        by: "deploy".into(),
        reason: "restart".into(),
    });
    // Down for 20 probes (40 s) under the hold: no promotion.
    let mut d = warm(dir.path(), &"-".repeat(30), &fake).await;
    rounds(&mut d, 20).await;
    assert_eq!(d.machine.role, StandbyRole::Watching);
    assert!(d.state.hold.is_some());
    assert!(
        d.events.iter().any(|e| e.starts_with("hold:")),
        "{:?}",
        d.events
    );
    // The lease ends (or the deploy died) with the primary still down.
    *fake.hold.lock().unwrap() = None;
    rounds(&mut d, 1).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    assert!(d.events.iter().any(|e| e.starts_with("hold_released")));
}

#[tokio::test(start_paused = true)]
async fn a_switchover_serves_make_before_break_and_survives_a_monitor_restart() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    let mut d = warm(dir.path(), "", &fake).await;
    rounds(&mut d, 2).await;
    assert_eq!(d.machine.role, StandbyRole::Watching);
    *fake.switchover.lock().unwrap() = true;
    // The primary is still healthy: the standby goes live anyway.
    rounds(&mut d, 1).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    assert!(d.state.switchover && d.state.last_promotion.clone().unwrap().planned);
    // The primary's gateway is stopped for maintenance, then comes back:
    // no demotion while the switchover stands, even past the hold-down...
    let mut d = warm(
        dir.path(),
        &format!("{}{}", "-".repeat(20), "+".repeat(60)),
        &fake,
    )
    .await;
    assert_eq!(
        d.machine.role,
        StandbyRole::Promoted,
        "a restarted monitor keeps serving"
    );
    rounds(&mut d, 60).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    // ...and it steps down soon after the switchover ends, without the hold-down.
    *fake.switchover.lock().unwrap() = false;
    rounds(&mut d, 6).await;
    assert_eq!(d.machine.role, StandbyRole::Watching);
    assert_eq!(d.state.counters.demotions, 1);
    assert!(!*fake.switched_on.lock().unwrap());
}

#[tokio::test(start_paused = true)]
async fn primary_channel_failure_policy() {
    let dir = tempfile::tempdir().unwrap();
    // Failover (default): after the 60 s grace, not before.
    let fake = Fake::default();
    let mut d = warm(dir.path(), &"c".repeat(40), &fake).await;
    rounds(&mut d, 28).await;
    assert_eq!(d.machine.role, StandbyRole::Watching, "within the grace");
    assert!(d.state.primary_channels_failing_since.is_some());
    rounds(&mut d, 6).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    // Ignore: never.
    let fake = Fake::default();
    let mut c = warm_config(dir.path());
    c.probe.channel_failure = ChannelFailure::Ignore;
    let mut d = Daemon::start(
        c,
        script(&"c".repeat(60)),
        &fake,
        Notifier::new(None, "test"),
    )
    .await;
    *fake.running.lock().unwrap() = true;
    rounds(&mut d, 60).await;
    assert_eq!(d.machine.role, StandbyRole::Watching);
}

async fn daemon<'a>(dir: &std::path::Path, s: &str, fake: &'a Fake) -> Daemon<Script, &'a Fake> {
    Daemon::start(config(dir), script(s), fake, Notifier::new(None, "test")).await
}

/// Runs `n` probe rounds, `interval` apart, as the real loop does.
async fn rounds<A: Actions>(d: &mut Daemon<Script, A>, n: usize) {
    for _ in 0..n {
        d.step().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn promotes_after_exactly_fall_failures_then_demotes_after_rise_and_hold_down() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake {
        save_branch: Some("ocfo/standby-x".into()),
        ..Default::default()
    };
    let mut d = daemon(dir.path(), "--", &fake).await;
    rounds(&mut d, 2).await;
    assert_eq!(d.machine.role, StandbyRole::Watching);
    assert!(fake.log().is_empty());
    let mut d = daemon(dir.path(), "---", &fake).await;
    let t0 = tokio::time::Instant::now();
    rounds(&mut d, 3).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    assert_eq!(fake.log(), ["pull", "start"]);
    // Healthy again: nothing before the hold-down, then demotion.
    let mut demoted_after = None;
    for _ in 0..60 {
        rounds(&mut d, 1).await;
        if d.machine.role == StandbyRole::Watching {
            demoted_after = Some(t0.elapsed());
            break;
        }
    }
    let after = demoted_after.expect("demoted");
    assert!(
        after >= Duration::from_secs(60),
        "demoted after {after:?}, before the hold-down"
    );
    assert_eq!(fake.log(), ["pull", "start", "stop", "save"]);
    assert!(
        d.events.iter().any(|e| e.contains("ocfo/standby-x")),
        "{:?}",
        d.events
    );
    // The state file tells the story.
    let state = super::MonitorState::load(&config(dir.path()).state_file).unwrap();
    assert_eq!(state.role, StandbyRole::Watching);
    assert_eq!(state.counters.promotions, 1);
    assert_eq!(state.counters.demotions, 1);
    let roles: Vec<_> = state.transitions.iter().map(|t| t.to).collect();
    assert_eq!(
        roles,
        [
            StandbyRole::Promoting,
            StandbyRole::Promoted,
            StandbyRole::Demoting,
            StandbyRole::Watching
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_blip_shorter_than_fall_times_interval_does_not_promote() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    let mut d = daemon(dir.path(), "--+--+-+--+", &fake).await;
    rounds(&mut d, 12).await;
    assert_eq!(d.machine.role, StandbyRole::Watching);
    assert!(fake.log().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failing_git_pull_still_promotes_and_notifies() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake {
        pull_fails: true,
        ..Default::default()
    };
    let mut d = daemon(dir.path(), "---", &fake).await;
    rounds(&mut d, 3).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    assert_eq!(fake.log(), ["pull", "start"]);
    assert!(
        d.events.iter().any(|e| e.starts_with("pull_failed")),
        "{:?}",
        d.events
    );
    assert_eq!(d.state.counters.failed_actions, 1);
}

#[tokio::test(start_paused = true)]
async fn a_gateway_that_does_not_come_up_is_retried_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake {
        starts_unhealthy: true,
        ..Default::default()
    };
    let mut d = daemon(dir.path(), "---", &fake).await;
    rounds(&mut d, 3).await;
    assert_eq!(fake.log(), ["pull", "start", "start", "start"]);
    assert_eq!(
        d.events
            .iter()
            .filter(|e| e.starts_with("start_failed"))
            .count(),
        3
    );
    assert!(d.events.iter().any(|e| e.starts_with("promoted_unhealthy")));
    assert_eq!(d.machine.role, StandbyRole::Promoted);
}

#[tokio::test(start_paused = true)]
async fn a_flapping_primary_pins_the_standby() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    // Down long enough to promote, up long enough to demote, four times over.
    let cycle = format!("---{}", "+".repeat(40));
    let mut d = daemon(dir.path(), &cycle.repeat(4), &fake).await;
    rounds(&mut d, 4 * 43).await;
    assert!(
        d.events.iter().any(|e| e.starts_with("pinned")),
        "{:?}",
        d.events
    );
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    assert_eq!(fake.log().iter().filter(|a| *a == "start").count(), 3);
}

#[tokio::test(start_paused = true)]
async fn restart_in_each_state_recovers_from_reality() {
    let dir = tempfile::tempdir().unwrap();
    // Killed while promoted: the gateway still runs, so we are promoted.
    let fake = Fake {
        running: Mutex::new(true),
        ..Default::default()
    };
    let d = daemon(dir.path(), "", &fake).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    // ...and demote only after the hold-down, not at once.
    let mut d = d;
    rounds(&mut d, 10).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    rounds(&mut d, 30).await;
    assert_eq!(d.machine.role, StandbyRole::Watching);
    // Killed while watching (or mid-demotion, gateway already stopped): watching.
    let fake = Fake::default();
    let d = daemon(dir.path(), "", &fake).await;
    assert_eq!(d.machine.role, StandbyRole::Watching);
    // Killed mid-promotion with the primary still down: watching, and it
    // promotes again after `fall` failures rather than at once.
    let mut d = daemon(dir.path(), "---", &fake).await;
    rounds(&mut d, 2).await;
    assert_eq!(d.machine.role, StandbyRole::Watching);
    rounds(&mut d, 1).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
}

#[test]
fn config_round_trips_and_validation_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let yaml = c.to_yaml();
    assert!(
        yaml.contains("interval: 2s") && yaml.contains("timeout: 1500ms"),
        "{yaml}"
    );
    assert_eq!(MonitorConfig::from_yaml(&yaml).unwrap(), c);
    let bad = yaml
        .replace("timeout: 1500ms", "timeout: 5s")
        .replace("fall: 3", "fall: 0");
    let err = MonitorConfig::from_yaml(&bad).unwrap_err();
    assert!(err.contains("timeout") && err.contains("fall"), "{err}");
    assert!(MonitorConfig::from_yaml("name: x\nbogus: 1\n").is_err());
}

#[tokio::test(start_paused = true)]
async fn a_busy_primary_is_not_down_until_the_stall_lasts() {
    let dir = tempfile::tempdir().unwrap();
    // A stall shorter than stall_grace (10 s at 2 s probes): no promotion,
    // and the count starts again after a healthy answer.
    let fake = Fake::default();
    let mut d = warm(
        dir.path(),
        &format!("{}+{}", "s".repeat(4), "s".repeat(4)),
        &fake,
    )
    .await;
    rounds(&mut d, 12).await;
    assert_eq!(
        d.machine.role,
        StandbyRole::Watching,
        "a short stall failed over"
    );
    assert_eq!(d.state.counters.promotions, 0);
    // A lasting stall (a wedged gateway) is down once the grace is over.
    let fake = Fake::default();
    let mut d = warm(dir.path(), &"s".repeat(20), &fake).await;
    rounds(&mut d, 5).await;
    assert_eq!(
        d.machine.role,
        StandbyRole::Watching,
        "within the stall grace"
    );
    rounds(&mut d, 10).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    // Silence (no connection) counts at once: fall (3) probes.
    let fake = Fake::default();
    let mut d = warm(dir.path(), &"-".repeat(5), &fake).await;
    rounds(&mut d, 3).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
}

/// The real loop, on a paused clock: a primary whose gateway is gone
/// (refused, reset, draining) is confirmed a moment later, not a whole
/// interval later, and the standby promotes within a fraction of a second;
/// the sentinel's wake makes the loop probe at once.
#[tokio::test(start_paused = true)]
async fn a_gone_primary_is_confirmed_at_once_by_the_real_loop() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    let mut d = warm(dir.path(), "++gg", &fake).await;
    // Armed first (seconds of OpenClaw reloading the plugin).
    d.step().await;
    let state_file = warm_config(dir.path()).state_file;
    let wake = d.waker();
    // Interval 2 s: the loop's first round at once (healthy), then the
    // sentinel's wake at 0.1 s finds the primary gone.
    tokio::join!(
        d.run(tokio::time::sleep(Duration::from_millis(1900))),
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            wake.notify_one();
        }
    );
    // The loop's probes at 0 s, at the wake (0.1 s) and the confirmation
    // 0.25 s later, before the shutdown at 1.9 s: on the 2 s interval alone
    // there would have been one, and no promotion.
    let state = crate::monitor::MonitorState::load(&state_file).unwrap();
    assert_eq!(state.role, StandbyRole::Promoted, "{state:?}");
    assert_eq!(state.counters.probes, 4, "{state:?}");
    assert_eq!(fake.log()[..3], ["arm", "pull", "switch on"]);
}

/// A primary that falls silent (its SYNs lost: each connect waits out what
/// it is given) at the first probe `from` after the test began, for `len`
/// from that probe's start (the probes' phase does not matter), and is
/// healthy otherwise; it records the connect timeouts it was given.
struct Silence {
    began: tokio::time::Instant,
    from: Duration,
    len: Duration,
    silent_since: Mutex<Option<Duration>>,
    connects: Mutex<Vec<u128>>,
}

impl Silence {
    fn new(from_ms: u64, len_ms: u64) -> Silence {
        Silence {
            began: tokio::time::Instant::now(),
            from: Duration::from_millis(from_ms),
            len: Duration::from_millis(len_ms),
            silent_since: Mutex::new(None),
            connects: Mutex::new(Vec::new()),
        }
    }
}

impl Prober for &Silence {
    async fn probe(&self, connect_within: Duration) -> ProbeResult {
        let at = self.began.elapsed();
        let since = {
            let mut since = self.silent_since.lock().unwrap();
            match *since {
                Some(t) => t,
                None if at >= self.from => *since.insert(at),
                None => at + Duration::from_secs(1),
            }
        };
        if at < since || at >= since + self.len {
            return ProbeResult {
                latency_ms: 150,
                connect_ms: Some(2),
                ..ProbeResult::up("HTTP 200")
            };
        }
        self.connects
            .lock()
            .unwrap()
            .push(connect_within.as_millis());
        tokio::time::sleep(connect_within).await;
        ProbeResult::down(format!(
            "no connection within {}ms",
            connect_within.as_millis()
        ))
    }
}

/// The real loop on a paused clock with the default probe settings (1 s,
/// 800 ms, fall 3, fall_window 1.25 s): a silent primary is confirmed back
/// to back with short connects and replaced once its silence lasted the
/// window, sooner than `fall` whole intervals; a 1.2 s blip that fails three
/// probes in a row is not a failover.
#[tokio::test(start_paused = true)]
async fn silence_promotes_after_the_fall_window_and_a_blip_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let settings = |dir: &std::path::Path| {
        let mut c = warm_config(dir);
        c.probe.interval = Duration::from_secs(1);
        c.probe.timeout = Duration::from_millis(800);
        c
    };
    let run = |len: u64, stop_at: u64| {
        let dir = dir.path().to_path_buf();
        async move {
            let fake = Fake {
                running: Mutex::new(true),
                ..Default::default()
            };
            let silence = Silence::new(3000, len);
            let d =
                Daemon::start(settings(&dir), &silence, &fake, Notifier::new(None, "test")).await;
            d.run(tokio::time::sleep(Duration::from_millis(stop_at)))
                .await;
            let state = crate::monitor::MonitorState::load(&settings(&dir).state_file).unwrap();
            let connects = silence.connects.lock().unwrap().clone();
            (state, connects)
        }
    };
    // Silent from the first probe at or after 3 s (at s): it waits out its
    // 800 ms, then confirmations back to back, 250 ms each (healthy connects
    // took 2 ms, their answers 150 ms: OpenClaw's time is not the network's), until the one starting 1.25 s or more after s, at s+1.3:
    // decided at s+1.55. On `fall` whole intervals it would be s+2.8.
    let (state, connects) = run(u64::MAX, 7000).await;
    assert_eq!(state.role, StandbyRole::Promoted, "{state:?}");
    assert_eq!(connects[..4], [800, 250, 250, 250], "{state:?}");
    assert!(
        state.transitions[0]
            .reason
            .contains("4 consecutive probes over 1300 ms"),
        "{state:?}"
    );
    // Silent for 1.2 s: the probes starting at s, s+0.8 and s+1.05 fail,
    // three in a row, but over 1.05 s: no failover.
    let (state, connects) = run(1200, 9000).await;
    assert_eq!(connects, [800, 250, 250], "{state:?}");
    assert_eq!(state.role, StandbyRole::Watching, "{state:?}");
    assert_eq!(state.counters.promotions, 0);
}

fn announcing(dir: &std::path::Path) -> MonitorConfig {
    MonitorConfig {
        announce: Some(super::config::AnnounceConfig {
            recipients: vec![crate::inventory::announce::Recipient {
                channel: "telegram".into(),
                target: "123456789".into(),
            }],
            takeover: "{assistant}-less: main {why} at {since}; write here".into(),
            failback: "main is back since {since}".into(),
            failback_to_standby: Some("the standby serves again since {since}".into()),
            caught_up: "I remember us as of {upto}".into(),
            timeout: Duration::from_secs(30),
        }),
        ..warm_config(dir)
    }
}

/// Down long enough to promote, then healthy until the standby steps down.
async fn outage<A: Actions>(d: &mut Daemon<Script, A>) {
    for _ in 0..60 {
        rounds(d, 1).await;
        if d.machine.role == StandbyRole::Promoted {
            break;
        }
    }
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    for _ in 0..60 {
        rounds(d, 1).await;
        if d.machine.role == StandbyRole::Watching {
            return;
        }
    }
    panic!("did not step down: {:?}", d.machine.role);
}

fn said(fake: &Fake) -> Vec<String> {
    fake.log()
        .into_iter()
        .filter(|l| l.starts_with("announce"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn takeover_and_failback_are_told_after_the_switch_and_once_per_flap_window() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    *fake.running.lock().unwrap() = true;
    let cycle = format!("---{}", "+".repeat(40));
    let mut d = Daemon::start(
        announcing(dir.path()),
        script(&cycle.repeat(2)),
        &fake,
        Notifier::new(None, "test"),
    )
    .await;
    outage(&mut d).await;
    let log = fake.log();
    let pos = |prefix: &str| log.iter().position(|l| l.starts_with(prefix)).unwrap();
    // Told only once the channel runs, never before.
    assert!(pos("switch on") < pos("announce telegram:123456789: {assistant}-less"));
    // The failback message just before the channel stops: a token-file
    // channel cannot send once its token is taken back.
    assert!(pos("announce telegram:123456789: main is back") < pos("switch off"));
    let takeover = &said(&fake)[0];
    assert!(
        takeover.contains("main stopped answering at ") && takeover.ends_with(" UTC; write here"),
        "{takeover}"
    );
    assert_eq!(said(&fake).len(), 2);
    // A second outage within the flap window: not told again, and so no
    // failback message either; the state file says why.
    outage(&mut d).await;
    assert_eq!(said(&fake).len(), 2, "{:?}", said(&fake));
    let outcomes: Vec<(String, String)> = d
        .state
        .announcements
        .iter()
        .map(|a| (a.kind.clone(), a.outcome.clone()))
        .collect();
    let o = |k: &str, v: &str| (k.to_string(), v.to_string());
    assert_eq!(
        outcomes,
        [
            o("takeover", "sent"),
            o("failback", "sent"),
            o("takeover", "suppressed")
        ]
    );
    assert!(d
        .events
        .iter()
        .any(|e| e.starts_with("announce_suppressed")));
}

#[tokio::test(start_paused = true)]
async fn drills_are_told_as_drills_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    *fake.running.lock().unwrap() = true;
    *fake.drill.lock().unwrap() = true;
    let cycle = format!("---{}", "+".repeat(40));
    let mut d = Daemon::start(
        announcing(dir.path()),
        script(&cycle.repeat(2)),
        &fake,
        Notifier::new(None, "test"),
    )
    .await;
    outage(&mut d).await;
    outage(&mut d).await;
    let said = said(&fake);
    assert_eq!(said.len(), 4, "{said:?}");
    assert!(said[0].contains("failover drill"), "{}", said[0]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_announcement_never_holds_up_the_promotion() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake {
        announce_broken: true,
        ..Default::default()
    };
    *fake.running.lock().unwrap() = true;
    let mut d = Daemon::start(
        announcing(dir.path()),
        script("---"),
        &fake,
        Notifier::new(None, "test"),
    )
    .await;
    rounds(&mut d, 3).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    assert!(d.state.channels_live);
    let a = d.state.announcements.back().unwrap();
    assert_eq!(
        (a.kind.as_str(), a.outcome.as_str()),
        ("takeover", "failed")
    );
    assert!(d.events.iter().any(|e| e.starts_with("announce_failed")));
    assert!(d
        .state
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("telling 123456789"));
}

#[tokio::test(start_paused = true)]
async fn a_restarted_monitor_still_tells_the_failback_it_owes() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    *fake.running.lock().unwrap() = true;
    let mut d = Daemon::start(
        announcing(dir.path()),
        script("---"),
        &fake,
        Notifier::new(None, "test"),
    )
    .await;
    rounds(&mut d, 3).await;
    assert_eq!(said(&fake).len(), 1);
    drop(d);
    // systemd restarts the monitor while promoted; the primary comes back.
    let mut d = Daemon::start(
        announcing(dir.path()),
        script(&"+".repeat(60)),
        &fake,
        Notifier::new(None, "test"),
    )
    .await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    for _ in 0..60 {
        rounds(&mut d, 1).await;
        if d.machine.role == StandbyRole::Watching {
            break;
        }
    }
    assert_eq!(said(&fake).len(), 2, "{:?}", said(&fake));
}

/// Failback waits for the primary's channel, not only its gateway: a primary
/// whose gateway is back but whose channel stays down (OpenClaw's crash-loop
/// breaker, a revoked token) keeps the standby serving; when the channel
/// runs again, the standby steps down as usual.
#[tokio::test(start_paused = true)]
async fn a_primary_whose_channel_stays_down_does_not_take_the_service_back() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    let s = format!("---{}{}", "c".repeat(60), "+".repeat(40));
    let mut d = warm(dir.path(), &s, &fake).await;
    rounds(&mut d, 3).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    rounds(&mut d, 60).await;
    assert_eq!(
        d.machine.role,
        StandbyRole::Promoted,
        "stepped down to a primary without a channel"
    );
    assert!(
        d.events
            .iter()
            .any(|e| e.starts_with("primary_channel_down")),
        "{:?}",
        d.events
    );
    assert!(d.state.primary_channels_failing_since.is_some());
    for _ in 0..40 {
        rounds(&mut d, 1).await;
        if d.machine.role == StandbyRole::Watching {
            break;
        }
    }
    assert_eq!(d.machine.role, StandbyRole::Watching);
    assert!(d.state.primary_channels_failing_since.is_none());
}

fn remembering(dir: &std::path::Path) -> MonitorConfig {
    MonitorConfig {
        conversation: Some(ConversationConfig {
            repo: "/home/openclaw/conversation-replica".into(),
            branch: "ocfo/conversation-primary".into(),
            agent: "main".into(),
            database: "/home/openclaw/.openclaw/agents/main/agent/openclaw-agent.sqlite".into(),
            activated_file: dir.join("conversation-activated").display().to_string(),
            timeout: Duration::from_secs(60),
            push_script: Some("/usr/local/lib/ocfo/conversation-push".into()),
        }),
        ..announcing(dir)
    }
}

fn snapshot() -> super::conversation::Snapshot {
    // 2026-12-06T21:38:43Z
    super::conversation::Snapshot {
        commit: "3ae7d4f0b7b625fc49a096e4094505b255415d3d".into(),
        taken_at: 1796593123,
    }
}

#[tokio::test(start_paused = true)]
async fn a_promoted_standby_answers_first_then_restarts_on_the_primarys_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake {
        snapshot: Some(snapshot()),
        ..Default::default()
    };
    *fake.running.lock().unwrap() = true;
    let mut d = Daemon::start(
        remembering(dir.path()),
        script("---"),
        &fake,
        Notifier::new(None, "test"),
    )
    .await;
    rounds(&mut d, 3).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    let log: Vec<String> = fake
        .log()
        .into_iter()
        .map(|l| l.split(':').next().unwrap().to_string())
        .collect();
    // Serving and told first; the restore while serving; offline only for
    // the swap and the restart; armed and serving again; told up to when.
    assert_eq!(
        log,
        [
            "arm",
            "pull",
            "switch on",
            "automations on",
            "announce telegram",
            "fetch conversation",
            "restore 3ae7d4f",
            "quiesce",
            "stop",
            "activate 3ae7d4f",
            "start",
            "arm",
            "switch on",
            "automations on",
            "announce telegram",
        ]
    );
    assert_eq!(
        said(&fake).last().unwrap(),
        "announce telegram:123456789: I remember us as of 21:38:43 UTC"
    );
    let c = d.state.last_catch_up.clone().unwrap();
    assert_eq!(c.outcome, "caught_up");
    assert_eq!(c.taken_at, Some(1796593123));
    assert!(c.prepare_ms >= 3000 && c.serving_at_ms.is_some(), "{c:?}");
    assert!(d.state.channels_live);
    // The catch-up's restart is not a crash: nothing re-arms it afterwards.
    let before = fake.log().len();
    rounds(&mut d, 3).await;
    assert_eq!(fake.log().len(), before, "{:?}", &fake.log()[before..]);
}

#[tokio::test(start_paused = true)]
async fn no_restart_when_the_newest_conversation_is_already_active() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    *fake.running.lock().unwrap() = true;
    let mut d = Daemon::start(
        remembering(dir.path()),
        script("---"),
        &fake,
        Notifier::new(None, "test"),
    )
    .await;
    rounds(&mut d, 3).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    let log = fake.log();
    assert_eq!(log.last().unwrap(), "fetch conversation");
    assert!(!log.contains(&"stop".to_string()), "{log:?}");
    assert_eq!(
        d.state.last_catch_up.clone().unwrap().outcome,
        "nothing_new"
    );
    assert_eq!(said(&fake).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_restore_keeps_the_standby_serving_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake {
        snapshot: Some(snapshot()),
        restore_broken: true,
        ..Default::default()
    };
    *fake.running.lock().unwrap() = true;
    let mut d = Daemon::start(
        remembering(dir.path()),
        script("---"),
        &fake,
        Notifier::new(None, "test"),
    )
    .await;
    rounds(&mut d, 3).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    let log = fake.log();
    assert!(!log.contains(&"stop".to_string()), "{log:?}");
    assert!(d.state.channels_live);
    let c = d.state.last_catch_up.clone().unwrap();
    assert_eq!(c.outcome, "failed");
    assert!(c.detail.unwrap().contains("integrity check failed"));
    assert!(d.events.iter().any(
        |e| e.starts_with("catch_up_failed: the standby serves without the primary's conversation")
    ));
    // No "I remember" message when it does not.
    assert_eq!(said(&fake).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_cold_standby_restores_the_conversation_before_its_gateway_starts() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake {
        snapshot: Some(snapshot()),
        ..Default::default()
    };
    let config = MonitorConfig {
        standby: StandbyMode::Cold,
        switches: None,
        ..remembering(dir.path())
    };
    let mut d = Daemon::start(config, script("---"), &fake, Notifier::new(None, "test")).await;
    rounds(&mut d, 3).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    let log = fake.log();
    let pos = |l: &str| log.iter().position(|x| x == l).unwrap();
    // Offline anyway: no second start, and it never answers without it.
    assert!(pos("activate 3ae7d4f") < pos("start"), "{log:?}");
    assert_eq!(log.iter().filter(|l| *l == "start").count(), 1, "{log:?}");
    assert!(!log.contains(&"quiesce".to_string()), "{log:?}");
    assert_eq!(d.state.last_catch_up.clone().unwrap().outcome, "caught_up");
}

fn outage_snapshot() -> super::conversation::Snapshot {
    // 2026-12-06T21:45:00Z
    super::conversation::Snapshot {
        commit: "9bd1f6a0c0ffee0000000000000000000000beef".into(),
        taken_at: 1796593500,
    }
}

/// A promoted standby (caught up on `snapshot()`), then the primary back
/// until the standby has stepped down or 60 rounds passed.
async fn fail_over_and_back<'a>(dir: &std::path::Path, fake: &'a Fake) -> Daemon<Script, &'a Fake> {
    *fake.running.lock().unwrap() = true;
    let mut d = Daemon::start(
        remembering(dir),
        script("---"),
        fake,
        Notifier::new(None, "test"),
    )
    .await;
    rounds(&mut d, 3).await;
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    for _ in 0..60 {
        rounds(&mut d, 1).await;
        if d.machine.role == StandbyRole::Watching {
            break;
        }
    }
    d
}

#[tokio::test(start_paused = true)]
async fn at_the_failback_the_standby_serves_until_the_primary_took_the_conversation_back() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake {
        snapshot: Some(snapshot()),
        hand_back: Some(outage_snapshot()),
        taken_after: Mutex::new(4),
        ..Default::default()
    };
    let d = fail_over_and_back(dir.path(), &fake).await;
    assert_eq!(d.machine.role, StandbyRole::Watching);
    let log = fake.log();
    let pos = |l: &str| {
        log.iter()
            .position(|x| x.starts_with(l))
            .unwrap_or_else(|| panic!("no {l} in {log:?}"))
    };
    // Its last snapshot, the primary's answer, and only then the failback
    // message and the channels off: the users always had a bot.
    assert!(pos("hand back") < pos("taken 9bd1f6a"), "{log:?}");
    let failback = log.iter().rposition(|x| x.starts_with("announce")).unwrap();
    assert!(pos("taken 9bd1f6a") < failback, "{log:?}");
    assert!(
        failback < log.iter().rposition(|x| x == "switch off").unwrap(),
        "{log:?}"
    );
    assert!(!log.contains(&"withdraw".to_string()), "{log:?}");
    let h = d.state.last_hand_back.clone().unwrap();
    assert_eq!(h.outcome, "taken");
    assert_eq!(h.taken_at, Some(1796593500));
    // Four polls two seconds apart, then the primary serving again.
    assert!(h.wait_ms >= 8000, "{h:?}");
    assert!(
        d.events.iter().any(|e| e.starts_with("handed_back")),
        "{:?}",
        d.events
    );
}

#[tokio::test(start_paused = true)]
async fn a_hand_back_nobody_takes_is_withdrawn_and_the_standby_steps_down_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake {
        snapshot: Some(snapshot()),
        hand_back: Some(outage_snapshot()),
        taken_after: Mutex::new(u32::MAX),
        ..Default::default()
    };
    let d = fail_over_and_back(dir.path(), &fake).await;
    assert_eq!(d.machine.role, StandbyRole::Watching);
    let log = fake.log();
    let withdraw = log.iter().position(|x| x == "withdraw").unwrap();
    assert!(
        withdraw < log.iter().rposition(|x| x == "switch off").unwrap(),
        "{log:?}"
    );
    let h = d.state.last_hand_back.clone().unwrap();
    assert_eq!(h.outcome, "failed");
    assert!(h.detail.unwrap().contains("did not take the conversation"));
    assert!(h.wait_ms >= 180_000);
    assert!(d.events.iter().any(|e| e.starts_with("hand_back_failed")));
}

/// The catch-up activated the primary's conversation, but the gateway
/// took longer than its start timeout to serve again: the catch-up is
/// reported failed, yet the database is the primary's continued, so the
/// outage's conversation is handed back at the failback.
#[tokio::test(start_paused = true)]
async fn a_catch_up_that_served_late_still_hands_the_outage_back() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake {
        snapshot: Some(snapshot()),
        hand_back: Some(outage_snapshot()),
        taken_after: Mutex::new(4),
        slow_catch_up_start: Some(Duration::from_secs(50)),
        ..Default::default()
    };
    let d = fail_over_and_back(dir.path(), &fake).await;
    assert_eq!(d.machine.role, StandbyRole::Watching);
    let c = d.state.last_catch_up.clone().unwrap();
    assert_ne!(c.outcome, "caught_up", "{c:?}");
    let log = fake.log();
    assert!(log.contains(&"hand back".to_string()), "{log:?}");
    assert_eq!(d.state.last_hand_back.clone().unwrap().outcome, "taken");
}

#[tokio::test(start_paused = true)]
async fn a_standby_that_never_caught_up_hands_nothing_back() {
    // Its database is its own: handing it back would replace the primary's
    // history with less.
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake {
        snapshot: Some(snapshot()),
        restore_broken: true,
        hand_back: Some(outage_snapshot()),
        ..Default::default()
    };
    let d = fail_over_and_back(dir.path(), &fake).await;
    assert_eq!(d.machine.role, StandbyRole::Watching);
    assert!(
        !fake.log().contains(&"hand back".to_string()),
        "{:?}",
        fake.log()
    );
    assert_eq!(
        d.state.last_hand_back.clone().unwrap().outcome,
        "not_handed_back"
    );
}

const MIB: u64 = 1024 * 1024;

fn recycling(dir: &std::path::Path, conversation: bool) -> MonitorConfig {
    let base = if conversation {
        remembering(dir)
    } else {
        warm_config(dir)
    };
    MonitorConfig {
        recycle_above_mib: 1200,
        ..base
    }
}

async fn recycling_daemon<'a>(
    dir: &std::path::Path,
    conversation: bool,
    s: &str,
    fake: &'a Fake,
) -> Daemon<Script, &'a Fake> {
    *fake.running.lock().unwrap() = true;
    Daemon::start(
        recycling(dir, conversation),
        script(s),
        fake,
        Notifier::new(None, "test"),
    )
    .await
}

#[tokio::test(start_paused = true)]
async fn a_watching_gateway_over_its_memory_bound_is_restarted_and_armed_again() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    *fake.memory.lock().unwrap() = Some(1100 * MIB);
    let mut d = recycling_daemon(dir.path(), false, "", &fake).await;
    // Armed, under the bound: read, not restarted.
    rounds(&mut d, 40).await;
    assert_eq!(d.state.armed, Some(true));
    assert_eq!(d.state.gateway_memory_mib, Some(1100));
    assert!(!fake.log().contains(&"restart".to_string()));
    // Grown past it: restarted within a minute, armed again, never degraded.
    *fake.memory.lock().unwrap() = Some(1300 * MIB);
    rounds(&mut d, 40).await;
    let log = fake.log();
    let restart = log.iter().position(|l| l == "restart").expect("no restart");
    assert!(log[restart..].contains(&"arm".to_string()), "{log:?}");
    assert_eq!(d.state.counters.recycles, 1);
    assert_eq!(d.state.armed, Some(true));
    // The recycle's restart is counted as watching time not armed.
    let c = &d.state.counters;
    assert!(c.watching_ms - c.armed_ms >= 2_000, "{c:?}");
    assert!(
        d.events.iter().any(|e| e.starts_with("recycling")),
        "{:?}",
        d.events
    );
    assert!(
        !d.events.iter().any(|e| e.starts_with("degraded")),
        "{:?}",
        d.events
    );
    // Still over it (the bound is too low for this gateway): not again soon.
    rounds(&mut d, 100).await;
    assert_eq!(d.state.counters.recycles, 1);
    assert_eq!(d.machine.role, StandbyRole::Watching);
}

#[tokio::test(start_paused = true)]
async fn no_recycle_while_the_primary_fails_or_a_drill_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    *fake.running.lock().unwrap() = true;
    *fake.memory.lock().unwrap() = Some(1300 * MIB);
    *fake.drill.lock().unwrap() = true;
    let mut d = recycling_daemon(dir.path(), false, "", &fake).await;
    rounds(&mut d, 80).await;
    assert_eq!(d.state.counters.recycles, 0);
    *fake.drill.lock().unwrap() = false;
    // A primary that keeps failing every other probe: never quiet enough.
    let mut d = recycling_daemon(dir.path(), false, &"-+".repeat(80), &fake).await;
    rounds(&mut d, 80).await;
    assert_eq!(d.state.counters.recycles, 0, "{:?}", d.events);
}

#[tokio::test(start_paused = true)]
async fn a_recycle_brings_the_primarys_newest_conversation_along() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake {
        snapshot: Some(snapshot()),
        ..Default::default()
    };
    *fake.running.lock().unwrap() = true;
    *fake.memory.lock().unwrap() = Some(1300 * MIB);
    let mut d = recycling_daemon(dir.path(), true, "", &fake).await;
    rounds(&mut d, 40).await;
    let log = fake.log();
    let pos = |l: &str| {
        log.iter()
            .position(|x| x == l)
            .unwrap_or_else(|| panic!("no {l} in {log:?}"))
    };
    assert!(pos("restore 3ae7d4f") < pos("stop"), "{log:?}");
    assert!(pos("stop") < pos("activate 3ae7d4f"), "{log:?}");
    assert!(pos("activate 3ae7d4f") < pos("start"), "{log:?}");
    assert!(log[pos("start")..].contains(&"arm".to_string()), "{log:?}");
}

/// A chain's standby2: the primary's answer and the standby's, one script
/// each, seen through `ChainView` as the real prober does (no grace: a
/// dead standby counts at once). The standby's script: `+` serving, `a`
/// alive but not serving, `g` gone.
struct Chain {
    primary: Script,
    before: Mutex<VecDeque<char>>,
    view: Mutex<super::chain::ChainView>,
}

impl Chain {
    fn new(primary: &str, before: &str) -> Chain {
        Chain {
            primary: script(primary),
            before: Mutex::new(before.chars().collect()),
            view: Mutex::new(super::chain::ChainView::new(Duration::ZERO)),
        }
    }
}

impl Prober for Chain {
    async fn probe(&self, connect_within: Duration) -> ProbeResult {
        let p = self.primary.probe(connect_within).await;
        let c = self.before.lock().unwrap().pop_front().unwrap_or('+');
        let gone = || ProbeResult::gone("Connection refused (os error 111)");
        let (alive, serving) = match c {
            '+' => (ProbeResult::up("HTTP 200"), ProbeResult::up("HTTP 200")),
            'a' => (
                ProbeResult::up("HTTP 200"),
                ProbeResult::down("HTTP 503, failing: telegram"),
            ),
            _ => (gone(), gone()),
        };
        let now = tokio::time::Instant::now();
        self.view.lock().unwrap().see(p, &alive, &serving, now)
    }
}

/// The primary dies while the standby lives: standby2 does nothing, however
/// long it lasts. The standby dies too: standby2 promotes after `fall`. The
/// standby comes back: standby2 steps down after `rise` and the hold-down,
/// as it would for the primary (the standby takes over on its own).
#[tokio::test(start_paused = true)]
async fn a_later_standby_serves_only_while_every_node_before_it_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    let prober = Chain::new(
        &"g".repeat(200),
        &format!("{}{}{}", "a".repeat(30), "g".repeat(3), "a".repeat(40)),
    );
    let mut d = Daemon::start(config(dir.path()), prober, &fake, Notifier::new(None, "t")).await;
    for _ in 0..30 {
        d.step().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert_eq!(d.machine.role, StandbyRole::Watching);
    assert!(fake.log().is_empty(), "{:?}", fake.log());
    // The standby gone as well (refused: definitive, as for the primary).
    let t0 = tokio::time::Instant::now();
    for _ in 0..3 {
        d.step().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    assert_eq!(fake.log(), ["pull", "start"]);
    // The standby lives again but does not serve yet: standby2 keeps
    // serving however long that lasts (40 probes, past the hold-down)...
    for _ in 0..40 {
        d.step().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    // ...and steps down once it serves ("+" once its script ran out).
    let mut stepped_down = None;
    for _ in 0..60 {
        d.step().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        if d.machine.role == StandbyRole::Watching {
            stepped_down = Some(t0.elapsed());
            break;
        }
    }
    let after = stepped_down.expect("standby2 stepped down");
    assert!(after >= Duration::from_secs(60), "after {after:?}");
    assert_eq!(fake.log(), ["pull", "start", "stop", "save"]);
}

/// Stepping down for the standby (the primary still down), standby2 sends
/// its users to the standby's bot and hands nothing back: the primary's
/// taker, down with the primary, could not take it.
#[tokio::test(start_paused = true)]
async fn a_later_standby_steps_down_for_the_standby_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    *fake.running.lock().unwrap() = true;
    let prober = Chain::new(&"g".repeat(300), "ggg");
    let config = remembering(dir.path());
    let mut d = Daemon::start(config.clone(), prober, &fake, Notifier::new(None, "t")).await;
    for _ in 0..3 {
        d.step().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert_eq!(d.machine.role, StandbyRole::Promoted);
    for _ in 0..60 {
        d.step().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        if d.machine.role == StandbyRole::Watching {
            break;
        }
    }
    assert_eq!(d.machine.role, StandbyRole::Watching);
    let told = said(&fake);
    assert!(
        told.last()
            .is_some_and(|l| l.contains("the standby serves again since")),
        "{told:?}"
    );
    assert!(!told.iter().any(|l| l.contains("main is back")), "{told:?}");
    let state = super::MonitorState::load(&config.state_file).unwrap();
    let hb = state.last_hand_back.expect("the hand-back is on record");
    assert_eq!(hb.outcome, "not_handed_back");
    assert!(hb
        .detail
        .unwrap_or_default()
        .contains("the primary is still down"),);
    assert!(
        d.events
            .iter()
            .any(|e| e.contains("a standby before this one lives")),
        "{:?}",
        d.events
    );
}
