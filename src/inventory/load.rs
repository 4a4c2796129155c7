//! Reads an inventory file into [`Inventory`], collecting every problem.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;

use crate::diagnostics::{Diagnostic, Location, Report};
use crate::fsutil::{read_regular_capped, ReadError};
use crate::secrets::{Redactor, SecretValue};

use super::decode::{is_env_name, join, Decoder, Fields};
use super::env_names;
use super::model::*;
use super::names;
use super::rules;
use super::units::Version;
use super::yaml::{self, Kind, Node};

pub const DEFAULT_NODE_VERSION: &str = "24.21.0";
pub const DEFAULT_NODE_MIRROR: &str = "https://nodejs.org/dist";
pub const DEFAULT_GATEWAY_PORT: u16 = 18789;
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// An inventory is a few kilobytes; this leaves room for long comments.
pub const MAX_INVENTORY: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Resolve `{env}`, `{file}` and `{command}` references (off for `--no-secrets`).
    pub resolve_secrets: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            resolve_secrets: true,
        }
    }
}

/// Resolved secret values keyed by their inventory path.
#[derive(Debug, Default, Clone)]
pub struct Secrets {
    values: HashMap<String, SecretValue>,
    /// Credentials written literally in the inventory: not looked up by
    /// path, only redacted.
    literals: Vec<SecretValue>,
}

impl Secrets {
    pub fn get(&self, secret: &Secret) -> Option<&SecretValue> {
        self.values.get(&secret.path)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn redactor(&self) -> Redactor {
        Redactor::new(self.values.values().chain(&self.literals))
    }

    pub fn values(&self) -> impl Iterator<Item = &SecretValue> {
        self.values.values()
    }
}

pub struct Loaded {
    /// Present when the file has no errors (warnings allowed).
    pub inventory: Option<Inventory>,
    pub secrets: Secrets,
    pub report: Report,
}

/// The checks that need the floors above the inventory (the renderer, the
/// engine's site playbook, the modules). `crate::validate` supplies them and
/// the inventory calls each where it belongs in its own pass, so `validate`
/// reports every problem at once, in the same order and the same words as
/// when they lived here. Without them ([`load_file`], [`load_str`]) the
/// inventory checks what it can see by itself.
pub trait Checks {
    /// The names of ocfo's own handlers, which the operator's may not take.
    fn builtin_handlers(&self) -> Vec<String> {
        Vec::new()
    }

    /// ocfo's own modules (not the operator's), named in the error when a
    /// task uses one.
    fn own_modules(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// Whether a task's arguments fit its module; the error says why.
    fn module_args(&self, _module: &str, _args: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }

    /// The decoded inventory as a whole, after the inventory's own checks
    /// (even when they found errors, so every problem is listed at once).
    fn inventory(&self, _inv: &Inventory, _secrets: &Secrets, _out: &mut Vec<Diagnostic>) {}
}

/// Only what the inventory can see by itself.
pub struct OwnChecks;

impl Checks for OwnChecks {}

/// Reads and checks an inventory file with the inventory's own checks.
pub fn load_file(path: &Path, opts: LoadOptions) -> Loaded {
    load_file_with(path, opts, &OwnChecks)
}

/// Reads and checks an inventory text with the inventory's own checks.
pub fn load_str(source: &str, file: &Path, opts: LoadOptions) -> Loaded {
    load_str_with(source, file, opts, &OwnChecks)
}

/// [`load_file`] with `checks` from a floor above.
pub fn load_file_with(path: &Path, opts: LoadOptions, checks: &dyn Checks) -> Loaded {
    let fail = |msg: String| Loaded {
        inventory: None,
        secrets: Secrets::default(),
        report: Report::new(path, vec![Diagnostic::error(msg)]),
    };
    let bytes = match read_regular_capped(path, MAX_INVENTORY) {
        Ok(b) => b,
        Err(ReadError::Io(e)) => return fail(format!("cannot read the inventory: {e}")),
        Err(e) => return fail(format!("cannot read the inventory: it is {e}")),
    };
    match String::from_utf8(bytes) {
        Ok(source) => load_str_with(&source, path, opts, checks),
        Err(e) => fail(format!(
            "not a YAML text file: invalid UTF-8 at byte {} (is this a binary file?)",
            e.utf8_error().valid_up_to()
        )),
    }
}

/// [`load_str`] with `checks` from a floor above.
pub fn load_str_with(source: &str, file: &Path, opts: LoadOptions, checks: &dyn Checks) -> Loaded {
    let base = file.parent().map(Path::to_path_buf);
    let (root, mut diagnostics) = match yaml::parse(source) {
        Ok(r) => r,
        Err(d) => {
            return Loaded {
                inventory: None,
                secrets: Secrets::default(),
                report: Report::new(file, vec![d]),
            }
        }
    };
    let Some(root) = root else {
        return Loaded {
            inventory: None,
            secrets: Secrets::default(),
            report: Report::new(
                file,
                vec![Diagnostic::error("the inventory is empty").hint(
                    "start from inventory.example.yaml (`ocfo render --help` shows how it is used)",
                )],
            ),
        };
    };
    let mut d = Decoder::default();
    let (inventory, channels) = decode(&mut d, &root, file, checks);

    let mut secrets = Secrets::default();
    if opts.resolve_secrets {
        for s in &d.secrets {
            match s.reference.resolve_from(base.as_deref()) {
                Ok(v) => {
                    secrets.values.insert(s.path.clone(), v);
                }
                Err(e) => d.diagnostics.push(
                    Diagnostic::error(format!("cannot resolve {}: {e}", s.reference))
                        .at(s.path.as_str(), Some(s.loc)),
                ),
            }
        }
    }
    rules::warn_short_secrets(&d.secrets, &secrets, &mut d.diagnostics);
    secrets.literals = std::mem::take(&mut d.literals)
        .into_iter()
        .map(SecretValue::new)
        .collect();
    if let Some(channels) = &channels {
        rules::check_tokens_distinct(channels, &secrets, &mut d.diagnostics);
    }
    if let Some(inv) = &inventory {
        checks.inventory(inv, &secrets, &mut d.diagnostics);
    }
    diagnostics.append(&mut d.diagnostics);
    let report = Report::new(file, diagnostics);
    Loaded {
        inventory: inventory.filter(|_| !report.has_errors()),
        secrets,
        report,
    }
}

const TOP: &[&str] = &[
    "name",
    "ssh",
    "nodes",
    "network",
    "node",
    "openclaw",
    "channels",
    "workspace",
    "monitor",
    "hardening",
    "tasks",
];
const SSH: &[&str] = &["user", "port", "identity_file", "known_hosts"];

/// The inventory when every part decoded, and the channels on their own so
/// the token check can run even when another part is broken.
fn decode(
    d: &mut Decoder,
    root: &Node,
    file: &Path,
    checks: &dyn Checks,
) -> (Option<Inventory>, Option<IndexMap<String, Channel>>) {
    let Some(top) = d.fields(root, "", TOP) else {
        return (None, None);
    };
    let name = d.req_string(&top, "name").and_then(|n| {
        let ok = n.len() <= 40
            && n.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            if let Some(node) = top.get("name") {
                d.error("name", node.loc, format!("`{n}` must be lower-case letters, digits and `-`, starting with a letter, at most 40 long (it names units and hosts)"));
            }
        }
        ok.then_some(n)
    });
    let ssh_defaults = match top.get("ssh") {
        Some(n) => ssh_settings(d, n, "ssh", &default_ssh()),
        None => Some(default_ssh()),
    };
    let channels = top
        .get("channels")
        .map(|n| channels(d, n))
        .unwrap_or_else(|| {
            d.error("", top.loc, "missing required key `channels`");
            None
        });
    let nodes = match (d.required(&top, "nodes"), &ssh_defaults) {
        (Some(n), Some(defaults)) => nodes(d, n, defaults),
        _ => None,
    };
    let network = d
        .required(&top, "network")
        .and_then(|n| network(d, n, file.parent()));
    let node = match top.get("node") {
        Some(n) => node_js(d, n),
        None => Version::parse(DEFAULT_NODE_VERSION)
            .ok()
            .map(|version| NodeJs {
                version,
                mirror: DEFAULT_NODE_MIRROR.into(),
                sha256: Default::default(),
            }),
    };
    let openclaw = d
        .required(&top, "openclaw")
        .and_then(|n| openclaw(d, n, file.parent()));
    let workspace = d.required(&top, "workspace").and_then(|n| workspace(d, n));
    let monitor = match top.get("monitor") {
        Some(n) => monitor(d, n),
        None => Some(default_monitor()),
    };
    let hardening = match top.get("hardening") {
        Some(n) => hardening(d, n),
        None => Some(Hardening {
            fail2ban: true,
            unattended_upgrades: true,
            password_authentication: false,
        }),
    };

