//! The conversation hand-back at the failback (docs/monitor.md,
//! "Conversations"): before the standby steps down it takes a last
//! snapshot of what its users said during the outage and puts it on the
//! hand-back branch; the primary's taker (`ocfo monitor take-back`)
//! restores it across a restart of its gateway and says so on the returned
//! branch. The standby serves all the while (make before break), and steps
//! down only once the primary serves again with the conversation. A room
//! of the daemon: it reads and writes the daemon's own state.

use super::*;
use crate::monitor::conversation::Snapshot;
use crate::monitor::state_file::HandBack;

/// How long the primary may take to notice the hand-back (its timer), restore
/// it and restart its gateway on it.
pub(super) const TAKE_BACK_WAIT: Duration = Duration::from_secs(180);
/// How long the primary's gateway may take to serve again after that restart.
const SERVE_AGAIN_WAIT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_secs(2);

/// What the failback does next.
pub(super) enum HandedBack {
    /// Step down (the primary has the conversation, or it could not be
    /// handed back and the users are told below by the failback anyway).
    StepDown,
    /// The primary took the conversation but does not serve again: keep
    /// serving.
    StayPromoted(String),
}

impl<P: Prober, A: Actions> Daemon<P, A> {
    pub(super) async fn hand_back(&mut self) -> HandedBack {
        if self
            .config
            .conversation
            .as_ref()
            .is_none_or(|c| c.push_script.is_none())
        {
            return HandedBack::StepDown;
        }
        let began = Instant::now();
        if self.up_by_standby_before {
            // Nobody would take it: the primary's taker is down with it.
            self.record_hand_back("not_handed_back", None, began, Some("the primary is still down and a standby before this one serves now: the outage's conversation stays on this node's branch".into()));
            return HandedBack::StepDown;
        }
        if !self.holds_conversation {
            // Its database is its own, not the primary's continued: handing
            // it back would replace the primary's history with less.
            self.record_hand_back("not_handed_back", None, began, Some("the standby never caught up on the primary's conversation during this promotion: the outage's conversation stays on the standby".into()));
            return HandedBack::StepDown;
        }
        let snapshot = match self.actions.hand_back_conversation().await {
            Ok(Some(s)) => s,
            Ok(None) => {
                self.record_hand_back("nothing_to_hand_back", None, began, None);
                return HandedBack::StepDown;
            }
            Err(e) => {
                self.hand_back_failed(None, began, format!("the last snapshot failed: {e}"));
                return HandedBack::StepDown;
            }
        };
        self.notify(
            "handing_back",
            &format!(
                "the outage's conversation (as it was at {}) is on the hand-back branch; the standby serves until the primary has taken it",
                crate::clock::hhmmss_utc(snapshot.taken_at)
            ),
        );
        let deadline = Instant::now() + TAKE_BACK_WAIT;
        loop {
            match self.actions.hand_back_taken(&snapshot).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::warn!("cannot read the returned branch: {e}"),
            }
            if Instant::now() >= deadline {
                if let Err(e) = self.actions.withdraw_hand_back().await {
                    tracing::warn!("cannot withdraw the hand-back: {e}");
                }
                self.hand_back_failed(
                    Some(&snapshot),
                    began,
                    format!(
                        "the primary did not take the conversation within {}s (is ocfo-conversation-take-back.timer running on it?); it stays on the standby's branch",
                        TAKE_BACK_WAIT.as_secs()
                    ),
                );
                return HandedBack::StepDown;
            }
            tokio::time::sleep(POLL).await;
        }
        // The primary restarted its gateway on the conversation: step down
        // only once it serves again.
        let deadline = Instant::now() + SERVE_AGAIN_WAIT;
        let mut healthy = 0;
        while healthy < self.config.rise.min(3) {
            if Instant::now() >= deadline {
                let why = format!(
                    "the primary took the conversation back but does not serve again within {}s",
                    SERVE_AGAIN_WAIT.as_secs()
                );
                self.record_hand_back("taken", Some(&snapshot), began, Some(why.clone()));
                return HandedBack::StayPromoted(why);
            }
            let r = self.prober.probe(self.config.probe.timeout).await;
            healthy = if self.judge(&r) { healthy + 1 } else { 0 };
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        self.record_hand_back("taken", Some(&snapshot), began, None);
        self.notify(
            "handed_back",
            &format!(
                "the primary took the outage's conversation back (as it was at {}) in {} ms",
                crate::clock::hhmmss_utc(snapshot.taken_at),
                began.elapsed().as_millis()
            ),
        );
        HandedBack::StepDown
    }

    fn hand_back_failed(&mut self, snapshot: Option<&Snapshot>, began: Instant, why: String) {
        self.record_hand_back("failed", snapshot, began, Some(why.clone()));
        self.action_failed(
            "hand_back_failed",
            format!("the conversation hand-back: {why}"),
        );
    }

    fn record_hand_back(
        &mut self,
        outcome: &str,
        snapshot: Option<&Snapshot>,
        began: Instant,
        detail: Option<String>,
    ) {
        if let Some(d) = &detail {
            tracing::info!(outcome, "conversation hand-back: {d}");
        }
        self.state.last_hand_back = Some(HandBack {
            at: rfc3339_now(),
            outcome: outcome.into(),
            snapshot: snapshot.map(|s| s.commit.clone()),
            taken_at: snapshot.map(|s| s.taken_at),
            wait_ms: began.elapsed().as_millis() as u64,
            detail,
        });
        self.publish();
    }
}
