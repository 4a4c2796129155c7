//! Builds each node's `openclaw.json`: gateway, agents, the node's own channels
//! and plugins, then `openclaw.config` merged on top. Secrets become `${VAR}`
//! references whose values go to the node's environment file.

use serde_json::{json, Map, Value as Json};

use crate::inventory::{
    channel_is_plugin, key_looks_secret, Bind, Inventory, Role, Secrets, Value,
};

use super::RenderError;
use crate::inventory::StandbyMode;
use crate::layout::{
    standby_token_file, Layout, STANDBY_SECRETS_FILE, STANDBY_SECRETS_PROVIDER, SWITCH_FILE,
    TOKEN_FILE_CHANNELS,
};
use crate::secrets::env_file::var_name;

/// Collects the environment variables a config refers to.
pub struct EnvVars<'a> {
    secrets: &'a Secrets,
    /// When false, values are not needed (redacted output) and may be unresolved.
    need_values: bool,
    pub entries: Vec<(String, String)>,
}

impl<'a> EnvVars<'a> {
    pub fn new(secrets: &'a Secrets, need_values: bool) -> Self {
        EnvVars {
            secrets,
            need_values,
            entries: Vec::new(),
        }
    }

    pub fn add(&mut self, name: String, value: String, path: &str) -> Result<(), RenderError> {
        if let Some((_, existing)) = self.entries.iter().find(|(n, _)| *n == name) {
            if *existing != value {
                return Err(RenderError::EnvCollision {
                    name,
                    path: path.to_string(),
                });
            }
            return Ok(());
        }
        self.entries.push((name, value));
        Ok(())
    }

    pub fn add_secret(
        &mut self,
        name: String,
        secret: &crate::inventory::Secret,
    ) -> Result<(), RenderError> {
        let value = match self.secrets.get(secret) {
            Some(v) => v.expose().to_string(),
            None if !self.need_values => String::new(),
            None => return Err(RenderError::UnresolvedSecret(secret.path.clone())),
        };
        self.add(name, value, &secret.path)
    }

    /// A literal credential: its value goes to the env file, the config gets
    /// a `${VAR}` reference.
    fn move_to_env(
        &mut self,
        name: String,
        value: String,
        path: &[String],
    ) -> Result<Json, RenderError> {
        self.add(name.clone(), value, &path.join("."))?;
        Ok(Json::String(format!("${{{name}}}")))
    }

    /// Converts an inventory value to JSON; secret references and literal
    /// credentials become `${VAR}` and move to the environment.
    fn json(
        &mut self,
        value: &Value,
        path: &mut Vec<String>,
        prefix: &str,
        under_secret_key: bool,
    ) -> Result<Json, RenderError> {
        let var = |path: &[String]| {
            var_name(prefix, &path.iter().map(String::as_str).collect::<Vec<_>>())
        };
        Ok(match value {
            Value::Null => Json::Null,
            Value::Bool(b) => json!(b),
            // A number under a secret-looking key (`password: 12345678`) is a
            // credential too: it moves to the env file, OpenClaw reads a string.
            Value::Int(i) if under_secret_key => {
                self.move_to_env(var(path), i.to_string(), path)?
            }
            Value::Float(f) if under_secret_key => {
                self.move_to_env(var(path), f.to_string(), path)?
            }
            Value::Str(s) if under_secret_key => self.move_to_env(var(path), s.clone(), path)?,
            Value::Int(i) => json!(i),
            Value::Float(f) => json!(f),
            Value::Str(s) => Json::String(s.clone()),
            Value::Secret(secret) => {
                let name = var(path);
                self.add_secret(name.clone(), secret)?;
                Json::String(format!("${{{name}}}"))
            }
            Value::Seq(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    path.push(i.to_string());
                    out.push(self.json(item, path, prefix, under_secret_key)?);
                    path.pop();
                }
                Json::Array(out)
            }
            Value::Map(m) => {
                let mut out = Map::new();
                for (k, v) in m {
                    path.push(k.clone());
                    out.insert(k.clone(), self.json(v, path, prefix, key_looks_secret(k))?);
                    path.pop();
                }
                Json::Object(out)
            }
        })
    }
}

pub const GATEWAY_TOKEN_VAR: &str = "OCFO_GATEWAY_TOKEN";

