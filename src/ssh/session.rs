//! One authenticated SSH connection per host, with many commands multiplexed
//! over it as channels.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, AuthResult};
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::ChannelMsg;

use super::known_hosts::{self, Verdict};
use super::SshError;
use crate::engine::host::{CmdOutput, Host, HostError};
use crate::shell::{quote, Script};

/// Where and as whom to connect, after `~/.ssh/config` was applied.
#[derive(Debug, Clone)]
pub struct SshTarget {
    /// The node's name for messages (`primary`).
    pub name: String,
    /// What to connect to (an address or a resolved HostName).
    pub hostname: String,
    pub port: u16,
    pub user: String,
    /// Key files to try, in order.
    pub identity_files: Vec<PathBuf>,
    /// Only `identity_files` are offered (the agent only for those keys),
    /// as when a key is configured: every extra key offered counts against
    /// sshd's MaxAuthTries and fail2ban. When false, agent keys go first.
    pub identities_only: bool,
    pub known_hosts: PathBuf,
}

#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions {
    pub accept_new_host_keys: bool,
    pub connect_timeout: Duration,
    /// The longest a single remote command may run.
    pub command_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            accept_new_host_keys: false,
            connect_timeout: Duration::from_secs(15),
            command_timeout: Duration::from_secs(900),
        }
    }
}

struct Verifier {
    hostname: String,
    port: u16,
    known_hosts: PathBuf,
    accept_new: bool,
    /// What the check found, for a precise error when the handshake is refused.
    seen: Arc<Mutex<Option<(Verdict, String)>>>,
    /// Why known_hosts could not be read or written, when that refused the key.
    file_error: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Verifier {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        let text = match known_hosts::read(&self.known_hosts) {
            Ok(text) => text,
            Err(e) => {
                if let Ok(mut slot) = self.file_error.lock() {
                    *slot = Some(e);
                }
                return Ok(false);
            }
        };
        let verdict = known_hosts::check(&text, &self.hostname, self.port, key);
        let fingerprint = known_hosts::fingerprint(key);
        let accept = match &verdict {
            Verdict::Trusted => true,
            Verdict::Unknown if self.accept_new => {
                match known_hosts::append(&self.known_hosts, &self.hostname, self.port, key) {
                    Ok(()) => {
                        tracing::info!(
                            "recorded the host key of {} ({fingerprint}) in {}",
                            self.hostname,
                            self.known_hosts.display()
                        );
                        true
                    }
                    Err(e) => {
                        if let Ok(mut slot) = self.file_error.lock() {
                            *slot = Some(format!("cannot record the host key: {e}"));
                        }
                        false
                    }
                }
            }
            _ => false,
        };
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some((verdict, fingerprint));
        }
        Ok(accept)
    }
}

pub struct HostSession {
    handle: client::Handle<Verifier>,
    name: String,
    /// `user@host:port`, for messages.
    address: String,
    port: u16,
    /// Commands run in privileged shells (`sudo -n sh`) for a non-root login.
    sudo: bool,
    command_timeout: Duration,
    /// OpenSSH allows 10 sessions per connection (`MaxSessions`); more
    /// concurrent channels are refused, so they queue here instead.
    channels: tokio::sync::Semaphore,
    /// Idle privileged shells, for a non-root login: each is one channel
    /// running `sudo -n sh` that reads framed commands, so a command costs
    /// one round trip and no sudo start-up.
    shells: Mutex<Vec<PrivShell>>,
    /// At most this many privileged shells exist at once (their channels
    /// stay open while idle, so they count against `MaxSessions`).
    shell_slots: tokio::sync::Semaphore,
    /// Commands run (round trips), for `-v` and the performance notes.
    round_trips: std::sync::atomic::AtomicU64,
}

/// Below OpenSSH's default `MaxSessions` of 10.
const MAX_CHANNELS: usize = 8;
/// Privileged shells per connection (a non-root login); the other channels
/// stay for plain commands, so the total stays at [`MAX_CHANNELS`].
const MAX_SHELLS: usize = 4;

