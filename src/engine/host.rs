//! What the engine needs from a host: run a script as root, write a file
//! atomically. The SSH transport implements it for real hosts; unit tests of
//! modules use a scripted fake.

use std::future::Future;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdOutput {
    /// Exit status; `None` when the command was killed by a signal.
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The connection itself failed: nothing more can run on this host.
    #[error("{host}: {message}")]
    Transport { host: String, message: String },
    /// A command ran and failed.
    #[error("{host}: `{command}` failed ({status}){stderr}")]
    Command {
        host: String,
        command: String,
        status: String,
        stderr: String,
    },
}

impl HostError {
    pub fn command(host: &str, command: &str, out: &CmdOutput) -> Self {
        let stderr = out.stderr.trim();
        let stderr = if stderr.is_empty() {
            let stdout = out.stdout.trim();
            if stdout.is_empty() {
                String::new()
            } else {
                format!(":\n{}", tail(stdout, 30))
            }
        } else {
            format!(":\n{}", tail(stderr, 30))
        };
        HostError::Command {
            host: host.to_string(),
            command: first_line(command),
            status: match out.status {
                Some(c) => format!("exit status {c}"),
                None => "killed by a signal".into(),
            },
            stderr,
        }
    }
}

fn first_line(s: &str) -> String {
    let trimmed = s.trim();
    match trimmed.split_once('\n') {
        Some((first, _)) => format!("{first} …"),
        None => trimmed.to_string(),
    }
}

/// The last `n` lines: the end of a long stderr is where the reason is.
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub trait Host: Sync {
    /// The node's name for messages (`primary`, `standby`).
    fn name(&self) -> &str;

    /// The TCP port this connection reached sshd on (which `~/.ssh/config`
    /// may have chosen), when the host is reached over SSH: the firewall must
    /// keep exactly that port open.
    fn ssh_port(&self) -> Option<u16> {
        None
    }

    /// Commands run on the host so far (each one SSH round trip), when the
    /// transport counts them.
    fn round_trips(&self) -> Option<u64> {
        None
    }

    /// Runs a `sh` script as root (a non-root login runs it in a `sudo -n sh`
    /// shell of the transport) and returns its output whatever the exit status.
    fn run(
        &self,
        script: &str,
        stdin: Option<&[u8]>,
    ) -> impl Future<Output = Result<CmdOutput, HostError>> + Send;

    /// Writes a file atomically (temp file in the same folder, mode and owner
    /// set, rename), creating missing parent folders.
    fn put(
        &self,
        path: &str,
        content: &[u8],
        mode: u32,
        owner: &str,
        group: &str,
    ) -> impl Future<Output = Result<(), HostError>> + Send;

    /// Runs a script and fails unless it exits 0.
    fn check(&self, script: &str) -> impl Future<Output = Result<CmdOutput, HostError>> + Send {
        async move {
            let out = self.run(script, None).await?;
            if out.success() {
                Ok(out)
            } else {
                Err(HostError::command(self.name(), script, &out))
            }
        }
    }
}
