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

    /// Warm standby: turns the standby's channels (and automations) on or off
    /// by rewriting its switch files; OpenClaw reloads them live.
    fn switch_channels(&self, on: bool) -> impl Future<Output = Result<(), String>> + Send;
    /// Warm standby: whether the switch files say the channels are on.
    fn channels_switched_on(&self) -> impl Future<Output = bool> + Send;
    /// Warm standby: asks OpenClaw whether every switched channel started
    /// (running, or started and connecting) at or after `since_ms` (Unix ms).
    fn channels_started(
        &self,
        since_ms: u64,
    ) -> impl Future<Output = Result<ChannelCheck, String>> + Send;
    fn restart_gateway(&self) -> impl Future<Output = Result<(), String>> + Send;

    /// Deploy's hold, if one is in force: who holds and until when.
    fn hold(&self) -> impl Future<Output = Option<Hold>> + Send;
    /// Whether a planned switchover asks the standby to serve.
    fn switchover_requested(&self) -> impl Future<Output = bool> + Send;
}

/// What OpenClaw said about the switched channels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelCheck {
    pub started: Vec<String>,
    /// Not started, with OpenClaw's reason (`blocked`, last error, absent).
    pub not_started: Vec<(String, String)>,
    /// The latest start time OpenClaw reports for a started channel (Unix ms).
    pub started_at_ms: Option<u64>,
}

impl ChannelCheck {
    pub fn all_started(&self) -> bool {
        self.not_started.is_empty() && !self.started.is_empty()
    }
}

/// A deploy's hold on the monitor (`/var/lib/ocfo/hold.json`): a lease,
/// written with the standby's own clock so no clock skew can stretch it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hold {
    /// Unix seconds at which the hold ends by itself.
    pub until: u64,
    pub by: String,
    pub reason: String,
}

impl Hold {
    /// The hold in `text`, if it is well-formed and not expired at `now`.
    pub fn parse_active(text: &str, now: u64) -> Option<Hold> {
        let h: Hold = serde_json::from_str(text).ok()?;
        (h.until > now).then_some(h)
    }
}

/// Judges `openclaw gateway call channels.status --json` for `channels`:
/// started means enabled and running, or (re)started since `since_ms` and not
/// blocked (a channel whose plugin failed to load is `blocked`).
pub fn judge_channel_status(json: &str, channels: &[String], since_ms: u64) -> ChannelCheck {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let mut check = ChannelCheck::default();
    for ch in channels {
        let accounts = v
            .get("channelAccounts")
            .and_then(|a| a.get(ch))
            .and_then(|a| a.as_array())
            .cloned()
            .unwrap_or_default();
        let mut reason = "OpenClaw does not list it".to_string();
        let mut started = false;
        for a in &accounts {
            let enabled = a.get("enabled").and_then(|e| e.as_bool()).unwrap_or(false);
            let running = a.get("running").and_then(|e| e.as_bool()).unwrap_or(false);
            let lifecycle = a.get("lifecycle").and_then(|e| e.as_str()).unwrap_or("");
            let last_start = a.get("lastStartAt").and_then(|e| e.as_u64());
            let error = a.get("lastError").and_then(|e| e.as_str()).unwrap_or("");
            if !enabled {
                reason = "not enabled (the switch was not applied)".into();
            } else if lifecycle == "blocked" {
                reason = format!("blocked: {}", short(error));
            } else if running || last_start.is_some_and(|t| t + 1000 >= since_ms) {
                started = true;
                if let Some(t) = last_start {
                    check.started_at_ms = Some(check.started_at_ms.unwrap_or(0).max(t));
                }
            } else {
                reason = format!(
                    "not started yet{}",
                    if error.is_empty() {
                        String::new()
                    } else {
                        format!(" (last error: {})", short(error))
                    }
                );
            }
        }
        if started {
            check.started.push(ch.clone());
        } else {
            check.not_started.push((ch.clone(), reason));
        }
    }
    check
}

fn short(s: &str) -> String {
    s.chars().take(200).collect()
}

pub struct SystemActions {
    pub config: MonitorConfig,
}

