//! Child processes run bounded: a time limit (then killed), and at most
//! [`MAX_OUTPUT`] kept of each of stdout and stderr, the rest read and dropped.
//! Used by the hosts' daemons (the standby's monitor, the primary's workspace
//! watcher), whose children may run code the gateway user planted.

use std::time::Duration;

use tokio::process::Command;

/// The most kept of each of a child's stdout and stderr. The child may be a
/// git hook the gateway user planted: it can print gigabytes, so the rest is
/// read and dropped as it arrives, never held.
pub const MAX_OUTPUT: usize = 256 * 1024;

/// Runs `cmd` to its end within `timeout` (then it is killed), keeping at
/// most [`MAX_OUTPUT`] bytes of each of its stdout and stderr.
pub async fn run(cmd: &mut Command, timeout: Duration) -> Result<String, String> {
    let what = format!("{:?}", cmd.as_std());
    // Which program runs (after `systemd-run … --`), never its arguments:
    // the log shows that promotions and demotions start no Node process.
    let program = program_of(cmd.as_std());
    // systemctl reads the gateway's state every round: logged only at
    // debug, or the journal would hold a line a second.
    if program == "systemctl" {
        tracing::debug!(program = %program, "child process");
    } else {
        tracing::info!(program = %program, "child process");
    }
    cmd.kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("{what}: {e}"))?;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let finished = async {
        let (out, err, status) = tokio::join!(
            read_capped(stdout, MAX_OUTPUT),
            read_capped(stderr, MAX_OUTPUT),
            child.wait()
        );
        Ok::<_, std::io::Error>((out?, err?, status?))
    };
    let (out, err, status) = tokio::time::timeout(timeout, finished)
        .await
        .map_err(|_| format!("{what} did not finish within {}s", timeout.as_secs()))?
        .map_err(|e| format!("{what}: {e}"))?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    if status.success() {
        Ok(text(&out))
    } else {
        Err(format!("{what} failed: {}", text(&err)))
    }
}

/// The program a command runs: the one after `--` for `systemd-run`.
fn program_of(cmd: &std::process::Command) -> String {
    let args: Vec<_> = cmd.get_args().collect();
    let inner = args.iter().position(|a| *a == "--").and_then(|i| {
        // `nice -n N PROGRAM`: the program is what runs.
        let skip = if args.get(i + 1).is_some_and(|a| *a == "nice") {
            3
        } else {
            0
        };
        args.get(i + 1 + skip).copied()
    });
    inner
        .unwrap_or(cmd.get_program())
        .to_string_lossy()
        .into_owned()
}

/// Everything `pipe` gives until its end, of which the first `cap` bytes are
/// kept and the rest dropped as it is read (the child is never blocked on a
/// full pipe, and memory stays bounded).
async fn read_capped<R>(pipe: Option<R>, cap: usize) -> std::io::Result<Vec<u8>>
where
    R: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut kept = Vec::new();
    let Some(mut pipe) = pipe else {
        return Ok(kept);
    };
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = pipe.read(&mut chunk).await?;
        if n == 0 {
            return Ok(kept);
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_names_the_program_a_transient_unit_runs() {
        let mut c = Command::new("systemd-run");
        c.args([
            "--quiet",
            "--wait",
            "--",
            "/usr/bin/git",
            "-C",
            "/w",
            "pull",
        ]);
        assert_eq!(program_of(c.as_std()), "/usr/bin/git");
        assert_eq!(
            program_of(Command::new("systemctl").arg("is-active").as_std()),
            "systemctl"
        );
    }

    /// Peak resident memory of this process (`VmHWM`), in KiB.
    fn peak_rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn a_child_streaming_200_mb_is_cut_while_read() {
        // A planted hook printing 200 MB: before, `output()` held all of it
        // before cutting, so the monitor's memory grew by 200 MB.
        let before = peak_rss_kib();
        let started = std::time::Instant::now();
        let mut c = Command::new("sh");
        c.args([
            "-c",
            "head -c 200000000 /dev/zero; head -c 200000000 /dev/zero >&2",
        ]);
        let out = run(&mut c, Duration::from_secs(60)).await.unwrap();
        assert_eq!(out.len(), MAX_OUTPUT);
        assert!(started.elapsed() < Duration::from_secs(60));
        let grown = peak_rss_kib().saturating_sub(before);
        assert!(grown < 64 * 1024, "peak memory grew by {grown} KiB");
        // A failure keeps the start of stderr, bounded too.
        let mut c = Command::new("sh");
        c.args(["-c", "echo why >&2; head -c 5000000 /dev/zero >&2; exit 3"]);
        let err = run(&mut c, Duration::from_secs(60)).await.unwrap_err();
        assert!(err.contains("failed: why"), "{:.200}", err);
        assert!(err.len() < MAX_OUTPUT + 1024);
    }

    #[tokio::test]
    async fn a_child_that_streams_and_hangs_is_killed_at_the_timeout() {
        let started = std::time::Instant::now();
        let mut c = Command::new("sh");
        c.args(["-c", "head -c 50000000 /dev/zero; exec sleep 60"]);
        let err = run(&mut c, Duration::from_secs(2)).await.unwrap_err();
        assert!(err.contains("did not finish within 2s"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn reading_keeps_at_most_the_cap() {
        let data = vec![7u8; 1_000_000];
        let kept = read_capped(Some(&data[..]), 1000).await.unwrap();
        assert_eq!(kept, vec![7u8; 1000]);
        let kept = read_capped(Some(&data[..10]), 1000).await.unwrap();
        assert_eq!(kept.len(), 10);
        assert!(read_capped(None::<&[u8]>, 10).await.unwrap().is_empty());
    }
}
