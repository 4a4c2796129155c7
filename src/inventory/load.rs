//! Reads an inventory file into [`Inventory`], collecting every problem.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;

use crate::diagnostics::{Diagnostic, Location, Report};
use crate::secrets::{Redactor, SecretValue};

use super::decode::{is_env_name, join, Decoder};
use super::model::*;
use super::rules;
use super::units::Version;
use super::yaml::{self, Kind, Node};

pub const DEFAULT_NODE_VERSION: &str = "24.21.0";
pub const DEFAULT_NODE_MIRROR: &str = "https://nodejs.org/dist";
pub const DEFAULT_GATEWAY_PORT: u16 = 18789;

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
}

impl Secrets {
    pub fn get(&self, secret: &Secret) -> Option<&SecretValue> {
        self.values.get(&secret.path)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn redactor(&self) -> Redactor {
        Redactor::new(self.values.values())
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

pub fn load_file(path: &Path, opts: LoadOptions) -> Loaded {
    let fail = |msg: String| Loaded {
        inventory: None,
        secrets: Secrets::default(),
        report: Report::new(path, vec![Diagnostic::error(msg)]),
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return fail(format!("cannot read the inventory: {e}")),
    };
    match String::from_utf8(bytes) {
        Ok(source) => load_str(&source, path, opts),
        Err(e) => fail(format!(
            "not a YAML text file: invalid UTF-8 at byte {} (is this a binary file?)",
            e.utf8_error().valid_up_to()
        )),
    }
}

pub fn load_str(source: &str, file: &Path, opts: LoadOptions) -> Loaded {
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
    let (inventory, channels) = decode(&mut d, &root, file);

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
    if let Some(channels) = &channels {
        rules::check_tokens_distinct(channels, &secrets, &mut d.diagnostics);
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
];
const SSH: &[&str] = &["user", "port", "identity_file", "known_hosts"];

/// The inventory when every part decoded, and the channels on their own so
/// the token check can run even when another part is broken.
fn decode(
    d: &mut Decoder,
    root: &Node,
    file: &Path,
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
    let network = d.required(&top, "network").and_then(|n| network(d, n));
    let node = match top.get("node") {
        Some(n) => node_js(d, n),
        None => Version::parse(DEFAULT_NODE_VERSION)
            .ok()
            .map(|version| NodeJs {
                version,
                mirror: DEFAULT_NODE_MIRROR.into(),
            }),
    };
    let openclaw = d.required(&top, "openclaw").and_then(|n| openclaw(d, n));
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

    if let (Some((primary, standby)), Some(channels)) = (&nodes, &channels) {
        rules::check_channel_ownership(d, primary, standby, channels);
    }
    if let Some((primary, standby)) = &nodes {
        rules::check_nodes_distinct(d, primary, standby);
        if let Some(net) = &network {
            rules::check_network(d, primary, standby, net, openclaw.as_ref());
        }
    }

    let inventory = (|| {
        let (primary, standby) = nodes?;
        Some(Inventory {
            file: file.to_path_buf(),
            name: name?,
            primary: primary.spec?,
            standby: standby.spec?,
            network: network?,
            node: node?,
            openclaw: openclaw?,
            channels: channels.clone()?,
            workspace: workspace?,
            monitor: monitor?,
            hardening: hardening?,
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
        interval: Duration::from_secs(2),
        timeout: Duration::from_millis(1500),
        fall: 3,
        rise: 5,
        hold_down: Duration::from_secs(60),
        probe: ProbeMode::Healthz,
        webhook: None,
        flap_max_promotions: 3,
        flap_window: Duration::from_secs(15 * 60),
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
            Some(_) => d.opt_string(&f, "user")?,
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

fn nodes(d: &mut Decoder, node: &Node, ssh: &SshSettings) -> Option<(DecodedNode, DecodedNode)> {
    let f = d.fields(node, "nodes", &["primary", "standby"])?;
    let primary = d
        .required(&f, "primary")
        .and_then(|n| one_node(d, n, Role::Primary, ssh));
    let standby = d
        .required(&f, "standby")
        .and_then(|n| one_node(d, n, Role::Standby, ssh));
    Some((primary?, standby?))
}

fn one_node(d: &mut Decoder, node: &Node, role: Role, ssh: &SshSettings) -> Option<DecodedNode> {
    let path = join("nodes", role.as_str());
    let f = d.fields(node, &path, &["host", "private_address", "channels", "ssh"])?;
    let host = d.req_string(&f, "host").and_then(|h| {
        if h.chars().any(char::is_whitespace) {
            d.error(
                &f.path_of("host"),
                f.get("host")?.loc,
                format!("`{h}` is not a host name or address"),
            );
            None
        } else {
            Some(h)
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

fn network(d: &mut Decoder, node: &Node) -> Option<Network> {
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
        Some(n) => d.string_list(n, "network.extra_ca_certificates"),
        None => Some(Vec::new()),
    };
    Some(Network {
        private_cidr: cidr?,
        tailscale: tailscale?,
        extra_ca_certificates: cas?,
    })
}

fn node_js(d: &mut Decoder, node: &Node) -> Option<NodeJs> {
    let f = d.fields(node, "node", &["version", "mirror"])?;
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
        Some(n) => d.string(n, "node.mirror").and_then(|m| {
            let ok = ["https://", "http://", "file:///"]
                .iter()
                .any(|p| m.starts_with(p));
            if !ok {
                d.error(
                    "node.mirror",
                    n.loc,
                    format!("`{m}` must be an https://, http:// or file:/// URL"),
                );
            }
            ok.then(|| m.trim_end_matches('/').to_string())
        }),
    };
    Some(NodeJs {
        version: version?,
        mirror: mirror?,
    })
}

fn openclaw(d: &mut Decoder, node: &Node) -> Option<OpenClaw> {
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
            "config",
            "user",
            "stop_timeout",
            "sandbox",
        ],
    )?;
    let version = d.req_string(&f, "version");
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
    let env = match f.get("env") {
        None => Some(IndexMap::new()),
        Some(n) => env_map(d, n),
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
            d.value(n, "openclaw.config")
        }),
    };
    let user = match f.get("user") {
        None => Some("openclaw".to_string()),
        Some(n) => d.string(n, "openclaw.user").and_then(|u| {
            let ok = u
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && u.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
                && u != "root";
            if !ok {
                d.error(
                    "openclaw.user",
                    n.loc,
                    format!("`{u}` is not a valid non-root user name"),
                );
            }
            ok.then_some(u)
        }),
    };
    let stop_timeout = d.duration(&f, "stop_timeout", Duration::from_secs(330));
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
    Some(OpenClaw {
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

fn env_map(d: &mut Decoder, node: &Node) -> Option<IndexMap<String, Value>> {
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
        let value = d.value(v, &path);
        match &value {
            Value::Map(_) | Value::Seq(_) => {
                d.error(
                    &path,
                    v.loc,
                    "must be a string, a number or a secret reference",
                );
                ok = false;
            }
            Value::Str(_) if key_looks_secret(&k.name) => d.warn(
                &path,
                v.loc,
                "a literal credential in the inventory; prefer `{env: NAME}` or `{file: PATH}`",
            ),
            _ => {}
        }
        out.insert(k.name.clone(), value);
    }
    ok.then_some(out)
}

fn channels(d: &mut Decoder, node: &Node) -> Option<IndexMap<String, Channel>> {
    let entries = d.entries(node, "channels")?;
    let mut out = IndexMap::new();
    let mut ok = true;
    for (k, v) in entries {
        let path = join("channels", &k.name);
        let valid_name = k
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase())
            && k.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid_name {
            d.error(
                "channels",
                k.loc,
                format!(
                    "`{}` is not an OpenClaw channel id (lower-case, like `telegram`)",
                    k.name
                ),
            );
            ok = false;
            continue;
        }
        if !matches!(v.kind, Kind::Map(_)) {
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
        }
        let settings = d.value(v, &path);
        warn_literal_credentials(d, v, &path);
        out.insert(
            k.name.clone(),
            Channel {
                name: k.name.clone(),
                settings,
                loc: k.loc,
            },
        );
    }
    ok.then_some(out)
}

/// Labs and tests use literal fake tokens, so they are allowed, but loudly.
fn warn_literal_credentials(d: &mut Decoder, node: &Node, path: &str) {
    if let Kind::Map(entries) = &node.kind {
        for (k, v) in entries {
            let p = join(path, &k.name);
            match &v.kind {
                Kind::Scalar { .. } if key_looks_secret(&k.name) && matches!(v.scalar(), Some(yaml::Scalar::Str(_))) => {
                    d.warn(&p, v.loc, "a literal credential in the inventory; prefer `{env: NAME}` or `{file: PATH}`")
                }
                Kind::Map(_) => warn_literal_credentials(d, v, &p),
                _ => {}
            }
        }
    }
}

fn workspace(d: &mut Decoder, node: &Node) -> Option<Workspace> {
    let f = d.fields(
        node,
        "workspace",
        &["repo", "branch", "deploy_key", "push_interval"],
    )?;
    let repo = d.req_string(&f, "repo");
    let branch = match f.get("branch") {
        None => Some("main".to_string()),
        Some(n) => d.string(n, "workspace.branch").and_then(|b| {
            let ok = !b.starts_with('-')
                && !b.contains("..")
                && !b
                    .chars()
                    .any(|c| c.is_whitespace() || "~^:?*[\\".contains(c));
            if !ok {
                d.error(
                    "workspace.branch",
                    n.loc,
                    format!("`{b}` is not a valid git branch name"),
                );
            }
            ok.then_some(b)
        }),
    };
    let deploy_key = d
        .required(&f, "deploy_key")
        .and_then(|n| d.secret(n, "workspace.deploy_key"));
    let push_interval = d.duration(&f, "push_interval", Duration::from_secs(300));
    Some(Workspace {
        repo: repo?,
        branch: branch?,
        deploy_key: deploy_key?,
        push_interval: push_interval?,
    })
}

fn monitor(d: &mut Decoder, node: &Node) -> Option<MonitorSettings> {
    let f = d.fields(
        node,
        "monitor",
        &[
            "interval",
            "timeout",
            "fall",
            "rise",
            "hold_down",
            "probe",
            "notify",
            "flap",
        ],
    )?;
    let def = default_monitor();
    let interval = d.duration(&f, "interval", def.interval);
    let timeout = d.duration(&f, "timeout", def.timeout);
    let fall = d.count(&f, "fall", def.fall);
    let rise = d.count(&f, "rise", def.rise);
    let hold_down = d.duration(&f, "hold_down", def.hold_down);
    let flap = match f.get("flap") {
        None => Some((def.flap_max_promotions, def.flap_window)),
        Some(n) => d
            .fields(n, "monitor.flap", &["max_promotions", "window"])
            .and_then(|ff| {
                let max = d.count(&ff, "max_promotions", def.flap_max_promotions);
                let window = d.duration(&ff, "window", def.flap_window);
                Some((max?, window?))
            }),
    };
    let probe = match f.get("probe") {
        None => Some(ProbeMode::Healthz),
        Some(n) => match d.string(n, "monitor.probe").as_deref() {
            Some("healthz") => Some(ProbeMode::Healthz),
            Some("readyz") => Some(ProbeMode::Readyz),
            Some(other) => {
                d.error(
                    "monitor.probe",
                    n.loc,
                    format!("`{other}` is not one of healthz, readyz"),
                );
                None
            }
            None => None,
        },
    };
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
    let (flap_max_promotions, flap_window) = flap?;
    Some(MonitorSettings {
        flap_max_promotions,
        flap_window,
        interval: interval?,
        timeout: timeout?,
        fall: fall?,
        rise: rise?,
        hold_down: hold_down?,
        probe: probe?,
        webhook: webhook?,
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
