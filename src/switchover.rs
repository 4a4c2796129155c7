//! `ocfo switchover`: hand service to the standby for planned maintenance of
//! the primary, make-before-break, and `--back` to return it. The request is
//! a file on the standby (`/var/lib/ocfo/switchover.json`) that the monitor
//! obeys and that survives a restart of the monitor; this module only writes
//! it, watches the monitor carry it out, and stops or starts the primary's
//! gateway once the other side serves.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::engine::Host;
use crate::hold::{primary_ready, readyz_script};
use crate::inventory::Inventory;
use crate::monitor::machine::Role;
use crate::monitor::MonitorState;
use crate::render::layout::{GATEWAY_UNIT, MONITOR_STATE_DIR, SWITCHOVER_FILE};
use crate::shell::{quote, Script};

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub at_ms: u64,
    pub event: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct SwitchoverReport {
    pub back: bool,
    pub ok: bool,
    pub error: Option<String>,
    pub steps: Vec<Step>,
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
        self.report.steps.push(Step {
            at_ms,
            event: event.into(),
        });
    }
}

async fn monitor_state<H: Host>(standby: &H) -> Result<Option<MonitorState>, String> {
    let out = standby
        .check(&format!(
            "cat {MONITOR_STATE_DIR}/monitor-state.json 2>/dev/null || true"
        ))
        .await
        .map_err(|e| e.to_string())?;
    Ok(serde_json::from_str(out.stdout.trim()).ok())
}

/// Polls the standby's monitor until `done` says yes (or `Err` to stop).
async fn wait_for<H: Host>(
    standby: &H,
    within: Duration,
    what: &str,
    done: impl Fn(&MonitorState) -> Result<bool, String>,
) -> Result<MonitorState, String> {
    let start = Instant::now();
    loop {
        if let Some(s) = monitor_state(standby).await? {
            if done(&s)? {
                return Ok(s);
            }
        }
        if start.elapsed() > within {
            return Err(format!(
                "{what} did not happen within {}s",
                within.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Writes the switchover request on the standby, atomically. The requester's
/// name (JSON-encoded here) is printf's argument, never part of its format:
/// a `%` or a backslash in it is data.
pub fn request_script(by: &str) -> String {
    Script::new(REQUEST)
        .args([
            MONITOR_STATE_DIR.to_string(),
            serde_json::Value::from(by).to_string(),
            SWITCHOVER_FILE.to_string(),
        ])
        .render()
}

/// $1 the monitor's state folder, $2 the requester as a JSON string, $3 the
/// request file.
const REQUEST: &str = r#"set -e
d=$1
[ ! -L "$d" ] || { echo "$d is a symlink" >&2; exit 1; }
mkdir -p -- "$d"
printf '{"by": %s, "since": "%s"}\n' "$2" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$d/.switchover.tmp"
mv -f -- "$d/.switchover.tmp" "$3""#;

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
        hand_over(primary, standby, by, &mut run).await
    };
    if let Err(e) = result {
        run.report.error = Some(e);
    }
    run.report.ok = run.report.error.is_none();
    run.report
}

async fn hand_over<H: Host>(
    primary: &H,
    standby: &H,
    by: &str,
    run: &mut Run,
) -> Result<(), String> {
    let before = monitor_state(standby)
        .await?
        .ok_or("the standby's monitor is not running (no state file): deploy first")?;
    standby
        .check(&request_script(by))
        .await
        .map_err(|e| format!("cannot request the switchover on the standby: {e}"))?;
    run.step("switchover requested on the standby");
    let promotions = before.counters.promotions;
    let already = before.role == Role::Promoted;
    let s = wait_for(
        standby,
        Duration::from_secs(180),
        "the standby taking over",
        |s| {
            if !s.switchover || s.role != Role::Promoted {
                return Ok(false);
            }
            if already {
                return Ok(true);
            }
            match &s.last_promotion {
                Some(p) if s.counters.promotions > promotions && !p.healthy => Err(format!(
                    "the standby was promoted but does not serve ({}); the primary is left running",
                    s.last_error.clone().unwrap_or_default()
                )),
                Some(_) => Ok(s.counters.promotions > promotions),
                None => Ok(false),
            }
        },
    )
    .await;
    let s = match s {
        Ok(s) => s,
        Err(e) => {
            // Nothing was broken: withdraw the request, the primary still serves.
            let _ = standby
                .check(&format!("rm -f {}", quote(SWITCHOVER_FILE)))
                .await;
            return Err(e);
        }
    };
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
    primary
        .check(&format!("systemctl stop {GATEWAY_UNIT}"))
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
    primary
        .check(&format!("systemctl enable --now {GATEWAY_UNIT} >/dev/null 2>&1 || systemctl start {GATEWAY_UNIT}"))
        .await
        .map_err(|e| format!("starting the primary's gateway failed; the standby keeps serving: {e}"))?;
    run.step("primary's gateway started");
    let start = Instant::now();
    loop {
        let out = primary
            .run(&readyz_script(inv), None)
            .await
            .map_err(|e| e.to_string())?;
        if primary_ready(&out.stdout, inv) {
            break;
        }
        if start.elapsed() > crate::hold::READY_WAIT {
            return Err(format!(
                "the primary is not ready after {}s; the standby keeps serving (the switchover stands)",
                crate::hold::READY_WAIT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ready_at = run.ms();
    run.step("primary ready");
    standby
        .check(&format!("rm -f {}", quote(SWITCHOVER_FILE)))
        .await
        .map_err(|e| format!("cannot end the switchover on the standby: {e}"))?;
    run.step("switchover ended on the standby");
    wait_for(
        standby,
        Duration::from_secs(180),
        "the standby stepping down",
        |s| Ok(!s.switchover && s.role == Role::Watching && !s.channels_live),
    )
    .await?;
    let stepped_down = run.ms();
    run.step("standby stepped down (watching)");
    run.report.overlap_ms = Some(stepped_down - ready_at);
    run.report.no_serve_ms = Some(0);
    Ok(())
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

#[cfg(test)]
mod tests {
    /// The request file written for `by`, parsed back.
    fn requested(by: &str) -> serde_json::Value {
        let dir = tempfile::tempdir().unwrap();
        let script = super::request_script(by).replace(
            crate::render::layout::MONITOR_STATE_DIR,
            &dir.path().display().to_string(),
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(dir.path().join("switchover.json")).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    #[test]
    fn the_request_file_is_json_whatever_the_name() {
        let v = requested("ops \"x\" $(y)");
        assert_eq!(v["by"], "ops \"x\" $(y)");
        assert!(v["since"].as_str().unwrap().ends_with('Z'));
    }

    /// The name is printf's argument, never its format: `%s`, `%d` and a
    /// backslash in it arrive as themselves (issue 16).
    #[test]
    fn a_percent_or_backslash_in_the_name_is_data_not_format() {
        for by in ["ops 100%", "a%sb%d%n", "x\\ny\\\"z", "%%"] {
            let v = requested(by);
            assert_eq!(v["by"], by);
            assert!(v["since"].as_str().unwrap().ends_with('Z'), "{v}");
        }
    }
}
