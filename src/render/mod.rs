//! Renders every file `deploy` installs, per node, from the inventory and the
//! embedded templates. Rendering is pure: no SSH, no network, so `ocfo render`
//! shows exactly what would land on the hosts.

pub mod openclaw_config;
mod templates;
mod vars;

use std::path::Path;

use minijinja::context;

use crate::inventory::{laptop_path, Inventory, Role, Secret, Secrets, WorkspaceAuth};
use crate::secrets::REDACTED;

use crate::layout::*;
use crate::secrets::env_file;
pub use env_file::var_name;
use openclaw_config::EnvVars;
pub use vars::base_vars;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {name}: {message}")]
    Template { name: String, message: String },
    #[error("secret `{0}` is not resolved; run without --no-secrets")]
    UnresolvedSecret(String),
    #[error("`{path}` maps to environment variable {name}, which another value already uses; rename one of the keys")]
    EnvCollision { name: String, path: String },
    #[error("the operator's file {path}: {reason}")]
    UserFile { path: String, reason: String },
    #[error("secret `{path}` cannot be used: {reason}")]
    InvalidSecret { path: String, reason: String },
    #[error("cannot read {what} `{path}`: {reason}")]
    ReadLocal {
        what: &'static str,
        path: String,
        reason: String,
    },
}

/// Whether secret values are written or replaced by the redaction marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretMode {
    Redact,
    Reveal,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RenderedFile {
    /// Absolute path on the host.
    pub path: String,
    #[serde(skip)]
    pub content: Vec<u8>,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    /// Holds secret values: never diffed or printed.
    pub sensitive: bool,
}

#[derive(Debug, Clone)]
pub struct NodeFiles {
    pub role: Role,
    pub files: Vec<RenderedFile>,
}

impl NodeFiles {
    pub fn get(&self, path: &str) -> Option<&RenderedFile> {
        self.files.iter().find(|f| f.path == path)
    }
}

struct Builder<'a> {
    inv: &'a Inventory,
    role: Role,
    layout: Layout,
    env: minijinja::Environment<'static>,
    files: Vec<RenderedFile>,
}

impl Builder<'_> {
    fn add(
        &mut self,
        path: impl Into<String>,
        content: impl Into<Vec<u8>>,
        mode: u32,
        owner: &str,
    ) {
        self.files.push(RenderedFile {
            path: path.into(),
            content: content.into(),
            mode,
            owner: owner.to_string(),
            group: owner.to_string(),
            sensitive: false,
        });
    }

    fn add_sensitive(&mut self, path: impl Into<String>, content: impl Into<Vec<u8>>, owner: &str) {
        self.add(path, content, 0o600, owner);
        if let Some(f) = self.files.last_mut() {
            f.sensitive = true;
        }
    }

    fn template(&self, name: &str, ctx: minijinja::Value) -> Result<String, RenderError> {
        let err = |e: minijinja::Error| RenderError::Template {
            name: name.to_string(),
            message: format!("{e:#}"),
        };
        let base = context! {
            name => &self.inv.name,
            role => self.role.as_str(),
            user => &self.layout.user,
            home => &self.layout.home,
        };
        self.env
            .get_template(name)
            .map_err(err)?
            .render(context! { ..ctx, ..base })
            .map_err(err)
    }
}

/// A secret's value to write (or the redaction marker).
fn secret_text(secrets: &Secrets, s: &Secret, reveal: bool) -> Result<String, RenderError> {
    match secrets.get(s) {
        Some(v) if reveal => Ok(v.expose().to_string()),
        None if reveal => Err(RenderError::UnresolvedSecret(s.path.clone())),
        _ => Ok(REDACTED.to_string()),
    }
}
const MAX_CA_FILE: u64 = 1024 * 1024;

/// Renders every node's files. With [`SecretMode::Redact`] secrets need not
/// be resolved and every secret value reads [`REDACTED`].
pub fn render(
    inv: &Inventory,
    secrets: &Secrets,
    mode: SecretMode,
) -> Result<Vec<NodeFiles>, RenderError> {
    inv.roles()
        .into_iter()
        .map(|role| render_node(inv, role, secrets, mode))
        .collect()
}

