//! The conversation catch-up after a promotion (docs/monitor.md,
//! "Conversations"): the standby already answers; now it restores the
//! primary's newest conversation snapshot while it serves, then restarts
//! its gateway on it (OpenClaw activates a restored database only
//! offline) and tells its users up to when it remembers. A room of the
//! daemon: it reads and writes the daemon's own state.

use super::*;
use crate::monitor::config::StandbyMode;
use crate::monitor::conversation::Snapshot;
use crate::monitor::state_file::CatchUp;

/// How long the turns in flight may take to finish before the restart.
const QUIESCE: Duration = Duration::from_secs(60);

impl<P: Prober, A: Actions> Daemon<P, A> {
    pub(super) async fn catch_up(&mut self) {
        if self.config.conversation.is_none() || self.config.standby == StandbyMode::Cold {
            return;
        }
        let prepare = Instant::now();
        let snapshot = match self.actions.fetch_conversation().await {
            Ok(Some(s)) => s,
            Ok(None) => {
                tracing::info!("the primary's newest conversation snapshot is already active");
                self.holds_conversation = true;
                self.record_catch_up("nothing_new", None, prepare, None, None);
                return;
            }
            Err(e) => return self.catch_up_failed(None, prepare, None, e),
        };
        if let Err(e) = self.actions.restore_conversation(&snapshot).await {
            return self.catch_up_failed(Some(&snapshot), prepare, None, e);
        }
        let prepare_ms = prepare.elapsed().as_millis() as u64;
        // From here the standby is offline: its channel's messages wait at
        // the chat service and are answered once it serves again.
        let offline = Instant::now();
        if let Err(e) = self.actions.quiesce_gateway(QUIESCE).await {
            // The stop still drains what it can (OpenClaw's own budget).
            tracing::warn!("the gateway did not go quiet before the catch-up: {e}");
        }
        if let Err(e) = self.actions.stop_gateway().await {
            // systemd restarts it: the standby serves again without the
            // conversation.
            let e = format!("stopping the gateway for the catch-up failed: {e}");
            self.catch_up_failed(Some(&snapshot), prepare, Some(offline), e);
            self.check_promoted_gateway().await;
            return;
        }
        let activated = self.actions.activate_conversation(&snapshot).await;
        // From here its database is the primary's, continued, whether or not
        // the gateway serves again in time (a slow start on a loaded host):
        // at the failback it is handed back.
        if activated.is_ok() {
            self.holds_conversation = true;
        }
        let since_ms = unix_ms();
        let started = match self.actions.start_gateway().await {
            Ok(()) => self.serve_again(since_ms).await,
            Err(e) => Err(format!("starting {} failed: {e}", self.config.gateway.unit)),
        };
        let serving_at = match started {
            Ok(at) => at.or_else(|| Some(unix_ms())),
            Err(e) => {
                self.action_failed("start_failed", format!("after the catch-up: {e}"));
                None
            }
        };
        let detail = match (&activated, serving_at) {
            (Err(e), _) => Some(format!("activating the restored conversation failed: {e}")),
            (Ok(()), None) => Some("the gateway did not serve again after the catch-up".into()),
            (Ok(()), Some(_)) => None,
        };
        if let Some(d) = detail {
            return self.catch_up_failed(Some(&snapshot), prepare, Some(offline), d);
        }
        self.holds_conversation = true;
        self.state.last_catch_up = Some(CatchUp {
            at: rfc3339_now(),
            outcome: "caught_up".into(),
            snapshot: Some(snapshot.commit.clone()),
            taken_at: Some(snapshot.taken_at),
            prepare_ms,
            offline_ms: offline.elapsed().as_millis() as u64,
            serving_at_ms: serving_at,
            detail: None,
        });
        let upto = crate::clock::hhmmss_utc(snapshot.taken_at);
        self.notify(
            "caught_up",
            &format!(
                "the standby continues the primary's conversation as it was at {upto} (restored in {prepare_ms} ms, offline {} ms)",
                offline.elapsed().as_millis()
            ),
        );
        self.publish();
        self.announce_caught_up(&upto).await;
    }

    /// A cold standby's gateway is stopped until it promotes: it restores
    /// the primary's conversation before it starts, so it never answers
    /// without it (its start takes the restore's few seconds longer).
    pub(super) async fn catch_up_before_start(&mut self) {
        if self.config.conversation.is_none() {
            return;
        }
        let prepare = Instant::now();
        let snapshot = match self.actions.fetch_conversation().await {
            Ok(Some(s)) => s,
            Ok(None) => {
                self.holds_conversation = true;
                return self.record_catch_up("nothing_new", None, prepare, None, None);
            }
            Err(e) => return self.catch_up_failed(None, prepare, None, e),
        };
        let done = match self.actions.restore_conversation(&snapshot).await {
            Ok(()) => self.actions.activate_conversation(&snapshot).await,
            Err(e) => Err(e),
        };
        match done {
            Ok(()) => {
                self.holds_conversation = true;
                self.record_catch_up("caught_up", Some(&snapshot), prepare, None, None);
                tracing::info!(
                    snapshot = %snapshot.commit,
                    ms = prepare.elapsed().as_millis() as u64,
                    "the primary's conversation restored before the gateway starts"
                );
            }
            Err(e) => self.catch_up_failed(Some(&snapshot), prepare, None, e),
        }
    }

    fn catch_up_failed(
        &mut self,
        snapshot: Option<&Snapshot>,
        prepare: Instant,
        offline: Option<Instant>,
        why: String,
    ) {
        self.record_catch_up("failed", snapshot, prepare, offline, Some(why.clone()));
        self.action_failed(
            "catch_up_failed",
            format!("the standby serves without the primary's conversation: {why}"),
        );
    }

    fn record_catch_up(
        &mut self,
        outcome: &str,
        snapshot: Option<&Snapshot>,
        prepare: Instant,
        offline: Option<Instant>,
        detail: Option<String>,
    ) {
        let prepare_ms = offline.unwrap_or_else(Instant::now) - prepare;
        self.state.last_catch_up = Some(CatchUp {
            at: rfc3339_now(),
            outcome: outcome.into(),
            snapshot: snapshot.map(|s| s.commit.clone()),
            taken_at: snapshot.map(|s| s.taken_at),
            prepare_ms: prepare_ms.as_millis() as u64,
            offline_ms: offline.map_or(0, |o| o.elapsed().as_millis() as u64),
            serving_at_ms: None,
            detail,
        });
        self.publish();
    }
}