/// The largest output kept from a child process.
const MAX_OUTPUT: usize = 256 * 1024;

async fn run(cmd: &mut Command, timeout: Duration) -> Result<String, String> {
    let what = format!("{:?}", cmd.as_std());
    cmd.kill_on_drop(true).stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| format!("{what} did not finish within {}s", timeout.as_secs()))?
        .map_err(|e| format!("{what}: {e}"))?;
    let text = |b: &[u8]| {
        String::from_utf8_lossy(&b[..b.len().min(MAX_OUTPUT)])
            .trim()
            .to_string()
    };
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(format!("{what} failed: {}", text(&out.stderr)))
    }
}

/// A command as another user in a transient systemd unit: a clean
/// environment (nothing of the monitor's, such as the webhook URL, reaches
/// git hooks the agent could have planted), and on timeout systemd kills the
/// unit's whole process tree, not just the first process.
fn as_user(user: &str, limit: Duration, env: &[(&str, &str)], env_file: Option<&str>) -> Command {
    let mut c = Command::new("systemd-run");
    c.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .args(["--quiet", "--pipe", "--wait", "--collect"])
        .arg(format!("--property=User={user}"))
        .arg(format!(
            "--property=RuntimeMaxSec={}",
            limit.as_secs().max(1)
        ))
        .arg("--property=KillMode=control-group");
    if let Some(f) = env_file {
        c.arg(format!("--property=EnvironmentFile={f}"));
    }
    for (k, v) in env {
        c.arg(format!("--setenv={k}={v}"));
    }
    c.arg("--");
    c
}

impl SystemActions {
    /// git in the workspace as the gateway's user.
    fn git(&self, args: &[&str]) -> Option<(Command, Duration)> {
        let ws = self.config.workspace.as_ref()?;
        let home = format!("/home/{}", ws.user);
        let mut c = as_user(
            &ws.user,
            ws.git_timeout,
            &[
                ("HOME", home.as_str()),
                ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ],
            None,
        );
        c.args(["git", "-C", &ws.path]).args(args);
        Some((c, ws.git_timeout))
    }

    async fn git_run(&self, args: &[&str]) -> Result<String, String> {
        match self.git(args) {
            // systemd's RuntimeMaxSec ends it; this only bounds our wait.
            Some((mut c, t)) => run(&mut c, t + Duration::from_secs(5)).await,
            None => Err("no workspace configured".into()),
        }
    }

    fn switches(&self) -> Result<&super::config::SwitchConfig, String> {
        self.config
            .switches
            .as_ref()
            .ok_or_else(|| "this standby is cold: it has no channel switches".to_string())
    }
}

