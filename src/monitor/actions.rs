//! What the monitor does to the standby: pull the workspace, start and stop
//! the gateway, save what the standby wrote. Behind a trait, so the daemon's
//! logic is tested with fakes and simulated time; `SystemActions` does it for
//! real with systemctl, runuser and git.

use std::future::Future;
use std::time::Duration;

use tokio::process::Command;

use super::config::MonitorConfig;

pub trait Actions: Send + Sync {
    fn gateway_active(&self) -> impl Future<Output = bool> + Send;
    fn pull_workspace(&self) -> impl Future<Output = Result<String, String>> + Send;
    fn start_gateway(&self) -> impl Future<Output = Result<(), String>> + Send;
    /// Whether the local gateway answers its health check.
    fn gateway_healthy(&self) -> impl Future<Output = bool> + Send;
    fn stop_gateway(&self) -> impl Future<Output = Result<(), String>> + Send;
    /// Commits and pushes anything the standby wrote to a new branch;
    /// returns the branch, or `None` when there was nothing to keep.
    fn save_workspace(&self) -> impl Future<Output = Result<Option<String>, String>> + Send;
}

pub struct SystemActions {
    pub config: MonitorConfig,
}

async fn run(cmd: &mut Command, timeout: Duration) -> Result<String, String> {
    let what = format!("{:?}", cmd.as_std());
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| format!("{what} did not finish within {}s", timeout.as_secs()))?
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl SystemActions {
    /// git in the workspace as the gateway's user.
    fn git(&self, args: &[&str]) -> Option<Command> {
        let ws = self.config.workspace.as_ref()?;
        let mut c = Command::new("runuser");
        c.args(["-u", &ws.user, "--", "git", "-C", &ws.path])
            .args(args);
        Some(c)
    }

    async fn git_run(&self, args: &[&str]) -> Result<String, String> {
        let timeout = self
            .config
            .workspace
            .as_ref()
            .map_or(Duration::from_secs(30), |w| w.git_timeout);
        match self.git(args) {
            Some(mut c) => run(&mut c, timeout).await,
            None => Err("no workspace configured".into()),
        }
    }
}

impl Actions for SystemActions {
    async fn gateway_active(&self) -> bool {
        Command::new("systemctl")
            .args(["is-active", "--quiet", &self.config.gateway.unit])
            .status()
            .await
            .is_ok_and(|s| s.success())
    }

    async fn pull_workspace(&self) -> Result<String, String> {
        let Some(ws) = &self.config.workspace else {
            return Ok("no workspace configured".into());
        };
        self.git_run(&["pull", "--ff-only", "-q", "origin", &ws.branch])
            .await?;
        self.git_run(&["rev-parse", "--short", "HEAD"]).await
    }

    async fn start_gateway(&self) -> Result<(), String> {
        run(
            Command::new("systemctl").args(["start", &self.config.gateway.unit]),
            Duration::from_secs(60),
        )
        .await
        .map(|_| ())
    }

    async fn gateway_healthy(&self) -> bool {
        super::probe::probe(
            &self.config.gateway.health_url,
            super::config::ProbeMode::Healthz,
            Duration::from_secs(2),
        )
        .await
        .ok
    }

    async fn stop_gateway(&self) -> Result<(), String> {
        run(
            Command::new("systemctl").args(["stop", &self.config.gateway.unit]),
            Duration::from_secs(360),
        )
        .await
        .map(|_| ())
    }

    async fn save_workspace(&self) -> Result<Option<String>, String> {
        let Some(ws) = &self.config.workspace else {
            return Ok(None);
        };
        self.git_run(&["add", "-A"]).await?;
        let staged = self
            .git_run(&["diff", "--cached", "--quiet"])
            .await
            .is_err();
        if staged {
            self.git_run(&[
                "commit",
                "-q",
                "-m",
                "Written by the standby while it was promoted",
            ])
            .await?;
        }
        // Anything not on origin's branch: this promotion's commits.
        self.git_run(&["fetch", "-q", "origin", &ws.branch]).await?;
        let ahead = self
            .git_run(&[
                "rev-list",
                "--count",
                &format!("origin/{}..HEAD", ws.branch),
            ])
            .await?;
        if ahead.trim() == "0" {
            return Ok(None);
        }
        let branch = format!("ocfo/standby-{}", utc_stamp());
        self.git_run(&["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")])
            .await?;
        // Back to the shared history, so the next promotion's ff-only pull works.
        self.git_run(&["reset", "-q", "--hard", &format!("origin/{}", ws.branch)])
            .await?;
        Ok(Some(branch))
    }
}

/// `20261124T140312Z`, from the system clock without a date library.
pub fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86400, secs % 86400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a calendar date (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = (z - era * 146097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe as i64 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// RFC 3339 UTC time of now, for state files and notifications.
pub fn rfc3339_now() -> String {
    let s = utc_stamp();
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20416), (2025, 11, 24));
        assert_eq!(super::civil_from_days(11016), (2000, 2, 29));
    }
}
