//! What the monitor reads of the standby and does to it: pull the
//! workspace, start and stop the gateway, arm and switch its channels, save
//! what the standby wrote. Behind two traits, `Senses` (what it reads) and
//! `Actions` (what it does), so the daemon's logic is tested with fakes and
//! simulated time; `SystemActions` does both for real with systemctl, git in
//! transient units and OpenClaw's gateway protocol.

use std::future::Future;
use std::time::Duration;

use tokio::process::Command;

use super::config::MonitorConfig;
use super::conversation::Snapshot;
use super::replica::{self, read_small, Replica};
use super::requests::Hold;
use crate::child::run;
use crate::openclaw::{judge_armed, judge_channel_status, judge_channels_live, ChannelCheck};

/// What the daemon reads of the standby: its gateway, its channels, and
/// the requests left for it (deploy's hold, a drill, a switchover).
pub trait Senses: Send + Sync {
    fn gateway_active(&self) -> impl Future<Output = bool> + Send;
    /// Whether the local gateway answers its health check.
    fn gateway_healthy(&self) -> impl Future<Output = bool> + Send;
    /// Warm standby: whether OpenClaw runs (or is starting) any of the
    /// standby's channels.
    fn channels_live(&self) -> impl Future<Output = bool> + Send;
    /// Warm standby: `Ok` once OpenClaw holds usable credentials for every
    /// standby channel and runs none of them; else why not.
    fn channels_armed(&self) -> impl Future<Output = Result<(), String>> + Send;
    /// The running gateway process (PID and start time), to tell a restarted
    /// (so unarmed) gateway from the one the monitor armed.
    fn gateway_instance(&self) -> impl Future<Output = Option<String>> + Send;
    /// Warm standby: asks OpenClaw whether every switched channel started
    /// (running, or started and connecting) at or after `since_ms` (Unix ms).
    fn channels_started(
        &self,
        since_ms: u64,
    ) -> impl Future<Output = Result<ChannelCheck, String>> + Send;
    /// The gateway's memory that only a restart gives back: the anonymous
    /// memory of its unit's cgroup, in bytes (`None`: unreadable).
    fn gateway_memory(&self) -> impl Future<Output = Option<u64>> + Send;
    /// Deploy's hold, if one is in force: who holds and until when.
    fn hold(&self) -> impl Future<Output = Option<Hold>> + Send;
    /// `ocfo drill`'s lease, if a drill is on: its takeover is announced as one.
    fn drill(&self) -> impl Future<Output = Option<Hold>> + Send;
    /// Whether a planned switchover asks the standby to serve.
    fn switchover_requested(&self) -> impl Future<Output = bool> + Send;
}

/// What the daemon does to the standby: the workspace, the gateway, its
/// channels and automations, the announcements.
pub trait Actions: Senses {
    fn pull_workspace(&self) -> impl Future<Output = Result<String, String>> + Send;
    fn start_gateway(&self) -> impl Future<Output = Result<(), String>> + Send;
    fn stop_gateway(&self) -> impl Future<Output = Result<(), String>> + Send;
    /// Commits and pushes anything the standby wrote to a new branch;
    /// returns the branch, or `None` when there was nothing to keep.
    fn save_workspace(&self) -> impl Future<Output = Result<Option<String>, String>> + Send;

    /// Warm standby: starts (or stops) the armed standby's channels over
    /// OpenClaw's RPC; no config changes, so no plugin reload.
    fn switch_channels(&self, on: bool) -> impl Future<Output = Result<(), String>> + Send;
    /// Warm standby: switches its automations (cron jobs, heartbeats) on or
    /// off. A config change: OpenClaw reloads the channel plugin for it, so
    /// it comes after the channels serve (see docs/monitor.md).
    fn switch_automations(&self, on: bool) -> impl Future<Output = Result<(), String>> + Send;
    /// Warm standby: arms the running gateway: stops its channels (a manual
    /// stop, which OpenClaw keeps across reloads), hands it the channel
    /// credentials and makes it re-read its config, which reloads the
    /// channel plugin with them while the channels stay stopped.
    fn arm_channels(&self) -> impl Future<Output = Result<(), String>> + Send;
    fn restart_gateway(&self) -> impl Future<Output = Result<(), String>> + Send;

