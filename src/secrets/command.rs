//! Runs a `{command:}` secret: bounded in time and in output, with the whole
//! process group killed when either bound is hit, so a `sleep infinity`, a
//! `yes` or a child that keeps stdout open cannot hang or exhaust ocfo.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a secret command may run: long enough for a password manager
/// that asks for a touch or a PIN.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A credential is short; a megabyte is already far more than any key.
pub const MAX_OUTPUT: u64 = 1024 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    Spawn(String),
    TimedOut(Duration),
    TooMuchOutput(u64),
    Status(Option<i32>),
}

/// The command's stdout, when it exited 0 within `timeout` printing at most
/// `max_output` bytes. stderr is discarded, never shown: a failing secret
/// command may well print part of what it was fetching.
pub fn run(
    command: &str,
    dir: Option<&Path>,
    timeout: Duration,
    max_output: u64,
) -> Result<Vec<u8>, Failure> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Its own process group, so a timeout kills the children too.
        .process_group(0);
    if let Some(dir) = dir.filter(|d| !d.as_os_str().is_empty()) {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(|e| Failure::Spawn(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    let Some(stdout) = child.stdout.take() else {
        kill(&mut child);
        return Err(Failure::Spawn("no stdout pipe".into()));
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let r = stdout.take(max_output + 1).read_to_end(&mut buf);
        let _ = tx.send(r.map(|_| buf));
    });
    let output = match rx.recv_timeout(timeout) {
        Ok(Ok(buf)) if buf.len() as u64 > max_output => {
            kill(&mut child);
            return Err(Failure::TooMuchOutput(max_output));
        }
        Ok(Ok(buf)) => buf,
        Ok(Err(e)) => {
            kill(&mut child);
            return Err(Failure::Spawn(e.to_string()));
        }
        Err(_) => {
            kill(&mut child);
            return Err(Failure::TimedOut(timeout));
        }
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(output),
            Ok(Some(status)) => return Err(Failure::Status(status.code())),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                kill(&mut child);
                return Err(Failure::TimedOut(timeout));
            }
            Err(e) => {
                kill(&mut child);
                return Err(Failure::Spawn(e.to_string()));
            }
        }
    }
}

fn kill(child: &mut Child) {
    if let Ok(pgid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals that process group;
        // it has no memory effects. The group is the child's own (process_group(0)).
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hanging_command_and_its_children_are_killed_at_the_timeout() {
        let start = Instant::now();
        let r = run(
            "sleep 30 & sleep 30",
            None,
            Duration::from_millis(300),
            MAX_OUTPUT,
        );
        assert_eq!(r, Err(Failure::TimedOut(Duration::from_millis(300))));
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn endless_output_is_cut_at_the_cap() {
        let start = Instant::now();
        let r = run("yes", None, Duration::from_secs(20), 4096);
        assert_eq!(r, Err(Failure::TooMuchOutput(4096)));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn output_and_status() {
        assert_eq!(
            run("printf abc", None, TIMEOUT, MAX_OUTPUT),
            Ok(b"abc".to_vec())
        );
        assert_eq!(
            run("exit 4", None, TIMEOUT, MAX_OUTPUT),
            Err(Failure::Status(Some(4)))
        );
    }
}
