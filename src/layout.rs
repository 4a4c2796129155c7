//! Where things live on a host. One place, so render, deploy, the monitor
//! and the laptop's commands agree on every path: the ground floor, below
//! even the inventory, so everyone can use it.

pub const GATEWAY_UNIT: &str = "openclaw-gateway.service";
pub const MONITOR_UNIT: &str = "ocfo-monitor.service";
pub const PUSH_SERVICE: &str = "ocfo-workspace-push.service";
pub const PUSH_TIMER: &str = "ocfo-workspace-push.timer";
/// The primary's workspace watcher: pushes seconds after the agent writes.
pub const WATCH_SERVICE: &str = "ocfo-workspace-watch.service";
/// The primary's conversation snapshots (`ocfo-conversation-push.*`).
pub const CONVERSATION_PUSH_SERVICE: &str = "ocfo-conversation-push.service";
pub const CONVERSATION_PUSH_TIMER: &str = "ocfo-conversation-push.timer";
pub const CONVERSATION_PUSH_SCRIPT: &str = "/usr/local/lib/ocfo/conversation-push";
/// Root's record of the other node's conversation snapshot this node
/// activated last.
pub const CONVERSATION_ACTIVATED: &str = "/var/lib/ocfo/conversation-activated";
/// The branch of the workspace remote a node's conversation snapshots
/// travel on (`primary` or `standby`): ocfo's own, never the workspace's,
/// one per node so that two nodes never push to one branch.
pub fn conversation_branch(role: &str) -> String {
    format!("ocfo/conversation-{role}")
}
/// The standby's last snapshot at a failback, for the primary to take; and
/// the primary's answer that it took it (one writer each).
pub const CONVERSATION_HANDBACK_BRANCH: &str = "ocfo/conversation-handback";
pub const CONVERSATION_RETURNED_BRANCH: &str = "ocfo/conversation-returned";
/// The primary's taker of a hand-back (`ocfo monitor take-back`).
pub const TAKE_BACK_SERVICE: &str = "ocfo-conversation-take-back.service";
pub const TAKE_BACK_TIMER: &str = "ocfo-conversation-take-back.timer";
pub const TAKE_BACK_CONFIG: &str = "/etc/ocfo/take-back.yaml";
/// The agent whose conversations travel (the one agent ocfo configures).
pub const CONVERSATION_AGENT: &str = "main";
pub const SYSTEMD_DIR: &str = "/etc/systemd/system";
pub const GATEWAY_ENV_FILE: &str = "/etc/openclaw/gateway.env";
/// The restart-class part of the gateway's config: a change here restarts it.
pub const GATEWAY_RESTART_KEYS: &str = "/etc/openclaw/restart-keys.json";
pub const MONITOR_CONFIG: &str = "/etc/ocfo/monitor.yaml";
pub const MONITOR_ENV_FILE: &str = "/etc/ocfo/monitor.env";
pub const MONITOR_STATE_DIR: &str = "/var/lib/ocfo";
/// What the monitor shows the world (`monitor::state_file`), in the
/// monitor's config and the default of `ocfo monitor status`.
pub const MONITOR_STATE_FILE: &str = "/var/lib/ocfo/monitor-state.json";
/// When deploy last finished on this host, and from which commit.
pub const LAST_DEPLOY: &str = "/var/lib/ocfo/last-deploy";
/// The handlers a deploy's changes asked for that have not run yet (a run
/// that failed after the change): the next run runs them.
pub const PENDING_HANDLERS: &str = "/var/lib/ocfo/pending-handlers";
/// Deploy's lock on a host: a folder (`mkdir` is atomic) with its owner inside.
pub const DEPLOY_LOCK: &str = "/run/ocfo-deploy.lock";
/// The inputs of the last `openclaw config validate` that passed.
pub const VALIDATED_STAMP: &str = "/var/lib/ocfo/openclaw-validated";
/// Deploy's hold on the standby's monitor (a lease: an expiry time).
pub const HOLD_FILE: &str = "/var/lib/ocfo/hold.json";
/// Present while a planned switchover hands service to the standby.
pub const SWITCHOVER_FILE: &str = "/var/lib/ocfo/switchover.json";
/// The standby monitor's Ed25519 key for OpenClaw's gateway protocol.
pub const MONITOR_DEVICE_KEY: &str = "/var/lib/ocfo/gateway-device.key";
/// Written by `ocfo drill` on the standby while it drills (a lease, like
/// the hold): the takeover it causes is announced as a drill.
pub const DRILL_FILE: &str = "/var/lib/ocfo/drill.json";
/// A warm standby's switch files, root-owned, `$include`d by its config
/// (OpenClaw reads includes outside its own folder only from
/// `OPENCLAW_INCLUDE_ROOTS`, and never writes them).
pub const SWITCH_DIR: &str = "/etc/openclaw/switches";
/// The one switch file: the standby's channels and automations, on or off.
pub const SWITCH_FILE: &str = "/etc/openclaw/switches/standby.json";
/// A warm standby's channel credentials (0600 root), written by deploy and
/// read only by the monitor.
pub const STANDBY_SECRETS_SOURCE: &str = "/etc/ocfo/standby-channels.json";
/// Where the monitor puts them for OpenClaw while the standby is armed: a
/// root-owned run-time folder (the monitor unit's `RuntimeDirectory`), the
/// file the gateway user's, 0600, as OpenClaw's file provider requires. The
/// gateway unit removes the file before every start.
pub const STANDBY_SECRETS_DIR: &str = "/run/ocfo-standby";
pub const STANDBY_SECRETS_FILE: &str = "/run/ocfo-standby/channels.json";
/// Channels whose OpenClaw reads its token from a file at each start
/// (Telegram's `tokenFile`): on a warm standby that file exists only while
/// it serves, so promotion needs no config reload at all.
pub const TOKEN_FILE_CHANNELS: &[&str] = &["telegram"];

