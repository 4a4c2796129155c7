//! Running the machine's tools (ip, iptables, mount, debootstrap, ...) with
//! errors that name the command and carry its stderr.

use std::process::{Command, Output, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("cannot run `{command}`: {reason}")]
    Spawn { command: String, reason: String },
    #[error("{0}")]
    Other(String),
}

pub fn other(msg: impl Into<String>) -> LabError {
    LabError::Other(msg.into())
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&crate::shell::quote(&a.to_string_lossy()));
    }
    s
}

/// Runs a command to completion; non-zero exit is an error with its stderr.
pub fn run(cmd: &mut Command) -> Result<Output, LabError> {
    let command = describe(cmd);
    tracing::debug!("lab: {command}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::Spawn {
            command: command.clone(),
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(LabError::Command {
            command,
            status: out
                .status
                .code()
                .map_or("killed".into(), |c| format!("exit {c}")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

/// `run` for an argv given as words.
pub fn sh(args: &[&str]) -> Result<Output, LabError> {
    let (prog, rest) = args.split_first().ok_or_else(|| other("empty command"))?;
    run(Command::new(prog).args(rest))
}

/// Whether a command succeeds (for "does it exist?" checks).
pub fn succeeds(args: &[&str]) -> bool {
    let Some((prog, rest)) = args.split_first() else {
        return false;
    };
    Command::new(prog)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn stdout(args: &[&str]) -> Result<String, LabError> {
    Ok(String::from_utf8_lossy(&sh(args)?.stdout).into_owned())
}

/// A new ed25519 key pair without a passphrase at `path` (and `path.pub`).
pub fn keygen(path: &std::path::Path, comment: &str) -> Result<(), LabError> {
    sh(&[
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        comment,
        "-f",
        &path.display().to_string(),
    ])
    .map(|_| ())
}
