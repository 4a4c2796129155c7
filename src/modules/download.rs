//! Downloads on a host whose size is bounded while they arrive.
//!
//! curl's `--max-filesize` refuses early when the server announces the
//! size, but (before curl 8.4, so on Debian 12) not a body that just keeps
//! coming: `head -c` cuts it one byte past the limit, and a file that long
//! is refused. Used by the scripts that fetch Node.js and the monitor's
//! binary; a mirror cannot fill the host's disk.

/// The shell function `ocfo_fetch URL FILE MAX`: downloads URL to FILE, or
/// fails with a message naming URL when it is unreachable or longer than
/// MAX bytes. Safe under `set -eu`. Paste it before a script's text with
/// `concat!(fetch_function!(), r#"..."#)`.
macro_rules! fetch_function {
    () => {
        r#"ocfo_fetch() {
  rm -f -- "$2" "$2.rc"
  { ocfo_rc=0
    curl -fsSL --proto '=https,http,file' --retry 3 --connect-timeout 15 --max-time 900 --max-filesize "$3" -- "$1" || ocfo_rc=$?
    echo "$ocfo_rc" > "$2.rc"; } | head -c "$(($3 + 1))" > "$2"
  if [ "$(wc -c < "$2")" -gt "$3" ]; then
    echo "$1 is larger than the limit of $3 bytes: refused" >&2; return 1
  fi
  ocfo_rc=$(cat -- "$2.rc" 2>/dev/null || echo unknown); rm -f -- "$2.rc"
  case $ocfo_rc in
    0) ;;
    63) echo "$1 is larger than the limit of $3 bytes: refused" >&2; return 1 ;;
    *) echo "cannot download $1 (curl exit status $ocfo_rc)" >&2; return 1 ;;
  esac
}
"#
    };
}
pub(crate) use fetch_function;

/// The largest Node.js tarball accepted (the official linux-x64 `.tar.gz`
/// of 24.21.0 is 55 MiB).
pub const MAX_NODE_TARBALL: u64 = 100 * 1024 * 1024;
/// The largest ocfo binary accepted from `monitor.binary_source`: a static
/// release build is about 15 MiB, but a debug build (which the fetch's lab
/// test serves) is about 180 MiB.
pub const MAX_MONITOR_BINARY: u64 = 256 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use std::process::Command;

    /// `ocfo_fetch` run by the local `sh` with `file://` URLs.
    fn fetch(url: &str, dest: &std::path::Path, max: u64) -> (bool, String) {
        let script = concat!(
            fetch_function!(),
            "set -eu\nocfo_fetch \"$1\" \"$2\" \"$3\"\n"
        );
        let out = Command::new("sh")
            .args(["-c", script, "sh", url, dest.to_str().unwrap()])
            .arg(max.to_string())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[test]
    fn a_download_over_the_limit_is_refused_and_one_under_it_kept() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 5000]).unwrap();
        let dest = dir.path().join("got");
        let url = format!("file://{}", big.display());
        let (ok, err) = fetch(&url, &dest, 4999);
        assert!(!ok);
        assert!(err.contains("larger than the limit of 4999 bytes"), "{err}");
        let (ok, err) = fetch(&url, &dest, 5000);
        assert!(ok, "{err}");
        assert_eq!(std::fs::read(&dest).unwrap().len(), 5000);
        assert!(!dir.path().join("got.rc").exists());
        let (ok, err) = fetch(&format!("file://{}/none", dir.path().display()), &dest, 10);
        assert!(!ok);
        assert!(err.contains("cannot download file://"), "{err}");
    }

    /// A body with no announced size that goes on past the limit (a FIFO
    /// fed forever stands in for a server streaming without
    /// Content-Length): cut, refused, and the fetch returns.
    #[test]
    fn an_endless_body_is_cut_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("endless");
        assert!(Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let mut feeder = Command::new("sh")
            .args(["-c", "exec yes > \"$1\"", "sh", fifo.to_str().unwrap()])
            .spawn()
            .unwrap();
        let dest = dir.path().join("got");
        let started = std::time::Instant::now();
        let (ok, err) = fetch(&format!("file://{}", fifo.display()), &dest, 100_000);
        let _ = feeder.kill();
        let _ = feeder.wait();
        assert!(!ok);
        assert!(
            err.contains("larger than the limit of 100000 bytes"),
            "{err}"
        );
        assert_eq!(std::fs::metadata(&dest).unwrap().len(), 100_001);
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
    }
}