/// Every file deploy installs on `role`'s host: OpenClaw's, the
/// workspace's, the monitor's (standby), hardening, extra CAs, then the
/// operator's own.
pub fn render_node(
    inv: &Inventory,
    role: Role,
    secrets: &Secrets,
    mode: SecretMode,
) -> Result<NodeFiles, RenderError> {
    let reveal = mode == SecretMode::Reveal;
    let mut b = Builder {
        inv,
        role,
        layout: Layout::new(&inv.openclaw.user),
        env: templates::environment(),
        files: Vec::new(),
    };
    openclaw_files(&mut b, secrets, reveal)?;
    workspace_files(&mut b, secrets, reveal)?;
    if role.is_standby() {
        monitor_files(&mut b, secrets, reveal)?;
    }
    hardening_files(&mut b)?;
    ca_files(&mut b)?;
    operator_files(&mut b, secrets)?;
    Ok(NodeFiles {
        role,
        files: b.files,
    })
}

/// OpenClaw's config, its environment file, what in it needs a restart, a
/// warm standby's channel credentials, and the gateway's unit.
fn openclaw_files(b: &mut Builder<'_>, secrets: &Secrets, reveal: bool) -> Result<(), RenderError> {
    let (inv, role) = (b.inv, b.role);
    let user = b.layout.user.clone();
    // OpenClaw config and its environment.
    let mut vars = EnvVars::new(secrets, reveal);
    let mut standby_secrets = EnvVars::new(secrets, reveal);
    let config = openclaw_config::build(inv, role, &b.layout, &mut vars, &mut standby_secrets)?;
    for (name, value) in &inv.openclaw.env {
        match value {
            crate::inventory::Value::Secret(s) => vars.add_secret(name.clone(), s)?,
            crate::inventory::Value::Str(s) => {
                vars.add(name.clone(), s.clone(), &format!("openclaw.env.{name}"))?
            }
            crate::inventory::Value::Int(i) => vars.add(name.clone(), i.to_string(), name)?,
            crate::inventory::Value::Float(f) => vars.add(name.clone(), f.to_string(), name)?,
            crate::inventory::Value::Bool(v) => vars.add(name.clone(), v.to_string(), name)?,
            _ => {}
        }
    }
    let json = serde_json::to_string_pretty(&config).unwrap_or_default() + "\n";
    let config_path = b.layout.config_path.clone();
    b.add(config_path, json, 0o600, &user);
    // What in that config needs a restart (OpenClaw reloads the rest itself):
    // deploy restarts the gateway when this file changes, not the config.
    let restart = openclaw_config::restart_class(&config);
    b.add(
        GATEWAY_RESTART_KEYS,
        serde_json::to_string_pretty(&restart).unwrap_or_default() + "\n",
        0o644,
        "root",
    );
    b.add_sensitive(
        GATEWAY_ENV_FILE,
        env_file::format(
            &format!("OpenClaw gateway environment for {} ({role})", inv.name),
            &vars.entries,
            !reveal,
        ),
        "root",
    );

    let warm = role.is_standby() && inv.monitor.standby == crate::inventory::StandbyMode::Warm;
    if warm {
        // JSON, as OpenClaw's file provider reads it; the monitor copies it.
        let entries: serde_json::Map<String, serde_json::Value> = standby_secrets
            .entries
            .iter()
            .map(|(k, v)| {
                let v = if reveal {
                    v.as_str()
                } else {
                    crate::secrets::REDACTED
                };
                (k.clone(), serde_json::Value::String(v.to_string()))
            })
            .collect();
        b.add_sensitive(
            STANDBY_SECRETS_SOURCE,
            serde_json::to_string_pretty(&entries).unwrap_or_default() + "\n",
            "root",
        );
    }
    let gateway_unit = b.template(
        "openclaw-gateway.service.j2",
        context! {
            env_file => GATEWAY_ENV_FILE,
            config_path => &b.layout.config_path,
            node_home => NODE_HOME,
            openclaw_prefix => OPENCLAW_PREFIX,
            stop_timeout => stop_timeout_secs(inv, role),
            warm => warm,
            switch_dir => SWITCH_DIR,
            standby_secrets_files => standby_files(inv, role).join(" "),
            sandbox => inv.openclaw.sandbox.as_str(),
        },
    )?;
    b.add(unit_path(GATEWAY_UNIT), gateway_unit, 0o644, "root");

    Ok(())
}