impl HostSession {
    pub async fn connect(
        target: &SshTarget,
        opts: ConnectOptions,
    ) -> Result<HostSession, SshError> {
        let address = format!("{}@{}:{}", target.user, target.hostname, target.port);
        let seen = Arc::new(Mutex::new(None));
        let file_error = Arc::new(Mutex::new(None));
        let verifier = Verifier {
            file_error: file_error.clone(),
            hostname: target.hostname.clone(),
            port: target.port,
            known_hosts: target.known_hosts.clone(),
            accept_new: opts.accept_new_host_keys,
            seen: seen.clone(),
        };
        let config = Arc::new(client::Config {
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_max: 4,
            nodelay: true,
            ..Default::default()
        });
        let connecting = client::connect(config, (target.hostname.as_str(), target.port), verifier);
        let result = tokio::time::timeout(opts.connect_timeout, connecting).await;
        let mut handle = match result {
            Err(_) => {
                return Err(SshError::Connect {
                    host: address,
                    reason: format!("no answer within {}s", opts.connect_timeout.as_secs()),
                })
            }
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                if let Some(reason) = file_error.lock().ok().and_then(|s| s.clone()) {
                    return Err(SshError::KnownHosts {
                        host: address,
                        known_hosts: target.known_hosts.display().to_string(),
                        reason,
                    });
                }
                let seen = seen.lock().ok().and_then(|s| s.clone());
                return Err(
                    host_key_error(target, &address, seen).unwrap_or(SshError::Connect {
                        host: address,
                        reason: e.to_string(),
                    }),
                );
            }
        };
        authenticate(&mut handle, target, &address).await?;
        let sudo = target.user != "root";
        let session = HostSession {
            handle,
            name: target.name.clone(),
            address,
            port: target.port,
            sudo,
            command_timeout: opts.command_timeout,
            channels: tokio::sync::Semaphore::new(if sudo {
                MAX_CHANNELS - MAX_SHELLS
            } else {
                MAX_CHANNELS
            }),
            shells: Mutex::new(Vec::new()),
            shell_slots: tokio::sync::Semaphore::new(MAX_SHELLS),
            round_trips: std::sync::atomic::AtomicU64::new(0),
        };
        if sudo {
            // The sudo check, before anything changes: the first privileged
            // shell starts (`sudo -n`) or the connection is refused with
            // sudo's own words.
            let shell = session.open_shell(opts.connect_timeout).await?;
            session.return_shell(shell);
        }
        Ok(session)
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Commands run over this connection so far (each one round trip).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count_round_trip(&self) {
        self.round_trips
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Starts a privileged shell (`sudo -n sh` running [`SHELL_LOOP`]) and
    /// waits for its ready line; a sudo that wants a password, or a user
    /// without sudo, is an [`SshError::Sudo`] with sudo's message.
    async fn open_shell(&self, wait: Duration) -> Result<PrivShell, SshError> {
        let start = async {
            let channel = self
                .handle
                .channel_open_session()
                .await
                .map_err(|e| self.channel_error(e))?;
            let command = format!("sudo -n sh -c {}", quote(SHELL_LOOP));
            channel
                .exec(true, command)
                .await
                .map_err(|e| self.channel_error(e))?;
            let mut shell = PrivShell {
                channel,
                buf: Vec::new(),
                stderr: Vec::new(),
            };
            loop {
                if let Some(i) = find(&shell.buf, SHELL_READY) {
                    shell.buf.drain(..i + SHELL_READY.len());
                    return Ok(shell);
                }
                if shell.buf.len() > MAX_HEADER * 64 {
                    // Login-shell noise before the ready line; keep the tail.
                    let keep = shell.buf.len() - SHELL_READY.len();
                    shell.buf.drain(..keep);
                }
                if !shell.read_more().await {
                    let stderr = String::from_utf8_lossy(&shell.stderr).trim().to_string();
                    return Err(SshError::Sudo {
                        host: self.address.clone(),
                        stderr: if stderr.is_empty() {
                            "sudo -n sh exited without starting".into()
                        } else {
                            stderr
                        },
                    });
                }
            }
        };
        match tokio::time::timeout(wait, start).await {
            Ok(r) => r,
            Err(_) => Err(SshError::Sudo {
                host: self.address.clone(),
                stderr: format!("`sudo -n sh` did not start within {}s", wait.as_secs()),
            }),
        }
    }

    fn return_shell(&self, shell: PrivShell) {
        if let Ok(mut idle) = self.shells.lock() {
            idle.push(shell);
        }
    }

    /// Runs a script as root in an idle privileged shell (or a new one).
    /// A slot or channel permit refused: the session's semaphores are closed.
    fn closing(&self) -> SshError {
        SshError::Connect {
            host: self.address.clone(),
            reason: "the session is closing".into(),
        }
    }

    async fn run_privileged(
        &self,
        script: &str,
        stdin: Option<&[u8]>,
    ) -> Result<CmdOutput, SshError> {
        let _slot = self
            .shell_slots
            .acquire()
            .await
            .map_err(|_| self.closing())?;
        let idle = self.shells.lock().ok().and_then(|mut v| v.pop());
        let mut shell = match idle {
            Some(s) => s,
            None => self.open_shell(self.command_timeout).await?,
        };
        let command = script.lines().next().unwrap_or("").to_string();
        match tokio::time::timeout(self.command_timeout, shell.run(script, stdin)).await {
            Ok(Ok(out)) => {
                self.return_shell(shell);
                Ok(out)
            }
            Ok(Err(reason)) => {
                let _ = shell.channel.close().await;
                let stderr = String::from_utf8_lossy(&shell.stderr).trim().to_string();
                Err(SshError::Remote {
                    host: self.address.clone(),
                    command,
                    stderr: if stderr.is_empty() {
                        format!("the privileged shell broke: {reason}")
                    } else {
                        format!("the privileged shell broke: {reason}: {stderr}")
                    },
                })
            }
            Err(_) => {
                // The shell is mid-command: never reuse it.
                let _ = shell.channel.close().await;
                Err(SshError::Timeout {
                    host: self.address.clone(),
                    command,
                    secs: self.command_timeout.as_secs(),
                })
            }
        }
    }

    /// Runs a command line as the login user, exactly as given.
    pub async fn exec_raw(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<CmdOutput, SshError> {
        let run = async {
            let _permit = self.channels.acquire().await.map_err(|_| self.closing())?;
            let mut channel = self
                .handle
                .channel_open_session()
                .await
                .map_err(|e| self.channel_error(e))?;
            channel
                .exec(true, command)
                .await
                .map_err(|e| self.channel_error(e))?;
            if let Some(bytes) = stdin {
                channel
                    .data(bytes)
                    .await
                    .map_err(|e| self.channel_error(e))?;
            }
            channel.eof().await.map_err(|e| self.channel_error(e))?;
            let (mut got, mut status) = (Collected::new(MAX_OUTPUT as usize), None);
            while let Some(msg) = channel.wait().await {
                let pushed = match msg {
                    ChannelMsg::Data { data } => got.push(false, &data),
                    ChannelMsg::ExtendedData { data, ext: 1 } => got.push(true, &data),
                    ChannelMsg::ExitStatus { exit_status } => {
                        status = i32::try_from(exit_status).ok();
                        Ok(())
                    }
                    ChannelMsg::ExitSignal { signal_name, .. } => got.push(
                        true,
                        format!("killed by signal {signal_name:?}\n").as_bytes(),
                    ),
                    _ => Ok(()),
                };
                if let Err(stderr) = pushed {
                    let _ = channel.close().await;
                    return Err(SshError::Remote {
                        host: self.address.clone(),
                        command: command.lines().next().unwrap_or("").to_string(),
                        stderr,
                    });
                }
            }
            Ok(CmdOutput {
                status,
                stdout: String::from_utf8_lossy(&got.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&got.stderr).into_owned(),
            })
        };
        match tokio::time::timeout(self.command_timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(SshError::Timeout {
                host: self.address.clone(),
                command: command.lines().next().unwrap_or("").to_string(),
                secs: self.command_timeout.as_secs(),
            }),
        }
    }

    /// Runs a `sh` script as root: its own channel for a root login, an
    /// idle privileged shell for a non-root one.
    pub async fn run_script(
        &self,
        script: &str,
        stdin: Option<&[u8]>,
    ) -> Result<CmdOutput, SshError> {
        self.count_round_trip();
        if self.sudo {
            return self.run_privileged(script, stdin).await;
        }
        self.exec_raw(&format!("sh -c {}", quote(script)), stdin)
            .await
    }

    /// Writes a file atomically: a temp file in the same folder (mode 0600
    /// while the bytes arrive), owner and mode set, then renamed into place.
    /// In a folder another user controls, the whole write runs as that user
    /// (see [`put_script`]).
    pub async fn put_file(
        &self,
        path: &str,
        content: &[u8],
        mode: u32,
        owner: &str,
        group: &str,
    ) -> Result<(), SshError> {
        let script = put_script(path, mode, owner, group);
        let out = self.run_script(&script.render(), Some(content)).await?;
        if out.success() {
            Ok(())
        } else {
            Err(SshError::Remote {
                host: self.address.clone(),
                command: format!("write {path}"),
                stderr: out.stderr.trim().to_string(),
            })
        }
    }

    /// A file's content, `None` when it does not exist. Read as the user
    /// who controls its folder, never through a link.
    pub async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, SshError> {
        let script = Script::new(READ_FILE).guarded().arg(path);
        let out = self.run_script(&script.render(), None).await?;
        match out.status {
            Some(0) => Ok(Some(out.stdout.into_bytes())),
            Some(3) => Ok(None),
            _ => Err(SshError::Remote {
                host: self.address.clone(),
                command: format!("cat {path}"),
                stderr: out.stderr.trim().to_string(),
            }),
        }
    }

    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "ocfo done", "en")
            .await;
    }

