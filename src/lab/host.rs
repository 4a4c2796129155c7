//! One lab host: its root (an overlay on the base image), its identity (host
//! key, machine id, hostname), and booting and stopping it with systemd-nspawn.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::sys::{other, run, sh, succeeds, LabError};
use super::{HostState, LabState, MIRROR_MOUNT, WORKSPACE_MOUNT};

pub fn host_dir(lab: &LabState, node: &str) -> PathBuf {
    lab.state_dir.join("hosts").join(node)
}

pub fn root(lab: &LabState, node: &str) -> PathBuf {
    host_dir(lab, node).join("root")
}

pub fn is_mounted(path: &Path) -> bool {
    let p = path.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(4) == Some(p.as_str()))
        })
        .unwrap_or(false)
}

/// Mounts the host's root: the read-only base below, the host's own changes above.
pub fn ensure_root(lab: &LabState, node: &str, base: &Path) -> Result<PathBuf, LabError> {
    let dir = host_dir(lab, node);
    for d in ["upper", "work", "root"] {
        std::fs::create_dir_all(dir.join(d))
            .map_err(|e| other(format!("cannot create {}: {e}", dir.join(d).display())))?;
    }
    let root = dir.join("root");
    if !is_mounted(&root) {
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            base.display(),
            dir.join("upper").display(),
            dir.join("work").display()
        );
        sh(&[
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            &opts,
            &root.display().to_string(),
        ])?;
    }
    Ok(root)
}

fn write(path: &Path, content: &[u8], mode: u32) -> Result<(), LabError> {
    crate::fsutil::write_atomic(path, content, mode)
        .map_err(|e| other(format!("cannot write {}: {e}", path.display())))
}

/// Gives a fresh host its identity, once: a later `up` keeps it, as a VPS keeps
/// its host key across reboots.
pub fn prepare(lab: &LabState, node: &str, root: &Path, lab_pubkey: &str) -> Result<(), LabError> {
    let marker = root.join("etc/ocfo-lab-host");
    if marker.exists() {
        return Ok(());
    }
    let hostname = format!("{}-{node}", lab.name);
    let id: String = (0..16)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    write(
        &root.join("etc/machine-id"),
        format!("{id}\n").as_bytes(),
        0o444,
    )?;
    write(
        &root.join("etc/hostname"),
        format!("{hostname}\n").as_bytes(),
        0o644,
    )?;
    let mut hosts = String::from("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n");
    for (n, h) in &lab.hosts {
        hosts.push_str(&format!("{} {}-{n}\n", h.address, lab.name));
    }
    write(&root.join("etc/hosts"), hosts.as_bytes(), 0o644)?;
    let key = root.join("etc/ssh/ssh_host_ed25519_key");
    let _ = std::fs::remove_file(&key);
    let _ = std::fs::remove_file(key.with_extension("pub"));
    super::sys::keygen(&key, &hostname)?;
    std::fs::create_dir_all(root.join("root/.ssh")).map_err(|e| other(e.to_string()))?;
    write(
        &root.join("root/.ssh/authorized_keys"),
        lab_pubkey.as_bytes(),
        0o600,
    )?;
    // The machine's extra CAs (a TLS-inspecting proxy), as a corporate image would have them.
    let ca_dir = root.join("usr/local/share/ca-certificates");
    std::fs::create_dir_all(&ca_dir).map_err(|e| other(e.to_string()))?;
    for ca in super::machine_ca_certificates() {
        if let Some(name) = ca.file_name() {
            let _ = std::fs::copy(&ca, ca_dir.join(name));
        }
    }
    run(std::process::Command::new("chroot")
        .arg(root)
        .arg("update-ca-certificates"))?;
    // The workspace repository is owned by root on the machine; git refuses
    // other owners' repositories unless they are declared safe.
    write(
        &root.join("etc/gitconfig"),
        format!("[safe]\n\tdirectory = {WORKSPACE_MOUNT}\n").as_bytes(),
        0o644,
    )?;
    for m in [MIRROR_MOUNT, WORKSPACE_MOUNT] {
        std::fs::create_dir_all(root.join(m.trim_start_matches('/')))
            .map_err(|e| other(e.to_string()))?;
    }
    write(&marker, b"prepared by ocfo lab\n", 0o644)
}