/// The workspace's credential (both nodes pull, the primary pushes) and the
/// primary's push script, watcher and timer.
fn workspace_files(
    b: &mut Builder<'_>,
    secrets: &Secrets,
    reveal: bool,
) -> Result<(), RenderError> {
    let (inv, role) = (b.inv, b.role);
    let user = b.layout.user.clone();
    let git_ssh_command = match &inv.workspace.auth {
        WorkspaceAuth::DeployKey(key) => {
            let value = secret_text(secrets, key, reveal)?;
            let key_path = b.layout.deploy_key.clone();
            b.add_sensitive(key_path, format!("{value}\n"), &user);
            b.layout.git_ssh_command()
        }
        WorkspaceAuth::Token { token, username } => {
            let value = secret_text(secrets, token, reveal)?;
            // The credential protocol is line-based: a line break in the
            // token would let it inject other attributes.
            if value.contains(['\n', '\r', '\0']) {
                return Err(RenderError::InvalidSecret {
                    path: token.path.clone(),
                    reason: "it holds a line break or a NUL".into(),
                });
            }
            let token_path = b.layout.workspace_token.clone();
            b.add_sensitive(token_path, format!("{value}\n"), &user);
            let helper = b.template(
                "git-credential-workspace.sh.j2",
                context! {
                    host => inv.workspace.https_host().unwrap_or_default(),
                    username => username,
                    token_file => &b.layout.workspace_token,
                },
            )?;
            b.add(GIT_CREDENTIAL_HELPER, helper, 0o755, "root");
            String::new()
        }
        WorkspaceAuth::Anonymous => String::new(),
    };

    if inv.workspace.conversations {
        conversation_files(b, &git_ssh_command)?;
    }

    if role == Role::Primary {
        let script = b.template(
            "workspace-push.sh.j2",
            context! {
                workspace => &b.layout.workspace,
                branch => &inv.workspace.branch,
                git_ssh_command => git_ssh_command,
            },
        )?;
        b.add(PUSH_SCRIPT, script, 0o755, "root");
        let service = b.template(
            "ocfo-workspace-push.service.j2",
            context! {
                branch => &inv.workspace.branch,
                push_script => PUSH_SCRIPT,
                local_remote => local_repo_path(&inv.workspace.repo),
            },
        )?;
        b.add(unit_path(PUSH_SERVICE), service, 0o644, "root");
        let interval = crate::inventory::units::format_duration(inv.workspace.push_interval);
        let timer = b.template(
            "ocfo-workspace-push.timer.j2",
            context! { interval => &interval },
        )?;
        b.add(unit_path(PUSH_TIMER), timer, 0o644, "root");
        let watcher = b.template(
            "ocfo-workspace-watch.service.j2",
            context! {
                workspace => &b.layout.workspace,
                push_script => PUSH_SCRIPT,
                ocfo => OCFO_BINARY,
                interval => &interval,
                gateway_unit => GATEWAY_UNIT,
                local_remote => local_repo_path(&inv.workspace.repo),
            },
        )?;
        b.add(unit_path(WATCH_SERVICE), watcher, 0o644, "root");
    }

    Ok(())
}

/// Each node snapshots its own conversations to its own branch: the
/// primary's are what a promoted standby restores; the standby's, pushed
/// while it serves, carry the outage's (docs/monitor.md, "Conversations").
fn conversation_files(b: &mut Builder<'_>, git_ssh_command: &str) -> Result<(), RenderError> {
    let inv = b.inv;
    let branch = crate::layout::conversation_branch(b.role.as_str());
    let script = b.template(
        "conversation-push.sh.j2",
        context! {
            repo => &b.layout.conversation_repo,
            database => &b.layout.agent_database,
            branch => &branch,
            handback_branch => crate::layout::CONVERSATION_HANDBACK_BRANCH,
            agent => crate::layout::CONVERSATION_AGENT,
            openclaw => format!("{OPENCLAW_PREFIX}/bin/openclaw"),
            git_ssh_command => git_ssh_command,
        },
    )?;
    b.add(CONVERSATION_PUSH_SCRIPT, script, 0o755, "root");
    let service = b.template(
        "ocfo-conversation-push.service.j2",
        context! {
            branch => &branch,
            push_script => CONVERSATION_PUSH_SCRIPT,
            env_file => GATEWAY_ENV_FILE,
            config_path => &b.layout.config_path,
            switch_dir => SWITCH_DIR,
            openclaw_prefix => OPENCLAW_PREFIX,
            node_home => NODE_HOME,
            local_remote => local_repo_path(&inv.workspace.repo),
        },
    )?;
    b.add(unit_path(CONVERSATION_PUSH_SERVICE), service, 0o644, "root");
    let interval = crate::inventory::units::format_duration(inv.workspace.conversation_interval);
    let timer = b.template(
        "ocfo-conversation-push.timer.j2",
        context! { interval => &interval },
    )?;
    b.add(unit_path(CONVERSATION_PUSH_TIMER), timer, 0o644, "root");
    if b.role == Role::Primary {
        let config = take_back_config(inv);
        b.add(
            TAKE_BACK_CONFIG,
            format!(
                "# Managed by ocfo ({}): where the primary takes back a handed-over conversation.\n{}",
                inv.name,
                config.to_yaml()
            ),
            0o644,
            "root",
        );
        let service = b.template(
            "ocfo-conversation-take-back.service.j2",
            context! { binary_path => OCFO_BINARY, config_path => TAKE_BACK_CONFIG, gateway_unit => GATEWAY_UNIT },
        )?;
        b.add(unit_path(TAKE_BACK_SERVICE), service, 0o644, "root");
        let timer = b.template(
            "ocfo-conversation-take-back.timer.j2",
            context! { interval => &interval },
        )?;
        b.add(unit_path(TAKE_BACK_TIMER), timer, 0o644, "root");
    }
    Ok(())
}

