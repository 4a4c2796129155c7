//! Cached artefacts shared by every lab: a base image per release (Debian 12
//! and 13 from Debian's archive, Ubuntu 24.04 from Ubuntu's) and a Node.js
//! mirror in the official layout, built from registry packages (the lab's
//! hosts cannot reach nodejs.org).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::sys::{other, run, sh, LabError};

pub const DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";
pub const UBUNTU_MIRROR: &str = "http://archive.ubuntu.com/ubuntu";
/// Ubuntu's archive keyring, which Debian does not package: the
/// `ubuntu-keyring` package from Ubuntu's own pool, checked against the
/// SHA-256 pinned here (its `Packages` entry for noble, 2026-12-07) before
/// debootstrap trusts the keys inside it.
const UBUNTU_KEYRING_DEB: &str = "pool/main/u/ubuntu-keyring/ubuntu-keyring_2023.11.28.1_all.deb";
const UBUNTU_KEYRING_SHA256: &str =
    "36de43b15853ccae0028e9a767613770c704833f82586f28eb262f0311adb8a8";
/// A Node.js that satisfies OpenClaw's engines, and the npm shipped with it.
pub const NODE_VERSION: &str = "24.21.0";
pub const NPM_VERSION: &str = "11.21.2";
const PACKAGES: &str =
    "systemd,systemd-sysv,dbus,openssh-server,sudo,iproute2,ca-certificates,curl";

pub fn cache_dir() -> PathBuf {
    PathBuf::from("/var/cache/ocfo/lab")
}

/// The release a lab's hosts run (`ocfo lab up --suite`).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Suite {
    /// Debian 12.
    #[default]
    Bookworm,
    /// Debian 13.
    Trixie,
    /// Ubuntu 24.04 LTS, the guide's own recommendation.
    Noble,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::Bookworm => "bookworm",
            Suite::Trixie => "trixie",
            Suite::Noble => "noble",
        }
    }

    pub fn release(self) -> &'static str {
        match self {
            Suite::Bookworm => "Debian 12 (bookworm)",
            Suite::Trixie => "Debian 13 (trixie)",
            Suite::Noble => "Ubuntu 24.04 (noble)",
        }
    }

    fn is_ubuntu(self) -> bool {
        matches!(self, Suite::Noble)
    }

    /// The apt sources a provider's image of this release carries: the
    /// release, its updates and its security archive, in the deb822 file
    /// the release's own images use. Debian 12 keeps debootstrap's one-line
    /// `sources.list` without the security archive, the minimal image that
    /// ocfo's `apt_security` task exists for.
    fn sources(self) -> Option<(&'static str, String)> {
        let s = self.name();
        Some(match self {
            Suite::Bookworm => return None,
            Suite::Trixie => (
                "etc/apt/sources.list.d/debian.sources",
                format!(
                    "Types: deb\nURIs: {DEBIAN_MIRROR}\nSuites: {s} {s}-updates\nComponents: main\n\
                     Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
                     Types: deb\nURIs: http://security.debian.org/debian-security\nSuites: {s}-security\n\
                     Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
                ),
            ),
            Suite::Noble => (
                "etc/apt/sources.list.d/ubuntu.sources",
                format!(
                    "Types: deb\nURIs: {UBUNTU_MIRROR}\nSuites: {s} {s}-updates {s}-backports\n\
                     Components: main restricted universe multiverse\n\
                     Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n\n\
                     Types: deb\nURIs: http://security.ubuntu.com/ubuntu\nSuites: {s}-security\n\
                     Components: main restricted universe multiverse\n\
                     Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n"
                ),
            ),
        })
    }
}

pub fn base_dir(suite: Suite) -> PathBuf {
    cache_dir().join(format!("base-{}", suite.name()))
}

/// Ubuntu's archive keyring, fetched once and checked against the pinned
/// SHA-256 (no keyring is trusted because a download said so).
fn ubuntu_keyring() -> Result<PathBuf, LabError> {
    let keyring = cache_dir().join("ubuntu-archive-keyring.gpg");
    if keyring.exists() {
        return Ok(keyring);
    }
    let work = tempfile::tempdir_in(cache_dir()).map_err(|e| other(e.to_string()))?;
    let deb = work.path().join("ubuntu-keyring.deb");
    run(Command::new("curl")
        .args(["-fsS", "--max-time", "120", "-o"])
        .arg(&deb)
        .arg(format!("{UBUNTU_MIRROR}/{UBUNTU_KEYRING_DEB}")))?;
    let bytes = std::fs::read(&deb).map_err(|e| other(e.to_string()))?;
    let got = crate::sha256_hex(&bytes);
    if got != UBUNTU_KEYRING_SHA256 {
        return Err(other(format!(
            "{UBUNTU_MIRROR}/{UBUNTU_KEYRING_DEB}: SHA-256 {got}, expected {UBUNTU_KEYRING_SHA256}; refusing its keys"
        )));
    }
    let unpacked = work.path().join("x");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    std::fs::copy(
        unpacked.join("usr/share/keyrings/ubuntu-archive-keyring.gpg"),
        &keyring,
    )
    .map_err(|e| {
        other(format!(
            "the ubuntu-keyring package has no archive keyring: {e}"
        ))
    })?;
    Ok(keyring)
}

pub fn mirror_dir() -> PathBuf {
    cache_dir().join("node-mirror")
}

/// Builds the base image unless a complete one is cached. Built into a
/// temporary folder and renamed, so an interrupted build never looks complete.
pub fn ensure_base(suite: Suite, refresh: bool) -> Result<PathBuf, LabError> {
    let base = base_dir(suite);
    let stamp = base.join(".ocfo-complete");
    if stamp.exists() && !refresh {
        return Ok(base);
    }
    std::fs::create_dir_all(cache_dir())
        .map_err(|e| other(format!("cannot create {}: {e}", cache_dir().display())))?;
    let tmp = cache_dir().join(format!("base-{}.building", suite.name()));
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!(
        "building the {} base image (once; a minute or two)...",
        suite.release()
    );
    let mut debootstrap = Command::new("debootstrap");
    debootstrap
        .arg("--variant=minbase")
        .arg(format!("--include={PACKAGES}"));
    if suite.is_ubuntu() {
        // Debian's debootstrap may predate the release; every Ubuntu release
        // since 7.10 bootstraps with the `gutsy` script.
        debootstrap
            .arg("--components=main,universe")
            .arg(format!("--keyring={}", ubuntu_keyring()?.display()))
            .arg(suite.name())
            .arg(&tmp)
            .arg(UBUNTU_MIRROR)
            .arg("/usr/share/debootstrap/scripts/gutsy");
    } else {
        debootstrap.arg(suite.name()).arg(&tmp).arg(DEBIAN_MIRROR);
    }
    run(&mut debootstrap)?;
    if let Some((sources, content)) = suite.sources() {
        let _ = std::fs::remove_file(tmp.join("etc/apt/sources.list"));
        if let Some(dir) = tmp.join(sources).parent() {
            std::fs::create_dir_all(dir).map_err(|e| other(e.to_string()))?;
        }
        std::fs::write(tmp.join(sources), content).map_err(|e| other(e.to_string()))?;
    }
    if suite.is_ubuntu() {
        // deb822 `Signed-By` names the keyring inside the image; debootstrap
        // installed ubuntu-keyring there, this makes sure of it.
        let dst = tmp.join("usr/share/keyrings/ubuntu-archive-keyring.gpg");
        if !dst.exists() {
            std::fs::copy(ubuntu_keyring()?, &dst).map_err(|e| other(e.to_string()))?;
        }
    }
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