/// Where a warm standby's channel finds its token while it serves.
pub fn standby_token_file(kind: &str) -> String {
    format!("{STANDBY_SECRETS_DIR}/{kind}.token")
}

/// The name of that file's SecretRef provider in the standby's config.
pub const STANDBY_SECRETS_PROVIDER: &str = "ocfo_standby";
pub const OCFO_BINARY: &str = "/usr/local/bin/ocfo";
pub const PUSH_SCRIPT: &str = "/usr/local/lib/ocfo/workspace-push";
/// git's credential helper for an https:// workspace with a token.
pub const GIT_CREDENTIAL_HELPER: &str = "/usr/local/lib/ocfo/git-credential-workspace";
/// Node.js is unpacked to `/opt/node-v<ver>-linux-<arch>`; this link names the current one.
pub const NODE_HOME: &str = "/opt/node";
/// npm's global prefix for OpenClaw, kept apart from Node so a Node switch keeps it.
pub const OPENCLAW_PREFIX: &str = "/opt/openclaw";
pub const SSHD_DROP_IN: &str = "/etc/ssh/sshd_config.d/10-ocfo.conf";
pub const FAIL2BAN_JAIL: &str = "/etc/fail2ban/jail.d/ocfo.local";
pub const AUTO_UPGRADES: &str = "/etc/apt/apt.conf.d/20auto-upgrades";
pub const UNATTENDED_UPGRADES: &str = "/etc/apt/apt.conf.d/52ocfo-unattended-upgrades";
pub const SYSCTL_HARDENING: &str = "/etc/sysctl.d/60-ocfo-hardening.conf";
pub const MODPROBE_HARDENING: &str = "/etc/modprobe.d/ocfo-hardening.conf";
pub const LIMITS_NO_CORE_DUMPS: &str = "/etc/security/limits.d/ocfo-no-core-dumps.conf";
pub const COREDUMP_CONF: &str = "/etc/systemd/coredump.conf.d/ocfo.conf";
pub const PROFILE_HARDENING: &str = "/etc/profile.d/ocfo-hardening.sh";
/// The pre-login banners (console and network).
pub const ISSUE: &str = "/etc/issue";
pub const ISSUE_NET: &str = "/etc/issue.net";
pub const LOGIN_DEFS: &str = "/etc/login.defs";
/// Written only when no Debian security source is configured yet.
pub const APT_SECURITY_SOURCE: &str = "/etc/apt/sources.list.d/ocfo-security.list";
pub const CA_DIR: &str = "/usr/local/share/ca-certificates/ocfo";

/// Paths that depend on the inventory (the gateway user's home).
#[derive(Debug, Clone)]
pub struct Layout {
    pub user: String,
    pub home: String,
    pub config_path: String,
    pub workspace: String,
    pub deploy_key: String,
    /// The gateway user's private folder for the workspace token.
    pub private_dir: String,
    /// The https:// workspace token (0600, the gateway user's), read by
    /// [`GIT_CREDENTIAL_HELPER`].
    pub workspace_token: String,
    /// The conversation replica: OpenClaw's git backup repository (outside
    /// its state folder, which OpenClaw requires).
    pub conversation_repo: String,
    /// The agent database OpenClaw keeps the conversations in (2026.9.6).
    pub agent_database: String,
}

impl Layout {
    /// For the gateway's user (`openclaw.user`).
    pub fn new(user: &str) -> Self {
        let user = user.to_string();
        let home = format!("/home/{user}");
        Layout {
            config_path: format!("{home}/.openclaw/openclaw.json"),
            workspace: format!("{home}/workspace"),
            deploy_key: format!("{home}/.ssh/ocfo_workspace_key"),
            private_dir: format!("{home}/.ocfo"),
            workspace_token: format!("{home}/.ocfo/workspace-token"),
            conversation_repo: format!("{home}/conversation-replica"),
            agent_database: format!(
                "{home}/.openclaw/agents/{CONVERSATION_AGENT}/agent/openclaw-agent.sqlite"
            ),
            user,
            home,
        }
    }

    /// How git reaches the workspace remote with the deploy key. The remote's
    /// host key is trusted on first use and pinned from then on.
    pub fn git_ssh_command(&self) -> String {
        format!(
            "ssh -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new -o BatchMode=yes",
            self.deploy_key
        )
    }
}

pub fn unit_path(unit: &str) -> String {
    format!("{SYSTEMD_DIR}/{unit}")
}
/// A file path on a host in its one spelling, or why there is none: absolute,
/// `//` read as `/`, no `.` or `..` (what `..` names depends on links on the
/// host, so it cannot be compared here), not ending in `/`, nothing hidden.
/// Paths are compared in this form, so another spelling of one of ocfo's
/// own files is still ocfo's.
pub fn normal_file_path(path: &str) -> Result<String, &'static str> {
    if !path.starts_with('/') {
        return Err("not an absolute file path");
    }
    if path.chars().any(crate::terminal::is_hidden) {
        return Err("a file path must not hold control, bidirectional or invisible characters");
    }
    if path.ends_with('/') {
        return Err("not a file path: it ends with `/`");
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return Err("a path with `.` or `..` in it: what it names depends on links on the host; write the path itself");
    }
    Ok(format!("/{}", parts.join("/")))
}

/// The system user that builds the npm tree: it owns nothing else, has no
/// login and no home. Everything npm fetches is unpacked, and everything
/// OpenClaw's own postinstall runs, with its rights, never root's; root
/// then takes the finished tree over.
pub const OPENCLAW_BUILD_USER: &str = "ocfo-build";