/// The primary's taker of a hand-back: its own gateway, and the standby's
/// conversation settings turned the other way (the hand-back branch).
pub fn take_back_config(inv: &Inventory) -> crate::monitor::take_back::TakeBackConfig {
    let local = match inv.openclaw.bind {
        crate::inventory::Bind::Loopback => {
            "127.0.0.1".parse().unwrap_or(inv.primary.private_address)
        }
        _ => inv.primary.private_address,
    };
    crate::monitor::take_back::TakeBackConfig {
        gateway: crate::monitor::config::GatewayConfig {
            unit: GATEWAY_UNIT.into(),
            health_url: gateway_url(inv, local, "/healthz"),
            start_timeout: std::time::Duration::from_secs(120),
            start_attempts: 1,
        },
        openclaw: openclaw_cli(inv),
        conversation: conversation_config(inv, crate::layout::CONVERSATION_HANDBACK_BRANCH, None),
        returned_branch: crate::layout::CONVERSATION_RETURNED_BRANCH.into(),
    }
}

/// Where a node's conversation snapshots come from (`branch`, the other
/// node's) and, on the standby, the script that hands its own back.
fn conversation_config(
    inv: &Inventory,
    branch: &str,
    push_script: Option<&str>,
) -> crate::monitor::config::ConversationConfig {
    let layout = Layout::new(&inv.openclaw.user);
    crate::monitor::config::ConversationConfig {
        repo: layout.conversation_repo,
        branch: branch.into(),
        agent: crate::layout::CONVERSATION_AGENT.into(),
        database: layout.agent_database,
        activated_file: crate::layout::CONVERSATION_ACTIVATED.into(),
        timeout: std::time::Duration::from_secs(60),
        push_script: push_script.map(str::to_string),
    }
}

/// How root runs the `openclaw` CLI on a node: as the gateway's user, with
/// the gateway's environment file.
fn openclaw_cli(inv: &Inventory) -> crate::monitor::config::OpenClawCli {
    let layout = Layout::new(&inv.openclaw.user);
    crate::monitor::config::OpenClawCli {
        bin: format!("{OPENCLAW_PREFIX}/bin/openclaw"),
        user: layout.user,
        home: layout.home,
        path: format!("{OPENCLAW_PREFIX}/bin:{NODE_HOME}/bin:/usr/local/bin:/usr/bin:/bin"),
        config_path: layout.config_path,
        include_roots: SWITCH_DIR.into(),
        gateway_env: GATEWAY_ENV_FILE.into(),
        device_key: MONITOR_DEVICE_KEY.into(),
    }
}

/// A gateway's URL at `ip` on the inventory's port.
fn gateway_url(inv: &Inventory, ip: std::net::IpAddr, path: &str) -> String {
    match ip {
        std::net::IpAddr::V6(v6) => format!("http://[{v6}]:{}{path}", inv.openclaw.port),
        v4 => format!("http://{v4}:{}{path}", inv.openclaw.port),
    }
}