    fn channel_error(&self, e: russh::Error) -> SshError {
        SshError::Connect {
            host: self.address.clone(),
            reason: format!("the connection broke: {e}"),
        }
    }
}

/// The loop a privileged shell runs (as root, under `sudo -n sh -c`).
/// Each request is a line `SCRIPT_LEN STDIN_LEN`, then the script's bytes,
/// then its stdin's bytes; the script runs in its own `sh` with exactly
/// those stdin bytes (the rest drained, so the framing holds whatever the
/// script reads). The answer is a line `OCFO STATUS OUT_LEN ERR_LEN`, then
/// stdout, then stderr. Output is held in a root-only folder on /run (tmpfs,
/// never on disk) and removed after each command; stdin (where secrets
/// travel) only goes through a pipe. `head -c` reads no more than it is
/// asked for, and dash's `read` reads byte by byte, so nothing of the next
/// request is consumed early.
const SHELL_LOOP: &str = r#"d=$(mktemp -d /run/ocfo-sh.XXXXXX 2>/dev/null || mktemp -d) || exit 125
trap 'rm -rf -- "$d"' EXIT
trap 'exit 129' HUP INT TERM
printf 'OCFO-READY
'
while IFS=' ' read -r a b; do
  case "$a:$b" in *[!0-9:]*|:*|*:) exit 124 ;; esac
  s=$(head -c "$a"; printf x); s=${s%x}
  head -c "$b" | { sh -c "$s" >"$d/o" 2>"$d/e"; echo $? >"$d/x"; cat >/dev/null; }
  printf 'OCFO %s %s %s