/// Reads a small root-owned file; anything odd (missing, huge) is `None`.
fn read_small(path: &str) -> Option<String> {
    use std::io::Read;
    let f = std::fs::File::open(path).ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut s = String::new();
    f.take(64 * 1024).read_to_string(&mut s).ok()?;
    Some(s)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Actions for SystemActions {
    async fn gateway_active(&self) -> bool {
        Command::new("systemctl")
            .args(["is-active", "--quiet", &self.config.gateway.unit])
            .kill_on_drop(true)
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
            Duration::from_secs(5),
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

    async fn switch_channels(&self, on: bool) -> Result<(), String> {
        let sw = self.switches()?;
        let path = format!("{}/standby.json", sw.dir);
        // One file, one atomic rename: OpenClaw sees one change, and never a
        // moment with automations on and the channels off.
        crate::fsutil::write_atomic(
            std::path::Path::new(&path),
            crate::render::openclaw_config::switch_content(&sw.channels, on, sw.cron_when_promoted)
                .as_bytes(),
            0o644,
        )
        .map_err(|e| format!("cannot write {path}: {e}"))
    }

    async fn channels_switched_on(&self) -> bool {
        let Ok(sw) = self.switches() else {
            return false;
        };
        let Some(v) = read_small(&format!("{}/standby.json", sw.dir))
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        else {
            return false;
        };
        sw.channels
            .iter()
            .any(|ch| v["channels"][ch]["enabled"].as_bool() == Some(true))
    }

    async fn channels_started(&self, since_ms: u64) -> Result<ChannelCheck, String> {
        let sw = self.switches()?;
        let user = self
            .config
            .workspace
            .as_ref()
            .map_or("openclaw", |w| w.user.as_str());
        let limit = Duration::from_secs(20);
        let mut c = as_user(
            user,
            limit,
            &[
                ("HOME", sw.home.as_str()),
                ("PATH", sw.path.as_str()),
                ("OPENCLAW_CONFIG_PATH", sw.config_path.as_str()),
                ("OPENCLAW_INCLUDE_ROOTS", sw.dir.as_str()),
                ("NODE_EXTRA_CA_CERTS", "/etc/ssl/certs/ca-certificates.crt"),
            ],
            Some(&sw.gateway_env),
        );
        c.args([
            sw.openclaw_bin.as_str(),
            "gateway",
            "call",
            "channels.status",
            "--json",
        ]);
        let out = run(&mut c, limit + Duration::from_secs(5)).await?;
        Ok(judge_channel_status(&out, &sw.channels, since_ms))
    }

    async fn restart_gateway(&self) -> Result<(), String> {
        run(
            Command::new("systemctl").args(["restart", &self.config.gateway.unit]),
            Duration::from_secs(120),
        )
        .await
        .map(|_| ())
    }

    async fn hold(&self) -> Option<Hold> {
        Hold::parse_active(&read_small(&self.config.hold_file)?, unix_now())
    }

    async fn switchover_requested(&self) -> bool {
        std::path::Path::new(&self.config.switchover_file).is_file()
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
    use super::*;

    /// `channels.status` of OpenClaw 2026.9.6 right after a live switch-on
    /// with a token that cannot connect (the lab): started and reconnecting.
    const CONNECTING: &str = r#"{"channelAccounts":{"discord":[{"accountId":"default","enabled":true,"lastStartAt":1795586986043,"lastStopAt":1795586986071,"restartPending":true,"reconnectAttempts":2,"lifecycle":"recovering","configured":true,"running":false,"connected":false,"lastError":"Failed to resolve Discord application id: fetch failed"}]}}"#;

    #[test]
    fn started_and_connecting_is_started() {
        let ch = ["discord".to_string()];
        let c = judge_channel_status(CONNECTING, &ch, 1795586980000);
        assert!(c.all_started(), "{c:?}");
        assert_eq!(c.started_at_ms, Some(1795586986043));
        // A start from before the switch is not this promotion's.
        let c = judge_channel_status(CONNECTING, &ch, 1795587000000);
        assert!(!c.all_started());
    }

    #[test]
    fn a_blocked_or_missing_or_disabled_channel_did_not_start() {
        let ch = ["discord".to_string()];
        let blocked = r#"{"channelAccounts":{"discord":[{"accountId":"default","enabled":true,"running":false,"lifecycle":"blocked","lastError":"plugin failed to load"}]}}"#;
        let c = judge_channel_status(blocked, &ch, 0);
        assert!(!c.all_started());
        assert!(c.not_started[0].1.contains("blocked"), "{c:?}");
        let c = judge_channel_status(r#"{"channelAccounts":{}}"#, &ch, 0);
        assert!(c.not_started[0].1.contains("does not list"));
        let off = r#"{"channelAccounts":{"discord":[{"enabled":false,"running":false}]}}"#;
        assert!(judge_channel_status(off, &ch, 0).not_started[0]
            .1
            .contains("not enabled"));
        assert!(!judge_channel_status("not json", &ch, 0).all_started());
    }

    #[test]
    fn holds_expire() {
        let h = r#"{"until": 100, "by": "deploy", "reason": "restart"}"#;
        assert!(Hold::parse_active(h, 99).is_some());
        assert!(Hold::parse_active(h, 100).is_none());
        assert!(Hold::parse_active("garbage", 0).is_none());
    }

    #[test]
    fn dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20416), (2025, 11, 24));
        assert_eq!(super::civil_from_days(11016), (2000, 2, 29));
    }
}
