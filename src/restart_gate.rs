//! The restart gate deploy passes before restarting the primary's gateway: a
//! hold on the standby's monitor (a lease, written with the standby's own
//! clock) taken before the first change that will restart the primary's
//! gateway and released once the primary is ready again. A deploy that dies
//! leaves a hold that simply expires.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::engine::runner::RestartGate;
use crate::engine::Host;
use crate::inventory::Inventory;
use crate::standby_client::{Primary, Standby, Wait, READY_WAIT};

/// How long a hold lasts unless renewed: long enough for a gateway restart
/// on a slow VPS, short enough that a dead deploy costs one failover delay.
pub const LEASE: Duration = Duration::from_secs(180);

const REASON: &str = "restarting the primary's gateway";

pub struct StandbyHold<'a, H: Host> {
    pub inv: &'a Inventory,
    pub primary: &'a H,
    pub standby: &'a H,
    pub by: String,
    /// Set once the standby's own run (in this deploy) is over, or `None`
    /// when the standby is not deployed in this run.
    pub standby_done: Option<&'a tokio::sync::watch::Sender<bool>>,
    /// An upgrade handed service to the standby.
    pub handed_over: std::sync::atomic::AtomicBool,
    pub notes: std::sync::Mutex<Vec<String>>,
}

/// How long an upgrade waits for the standby's own run (its npm install).
const STANDBY_RUN_WAIT: Duration = Duration::from_secs(900);
/// How long the standby may take to serve before the upgrade goes on with a
/// plain hold.
const HANDOVER_WAIT: Duration = Duration::from_secs(120);

impl<H: Host> StandbyHold<'_, H> {
    fn client(&self) -> Standby<'_, H> {
        Standby::new(self.standby)
    }

    fn primary(&self) -> Primary<'_, H> {
        Primary::new(self.primary, self.inv)
    }

    /// Upgrade: the standby (already upgraded and restarted by its own run)
    /// serves before the primary's gateway restarts.
    async fn hand_over(&self) -> Result<(), String> {
        if let Some(done) = self.standby_done {
            let mut rx = done.subscribe();
            let waited = tokio::time::timeout(STANDBY_RUN_WAIT, rx.wait_for(|d| *d)).await;
            if waited.is_err() {
                return Err("the standby's own run did not finish".into());
            }
        }
        let standby = self.client();
        let s = standby
            .state()
            .await?
            .ok_or("the standby's monitor is not running")?;
        if s.standby != "warm" || s.local_gateway_up == Some(false) {
            return Err("the standby is not a healthy warm standby".into());
        }
        standby.request_switchover(&self.by).await?;
        let wait = Wait::new(HANDOVER_WAIT, Duration::from_millis(500));
        standby
            .await_takeover(&s, &wait)
            .await
            .map(drop)
            .map_err(|e| {
                e.message(|| {
                    format!(
                        "the standby did not serve within {}s",
                        HANDOVER_WAIT.as_secs()
                    )
                })
            })
    }
}

impl<H: Host> RestartGate for StandbyHold<'_, H> {
    fn hold(&self, upgrade: bool) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.client()
                .hold(&self.by, REASON, LEASE)
                .await
                .map_err(|e| format!("cannot put a hold on the standby's monitor, so not restarting the primary's gateway: {e}"))?;
            use std::sync::atomic::Ordering;
            // Only a serving primary has service to hand over (not on a first
            // deploy, nor when it is already down).
            if upgrade
                && !self.handed_over.load(Ordering::SeqCst)
                && self.primary().ready().await.unwrap_or(false)
            {
                let start = Instant::now();
                let note = match self.hand_over().await {
                    Ok(()) => {
                        self.handed_over.store(true, Ordering::SeqCst);
                        format!(
                            "upgrade: the standby served {:.1}s after the handover began, before the primary's gateway restarted",
                            start.elapsed().as_secs_f64()
                        )
                    }
                    Err(e) => format!(
                        "WARNING: upgrade without a handover ({e}): the primary's gateway restarts under a hold, and nobody serves meanwhile"
                    ),
                };
                if let Ok(mut n) = self.notes.lock() {
                    n.push(note);
                }
                // The handover took time: renew the lease.
                self.client().hold(&self.by, REASON, LEASE).await?;
            }
            Ok(())
        })
    }

    fn release(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            let start = Instant::now();
            let mut notes: Vec<String> = self
                .notes
                .lock()
                .map(|mut n| std::mem::take(&mut *n))
                .unwrap_or_default();
            let wait = Wait::new(READY_WAIT, Duration::from_millis(500));
            let ready = self.primary().await_ready(&wait, true).await.is_ok();
            if ready {
                notes.push(format!(
                    "the standby's monitor was held while the primary's gateway restarted; ready after {:.1}s",
                    start.elapsed().as_secs_f64()
                ));
            } else {
                notes.push(format!(
                    "WARNING: the primary's gateway is not ready {}s after the run; the hold is released, so the standby fails over if it stays down",
                    READY_WAIT.as_secs()
                ));
            }
            if ready && self.handed_over.load(std::sync::atomic::Ordering::SeqCst) {
                match self.client().end_switchover().await {
                    Ok(_) => notes.push("upgrade: the primary is ready; the standby steps down after `rise` healthy probes".into()),
                    Err(e) => notes.push(format!("WARNING: could not end the upgrade's switchover on the standby ({e}); run `ocfo switchover --back`")),
                }
            } else if self.handed_over.load(std::sync::atomic::Ordering::SeqCst) {
                notes.push("WARNING: the primary is not ready, so the standby keeps serving (switchover in force); `ocfo switchover --back` once the primary is fixed".into());
            }
            if let Err(e) = self.client().release().await {
                notes.push(format!(
                    "WARNING: could not release the hold on the standby ({e}); it expires by itself within {}s",
                    LEASE.as_secs()
                ));
            }
            notes
        })
    }
}
