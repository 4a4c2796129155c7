//! The laptop's one client for the standby's monitor: everything `deploy`'s
//! hold, `switchover`, `drill` and `status` ask of it (its state, a hold, a
//! drill's mark, a switchover and its end) and the primary's readiness they
//! wait for, as fixed scripts whose values are positional arguments, and one
//! bounded wait ([`poll`]) that every polling loop uses. The files it writes
//! are the ones the monitor reads (`monitor::requests`).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::engine::{CmdOutput, Host, HostError};
use crate::inventory::{Inventory, Role};
use crate::layout::{
    DRILL_FILE, GATEWAY_ENV_FILE, GATEWAY_UNIT, HOLD_FILE, MONITOR_STATE_DIR, MONITOR_STATE_FILE,
    SWITCHOVER_FILE,
};
use crate::monitor::machine::StandbyRole;
use crate::monitor::MonitorState;
use crate::shell::Script;

/// How long the end of a run (a deploy's release, `switchover --back`)
/// waits for the primary to be ready.
pub const READY_WAIT: Duration = Duration::from_secs(150);

/// $1 the file.
const READ: &str = r#"cat -- "$1" 2>/dev/null || true"#;

/// $1 the file.
const REMOVE: &str = r#"rm -f -- "$1""#;

/// $1 the monitor's state folder, $2 the lease in seconds, $3 the rest of
/// the lease as a JSON object (`{"by": …, "reason": …}`), $4 the file. The
/// expiry is computed with the standby's own clock; the values are printf's
/// arguments, never its format.
const LEASE: &str = r#"set -e
d=$1
[ ! -L "$d" ] || { echo "$d is a symlink" >&2; exit 1; }
mkdir -p -- "$d"
u=$(( $(date +%s) + $2 ))
printf '{"until": %s, %s\n' "$u" "${3#?}" > "$d/.lease.tmp"
mv -f -- "$d/.lease.tmp" "$4""#;

/// $1 the monitor's state folder, $2 the requester as a JSON string, $3 the
/// request file.
const REQUEST: &str = r#"set -e
d=$1
[ ! -L "$d" ] || { echo "$d is a symlink" >&2; exit 1; }
mkdir -p -- "$d"
printf '{"by": %s, "since": "%s"}\n' "$2" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$d/.switchover.tmp"
mv -f -- "$d/.switchover.tmp" "$3""#;

/// $1 the standby's own `/healthz`, $2 the primary's (over the private
/// network), $3 the gateway's unit, $4 the monitor's state file. The
/// answers are judged here (`openclaw::healthz_ok`), not on the host.
const OBSERVE: &str = r#"echo "own=$(curl -s -m 1 -- "$1" 2>/dev/null | head -c 4000 | tr -d '\n')"
echo "primary=$(curl -s -m 1 -- "$2" 2>/dev/null | head -c 4000 | tr -d '\n')"
echo "unit=$(systemctl is-active -- "$3")"
echo --state--
cat -- "$4" 2>/dev/null || true"#;

/// $1 the gateway's environment file, $2 the URL. The file is the gateway
/// user's environment, which `openclaw.env` fills: root never sources it
/// (a `PATH` or `http_proxy` in it would choose root's `curl` or send the
/// token to a proxy). Only the token's line is read, as ocfo writes it
/// (`secrets::env_file`: `NAME="value"` with `\"`, `\\`, `\$` and `` \` ``
/// escaped), and every tool is called by its path with an empty environment.
const READYZ: &str = r#"tok=$(/bin/sed -n '/^OCFO_GATEWAY_TOKEN=".*"$/{s/^OCFO_GATEWAY_TOKEN="//;s/"$//;s/\\\(.\)/\1/g;p;q;}' "$1")
printf 'Authorization: Bearer %s\n' "$tok" | /usr/bin/env -i /usr/bin/curl -q -s -m 2 --noproxy '*' -H @- -- "$2" 2>/dev/null | /usr/bin/head -c 4000"#;

/// $1 the gateway's unit.
const STOP_GATEWAY: &str = r#"systemctl stop -- "$1""#;

/// $1 the gateway's unit.
const START_GATEWAY: &str =
    r#"systemctl enable --now -- "$1" >/dev/null 2>&1 || systemctl start -- "$1""#;