    let tasks = match top.get("tasks") {
        None => Some(None),
        Some(n) => super::tasks::load(
            d,
            n,
            file,
            openclaw.as_ref().map(|o| o.user.as_str()),
            checks,
        )
        .map(Some),
    };
    if let (Some(nodes), Some(channels)) = (&nodes, &channels) {
        rules::check_channel_ownership(d, nodes, channels);
    }
    if let (Some(nodes), Some(channels), Some(m)) = (&nodes, &channels, &monitor) {
        rules::check_announce(d, &m.announce, &nodes[1..], channels);
    }
    if let (Some(nodes), Some(m)) = (&nodes, &monitor) {
        if let (Some(last), StandbyMode::Cold) = (nodes.get(2), m.standby) {
            d.diagnostics.push(
                Diagnostic::error("a chain of three needs warm standbys: standby2 knows the standby is there by its running gateway, which a cold standby stops while it watches (both would promote at once)")
                    .at("nodes.standby2", Some(last.loc))
                    .hint("remove `monitor.standby: cold`, or `nodes.standby2`"),
            );
        }
    }
    if let Some(nodes) = &nodes {
        rules::check_nodes_distinct(d, nodes);
        if let Some(net) = &network {
            rules::check_network(d, nodes, net, openclaw.as_ref());
        }
    }

