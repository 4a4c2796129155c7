//! `ocfo lab`: two real Debian hosts (systemd as PID 1, sshd, apt, their own
//! firewall) booted with systemd-nspawn on this machine, on a private bridge,
//! with a ready inventory for them.
//!
//! `image` builds the cached base image and Node.js mirror, `net` the bridge,
//! namespaces and NAT, `host` each host's root and boot, `inventory` the
//! inventory file. Machine-side state lives in /var/lib/ocfo/lab/<name>.

mod host;
mod image;
mod inventory;
mod net;
mod prereqs;
mod sys;
pub mod world;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use image::{Suite, NODE_VERSION, NPM_VERSION};
pub use prereqs::is_root;
pub use sys::LabError;
use sys::{other, run, sh};

/// Every host a lab may have, in priority order; a pair has the first two.
pub const NODES: [&str; 3] = ["primary", "standby", "standby2"];
/// Where the Node.js mirror and the workspace repository appear on the hosts.
pub const MIRROR_MOUNT: &str = "/srv/ocfo-lab/node-mirror";
pub const WORKSPACE_MOUNT: &str = "/srv/ocfo-lab/workspace.git";

pub fn labs_dir() -> PathBuf {
    PathBuf::from("/var/lib/ocfo/lab")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostState {
    pub node: String,
    pub address: String,
    pub netns: String,
    pub veth: String,
    pub machine: String,
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    pub name: String,
    pub subnet: String,
    /// The first three octets of the /24.
    pub prefix: String,
    pub bridge: String,
    pub state_dir: PathBuf,
    /// Where the key, known_hosts and inventory are written.
    pub dir: PathBuf,
    pub ip_forward_before: String,
    pub hosts: BTreeMap<String, HostState>,
    /// The standby's channel: a second Telegram bot (the default), or the
    /// Discord variant that keeps the plugin path covered.
    #[serde(default)]
    pub standby_channel: StandbyChannel,
    /// Each host's memory cap (systemd's `MemoryMax`, e.g. `2G`: the
    /// guide's VPS), applied when a host boots; none: uncapped.
    #[serde(default)]
    pub memory_max: Option<String>,
    /// The release the hosts run; fixed when the lab is created.
    #[serde(default)]
    pub suite: Suite,
}

/// Which channel the lab's standby owns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StandbyChannel {
    /// A second Telegram bot, served by the chat world like the primary's.
    #[default]
    Telegram,
    /// Discord (a plugin, armed and started for real) with a fake token: it
    /// never connects, so the standby's answers cannot be chatted with.
    Discord,
}