/// Builds a node's config. A warm standby's channel credentials go to
/// `standby_secrets` instead of `env`: its config reads them from a file
/// that exists only while the monitor arms the standby (see [`armed_refs`]).
pub fn build(
    inv: &Inventory,
    role: Role,
    layout: &Layout,
    env: &mut EnvVars<'_>,
    standby_secrets: &mut EnvVars<'_>,
) -> Result<Json, RenderError> {
    let node = inv.node(role);
    let oc = &inv.openclaw;
    env.add_secret(GATEWAY_TOKEN_VAR.to_string(), &oc.gateway_token)?;

    let mut gateway = json!({
        "mode": "local",
        "port": oc.port,
        "bind": oc.bind.as_str(),
        "auth": { "mode": "token", "token": format!("${{{GATEWAY_TOKEN_VAR}}}") },
    });
    if oc.bind == Bind::Custom {
        gateway["customBindHost"] = json!(node.private_address.to_string());
    }
    if oc.bind != Bind::Loopback {
        gateway["controlUi"] = json!({
            "allowedOrigins": [format!("http://{}:{}", url_host(node.private_address), oc.port)]
        });
    }

    let warm = role.is_standby() && inv.monitor.standby == StandbyMode::Warm;
    let mut channels = Map::new();
    let mut plugins = Map::new();
    for channel in inv.channels_of(role) {
        let mut path = vec![channel.name.clone()];
        let settings = if warm && TOKEN_FILE_CHANNELS.contains(&channel.kind.as_str()) {
            token_file_settings(channel, env, standby_secrets)?
        } else if warm {
            let mut settings = standby_secrets.json(&channel.settings, &mut path, "OCFO", false)?;
            armed_refs(&mut settings, standby_secrets);
            // `enabled` is the switch file's alone.
            if let Json::Object(m) = &mut settings {
                m.remove("enabled");
            }
            settings
        } else {
            env.json(&channel.settings, &mut path, "OCFO", false)?
        };
        channels.insert(channel.kind.clone(), own_account(settings, role));
        if channel_is_plugin(&channel.kind) {
            plugins.insert(channel.kind.clone(), json!({ "enabled": true }));
        }
    }

    let mut config = json!({
        "gateway": gateway,
        "agents": {
            "defaults": {
                "model": { "primary": oc.model.primary, "fallbacks": oc.model.fallbacks },
                "workspace": layout.workspace,
            },
            "entries": { "main": {} },
        },
        "channels": channels,
    });
    if !plugins.is_empty() {
        config["plugins"] = json!({ "entries": plugins });
    }
    let extra = env.json(&oc.config, &mut Vec::new(), "OCFO_CONFIG", false)?;
    merge(&mut config, extra);
    let secret_refs = inv
        .channels_of(role)
        .any(|c| !TOKEN_FILE_CHANNELS.contains(&c.kind.as_str()));
    if warm && secret_refs && !standby_secrets.entries.is_empty() {
        config["secrets"] = json!({ "providers": { STANDBY_SECRETS_PROVIDER: {
            "source": "file", "path": STANDBY_SECRETS_FILE, "mode": "json",
        }}});
    }
    if warm {
        // Automations (cron jobs, and the heartbeats they schedule) wait too.
        if let Some(Json::Object(cron)) = config.get_mut("cron") {
            cron.remove("enabled");
        }
        config = switched(config);
    }
    Ok(config)
}

/// Each node's channel is an account named after the node
/// (`accounts.primary` or `accounts.standby`, also the default account): its
/// credentials go there, its policies stay on the channel. OpenClaw scopes
/// a provider's message ids by account (`[provider, accountId, chat,
/// message id]` in 2026.9.6's `buildChannelSourceTurnId`, and its final
/// delivery keys): two bots under one account id (`default`) number their
/// chats' messages independently, so once a conversation travels from one
/// node to the other, a new message whose id the other bot already used is
/// dropped as a duplicate. Left alone when the inventory names accounts
/// itself.
fn own_account(settings: Json, role: Role) -> Json {
    let Json::Object(mut root) = settings else {
        return settings;
    };
    if root.contains_key("accounts") || root.contains_key("defaultAccount") {
        return Json::Object(root);
    }
    let credential = |k: &str, v: &Json| {
        k == "tokenFile"
            || crate::inventory::key_looks_secret(k)
            || v.as_str().is_some_and(|s| s.starts_with("${"))
            || v.get("source").is_some() && v.get("provider").is_some()
    };
    let keys: Vec<String> = root
        .iter()
        .filter(|(k, v)| credential(k, v))
        .map(|(k, _)| k.clone())
        .collect();
    let mut account = Map::new();
    for k in keys {
        if let Some(v) = root.remove(&k) {
            account.insert(k, v);
        }
    }
    root.insert("accounts".into(), json!({ role.as_str(): account }));
    root.insert("defaultAccount".into(), json!(role.as_str()));
    Json::Object(root)
}