    let inventory = (|| {
        let mut nodes = nodes?.into_iter();
        let (primary, standby, standby2) = (nodes.next()?, nodes.next()?, nodes.next());
        let standby2 = match standby2 {
            Some(n) => Some(n.spec?),
            None => None,
        };
        Some(Inventory {
            file: file.to_path_buf(),
            name: name?,
            primary: primary.spec?,
            standby: standby.spec?,
            standby2,
            network: network?,
            node: node?,
            openclaw: openclaw?,
            channels: channels.clone()?,
            workspace: workspace?,
            monitor: monitor?,
            hardening: hardening?,
            tasks: tasks?,
        })
    })();
    (inventory, channels)
}

fn default_ssh() -> SshSettings {
    SshSettings {
        user: "root".into(),
        port: 22,
        identity_file: None,
        known_hosts: "~/.ssh/known_hosts".into(),
        user_explicit: false,
        port_explicit: false,
    }
}

fn default_monitor() -> MonitorSettings {
    MonitorSettings {
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(800),
        fall: 3,
        fall_window: DEFAULT_FALL_WINDOW,
        rise: 5,
        hold_down: Duration::from_secs(60),
        probe: ProbeMode::Readyz,
        webhook: None,
        flap_max_promotions: 3,
        flap_window: Duration::from_secs(15 * 60),
        standby: StandbyMode::Warm,
        channel_failure: ChannelFailure::Failover,
        channel_grace: Duration::from_secs(60),
        stall_grace: Duration::from_secs(10),
        binary_source: None,
        binary_sha256: Default::default(),
        announce: Default::default(),
        recycle_above_mib: 1536,
    }
}

/// One of a few words, or a located error naming them.
fn choice<T: Copy>(
    d: &mut Decoder,
    f: &Fields,
    key: &str,
    path: &str,
    options: &[(&str, T)],
    default: T,
) -> Option<T> {
    let Some(n) = f.get(key) else {
        return Some(default);
    };
    let word = d.string(n, path)?;
    match options.iter().find(|(w, _)| *w == word) {
        Some((_, v)) => Some(*v),
        None => {
            let names: Vec<&str> = options.iter().map(|(w, _)| *w).collect();
            d.error(
                path,
                n.loc,
                format!("`{word}` is not one of {}", names.join(", ")),
            );
            None
        }
    }
}

fn ssh_settings(
    d: &mut Decoder,
    node: &Node,
    path: &str,
    base: &SshSettings,
) -> Option<SshSettings> {
    let f = d.fields(node, path, SSH)?;
    Some(SshSettings {
        user: match f.get("user") {
            Some(n) => {
                let u = d.opt_string(&f, "user")?;
                if let Err(e) = names::user_name(&u) {
                    d.error(&f.path_of("user"), n.loc, e);
                    return None;
                }
                u
            }
            None => base.user.clone(),
        },
        port: d.port(&f, "port", base.port)?,
        identity_file: match f.get("identity_file") {
            Some(_) => Some(d.opt_string(&f, "identity_file")?),
            None => base.identity_file.clone(),
        },
        known_hosts: match f.get("known_hosts") {
            Some(_) => d.opt_string(&f, "known_hosts")?,
            None => base.known_hosts.clone(),
        },
        user_explicit: base.user_explicit || f.get("user").is_some(),
        port_explicit: base.port_explicit || f.get("port").is_some(),
    })
}

/// A node as decoded, with the places rules need to point at.
pub(super) struct DecodedNode {
    pub role: Role,
    /// The whole node, when every field of it decoded.
    pub spec: Option<NodeSpec>,
    pub channels: Vec<String>,
    pub private_address: Option<std::net::IpAddr>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub loc: Location,
    pub channel_locs: Vec<Location>,
    pub channels_loc: Location,
    pub host_loc: Location,
    pub address_loc: Location,
}

/// The nodes in priority order: the primary, the standby and, for a chain
/// of three, `standby2`.
fn nodes(d: &mut Decoder, node: &Node, ssh: &SshSettings) -> Option<Vec<DecodedNode>> {
    let f = d.fields(node, "nodes", &["primary", "standby", "standby2"])?;
    let primary = d
        .required(&f, "primary")
        .and_then(|n| one_node(d, n, Role::Primary, ssh));
    let standby = d
        .required(&f, "standby")
        .and_then(|n| one_node(d, n, Role::Standby, ssh));
    let standby2 = match f.get("standby2") {
        Some(n) => Some(one_node(d, n, Role::Standby2, ssh)?),
        None => None,
    };
    Some([primary?, standby?].into_iter().chain(standby2).collect())
}

fn one_node(d: &mut Decoder, node: &Node, role: Role, ssh: &SshSettings) -> Option<DecodedNode> {
    let path = join("nodes", role.as_str());
    let f = d.fields(node, &path, &["host", "private_address", "channels", "ssh"])?;
    let host = d
        .req_string(&f, "host")
        .and_then(|h| match names::host(&h) {
            Ok(()) => Some(h),
            Err(e) => {
                d.error(&f.path_of("host"), f.get("host")?.loc, e);
                None
            }
        });
    let address_node = d.required(&f, "private_address");
    let private_address = address_node.and_then(|n| d.ip(n, &f.path_of("private_address")));
    let channels_node = f.get("channels");
    let channels = match channels_node {
        Some(n) => d.string_list(n, &f.path_of("channels")),
        None => Some(Vec::new()),
    };
    let channel_locs = match channels_node.map(|n| &n.kind) {
        Some(Kind::Seq(items)) => items.iter().map(|i| i.loc).collect(),
        _ => Vec::new(),
    };
    let ssh = match f.get("ssh") {
        Some(n) => ssh_settings(d, n, &f.path_of("ssh"), ssh),
        None => Some(ssh.clone()),
    };
    let spec = (|| {
        Some(NodeSpec {
            role,
            host: host.clone()?,
            private_address: private_address?,
            channels: channels.clone()?,
            ssh: ssh.clone()?,
        })
    })();
    Some(DecodedNode {
        role,
        spec,
        channels: channels.unwrap_or_default(),
        private_address,
        host,
        port: ssh.map(|s| s.port),
        loc: node.loc,
        channel_locs,
        channels_loc: channels_node.map_or(node.loc, |n| n.loc),
        host_loc: f.get("host").map_or(node.loc, |n| n.loc),
        address_loc: address_node.map_or(node.loc, |n| n.loc),
    })
}

fn network(d: &mut Decoder, node: &Node, base: Option<&Path>) -> Option<Network> {
    let f = d.fields(
        node,
        "network",
        &["private_cidr", "tailscale", "extra_ca_certificates"],
    )?;
    let cidr = d
        .required(&f, "private_cidr")
        .and_then(|n| d.cidr(n, "network.private_cidr"));
    let tailscale = match f.get("tailscale") {
        None => Some(Tailscale {
            enabled: false,
            auth_key: None,
        }),
        Some(n) => {
            let t = d.fields(n, "network.tailscale", &["enabled", "auth_key"])?;
            let enabled = d.boolean(&t, "enabled", true)?;
            let auth_key = match t.get("auth_key") {
                Some(k) => Some(d.secret(k, "network.tailscale.auth_key")?),
                None => None,
            };
            if enabled && auth_key.is_none() {
                d.error(
                    "network.tailscale",
                    t.loc,
                    "Tailscale is enabled but `auth_key` is missing",
                );
                return None;
            }
            Some(Tailscale { enabled, auth_key })
        }
    };
    let cas = match f.get("extra_ca_certificates") {
        Some(n) => d
            .string_list(n, "network.extra_ca_certificates")
            .and_then(|cas| check_ca_files(d, n, &cas, base).then_some(cas)),
        None => Some(Vec::new()),
    };
    Some(Network {
        private_cidr: cidr?,
        tailscale: tailscale?,
        extra_ca_certificates: cas?,
    })
}

/// Each CA file must exist now (not halfway through a deploy) and install
/// under its own name.
fn check_ca_files(d: &mut Decoder, list: &Node, cas: &[String], base: Option<&Path>) -> bool {
    let Kind::Seq(items) = &list.kind else {
        return true;
    };
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut ok = true;
    for (i, (ca, item)) in cas.iter().zip(items).enumerate() {
        let path = format!("network.extra_ca_certificates[{i}]");
        let local = crate::secrets::laptop_path(ca, base);
        match std::fs::metadata(&local) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                d.error(&path, item.loc, format!("`{ca}` is not a regular file"));
                ok = false;
            }
            Err(e) => {
                d.error(&path, item.loc, format!("cannot read `{ca}`: {e}"));
                ok = false;
            }
        }
        let name = super::names::ca_certificate_name(&local, i);
        if let Some(first) = names.insert(name.clone(), i) {
            d.error(
                &path,
                item.loc,
                format!("installs as `{name}`, like extra_ca_certificates[{first}]; one would overwrite the other"),
            );
            ok = false;
        }
    }
    ok
}

