//! `ocfo switchover`: hand service to the standby for planned maintenance of
//! the primary, make-before-break, and `--back` to return it. The request is
//! a file on the standby (`/var/lib/ocfo/switchover.json`) that the monitor
//! obeys and that survives a restart of the monitor; this module only writes
//! it, watches the monitor carry it out, and stops or starts the primary's
//! gateway once the other side serves.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::engine::Host;
use crate::inventory::Inventory;
use crate::standby_client::{Primary, Standby, Wait, READY_WAIT};

/// A moment of a switchover (`at_ms` since it began) and what happened.
#[derive(Debug, Clone, Serialize)]
pub struct Milestone {
    pub at_ms: u64,
    pub event: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct SwitchoverReport {
    pub back: bool,
    pub ok: bool,
    pub error: Option<String>,
    pub steps: Vec<Milestone>,
    /// Time during which neither node served, as seen from here: the old
    /// side is stopped only after the new side was seen serving, so this is
    /// zero unless a step failed.
    pub no_serve_ms: Option<u64>,
    /// How long both served (the new side serving → the old side stopped).
    pub overlap_ms: Option<u64>,
}

struct Run {
    start: Instant,
    report: SwitchoverReport,
}

impl Run {
    fn ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn step(&mut self, event: impl Into<String>) {
        let at_ms = self.ms();
        self.report.steps.push(Milestone {
            at_ms,
            event: event.into(),
        });
    }
}

/// How long the standby may take to take over.
const STANDBY_WAIT: Duration = Duration::from_secs(180);
/// How long it may take to step down: with conversations travelling it first
/// hands the outage's back and waits for the primary to take it (up to 180
/// s) and serve again (up to 120 s; docs/monitor.md, "Conversations").
const STEP_DOWN_WAIT: Duration = Duration::from_secs(360);

pub async fn run<H: Host>(
    inv: &Inventory,
    primary: &H,
    standby: &H,
    back: bool,
    by: &str,
) -> SwitchoverReport {
    let mut run = Run {
        start: Instant::now(),
        report: SwitchoverReport {
            back,
            ..Default::default()
        },
    };
    let result = if back {
        hand_back(inv, primary, standby, &mut run).await
    } else {
        hand_over(inv, primary, standby, by, &mut run).await
    };
    if let Err(e) = result {
        run.report.error = Some(e);
    }
    run.report.ok = run.report.error.is_none();
    run.report
}

async fn hand_over<H: Host>(
    inv: &Inventory,
    primary: &H,
    standby: &H,
    by: &str,
    run: &mut Run,
) -> Result<(), String> {
    let standby = Standby::new(standby);
    let before = standby
        .state()
        .await?
        .ok_or("the standby's monitor is not running (no state file): deploy first")?;
    standby
        .request_switchover(by)
        .await
        .map_err(|e| format!("cannot request the switchover on the standby: {e}"))?;
    run.step("switchover requested on the standby");
    let wait = Wait::new(STANDBY_WAIT, Duration::from_millis(250));
    let s = standby
        .await_takeover(&before, &wait)
        .await
        .map_err(|e| e.message(|| timed_out("the standby taking over", STANDBY_WAIT)))?;
    let serving_at = run.ms();
    run.step(format!(
        "standby serves ({})",
        if s.standby == "warm" {
            "its channels started live"
        } else {
            "its gateway is healthy"
        }
    ));
    // Make before break: only now does the primary stop.
    let stop_at = run.ms();
    Primary::new(primary, inv)
        .stop_gateway()
        .await
        .map_err(|e| {
            format!("the standby serves, but stopping the primary's gateway failed: {e}")
        })?;
    run.step(
        "primary's gateway stopped (drained); maintain the primary, then `ocfo switchover --back`",
    );
    // The primary served until its drain ended; the standby from `serving_at`.
    run.report.overlap_ms = Some(run.ms() - serving_at);
    run.report.no_serve_ms = Some(serving_at.saturating_sub(stop_at));
    Ok(())
}

async fn hand_back<H: Host>(
    inv: &Inventory,
    primary: &H,
    standby: &H,
    run: &mut Run,
) -> Result<(), String> {
    let primary = Primary::new(primary, inv);
    primary.start_gateway().await.map_err(|e| {
        format!("starting the primary's gateway failed; the standby keeps serving: {e}")
    })?;
    run.step("primary's gateway started");
    let wait = Wait::new(READY_WAIT, Duration::from_millis(500));
    primary
        .await_ready(&wait, false)
        .await
        .map_err(|e| {
            e.message(|| format!(
                "the primary is not ready after {}s; the standby keeps serving (the switchover stands)",
                READY_WAIT.as_secs()
            ))
        })?;
    let ready_at = run.ms();
    run.step("primary ready");
    let standby = Standby::new(standby);
    standby
        .end_switchover()
        .await
        .map_err(|e| format!("cannot end the switchover on the standby: {e}"))?;
    run.step("switchover ended on the standby");
    let wait = Wait::new(STEP_DOWN_WAIT, Duration::from_millis(250));
    standby
        .await_step_down(&wait)
        .await
        .map_err(|e| e.message(|| timed_out("the standby stepping down", STEP_DOWN_WAIT)))?;
    let stepped_down = run.ms();
    run.step("standby stepped down (watching)");
    run.report.overlap_ms = Some(stepped_down - ready_at);
    run.report.no_serve_ms = Some(0);
    Ok(())
}

fn timed_out(what: &str, wait: Duration) -> String {
    format!("{what} did not happen within {}s", wait.as_secs())
}

pub fn summary(r: &SwitchoverReport) -> String {
    let mut s = format!("SWITCHOVER{}\n", if r.back { " BACK" } else { "" });
    for st in &r.steps {
        s.push_str(&format!(
            "  +{:>6.1}s  {}\n",
            st.at_ms as f64 / 1000.0,
            st.event
        ));
    }
    if let (Some(n), Some(o)) = (r.no_serve_ms, r.overlap_ms) {
        s.push_str(&format!(
            "  no node serving: {:.1}s; both serving: {:.1}s\n",
            n as f64 / 1000.0,
            o as f64 / 1000.0
        ));
    }
    match &r.error {
        None => s.push_str("  result: OK\n"),
        Some(e) => s.push_str(&format!("  result: FAILED: {e}\n")),
    }
    s
}
