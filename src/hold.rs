//! Deploy's hold on the standby's monitor: a lease, written on the standby
//! with the standby's own clock, taken before the first change that will
//! restart the primary's gateway and released once the primary is ready
//! again. A deploy that dies leaves a hold that simply expires.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::engine::runner::RestartGate;
use crate::engine::Host;
use crate::inventory::{Inventory, Role};
use crate::render::layout::{GATEWAY_ENV_FILE, HOLD_FILE, MONITOR_STATE_DIR};
use crate::shell::quote;

/// How long a hold lasts unless renewed: long enough for a gateway restart
/// on a slow VPS, short enough that a dead deploy costs one failover delay.
pub const LEASE: Duration = Duration::from_secs(180);
/// How long the end of a run waits for the primary to be ready.
pub const READY_WAIT: Duration = Duration::from_secs(150);

/// Writes (or renews) the hold file on the standby, atomically.
pub fn hold_script(by: &str, reason: &str, lease: Duration) -> String {
    let rest = format!(
        "\"by\": {}, \"reason\": {}",
        serde_json::Value::from(by),
        serde_json::Value::from(reason)
    );
    format!(
        "set -e\nd={d}\n[ ! -L \"$d\" ] || {{ echo \"$d is a symlink\" >&2; exit 1; }}\nmkdir -p \"$d\"\n\
         u=$(( $(date +%s) + {secs} ))\nprintf '{{\"until\": %s, %s}}\\n' \"$u\" {rest} > \"$d/.hold.tmp\"\nmv -f \"$d/.hold.tmp\" {f}",
        d = quote(MONITOR_STATE_DIR),
        secs = lease.as_secs(),
        rest = quote(&rest),
        f = quote(HOLD_FILE),
    )
}

pub fn release_script() -> String {
    format!("rm -f {}", quote(HOLD_FILE))
}

/// The primary's `/readyz` with the gateway token (from the root-only
/// environment file, through stdin: never in a command line).
pub fn readyz_script(inv: &Inventory) -> String {
    let url = crate::status::local_health_url(inv, Role::Primary).replace("/healthz", "/readyz");
    format!(
        "set -a; . {env}; set +a\nprintf 'Authorization: Bearer %s\\n' \"$OCFO_GATEWAY_TOKEN\" | curl -s -m 2 -H @- {url} 2>/dev/null | head -c 4000",
        env = quote(GATEWAY_ENV_FILE),
        url = quote(&url)
    )
}

/// Ready for the pair: the gateway serves and nothing but (possibly) its own
/// channels fails; channels are the monitor's policy, not a restart's.
pub fn primary_ready(body: &str, inv: &Inventory) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body.trim()) else {
        return false;
    };
    if v.get("ready") == Some(&serde_json::Value::Bool(true)) {
        return true;
    }
    let channels: Vec<&str> = inv
        .channels_of(Role::Primary)
        .map(|c| c.name.as_str())
        .collect();
    v.get("failing")
        .and_then(|f| f.as_array())
        .is_some_and(|f| {
            !f.is_empty()
                && f.iter()
                    .all(|x| x.as_str().is_some_and(|s| channels.contains(&s)))
        })
}

pub struct StandbyHold<'a, H: Host> {
    pub inv: &'a Inventory,
    pub primary: &'a H,
    pub standby: &'a H,
    pub by: String,
}

impl<H: Host> RestartGate for StandbyHold<'_, H> {
    fn hold(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.standby
                .check(&hold_script(&self.by, "restarting the primary's gateway", LEASE))
                .await
                .map(|_| ())
                .map_err(|e| format!("cannot put a hold on the standby's monitor, so not restarting the primary's gateway: {e}"))
        })
    }

    fn release(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            let start = Instant::now();
            let mut notes = Vec::new();
            let mut ready = false;
            while start.elapsed() < READY_WAIT {
                if let Ok(out) = self.primary.run(&readyz_script(self.inv), None).await {
                    if primary_ready(&out.stdout, self.inv) {
                        ready = true;
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
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
            if let Err(e) = self.standby.check(&release_script()).await {
                notes.push(format!(
                    "WARNING: could not release the hold on the standby ({e}); it expires by itself within {}s",
                    LEASE.as_secs()
                ));
            }
            notes
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_hold_script_writes_a_lease_that_the_monitor_reads() {
        let dir = tempfile::tempdir().unwrap();
        let script = super::hold_script(
            "deploy by a\"b",
            "r'$(x)",
            std::time::Duration::from_secs(60),
        )
        .replace(
            crate::render::layout::MONITOR_STATE_DIR,
            &dir.path().display().to_string(),
        )
        .replace(
            crate::render::layout::HOLD_FILE,
            &dir.path().join("hold.json").display().to_string(),
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
        let text = std::fs::read_to_string(dir.path().join("hold.json")).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let h = crate::monitor::actions::Hold::parse_active(&text, now).expect(&text);
        assert_eq!(h.by, "deploy by a\"b");
        assert_eq!(h.reason, "r'$(x)");
        assert!(h.until >= now + 59 && h.until <= now + 61);
        assert!(crate::monitor::actions::Hold::parse_active(&text, now + 61).is_none());
    }
}
