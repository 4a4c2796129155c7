//! How a chain's later standby (`nodes.standby2`) sees the nodes before it
//! (docs/monitor.md, "A chain of standbys"): the primary counts as up for
//! it while the primary answers, or while the standby before it lives,
//! since that one takes over first. Pure: the prober feeds it the answers.

use std::time::Duration;

use tokio::time::Instant;

use super::probe::{ProbeResult, StandbyBefore};

/// The standby before this one restarts its gateway on purpose now and
/// then (the conversation catch-up after its promotion, a recycle, an
/// upgrade): seconds of refusals that must not make this node promote
/// beside it. It counts as gone only once it stayed silent this long.
pub const DEFAULT_STANDBY_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct ChainView {
    grace: Duration,
    last_alive: Option<Instant>,
}

impl ChainView {
    pub fn new(grace: Duration) -> ChainView {
        ChainView {
            grace,
            last_alive: None,
        }
    }

    /// The primary's answer as this node must judge it, given the standby
    /// before it: `alive` its `/healthz`, `serving` its `/readyz` (with the
    /// gateway token: ready only with its channels running).
    pub fn see(
        &mut self,
        primary: ProbeResult,
        alive: &ProbeResult,
        serving: &ProbeResult,
        now: Instant,
    ) -> ProbeResult {
        if alive.ok || serving.ok {
            self.last_alive = Some(now);
        }
        if primary.ok {
            return primary;
        }
        let (before, how) = if serving.ok {
            (StandbyBefore::Serving, "serves".to_string())
        } else if alive.ok {
            (StandbyBefore::Alive, "lives".to_string())
        } else {
            match self
                .last_alive
                .map(|t| now.saturating_duration_since(t))
                .filter(|silent| *silent < self.grace)
            {
                Some(silent) => (
                    StandbyBefore::Alive,
                    format!(
                        "answered {}s ago (a restart? it counts as gone after {}s)",
                        silent.as_secs(),
                        self.grace.as_secs()
                    ),
                ),
                None => return primary,
            }
        };
        ProbeResult {
            ok: true,
            latency_ms: primary.latency_ms.max(alive.latency_ms),
            connect_ms: primary.connect_ms,
            detail: format!(
                "the primary is down ({}), but the standby before this one {how}",
                primary.detail
            ),
            channels_failing: Vec::new(),
            stalled: false,
            definitive: false,
            before: Some(before),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_standby_before_counts_while_alive_and_for_a_grace_after() {
        let mut v = ChainView::new(Duration::from_secs(60));
        let gone = || ProbeResult::gone("Connection refused (os error 111)");
        let up = || ProbeResult::up("HTTP 200");
        let not_ready = || ProbeResult::down("HTTP 503, failing: telegram");
        // Never seen alive: the primary's answer as it is.
        let r = v.see(gone(), &gone(), &gone(), Instant::now());
        assert!(!r.ok && r.definitive);
        // The primary serves: its own answer.
        let r = v.see(up(), &gone(), &gone(), Instant::now());
        assert!(r.ok && r.before.is_none());
        // The primary down, the standby alive but not serving yet.
        let r = v.see(gone(), &up(), &not_ready(), Instant::now());
        assert_eq!(r.before, Some(StandbyBefore::Alive), "{r:?}");
        assert!(r.ok && r.detail.contains("before this one lives"), "{r:?}");
        // ...serving.
        let r = v.see(gone(), &up(), &up(), Instant::now());
        assert_eq!(r.before, Some(StandbyBefore::Serving), "{r:?}");
        // The standby restarting: alive still, for the grace...
        tokio::time::advance(Duration::from_secs(59)).await;
        let r = v.see(gone(), &gone(), &gone(), Instant::now());
        assert_eq!(r.before, Some(StandbyBefore::Alive), "{r:?}");
        assert!(r.detail.contains("answered 59s ago"), "{r:?}");
        // ...then gone, with the primary's own definitive answer.
        tokio::time::advance(Duration::from_secs(1)).await;
        let r = v.see(gone(), &gone(), &gone(), Instant::now());
        assert!(!r.ok && r.definitive && r.before.is_none(), "{r:?}");
    }
}