fn node_js(d: &mut Decoder, node: &Node) -> Option<NodeJs> {
    let f = d.fields(node, "node", &["version", "mirror", "sha256"])?;
    let version = match f.get("version") {
        None => Version::parse(DEFAULT_NODE_VERSION).ok(),
        Some(n) => {
            let s = d.string(n, "node.version")?;
            match Version::parse(&s) {
                Err(e) => {
                    d.error("node.version", n.loc, e);
                    None
                }
                Ok(v) if !v.satisfies_openclaw_engines() => {
                    d.error(
                        "node.version",
                        n.loc,
                        format!("Node.js {v} is too old or unsupported for OpenClaw, which needs >=24.16.0 <25 or >=26.1.0"),
                    );
                    None
                }
                Ok(v) => Some(v),
            }
        }
    };
    let mirror = match f.get("mirror") {
        None => Some(DEFAULT_NODE_MIRROR.to_string()),
        Some(n) => download_base(d, n, "node.mirror"),
    };
    let sha256 = match f.get("sha256") {
        None => Some(Default::default()),
        Some(n) => sha256_per_arch(d, n, "node.sha256", super::node_pins::NODE_ARCHS),
    };
    // A mirror's own SHASUMS256.txt proves nothing: a version ocfo does not
    // pin needs the operator's checksum (checked per arch at deploy, when
    // the host's arch is known).
    if let (Some(v), Some(sums)) = (&version, &sha256) {
        let v = v.to_string();
        if sums.is_empty() && super::node_pins::pinned_versions().iter().all(|p| *p != v) {
            d.error(
                "node.version",
                f.get("version").map_or(node.loc, |n| n.loc),
                format!(
                    "ocfo pins the checksums of Node.js {} only: for {v}, set node.sha256 (`x64:` and/or `arm64:`, the SHA-256 of node-v{v}-linux-<arch>.tar.gz from the release's signed SHASUMS256.txt)",
                    super::node_pins::pinned_versions().join(", ")
                ),
            );
            return None;
        }
    }
    Some(NodeJs {
        version: version?,
        mirror: mirror?,
        sha256: sha256?,
    })
}

fn openclaw(d: &mut Decoder, node: &Node, base: Option<&Path>) -> Option<OpenClaw> {
    let f = d.fields(
        node,
        "openclaw",
        &[
            "version",
            "port",
            "bind",
            "gateway_token",
            "model",
            "env",
            "env_allow",
            "config",
            "user",
            "stop_timeout",
            "sandbox",
            "lockfile",
        ],
    )?;
    let version = d.req_string(&f, "version").and_then(|v| {
        let node = f.get("version")?;
        match names::package_version(&v) {
            Ok(()) => Some(v),
            Err(e) => {
                d.error("openclaw.version", node.loc, e);
                None
            }
        }
    });
    let port = d.port(&f, "port", DEFAULT_GATEWAY_PORT);
    let bind = match f.get("bind") {
        None => Some(Bind::Tailnet),
        Some(n) => d.string(n, "openclaw.bind").and_then(|s| {
            let b = Bind::parse(&s);
            if b.is_none() {
                d.error(
                    "openclaw.bind",
                    n.loc,
                    format!("`{s}` is not one of {}", Bind::NAMES.join(", ")),
                );
            }
            b
        }),
    };
    let gateway_token = d
        .required(&f, "gateway_token")
        .and_then(|n| d.secret(n, "openclaw.gateway_token"));
    let model = d.required(&f, "model").and_then(|n| {
        let m = d.fields(n, "openclaw.model", &["primary", "fallbacks"])?;
        let primary = d.req_string(&m, "primary");
        let fallbacks = match m.get("fallbacks") {
            Some(n) => d.string_list(n, "openclaw.model.fallbacks"),
            None => Some(Vec::new()),
        };
        Some(Model {
            primary: primary?,
            fallbacks: fallbacks?,
        })
    });
    let env_allow = match f.get("env_allow") {
        None => Some(Vec::new()),
        Some(n) => env_allow(d, n),
    };
    let env = match (f.get("env"), &env_allow) {
        (None, _) => Some(IndexMap::new()),
        (Some(n), Some(allow)) => env_map(d, n, allow),
        (Some(_), None) => None,
    };
    let config = match f.get("config") {
        None => Some(Value::Map(IndexMap::new())),
        Some(n) => d.entries(n, "openclaw.config").map(|entries| {
            if let Some((k, _)) = entries.iter().find(|(k, _)| k.name == "channels") {
                d.error(
                    "openclaw.config.channels",
                    k.loc,
                    "channels go under the top-level `channels` key, where each is owned by one node",
                );
            }
            literal_credentials(d, n, "openclaw.config");
            d.value(n, "openclaw.config")
        }),
    };
    let user = match f.get("user") {
        None => Some("openclaw".to_string()),
        Some(n) => d.string(n, "openclaw.user").and_then(|u| {
            let checked = names::user_name(&u).and_then(|()| {
                if u == "root" {
                    Err("the gateway must not run as root".to_string())
                } else if u == crate::layout::OPENCLAW_BUILD_USER {
                    Err(format!("`{u}` is the user ocfo builds OpenClaw's npm tree as: the gateway needs its own"))
                } else {
                    Ok(())
                }
            });
            match checked {
                Ok(()) => Some(u),
                Err(e) => {
                    d.error("openclaw.user", n.loc, e);
                    None
                }
            }
        }),
    };
    let stop_timeout = d.duration(&f, "stop_timeout", Duration::from_secs(330), HOUR);
    let sandbox = match f.get("sandbox") {
        None => Some(Sandbox::Strict),
        Some(n) => match d.string(n, "openclaw.sandbox").as_deref() {
            Some("strict") => Some(Sandbox::Strict),
            Some("relaxed") => Some(Sandbox::Relaxed),
            Some(other) => {
                d.error(
                    "openclaw.sandbox",
                    n.loc,
                    format!("`{other}` is not one of strict, relaxed"),
                );
                None
            }
            None => None,
        },
    };
    let lock = version
        .as_deref()
        .and_then(|v| openclaw_lock(d, &f, node, v, base));
    Some(OpenClaw {
        lock: lock?,
        stop_timeout: stop_timeout?,
        sandbox: sandbox?,
        version: version?,
        port: port?,
        bind: bind?,
        gateway_token: gateway_token?,
        model: model?,
        env: env?,
        config: config?,
        user: user?,
    })
}