/// The key of a token-file channel's token: `botToken` for Telegram.
pub fn token_key(_kind: &str) -> &'static str {
    "botToken"
}

/// The environment-style name a warm standby's token-file channel keeps its
/// token under in the monitor's credentials (`OCFO_RESCUE_BOT_BOTTOKEN`).
pub fn token_var(channel: &crate::inventory::Channel) -> String {
    var_name("OCFO", &[channel.name.as_str(), token_key(&channel.kind)])
}

/// A warm standby's token-file channel (Telegram): its token is not in the
/// config nor the environment but in the monitor's credentials; the config
/// reads it from `tokenFile`, which the monitor writes only at promotion and
/// removes at demotion (the gateway unit removes it at every start). With
/// the file absent, OpenClaw 2026.9.6 loads the channel, keeps it blocked
/// ("configured but unavailable") and never polls; `channels.start` after
/// the file appeared starts it with no config reload (docs/monitor.md).
fn token_file_settings(
    channel: &crate::inventory::Channel,
    env: &mut EnvVars<'_>,
    standby_secrets: &mut EnvVars<'_>,
) -> Result<Json, RenderError> {
    let key = token_key(&channel.kind);
    let mut rest = channel.settings.clone();
    let token = match &mut rest {
        Value::Map(m) => m.shift_remove(key),
        _ => None,
    };
    let var = token_var(channel);
    match token {
        Some(Value::Secret(secret)) => standby_secrets.add_secret(var, &secret)?,
        Some(Value::Str(literal)) => {
            standby_secrets.add(var, literal, &format!("channels.{}.{key}", channel.name))?
        }
        _ => {
            return Err(RenderError::InvalidSecret {
                path: format!("channels.{}.{key}", channel.name),
                reason: format!(
                    "a warm standby's {} channel needs its `{key}` (the monitor hands it over at promotion)",
                    channel.kind
                ),
            })
        }
    }
    let mut settings = env.json(&rest, &mut vec![channel.name.clone()], "OCFO", false)?;
    if let Json::Object(m) = &mut settings {
        m.remove("tokenFile");
        m.insert("tokenFile".into(), json!(standby_token_file(&channel.kind)));
    }
    Ok(settings)
}

/// A warm standby's channel credentials: each `${VAR}` becomes a SecretRef
/// into the file the monitor writes when it arms the standby. The gateway
/// starts without that file (its unit removes it), so a fresh gateway can
/// load the channel's plugin but never connect: OpenClaw 2026.9.6 reports
/// the account "configured but unavailable". The monitor then stops the
/// channel (a manual stop OpenClaw keeps across reloads), writes the file and
/// makes OpenClaw re-read it; promotion is then a bare `channels.start`.
fn armed_refs(value: &mut Json, standby_secrets: &EnvVars<'_>) {
    match value {
        Json::String(s) => {
            let name = s
                .strip_prefix("${")
                .and_then(|r| r.strip_suffix('}'))
                .filter(|n| standby_secrets.entries.iter().any(|(e, _)| e == n));
            if let Some(name) = name {
                *value = json!({
                    "source": "file",
                    "provider": STANDBY_SECRETS_PROVIDER,
                    "id": format!("/{name}"),
                });
            }
        }
        Json::Array(items) => items
            .iter_mut()
            .for_each(|v| armed_refs(v, standby_secrets)),
        Json::Object(m) => m.values_mut().for_each(|v| armed_refs(v, standby_secrets)),
        _ => {}
    }
}

