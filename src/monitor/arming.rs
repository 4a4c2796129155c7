//! The warm standby's arming, as a small pure state beside the main
//! machine: which gateway process the monitor armed, when it may try again
//! after a failure, and whether its own gateway counts as down. The daemon
//! asks it and carries out what it says (docs/monitor.md, "Why the warm
//! standby is armed, not switched").

use std::time::Duration;

use tokio::time::Instant;

/// The wait before arming again after a failed attempt.
pub const ARM_RETRY: Duration = Duration::from_secs(30);
/// Unanswered health checks of our own (warm) gateway, one per round, that
/// make the pair degraded. OpenClaw blocks its event loop for 5-9 s while
/// it reloads the channel plugin (arming, the automations switch): only a
/// longer silence is an outage.
pub const LOCAL_MISSES_DOWN: u32 = 15;

#[derive(Debug, Default)]
pub struct Arming {
    /// The gateway process we armed (`MainPID@start time`); a restarted
    /// gateway starts unarmed and is armed again.
    armed: Option<String>,
    /// No new attempt before this, after one failed.
    retry_at: Option<Instant>,
    /// Consecutive unanswered health checks of our own gateway.
    misses: u32,
}

impl Arming {
    /// Starts knowing `armed` (a gateway already serving our channels was
    /// armed by us before).
    pub fn new(armed: Option<String>) -> Self {
        Arming {
            armed,
            ..Default::default()
        }
    }

    /// One health answer of our own gateway; returns whether it counts as up.
    pub fn answered(&mut self, answered: bool) -> bool {
        self.misses = if answered { 0 } else { self.misses + 1 };
        self.misses < LOCAL_MISSES_DOWN
    }

    /// Whether `instance` is the process we armed.
    pub fn is_armed(&self, instance: &str) -> bool {
        self.armed.as_deref() == Some(instance)
    }

    /// Whether a failed attempt still holds the next one back at `now`.
    pub fn waiting(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|at| now < at)
    }

    /// `instance` needs arming and may be armed at `now`; `urgent` (a
    /// promotion) skips the wait after a failure.
    pub fn should_arm(&self, instance: &str, now: Instant, urgent: bool) -> bool {
        !self.is_armed(instance) && (urgent || !self.waiting(now))
    }

    pub fn succeeded(&mut self, instance: String) {
        self.armed = Some(instance);
        self.retry_at = None;
    }

    pub fn failed(&mut self, now: Instant) {
        self.armed = None;
        self.retry_at = Some(now + ARM_RETRY);
    }

    /// What we armed no longer holds (its channels would not start, or
    /// were found unarmed): arm again at the next chance.
    pub fn forget(&mut self) {
        self.armed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_failed_attempt_waits_unless_a_promotion_needs_it() {
        let mut a = Arming::new(None);
        let t0 = Instant::now();
        assert!(a.should_arm("1@100", t0, false));
        a.failed(t0);
        assert!(!a.should_arm("1@100", t0 + Duration::from_secs(10), false));
        assert!(a.should_arm("1@100", t0 + Duration::from_secs(10), true));
        assert!(a.should_arm("1@100", t0 + ARM_RETRY, false));
        a.succeeded("1@100".into());
        assert!(!a.should_arm("1@100", t0 + ARM_RETRY, true));
        // A restarted gateway is another process: armed again at once.
        assert!(a.should_arm("2@200", t0 + ARM_RETRY, false));
        a.forget();
        assert!(a.should_arm("1@100", t0 + ARM_RETRY, false));
    }

    #[test]
    fn only_a_long_silence_of_our_gateway_is_down() {
        let mut a = Arming::new(Some("1@100".into()));
        for _ in 1..LOCAL_MISSES_DOWN {
            assert!(a.answered(false));
        }
        assert!(!a.answered(false));
        assert!(a.answered(true));
        assert!(a.is_armed("1@100"));
    }
}