/// sshd, fail2ban, unattended upgrades and the operating system's hardening.
fn hardening_files(b: &mut Builder<'_>) -> Result<(), RenderError> {
    let (inv, role) = (b.inv, b.role);
    let node = inv.node(role);
    let sshd = b.template(
        "sshd-ocfo.conf.j2",
        context! {
            login_user => &node.ssh.user,
            password_authentication => inv.hardening.password_authentication,
        },
    )?;
    b.add(SSHD_DROP_IN, sshd, 0o600, "root");
    if inv.hardening.fail2ban {
        let jail = b.template(
            "fail2ban-jail.local.j2",
            context! { ssh_port => node.ssh.port, private_cidr => inv.network.private_cidr.to_string() },
        )?;
        b.add(FAIL2BAN_JAIL, jail, 0o644, "root");
    }
    if inv.hardening.unattended_upgrades {
        let periodic = b.template("20auto-upgrades.j2", context! {})?;
        b.add(AUTO_UPGRADES, periodic, 0o644, "root");
        let origins = b.template("52ocfo-unattended-upgrades.j2", context! {})?;
        b.add(UNATTENDED_UPGRADES, origins, 0o644, "root");
    }

    // Operating-system hardening (docs/security.md: measured with Lynis).
    for (path, template) in [
        (SYSCTL_HARDENING, "sysctl-ocfo-hardening.conf.j2"),
        (MODPROBE_HARDENING, "modprobe-ocfo-hardening.conf.j2"),
        (LIMITS_NO_CORE_DUMPS, "limits-ocfo-no-core-dumps.conf.j2"),
        (COREDUMP_CONF, "coredump-ocfo.conf.j2"),
        (PROFILE_HARDENING, "profile-ocfo-hardening.sh.j2"),
        (ISSUE, "issue-ocfo.j2"),
        (ISSUE_NET, "issue-ocfo.j2"),
    ] {
        let text = b.template(template, context! {})?;
        b.add(path, text, 0o644, "root");
    }

    Ok(())
}

/// The operator's extra CA certificates, read from the laptop.
fn ca_files(b: &mut Builder<'_>) -> Result<(), RenderError> {
    let inv = b.inv;
    for (i, ca) in inv.network.extra_ca_certificates.iter().enumerate() {
        let local = laptop_path(inv, ca);
        // A certificate chain is kilobytes; the cap keeps a wrong path (a
        // disk image, /dev/zero) from filling memory.
        let pem = crate::fsutil::read_regular_capped(&local, MAX_CA_FILE).map_err(|e| {
            RenderError::ReadLocal {
                what: "CA certificate",
                path: local.display().to_string(),
                reason: match e {
                    crate::fsutil::ReadError::Io(e) => e.to_string(),
                    other => format!("it is {other}"),
                },
            }
        })?;
        let name = crate::inventory::ca_certificate_name(&local, i);
        b.add(format!("{CA_DIR}/{name}"), pem, 0o644, "root");
    }

    Ok(())
}

/// The operator's own files, last: they may not replace one of ocfo's.
fn operator_files(b: &mut Builder<'_>, secrets: &Secrets) -> Result<(), RenderError> {
    let (inv, role) = (b.inv, b.role);
    for f in user_files(inv, role).map_err(|e| e.error)? {
        if b.files.iter().any(|o| o.path == f.path) {
            return Err(RenderError::UserFile {
                path: f.path.clone(),
                reason: "ocfo manages this file itself".into(),
            });
        }
        // Not sensitive (diffs are shown), so they must hold no secret.
        // Values under 8 characters are not real credentials and would
        // match by chance.
        if secrets.values().any(|v| {
            let v = v.expose();
            v.len() >= 8 && f.content.windows(v.len()).any(|w| w == v.as_bytes())
        }) {
            return Err(RenderError::UserFile {
                path: f.path.clone(),
                reason: "it holds the value of one of the inventory's secrets; the operator's tasks cannot carry secrets".into(),
            });
        }
        b.files.push(f);
    }

    Ok(())
}

/// A problem with one of the operator's files, and which task it is.
#[derive(Debug)]
pub struct UserFileError {
    /// Index in the tasks file's `tasks`, then `handlers`.
    pub task: usize,
    pub error: RenderError,
}