pub fn host_public_key(root: &Path) -> Result<String, LabError> {
    std::fs::read_to_string(root.join("etc/ssh/ssh_host_ed25519_key.pub"))
        .map_err(|e| other(format!("cannot read the host key: {e}")))
}

pub fn is_running(h: &HostState) -> bool {
    let Some(pid) = h.pid else {
        return false;
    };
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let c = String::from_utf8_lossy(&c);
            c.contains("systemd-nspawn") && c.contains(&h.machine)
        })
        .unwrap_or(false)
}

/// Boots the host in the background; returns the nspawn pid. The shell
/// double-forks, so nspawn outlives ocfo and is never left a zombie.
pub fn boot(lab: &LabState, node: &str, mirror: &Path) -> Result<u32, LabError> {
    let h = lab.host(node)?;
    let root = root(lab, node);
    let log = host_dir(lab, node).join("console.log");
    // A capped host (the guide's 2 GB VPS) runs in a memory cgroup of its
    // own, so its memory is limited and its OOM kills stay inside it.
    let cap: Vec<String> = match &lab.memory_max {
        Some(m) => memory_cap(&h.machine, m)?,
        None => vec![],
    };
    let nspawn = [
        "systemd-nspawn",
        "--quiet",
        "--keep-unit",
        "--register=no",
        &format!("--network-namespace-path=/run/netns/{}", h.netns),
        "--capability=CAP_NET_ADMIN,CAP_NET_RAW",
        "--resolv-conf=copy-host",
        "--console=passive",
        &format!("--bind-ro={}:{MIRROR_MOUNT}", mirror.display()),
        &format!(
            "--bind={}:{WORKSPACE_MOUNT}",
            lab.state_dir.join("workspace.git").display()
        ),
        &format!("--machine={}", h.machine),
        "-D",
        &root.display().to_string(),
        "-b",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect::<Vec<_>>();
    let nspawn = cap
        .into_iter()
        .chain(nspawn)
        .map(|a| crate::shell::quote(&a))
        .collect::<Vec<_>>()
        .join(" ");
    // Like a VPS, a host owns its network sysctls (/proc/sys/net is per
    // network namespace); the rest of /proc/sys stays read-only, as the
    // kernel's settings belong to the machine.
    let script = format!(
        "setsid env SYSTEMD_NSPAWN_API_VFS_WRITABLE=network {nspawn} </dev/null >>{} 2>&1 & echo $!",
        crate::shell::quote(&log.display().to_string())
    );
    let out = sh(&["sh", "-c", &script])?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| other("could not start systemd-nspawn"))
}

/// The command prefix that starts nspawn under `limit` (`2G`): a systemd
/// scope where systemd runs the machine, else a cgroup of ocfo's own under
/// its current memory cgroup (cgroup v1 or v2, as this machine mounts it).
fn memory_cap(machine: &str, limit: &str) -> Result<Vec<String>, LabError> {
    if Path::new("/run/systemd/system").is_dir() {
        return Ok(vec![
            "systemd-run".into(),
            "--scope".into(),
            "--quiet".into(),
            format!("--property=MemoryMax={limit}"),
            "--property=MemorySwapMax=0".into(),
            "--".into(),
        ]);
    }
    let bytes = memory_bytes(limit).ok_or_else(|| other(format!("bad memory size {limit}")))?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| other(format!("cannot read /proc/self/cgroup: {e}")))?;
    let v1 = own.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then(|| format!("/sys/fs/cgroup/memory{}", path.trim_end_matches('/')))
    });
    let (dir, files): (String, &[&str]) = match v1 {
        Some(parent) => (
            format!("{parent}/ocfo-lab-{machine}"),
            &["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"],
        ),
        None => {
            let path = own
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .ok_or_else(|| other("no memory cgroup to cap the host in"))?;
            (
                format!(
                    "/sys/fs/cgroup{}/ocfo-lab-{machine}",
                    path.trim_end_matches('/')
                ),
                &["memory.max", "memory.swap.max"],
            )
        }
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| other(format!("cannot create the memory cgroup {dir}: {e}")))?;
    for (i, f) in files.iter().enumerate() {
        let path = format!("{dir}/{f}");
        let value = if i == 1 && f.ends_with("swap.max") {
            "0".to_string()
        } else {
            bytes.to_string()
        };
        match std::fs::write(&path, &value) {
            Ok(()) => {}
            // Swap accounting is off on many kernels: memory alone caps it.
            Err(_) if i == 1 => {}
            Err(e) => return Err(other(format!("cannot write {path}: {e}"))),
        }
    }
    Ok(vec![
        "sh".into(),
        "-c".into(),
        r#"echo $$ > "$0/cgroup.procs" && exec "$@""#.into(),
        dir,
    ])
}

