//! What `ocfo lab` needs from the machine, and what to install when it is missing.

use super::sys::{other, LabError};

/// (binary, Debian package that provides it)
const TOOLS: &[(&str, &str)] = &[
    ("debootstrap", "debootstrap"),
    ("systemd-nspawn", "systemd-container"),
    ("iptables", "iptables"),
    ("ip", "iproute2"),
    ("ssh-keygen", "openssh-client"),
    ("git", "git"),
    ("npm", "npm"),
    ("tar", "tar"),
];

fn on_path(bin: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(Into::into))
        .any(|d| d.join(bin).is_file())
}

pub fn check() -> Result<(), LabError> {
    if std::env::consts::OS != "linux" {
        return Err(other(
            "ocfo lab needs Linux (it boots systemd-nspawn containers)",
        ));
    }
    if !is_root() {
        return Err(other(
            "ocfo lab needs root (it creates network namespaces, a bridge, NAT rules and mounts): run it with sudo",
        ));
    }
    let mut missing: Vec<(&str, &str)> =
        TOOLS.iter().copied().filter(|(b, _)| !on_path(b)).collect();
    // On Debian and Ubuntu the lab installs what it needs, saying so, unless
    // told not to: `lab up` is the first command a new user runs.
    if !missing.is_empty()
        && on_path("apt-get")
        && std::env::var_os("OCFO_LAB_NO_INSTALL").is_none()
    {
        let mut pkgs: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
        pkgs.dedup();
        eprintln!("installing what the lab needs: apt-get install -y {} (set OCFO_LAB_NO_INSTALL=1 to refuse)", pkgs.join(" "));
        let _ = super::sys::sh(&["apt-get", "update", "-qq"]);
        let mut args = vec!["apt-get", "install", "-y", "-qq", "--no-install-recommends"];
        args.extend(pkgs.iter().copied());
        if let Err(e) = super::sys::sh(&args) {
            return Err(other(format!(
                "installing the lab's prerequisites failed: {e}"
            )));
        }
        missing = TOOLS.iter().copied().filter(|(b, _)| !on_path(b)).collect();
    }
    if !missing.is_empty() {
        let bins: Vec<&str> = missing.iter().map(|(b, _)| *b).collect();
        let mut pkgs: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
        pkgs.dedup();
        return Err(other(format!(
            "ocfo lab needs {} on PATH; install with: apt-get install -y {}",
            bins.join(", "),
            pkgs.join(" ")
        )));
    }
    Ok(())
}

pub fn is_root() -> bool {
    // SAFETY-free: read our effective uid from /proc instead of libc.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