/// A warm standby's config: the root-owned switch file is `$include`d first,
/// and the rest merged over it (OpenClaw deep-merges sibling keys), so the
/// `enabled` keys it sets, and only those, come from the switch. One file,
/// so one atomic write makes one reload.
fn switched(config: Json) -> Json {
    let mut out = Map::new();
    out.insert("$include".into(), json!(SWITCH_FILE));
    if let Json::Object(m) = config {
        out.extend(m);
    }
    Json::Object(out)
}

/// Whether automations run when the standby serves: the inventory's
/// `openclaw.config.cron.enabled`, on unless it says otherwise.
pub fn cron_enabled(inv: &Inventory) -> bool {
    match &inv.openclaw.config {
        Value::Map(m) => match m.get("cron") {
            Some(Value::Map(c)) => !matches!(c.get("enabled"), Some(Value::Bool(false))),
            _ => true,
        },
        _ => true,
    }
}

/// Top-level sections and `gateway.*` keys that OpenClaw 2026.9.6 applies
/// without restarting (docs/gateway/configuration/hot-reload.md in the
/// package); everything else restarts the gateway.
const HOT: &[&str] = &[
    "channels",
    "web",
    "agents",
    "models",
    "auth",
    "broadcast",
    "worktreeRoot",
    "worktreeAcceleration",
    "hooks",
    "cron",
    "session",
    "messages",
    "tools",
    "skills",
    "audio",
    "talk",
    "tts",
    "memory",
    "attachments",
    "plugins",
    "ui",
    "logging",
    "identity",
    "bindings",
    "surfaces",
    "approvals",
    "security",
    "diagnostics",
    "acp",
    "update",
    "telemetry",
    "transcripts",
    "desktop",
    "cloudWorkers",
    "commands",
    "accessGroups",
];
const HOT_GATEWAY: &[&str] = &[
    "reload",
    "remote",
    "publicOrigin",
    "http",
    "tools",
    "nodes",
    "cliAgents",
    "push",
    "terminal",
    "roles",
    "trustedProxies",
    "allowRealIpFallback",
];

/// The part of a config whose change needs a gateway restart: deploy
/// restarts (under a hold on the standby's monitor) only when it changes.
pub fn restart_class(config: &Json) -> Json {
    let mut out = Map::new();
    if let Json::Object(m) = config {
        for (k, v) in m {
            if HOT.contains(&k.as_str()) {
                continue;
            }
            if k == "gateway" {
                let mut g = Map::new();
                if let Json::Object(gm) = v {
                    for (gk, gv) in gm {
                        if HOT_GATEWAY.contains(&gk.as_str()) {
                            continue;
                        }
                        if gk == "auth" {
                            // The token hot-applies; the auth mode does not.
                            let mut a = gv.clone();
                            if let Json::Object(am) = &mut a {
                                am.remove("token");
                                am.remove("password");
                            }
                            g.insert(gk.clone(), a);
                        } else if gk == "controlUi" {
                            // Only the serving paths need a restart.
                            if let Some(p) = gv.get("basePath") {
                                g.insert("controlUi.basePath".into(), p.clone());
                            }
                        } else {
                            g.insert(gk.clone(), gv.clone());
                        }
                    }
                }
                out.insert(k.clone(), Json::Object(g));
                continue;
            }
            out.insert(k.clone(), v.clone());
        }
    }
    Json::Object(out)
}

fn url_host(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    }
}

