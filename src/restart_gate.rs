//! The restart gate deploy passes before restarting the primary's gateway: a
//! hold on the standby's monitor (a lease, written with the standby's own
//! clock) taken before the first change that will restart the primary's
//! gateway and released once the primary is ready again. A deploy that dies
//! leaves a hold that simply expires.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::engine::runner::RestartGate;
use crate::engine::Host;
use crate::inventory::{Inventory, Role};
use crate::standby_client::{Primary, Standby, Wait, READY_WAIT};

/// How long a hold lasts unless renewed: long enough for a gateway restart
/// on a slow VPS, short enough that a dead deploy costs one failover delay.
pub const LEASE: Duration = Duration::from_secs(180);

const REASON: &str = "restarting the primary's gateway";

/// Why an upgrade does not hand over.
enum Stop {
    /// Go on under a plain hold, with a warning.
    NoHandover(String),
    /// The standby's run failed: the primary is not upgraded either.
    Upgrade(String),
}

pub struct StandbyHold<'a, H: Host> {
    pub inv: &'a Inventory,
    pub primary: &'a H,
    pub standby: &'a H,
    /// A chain's standby2, held and released with the standby: while the
    /// primary restarts on a first deploy, the standby's gateway may not
    /// run yet either, and standby2 would promote.
    pub standby2: Option<&'a H>,
    pub by: String,
    /// Set once the standby's own run (in this deploy) is over, with why it
    /// failed if it did; `None` when the standby is not deployed in this run.
    pub standby_done: Option<&'a tokio::sync::watch::Sender<Option<Result<(), String>>>>,
    /// An upgrade handed service to the standby.
    pub handed_over: std::sync::atomic::AtomicBool,
    pub notes: std::sync::Mutex<Vec<String>>,
}

/// How long an upgrade waits for the standby's own run (its npm install).
const STANDBY_RUN_WAIT: Duration = Duration::from_secs(900);
/// How long the standby may take to serve before the upgrade goes on with a
/// plain hold.
const HANDOVER_WAIT: Duration = Duration::from_secs(120);
/// How long the primary's restart waits, after a handover, for the standby
/// to serve at that moment (it restarts once itself to catch up on the
/// conversation after it took over).
const SERVING_WAIT: Duration = Duration::from_secs(240);

impl<H: Host> StandbyHold<'_, H> {
    fn client(&self) -> Standby<'_, H> {
        Standby::new(self.standby)
    }

    fn standby2(&self) -> Option<Standby<'_, H>> {
        self.standby2
            .map(|h| Standby::of(h, crate::inventory::Role::Standby2))
    }

    /// Holds standby2 too; a failure is a warning (the standby's hold is
    /// what the restart needs), kept for the run's notes.
    async fn hold_standby2(&self) {
        if let Some(s2) = self.standby2() {
            if let Err(e) = s2.hold(&self.by, REASON, LEASE).await {
                if let Ok(mut n) = self.notes.lock() {
                    n.push(format!(
                        "WARNING: could not hold standby2's monitor ({e}): it may promote while the primary's gateway restarts"
                    ));
                }
            }
        }
    }

    /// After the handover, the standby catches up on the conversation with
    /// a restart of its own, seconds to minutes later: the primary's
    /// gateway restarts only once the standby serves again, or nobody
    /// would (seen in the lab: an upgrade whose primary installed faster
    /// than the standby caught up). Not serving by then: a warning, and the
    /// restart goes on (the primary is already upgraded on disk).
    async fn standby_serving_now(&self) {
        let wait = Wait::new(SERVING_WAIT, Duration::from_secs(1));
        let serving = crate::standby_client::poll(
            &wait,
            || async {
                Ok::<bool, String>(
                    crate::standby_client::serving(self.standby, self.inv, Role::Standby)
                        .await
                        .unwrap_or(false),
                )
            },
            |s| (*s).into(),
        )
        .await;
        if serving.is_err() {
            if let Ok(mut n) = self.notes.lock() {
                n.push(format!(
                    "WARNING: the standby did not serve within {}s of the primary's restart (its catch-up restart?): nobody may serve until the primary is ready",
                    SERVING_WAIT.as_secs()
                ));
            }
        }
    }

    fn primary(&self) -> Primary<'_, H> {
        Primary::new(self.primary, self.inv)
    }

    /// An upgrade whose standby run failed goes no further: the primary
    /// keeps the version it serves (and nobody serves the new one
    /// half-installed); the next deploy converges both.
    async fn standby_run(&self) -> Result<(), Stop> {
        let Some(done) = self.standby_done else {
            return Ok(());
        };
        let mut rx = done.subscribe();
        let outcome =
            match tokio::time::timeout(STANDBY_RUN_WAIT, rx.wait_for(Option::is_some)).await {
                Ok(Ok(seen)) => seen.clone(),
                _ => None,
            };
        match outcome {
            None => Err(Stop::NoHandover(
                "the standby's own run did not finish".into(),
            )),
            Some(Err(why)) => Err(Stop::Upgrade(why)),
            Some(Ok(())) => Ok(()),
        }
    }

    /// Upgrade: the standby (already upgraded and restarted by its own run)
    /// serves before the primary's gateway restarts.
    async fn hand_over(&self) -> Result<(), String> {
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
            if self.handed_over.load(std::sync::atomic::Ordering::SeqCst) {
                self.standby_serving_now().await;
            }
            self.client()
                .hold(&self.by, REASON, LEASE)
                .await
                .map_err(|e| format!("cannot put a hold on the standby's monitor, so not restarting the primary's gateway: {e}"))?;
            self.hold_standby2().await;
            use std::sync::atomic::Ordering;
            // Only a serving primary has service to hand over (not on a first
            // deploy, nor when it is already down).
            if upgrade
                && !self.handed_over.load(Ordering::SeqCst)
                && self.primary().ready().await.unwrap_or(false)
            {
                let start = Instant::now();
                let ready_standby = match self.standby_run().await {
                    Err(Stop::Upgrade(why)) => {
                        // Nothing of the primary's changed yet: let go at once.
                        let _ = self.client().release().await;
                        return Err(format!(
                            "upgrade stopped before the primary: the standby's run failed ({why}), so the primary keeps the OpenClaw it serves and nothing was handed over; fix that and deploy again"
                        ));
                    }
                    Err(Stop::NoHandover(why)) => Err(why),
                    Ok(()) => Ok(()),
                };
                let handover = async {
                    ready_standby?;
                    self.hand_over().await
                }
                .await;
                if let Err(why) = &handover {
                    // The standby ran the new version in this deploy and its
                    // gateway is down: the primary would most likely fail the
                    // same way, and nobody would serve. Stop instead.
                    let upgraded_standby_down = self.standby_done.is_some()
                        && matches!(
                            self.client().state().await,
                            Ok(Some(s)) if s.local_gateway_up == Some(false)
                        );
                    if upgraded_standby_down {
                        let _ = self.client().end_switchover().await;
                        let _ = self.client().release().await;
                        return Err(format!(
                            "upgrade stopped before the primary: the standby's gateway does not run the new version ({why}; its journal says why: journalctl -u openclaw-gateway), so the primary keeps the OpenClaw it serves; fix that and deploy again"
                        ));
                    }
                }
                let note = match handover {
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
                self.hold_standby2().await;
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
            if let Some(s2) = self.standby2() {
                if let Err(e) = s2.release().await {
                    notes.push(format!(
                        "WARNING: could not release the hold on standby2 ({e}); it expires by itself within {}s",
                        LEASE.as_secs()
                    ));
                }
            }
            notes
        })
    }
}