    /// The primary's newest conversation snapshot, fetched into the replica,
    /// if this node has not activated it yet; `None` also when conversations
    /// do not travel.
    fn fetch_conversation(
        &self,
    ) -> impl Future<Output = Result<Option<super::conversation::Snapshot>, String>> + Send;
    /// Before a restart that should lose nothing: waits, within `limit`,
    /// for a moment with no turn running and then closes OpenClaw's
    /// admission (`gateway.suspend.prepare`): what arrives after that waits
    /// in the channel's spool and is answered after the restart. An error
    /// says what still ran when the time was up.
    fn quiesce_gateway(&self, limit: Duration) -> impl Future<Output = Result<(), String>> + Send;
    /// Restores it beside the live database (OpenClaw's `backup git
    /// restore`), while the gateway still serves.
    fn restore_conversation(
        &self,
        snapshot: &super::conversation::Snapshot,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// With the gateway stopped: puts the restored database in place,
    /// keeping this node's own auth profiles, and records the snapshot.
    fn activate_conversation(
        &self,
        snapshot: &super::conversation::Snapshot,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// At the failback, while the standby still serves: a last snapshot of
    /// its conversation, on the hand-back branch for the primary to take
    /// (`None`: it never had one).
    fn hand_back_conversation(
        &self,
    ) -> impl Future<Output = Result<Option<super::conversation::Snapshot>, String>> + Send;
    /// Whether the primary says it took `snapshot` (its returned branch).
    fn hand_back_taken(
        &self,
        snapshot: &super::conversation::Snapshot,
    ) -> impl Future<Output = Result<bool, String>> + Send;
    /// Takes an untaken hand-back off the remote, so that the primary never
    /// restarts for it later, when nobody else serves.
    fn withdraw_hand_back(&self) -> impl Future<Output = Result<(), String>> + Send;

    /// Sends `text` to `target` on the standby's channel `channel` (OpenClaw's
    /// id) through OpenClaw's own outbound path.
    fn announce(
        &self,
        channel: &str,
        target: &str,
        text: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

pub struct SystemActions {
    pub config: MonitorConfig,
    /// The gateway token (from the monitor's environment file), for
    /// OpenClaw's gateway protocol.
    token: Option<String>,
}

/// How long the monitor waits to connect to its own gateway, and for one
/// answer: the gateway is local; a starved one answers in seconds.
const GATEWAY_CONNECT: Duration = Duration::from_secs(10);
const GATEWAY_CALL: Duration = Duration::from_secs(20);
/// How long the monitor waits for its own gateway while it says it is
/// starting (seen in the lab: the failback announcement came during the
/// catch-up's restart, and the CLI fallback could not send either).
const GATEWAY_STARTING: Duration = Duration::from_secs(90);

/// git as the gateway user reads none of that user's own git config
/// (`~/.gitconfig`, `~/.config/git/config`): the agent writes it, and its
/// `core.hooksPath`, `core.fsmonitor` or `init.templateDir` would run the
/// agent's code at every pull and commit. The system's config (root's) is
/// still read.
pub const GIT_ENV: &[(&str, &str)] = &[
    ("GIT_CONFIG_GLOBAL", "/dev/null"),
    ("GIT_TERMINAL_PROMPT", "0"),
];

/// And no hooks or file-system monitor even where the workspace's own
/// `.git/config` (also the agent's) asks for them: command-line settings
/// win over every config file. What `.git/config` can still do is listed in
/// docs/security.md.
pub const GIT_OPTIONS: &[&str] = &[
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
];

/// A command as another user in a transient systemd unit: a clean
/// environment (nothing of the monitor's, such as the webhook URL, reaches
/// git hooks the agent could have planted), and on timeout systemd kills the
/// unit's whole process tree, not just the first process.
pub(super) fn as_user(
    user: &str,
    limit: Duration,
    env: &[(&str, &str)],
    env_file: Option<&str>,
) -> Command {
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

/// git in `dir` as `user`, without that user's own git config (see
/// [`GIT_ENV`]), within `limit`.
pub(super) fn git_as(user: &str, dir: &str, limit: Duration, args: &[&str]) -> Command {
    let home = format!("/home/{user}");
    let mut env = vec![
        ("HOME", home.as_str()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ];
    env.extend_from_slice(GIT_ENV);
    let mut c = as_user(user, limit, &env, None);
    c.arg("git").args(GIT_OPTIONS).args(["-C", dir]).args(args);
    c
}

impl SystemActions {
    pub fn new(config: MonitorConfig, token: Option<String>) -> SystemActions {
        SystemActions { config, token }
    }

    fn replica(&self) -> Option<Replica<'_>> {
        Some(Replica {
            cli: &self.config.openclaw,
            conversation: self.config.conversation.as_ref()?,
        })
    }

    /// The standby's own gateway, as `ws://host:port` (its health URL's).
    fn gateway_url(&self) -> Result<String, String> {
        let u = super::probe::Url::parse(&self.config.gateway.health_url)?;
        let host = if u.host.contains(':') {
            format!("[{}]", u.host)
        } else {
            u.host
        };
        Ok(format!("ws://{host}:{}", u.port))
    }

    /// A connection to the standby's own gateway with the monitor's device
    /// identity. The gateway listens on its private address, which OpenClaw
    /// does not count as local, so the device is paired once: the first
    /// connect is refused with a pairing request, which the monitor approves
    /// with the `openclaw` CLI on the gateway's own host, then it connects
    /// again.
    async fn gateway(&self) -> Result<crate::gateway::GatewayClient, String> {
        use crate::gateway::{
            connect_patiently, ConnectOptions, DeviceIdentity, GatewayClient, GatewayError,
        };
        let token = self
            .token
            .clone()
            .ok_or("the gateway token is not in the monitor's environment")?;
        let device =
            DeviceIdentity::load_or_create(std::path::Path::new(&self.config.openclaw.device_key))
                .map_err(|e| e.to_string())?;
        let mut opts = ConnectOptions::new(self.gateway_url()?, token);
        opts.device = Some(std::sync::Arc::new(device));
        opts.client_version = format!("ocfo-monitor {}", env!("CARGO_PKG_VERSION"));
        opts.connect_timeout = GATEWAY_CONNECT;
        opts.call_timeout = GATEWAY_CALL;
        let connect = || connect_patiently(GATEWAY_STARTING, || GatewayClient::connect(&opts));
        match connect().await {
            Err(GatewayError::NotPaired {
                request_id: Some(id),
                device_id,
            }) => {
                tracing::info!(device = %device_id, "pairing the monitor's device with the standby's gateway");
                self.openclaw(&["devices", "approve", &id], Duration::from_secs(30))
                    .await
                    .map_err(|e| format!("approving the monitor's device failed: {e}"))?;
                connect().await.map_err(|e| e.to_string())
            }
            other => other.map_err(|e| e.to_string()),
        }
    }

    /// One call to the standby's gateway over its protocol. The `openclaw`
    /// CLI (a Node start: seconds) only when no connection can be had,
    /// saying so; a call that failed is not repeated another way.
    async fn rpc(&self, method: &str, params: serde_json::Value) -> Result<String, String> {
        let mut client = match self.gateway().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("cannot reach the standby's gateway over OpenClaw's gateway protocol ({e}); {method} through the openclaw CLI");
                let p = params.to_string();
                let p = (params != serde_json::json!({})).then_some(p.as_str());
                return self.openclaw_call(method, p).await;
            }
        };
        let answer = client.call(method, params).await;
        client.close().await;
        answer.map(|v| v.to_string()).map_err(|e| e.to_string())
    }

    /// git in the workspace as the gateway's user, without its own git
    /// config (see [`GIT_ENV`]).
    fn git(&self, args: &[&str]) -> Option<(Command, Duration)> {
        let ws = self.config.workspace.as_ref()?;
        Some((
            git_as(&ws.user, &ws.path, ws.git_timeout, args),
            ws.git_timeout,
        ))
    }

    async fn git_run(&self, args: &[&str]) -> Result<String, String> {
        match self.git(args) {
            // systemd's RuntimeMaxSec ends it; this only bounds our wait.
            Some((mut c, t)) => run(&mut c, t + Duration::from_secs(5)).await,
            None => Err("no workspace configured".into()),
        }
    }

    /// The gateway's unit is inactive or failed (not merely restarting).
    async fn gateway_down(&self) -> bool {
        let state = run(
            Command::new("systemctl").args([
                "show",
                "-p",
                "ActiveState",
                "--value",
                &self.config.gateway.unit,
            ]),
            Duration::from_secs(10),
        )
        .await;
        matches!(state.as_deref(), Ok("inactive" | "failed"))
    }

    fn switches(&self) -> Result<&super::config::SwitchConfig, String> {
        self.config
            .switches
            .as_ref()
            .ok_or_else(|| "this standby is cold: it has no channel switches".to_string())
    }

    fn switch_path(&self) -> Result<String, String> {
        Ok(format!("{}/standby.json", self.switches()?.dir))
    }

    /// Whether the switch file leaves `enabled` implicit (see `switch_content`).
    fn nudged(&self) -> bool {
        let Some(v) = self
            .switch_path()
            .ok()
            .and_then(|p| read_small(&p))
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        else {
            return false;
        };
        self.switches().is_ok_and(|sw| {
            sw.switched_channels()
                .iter()
                .any(|ch| v["channels"][ch].get("enabled").is_none())
        })
    }

    fn write_switch(&self, cron_on: bool, nudge: bool) -> Result<(), String> {
        let sw = self.switches()?;
        let path = self.switch_path()?;
        // One file, one atomic rename: OpenClaw sees one change.
        crate::fsutil::write_atomic(
            std::path::Path::new(&path),
            super::config::switch_content(&sw.switched_channels(), cron_on, nudge).as_bytes(),
            0o644,
        )
        .map_err(|e| format!("cannot write {path}: {e}"))
    }

    /// The channel credentials deploy left for the monitor (root's, 0600).
    fn secrets_source(&self, sw: &super::config::SwitchConfig) -> Result<Vec<u8>, String> {
        crate::fsutil::read_regular_capped(std::path::Path::new(&sw.secrets_source), 1024 * 1024)
            .map_err(|e| format!("cannot read {}: {e}", sw.secrets_source))
    }

    /// Writes a credential where the gateway reads it: a file of the gateway
    /// user's, 0600, in a folder only root writes (OpenClaw's file provider
    /// refuses anything looser); its owner and mode are set before any byte.
    fn hand_over(&self, path: &str, bytes: &[u8]) -> Result<(), String> {
        let user = &self.config.openclaw.user;
        let (uid, gid) = crate::fsutil::user_ids(user)
            .ok_or_else(|| format!("no user {user} in /etc/passwd"))?;
        let file = std::path::Path::new(path);
        if let Some(dir) = file.parent() {
            crate::fsutil::private_dir(dir, gid)
                .map_err(|e| format!("cannot prepare {}: {e}", dir.display()))?;
        }
        crate::fsutil::write_atomic_owned(file, bytes, 0o600, uid, gid)
            .map_err(|e| format!("cannot write {path}: {e}"))
    }

    /// Arming's credentials: the SecretRef file, for the switched channels.
    fn hand_over_secrets(&self, sw: &super::config::SwitchConfig) -> Result<(), String> {
        if sw.secrets_source.is_empty() || sw.secrets_file.is_empty() {
            return Ok(());
        }
        let bytes = self.secrets_source(sw)?;
        self.hand_over(&sw.secrets_file, &bytes)
    }

    /// Promotion's credentials: each token-file channel's token, plain.
    fn hand_over_tokens(&self, sw: &super::config::SwitchConfig) -> Result<(), String> {
        if sw.token_files.is_empty() {
            return Ok(());
        }
        let source: serde_json::Value = serde_json::from_slice(&self.secrets_source(sw)?)
            .map_err(|e| format!("{} is not JSON: {e}", sw.secrets_source))?;
        for t in &sw.token_files {
            let token = source[&t.key]
                .as_str()
                .ok_or_else(|| format!("{} has no credential {}", sw.secrets_source, t.key))?;
            self.hand_over(&t.path, token.as_bytes())?;
        }
        Ok(())
    }

    /// A standby that stops serving takes its tokens back.
    fn take_back_tokens(&self, sw: &super::config::SwitchConfig) -> Result<(), String> {
        for t in &sw.token_files {
            match std::fs::remove_file(&t.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot remove {}: {e}", t.path)),
            }
        }
        Ok(())
    }

    /// `openclaw ARGS` as the gateway user, with the gateway's own
    /// environment file (its token), within `limit`.
    async fn openclaw(&self, args: &[&str], limit: Duration) -> Result<String, String> {
        openclaw_as(&self.config.openclaw, args, limit, false).await
    }

    /// `openclaw gateway call METHOD [--params JSON] --json`.
    async fn openclaw_call(&self, method: &str, params: Option<&str>) -> Result<String, String> {
        let mut args = vec!["gateway", "call", method];
        if let Some(p) = params {
            args.extend(["--params", p]);
        }
        args.push("--json");
        self.openclaw(&args, Duration::from_secs(20)).await
    }
}

/// A command as the gateway user with what OpenClaw's CLI needs: its home,
/// config, include roots and the gateway's environment file (its token).
pub(super) fn with_openclaw_env(cli: &super::config::OpenClawCli, limit: Duration) -> Command {
    as_user(
        &cli.user,
        limit,
        &[
            ("HOME", cli.home.as_str()),
            ("PATH", cli.path.as_str()),
            ("OPENCLAW_CONFIG_PATH", cli.config_path.as_str()),
            ("OPENCLAW_INCLUDE_ROOTS", cli.include_roots.as_str()),
            ("NODE_EXTRA_CA_CERTS", "/etc/ssl/certs/ca-certificates.crt"),
        ],
        Some(&cli.gateway_env),
    )
}

/// `openclaw ARGS` as the gateway user, with the gateway's own environment
/// file (its token), within `limit`; `background`: at the lowest CPU
/// priority, so that it never slows the turns the gateway is answering
/// meanwhile.
pub(super) async fn openclaw_as(
    cli: &super::config::OpenClawCli,
    args: &[&str],
    limit: Duration,
    background: bool,
) -> Result<String, String> {
    let mut c = with_openclaw_env(cli, limit);
    if background {
        c.args(["nice", "-n", "19"]);
    }
    c.arg(&cli.bin).args(args);
    run(&mut c, limit + Duration::from_secs(5)).await
}

/// The summed `RssAnon` of the processes in `cgroup` (the unit's, from
/// whichever hierarchy lists them), at most 256 of them, read as `user`:
/// the monitor's own `/proc` hides other users' processes
/// (`ProtectProc=invisible`). Shared anonymous pages of forked processes
/// count once per process: an upper bound.
async fn processes_anon_bytes(cgroup: &str, user: &str) -> Option<u64> {
    let procs = ["", "/unified", "/systemd"]
        .iter()
        .find_map(|h| read_small(&format!("/sys/fs/cgroup{h}{cgroup}/cgroup.procs")))?;
    let pids: Vec<String> = procs
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .filter(|p| *p > 0)
        .take(256)
        .map(|p| p.to_string())
        .collect();
    if pids.is_empty() {
        return None;
    }
    let limit = Duration::from_secs(10);
    let mut c = as_user(user, limit, &[], None);
    c.args([
        "sh",
        "-c",
        "for p in \"$@\"; do grep -h '^RssAnon:' \"/proc/$p/status\" 2>/dev/null; done; true",
        "sh",
    ])
    .args(&pids);
    let out = run(&mut c, limit + Duration::from_secs(5)).await.ok()?;
    super::arming::rss_anon_sum(&out)
}

impl Senses for SystemActions {
    async fn gateway_active(&self) -> bool {
        Command::new("systemctl")
            .args(["is-active", "--quiet", &self.config.gateway.unit])
            .kill_on_drop(true)
            .status()
            .await
            .is_ok_and(|s| s.success())
    }

    async fn gateway_healthy(&self) -> bool {
        // Short: it runs beside every probe of the primary; callers that
        // wait for the gateway poll it.
        super::probe::probe(
            &self.config.gateway.health_url,
            super::config::ProbeMode::Healthz,
            Duration::from_secs(1),
        )
        .await
        .ok
    }

    async fn channels_live(&self) -> bool {
        let Ok(sw) = self.switches() else {
            return false;
        };
        match self.rpc("channels.status", serde_json::json!({})).await {
            Ok(out) => judge_channels_live(&out, &sw.channels),
            Err(_) => false,
        }
    }

    async fn channels_armed(&self) -> Result<(), String> {
        let sw = self.switches()?;
        let out = self.rpc("channels.status", serde_json::json!({})).await?;
        let token_files: Vec<String> = sw.token_files.iter().map(|t| t.channel.clone()).collect();
        judge_armed(&out, &sw.switched_channels(), &token_files)
    }

    async fn gateway_instance(&self) -> Option<String> {
        let out = run(
            Command::new("systemctl").args([
                "show",
                "--property=MainPID,ExecMainStartTimestampMonotonic",
                "--value",
                &self.config.gateway.unit,
            ]),
            Duration::from_secs(10),
        )
        .await
        .ok()?;
        let id = out.split_whitespace().collect::<Vec<_>>().join("@");
        (!id.is_empty() && !id.starts_with("0@")).then_some(id)
    }

    async fn channels_started(&self, since_ms: u64) -> Result<ChannelCheck, String> {
        let sw = self.switches()?;
        let out = self.rpc("channels.status", serde_json::json!({})).await?;
        Ok(judge_channel_status(&out, &sw.channels, since_ms))
    }

    async fn gateway_memory(&self) -> Option<u64> {
        let cgroup = run(
            Command::new("systemctl").args([
                "show",
                "--property=ControlGroup",
                "--value",
                &self.config.gateway.unit,
            ]),
            Duration::from_secs(10),
        )
        .await
        .ok()?;
        let cgroup = cgroup.trim();
        if !cgroup.starts_with('/') || cgroup.contains("..") {
            return None;
        }
        // cgroup v2, else v1's memory hierarchy, else (no memory
        // controller for the unit) its processes' own anonymous memory.
        let from_memory_controller = [
            format!("/sys/fs/cgroup{cgroup}/memory.stat"),
            format!("/sys/fs/cgroup/memory{cgroup}/memory.stat"),
        ]
        .iter()
        .find_map(|p| super::arming::anon_bytes(&read_small(p)?));
        match from_memory_controller {
            Some(b) => Some(b),
            None => processes_anon_bytes(cgroup, &self.config.openclaw.user).await,
        }
    }

    async fn hold(&self) -> Option<Hold> {
        Hold::parse_active(
            &read_small(&self.config.hold_file)?,
            crate::clock::unix_ms() / 1000,
        )
    }

    async fn switchover_requested(&self) -> bool {
        std::path::Path::new(&self.config.switchover_file).is_file()
    }

    async fn drill(&self) -> Option<Hold> {
        Hold::parse_active(
            &read_small(&self.config.drill_file)?,
            crate::clock::unix_ms() / 1000,
        )
    }
}

impl Actions for SystemActions {
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
        let branch = format!("ocfo/standby-{}", crate::clock::utc_stamp());
        self.git_run(&["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")])
            .await?;
        // Back to the shared history, so the next promotion's ff-only pull works.
        self.git_run(&["reset", "-q", "--hard", &format!("origin/{}", ws.branch)])
            .await?;
        Ok(Some(branch))
    }

    async fn switch_channels(&self, on: bool) -> Result<(), String> {
        let sw = self.switches()?;
        // Token-file channels read their token when they start: it is there
        // just before, and gone right after they stop.
        if on {
            self.hand_over_tokens(sw)?;
        }
        let method = if on {
            "channels.start"
        } else {
            "channels.stop"
        };
        for ch in &sw.channels {
            if let Err(e) = self.rpc(method, serde_json::json!({ "channel": ch })).await {
                // A gateway that is down serves no channel: stepping down
                // must not wait for it (it would retry every probe, and the
                // standby would never stop counting as serving).
                if !on && self.gateway_down().await {
                    tracing::warn!(channel = %ch, "the gateway is not running, so neither is its channel: counted as stopped ({e})");
                    continue;
                }
                return Err(e);
            }
        }
        if !on {
            self.take_back_tokens(sw)?;
        }
        Ok(())
    }

    async fn switch_automations(&self, on: bool) -> Result<(), String> {
        let sw = self.switches()?;
        self.write_switch(on && sw.cron_when_promoted, self.nudged())
    }

    async fn arm_channels(&self) -> Result<(), String> {
        let sw = self.switches()?;
        // A watching standby holds no token file.
        self.take_back_tokens(sw)?;
        for ch in &sw.channels {
            self.rpc("channels.stop", serde_json::json!({ "channel": ch }))
                .await?;
        }
        if sw.switched_channels().is_empty() {
            return Ok(());
        }
        self.hand_over_secrets(sw)?;
        // The same config, written the other way: OpenClaw re-reads it, and
        // the credentials file with it.
        self.write_switch(false, !self.nudged())
    }

    async fn restart_gateway(&self) -> Result<(), String> {
        run(
            Command::new("systemctl").args(["restart", &self.config.gateway.unit]),
            Duration::from_secs(120),
        )
        .await
        .map(|_| ())
    }

    async fn fetch_conversation(&self) -> Result<Option<Snapshot>, String> {
        match self.replica() {
            Some(r) => r.fetch().await,
            None => Ok(None),
        }
    }

    async fn quiesce_gateway(&self, limit: Duration) -> Result<(), String> {
        replica::quiesce(limit, |params| self.rpc("gateway.suspend.prepare", params)).await
    }

    async fn restore_conversation(&self, snapshot: &Snapshot) -> Result<(), String> {
        self.replica()
            .ok_or("conversations do not travel")?
            .restore(snapshot)
            .await
    }

    async fn activate_conversation(&self, snapshot: &Snapshot) -> Result<(), String> {
        self.replica()
            .ok_or("conversations do not travel")?
            .activate(snapshot)
            .await
    }

    async fn hand_back_conversation(&self) -> Result<Option<Snapshot>, String> {
        let r = self.replica().ok_or("conversations do not travel")?;
        let script = r
            .conversation
            .push_script
            .as_deref()
            .ok_or("the monitor's config names no conversation push script")?;
        r.hand_back(script).await
    }

    async fn hand_back_taken(&self, snapshot: &Snapshot) -> Result<bool, String> {
        let r = self.replica().ok_or("conversations do not travel")?;
        let heads = r
            .remote_heads(&[crate::layout::CONVERSATION_RETURNED_BRANCH])
            .await?;
        Ok(heads.first().cloned().flatten().as_deref() == Some(snapshot.commit.as_str()))
    }

    async fn withdraw_hand_back(&self) -> Result<(), String> {
        let r = self.replica().ok_or("conversations do not travel")?;
        r.set_remote_branch(crate::layout::CONVERSATION_HANDBACK_BRANCH, None)
            .await
    }

    async fn announce(&self, channel: &str, target: &str, text: &str) -> Result<(), String> {
        // OpenClaw's `send` (what its channels send with), keyed so that a
        // retry cannot send twice.
        let key = format!(
            "ocfo-announce-{}-{}",
            crate::clock::unix_ms(),
            rand::random::<u32>()
        );
        let params = serde_json::json!({
            "to": target, "message": text, "channel": channel, "idempotencyKey": key,
        });
        let mut client = match self.gateway().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("cannot reach the standby's gateway over OpenClaw's gateway protocol ({e}); sending with `openclaw message send`");
                let limit = self
                    .config
                    .announce
                    .as_ref()
                    .map_or(Duration::from_secs(30), |a| a.timeout);
                return self
                    .openclaw(
                        &[
                            "message",
                            "send",
                            "--channel",
                            channel,
                            "--target",
                            target,
                            "--message",
                            text,
                            "--json",
                        ],
                        limit,
                    )
                    .await
                    .map(|_| ());
            }
        };
        let answer = client.call("send", params).await;
        client.close().await;
        answer.map(|_| ()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real git in a temp HOME where the "agent" planted a
    /// `~/.gitconfig` with a hooks folder and an fsmonitor, and a
    /// pre-commit hook in the repository itself, each writing a marker.
    /// `hardened`: with [`GIT_ENV`] and [`GIT_OPTIONS`], as the monitor
    /// runs git. Returns the markers written.
    fn planted_git(hardened: bool) -> Vec<String> {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let marks = tmp.path().join("marks");
        let hooks = home.join("hooks");
        std::fs::create_dir_all(&hooks).unwrap();
        std::fs::create_dir_all(&marks).unwrap();
        let script = |path: &std::path::Path, name: &str| {
            std::fs::write(
                path,
                format!("#!/bin/sh\ntouch '{}/{name}'\n", marks.display()),
            )
            .unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        script(&hooks.join("pre-commit"), "global-hook");
        script(&hooks.join("post-commit"), "global-hook");
        script(&home.join("fsmonitor"), "fsmonitor");
        std::fs::write(
            home.join(".gitconfig"),
            format!(
                "[core]\n\thooksPath = {}\n\tfsmonitor = {}\n[user]\n\tname = agent\n\temail = a@b\n",
                hooks.display(),
                home.join("fsmonitor").display()
            ),
        )
        .unwrap();
        let ws = tmp.path().join("ws");
        let git = |args: &[&str], with_identity: bool| {
            let mut c = std::process::Command::new("git");
            c.env_clear()
                .env("HOME", &home)
                .env("PATH", "/usr/local/bin:/usr/bin:/bin");
            if hardened {
                c.envs(GIT_ENV.iter().copied()).args(GIT_OPTIONS);
            }
            if with_identity {
                c.args(["-c", "user.name=ocfo", "-c", "user.email=ocfo@localhost"]);
            }
            let out = c.arg("-C").arg(&ws).args(args).output().unwrap();
            assert!(
                out.status.success(),
                "git {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        std::fs::create_dir_all(&ws).unwrap();
        git(&["init", "-q"], false);
        // A hook in the repository's own hooks folder too.
        script(&ws.join(".git/hooks/pre-commit"), "repo-hook");
        std::fs::write(ws.join("note.md"), "hello\n").unwrap();
        git(&["add", "-A"], false);
        git(&["status", "--porcelain"], false);
        git(&["commit", "-q", "-m", "save"], true);
        let mut found: Vec<String> = std::fs::read_dir(&marks)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        found.sort();
        found
    }

    #[test]
    fn the_monitors_git_runs_no_hook_or_fsmonitor_the_agent_planted() {
        // The same git without the monitor's settings runs them: the
        // experiment can fail.
        assert_eq!(planted_git(false), ["fsmonitor", "global-hook"]);
        assert!(planted_git(true).is_empty());
    }
}