' "$(cat "$d/x")" "$(wc -c <"$d/o")" "$(wc -c <"$d/e")"
  cat -- "$d/o" "$d/e"
  rm -f -- "$d/o" "$d/e" "$d/x"
done"#;

const SHELL_READY: &[u8] = b"OCFO-READY\n";
/// A reply's header line is short; anything longer is not our shell.
const MAX_HEADER: usize = 64;
/// The most a command's stdout plus stderr may hold.
const MAX_OUTPUT: u64 = 256 * 1024 * 1024;

/// One `sudo -n sh` running [`SHELL_LOOP`] on its own channel.
struct PrivShell {
    channel: russh::Channel<client::Msg>,
    /// Bytes read from the shell's stdout and not yet consumed.
    buf: Vec<u8>,
    /// The shell's own stderr (sudo's refusal, a broken loop), capped.
    stderr: Vec<u8>,
}

impl PrivShell {
    /// Waits for more of the shell's output; false once the channel ended.
    async fn read_more(&mut self) -> bool {
        loop {
            match self.channel.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    self.buf.extend_from_slice(&data);
                    return true;
                }
                Some(ChannelMsg::ExtendedData { data, .. }) => {
                    if self.stderr.len() < 64 * 1024 {
                        self.stderr.extend_from_slice(&data);
                    }
                }
                Some(ChannelMsg::Eof)
                | Some(ChannelMsg::Close)
                | Some(ChannelMsg::ExitStatus { .. })
                | Some(ChannelMsg::ExitSignal { .. })
                | None => return false,
                Some(_) => {}
            }
        }
    }

    async fn run(&mut self, script: &str, stdin: Option<&[u8]>) -> Result<CmdOutput, String> {
        let stdin = stdin.unwrap_or(&[]);
        let mut request = format!("{} {}\n", script.len(), stdin.len()).into_bytes();
        request.extend_from_slice(script.as_bytes());
        self.channel
            .data(&request[..])
            .await
            .map_err(|e| format!("sending the command: {e}"))?;
        if !stdin.is_empty() {
            self.channel
                .data(stdin)
                .await
                .map_err(|e| format!("sending stdin: {e}"))?;
        }
        let header = loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                break String::from_utf8_lossy(&line[..i]).into_owned();
            }
            if self.buf.len() > MAX_HEADER {
                return Err("unexpected output instead of a reply".into());
            }
            if !self.read_more().await {
                return Err("the shell ended".into());
            }
        };
        let frame = Frame::parse(&header)?;
        while self.buf.len() < frame.len() {
            if !self.read_more().await {
                return Err("the shell ended mid-reply".into());
            }
        }
        let body: Vec<u8> = self.buf.drain(..frame.len()).collect();
        Ok(frame.output(&body))
    }
}