/// `2G`, `1536M`, `2097152K` or bytes, as systemd reads them.
fn memory_bytes(s: &str) -> Option<u64> {
    let (digits, unit) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 1u64 << 10),
        b'M' => (&s[..s.len() - 1], 1 << 20),
        b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

/// Waits until sshd on the host answers with its banner.
pub fn wait_for_ssh(address: &str, timeout: Duration) -> Result<Duration, LabError> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(mut s) = TcpStream::connect_timeout(
            &format!("{address}:22")
                .parse()
                .map_err(|_| other("bad address"))?,
            Duration::from_millis(500),
        ) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4];
            if s.read_exact(&mut buf).is_ok() && &buf == b"SSH-" {
                return Ok(start.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(other(format!(
        "{address} did not answer SSH within {}s",
        timeout.as_secs()
    )))
}

/// What a host that did not come up leaves behind, kept where a `lab
/// down` (a test's teardown) does not remove it: its console log, and its
/// network as the machine sees it.
pub fn post_mortem(lab: &LabState, node: &str) -> String {
    let Ok(h) = lab.host(node) else {
        return String::new();
    };
    let dir = std::path::Path::new("/var/log/ocfo-lab");
    let stamp = crate::clock::utc_stamp();
    let kept = dir.join(format!("{}-{node}-{stamp}.log", lab.name));
    let mut text = std::fs::read_to_string(host_dir(lab, node).join("console.log"))
        .unwrap_or_else(|e| format!("(no console log: {e})\n"));
    for cmd in [
        vec!["ip", "-n", &h.netns, "-br", "addr"],
        vec!["ip", "-br", "link", "show", &h.veth],
        vec!["ip", "-br", "link", "show", "master", &lab.bridge],
    ] {
        let out = std::process::Command::new(cmd[0]).args(&cmd[1..]).output();
        text.push_str(&format!(
            "\n$ {}\n{}",
            cmd.join(" "),
            out.map(|o| format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ))
            .unwrap_or_else(|e| e.to_string())
        ));
    }
    let saved = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&kept, text));
    match saved {
        Ok(()) => format!("its console log and network are kept in {}", kept.display()),
        Err(e) => format!(
            "its console log is {} (could not keep a copy: {e})",
            host_dir(lab, node).join("console.log").display()
        ),
    }
}

/// Powers the host off (SIGTERM makes nspawn halt the container cleanly),
/// killing it if it does not stop in time.
pub fn stop(h: &HostState) -> Result<(), LabError> {
    let Some(pid) = h.pid.filter(|_| is_running(h)) else {
        return Ok(());
    };
    let pid_s = pid.to_string();
    let _ = sh(&["kill", "-TERM", &pid_s]);
    let start = Instant::now();
    while is_running(h) {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = sh(&["kill", "-KILL", &pid_s]);
            std::thread::sleep(Duration::from_millis(500));
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    release_memory_cap(&h.machine);
    Ok(())
}

/// Removes the host's own memory cgroup, if it had one (empty once nspawn
/// is gone; a systemd scope goes by itself).
fn release_memory_cap(machine: &str) {
    let Ok(own) = std::fs::read_to_string("/proc/self/cgroup") else {
        return;
    };
    for l in own.lines() {
        let mut f = l.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let path = path.trim_end_matches('/');
        let dir = if controllers.split(',').any(|c| c == "memory") {
            format!("/sys/fs/cgroup/memory{path}/ocfo-lab-{machine}")
        } else if controllers.is_empty() {
            format!("/sys/fs/cgroup{path}/ocfo-lab-{machine}")
        } else {
            continue;
        };
        let _ = std::fs::remove_dir(dir);
    }
}

pub fn unmount(lab: &LabState, node: &str) -> Result<(), LabError> {
    let r = root(lab, node);
    if is_mounted(&r) {
        let p = r.display().to_string();
        if !succeeds(&["umount", &p]) {
            sh(&["umount", "-l", &p])?;
        }
    }
    Ok(())
}
