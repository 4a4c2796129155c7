//! The daemon with a scripted primary and fake actions, on tokio's paused
//! clock: minutes of failover behaviour run in milliseconds.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use super::actions::Actions;
use super::config::*;
use super::daemon::{Daemon, Prober};
use super::machine::Role;
use super::notify::Notifier;
use super::probe::ProbeResult;

fn config(dir: &std::path::Path) -> MonitorConfig {
    MonitorConfig {
        name: "test".into(),
        probe: ProbeConfig {
            urls: vec!["http://10.0.0.1:18789/healthz".into()],
            mode: ProbeMode::Healthz,
            interval: Duration::from_secs(2),
            timeout: Duration::from_millis(1500),
        },
        fall: 3,
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
        state_file: dir.join("state.json").display().to_string(),
        notify: None,
    }
}

/// The primary's health, one entry per probe; empty means healthy.
struct Script(Mutex<VecDeque<bool>>);

impl Prober for Script {
    async fn probe(&self) -> ProbeResult {
        let ok = self.0.lock().unwrap().pop_front().unwrap_or(true);
        ProbeResult {
            ok,
            latency_ms: 1,
            detail: if ok {
                "HTTP 200".into()
            } else {
                "connection refused".into()
            },
        }
    }
}

fn script(s: &str) -> Script {
    Script(Mutex::new(s.chars().map(|c| c == '+').collect()))
}

#[derive(Default)]
struct Fake {
    running: Mutex<bool>,
    log: Mutex<Vec<String>>,
    pull_fails: bool,
    starts_unhealthy: bool,
    save_branch: Option<String>,
}

impl Fake {
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Actions for &Fake {
    async fn gateway_active(&self) -> bool {
        *self.running.lock().unwrap()
    }
    async fn pull_workspace(&self) -> Result<String, String> {
        self.log.lock().unwrap().push("pull".into());
        if self.pull_fails {
            Err("remote unreachable".into())
        } else {
            Ok("abc123".into())
        }
    }
    async fn start_gateway(&self) -> Result<(), String> {
        self.log.lock().unwrap().push("start".into());
        *self.running.lock().unwrap() = true;
        Ok(())
    }
    async fn gateway_healthy(&self) -> bool {
        !self.starts_unhealthy && *self.running.lock().unwrap()
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
    assert_eq!(d.machine.role, Role::Watching);
    assert!(fake.log().is_empty());
    let mut d = daemon(dir.path(), "---", &fake).await;
    let t0 = tokio::time::Instant::now();
    rounds(&mut d, 3).await;
    assert_eq!(d.machine.role, Role::Promoted);
    assert_eq!(fake.log(), ["pull", "start"]);
    // Healthy again: nothing before the hold-down, then demotion.
    let mut demoted_after = None;
    for _ in 0..60 {
        rounds(&mut d, 1).await;
        if d.machine.role == Role::Watching {
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
    assert_eq!(state.role, Role::Watching);
    assert_eq!(state.counters.promotions, 1);
    assert_eq!(state.counters.demotions, 1);
    let roles: Vec<_> = state.transitions.iter().map(|t| t.to).collect();
    assert_eq!(
        roles,
        [
            Role::Promoting,
            Role::Promoted,
            Role::Demoting,
            Role::Watching
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_blip_shorter_than_fall_times_interval_does_not_promote() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    let mut d = daemon(dir.path(), "--+--+-+--+", &fake).await;
    rounds(&mut d, 12).await;
    assert_eq!(d.machine.role, Role::Watching);
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
    assert_eq!(d.machine.role, Role::Promoted);
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
    assert_eq!(d.machine.role, Role::Promoted);
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
    assert_eq!(d.machine.role, Role::Promoted);
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
    assert_eq!(d.machine.role, Role::Promoted);
    // ...and demote only after the hold-down, not at once.
    let mut d = d;
    rounds(&mut d, 10).await;
    assert_eq!(d.machine.role, Role::Promoted);
    rounds(&mut d, 30).await;
    assert_eq!(d.machine.role, Role::Watching);
    // Killed while watching (or mid-demotion, gateway already stopped): watching.
    let fake = Fake::default();
    let d = daemon(dir.path(), "", &fake).await;
    assert_eq!(d.machine.role, Role::Watching);
    // Killed mid-promotion with the primary still down: watching, and it
    // promotes again after `fall` failures rather than at once.
    let mut d = daemon(dir.path(), "---", &fake).await;
    rounds(&mut d, 2).await;
    assert_eq!(d.machine.role, Role::Watching);
    rounds(&mut d, 1).await;
    assert_eq!(d.machine.role, Role::Promoted);
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