/// A privileged shell's reply header, `OCFO STATUS OUT_LEN ERR_LEN`, with
/// its lengths checked: they are the host's word, and a host that lies
/// gets an error for its own run, never an overflow or a slice out of
/// bounds (a panic would abort the other node's run too).
#[derive(Debug, PartialEq, Eq)]
struct Frame {
    status: i32,
    out_len: usize,
    err_len: usize,
}

impl Frame {
    fn parse(header: &str) -> Result<Frame, String> {
        let (status, out, err) =
            parse_reply(header).ok_or_else(|| format!("unexpected reply {header:?}"))?;
        if out.checked_add(err).is_none_or(|total| total > MAX_OUTPUT) {
            return Err(format!(
                "a reply of {out} + {err} bytes is more than the limit of {MAX_OUTPUT}"
            ));
        }
        // Both now fit in usize: their sum is at most MAX_OUTPUT.
        Ok(Frame {
            status,
            out_len: out as usize,
            err_len: err as usize,
        })
    }

    /// How many bytes follow the header.
    fn len(&self) -> usize {
        self.out_len + self.err_len
    }

    /// Splits the body (exactly [`Frame::len`] bytes) into stdout and stderr.
    fn output(&self, body: &[u8]) -> CmdOutput {
        let (out, err) = body.split_at(self.out_len.min(body.len()));
        CmdOutput {
            status: Some(self.status),
            stdout: String::from_utf8_lossy(out).into_owned(),
            stderr: String::from_utf8_lossy(err).into_owned(),
        }
    }
}

/// `OCFO STATUS OUT_LEN ERR_LEN`.
fn parse_reply(line: &str) -> Option<(i32, u64, u64)> {
    let mut it = line.split_ascii_whitespace();
    if it.next()? != "OCFO" {
        return None;
    }
    let status = it.next()?.parse().ok()?;
    let out = it.next()?.parse().ok()?;
    let err = it.next()?.parse().ok()?;
    it.next().is_none().then_some((status, out, err))
}

/// A command's output as it arrives over its channel, refused once stdout
/// and stderr together pass `limit`: the host decides how much it sends,
/// the laptop how much it keeps.
struct Collected {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    limit: usize,
}

impl Collected {
    fn new(limit: usize) -> Collected {
        Collected {
            stdout: Vec::new(),
            stderr: Vec::new(),
            limit,
        }
    }

