//! The failover state machine, pure: probe results and time go in, decisions
//! come out. The daemon carries the decisions out; tests drive it with
//! simulated time.
//!
//! ```text
//!   Watching ──fall failures over fall_window─▶ Promoting ──gateway up──▶ Promoted
//!            ──definitive_fall "gone"s ──▶
//!      ▲                                                                  │
//!      └──────── Demoting ◀── rise consecutive successes and hold_down ───┘
//! ```
//! More than `flap.max_promotions` promotions within `flap.window` pin the
//! standby in Promoted (it keeps serving, and says so) instead of bouncing.
//!
//! Two operator intents come in with each probe: deploy's *hold* (a lease
//! while it restarts the primary's gateway: failures are counted but do not
//! promote until it expires) and a planned *switchover* (serve now, whatever
//! the primary says; step down as soon as it ends and the primary is ready,
//! without the hold-down, and without counting as flapping).

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StandbyRole {
    Watching,
    Promoting,
    Promoted,
    Demoting,
}

impl StandbyRole {
    pub fn as_str(self) -> &'static str {
        match self {
            StandbyRole::Watching => "watching",
            StandbyRole::Promoting => "promoting",
            StandbyRole::Promoted => "promoted",
            StandbyRole::Demoting => "demoting",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Promote {
        reason: String,
    },
    Demote {
        reason: String,
    },
    /// Flapping: stay promoted and alert (once per pin).
    Pin {
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct Thresholds {
    pub fall: u32,
    /// How long the failures must last, from the first failed probe's start
    /// to the last one's: a count alone would let back-to-back confirmations
    /// turn a 1 s blip into a failover.
    pub fall_window: Duration,
    /// Consecutive failures in which the primary said itself that its gateway
    /// is gone (refused, reset, draining) that promote without waiting for
    /// `fall`: such a signal cannot be a slow network.
    pub definitive_fall: u32,
    pub rise: u32,
    pub hold_down: Duration,
    pub max_promotions: u32,
    pub flap_window: Duration,
}

/// One probe round's inputs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Input {
    pub healthy: bool,
    /// The failure was definitive: refused, reset or draining.
    pub definitive: bool,
    /// Deploy holds the monitor (lease not expired).
    pub held: bool,
    /// A planned switchover asks the standby to serve.
    pub switchover: bool,
    /// When the probe started (the machine's clock); `now` if not given.
    pub started: Option<Duration>,
}

impl Input {
    pub fn probe(healthy: bool) -> Input {
        Input {
            healthy,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone)]
pub struct Machine {
    t: Thresholds,
    pub role: StandbyRole,
    /// When the current role began (time since the daemon started).
    pub since: Duration,
    pub failures: u32,
    /// Consecutive definitive failures (a subset of `failures`).
    pub gone: u32,
    /// When the first of the current failures started.
    failing_since: Option<Duration>,
    pub successes: u32,
    promoted_at: Option<Duration>,
    promotions: VecDeque<Duration>,
    pub pinned: bool,
    /// The current promotion is a planned switchover.
    pub planned: bool,
}

impl Machine {
    /// Starts from what is true now, never from a stale file: the local
    /// gateway running means we are serving; otherwise we watch.
    pub fn recover(t: Thresholds, serving: bool, now: Duration) -> Machine {
        Machine::recover_with(t, serving, false, now)
    }

    /// As `recover`, knowing whether a switchover is in force.
    pub fn recover_with(
        t: Thresholds,
        gateway_running: bool,
        switchover: bool,
        now: Duration,
    ) -> Machine {
        Machine {
            role: if gateway_running {
                StandbyRole::Promoted
            } else {
                StandbyRole::Watching
            },
            since: now,
            failures: 0,
            gone: 0,
            failing_since: None,
            successes: 0,
            // A recovered promotion waits a full hold-down before demoting.
            promoted_at: gateway_running.then_some(now),
            promotions: VecDeque::new(),
            pinned: false,
            planned: gateway_running && switchover,
            t,
        }
    }

    fn prune(&mut self, now: Duration) {
        while self
            .promotions
            .front()
            .is_some_and(|p| now.saturating_sub(*p) > self.t.flap_window)
        {
            self.promotions.pop_front();
        }
        if self.pinned && (self.promotions.len() as u32) < self.t.max_promotions {
            // The flapping has aged out of the window: normal rules again.
            self.pinned = false;
        }
    }

    pub fn on_probe(&mut self, healthy: bool, now: Duration) -> Option<Decision> {
        self.on_input(Input::probe(healthy), now)
    }

    pub fn on_input(&mut self, input: Input, now: Duration) -> Option<Decision> {
        let healthy = input.healthy;
        self.prune(now);
        let started = input.started.unwrap_or(now);
        if healthy {
            self.successes += 1;
            self.failures = 0;
            self.gone = 0;
            self.failing_since = None;
        } else {
            self.failures += 1;
            self.successes = 0;
            self.gone = if input.definitive { self.gone + 1 } else { 0 };
            self.failing_since.get_or_insert(started);
        }
        let failing_for = started.saturating_sub(self.failing_since.unwrap_or(started));
        match self.role {
            StandbyRole::Watching if input.switchover => {
                self.role = StandbyRole::Promoting;
                self.since = now;
                self.planned = true;
                Some(Decision::Promote {
                    reason: "planned switchover".into(),
                })
            }
            // Deploy is restarting the primary: count, but do not act.
            StandbyRole::Watching if input.held => None,
            StandbyRole::Watching
                if self.t.definitive_fall > 0 && self.gone >= self.t.definitive_fall =>
            {
                self.role = StandbyRole::Promoting;
                self.since = now;
                self.planned = false;
                Some(Decision::Promote {
                    reason: format!(
                        "the primary's gateway is gone (refused, reset or draining) in {} consecutive probes",
                        self.gone
                    ),
                })
            }
            StandbyRole::Watching
                if self.failures >= self.t.fall && failing_for >= self.t.fall_window =>
            {
                self.role = StandbyRole::Promoting;
                self.since = now;
                self.planned = false;
                Some(Decision::Promote {
                    reason: format!(
                        "primary failed {} consecutive probes over {} ms",
                        self.failures,
                        failing_for.as_millis()
                    ),
                })
            }
            StandbyRole::Promoted if input.switchover => {
                // A switchover that began as a failover is planned from now on.
                self.planned = true;
                None
            }
            StandbyRole::Promoted if self.planned && healthy && self.successes >= self.t.rise => {
                self.role = StandbyRole::Demoting;
                self.since = now;
                Some(Decision::Demote {
                    reason: format!(
                        "switchover ended and the primary is healthy for {} consecutive probes",
                        self.successes
                    ),
                })
            }
            StandbyRole::Promoted if healthy && self.successes >= self.t.rise => {
                let held = now.saturating_sub(self.promoted_at.unwrap_or(now));
                if held < self.t.hold_down {
                    return None;
                }
                if self.pinned {
                    return None;
                }
                if (self.promotions.len() as u32) >= self.t.max_promotions {
                    self.pinned = true;
                    return Some(Decision::Pin {
                        reason: format!(
                            "{} promotions within {}s: staying promoted instead of bouncing; the primary looks unstable",
                            self.promotions.len(),
                            self.t.flap_window.as_secs()
                        ),
                    });
                }
                self.role = StandbyRole::Demoting;
                self.since = now;
                Some(Decision::Demote {
                    reason: format!(
                        "primary healthy for {} consecutive probes and promoted for {}s",
                        self.successes,
                        held.as_secs()
                    ),
                })
            }
            _ => None,
        }
    }

    /// The promotion's actions are done (the gateway serves, or is being retried).
    pub fn promoted(&mut self, now: Duration) {
        self.role = StandbyRole::Promoted;
        self.since = now;
        self.promoted_at = Some(now);
        self.successes = 0;
        if !self.planned {
            self.promotions.push_back(now);
        }
    }

    /// A promotion or demotion could not be carried out: back where it began.
    pub fn revert(&mut self, role: StandbyRole, now: Duration) {
        self.role = role;
        self.since = now;
        if role == StandbyRole::Watching {
            self.planned = false;
            self.failures = 0;
            self.gone = 0;
        }
    }

    pub fn demoted(&mut self, now: Duration) {
        self.role = StandbyRole::Watching;
        self.since = now;
        self.promoted_at = None;
        self.failures = 0;
        self.gone = 0;
        self.planned = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Thresholds {
        Thresholds {
            fall: 3,
            fall_window: Duration::from_millis(1250),
            definitive_fall: 2,
            rise: 5,
            hold_down: Duration::from_secs(60),
            max_promotions: 3,
            flap_window: Duration::from_secs(600),
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn promotes_after_exactly_fall_failures() {
        let mut m = Machine::recover(t(), false, secs(0));
        assert_eq!(m.on_probe(false, secs(2)), None);
        assert_eq!(m.on_probe(false, secs(4)), None);
        assert!(matches!(
            m.on_probe(false, secs(6)),
            Some(Decision::Promote { .. })
        ));
        assert_eq!(m.role, StandbyRole::Promoting);
    }

    #[test]
    fn a_blip_shorter_than_fall_does_not_promote() {
        let mut m = Machine::recover(t(), false, secs(0));
        for (i, ok) in [false, false, true, false, false, true, false]
            .iter()
            .enumerate()
        {
            assert_eq!(m.on_probe(*ok, secs(2 * i as u64)), None);
        }
        assert_eq!(m.role, StandbyRole::Watching);
    }

    #[test]
    fn demotes_only_after_rise_and_hold_down() {
        let mut m = Machine::recover(t(), false, secs(0));
        for i in 1..=3 {
            m.on_probe(false, secs(2 * i));
        }
        m.promoted(secs(8));
        // Five successes, but within the hold-down.
        for i in 0..5 {
            assert_eq!(m.on_probe(true, secs(10 + 2 * i)), None);
        }
        // A failure resets the count.
        assert_eq!(m.on_probe(false, secs(30)), None);
        let mut decided = None;
        let mut at = 30;
        while decided.is_none() {
            at += 2;
            decided = m.on_probe(true, secs(at));
        }
        assert!(matches!(decided, Some(Decision::Demote { .. })));
        assert!(at >= 8 + 60, "demoted at {at}, before the hold-down");
        assert!(at >= 30 + 2 * 5, "demoted before rise successes");
        m.demoted(secs(at));
        assert_eq!(m.role, StandbyRole::Watching);
    }

    #[test]
    fn flapping_pins_promoted_then_ages_out() {
        let mut m = Machine::recover(t(), false, secs(0));
        let mut now = 0;
        let mut pinned = false;
        for _round in 0..5 {
            while !matches!(m.on_probe(false, secs(now)), Some(Decision::Promote { .. })) {
                now += 2;
            }
            m.promoted(secs(now));
            now += 61;
            loop {
                now += 2;
                match m.on_probe(true, secs(now)) {
                    Some(Decision::Demote { .. }) => {
                        m.demoted(secs(now));
                        break;
                    }
                    Some(Decision::Pin { .. }) => {
                        pinned = true;
                        break;
                    }
                    _ => {}
                }
            }
            if pinned {
                break;
            }
        }
        assert!(pinned, "a flapping primary pins the standby");
        assert_eq!(m.role, StandbyRole::Promoted);
        // Still pinned while the promotions are in the window...
        assert_eq!(m.on_probe(true, secs(now + 2)), None);
        // ...and normal again once they age out.
        let later = now + 700;
        assert!(matches!(
            m.on_probe(true, secs(later)),
            Some(Decision::Demote { .. })
        ));
    }

    fn input(healthy: bool, held: bool, switchover: bool) -> Input {
        Input {
            healthy,
            definitive: false,
            held,
            switchover,
            started: None,
        }
    }

    fn gone(held: bool) -> Input {
        Input {
            definitive: true,
            held,
            ..Input::default()
        }
    }

    /// Failures confirmed back to back reach `fall` quickly; only failing
    /// that lasted `fall_window`, by the probes' start times, promotes.
    #[test]
    fn fall_counts_only_over_the_fall_window() {
        let ms = Duration::from_millis;
        let failed_at = |start: u64| Input {
            started: Some(ms(start)),
            ..Input::default()
        };
        let mut m = Machine::recover(t(), false, ms(0));
        // Probes start at 10.0, 10.8, 11.05, 11.3 s; each is judged when it
        // ends, 250 ms later.
        for start in [10_000, 10_800, 11_050] {
            assert_eq!(m.on_input(failed_at(start), ms(start + 250)), None);
        }
        assert_eq!(m.failures, 3, "fall reached, the window not");
        assert!(matches!(
            m.on_input(failed_at(11_300), ms(11_550)),
            Some(Decision::Promote { reason }) if reason.contains("over 1300 ms")
        ));
        // A healthy probe between failures starts the window again.
        let mut m = Machine::recover(t(), false, ms(0));
        for start in [10_000, 10_800, 11_050] {
            assert_eq!(m.on_input(failed_at(start), ms(start + 250)), None);
        }
        assert_eq!(m.on_probe(true, ms(11_310)), None);
        for start in [11_400, 11_650, 11_900, 12_150, 12_400] {
            assert_eq!(m.on_input(failed_at(start), ms(start + 250)), None);
        }
        assert!(m.on_input(failed_at(12_650), ms(12_900)).is_some());
    }

    #[test]
    fn a_gateway_that_says_it_is_gone_promotes_on_confirmation_not_after_fall() {
        let ms = Duration::from_millis;
        let mut m = Machine::recover(t(), false, secs(0));
        assert_eq!(m.on_input(gone(false), ms(1000)), None);
        let Some(Decision::Promote { reason }) = m.on_input(gone(false), ms(1250)) else {
            panic!("two definitive failures promote")
        };
        assert!(reason.contains("gone"), "{reason}");
        // Back at once (a restart in place): nothing, and the count restarts.
        let mut m = Machine::recover(t(), false, secs(0));
        assert_eq!(m.on_input(gone(false), ms(1000)), None);
        assert_eq!(m.on_probe(true, ms(1250)), None);
        assert_eq!(m.on_input(gone(false), ms(2000)), None);
        assert_eq!(m.role, StandbyRole::Watching);
        // Gone, then silence (the host went too): the usual `fall`.
        let mut m = Machine::recover(t(), false, secs(0));
        assert_eq!(m.on_input(gone(false), secs(1)), None);
        assert_eq!(m.on_probe(false, secs(2)), None);
        assert!(matches!(
            m.on_probe(false, secs(3)),
            Some(Decision::Promote { .. })
        ));
        // Deploy's hold still holds.
        let mut m = Machine::recover(t(), false, secs(0));
        for i in 1..=5 {
            assert_eq!(m.on_input(gone(true), secs(i)), None);
        }
        // Turned off: only `fall` counts.
        let mut m = Machine::recover(
            Thresholds {
                definitive_fall: 0,
                ..t()
            },
            false,
            secs(0),
        );
        assert_eq!(m.on_input(gone(false), secs(1)), None);
        assert_eq!(m.on_input(gone(false), secs(2)), None);
        assert!(matches!(
            m.on_input(gone(false), secs(3)),
            Some(Decision::Promote { .. })
        ));
    }

    #[test]
    fn a_hold_delays_promotion_until_it_ends() {
        let mut m = Machine::recover(t(), false, secs(0));
        for i in 1..=10 {
            assert_eq!(m.on_input(input(false, true, false), secs(2 * i)), None);
        }
        assert_eq!(m.role, StandbyRole::Watching);
        // The lease ran out and the primary is still down: failover as usual.
        assert!(matches!(
            m.on_input(input(false, false, false), secs(22)),
            Some(Decision::Promote { .. })
        ));
    }

    #[test]
    fn a_switchover_promotes_at_once_and_steps_down_without_hold_down() {
        let mut m = Machine::recover(t(), false, secs(0));
        assert!(matches!(
            m.on_input(input(true, false, true), secs(2)),
            Some(Decision::Promote { .. })
        ));
        m.promoted(secs(3));
        // The primary is healthy but the switchover stands: no demotion.
        for i in 0..20 {
            assert_eq!(m.on_input(input(true, false, true), secs(4 + 2 * i)), None);
        }
        // Ended: demote after `rise` healthy probes, long before the hold-down.
        let mut decided = None;
        let mut at = 44;
        while decided.is_none() && at < 60 {
            at += 2;
            decided = m.on_input(input(true, false, false), secs(at));
        }
        assert!(
            matches!(decided, Some(Decision::Demote { .. })),
            "{decided:?}"
        );
        assert!(at < 3 + 60, "waited for the hold-down");
        m.demoted(secs(at));
        // Planned promotions do not count as flapping.
        assert!(m.promotions.is_empty());
    }

    #[test]
    fn a_failover_turned_switchover_waits_for_the_end_of_the_switchover() {
        let mut m = Machine::recover(t(), false, secs(0));
        for i in 1..=3 {
            m.on_probe(false, secs(2 * i));
        }
        m.promoted(secs(7));
        for i in 0..60 {
            assert_eq!(m.on_input(input(true, false, true), secs(8 + 2 * i)), None);
        }
        assert_eq!(m.role, StandbyRole::Promoted);
    }

    #[test]
    fn recovery_from_reality() {
        let m = Machine::recover(t(), true, secs(100));
        assert_eq!(m.role, StandbyRole::Promoted);
        let mut m2 = m.clone();
        for i in 1..=5 {
            assert_eq!(
                m2.on_probe(true, secs(100 + 2 * i)),
                None,
                "hold-down applies after recovery"
            );
        }
        assert!(matches!(
            m2.on_probe(true, secs(161)),
            Some(Decision::Demote { .. })
        ));
        let w = Machine::recover(t(), false, secs(100));
        assert_eq!(w.role, StandbyRole::Watching);
    }
}
