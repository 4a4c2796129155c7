//! What the standby tells its users: the takeover message once its channels
//! started, the failback message before they stop (docs/monitor.md,
//! "Telling the users"). A room of the daemon: it reads and writes the
//! daemon's own state.

use super::*;

impl<P: Prober, A: Actions> Daemon<P, A> {
    /// Tells the standby's users that it took over: after its channels
    /// started, so it never delays the promotion. An unplanned takeover is
    /// told once per flap window (a flapping primary must not send a stream
    /// of messages); a drill's and a switchover's are always told, as such.
    pub(super) async fn announce_takeover(&mut self, decided_at_ms: u64) {
        use crate::inventory::announce::{fill, WHY_DOWN, WHY_DRILL, WHY_PLANNED};
        self.told = false;
        let Some(a) = self.config.announce.clone() else {
            return;
        };
        let drill = self.actions.drill().await.is_some();
        let planned = self.machine.planned;
        let why = if drill {
            WHY_DRILL
        } else if planned {
            WHY_PLANNED
        } else {
            WHY_DOWN
        };
        let unplanned = !drill && !planned;
        if let Some(at) = self
            .told_unplanned_at
            .filter(|t| unplanned && t.elapsed() < self.config.flap.window)
        {
            let detail = format!(
                "the users were told of a takeover {}s ago; within the flap window ({}s) they are told once",
                at.elapsed().as_secs(),
                self.config.flap.window.as_secs()
            );
            self.record_announcement("takeover", None, "suppressed", Some(detail.clone()));
            self.notify("announce_suppressed", &detail);
            return;
        }
        let since = crate::clock::hhmm_utc(decided_at_ms / 1000);
        let text = fill(&a.takeover, &[("since", since.as_str()), ("why", why)]);
        if self.send_to_all(&a, "takeover", &text).await {
            self.told = true;
            if unplanned {
                self.told_unplanned_at = Some(Instant::now());
            }
        }
    }

    /// Tells the users the primary is back, if they were told it was gone.
    pub(super) async fn announce_failback(&mut self) {
        use crate::inventory::announce::fill;
        let Some(a) = self.config.announce.clone().filter(|_| self.told) else {
            return;
        };
        self.told = false;
        let since = crate::clock::hhmm_utc(crate::clock::unix_ms() / 1000);
        // A chain's later standby steps down for a standby before it, whose
        // own bot the users continue on.
        let template = match &a.failback_to_standby {
            Some(t) if self.up_by_standby_before => t,
            _ => &a.failback,
        };
        let text = fill(template, &[("since", since.as_str()), ("why", "")]);
        self.send_to_all(&a, "failback", &text).await;
    }

    /// Tells the users who heard of the takeover that the standby now
    /// remembers their conversation, and up to when.
    pub(super) async fn announce_caught_up(&mut self, upto: &str) {
        use crate::inventory::announce::fill;
        let Some(a) = self.config.announce.clone().filter(|_| self.told) else {
            return;
        };
        let text = fill(&a.caught_up, &[("upto", upto), ("since", ""), ("why", "")]);
        self.send_to_all(&a, "caught_up", &text).await;
    }

    /// One message to every recipient, each within the time limit; failures
    /// are logged, notified and kept in the state file. True if any arrived.
    async fn send_to_all(
        &mut self,
        a: &crate::monitor::config::AnnounceConfig,
        kind: &str,
        text: &str,
    ) -> bool {
        let mut any = false;
        for r in &a.recipients {
            let sent = tokio::time::timeout(
                a.timeout + Duration::from_secs(5),
                self.actions.announce(&r.channel, &r.target, text),
            )
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {}s", a.timeout.as_secs())));
            match sent {
                Ok(()) => {
                    any = true;
                    tracing::info!(kind, channel = %r.channel, "announced");
                    self.record_announcement(kind, Some(r), "sent", None);
                }
                Err(e) => {
                    self.record_announcement(kind, Some(r), "failed", Some(e.clone()));
                    self.action_failed(
                        "announce_failed",
                        format!(
                            "telling {} on {} of the {kind} failed: {e}",
                            r.target, r.channel
                        ),
                    );
                }
            }
        }
        any
    }

    fn record_announcement(
        &mut self,
        kind: &str,
        to: Option<&crate::inventory::announce::Recipient>,
        outcome: &str,
        detail: Option<String>,
    ) {
        self.state
            .announcements
            .push_back(crate::monitor::state_file::Announcement {
                at: rfc3339_now(),
                kind: kind.into(),
                channel: to.map(|r| r.channel.clone()).unwrap_or_default(),
                target: to.map(|r| r.target.clone()).unwrap_or_default(),
                outcome: outcome.into(),
                detail,
            });
        while self.state.announcements.len() > crate::monitor::state_file::KEEP_ANNOUNCEMENTS {
            self.state.announcements.pop_front();
        }
    }
}