/// The operator's `file` tasks for this node, rendered with the variables
/// known without the host (everything but `facts`), exactly as deploy will
/// install them.
pub fn user_files(inv: &Inventory, role: Role) -> Result<Vec<RenderedFile>, UserFileError> {
    let Some(ut) = &inv.tasks else {
        return Ok(Vec::new());
    };
    let layout = Layout::new(&inv.openclaw.user);
    let vars = minijinja::Value::from(minijinja::value::Serde(base_vars(inv, role, &layout)));
    let env = templates::environment();
    let mut out = Vec::new();
    for (i, t) in ut.tasks.iter().chain(&ut.handlers).enumerate() {
        let Some(f) = t.file.as_ref().filter(|_| t.hosts.includes(role)) else {
            continue;
        };
        let fail = |name: String, e: minijinja::Error| UserFileError {
            task: i,
            error: RenderError::Template {
                name,
                message: format!("{e:#}"),
            },
        };
        let path = env
            .render_str(&f.path, &vars)
            .map_err(|e| fail(format!("{} (file path)", ut.file.display()), e))?;
        // Compared with ocfo's own paths, and written, in one spelling:
        // `/etc/openclaw//gateway.env` is ocfo's file too.
        let path = match crate::layout::normal_file_path(&path) {
            Ok(p) => p,
            Err(reason) => {
                return Err(UserFileError {
                    task: i,
                    error: RenderError::UserFile {
                        path: crate::terminal::escape(&path).into_owned(),
                        reason: reason.into(),
                    },
                })
            }
        };
        let content = match &f.source {
            crate::inventory::tasks::FileSource::Content(c) => c.clone(),
            crate::inventory::tasks::FileSource::Template { file, text } => env
                .render_str(text, &vars)
                .map_err(|e| fail(file.display().to_string(), e))?,
        };
        out.push(RenderedFile {
            path,
            content: content.into_bytes(),
            mode: f.mode,
            owner: f.owner.clone(),
            group: f.group.clone(),
            sensitive: false,
        });
    }
    Ok(out)
}

/// A workspace remote on this host's file system (a path or `file://` URL):
/// the sandboxed push must be allowed to write there.
fn local_repo_path(repo: &str) -> Option<&str> {
    let path = repo.strip_prefix("file://").unwrap_or(repo);
    (path.starts_with('/') && !path.contains(char::is_whitespace)).then_some(path)
}

/// The primary drains as long as `openclaw.stop_timeout` allows (OpenClaw
/// sizes its drain from TimeoutStopSec); the standby stops within 30 s at
/// most, because its stop is the failback and the primary already serves.
fn stop_timeout_secs(inv: &Inventory, role: Role) -> u64 {
    let t = inv.openclaw.stop_timeout.as_secs().max(1);
    match role {
        Role::Primary => t,
        Role::Standby | Role::Standby2 => t.min(30),
    }
}

/// The standby's monitor: its config, its env file (the webhook URL) and unit.
fn monitor_files(b: &mut Builder<'_>, secrets: &Secrets, reveal: bool) -> Result<(), RenderError> {
    let inv = b.inv;
    let config = monitor_config(inv, b.role);
    b.add(
        MONITOR_CONFIG,
        format!(
            "# Managed by ocfo ({}): the failover monitor's settings.\n{}",
            inv.name,
            config.to_yaml()
        ),
        0o644,
        "root",
    );
    let mut env = Vec::new();
    // The gateway token unlocks `/readyz`'s reasons (draining, a channel).
    let token = match secrets.get(&inv.openclaw.gateway_token) {
        Some(v) => v.expose().to_string(),
        None if reveal => {
            return Err(RenderError::UnresolvedSecret(
                inv.openclaw.gateway_token.path.clone(),
            ))
        }
        None => String::new(),
    };
    env.push((MONITOR_TOKEN_VAR.to_string(), token));
    if let Some(w) = &inv.monitor.webhook {
        let value = match secrets.get(w) {
            Some(v) => v.expose().to_string(),
            None if reveal => return Err(RenderError::UnresolvedSecret(w.path.clone())),
            None => String::new(),
        };
        env.push((MONITOR_WEBHOOK_VAR.to_string(), value));
    }
    b.add_sensitive(
        MONITOR_ENV_FILE,
        env_file::format(
            &format!("ocfo monitor environment for {}", inv.name),
            &env,
            !reveal,
        ),
        "root",
    );
    let unit = b.template(
        "ocfo-monitor.service.j2",
        context! { binary_path => OCFO_BINARY, config_path => MONITOR_CONFIG, env_file => MONITOR_ENV_FILE, switch_dir => SWITCH_DIR, home => &b.layout.home, standby_secrets_dir => STANDBY_SECRETS_DIR.trim_start_matches("/run/"), warm => inv.monitor.standby == crate::inventory::StandbyMode::Warm },
    )?;
    b.add(unit_path(MONITOR_UNIT), unit, 0o644, "root");
    Ok(())
}

pub const MONITOR_WEBHOOK_VAR: &str = "OCFO_WEBHOOK_URL";
pub const MONITOR_TOKEN_VAR: &str = "OCFO_GATEWAY_TOKEN";