/// Runs `script` and fails unless it exits 0, naming it by
/// [`Script::describe`] (not its quoted arguments' first line).
pub async fn check<H: Host>(host: &H, script: &Script) -> Result<CmdOutput, String> {
    let out = host
        .run(&script.render(), None)
        .await
        .map_err(|e| e.to_string())?;
    if out.success() {
        Ok(out)
    } else {
        Err(HostError::command(host.name(), &script.describe(), &out).to_string())
    }
}

/// A lease file in the monitor's state folder `dir`.
fn lease_script(dir: &str, file: &str, by: &str, reason: &str, lease: Duration) -> Script {
    let rest = serde_json::json!({ "by": by, "reason": reason }).to_string();
    Script::new(LEASE).args([
        dir.to_string(),
        lease.as_secs().to_string(),
        rest,
        file.to_string(),
    ])
}

/// The switchover request in the monitor's state folder `dir`.
fn request_script(dir: &str, file: &str, by: &str) -> Script {
    Script::new(REQUEST).args([
        dir.to_string(),
        serde_json::Value::from(by).to_string(),
        file.to_string(),
    ])
}

/// The primary's `/readyz` at `url` with the gateway token from `env_file`
/// (through stdin: never in a command line).
fn readyz_script(env_file: &str, url: &str) -> Script {
    Script::new(READYZ).args([env_file, url])
}

/// The monitor's state as the standby's file holds it; `None` when there is
/// none (the monitor never ran) or it does not parse.
pub fn parse_state(text: &str) -> Option<MonitorState> {
    serde_json::from_str(text.trim()).ok()
}

/// Where the node's own gateway answers, seen from the node.
pub fn local_health_url(inv: &Inventory, role: Role) -> String {
    let addr = match inv.openclaw.bind {
        crate::inventory::Bind::Loopback => "127.0.0.1".to_string(),
        _ => match inv.node(role).private_address {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        },
    };
    format!("http://{addr}:{}/healthz", inv.openclaw.port)
}

/// How a wait goes: since when, for how long, how often it looks, who may
/// stop it, and who hears why it still waits.
#[derive(Clone, Copy)]
pub struct Wait<'a> {
    pub since: Instant,
    pub within: Duration,
    pub every: Duration,
    pub cancel: Option<&'a AtomicBool>,
    /// Told why the wait goes on, each time the reason changes.
    pub progress: Option<&'a (dyn Fn(&str) + Send + Sync)>,
}

impl<'a> Wait<'a> {
    /// Up to `within` from now, looking every `every`.
    pub fn new(within: Duration, every: Duration) -> Wait<'a> {
        Wait {
            since: Instant::now(),
            within,
            every,
            cancel: None,
            progress: None,
        }
    }
}

/// What one look says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Done,
    /// Not yet, and maybe why.
    Pending(Option<String>),
    /// Give up with this error.
    Stop(String),
}

impl From<bool> for Verdict {
    fn from(done: bool) -> Verdict {
        if done {
            Verdict::Done
        } else {
            Verdict::Pending(None)
        }
    }
}

/// Why a wait ended without its state: with the last reason for waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitError {
    TimedOut(Option<String>),
    Cancelled(Option<String>),
    /// A look failed, or said to give up.
    Stopped(String),
}

impl WaitError {
    /// The error as a message: `timed_out` for a wait that ran out,
    /// `interrupted` for a cancelled one.
    pub fn message(self, timed_out: impl FnOnce() -> String) -> String {
        match self {
            WaitError::TimedOut(_) => timed_out(),
            WaitError::Cancelled(_) => "interrupted".to_string(),
            WaitError::Stopped(e) => e,
        }
    }
}

/// Looks (`read`) and judges until the judgement is done, stops, or the wait
/// runs out or is cancelled; a failed look stops the wait (a caller for
/// whom it is a reason to wait says so in `read`).
pub async fn poll<T, F, Fut>(
    wait: &Wait<'_>,
    mut read: F,
    mut judge: impl FnMut(&T) -> Verdict,
) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let mut said: Option<String> = None;
    loop {
        let seen = read().await.map_err(WaitError::Stopped)?;
        let why = match judge(&seen) {
            Verdict::Done => return Ok(seen),
            Verdict::Stop(e) => return Err(WaitError::Stopped(e)),
            Verdict::Pending(why) => why,
        };
        if wait.cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
            return Err(WaitError::Cancelled(why));
        }
        if wait.since.elapsed() >= wait.within {
            return Err(WaitError::TimedOut(why));
        }
        if let (Some(progress), Some(w)) = (wait.progress, &why) {
            if said.as_ref() != Some(w) {
                progress(w);
                said = why;
            }
        }
        tokio::time::sleep(wait.every).await;
    }
}

