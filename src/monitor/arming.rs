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

/// How often the watching gateway's memory is read.
pub const MEMORY_CHECK: Duration = Duration::from_secs(60);
/// No second recycle sooner: a gateway over the bound right after its
/// restart is not helped by another (the bound is too low for it).
pub const RECYCLE_AGAIN_AFTER: Duration = Duration::from_secs(30 * 60);

/// When to recycle the watching gateway: OpenClaw keeps every retired
/// plugin instance, so a gateway that armed, served and re-armed many times
/// grows (docs/performance.md, "The standby on 2 GB"). Restarting it while
/// the primary is healthy costs the seconds until it is armed again; being
/// killed by the OOM killer during a failover would cost the failover.
#[derive(Debug)]
pub struct Recycler {
    /// Bytes; 0: never.
    bound: u64,
    checked_at: Option<Instant>,
    recycled_at: Option<Instant>,
}

impl Recycler {
    pub fn new(bound_mib: u32) -> Self {
        Recycler {
            bound: u64::from(bound_mib) * 1024 * 1024,
            checked_at: None,
            recycled_at: None,
        }
    }

    /// Whether to read the gateway's memory now: only while it watches
    /// armed and the primary answers (`quiet`: no failure in a row, no hold,
    /// no drill), once per [`MEMORY_CHECK`].
    pub fn due(&mut self, now: Instant, quiet: bool) -> bool {
        if self.bound == 0 || !quiet {
            return false;
        }
        if self.checked_at.is_some_and(|at| now < at + MEMORY_CHECK) {
            return false;
        }
        self.checked_at = Some(now);
        true
    }

    /// Whether `memory` (bytes) calls for a recycle at `now`.
    pub fn over(&self, memory: u64, now: Instant) -> bool {
        self.bound > 0
            && memory > self.bound
            && self
                .recycled_at
                .is_none_or(|at| now >= at + RECYCLE_AGAIN_AFTER)
    }

    pub fn recycled(&mut self, now: Instant) {
        self.recycled_at = Some(now);
    }

    pub fn bound(&self) -> u64 {
        self.bound
    }
}

/// `anon` from a cgroup's `memory.stat` (cgroup v2; `total_rss` in v1):
/// what a restart gives back (the page cache the kernel reclaims by itself
/// is not counted).
pub fn anon_bytes(memory_stat: &str) -> Option<u64> {
    ["anon ", "total_rss "].iter().find_map(|key| {
        memory_stat
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// The `RssAnon` lines of `/proc/PID/status` files, summed: processes'
/// anonymous resident memory, for hosts whose systemd has no memory
/// controller to ask (a container on a cgroup-v1 machine, as the lab's
/// hosts are on ours). `None` when there is no such line.
pub fn rss_anon_sum(statuses: &str) -> Option<u64> {
    let mut total = None;
    for kb in statuses.lines().filter_map(|l| l.strip_prefix("RssAnon:")) {
        let Some(kb) = kb
            .trim()
            .strip_suffix("kB")
            .and_then(|k| k.trim().parse::<u64>().ok())
        else {
            continue;
        };
        total = Some(
            total
                .unwrap_or(0u64)
                .saturating_add(kb.saturating_mul(1024)),
        );
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_anonymous_memory_is_summed_from_their_status() {
        let status =
            "Name:\tnode\nVmRSS:\t  400000 kB\nRssAnon:\t  300000 kB\nRssFile:\t 100000 kB\n";
        assert_eq!(rss_anon_sum(status), Some(300000 * 1024));
        let two = "RssAnon:\t 1 kB\nRssAnon:\t 2 kB\nRssAnon:\t x kB\n";
        assert_eq!(rss_anon_sum(two), Some(3 * 1024));
        assert_eq!(rss_anon_sum("Name:\tkthreadd\n"), None);
        assert_eq!(rss_anon_sum("RssAnon:\t x kB\n"), None);
    }

    #[test]
    fn anonymous_memory_is_read_from_memory_stat() {
        let stat = "anon_thp 0\nanon 1048576000\nfile 52428800\n";
        assert_eq!(anon_bytes(stat), Some(1048576000));
        assert_eq!(anon_bytes("file 1\n"), None);
        let v1 = "cache 4096\nrss 1000\ntotal_cache 4096\ntotal_rss 2000\n";
        assert_eq!(anon_bytes(v1), Some(2000));
        assert_eq!(anon_bytes("anon x\n"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_read_once_a_minute_while_quiet_and_recycled_at_most_twice_an_hour() {
        let t0 = Instant::now();
        let mut r = Recycler::new(1024);
        let gib = 1024 * 1024 * 1024;
        assert!(r.due(t0, true));
        assert!(!r.due(t0 + Duration::from_secs(30), true));
        assert!(
            !r.due(t0 + MEMORY_CHECK, false),
            "the primary fails: not now"
        );
        assert!(r.due(t0 + MEMORY_CHECK, true));
        assert!(!r.over(gib, t0), "at the bound is not over it");
        assert!(r.over(gib + 1, t0));
        r.recycled(t0);
        assert!(!r.over(2 * gib, t0 + Duration::from_secs(60)));
        assert!(r.over(2 * gib, t0 + RECYCLE_AGAIN_AFTER));
        let mut off = Recycler::new(0);
        assert!(!off.due(t0, true));
        assert!(!off.over(u64::MAX, t0));
    }

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