impl LabState {
    pub fn host(&self, node: &str) -> Result<&HostState, LabError> {
        self.hosts.get(node).ok_or_else(|| {
            other(format!(
                "no host `{node}` in lab {} (hosts: {})",
                self.name,
                self.hosts.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }

    pub fn known_hosts_path(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    pub fn inventory_path(&self) -> PathBuf {
        self.dir.join("inventory.yaml")
    }

    fn state_file(&self) -> PathBuf {
        self.state_dir.join("state.json")
    }

    fn save(&self) -> Result<(), LabError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| other(e.to_string()))?;
        crate::fsutil::write_atomic(&self.state_file(), &json, 0o644)
            .map_err(|e| other(format!("cannot save the lab state: {e}")))
    }

    /// The lab as `up` left it.
    pub fn load(name: &str) -> Result<LabState, LabError> {
        let path = labs_dir().join(name).join("state.json");
        let text = std::fs::read_to_string(&path).map_err(|_| {
            other(format!(
                "there is no lab `{name}`: start it with `ocfo lab up --name {name}`"
            ))
        })?;
        serde_json::from_str(&text).map_err(|e| {
            other(format!(
                "{} is damaged ({e}); `ocfo lab down --name {name}` cleans up",
                path.display()
            ))
        })
    }
}

pub fn list_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(labs_dir())
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().join("state.json").exists())
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The lab whose hosts this inventory deploys to, if any: drills chat
/// through its world. Matched on the hosts' addresses, not the file's path,
/// so an edited copy of the lab's inventory still finds its lab.
pub fn for_hosts(primary: &str, standby: &str) -> Option<LabState> {
    list_names()
        .iter()
        .filter_map(|n| LabState::load(n).ok())
        .find(|l| {
            let at = |node: &str| l.hosts.get(node).map(|h| h.address.as_str());
            at("primary") == Some(primary) && at("standby") == Some(standby)
        })
}

/// The extra CA certificates this machine trusts (a TLS-inspecting proxy).
pub fn machine_ca_certificates() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/usr/local/share/ca-certificates")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "crt"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[derive(Debug, Clone)]
pub struct UpOptions {
    pub name: String,
    pub dir: Option<PathBuf>,
    /// `A.B.C.0/24`; derived from the name when absent.
    pub subnet: Option<String>,
    pub refresh: bool,
    /// The standby's channel; `None` keeps an existing lab's (else Telegram).
    pub standby_channel: Option<StandbyChannel>,
    /// Each host's memory cap (`2G`, `1536M`); `None` keeps an existing
    /// lab's. Takes effect when a host boots.
    pub memory_max: Option<String>,
    /// The hosts' release; `None` keeps an existing lab's (else Debian 12).
    pub suite: Option<Suite>,
    /// 2 (a pair) or 3 (a chain with `standby2`); `None` keeps an existing
    /// lab's (else 2).
    pub nodes: Option<usize>,
}

/// A memory size as systemd reads it: digits and an optional K, M or G.
pub fn parse_memory_max(s: &str) -> Result<String, LabError> {
    let digits = s.trim_end_matches(['K', 'M', 'G']);
    let ok = !digits.is_empty()
        && digits.len() + 1 >= s.len()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u64>().is_ok_and(|n| n > 0);
    if ok {
        Ok(s.to_string())
    } else {
        Err(other(format!(
            "--memory-max `{s}` is not a size like 2G, 1536M or 2097152K"
        )))
    }
}

fn validate_name(name: &str) -> Result<(), LabError> {
    let ok = !name.is_empty()
        && name.len() <= 8
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(other(format!("lab name `{name}` must be 1-8 lower-case letters and digits, starting with a letter (it names network interfaces)")))
    }
}

/// A /24 in 10.231.0.0-10.250.255.0 picked from the name, so labs with
/// different names do not collide.
fn default_prefix(name: &str) -> String {
    let h = name.bytes().fold(2166136261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    });
    format!("10.{}.{}", 231 + (h % 20), (h >> 8) % 256)
}

fn parse_subnet(s: &str) -> Result<String, LabError> {
    let (net, len) = s.split_once('/').unwrap_or((s, "24"));
    let octets: Vec<u8> = net.split('.').filter_map(|o| o.parse().ok()).collect();
    if len != "24" || octets.len() != 4 || octets[3] != 0 {
        return Err(other(format!(
            "--subnet `{s}` must be a /24 like 10.231.0.0/24"
        )));
    }
    Ok(format!("{}.{}.{}", octets[0], octets[1], octets[2]))
}