/// What the standby sees, in one round trip: its monitor's state, its own
/// gateway, and the primary's health over the private network.
#[derive(Debug, Clone)]
pub struct Observation {
    pub state: Option<MonitorState>,
    pub own_up: bool,
    pub primary_up: bool,
    /// `systemctl is-active` of its gateway.
    pub unit: String,
}

impl Observation {
    fn parse(out: &str) -> Observation {
        let (head, state) = out.split_once("--state--\n").unwrap_or((out, ""));
        let get = |k: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .unwrap_or("")
        };
        Observation {
            state: parse_state(state),
            own_up: crate::openclaw::healthz_ok(get("own")),
            primary_up: crate::openclaw::healthz_ok(get("primary")),
            unit: get("unit").to_string(),
        }
    }

    pub fn warm(&self) -> bool {
        self.state.as_ref().is_some_and(|s| s.standby == "warm")
    }

    pub fn role(&self) -> Option<StandbyRole> {
        self.state.as_ref().map(|s| s.role)
    }

    /// Serving: warm, the channels are switched on; cold, the gateway answers.
    pub fn standby_serving(&self) -> bool {
        if self.warm() {
            self.state.as_ref().is_some_and(|s| s.channels_live)
        } else {
            self.own_up || self.unit == "active"
        }
    }
}

/// Whether the standby serves under a switchover requested when its state
/// was `before`: promoted for the switchover, by a promotion newer than
/// `before` (unless it already served then) that came up healthy.
fn took_over(before: &MonitorState, s: &MonitorState) -> Verdict {
    if !s.switchover || s.role != StandbyRole::Promoted {
        return Verdict::Pending(None);
    }
    if before.role == StandbyRole::Promoted {
        return Verdict::Done;
    }
    let newer = s.counters.promotions > before.counters.promotions;
    match &s.last_promotion {
        Some(p) if newer && !p.healthy => Verdict::Stop(format!(
            "the standby was promoted but does not serve ({}); the primary is left running",
            s.last_error.clone().unwrap_or_default()
        )),
        Some(_) => newer.into(),
        None => Verdict::Pending(None),
    }
}

/// Whether `role`'s gateway serves its channels now (OpenClaw's `/readyz`
/// with the token, asked on the node itself; `openclaw::ready_for_pair`).
pub async fn serving<H: Host>(host: &H, inv: &Inventory, role: Role) -> Result<bool, String> {
    let url = local_health_url(inv, role).replace("/healthz", "/readyz");
    let script = readyz_script(GATEWAY_ENV_FILE, &url);
    let out = host
        .run(&script.render(), None)
        .await
        .map_err(|e| e.to_string())?;
    let channels = inv.channel_ids(role);
    Ok(crate::openclaw::ready_for_pair(&out.stdout, &channels))
}

/// The standby, as the laptop talks to it.
pub struct Standby<'a, H: Host> {
    host: &'a H,
    /// Which standby: `standby`, or a chain's `standby2`.
    role: Role,
}

