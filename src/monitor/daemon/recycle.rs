//! Recycling the watching gateway (docs/monitor.md, "The standby on a small
//! VPS"): OpenClaw keeps every retired plugin instance, so a warm standby's
//! gateway that armed, served and re-armed many times grows; past
//! `recycle_above_mib`, while the primary answers, the monitor restarts it
//! and arms it again, bringing the primary's newest conversation along
//! (the restart is the one moment it can be activated). A room of the
//! daemon: it reads and writes the daemon's own state.

use super::*;

/// Our own gateway's silence while it restarts on purpose is not a
/// degraded pair for this long.
const RESTART_GRACE: Duration = Duration::from_secs(120);

impl<P: Prober, A: Actions> Daemon<P, A> {
    pub(super) async fn maybe_recycle(&mut self) {
        // The primary healthy for `rise` probes in a row, as for a failback.
        let quiet = self.watching_warm()
            && self.machine.successes >= self.config.rise
            && self.state.hold.is_none()
            && !self.state.switchover
            && self.state.armed == Some(true)
            && self.state.local_gateway_up != Some(false);
        if !self.recycler.due(Instant::now(), quiet) {
            return;
        }
        // A drill is about to break the primary: not now.
        if self.actions.drill().await.is_some() {
            return;
        }
        let Some(memory) = self.actions.gateway_memory().await else {
            return;
        };
        self.state.gateway_memory_mib = Some(memory >> 20);
        if !self.recycler.over(memory, Instant::now()) {
            return;
        }
        self.recycler.recycled(Instant::now());
        self.state.counters.recycles += 1;
        self.notify(
            "recycling",
            &format!(
                "the watching gateway holds {} MiB, over monitor.recycle_above_mib ({} MiB): restarting it while the primary is healthy",
                memory >> 20,
                self.recycler.bound() >> 20
            ),
        );
        self.restarting_until = Some(Instant::now() + RESTART_GRACE);
        self.arming.forget();
        self.state.armed = Some(false);
        self.publish();
        if let Err(e) = self.restart_with_conversation().await {
            self.action_failed(
                "recycle_failed",
                format!("restarting the watching gateway failed: {e}"),
            );
        }
        // The loop arms it once it answers (`check_local_gateway`).
    }

    /// Restarts the gateway; with conversations travelling, on the
    /// primary's newest snapshot, so a failover soon after finds it active
    /// already and needs no catch-up restart.
    async fn restart_with_conversation(&mut self) -> Result<(), String> {
        let snapshot = match self.actions.fetch_conversation().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("no conversation refresh at the recycle: {e}");
                None
            }
        };
        let Some(snapshot) = snapshot else {
            return self.actions.restart_gateway().await;
        };
        if let Err(e) = self.actions.restore_conversation(&snapshot).await {
            tracing::warn!("no conversation refresh at the recycle: {e}");
            return self.actions.restart_gateway().await;
        }
        self.actions.stop_gateway().await?;
        let activated = self.actions.activate_conversation(&snapshot).await;
        self.actions.start_gateway().await?;
        match activated {
            Ok(()) => {
                tracing::info!(snapshot = %snapshot.commit, "the watching gateway restarted on the primary's newest conversation");
                Ok(())
            }
            Err(e) => Err(format!("activating the primary's conversation failed: {e}")),
        }
    }
}