/// The monitor's settings for the standby of `role`.
pub fn monitor_config(inv: &Inventory, role: Role) -> crate::monitor::MonitorConfig {
    use crate::monitor::config::*;
    let m = &inv.monitor;
    let (path, mode) = match m.probe {
        ProbeMode::Healthz => ("/healthz", m.probe),
        ProbeMode::Readyz => ("/readyz", m.probe),
    };
    let url = |ip: std::net::IpAddr, p: &str| gateway_url(inv, ip, p);
    let own = inv.node(role).private_address;
    let local = match inv.openclaw.bind {
        crate::inventory::Bind::Loopback => "127.0.0.1".parse().unwrap_or(own),
        _ => own,
    };
    let layout = Layout::new(&inv.openclaw.user);
    MonitorConfig {
        name: inv.name.clone(),
        probe: ProbeConfig {
            urls: vec![url(inv.primary.private_address, path)],
            standbys_before: role
                .standbys_before()
                .iter()
                .map(|r| url(inv.node(*r).private_address, "/healthz"))
                .collect(),
            standby_grace: (!role.standbys_before().is_empty())
                .then_some(crate::monitor::chain::DEFAULT_STANDBY_GRACE),
            mode,
            interval: m.interval,
            timeout: m.timeout,
            token_env: Some(MONITOR_TOKEN_VAR.into()),
            primary_channels: inv.channel_ids(crate::inventory::Role::Primary),
            channel_failure: m.channel_failure,
            channel_grace: m.channel_grace,
            stall_grace: m.stall_grace,
        },
        fall: m.fall,
        fall_window: m.fall_window,
        definitive_fall: 2,
        rise: m.rise,
        hold_down: m.hold_down,
        flap: FlapConfig {
            max_promotions: m.flap_max_promotions,
            window: m.flap_window,
        },
        gateway: GatewayConfig {
            unit: GATEWAY_UNIT.into(),
            health_url: url(local, "/healthz"),
            start_timeout: std::time::Duration::from_secs(60),
            start_attempts: 3,
        },
        workspace: Some(WorkspaceConfig {
            path: layout.workspace.clone(),
            user: layout.user.clone(),
            branch: inv.workspace.branch.clone(),
            git_timeout: std::time::Duration::from_secs(30),
        }),
        conversation: inv.workspace.conversations.then(|| {
            conversation_config(
                inv,
                &crate::layout::conversation_branch(crate::inventory::Role::Primary.as_str()),
                Some(CONVERSATION_PUSH_SCRIPT),
            )
        }),
        state_file: MONITOR_STATE_FILE.to_string(),
        notify: inv.monitor.webhook.as_ref().map(|_| NotifyConfig {
            webhook_env: MONITOR_WEBHOOK_VAR.into(),
            timeout: std::time::Duration::from_secs(5),
            retries: 3,
        }),
        standby: m.standby,
        switches: (m.standby == StandbyMode::Warm).then(|| SwitchConfig {
            dir: SWITCH_DIR.into(),
            channels: inv.channel_ids(role),
            cron_when_promoted: openclaw_config::cron_enabled(inv),
            verify_timeout: std::time::Duration::from_secs(60),
            secrets_source: STANDBY_SECRETS_SOURCE.into(),
            secrets_file: STANDBY_SECRETS_FILE.into(),
            token_files: inv
                .channels_of(role)
                .filter(|c| TOKEN_FILE_CHANNELS.contains(&c.kind.as_str()))
                .map(|c| TokenFile {
                    channel: c.kind.clone(),
                    key: openclaw_config::token_var(c),
                    path: standby_token_file(&c.kind),
                })
                .collect(),
        }),
        hold_file: HOLD_FILE.into(),
        switchover_file: SWITCHOVER_FILE.into(),
        drill_file: DRILL_FILE.into(),
        openclaw: openclaw_cli(inv),
        announce: announce_config(inv, role),
        recycle_above_mib: m.recycle_above_mib,
    }
}

/// What a warm standby's gateway unit removes before every start and after
/// every stop: the credentials it is handed only while armed or serving.
fn standby_files(inv: &Inventory, role: Role) -> Vec<String> {
    let mut files = vec![STANDBY_SECRETS_FILE.to_string()];
    files.extend(
        inv.channels_of(role)
            .filter(|c| TOKEN_FILE_CHANNELS.contains(&c.kind.as_str()))
            .map(|c| standby_token_file(&c.kind)),
    );
    files
}