/// Deep merge: mappings merge key by key, anything else in `extra` wins.
pub fn merge(base: &mut Json, extra: Json) {
    match (base, extra) {
        (Json::Object(b), Json::Object(e)) => {
            for (k, v) in e {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, e) => *slot = e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::config::switch_content;

    #[test]
    fn hot_keys_do_not_touch_the_restart_class() {
        let base = json!({"gateway": {"port": 1, "auth": {"mode": "token", "token": "${T}"}, "controlUi": {"allowedOrigins": ["a"]}}, "channels": {"x": {}}, "agents": {}});
        let mut hot = base.clone();
        hot["channels"]["x"]["enabled"] = json!(false);
        hot["agents"]["defaults"] = json!({"model": "m"});
        hot["gateway"]["auth"]["token"] = json!("${U}");
        hot["gateway"]["controlUi"]["allowedOrigins"] = json!(["b"]);
        hot["gateway"]["reload"] = json!({"mode": "hybrid"});
        assert_eq!(restart_class(&base), restart_class(&hot));
        for cold in [
            json!({"gateway": {"port": 2}}),
            json!({"gateway": {"auth": {"mode": "password"}}}),
            json!({"discovery": {"mdns": {}}}),
            json!({"someNewSection": 1}),
        ] {
            let mut c = base.clone();
            merge(&mut c, cold.clone());
            assert_ne!(restart_class(&base), restart_class(&c), "{cold}");
        }
    }

    #[test]
    fn the_switch_file_is_included_first() {
        let s = switched(json!({"gateway": {}, "channels": {"discord": {"token": "${T}"}}}));
        assert_eq!(
            serde_json::to_string(&s).unwrap().find("$include"),
            Some(2),
            "the include comes first, so the rest is merged over it"
        );
        let promoted: Json =
            serde_json::from_str(&switch_content(&["discord".into()], true, false)).unwrap();
        assert_eq!(
            promoted,
            json!({"channels": {"discord": {"enabled": true}}, "cron": {"enabled": true}})
        );
        // The nudge changes the file, not its meaning: the channel stays enabled.
        let nudged: Json =
            serde_json::from_str(&switch_content(&["discord".into()], false, true)).unwrap();
        assert_eq!(
            nudged,
            json!({"channels": {"discord": {}}, "cron": {"enabled": false}})
        );
    }

    #[test]
    fn a_warm_standbys_channel_credentials_become_file_refs() {
        let secrets = crate::inventory::Secrets::default();
        let mut vars = EnvVars::new(&secrets, false);
        vars.add("OCFO_DISCORD_TOKEN".into(), "t".into(), "x")
            .unwrap();
        let mut v = json!({"token": "${OCFO_DISCORD_TOKEN}", "other": "${NOT_OURS}", "list": ["${OCFO_DISCORD_TOKEN}"]});
        armed_refs(&mut v, &vars);
        let r = json!({"source": "file", "provider": STANDBY_SECRETS_PROVIDER, "id": "/OCFO_DISCORD_TOKEN"});
        assert_eq!(
            v,
            json!({"token": r.clone(), "other": "${NOT_OURS}", "list": [r]})
        );
    }

    #[test]
    fn merge_is_deep_and_extra_wins() {
        let mut a = json!({"gateway": {"port": 1, "mode": "local"}, "x": [1]});
        merge(&mut a, json!({"gateway": {"port": 2}, "x": [3], "y": true}));
        assert_eq!(
            a,
            json!({"gateway": {"port": 2, "mode": "local"}, "x": [3], "y": true})
        );
    }

    #[test]
    fn literal_credentials_move_to_the_env_file_and_are_redacted() {
        use crate::inventory::{load_str, LoadOptions};
        use crate::render::{render_node, SecretMode};
        let source = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid.yaml"),
        )
        .unwrap()
        .replacen(
            "    botToken: {env: T_TELEGRAM_TOKEN}\n",
            "    botToken: \"tg-literal-token-1\"\n    webhookPassword: 97531864\n",
            1,
        );
        let loaded = load_str(
            &source,
            std::path::Path::new("valid.yaml"),
            LoadOptions {
                resolve_secrets: false,
            },
        );
        assert_eq!(
            loaded.report.warning_count(),
            2,
            "{}",
            loaded.report.render(false)
        );
        let inv = loaded.inventory.expect("valid with warnings");
        let files = render_node(&inv, Role::Primary, &loaded.secrets, SecretMode::Redact).unwrap();
        let config = files
            .get(&Layout::new(&inv.openclaw.user).config_path)
            .unwrap();
        let config = String::from_utf8_lossy(&config.content);
        assert!(
            config.contains("\"webhookPassword\": \"${OCFO_TELEGRAM_WEBHOOKPASSWORD}\""),
            "{config}"
        );
        assert!(!config.contains("97531864") && !config.contains("tg-literal-token-1"));
        let env = files.get(super::super::GATEWAY_ENV_FILE).unwrap();
        let env = String::from_utf8_lossy(&env.content);
        assert!(
            env.contains("OCFO_TELEGRAM_WEBHOOKPASSWORD=\"<redacted>\""),
            "{env}"
        );
        // Output (diffs, errors) never shows them either.
        let r = loaded.secrets.redactor();
        assert_eq!(
            r.redact("tg-literal-token-1 97531864"),
            "<redacted> <redacted>"
        );
    }
}