    fn push(&mut self, stderr: bool, data: &[u8]) -> Result<(), String> {
        let held = self.stdout.len() + self.stderr.len();
        if data.len() > self.limit - held {
            return Err(format!(
                "more than {} bytes of output: refused, not cut",
                self.limit
            ));
        }
        if stderr {
            self.stderr.extend_from_slice(data);
        } else {
            self.stdout.extend_from_slice(data);
        }
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn host_key_error(
    target: &SshTarget,
    address: &str,
    seen: Option<(Verdict, String)>,
) -> Option<SshError> {
    let (verdict, fingerprint) = seen?;
    let known_hosts = target.known_hosts.display().to_string();
    Some(match verdict {
        Verdict::Unknown => SshError::UnknownHostKey {
            host: address.to_string(),
            fingerprint,
            known_hosts,
        },
        Verdict::Changed { line, recorded } => SshError::ChangedHostKey {
            host: address.to_string(),
            fingerprint,
            recorded,
            known_hosts,
            line,
        },
        Verdict::Revoked { line } => SshError::RevokedHostKey {
            host: address.to_string(),
            fingerprint,
            known_hosts,
            line,
        },
        Verdict::Trusted => return None,
    })
}

async fn authenticate(
    handle: &mut client::Handle<Verifier>,
    target: &SshTarget,
    address: &str,
) -> Result<(), SshError> {
    let user = target.user.as_str();
    let mut tried = Vec::new();
    let mut encrypted = Vec::new();
    let rsa_hash = handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten();
    let mut agent = AgentClient::connect_env().await.ok();
    let agent_keys: Vec<(PublicKey, String)> = match agent.as_mut() {
        Some(a) => match a.request_identities().await {
            Ok(ids) => ids
                .into_iter()
                .filter_map(|id| match id {
                    AgentIdentity::PublicKey { key, comment } => Some((key, comment)),
                    _ => None,
                })
                .collect(),
            Err(e) => {
                tracing::debug!("ssh-agent: {e}");
                Vec::new()
            }
        },
        None => Vec::new(),
    };

    let by_agent = |key: &PublicKey| agent_keys.iter().any(|(k, _)| same_key(k, key));
    // Each key is offered once: a repeat would spend another of sshd's tries.
    let mut offered: Vec<PublicKey> = Vec::new();
    let was_offered =
        |offered: &[PublicKey], key: &PublicKey| offered.iter().any(|k| same_key(k, key));

    if !target.identities_only {
        if let Some(agent) = agent.as_mut() {
            for (key, comment) in &agent_keys {
                let label = agent_label(key, comment);
                offered.push(key.clone());
                if try_agent_key(handle, user, key, rsa_hash, agent).await {
                    return Ok(());
                }
                tried.push(label);
            }
        }
    }

    for path in &target.identity_files {
        if !path.exists() {
            continue;
        }
        let key = match load_key_file(path) {
            Ok(k) => k,
            Err(KeyFileError::Encrypted) => {
                // The agent may hold it unlocked: use it there, and only it.
                match (public_key_of_encrypted(path), agent.as_mut()) {
                    (Some(public), Some(agent))
                        if by_agent(&public) && !was_offered(&offered, &public) =>
                    {
                        offered.push(public.clone());
                        if try_agent_key(handle, user, &public, rsa_hash, agent).await {
                            return Ok(());
                        }
                        tried.push(format!("{} (from the agent)", path.display()));
                    }
                    _ => encrypted.push(path.display().to_string()),
                }
                continue;
            }
            Err(KeyFileError::Unusable(e)) => {
                tried.push(format!("{} (unreadable: {e})", path.display()));
                continue;
            }
        };
        if was_offered(&offered, key.public_key()) {
            continue;
        }
        offered.push(key.public_key().clone());
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), rsa_hash);
        match handle.authenticate_publickey(user, key).await {
            Ok(AuthResult::Success) => return Ok(()),
            Ok(_) => tried.push(path.display().to_string()),
            Err(e) => {
                return Err(SshError::Connect {
                    host: address.to_string(),
                    reason: format!("authentication broke off: {e}"),
                })
            }
        }
    }
    Err(SshError::Auth {
        host: address.to_string(),
        tried,
        encrypted,
    })
}