/// The standby's announcements, their texts with what is known now filled
/// in (the assistant, both nodes' channels); `None` when nobody is told.
fn announce_config(inv: &Inventory, role: Role) -> Option<crate::monitor::config::AnnounceConfig> {
    use crate::inventory::announce::{fill, recipients};
    let standby: Vec<&crate::inventory::Channel> = inv.channels_of(role).collect();
    let a = &inv.monitor.announce;
    let recipients = recipients(a, &standby);
    if recipients.is_empty() {
        return None;
    }
    let names = |role| {
        inv.channels_of(role)
            .map(|c| c.display_name())
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let values = [
        ("assistant", inv.name.clone()),
        ("primary", names(crate::inventory::Role::Primary)),
        ("standby", names(role)),
    ];
    let values: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Stepping down for the standby, standby2 sends its users there.
    let failback_to_standby = (!role.standbys_before().is_empty()).then(|| {
        let before = names(role.standbys_before()[0]);
        let to_standby: Vec<(&str, &str)> = values
            .iter()
            .map(|(k, v)| (*k, if *k == "primary" { before.as_str() } else { *v }))
            .collect();
        // The operator's own failback text, or ours for this case.
        let text = if a.failback == crate::inventory::announce::DEFAULT_FAILBACK {
            crate::inventory::announce::DEFAULT_FAILBACK_TO_STANDBY
        } else {
            &a.failback
        };
        fill(text, &to_standby)
    });
    Some(crate::monitor::config::AnnounceConfig {
        recipients,
        takeover: fill(&a.takeover, &values),
        failback: fill(&a.failback, &values),
        failback_to_standby,
        caught_up: fill(&a.caught_up, &values),
        timeout: std::time::Duration::from_secs(30),
    })
}

/// Writes a node's files under `dir/<role>/<absolute path>`, atomically, with
/// their modes (ownership is recorded, not applied: the laptop has no such users).
pub fn write_tree(dir: &Path, nodes: &[NodeFiles]) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut written = Vec::new();
    for node in nodes {
        for f in &node.files {
            let target = dir
                .join(node.role.as_str())
                .join(f.path.trim_start_matches('/'));
            crate::fsutil::write_atomic(&target, &f.content, f.mode)?;
            written.push(target);
        }
    }
    Ok(written)
}

/// The template environment (strict undefined, `shell_quote`), also used by
/// the engine for `when:` and `{{ }}` in playbooks.
pub fn template_env() -> minijinja::Environment<'static> {
    templates::environment()
}

/// Every embedded template, for tests that check they all parse.
pub fn template_names() -> Vec<&'static str> {
    templates::names().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{load_str, LoadOptions};

    #[test]
    fn the_monitor_unit_bounds_its_memory() {
        let source = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid.yaml"),
        )
        .unwrap();
        let loaded = load_str(
            &source,
            Path::new("valid.yaml"),
            LoadOptions {
                resolve_secrets: false,
            },
        );
        let inv = loaded.inventory.expect("valid");
        let node = render_node(&inv, Role::Standby, &loaded.secrets, SecretMode::Redact).unwrap();
        let unit = node
            .files
            .iter()
            .find(|f| f.path == unit_path(MONITOR_UNIT))
            .expect("the monitor's unit");
        let text = String::from_utf8_lossy(&unit.content);
        assert!(text.contains("\nMemoryMax=256M\n"), "{text}");
    }

    #[test]
    fn an_oversized_ca_file_is_an_error_not_a_memory_hog() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("proxy.crt");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let source = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid.yaml"),
        )
        .unwrap()
        .replacen(
            "  extra_ca_certificates: []",
            &format!("  extra_ca_certificates: [{}]", ca.display()),
            1,
        );
        let loaded = load_str(
            &source,
            Path::new("valid.yaml"),
            LoadOptions {
                resolve_secrets: false,
            },
        );
        let inv = loaded.inventory.expect("valid");
        // Grows after validation, as a wrong file might.
        std::fs::File::options()
            .write(true)
            .open(&ca)
            .unwrap()
            .set_len(MAX_CA_FILE + 1)
            .unwrap();
        let Err(err) = render_node(&inv, Role::Primary, &loaded.secrets, SecretMode::Redact) else {
            panic!("an oversized CA file must be refused");
        };
        assert!(
            err.to_string().contains("larger than the limit of 1 MiB"),
            "{err}"
        );
    }
}