/// The npm tree of `openclaw.version`: `openclaw.lockfile` (a path on the
/// laptop) when given, else ocfo's own lock for the version; a version with
/// neither is refused, naming the key (`inventory::openclaw_locks`).
fn openclaw_lock(
    d: &mut Decoder,
    f: &Fields,
    node: &Node,
    version: &str,
    base: Option<&Path>,
) -> Option<super::openclaw_locks::Lock> {
    use super::openclaw_locks as locks;
    let Some(n) = f.get("lockfile") else {
        if let Some(lock) = locks::shipped(version) {
            return Some(lock);
        }
        d.error(
            "openclaw.version",
            f.get("version").map_or(node.loc, |n| n.loc),
            format!(
                "ocfo ships npm locks for OpenClaw {} only: for {version}, set openclaw.lockfile to a package-lock.json whose project depends on exactly openclaw {version}, every package with `resolved` and `integrity` (how to make one: docs/deploy.md)",
                locks::shipped_versions().join(", ")
            ),
        );
        return None;
    };
    let path = d.string(n, "openclaw.lockfile")?;
    let local = crate::secrets::laptop_path(&path, base);
    let problem = match read_regular_capped(&local, locks::MAX_LOCKFILE) {
        Err(ReadError::Io(e)) => format!("cannot read `{path}`: {e}"),
        Err(e) => format!("`{path}` is {e}"),
        Ok(bytes) => match String::from_utf8(bytes) {
            Err(_) => format!("`{path}` is not UTF-8 text"),
            Ok(text) => match locks::from_inventory(&text, version) {
                Ok(lock) => return Some(lock),
                Err(e) => format!("`{path}` is not a lock of openclaw {version}: {e}"),
            },
        },
    };
    d.error("openclaw.lockfile", n.loc, problem);
    None
}

/// The folders an operator's `PATH` for the gateway leaves out of the two
/// it needs (OpenClaw's `bin` and Node's), said as a list; `None` when both
/// are on it. The gateway's unit sets a `PATH` with both, which the
/// environment file then replaces.
fn path_misses_openclaw(path: &str) -> Option<String> {
    let want = [
        format!("{}/bin", crate::layout::OPENCLAW_PREFIX),
        format!("{}/bin", crate::layout::NODE_HOME),
    ];
    let missing: Vec<String> = want
        .into_iter()
        .filter(|w| !path.split(':').any(|p| p.trim_end_matches('/') == w))
        .map(|w| format!("`{w}`"))
        .collect();
    (!missing.is_empty()).then(|| missing.join(" and "))
}

/// `openclaw.env_allow`: the risky names (`env_names`) the operator sets
/// in `openclaw.env` knowingly.
fn env_allow(d: &mut Decoder, node: &Node) -> Option<Vec<String>> {
    let names = d.string_list(node, "openclaw.env_allow")?;
    let locs: Vec<Location> = match &node.kind {
        Kind::Seq(items) => items.iter().map(|i| i.loc).collect(),
        _ => Vec::new(),
    };
    let mut ok = true;
    for (i, name) in names.iter().enumerate() {
        let loc = locs.get(i).copied().unwrap_or(node.loc);
        let problem = match env_names::judge(name) {
            env_names::Verdict::NeedsOptIn(_) => continue,
            env_names::Verdict::Refused(why) => {
                format!("`{name}` cannot be allowed: it {why}")
            }
            env_names::Verdict::Allowed => format!(
                "`{name}` needs no opt-in: list here only names that `openclaw.env` refuses without one"
            ),
        };
        d.error(&format!("openclaw.env_allow[{i}]"), loc, problem);
        ok = false;
    }
    ok.then_some(names)
}

fn env_map(d: &mut Decoder, node: &Node, allow: &[String]) -> Option<IndexMap<String, Value>> {
    let entries = d.entries(node, "openclaw.env")?;
    let mut out = IndexMap::new();
    let mut ok = true;
    for (k, v) in entries {
        let path = join("openclaw.env", &k.name);
        if !is_env_name(&k.name) {
            d.error(
                "openclaw.env",
                k.loc,
                format!("`{}` is not an environment variable name", k.name),
            );
            ok = false;
            continue;
        }
        let refusal = match env_names::judge(&k.name) {
            env_names::Verdict::Allowed => None,
            env_names::Verdict::NeedsOptIn(_) if allow.contains(&k.name) => None,
            env_names::Verdict::NeedsOptIn(why) => Some(format!(
                "`{}` {why}; list it in `openclaw.env_allow` to set it anyway",
                k.name
            )),
            env_names::Verdict::Refused(why) => {
                Some(format!("`{}` cannot be set here: it {why}", k.name))
            }
        };
        if let Some(message) = refusal {
            d.error(&path, k.loc, message);
            ok = false;
            continue;
        }
        let value = d.value(v, &path);
        match &value {
            Value::Str(text) if text.contains('\0') => {
                d.error(&path, v.loc, NUL_IN_ENV);
                ok = false;
            }
            Value::Str(text) if text.chars().any(hidden_in_value) => {
                d.error(&path, v.loc, HIDDEN_IN_ENV);
                ok = false;
            }
            Value::Str(text) if k.name == "PATH" && path_misses_openclaw(text).is_some() => {
                let missing = path_misses_openclaw(text).unwrap_or_default();
                d.error(
                    &path,
                    v.loc,
                    format!(
                        "keeps out {missing}: `openclaw` is `#!/usr/bin/env node` in {}, so without OpenClaw's and Node's folders neither `openclaw config validate` nor the gateway starts; add them, e.g. `{}/bin:{}/bin:/usr/local/bin:/usr/bin:/bin`",
                        crate::layout::OPENCLAW_PREFIX,
                        crate::layout::OPENCLAW_PREFIX,
                        crate::layout::NODE_HOME
                    ),
                );
                ok = false;
            }
            Value::Map(_) | Value::Seq(_) => {
                d.error(
                    &path,
                    v.loc,
                    "must be a string, a number or a secret reference",
                );
                ok = false;
            }
            Value::Str(_) | Value::Int(_) | Value::Float(_) if key_looks_secret(&k.name) => {
                literal_credential(d, v, &path)
            }
            _ => {}
        }
        out.insert(k.name.clone(), value);
    }
    ok.then_some(out)
}