impl<'a, H: Host> Standby<'a, H> {
    pub fn new(host: &'a H) -> Standby<'a, H> {
        Standby::of(host, Role::Standby)
    }

    /// A chain's other standby (`standby2`).
    pub fn of(host: &'a H, role: Role) -> Standby<'a, H> {
        Standby { host, role }
    }

    /// The monitor's state; `None` when it has none.
    pub async fn state(&self) -> Result<Option<MonitorState>, String> {
        let out = check(self.host, &Script::new(READ).arg(MONITOR_STATE_FILE)).await?;
        Ok(parse_state(&out.stdout))
    }

    /// The monitor's state, its own gateway and the primary, at once.
    pub async fn observe(&self, inv: &Inventory) -> Result<Observation, String> {
        let script = Script::new(OBSERVE).args([
            local_health_url(inv, self.role),
            local_health_url(inv, Role::Primary),
            GATEWAY_UNIT.to_string(),
            MONITOR_STATE_FILE.to_string(),
        ]);
        let out = check(self.host, &script).await?;
        Ok(Observation::parse(&out.stdout))
    }

    /// Puts (or renews) a deploy's hold on the monitor for `lease`.
    pub async fn hold(&self, by: &str, reason: &str, lease: Duration) -> Result<(), String> {
        let script = lease_script(MONITOR_STATE_DIR, HOLD_FILE, by, reason, lease);
        check(self.host, &script).await.map(drop)
    }

    pub async fn release(&self) -> Result<(), String> {
        self.remove(HOLD_FILE).await
    }

    /// Marks a drill for `lease`: a takeover meanwhile is announced as one.
    pub async fn mark_drill(&self, fault: &str, lease: Duration) -> Result<(), String> {
        let script = lease_script(MONITOR_STATE_DIR, DRILL_FILE, "ocfo drill", fault, lease);
        check(self.host, &script).await.map(drop)
    }

    pub async fn unmark_drill(&self) -> Result<(), String> {
        self.remove(DRILL_FILE).await
    }

    /// Asks the monitor to serve (a planned switchover), in force until
    /// [`Standby::end_switchover`].
    pub async fn request_switchover(&self, by: &str) -> Result<(), String> {
        let script = request_script(MONITOR_STATE_DIR, SWITCHOVER_FILE, by);
        check(self.host, &script).await.map(drop)
    }

    pub async fn end_switchover(&self) -> Result<(), String> {
        self.remove(SWITCHOVER_FILE).await
    }

    async fn remove(&self, file: &str) -> Result<(), String> {
        check(self.host, &Script::new(REMOVE).arg(file))
            .await
            .map(drop)
    }

    /// Polls the monitor's state until `judge` is done with it (a standby
    /// without a state yet is not).
    pub async fn wait_for(
        &self,
        wait: &Wait<'_>,
        mut judge: impl FnMut(&MonitorState) -> Verdict,
    ) -> Result<MonitorState, WaitError> {
        let s = poll(
            wait,
            || self.state(),
            |s: &Option<MonitorState>| s.as_ref().map_or(Verdict::Pending(None), &mut judge),
        )
        .await?;
        s.ok_or_else(|| WaitError::Stopped("the standby's monitor has no state".into()))
    }

    /// After [`Standby::request_switchover`], with the monitor's state from
    /// before it: waits until the standby serves. If it does not, the
    /// request is withdrawn: nothing was broken, the primary still serves.
    pub async fn await_takeover(
        &self,
        before: &MonitorState,
        wait: &Wait<'_>,
    ) -> Result<MonitorState, WaitError> {
        let served = self.wait_for(wait, |s| took_over(before, s)).await;
        if served.is_err() {
            let _ = self.end_switchover().await;
        }
        served
    }

    /// After [`Standby::end_switchover`]: waits until the standby watches
    /// again with its channels off.
    pub async fn await_step_down(&self, wait: &Wait<'_>) -> Result<MonitorState, WaitError> {
        self.wait_for(wait, |s| {
            (!s.switchover && s.role == StandbyRole::Watching && !s.channels_live).into()
        })
        .await
    }
}

/// The primary, as the pair's commands wait for it.
pub struct Primary<'a, H: Host> {
    host: &'a H,
    inv: &'a Inventory,
}

impl<'a, H: Host> Primary<'a, H> {
    pub fn new(host: &'a H, inv: &'a Inventory) -> Primary<'a, H> {
        Primary { host, inv }
    }

    /// Whether the primary is ready for the pair (`openclaw::ready_for_pair`).
    pub async fn ready(&self) -> Result<bool, String> {
        serving(self.host, self.inv, Role::Primary).await
    }

    /// Stops the gateway (it drains first).
    pub async fn stop_gateway(&self) -> Result<(), String> {
        let script = Script::new(STOP_GATEWAY).arg(GATEWAY_UNIT);
        check(self.host, &script).await.map(drop)
    }

    /// Enables and starts the gateway.
    pub async fn start_gateway(&self) -> Result<(), String> {
        let script = Script::new(START_GATEWAY).arg(GATEWAY_UNIT);
        check(self.host, &script).await.map(drop)
    }

    /// Waits until the primary is ready. A host that cannot be asked stops
    /// the wait, unless `keep_trying`.
    pub async fn await_ready(&self, wait: &Wait<'_>, keep_trying: bool) -> Result<(), WaitError> {
        poll(
            wait,
            || async {
                match self.ready().await {
                    Err(_) if keep_trying => Ok(false),
                    r => r,
                }
            },
            |ready| (*ready).into(),
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests;