/// Comments differ between an agent's copy and the file; the key is the data.
fn same_key(a: &PublicKey, b: &PublicKey) -> bool {
    a.key_data() == b.key_data()
}

fn agent_label(key: &PublicKey, comment: &str) -> String {
    format!(
        "agent key {}",
        if comment.is_empty() {
            key.algorithm().to_string()
        } else {
            comment.to_string()
        }
    )
}

async fn try_agent_key(
    handle: &mut client::Handle<Verifier>,
    user: &str,
    key: &PublicKey,
    rsa_hash: Option<russh::keys::HashAlg>,
    agent: &mut AgentClient<impl russh::keys::agent::client::AgentStream + Send + Unpin + 'static>,
) -> bool {
    let hash = key.algorithm().is_rsa().then_some(rsa_hash).flatten();
    matches!(
        handle
            .authenticate_publickey_with(user, key.clone(), hash, agent)
            .await,
        Ok(AuthResult::Success)
    )
}

/// A private key file is a few kilobytes.
const MAX_KEY_FILE: u64 = 1024 * 1024;

enum KeyFileError {
    Encrypted,
    Unusable(String),
}

/// Reads a key file without following it into a FIFO or device (which would
/// block the connection forever) and without reading more than a key's size.
fn load_key_file(path: &std::path::Path) -> Result<russh::keys::PrivateKey, KeyFileError> {
    let text = read_key_text(path).map_err(KeyFileError::Unusable)?;
    match russh::keys::decode_secret_key(&text, None) {
        Ok(k) => Ok(k),
        Err(russh::keys::Error::KeyIsEncrypted) => Err(KeyFileError::Encrypted),
        Err(e) => Err(KeyFileError::Unusable(e.to_string())),
    }
}

fn read_key_text(path: &std::path::Path) -> Result<String, String> {
    let bytes = crate::fsutil::read_regular_capped(path, MAX_KEY_FILE).map_err(|e| match e {
        crate::fsutil::ReadError::Io(e) => e.to_string(),
        other => format!("it is {other}"),
    })?;
    String::from_utf8(bytes).map_err(|_| "not a text file".to_string())
}

/// The public half of a passphrase-protected key: stored in clear in the
/// OpenSSH format, and in the `.pub` file beside it.
fn public_key_of_encrypted(path: &std::path::Path) -> Option<PublicKey> {
    let text = read_key_text(path).ok()?;
    if let Ok(k) = russh::keys::ssh_key::PrivateKey::from_openssh(text.trim()) {
        return Some(k.public_key().clone());
    }
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    let text = read_key_text(std::path::Path::new(&pub_path)).ok()?;
    PublicKey::from_openssh(text.trim()).ok()
}

impl Host for HostSession {
    fn name(&self) -> &str {
        &self.name
    }

    fn ssh_port(&self) -> Option<u16> {
        Some(self.port)
    }

    fn round_trips(&self) -> Option<u64> {
        Some(HostSession::round_trips(self))
    }

    async fn run(&self, script: &str, stdin: Option<&[u8]>) -> Result<CmdOutput, HostError> {
        self.run_script(script, stdin)
            .await
            .map_err(|e| HostError::Transport {
                host: self.name.clone(),
                message: e.to_string(),
            })
    }

    async fn put(
        &self,
        path: &str,
        content: &[u8],
        mode: u32,
        owner: &str,
        group: &str,
    ) -> Result<(), HostError> {
        self.put_file(path, content, mode, owner, group)
            .await
            .map_err(|e| HostError::Transport {
                host: self.name.clone(),
                message: e.to_string(),
            })
    }
}

/// The public key of a key file, for messages and tests.
pub fn public_key_of(path: &std::path::Path) -> Option<PublicKey> {
    russh::keys::load_secret_key(path, None)
        .ok()
        .map(|k| k.public_key().clone())
}

const READ_FILE: &str = r#"ocfo_guard "$1"
if [ -f "$1" ]; then ocfo_as_owner cat -- "$1"; else exit 3; fi"#;