fn new_state(opts: &UpOptions) -> Result<LabState, LabError> {
    let name = &opts.name;
    let prefix = match &opts.subnet {
        Some(s) => parse_subnet(s)?,
        None => default_prefix(name),
    };
    let state_dir = labs_dir().join(name);
    let count = opts.nodes.unwrap_or(2);
    if !(2..=NODES.len()).contains(&count) {
        return Err(other(format!(
            "--nodes {count}: a lab has 2 hosts (primary, standby) or 3 (and standby2)"
        )));
    }
    let hosts = NODES[..count]
        .iter()
        .enumerate()
        .map(|(i, node)| {
            // One letter per host in the interface name (15 bytes at most).
            let short = ["p", "s", "t"][i];
            (
                node.to_string(),
                HostState {
                    node: node.to_string(),
                    address: format!("{prefix}.{}", 11 + i),
                    netns: format!("ocfo-{name}-{node}"),
                    veth: format!("ocfo{name}{short}"),
                    machine: format!("ocfo-{name}-{node}"),
                    pid: None,
                },
            )
        })
        .collect();
    Ok(LabState {
        name: name.clone(),
        subnet: format!("{prefix}.0/24"),
        prefix,
        bridge: format!("ocfo{name}"),
        dir: opts.dir.clone().unwrap_or_else(|| state_dir.clone()),
        state_dir,
        ip_forward_before: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "0".into()),
        hosts,
        standby_channel: opts.standby_channel.unwrap_or_default(),
        memory_max: opts
            .memory_max
            .as_deref()
            .map(parse_memory_max)
            .transpose()?,
        suite: opts.suite.unwrap_or_default(),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct UpReport {
    pub lab: LabState,
    pub seconds: f64,
    pub base_built: bool,
}

/// Brings the lab up, or repairs it: every step checks before it acts, so a
/// second `up` leaves one healthy lab.
pub fn up(opts: &UpOptions) -> Result<UpReport, LabError> {
    let start = Instant::now();
    validate_name(&opts.name)?;
    prereqs::check()?;
    let mut lab = match LabState::load(&opts.name) {
        Ok(mut existing) => {
            if let Some(d) = &opts.dir {
                existing.dir = d.clone();
            }
            if let Some(c) = opts.standby_channel {
                existing.standby_channel = c;
            }
            if let Some(m) = &opts.memory_max {
                existing.memory_max = Some(parse_memory_max(m)?);
            }
            if let Some(s) = opts.suite.filter(|s| *s != existing.suite) {
                return Err(other(format!(
                    "lab `{}` runs {}, not {}; `ocfo lab down --name {}` first to change it",
                    existing.name,
                    existing.suite.release(),
                    s.release(),
                    existing.name
                )));
            }
            if let Some(n) = opts.nodes.filter(|n| *n != existing.hosts.len()) {
                return Err(other(format!(
                    "lab `{}` has {} hosts, not {n}; `ocfo lab down --name {}` first to change it",
                    existing.name,
                    existing.hosts.len(),
                    existing.name
                )));
            }
            if let Some(s) = &opts.subnet {
                if parse_subnet(s)? != existing.prefix {
                    return Err(other(format!(
                        "lab `{}` already uses {}; `ocfo lab down --name {}` first to change it",
                        existing.name, existing.subnet, existing.name
                    )));
                }
            }
            existing
        }
        Err(_) => new_state(opts)?,
    };
    std::fs::create_dir_all(&lab.state_dir)
        .map_err(|e| other(format!("cannot create {}: {e}", lab.state_dir.display())))?;
    std::fs::create_dir_all(&lab.dir)
        .map_err(|e| other(format!("cannot create {}: {e}", lab.dir.display())))?;
    lab.save()?;

    let base_built = opts.refresh || !image::base_dir(lab.suite).join(".ocfo-complete").exists();
    let base = image::ensure_base(lab.suite, opts.refresh)?;
    let mirror = image::ensure_node_mirror()?;
    ensure_keys(&lab)?;
    ensure_workspace(&lab)?;
    net::ensure(&lab)?;
    let world = world::ensure(&lab)?;

    let pubkey = std::fs::read_to_string(lab.key_path().with_extension("pub"))
        .map_err(|e| other(e.to_string()))?;
    let mut known_hosts = String::new();
    let nodes: Vec<String> = lab.hosts.keys().cloned().collect();
    for node in &nodes {
        let root = host::ensure_root(&lab, node, &base)?;
        host::prepare(&lab, node, &root, &pubkey)?;
        let hk = host::host_public_key(&root)?;
        let mut parts = hk.split_whitespace();
        known_hosts.push_str(&format!(
            "{} {} {}\n",
            lab.host(node)?.address,
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("")
        ));
        if !host::is_running(lab.host(node)?) {
            let pid = host::boot(&lab, node, &mirror)?;
            if let Some(h) = lab.hosts.get_mut(node) {
                h.pid = Some(pid);
            }
            lab.save()?;
        }
    }
    crate::fsutil::write_atomic(&lab.known_hosts_path(), known_hosts.as_bytes(), 0o644)
        .map_err(|e| other(e.to_string()))?;
    inventory::write(&lab, &world)?;
    for node in &nodes {
        let h = lab.host(node)?;
        host::wait_for_ssh(&h.address, Duration::from_secs(90))
            .map_err(|e| other(format!("{node}: {e}; {}", host::post_mortem(&lab, node))))?;
    }
    Ok(UpReport {
        seconds: start.elapsed().as_secs_f64(),
        base_built,
        lab,
    })
}

fn ensure_keys(lab: &LabState) -> Result<(), LabError> {
    for (path, comment) in [
        (lab.key_path(), "ocfo-lab"),
        (lab.dir.join("workspace_deploy_key"), "ocfo-lab-workspace"),
    ] {
        if !path.exists() {
            sys::keygen(&path, comment)?;
        }
    }
    let token = lab.dir.join("secrets/gateway_token");
    if !token.exists() {
        let value: String = (0..24)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        crate::fsutil::write_atomic(&token, format!("{value}\n").as_bytes(), 0o600)
            .map_err(|e| other(e.to_string()))?;
    }
    Ok(())
}

/// A bare repository with one commit on `main`, writable by every user of
/// the hosts (the gateway's user differs from the machine's root).
fn ensure_workspace(lab: &LabState) -> Result<(), LabError> {
    let repo = lab.state_dir.join("workspace.git");
    if repo.join("HEAD").exists() {
        return Ok(());
    }
    let r = repo.display().to_string();
    sh(&[
        "git",
        "init",
        "-q",
        "--bare",
        "--shared=0666",
        "-b",
        "main",
        &r,
    ])?;
    let seed = tempfile::tempdir().map_err(|e| other(e.to_string()))?;
    let s = seed.path().display().to_string();
    sh(&["git", "clone", "-q", &r, &s])?;
    std::fs::write(
        seed.path().join("README.md"),
        "# OpenClaw workspace (ocfo lab)\n",
    )
    .map_err(|e| other(e.to_string()))?;
    let git = |args: &[&str]| {
        let mut c = std::process::Command::new("git");
        c.arg("-C")
            .arg(seed.path())
            .args([
                "-c",
                "user.name=ocfo lab",
                "-c",
                "user.email=lab@ocfo.invalid",
            ])
            .args(args);
        run(&mut c)
    };
    git(&["add", "README.md"])?;
    git(&["commit", "-q", "-m", "Initial workspace"])?;
    git(&["push", "-q", "origin", "HEAD:main"])?;
    sh(&["chmod", "-R", "a+rwX", &r])?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    pub node: String,
    pub address: String,
    pub running: bool,
    pub ssh: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub name: String,
    pub subnet: String,
    pub dir: PathBuf,
    pub inventory: PathBuf,
    pub hosts: Vec<HostStatus>,
    pub cuts: Vec<(String, String)>,
    pub standby_channel: StandbyChannel,
    /// The hosts' release.
    pub suite: Suite,
    /// The chat world's bots, when it runs.
    pub world: Option<Vec<world::state::BotStatus>>,
}

pub fn status(name: &str) -> Result<Status, LabError> {
    let lab = LabState::load(name)?;
    let hosts = lab
        .hosts
        .values()
        .map(|h| HostStatus {
            node: h.node.clone(),
            address: h.address.clone(),
            running: host::is_running(h),
            ssh: host::is_running(h)
                && host::wait_for_ssh(&h.address, Duration::from_millis(800)).is_ok(),
        })
        .collect();
    Ok(Status {
        name: lab.name.clone(),
        subnet: lab.subnet.clone(),
        dir: lab.dir.clone(),
        inventory: lab.inventory_path(),
        cuts: net::cuts(&lab),
        hosts,
        standby_channel: lab.standby_channel,
        suite: lab.suite,
        world: world::is_running(&lab)
            .then(|| world::block_on(world::client::WorldClient::for_lab(&lab).status()).ok())
            .flatten()
            .and_then(Result::ok),
    })
}

/// Stops the hosts and removes roots, namespaces, bridge, NAT rules and
/// mounts; `purge` also drops the cached base image and Node mirror.
pub fn down(name: &str, purge: bool) -> Result<(), LabError> {
    prereqs::check()?;
    let mut problems = Vec::new();
    if let Ok(lab) = LabState::load(name) {
        world::stop(&lab);
        for h in lab.hosts.values() {
            if let Err(e) = host::stop(h) {
                problems.push(e.to_string());
            }
        }
        for node in lab.hosts.keys() {
            if let Err(e) = host::unmount(&lab, node) {
                problems.push(e.to_string());
            }
        }
        problems.extend(net::remove(&lab));
        if let Err(e) = std::fs::remove_dir_all(&lab.state_dir) {
            problems.push(format!("cannot remove {}: {e}", lab.state_dir.display()));
        }
        if lab.dir != lab.state_dir {
            for f in [
                "id_ed25519",
                "id_ed25519.pub",
                "known_hosts",
                "inventory.yaml",
                "workspace_deploy_key",
                "workspace_deploy_key.pub",
                "secrets/gateway_token",
            ]
            .into_iter()
            .chain(inventory::secret_files())
            {
                let _ = std::fs::remove_file(lab.dir.join(f));
            }
            let _ = std::fs::remove_dir(lab.dir.join("secrets"));
        }
    }
    if purge {
        let cache = image::cache_dir();
        if cache.exists() {
            if let Err(e) = std::fs::remove_dir_all(&cache) {
                problems.push(format!("cannot remove {}: {e}", cache.display()));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(other(format!(
            "lab `{name}` is down, with problems:\n  {}",
            problems.join("\n  ")
        )))
    }
}

pub fn stop(name: &str, node: &str) -> Result<(), LabError> {
    let lab = LabState::load(name)?;
    host::stop(lab.host(node)?)
}

pub fn start(name: &str, node: &str) -> Result<(), LabError> {
    prereqs::check()?;
    let mut lab = LabState::load(name)?;
    if host::is_running(lab.host(node)?) {
        return Ok(());
    }
    net::ensure(&lab)?;
    host::ensure_root(&lab, node, &image::base_dir(lab.suite))?;
    let pid = host::boot(&lab, node, &image::mirror_dir())?;
    if let Some(h) = lab.hosts.get_mut(node) {
        h.pid = Some(pid);
    }
    lab.save()?;
    host::wait_for_ssh(&lab.host(node)?.address, Duration::from_secs(90))
        .map_err(|e| other(format!("{node}: {e}; {}", host::post_mortem(&lab, node))))?;
    Ok(())
}

/// `ocfo lab chat`: writes to the node's bot as the lab's user and waits
/// for the answer.
pub fn chat(
    name: &str,
    node: &str,
    text: &str,
    wait: Duration,
) -> Result<world::client::ChatReply, LabError> {
    let lab = LabState::load(name)?;
    lab.host(node)?;
    if node == "standby" && lab.standby_channel == StandbyChannel::Discord {
        return Err(other(format!(
            "lab `{name}`'s standby uses Discord, which the chat world does not stand in for; `ocfo lab up --name {name} --standby-channel telegram` and a deploy give it a Telegram bot"
        )));
    }
    let client = world::client::WorldClient::for_lab(&lab);
    world::block_on(client.chat(node, text, wait))?.map_err(other)
}

/// `ocfo lab transcript`: every message each bot received and sent.
pub fn transcript(name: &str) -> Result<Vec<world::client::TranscriptLine>, LabError> {
    let lab = LabState::load(name)?;
    let client = world::client::WorldClient::for_lab(&lab);
    world::block_on(async {
        let events = client.all_events().await?;
        let bots = client.status().await?;
        Ok::<_, String>(world::client::transcript(&events, &bots))
    })?
    .map_err(other)
}

/// `ocfo lab world`: the chat world's process, until SIGTERM.
pub fn serve_world(name: &str) -> Result<(), LabError> {
    let lab = LabState::load(name)?;
    let config = world::load_config(&lab)?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| other(e.to_string()))?
        .block_on(world::serve(config))
        .map_err(other)
}

pub fn cut(name: &str, a: &str, b: &str) -> Result<(), LabError> {
    net::cut(&LabState::load(name)?, a, b)
}

pub fn heal(name: &str) -> Result<(), LabError> {
    net::heal(&LabState::load(name)?)
}

/// Disk used by the cached base image and mirror, and by a lab's own state.
pub fn disk_usage(name: &str) -> (u64, u64) {
    (
        image::disk_usage(&image::cache_dir()),
        image::disk_usage(&labs_dir().join(name)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_cap_is_a_size_systemd_reads() {
        for ok in ["2G", "1536M", "2097152K", "2147483648"] {
            assert_eq!(parse_memory_max(ok).unwrap(), ok);
        }
        for bad in ["", "G", "0", "2GG", "2 G", "-1G", "2g", "1.5G", "2T", "x"] {
            let e = parse_memory_max(bad).unwrap_err().to_string();
            assert!(e.contains("--memory-max"), "{bad}: {e}");
        }
    }
}
