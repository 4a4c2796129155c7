//! Deploy's hold on the standby's monitor: a lease, written on the standby
//! with the standby's own clock, taken before the first change that will
//! restart the primary's gateway and released once the primary is ready
//! again. A deploy that dies leaves a hold that simply expires.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::engine::runner::RestartGate;
use crate::engine::Host;
use crate::inventory::{Inventory, Role};
use crate::render::layout::{GATEWAY_ENV_FILE, HOLD_FILE, MONITOR_STATE_DIR, SWITCHOVER_FILE};
use crate::shell::{quote, Script};

/// How long a hold lasts unless renewed: long enough for a gateway restart
/// on a slow VPS, short enough that a dead deploy costs one failover delay.
pub const LEASE: Duration = Duration::from_secs(180);
/// How long the end of a run waits for the primary to be ready.
pub const READY_WAIT: Duration = Duration::from_secs(150);

/// Writes (or renews) the hold file on the standby, atomically.
pub fn hold_script(by: &str, reason: &str, lease: Duration) -> String {
    lease_script(HOLD_FILE, by, reason, lease)
}

/// Writes a lease file (`{"until": <unix s>, "by", "reason"}`) in the
/// monitor's state folder on the standby, atomically, its expiry computed
/// with the standby's own clock: the hold, and a drill's mark.
pub fn lease_script(file: &str, by: &str, reason: &str, lease: Duration) -> String {
    let rest = format!(
        "\"by\": {}, \"reason\": {}",
        serde_json::Value::from(by),
        serde_json::Value::from(reason)
    );
    format!(
        "set -e\nd={d}\n[ ! -L \"$d\" ] || {{ echo \"$d is a symlink\" >&2; exit 1; }}\nmkdir -p \"$d\"\n\
         u=$(( $(date +%s) + {secs} ))\nprintf '{{\"until\": %s, %s}}\\n' \"$u\" {rest} > \"$d/.lease.tmp\"\nmv -f \"$d/.lease.tmp\" {f}",
        d = quote(MONITOR_STATE_DIR),
        secs = lease.as_secs(),
        rest = quote(&rest),
        f = quote(file),
    )
}

pub fn release_script() -> String {
    format!("rm -f {}", quote(HOLD_FILE))
}

/// The primary's `/readyz` with the gateway token (from the root-only
/// environment file, through stdin: never in a command line).
pub fn readyz_script(inv: &Inventory) -> String {
    let url = crate::status::local_health_url(inv, Role::Primary).replace("/healthz", "/readyz");
    Script::new(READYZ)
        .args([GATEWAY_ENV_FILE, url.as_str()])
        .render()
}

/// $1 the gateway's environment file, $2 the URL. The file is the gateway
/// user's environment, which `openclaw.env` fills: root never sources it
/// (a `PATH` or `http_proxy` in it would choose root's `curl` or send the
/// token to a proxy). Only the token's line is read, as ocfo writes it
/// (`render::env_file`: `NAME="value"` with `\"`, `\\`, `\$` and `` \` ``
/// escaped), and every tool is called by its path with an empty environment.
const READYZ: &str = r#"tok=$(/bin/sed -n '/^OCFO_GATEWAY_TOKEN=".*"$/{s/^OCFO_GATEWAY_TOKEN="//;s/"$//;s/\\\(.\)/\1/g;p;q;}' "$1")
printf 'Authorization: Bearer %s\n' "$tok" | /usr/bin/env -i /usr/bin/curl -q -s -m 2 --noproxy '*' -H @- -- "$2" 2>/dev/null | /usr/bin/head -c 4000"#;