/// The script that writes stdin to `path` for [`HostSession::put_file`].
/// Where only root controls the folders, root writes a temp file and
/// renames it. Where the gateway user controls a folder above the file (its
/// home), root never writes there: a link or a swapped temp file would turn
/// `chown`/`chmod` against root's own files. The write then runs as that
/// user, who must be the file's owner.
pub fn put_script(path: &str, mode: u32, owner: &str, group: &str) -> Script {
    Script::new(PUT_FILE).guarded().args([
        path.to_string(),
        format!("{mode:04o}"),
        owner.to_string(),
        group.to_string(),
    ])
}

const PUT_FILE: &str = r#"# write PATH MODE OWNER GROUP
set -eu
cd /
ocfo_guard "$1"
if [ "$ocfo_as" = root ]; then
  d=$(dirname -- "$1")
  mkdir -p -- "$d"
  t=$(mktemp "$d/.ocfo-XXXXXX")
  trap 'rm -f -- "$t"' EXIT
  cat > "$t"
  # Only root can write in the folder (the guard checked), so nobody can
  # swap $t; -h all the same, so that a link would only change itself.
  chown -h -- "$3:$4" "$t"
  chmod -- "$2" "$t"
  mv -f -- "$t" "$1"
  trap - EXIT
else
  ocfo_user_only "$1" "$3"
  runuser -u "$3" -- sh -c '
set -eu
umask 077
d=$(dirname -- "$1")
mkdir -p -- "$d"
t=$(mktemp "$d/.ocfo-XXXXXX")
trap "rm -f -- \"\$t\"" EXIT
cat > "$t"
[ "$(id -gn)" = "$3" ] || chgrp -- "$3" "$t"
chmod -- "$2" "$t"
mv -f -- "$t" "$1"
trap - EXIT' sh "$1" "$2" "$4"
fi"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_strictly() {
        assert_eq!(parse_reply("OCFO 3 10 0"), Some((3, 10, 0)));
        assert_eq!(parse_reply("OCFO 0 0 0"), Some((0, 0, 0)));
        for bad in [
            "",
            "OCFO",
            "OCFO 1 2",
            "OCFO 1 2 3 4",
            "XOCFO 1 2 3",
            "OCFO a 1 2",
            "OCFO 0 -1 2",
        ] {
            assert_eq!(parse_reply(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_lying_reply_header_is_an_error_not_a_panic() {
        // Before, `out_len + err_len` overflowed (a panic in debug builds;
        // wrapped to 0 in release, after which `split_at` panicked).
        let max = u64::MAX;
        for header in [
            format!("OCFO 0 {max} 1"),
            format!("OCFO 0 {max} {max}"),
            format!("OCFO 0 1 {max}"),
            format!("OCFO 0 {} 0", MAX_OUTPUT + 1),
            format!("OCFO 0 {} 1", MAX_OUTPUT),
        ] {
            let err = Frame::parse(&header).unwrap_err();
            assert!(err.contains("more than the limit"), "{header}: {err}");
        }
        let frame = Frame::parse(&format!("OCFO 2 3 {MAX_OUTPUT}")).unwrap_err();
        assert!(frame.contains("limit"));
        let frame = Frame::parse("OCFO 2 3 1").unwrap();
        assert_eq!(frame.len(), 4);
        let out = frame.output(b"abcE");
        assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("abc", "E"));
        assert_eq!(out.status, Some(2));
        assert!(Frame::parse("OCFO 0 -1 2").is_err());
    }

    #[test]
    fn raw_output_is_refused_past_the_limit() {
        let mut got = Collected::new(10);
        got.push(false, b"12345").unwrap();
        got.push(true, b"abcd").unwrap();
        got.push(false, b"6").unwrap();
        let err = got.push(true, b"x").unwrap_err();
        assert!(err.contains("more than 10 bytes"), "{err}");
        // Nothing past the limit was kept.
        assert_eq!(got.stdout.len() + got.stderr.len(), 10);
        let mut got = Collected::new(10);
        assert!(got.push(false, &[0; 11]).is_err());
        assert!(got.stdout.is_empty());
    }

    #[test]
    fn the_loop_is_fixed_text() {
        // Only numbers and bytes ever reach the shell; the loop never
        // interpolates a request into its own text.
        assert!(!SHELL_LOOP.contains("eval"));
        assert!(SHELL_LOOP.contains("head -c \"$b\" |"));
    }
}
