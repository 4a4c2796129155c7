//! The lab's chat world: stand-ins for the two services an assistant talks
//! to, so a lab pair carries real messages end to end.
//!
//! - `telegram`: a Telegram Bot API stand-in that OpenClaw's real Telegram
//!   channel uses through `channels.telegram.apiRoot`;
//! - `model`: an OpenAI-compatible model stand-in (a custom provider in
//!   OpenClaw's `models.providers`), deterministic, whose reply quotes the
//!   user's messages so a test sees what the agent remembers;
//! - `control`: what the lab's user does (write to a bot, read what came
//!   back), on a root-only Unix socket: `ocfo lab chat`, `ocfo lab
//!   transcript`, drills and tests use it through `client`.
//!
//! It runs as its own process (`ocfo lab world`, started by `lab up`,
//! stopped by `lab down`), listening on the lab bridge's address only; a
//! firewall rule keeps everyone but the lab hosts and this machine out.
//! `state` holds the world and its record; a journal lets it restart.

pub mod client;
mod control;
mod http;
mod model;
pub mod state;
mod telegram;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::sys::{other, LabError};
use super::LabState;
use state::{BotSpec, Event, UserSpec, World};

/// The model stand-in's one model (`lab/<id>` in the lab inventory).
pub fn model_id() -> &'static str {
    model::MODEL_ID
}

/// Ports on the lab bridge's address.
pub const TELEGRAM_PORT: u16 = 8081;
pub const MODEL_PORT: u16 = 8082;

/// Everything the world process needs; written by `lab up` (mode 0600: it
/// holds the bots' tokens and the model key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorldConfig {
    pub lab: String,
    /// The bridge's address: the only one the stand-ins listen on.
    pub listen: String,
    pub telegram_port: u16,
    pub model_port: u16,
    pub socket: PathBuf,
    pub journal: PathBuf,
    pub bots: Vec<BotSpec>,
    pub user: UserSpec,
    /// The API key the model stand-in expects (`Authorization: Bearer`).
    pub model_key: String,
}

impl WorldConfig {
    pub fn telegram_root(&self) -> String {
        format!("http://{}:{}", self.listen, self.telegram_port)
    }

    pub fn model_base_url(&self) -> String {
        format!("http://{}:{}/v1", self.listen, self.model_port)
    }

    pub fn bot(&self, node: &str) -> Option<&BotSpec> {
        self.bots.iter().find(|b| b.node == node)
    }
}

pub use crate::clock::unix_ms;

/// What the stand-ins share: the world, the journal, a signal for waiters.
pub struct Shared {
    world: Mutex<World>,
    journal: Mutex<Option<std::fs::File>>,
    changed: tokio::sync::watch::Sender<u64>,
    pub model_key: String,
}