/// Ready for the pair: the gateway serves and nothing but (possibly) its own
/// channels fails; channels are the monitor's policy, not a restart's.
pub fn primary_ready(body: &str, inv: &Inventory) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body.trim()) else {
        return false;
    };
    if v.get("ready") == Some(&serde_json::Value::Bool(true)) {
        return true;
    }
    let channels = inv.channel_ids(Role::Primary);
    v.get("failing")
        .and_then(|f| f.as_array())
        .is_some_and(|f| {
            !f.is_empty()
                && f.iter()
                    .all(|x| x.as_str().is_some_and(|s| channels.iter().any(|c| c == s)))
        })
}

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
    async fn primary_serving(&self) -> bool {
        match self.primary.run(&readyz_script(self.inv), None).await {
            Ok(out) => primary_ready(&out.stdout, self.inv),
            Err(_) => false,
        }
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
        let state = self
            .standby
            .check(&format!(
                "cat {MONITOR_STATE_DIR}/monitor-state.json 2>/dev/null || true"
            ))
            .await
            .map_err(|e| e.to_string())?;
        let s: crate::monitor::MonitorState = serde_json::from_str(state.stdout.trim())
            .map_err(|_| "the standby's monitor is not running".to_string())?;
        if s.standby != "warm" || s.local_gateway_up == Some(false) {
            return Err("the standby is not a healthy warm standby".into());
        }
        let promotions = s.counters.promotions;
        self.standby
            .check(&crate::switchover::request_script(&self.by))
            .await
            .map_err(|e| e.to_string())?;
        let start = Instant::now();
        while start.elapsed() < HANDOVER_WAIT {
            let out = self
                .standby
                .check(&format!(
                    "cat {MONITOR_STATE_DIR}/monitor-state.json 2>/dev/null || true"
                ))
                .await
                .map_err(|e| e.to_string())?;
            if let Ok(s) = serde_json::from_str::<crate::monitor::MonitorState>(out.stdout.trim()) {
                let serving = s.role == crate::monitor::machine::Role::Promoted
                    && s.counters.promotions > promotions
                    && s.last_promotion.as_ref().is_some_and(|p| p.healthy);
                if serving {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let _ = self.standby.check(&end_switchover_script()).await;
        Err(format!(
            "the standby did not serve within {}s",
            HANDOVER_WAIT.as_secs()
        ))
    }
}

pub fn end_switchover_script() -> String {
    format!("rm -f {}", quote(SWITCHOVER_FILE))
}

impl<H: Host> RestartGate for StandbyHold<'_, H> {
    fn hold(&self, upgrade: bool) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.standby
                .check(&hold_script(&self.by, "restarting the primary's gateway", LEASE))
                .await
                .map_err(|e| format!("cannot put a hold on the standby's monitor, so not restarting the primary's gateway: {e}"))?;
            use std::sync::atomic::Ordering;
            // Only a serving primary has service to hand over (not on a first
            // deploy, nor when it is already down).
            if upgrade && !self.handed_over.load(Ordering::SeqCst) && self.primary_serving().await {
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
                self.standby
                    .check(&hold_script(
                        &self.by,
                        "restarting the primary's gateway",
                        LEASE,
                    ))
                    .await
                    .map_err(|e| e.to_string())?;
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
            if ready && self.handed_over.load(std::sync::atomic::Ordering::SeqCst) {
                match self.standby.check(&end_switchover_script()).await {
                    Ok(_) => notes.push("upgrade: the primary is ready; the standby steps down after `rise` healthy probes".into()),
                    Err(e) => notes.push(format!("WARNING: could not end the upgrade's switchover on the standby ({e}); run `ocfo switchover --back`")),
                }
            } else if self.handed_over.load(std::sync::atomic::Ordering::SeqCst) {
                notes.push("WARNING: the primary is not ready, so the standby keeps serving (switchover in force); `ocfo switchover --back` once the primary is fixed".into());
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
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::os::unix::fs::PermissionsExt;

    /// The first request `listener` receives within `wait` (answered with a
    /// ready `/readyz`), or `None`.
    fn one_request(listener: &TcpListener, wait: std::time::Duration) -> Option<String> {
        listener.set_nonblocking(true).unwrap();
        let start = std::time::Instant::now();
        loop {
            match listener.accept() {
                Ok((mut conn, _)) => {
                    conn.set_nonblocking(false).unwrap();
                    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                        .unwrap();
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body = "{\"ready\":true}";
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    return Some(String::from_utf8_lossy(&req).into_owned());
                }
                Err(_) if start.elapsed() < wait => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(_) => return None,
            }
        }
    }

    /// Issue 16: root sourced the gateway's environment file, so a `PATH` in
    /// it made root run the agent's `curl` (with the token on its stdin),
    /// and an `http_proxy` sent the token to the proxy. Root now reads the
    /// token alone, and runs curl by path with a clean environment.
    #[test]
    fn readyz_reads_only_the_token_and_runs_no_planted_tool() {
        let dir = tempfile::tempdir().unwrap();
        let planted = dir.path().join("bin");
        std::fs::create_dir(&planted).unwrap();
        let marker = dir.path().join("planted-tool-ran");
        for tool in ["curl", "head", "sed", "cat", "env", "printf"] {
            let p = planted.join(tool);
            std::fs::write(
                &p,
                format!("#!/bin/sh\necho {tool} >> '{}'\n", marker.display()),
            )
            .unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let gateway = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
        let token = "to\"k$en`x\\y z";
        let env = dir.path().join("gateway.env");
        let entries: Vec<(String, String)> = [
            ("PATH", planted.display().to_string()),
            ("http_proxy", proxy_url.clone()),
            ("ALL_PROXY", proxy_url),
            ("BASH_ENV", marker.display().to_string()),
            ("OCFO_GATEWAY_TOKEN", token.to_string()),
            ("OCFO_AFTER", "OCFO_GATEWAY_TOKEN=\"not-this\"".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        std::fs::write(
            &env,
            crate::render::env_file::format("test", &entries, false),
        )
        .unwrap();
        let port = gateway.local_addr().unwrap().port();
        let fx = crate::modules::testkit::Fixture::load(|inv| {
            inv.openclaw.port = port;
            inv.openclaw.bind = crate::inventory::Bind::Loopback;
        });
        let script = super::readyz_script(&fx.inv).replace(
            crate::render::layout::GATEWAY_ENV_FILE,
            &env.display().to_string(),
        );
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let request = one_request(&gateway, std::time::Duration::from_secs(5));
        let out = child.wait_with_output().unwrap();
        assert!(
            !marker.exists(),
            "root ran a planted tool: {}",
            std::fs::read_to_string(&marker).unwrap_or_default()
        );
        assert!(
            one_request(&proxy, std::time::Duration::ZERO).is_none(),
            "the request went to the proxy"
        );
        let request = request.expect("the gateway got no request");
        assert!(
            request
                .lines()
                .any(|l| l.trim_end() == format!("Authorization: Bearer {token}")),
            "{request}"
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "{\"ready\":true}",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

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
        let h = crate::monitor::requests::Hold::parse_active(&text, now).expect(&text);
        assert_eq!(h.by, "deploy by a\"b");
        assert_eq!(h.reason, "r'$(x)");
        assert!(h.until >= now + 59 && h.until <= now + 61);
        assert!(crate::monitor::requests::Hold::parse_active(&text, now + 61).is_none());
    }
}