/// A channel id or entry name: lower-case letters, digits and `-`, starting
/// with a letter (it names env variables, plugins and OpenClaw's config keys).
fn channel_word(s: &str) -> bool {
    s.len() <= 40
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// ocfo's own keys in a channel entry; everything else is OpenClaw's.
const CHANNEL_OWN_KEYS: [&str; 2] = ["type", "label"];

/// `channels`: each entry is either the short form, named by its OpenClaw
/// channel id (`telegram: {botToken: ...}`), or a named entry with an
/// explicit `type` (`rescue-bot: {type: telegram, botToken: ...}`), so one
/// platform can serve on both nodes with two bots.
fn channels(d: &mut Decoder, node: &Node) -> Option<IndexMap<String, Channel>> {
    let entries = d.entries(node, "channels")?;
    let mut out = IndexMap::new();
    let mut ok = true;
    for (k, v) in entries {
        let path = join("channels", &k.name);
        if !channel_word(&k.name) {
            d.diagnostics.push(
                Diagnostic::error(format!(
                    "`{}` is not a channel name (lower-case letters, digits and `-`, like `telegram` or `rescue-bot`)",
                    k.name
                ))
                .at("channels", Some(k.loc)),
            );
            ok = false;
            continue;
        }
        let Kind::Map(fields) = &v.kind else {
            d.error(
                &path,
                v.loc,
                format!(
                    "expected a mapping of the channel's OpenClaw settings, found {}",
                    v.type_name()
                ),
            );
            ok = false;
            continue;
        };
        let own = |key: &str| fields.iter().find(|(f, _)| f.name == key).map(|(_, n)| n);
        let kind = match own("type") {
            None => Some(k.name.clone()),
            Some(t) => d.string(t, &join(&path, "type")).and_then(|t_name| {
                if channel_word(&t_name) {
                    Some(t_name)
                } else {
                    d.error(
                        &join(&path, "type"),
                        t.loc,
                        format!("`{t_name}` is not an OpenClaw channel id (lower-case, like `telegram` or `discord`)"),
                    );
                    None
                }
            }),
        };
        let label = match own("label") {
            None => Some(None),
            Some(l) => d.string(l, &join(&path, "label")).and_then(|text| {
                let bad = text.trim().is_empty()
                    || text.chars().count() > 100
                    || text.chars().any(crate::terminal::is_hidden);
                if bad {
                    d.error(
                        &join(&path, "label"),
                        l.loc,
                        "a label is one line of at most 100 characters, e.g. \"@my_assistant_bot on Telegram\"",
                    );
                    None
                } else {
                    Some(Some(text))
                }
            }),
        };
        let mut settings = d.value(v, &path);
        if let Value::Map(m) = &mut settings {
            for key in CHANNEL_OWN_KEYS {
                m.shift_remove(key);
            }
        }
        literal_credentials(d, v, &path);
        let (Some(kind), Some(label)) = (kind, label) else {
            ok = false;
            continue;
        };
        out.insert(
            k.name.clone(),
            Channel {
                name: k.name.clone(),
                kind,
                label,
                settings,
                loc: k.loc,
            },
        );
    }
    ok.then_some(out)
}

/// Labs and tests use literal fake tokens, so they are allowed, but loudly;
/// numbers count too (`password: 12345678`), as the renderer moves them to
/// the env file like strings.
fn literal_credentials(d: &mut Decoder, node: &Node, path: &str) {
    if let Kind::Map(entries) = &node.kind {
        for (k, v) in entries {
            let p = join(path, &k.name);
            match &v.kind {
                Kind::Scalar { .. } if key_looks_secret(&k.name) => {
                    if matches!(
                        v.scalar(),
                        Some(yaml::Scalar::Str(_) | yaml::Scalar::Int(_) | yaml::Scalar::Float(_))
                    ) {
                        literal_credential(d, v, &p);
                    }
                }
                Kind::Map(_) => literal_credentials(d, v, &p),
                _ => {}
            }
        }
    }
}

/// The env file ends up in a C string per variable: a NUL would cut it.
const NUL_IN_ENV: &str =
    "contains a NUL byte, which an environment variable cannot hold (the value goes to the env file)";

/// A value may span lines (a PEM key), but nothing in it may hide: it is
/// printed by `ocfo render` and written to the host.
fn hidden_in_value(c: char) -> bool {
    crate::terminal::is_hidden(c) && !matches!(c, '\n' | '\r' | '\t' | '\0')
}

const HIDDEN_IN_ENV: &str =
    "contains a control, bidirectional or invisible format character (only line breaks and tabs may be in a value)";

fn literal_credential(d: &mut Decoder, node: &Node, path: &str) {
    if matches!(&node.kind, Kind::Scalar { text, .. } if text.contains('\0')) {
        d.error(path, node.loc, NUL_IN_ENV);
        return;
    }
    d.warn(
        path,
        node.loc,
        "a literal credential in the inventory; prefer `{env: NAME}` or `{file: PATH}`",
    );
    if let Kind::Scalar { text, .. } = &node.kind {
        d.literals.push(text.clone());
    }
}

fn workspace(d: &mut Decoder, node: &Node) -> Option<Workspace> {
    let f = d.fields(
        node,
        "workspace",
        &[
            "repo",
            "branch",
            "deploy_key",
            "token",
            "token_username",
            "push_interval",
            "conversations",
            "conversation_interval",
        ],
    )?;
    let repo = d.req_string(&f, "repo").and_then(|r| {
        let node = f.get("repo")?;
        match names::repo(&r) {
            Ok(()) => Some(r),
            Err(p) => {
                let mut diag = Diagnostic::error(p.message).at("workspace.repo", Some(node.loc));
                if let Some(h) = p.hint {
                    diag = diag.hint(h);
                }
                d.diagnostics.push(diag);
                None
            }
        }
    });
    let branch = match f.get("branch") {
        None => Some("main".to_string()),
        Some(n) => d
            .string(n, "workspace.branch")
            .and_then(|b| match names::branch(&b) {
                Ok(()) => Some(b),
                Err(e) => {
                    d.error("workspace.branch", n.loc, e);
                    None
                }
            }),
    };
    let auth = repo
        .as_deref()
        .and_then(|r| workspace_auth(d, &f, r, f.get("repo").map_or(f.loc, |n| n.loc)));
    let push_interval = d.duration(&f, "push_interval", Duration::from_secs(300), DAY);
    let conversations = d.boolean(&f, "conversations", true);
    let conversation_interval = d.duration(
        &f,
        "conversation_interval",
        Duration::from_secs(20),
        Duration::from_secs(3600),
    );
    if let Some(b) = branch.as_deref().filter(|b| b.starts_with("ocfo/")) {
        let at = f.get("branch").map_or(f.loc, |n| n.loc);
        d.error(
            "workspace.branch",
            at,
            format!("`{b}`: branches under `ocfo/` are ocfo's own (the standby's saved work, the conversation snapshots); choose another"),
        );
    }
    Some(Workspace {
        repo: repo?,
        branch: branch?,
        auth: auth?,
        push_interval: push_interval?,
        conversations: conversations?,
        conversation_interval: conversation_interval?,
    })
}

/// Which credential the remote takes: HTTP(S) remotes a token (or none, for
/// a public repository), every other remote the SSH deploy key.
fn workspace_auth(
    d: &mut Decoder,
    f: &super::decode::Fields<'_>,
    repo: &str,
    repo_loc: crate::diagnostics::Location,
) -> Option<WorkspaceAuth> {
    let lower = repo.to_ascii_lowercase();
    let http = lower.starts_with("https://") || lower.starts_with("http://");
    let loc_of = |key: &str| f.get(key).map_or(f.loc, |n| n.loc);
    if http {
        let authority = repo.split_once("://").map_or("", |(_, rest)| {
            rest.split(['/', '?', '#']).next().unwrap_or("")
        });
        if authority.contains('@') {
            d.error(
                "workspace.repo",
                repo_loc,
                "credentials in the repository URL would be stored in git's config on both hosts and shown in logs; put the token in `workspace.token` (a secret reference) and the user name, if any, in `workspace.token_username`",
            );
            return None;
        }
        if f.get("deploy_key").is_some() {
            d.error(
                "workspace.deploy_key",
                loc_of("deploy_key"),
                "an SSH deploy key is not used by an https:// repository; give `token` instead, or an SSH URL (git@host:path) for the key",
            );
            return None;
        }
    } else {
        for key in ["token", "token_username"] {
            if f.get(key).is_some() {
                d.error(
                    &f.path_of(key),
                    loc_of(key),
                    format!("`{key}` is for https:// repositories; `{repo}` is reached over SSH with `deploy_key`"),
                );
                return None;
            }
        }
        return d
            .required(f, "deploy_key")
            .and_then(|n| d.secret(n, "workspace.deploy_key"))
            .map(WorkspaceAuth::DeployKey);
    }
    let username = match f.get("token_username") {
        None => Some("x-access-token".to_string()),
        Some(n) => d.string(n, "workspace.token_username").and_then(|u| {
            // A line break or a NUL would inject lines into git's credential
            // protocol; `:` and `@` have no place in a user name there.
            let ok = !u.is_empty() && !u.chars().any(|c| c.is_control() || c == ':' || c == '@');
            if !ok {
                d.error(
                    "workspace.token_username",
                    n.loc,
                    format!("`{u}` is not a user name git can send"),
                );
            }
            ok.then_some(u)
        }),
    };
    match f.get("token") {
        Some(n) => {
            let token = d.secret(n, "workspace.token");
            if lower.starts_with("http://") {
                d.error(
                    "workspace.repo",
                    repo_loc,
                    "plain http:// would send `workspace.token` unencrypted; use https://",
                );
                return None;
            }
            Some(WorkspaceAuth::Token {
                token: token?,
                username: username?,
            })
        }
        None => {
            if f.get("token_username").is_some() {
                d.error(
                    "workspace.token_username",
                    loc_of("token_username"),
                    "`token_username` without `token`",
                );
                return None;
            }
            d.warn(
                "workspace.repo",
                repo_loc,
                "no `workspace.token`: fine for a public repository, which both nodes can clone and pull, but the primary cannot push its workspace to it",
            );
            Some(WorkspaceAuth::Anonymous)
        }
    }
}

fn monitor(d: &mut Decoder, node: &Node) -> Option<MonitorSettings> {
    let f = d.fields(
        node,
        "monitor",
        &[
            "interval",
            "timeout",
            "fall",
            "fall_window",
            "rise",
            "hold_down",
            "probe",
            "notify",
            "flap",
            "standby",
            "channel_failure",
            "channel_grace",
            "stall_grace",
            "binary_source",
            "binary_sha256",
            "announce",
            "recycle_above_mib",
        ],
    )?;
    let def = default_monitor();
    let recycle_above_mib = match f.get("recycle_above_mib") {
        None => Some(def.recycle_above_mib),
        Some(n) => d
            .integer(n, "monitor.recycle_above_mib", 0, 1 << 20)
            .map(|i| i as u32),
    };
    let announce = match f.get("announce") {
        None => Some(def.announce.clone()),
        Some(n) => announce(d, n),
    };
    let binary_source = match f.get("binary_source") {
        None => Some(None),
        Some(n) => download_base(d, n, "monitor.binary_source").map(Some),
    };
    let binary_sha256 = match f.get("binary_sha256") {
        None => Some(Default::default()),
        Some(n) => monitor_sha256(d, n),
    };
    let interval = d.duration(&f, "interval", def.interval, HOUR);
    let timeout = d.duration(&f, "timeout", def.timeout, HOUR);
    let fall = d.count(&f, "fall", def.fall);
    let fall_window = d.duration(&f, "fall_window", def.fall_window, HOUR);
    let rise = d.count(&f, "rise", def.rise);
    let hold_down = d.duration(&f, "hold_down", def.hold_down, DAY);
    let flap = match f.get("flap") {
        None => Some((def.flap_max_promotions, def.flap_window)),
        Some(n) => d
            .fields(n, "monitor.flap", &["max_promotions", "window"])
            .and_then(|ff| {
                let max = d.count(&ff, "max_promotions", def.flap_max_promotions);
                let window = d.duration(&ff, "window", def.flap_window, 7 * DAY);
                Some((max?, window?))
            }),
    };
    let probe = choice(
        d,
        &f,
        "probe",
        "monitor.probe",
        &[
            ("readyz", ProbeMode::Readyz),
            ("healthz", ProbeMode::Healthz),
        ],
        def.probe,
    );
    let standby = choice(
        d,
        &f,
        "standby",
        "monitor.standby",
        &[("warm", StandbyMode::Warm), ("cold", StandbyMode::Cold)],
        def.standby,
    );
    let channel_failure = choice(
        d,
        &f,
        "channel_failure",
        "monitor.channel_failure",
        &[
            ("failover", ChannelFailure::Failover),
            ("ignore", ChannelFailure::Ignore),
        ],
        def.channel_failure,
    );
    let channel_grace = d.duration(&f, "channel_grace", def.channel_grace, DAY);
    let stall_grace = d.duration(&f, "stall_grace", def.stall_grace, HOUR);
    let webhook = match f.get("notify") {
        None => Some(None),
        Some(n) => {
            d.fields(n, "monitor.notify", &["webhook"])
                .and_then(|nf| match nf.get("webhook") {
                    None => Some(None),
                    Some(w) => d.secret(w, "monitor.notify.webhook").map(Some),
                })
        }
    };
    if let (Some(i), Some(t)) = (interval, timeout) {
        if t >= i {
            let loc = f.get("timeout").map_or(f.loc, |n| n.loc);
            d.error(
                "monitor.timeout",
                loc,
                "must be shorter than `monitor.interval`, or probes would overlap",
            );
        }
    }
    if let (Some(None), Some(n)) = (&binary_source, f.get("binary_sha256")) {
        d.warn(
            "monitor.binary_sha256",
            n.loc,
            "has no effect without `monitor.binary_source` (where the standby fetches the binary these checksums are for)",
        );
    }
    let (flap_max_promotions, flap_window) = flap?;
    Some(MonitorSettings {
        flap_max_promotions,
        flap_window,
        interval: interval?,
        timeout: timeout?,
        fall: fall?,
        fall_window: fall_window?,
        rise: rise?,
        hold_down: hold_down?,
        probe: probe?,
        webhook: webhook?,
        standby: standby?,
        channel_failure: channel_failure?,
        channel_grace: channel_grace?,
        stall_grace: stall_grace?,
        binary_source: binary_source?,
        binary_sha256: binary_sha256?,
        announce: announce?,
        recycle_above_mib: recycle_above_mib?,
    })
}

/// `monitor.announce`: `enabled`, `to` (a list, or per channel entry),
/// `takeover` and `failback` texts with placeholders.
fn announce(d: &mut Decoder, node: &Node) -> Option<super::announce::Announce> {
    use super::announce::{check_placeholders, Announce};
    let path = "monitor.announce";
    let f = d.fields(
        node,
        path,
        &["enabled", "to", "takeover", "failback", "caught_up"],
    )?;
    let def = Announce::default();
    let enabled = d.boolean(&f, "enabled", true);
    let to = match f.get("to") {
        None => Some(None),
        Some(n) => match &n.kind {
            // A list: for the standby's only channel (checked by rules).
            Kind::Seq(_) => d
                .string_list(n, &f.path_of("to"))
                .map(|l| Some(IndexMap::from([(String::new(), l)]))),
            Kind::Map(_) => {
                let entries = d.entries(n, &f.path_of("to"))?;
                let mut m = IndexMap::new();
                let mut ok = true;
                for (k, v) in entries {
                    match d.string_list(v, &join(&f.path_of("to"), &k.name)) {
                        Some(l) => {
                            m.insert(k.name.clone(), l);
                        }
                        None => ok = false,
                    }
                }
                ok.then_some(Some(m))
            }
            _ => {
                d.error(
                    &f.path_of("to"),
                    n.loc,
                    format!("expected a list of allowFrom entries (or one per standby channel), found {}", n.type_name()),
                );
                None
            }
        },
    };
    let mut text = |key: &str, default: &str| -> Option<String> {
        let Some(n) = f.get(key) else {
            return Some(default.to_string());
        };
        let t = d.string(n, &f.path_of(key))?;
        let problem = if t.trim().is_empty() {
            Some("must not be empty (use `enabled: false` to send nothing)".to_string())
        } else if t.chars().count() > 1000 {
            Some("at most 1000 characters: it is one chat message".to_string())
        } else {
            check_placeholders(&t).err()
        };
        match problem {
            Some(p) => {
                d.error(&f.path_of(key), n.loc, p);
                None
            }
            None => Some(t),
        }
    };
    let takeover = text("takeover", &def.takeover);
    let failback = text("failback", &def.failback);
    let caught_up = text("caught_up", &def.caught_up);
    Some(Announce {
        enabled: enabled?,
        to: to?,
        takeover: takeover?,
        failback: failback?,
        caught_up: caught_up?,
        loc: Some(node.loc),
    })
}

/// `monitor.binary_sha256`: `{x86_64: <64 hex>, aarch64: <64 hex>}`, either or both.
fn monitor_sha256(
    d: &mut Decoder,
    node: &Node,
) -> Option<std::collections::BTreeMap<String, String>> {
    sha256_per_arch(d, node, "monitor.binary_sha256", MONITOR_ARCHS)
}

/// `{<arch>: <64 hex>, ...}` for the architectures `archs`, any of them.
fn sha256_per_arch(
    d: &mut Decoder,
    node: &Node,
    key: &str,
    archs: &[&str],
) -> Option<std::collections::BTreeMap<String, String>> {
    let f = d.fields(node, key, archs)?;
    let mut out = std::collections::BTreeMap::new();
    let mut ok = true;
    for arch in archs {
        let Some(n) = f.get(arch) else { continue };
        let path = format!("{key}.{arch}");
        match d.string(n, &path) {
            Some(h) if h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()) => {
                out.insert(arch.to_string(), h.to_ascii_lowercase());
            }
            Some(h) => {
                d.error(
                    &path,
                    n.loc,
                    format!("`{h}` is not a SHA-256 (64 hexadecimal digits)"),
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// A base URL that reaches a download script on a host: https://, http://
/// or file:///, no spaces or control characters, no trailing slash.
fn download_base(d: &mut Decoder, n: &Node, path: &str) -> Option<String> {
    d.string(n, path).and_then(|m| {
        let ok = ["https://", "http://", "file:///"]
            .iter()
            .any(|p| m.starts_with(p))
            && !m.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            d.error(
                path,
                n.loc,
                format!("`{m}` must be an https://, http:// or file:/// URL without spaces or control characters"),
            );
        }
        ok.then(|| m.trim_end_matches('/').to_string())
    })
}

fn hardening(d: &mut Decoder, node: &Node) -> Option<Hardening> {
    let f = d.fields(
        node,
        "hardening",
        &["fail2ban", "unattended_upgrades", "password_authentication"],
    )?;
    Some(Hardening {
        fail2ban: d.boolean(&f, "fail2ban", true)?,
        unattended_upgrades: d.boolean(&f, "unattended_upgrades", true)?,
        password_authentication: d.boolean(&f, "password_authentication", false)?,
    })
}

/// Paths in the inventory that live on the operator's machine, made absolute.
pub fn laptop_path(inv: &Inventory, path: &str) -> PathBuf {
    crate::secrets::laptop_path(path, inv.file.parent())
}
