//! Cached artefacts shared by every lab: the Debian base image and a Node.js
//! mirror in the official layout, built from registry packages (the lab's
//! hosts cannot reach nodejs.org).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::sys::{other, run, sh, LabError};

pub const SUITE: &str = "bookworm";
pub const DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";
/// A Node.js that satisfies OpenClaw's engines, and the npm shipped with it.
pub const NODE_VERSION: &str = "24.21.0";
pub const NPM_VERSION: &str = "11.21.2";
const PACKAGES: &str =
    "systemd,systemd-sysv,dbus,openssh-server,sudo,iproute2,ca-certificates,curl";

pub fn cache_dir() -> PathBuf {
    PathBuf::from("/var/cache/ocfo/lab")
}

pub fn base_dir() -> PathBuf {
    cache_dir().join(format!("base-{SUITE}"))
}

pub fn mirror_dir() -> PathBuf {
    cache_dir().join("node-mirror")
}

/// Builds the base image unless a complete one is cached. Built into a
/// temporary folder and renamed, so an interrupted build never looks complete.
pub fn ensure_base(refresh: bool) -> Result<PathBuf, LabError> {
    let base = base_dir();
    let stamp = base.join(".ocfo-complete");
    if stamp.exists() && !refresh {
        return Ok(base);
    }
    std::fs::create_dir_all(cache_dir())
        .map_err(|e| other(format!("cannot create {}: {e}", cache_dir().display())))?;
    let tmp = cache_dir().join(format!("base-{SUITE}.building"));
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!("building the Debian {SUITE} base image (once; about a minute)...");
    run(Command::new("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={PACKAGES}"))
        .arg(SUITE)
        .arg(&tmp)
        .arg(DEBIAN_MIRROR))?;
    // Per-host identity is created at boot; the image must not carry one.
    for f in [
        "ssh_host_ecdsa_key",
        "ssh_host_ecdsa_key.pub",
        "ssh_host_ed25519_key",
        "ssh_host_ed25519_key.pub",
        "ssh_host_rsa_key",
        "ssh_host_rsa_key.pub",
    ] {
        let _ = std::fs::remove_file(tmp.join("etc/ssh").join(f));
    }
    let _ = std::fs::write(tmp.join("etc/machine-id"), "");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::rename(&tmp, &base)
        .map_err(|e| other(format!("cannot move the base image into place: {e}")))?;
    std::fs::write(&stamp, b"ok\n").map_err(|e| other(e.to_string()))?;
    Ok(base)
}

fn node_arch() -> Result<&'static str, LabError> {
    match std::env::consts::ARCH {
        "x86_64" => Ok("x64"),
        "aarch64" => Ok("arm64"),
        a => Err(other(format!("no Node.js build for {a}"))),
    }
}

/// `<mirror>/v<ver>/node-v<ver>-linux-<arch>.tar.gz` + `SHASUMS256.txt`,
/// laid out like nodejs.org/dist.
pub fn ensure_node_mirror() -> Result<PathBuf, LabError> {
    let arch = node_arch()?;
    let name = format!("node-v{NODE_VERSION}-linux-{arch}");
    let dir = mirror_dir().join(format!("v{NODE_VERSION}"));
    let sums = dir.join("SHASUMS256.txt");
    if sums.exists() {
        return Ok(mirror_dir());
    }
    eprintln!("building a local Node.js {NODE_VERSION} mirror from the npm registry (once)...");
    let work = tempfile::tempdir().map_err(|e| other(e.to_string()))?;
    let w = work.path();
    run(Command::new("npm")
        .args([
            "pack",
            "--silent",
            &format!("node-linux-{arch}@{NODE_VERSION}"),
            &format!("npm@{NPM_VERSION}"),
        ])
        .current_dir(w))?;
    let root = w.join(&name);
    std::fs::create_dir_all(root.join("lib/node_modules/npm")).map_err(|e| other(e.to_string()))?;
    let node_tgz = w.join(format!("node-linux-{arch}-{NODE_VERSION}.tgz"));
    let npm_tgz = w.join(format!("npm-{NPM_VERSION}.tgz"));
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&node_tgz)
        .arg("-C")
        .arg(&root)
        .arg("--strip-components=1"))?;
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&npm_tgz)
        .arg("-C")
        .arg(root.join("lib/node_modules/npm"))
        .arg("--strip-components=1"))?;
    let _ = std::fs::remove_file(root.join("package.json"));
    for (link, target) in [
        ("npm", "../lib/node_modules/npm/bin/npm-cli.js"),
        ("npx", "../lib/node_modules/npm/bin/npx-cli.js"),
    ] {
        std::os::unix::fs::symlink(target, root.join("bin").join(link))
            .map_err(|e| other(e.to_string()))?;
    }
    if !root.join("bin/node").exists() {
        return Err(other(format!(
            "node-linux-{arch}@{NODE_VERSION} has no bin/node"
        )));
    }
    std::fs::create_dir_all(&dir).map_err(|e| other(e.to_string()))?;
    let tarball = format!("{name}.tar.gz");
    run(Command::new("tar")
        .args(["--owner=0", "--group=0", "-czf"])
        .arg(dir.join(&tarball))
        .arg("-C")
        .arg(w)
        .arg(&name))?;
    let bytes = std::fs::read(dir.join(&tarball)).map_err(|e| other(e.to_string()))?;
    crate::fsutil::write_atomic(
        &sums,
        format!("{}  {tarball}\n", crate::sha256_hex(&bytes)).as_bytes(),
        0o644,
    )
    .map_err(|e| other(e.to_string()))?;
    Ok(mirror_dir())
}

/// `(Node's arch, SHA-256)` of the lab mirror's tarball, from the
/// `SHASUMS256.txt` this machine wrote when it built the mirror: the lab's
/// inventory pins it (`node.sha256`), since it is not Node's own build.
pub fn node_mirror_sha256() -> Result<(String, String), LabError> {
    let arch = node_arch()?;
    let tarball = format!("node-v{NODE_VERSION}-linux-{arch}.tar.gz");
    let sums = mirror_dir()
        .join(format!("v{NODE_VERSION}"))
        .join("SHASUMS256.txt");
    let text = std::fs::read_to_string(&sums)
        .map_err(|e| other(format!("cannot read {}: {e}", sums.display())))?;
    text.lines()
        .filter_map(|l| l.split_once("  "))
        .find(|(sum, name)| *name == tarball && sum.len() == 64)
        .map(|(sum, _)| (arch.to_string(), sum.to_ascii_lowercase()))
        .ok_or_else(|| other(format!("{} lists no {tarball}", sums.display())))
}

/// Disk used by a folder, in bytes (`du -sb`).
pub fn disk_usage(path: &Path) -> u64 {
    sh(&["du", "-sb", &path.display().to_string()])
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}