impl Shared {
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver that sees every later `commit`.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Appends new events to the journal and wakes everyone waiting (long
    /// polls, `events` requests): call after every change.
    pub fn commit(&self) {
        let events = self.world().take_unsaved();
        if !events.is_empty() {
            use std::io::Write;
            let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(f) = journal.as_mut() {
                let mut text = String::new();
                for e in &events {
                    text.push_str(&serde_json::to_string(e).unwrap_or_default());
                    text.push('\n');
                }
                if let Err(e) = f.write_all(text.as_bytes()) {
                    tracing::warn!("cannot write the world's journal: {e}");
                }
            }
        }
        self.changed.send_modify(|v| *v += 1);
    }
}

/// The journal's events; a damaged line (a crash mid-write) is skipped.
fn read_journal(path: &Path) -> Vec<Event> {
    std::fs::read_to_string(path)
        .map(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs the world until SIGTERM: the daemon behind `ocfo lab world`.
pub async fn serve(config: WorldConfig) -> Result<(), String> {
    let mut world = World::new(config.bots.clone(), config.user.clone());
    world.replay(read_journal(&config.journal));
    let journal = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&config.journal)
        .map_err(|e| format!("cannot open {}: {e}", config.journal.display()))?;
    let shared = Arc::new(Shared {
        world: Mutex::new(world),
        journal: Mutex::new(Some(journal)),
        changed: tokio::sync::watch::channel(0).0,
        model_key: config.model_key.clone(),
    });
    let bind = |port: u16| {
        let addr = format!("{}:{port}", config.listen);
        async move {
            tokio::net::TcpListener::bind(&addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))
        }
    };
    let telegram = bind(config.telegram_port).await?;
    let model = bind(config.model_port).await?;
    let _ = std::fs::remove_file(&config.socket);
    let control = tokio::net::UnixListener::bind(&config.socket)
        .map_err(|e| format!("cannot listen on {}: {e}", config.socket.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config.socket, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict {}: {e}", config.socket.display()))?;
    }
    tracing::info!(
        "chat world of lab {} up: Telegram {}, model {}, control {}",
        config.lab,
        config.telegram_root(),
        config.model_base_url(),
        config.socket.display()
    );
    eprintln!("ready");
    let (s1, s2, s3) = (shared.clone(), shared.clone(), shared.clone());
    let servers = async {
        tokio::join!(
            http::serve_tcp(telegram, move |req| telegram::handle(s1.clone(), req)),
            http::serve_tcp(model, move |req| model::handle(s2.clone(), req)),
            http::serve_unix(control, move |req| control::handle(s3.clone(), req)),
        )
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        _ = servers => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let _ = std::fs::remove_file(&config.socket);
    Ok(())
}

// ---- the machine side: files, process, firewall ----

pub fn config_path(lab: &LabState) -> PathBuf {
    lab.state_dir.join("world.json")
}

pub fn socket_path(lab: &LabState) -> PathBuf {
    lab.state_dir.join("world.sock")
}

pub fn journal_path(lab: &LabState) -> PathBuf {
    lab.state_dir.join("world.jsonl")
}

pub fn log_path(lab: &LabState) -> PathBuf {
    lab.state_dir.join("world.log")
}

pub fn load_config(lab: &LabState) -> Result<WorldConfig, LabError> {
    let path = config_path(lab);
    let bytes = crate::fsutil::read_regular_capped(&path, 1024 * 1024).map_err(|e| {
        other(format!(
            "lab `{}` has no chat world ({}: {e}); `ocfo lab up --name {}` starts it",
            lab.name,
            path.display(),
            lab.name
        ))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| other(format!("{} is damaged: {e}", path.display())))
}

pub fn save_config(lab: &LabState, config: &WorldConfig) -> Result<(), LabError> {
    let json = serde_json::to_vec_pretty(config).map_err(|e| other(e.to_string()))?;
    crate::fsutil::write_atomic(&config_path(lab), &json, 0o600)
        .map_err(|e| other(format!("cannot write the world's config: {e}")))
}

/// The world process as `lab up` left it: pid and the binary it runs, so a
/// rebuilt ocfo restarts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    pub exe: PathBuf,
    /// The binary's modification time (ns since the epoch) when started.
    pub exe_mtime: u128,
}

fn process_path(lab: &LabState) -> PathBuf {
    lab.state_dir.join("world.pid.json")
}

fn exe_mtime(exe: &Path) -> u128 {
    std::fs::metadata(exe)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

fn running(lab: &LabState) -> Option<Process> {
    let p: Process = serde_json::from_slice(&std::fs::read(process_path(lab)).ok()?).ok()?;
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", p.pid)).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline);
    (cmdline.contains("world") && cmdline.contains(&lab.name)).then_some(p)
}

pub fn is_running(lab: &LabState) -> bool {
    running(lab).is_some()
}

/// Starts the world unless the same binary already runs it; waits until its
/// control socket answers. A world that dies at once is started a second
/// time, once: a CI run saw one die within half a second, its cause lost
/// with its log, and the same `lab up` right after worked.
pub fn ensure_running(lab: &LabState) -> Result<(), LabError> {
    match start_world(lab) {
        Err(first) if running(lab).is_none() => {
            eprintln!("warning: {first}; starting it again");
            std::thread::sleep(Duration::from_secs(1));
            start_world(lab)
        }
        other => other,
    }
}

fn start_world(lab: &LabState) -> Result<(), LabError> {
    let exe =
        std::env::current_exe().map_err(|e| other(format!("cannot find ocfo itself: {e}")))?;
    if let Some(p) = running(lab) {
        if p.exe == exe && p.exe_mtime == exe_mtime(&exe) {
            return Ok(());
        }
        stop(lab);
    }
    let log = log_path(lab);
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| other(format!("cannot open {}: {e}", log.display())))?;
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(["lab", "world", "--name", &lab.name])
        .stdin(std::process::Stdio::null())
        .stdout(
            log_file
                .try_clone()
                .map_err(|e| other(format!("cannot open {}: {e}", log.display())))?,
        )
        .stderr(log_file);
    // Its own session, so it outlives `lab up` and the terminal that ran
    // it; spawned directly (not through a shell) so that a world that dies
    // at once says how: its exit status is ours to read until we let go.
    // SAFETY: setsid is async-signal-safe and touches no memory of ours.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| other(format!("could not start the chat world: {e}")))?;
    let pid = child.id();
    let process = Process {
        pid,
        exe_mtime: exe_mtime(&exe),
        exe,
    };
    let json = serde_json::to_vec(&process).map_err(|e| other(e.to_string()))?;
    crate::fsutil::write_atomic(&process_path(lab), &json, 0o644)
        .map_err(|e| other(e.to_string()))?;
    let socket = socket_path(lab);
    let start = std::time::Instant::now();
    let mut exited = None;
    while start.elapsed() < Duration::from_secs(15) {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // `lab down` removes the log with the lab: what it said goes in the error.
    let said = std::fs::read(&log).unwrap_or_default();
    let tail = String::from_utf8_lossy(&said[said.len().saturating_sub(2048)..]).into_owned();
    let how = match exited {
        Some(status) => format!("it exited at once ({status})"),
        None => "its control socket did not answer within 15 s".to_string(),
    };
    Err(other(format!(
        "the chat world did not start ({how}); its log ({}) ends with:\n{}",
        log.display(),
        crate::terminal::escape_lines(tail.trim())
    )))
}

/// Stops the world process (SIGTERM, then SIGKILL after 5 s).
pub fn stop(lab: &LabState) {
    let Some(p) = running(lab) else {
        let _ = std::fs::remove_file(process_path(lab));
        return;
    };
    let pid = p.pid as libc::pid_t;
    // SAFETY: kill(2) with a pid we started and just checked by its cmdline.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let start = std::time::Instant::now();
    while running(lab).is_some() {
        if start.elapsed() > Duration::from_secs(5) {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            std::thread::sleep(Duration::from_millis(200));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(process_path(lab));
}

// ---- the lab's bots, user and keys ----

/// The lab's allowlisted user (`tg:123456789` in the inventory).
pub fn lab_user() -> UserSpec {
    UserSpec {
        id: 123456789,
        first_name: "Lab User".into(),
        username: "ocfo_lab_user".into(),
    }
}

/// A lab's secret files, relative to its folder: each bot's token and the
/// model's API key. Real-looking (`<bot id>:<35 characters>`), random per
/// lab, mode 0600 like real credentials, written once.
pub const TELEGRAM_TOKEN_FILES: [(&str, &str, u64); 3] = [
    ("primary", "secrets/telegram_primary_token", 7100000001),
    ("standby", "secrets/telegram_standby_token", 7100000002),
    ("standby2", "secrets/telegram_standby2_token", 7100000003),
];
pub const MODEL_KEY_FILE: &str = "secrets/model_key";

fn random_text(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..n)
        .map(|_| ALPHABET[rand::random::<u8>() as usize % ALPHABET.len()] as char)
        .collect()
}

fn ensure_secret(dir: &Path, rel: &str, make: impl FnOnce() -> String) -> Result<String, LabError> {
    let path = dir.join(rel);
    if let Ok(v) = std::fs::read_to_string(&path) {
        if !v.trim().is_empty() {
            return Ok(v.trim().to_string());
        }
    }
    let value = make();
    crate::fsutil::write_atomic(&path, format!("{value}\n").as_bytes(), 0o600)
        .map_err(|e| other(format!("cannot write {}: {e}", path.display())))?;
    Ok(value)
}

/// Writes the world's config for a lab: its bots (one per node), the user,
/// the model key, where it listens.
pub fn configure(lab: &LabState) -> Result<WorldConfig, LabError> {
    let mut bots = Vec::new();
    // A bot per host of the lab.
    for (node, file, id) in TELEGRAM_TOKEN_FILES
        .into_iter()
        .filter(|(node, ..)| lab.hosts.contains_key(*node))
    {
        let token = ensure_secret(&lab.dir, file, || format!("{id}:{}", random_text(35)))?;
        bots.push(BotSpec {
            node: node.to_string(),
            id,
            token,
            username: format!("{}_{node}_bot", lab.name),
            first_name: format!("Lab assistant ({node})"),
        });
    }
    let model_key = ensure_secret(&lab.dir, MODEL_KEY_FILE, || {
        format!("sk-lab-{}", random_text(32))
    })?;
    let config = WorldConfig {
        lab: lab.name.clone(),
        listen: super::net::bridge_address(lab),
        telegram_port: TELEGRAM_PORT,
        model_port: MODEL_PORT,
        socket: socket_path(lab),
        journal: journal_path(lab),
        bots,
        user: lab_user(),
        model_key,
    };
    save_config(lab, &config)?;
    Ok(config)
}

/// Runs `f` on a small runtime: the lab's commands are synchronous.
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> Result<T, LabError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|rt| rt.block_on(f))
        .map_err(|e| other(format!("cannot start a runtime: {e}")))
}

/// Brings the world up for a lab: config, process, and the user's Start on
/// every bot (Telegram lets a bot write only to someone who started it; in
/// the lab the user has, as a real user does once per bot).
pub fn ensure(lab: &LabState) -> Result<WorldConfig, LabError> {
    let config = configure(lab)?;
    ensure_running(lab)?;
    let client = client::WorldClient::for_lab(lab);
    block_on(async {
        for b in &config.bots {
            client.start(&b.node).await?;
        }
        Ok::<(), String>(())
    })?
    .map_err(other)?;
    Ok(config)
}
