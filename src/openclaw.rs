//! What OpenClaw's answers mean, judged in one place: is a gateway healthy
//! (`/healthz`), is the primary ready for the pair (`/readyz`), and what
//! `channels.status` says of a standby's channels (started, live, armed).
//! The laptop's commands and the monitor's actions share it; the monitor's
//! probe judges `/healthz` and `/readyz` with its policy on top
//! (`monitor::probe`).

/// An OpenClaw health answer (`/healthz` or `/readyz`), as far as ocfo
/// reads it: OpenClaw answers unknown paths with 200 and HTML, so only a
/// JSON object counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The answer's own field (`ok` for `/healthz`, `ready` for `/readyz`)
    /// is `true`.
    pub yes: bool,
    /// `/readyz`'s reasons (to a caller with the gateway token), when it
    /// gives them (`failing` present; not a list: none); a reason that is
    /// not a string is `?`.
    pub failing: Option<Vec<String>>,
    /// Channels OpenClaw's crash-loop breaker keeps from starting while
    /// `/readyz` stays ready: it names them only here.
    pub suppressed: Vec<String>,
}

impl Health {
    /// `body` judged on `field` (`ok` or `ready`); `None` unless it is a
    /// JSON object.
    pub fn parse(body: &[u8], field: &str) -> Option<Health> {
        let json: serde_json::Value = serde_json::from_slice(body).ok()?;
        let strings = |k: &str| {
            json.get(k).map(|f| {
                f.as_array()
                    .map_or(&[][..], |a| a.as_slice())
                    .iter()
                    .map(|v| v.as_str().unwrap_or("?").to_string())
                    .collect::<Vec<_>>()
            })
        };
        json.is_object().then(|| Health {
            yes: json.get(field) == Some(&serde_json::Value::Bool(true)),
            failing: strings("failing"),
            suppressed: strings("suppressed").unwrap_or_default(),
        })
    }

    /// Every reason given is one of `channels` (and there is one).
    pub fn only_channels_fail(&self, channels: &[String]) -> bool {
        self.failing
            .as_ref()
            .is_some_and(|f| !f.is_empty() && f.iter().all(|x| channels.contains(x)))
    }
}

/// `/healthz` says the gateway serves: a JSON object whose `ok` is `true`
/// (the status alone says nothing).
pub fn healthz_ok(body: &str) -> bool {
    Health::parse(body.trim().as_bytes(), "ok").is_some_and(|h| h.yes)
}

/// `/readyz` (asked with the gateway token) says the primary is ready for
/// the pair: the gateway serves and nothing but (possibly) its own
/// `channels` fails; channels are the monitor's policy, not a restart's.
pub fn ready_for_pair(body: &str, channels: &[String]) -> bool {
    Health::parse(body.trim().as_bytes(), "ready")
        .is_some_and(|h| h.yes || h.only_channels_fail(channels))
}

/// What OpenClaw said about the switched channels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelCheck {
    pub started: Vec<String>,
    /// Not started, with OpenClaw's reason (`blocked`, last error, absent).
    pub not_started: Vec<(String, String)>,
    /// The latest start time OpenClaw reports for a started channel (Unix ms).
    pub started_at_ms: Option<u64>,
}

impl ChannelCheck {
    pub fn all_started(&self) -> bool {
        self.not_started.is_empty() && !self.started.is_empty()
    }
}

/// Judges `openclaw gateway call channels.status --json` for `channels`:
/// started means enabled and running, or (re)started since `since_ms` and not
/// blocked (a channel whose plugin failed to load is `blocked`).
pub fn judge_channel_status(json: &str, channels: &[String], since_ms: u64) -> ChannelCheck {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let mut check = ChannelCheck::default();
    for ch in channels {
        let accounts = v
            .get("channelAccounts")
            .and_then(|a| a.get(ch))
            .and_then(|a| a.as_array())
            .cloned()
            .unwrap_or_default();
        let mut reason = "OpenClaw does not list it".to_string();
        let mut started = false;
        for a in &accounts {
            let enabled = a.get("enabled").and_then(|e| e.as_bool()).unwrap_or(false);
            let running = a.get("running").and_then(|e| e.as_bool()).unwrap_or(false);
            let lifecycle = a.get("lifecycle").and_then(|e| e.as_str()).unwrap_or("");
            let last_start = a.get("lastStartAt").and_then(|e| e.as_u64());
            let error = a.get("lastError").and_then(|e| e.as_str()).unwrap_or("");
            if !enabled {
                reason = "not enabled (the switch was not applied)".into();
            } else if lifecycle == "blocked" {
                reason = format!("blocked: {}", short(error));
            } else if running || last_start.is_some_and(|t| t + 1000 >= since_ms) {
                started = true;
                if let Some(t) = last_start {
                    check.started_at_ms = Some(check.started_at_ms.unwrap_or(0).max(t));
                }
            } else {
                reason = format!(
                    "not started yet{}",
                    if error.is_empty() {
                        String::new()
                    } else {
                        format!(" (last error: {})", short(error))
                    }
                );
            }
        }
        if started {
            check.started.push(ch.clone());
        } else {
            check.not_started.push((ch.clone(), reason));
        }
    }
    check
}

/// The accounts OpenClaw lists for each of `channels` (`channels.status`).
fn accounts<'a>(v: &'a serde_json::Value, ch: &str) -> &'a [serde_json::Value] {
    v.get("channelAccounts")
        .and_then(|a| a.get(ch))
        .and_then(|a| a.as_array())
        .map_or(&[], |a| a.as_slice())
}

/// Running, or on its way (starting, connecting, reconnecting).
fn account_live(a: &serde_json::Value) -> bool {
    let lifecycle = a.get("lifecycle").and_then(|e| e.as_str()).unwrap_or("");
    a.get("running").and_then(|e| e.as_bool()).unwrap_or(false)
        || !matches!(lifecycle, "" | "stopped" | "blocked")
}

/// Whether any of `channels` is live in a `channels.status` answer.
pub fn judge_channels_live(json: &str, channels: &[String]) -> bool {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    channels
        .iter()
        .any(|ch| accounts(&v, ch).iter().any(account_live))
}

/// Armed: every account of every switched standby channel enabled, stopped,
/// and with credentials OpenClaw could read (not "blocked" as unavailable);
/// every token-file channel enabled and not running (blocked or stopped: its
/// token arrives at promotion).
pub fn judge_armed(json: &str, channels: &[String], token_files: &[String]) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("unreadable channels.status: {e}"))?;
    for ch in token_files {
        let list = accounts(&v, ch);
        if list.is_empty() {
            return Err(format!("{ch}: OpenClaw does not list it"));
        }
        for a in list {
            if a.get("enabled").and_then(|e| e.as_bool()) != Some(true) {
                return Err(format!("{ch}: not enabled"));
            }
            if account_live(a) {
                return Err(format!("{ch}: running while the standby watches"));
            }
        }
    }
    for ch in channels {
        let list = accounts(&v, ch);
        if list.is_empty() {
            return Err(format!("{ch}: OpenClaw does not list it"));
        }
        for a in list {
            let field = |k: &str| a.get(k).and_then(|e| e.as_str()).unwrap_or("");
            if a.get("enabled").and_then(|e| e.as_bool()) != Some(true) {
                return Err(format!("{ch}: not enabled"));
            }
            if account_live(a) {
                return Err(format!("{ch}: running while the standby watches"));
            }
            if field("lifecycle") == "blocked" {
                return Err(format!("{ch}: blocked: {}", short(field("lastError"))));
            }
            if !matches!(field("tokenStatus"), "" | "available") {
                return Err(format!("{ch}: credentials {}", field("tokenStatus")));
            }
        }
    }
    Ok(())
}

fn short(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthz_is_ok_only_when_it_says_so_in_json() {
        assert!(healthz_ok(r#"{"ok":true,"status":"live"}"#));
        assert!(healthz_ok(" {\"ok\": true}\n"));
        assert!(!healthz_ok(r#"{"ok":false}"#));
        assert!(!healthz_ok("<html>ok</html>"));
        assert!(!healthz_ok(""));
    }

    #[test]
    fn a_health_answer_is_a_json_object_with_its_reasons() {
        let h = Health::parse(
            br#"{"ready":false,"failing":["a",1],"suppressed":["b"]}"#,
            "ready",
        );
        assert_eq!(
            h,
            Some(Health {
                yes: false,
                failing: Some(vec!["a".into(), "?".into()]),
                suppressed: vec!["b".into()],
            })
        );
        let h = Health::parse(br#"{"ready":true,"failing":null}"#, "ready").unwrap();
        assert!(h.yes && h.failing == Some(vec![]) && h.suppressed.is_empty());
        assert_eq!(
            Health::parse(br#"{"ok":true}"#, "ready").unwrap().failing,
            None
        );
        assert!(Health::parse(b"[true]", "ok").is_none());
        assert!(Health::parse(b"<html/>", "ok").is_none());
    }

    #[test]
    fn ready_for_the_pair_unless_more_than_own_channels_fail() {
        let own = ["telegram".to_string()];
        assert!(ready_for_pair(r#"{"ready":true}"#, &own));
        assert!(ready_for_pair(
            r#"{"ready":false,"failing":["telegram"]}"#,
            &own
        ));
        assert!(!ready_for_pair(
            r#"{"ready":false,"failing":["telegram","gateway-draining"]}"#,
            &own
        ));
        assert!(!ready_for_pair(r#"{"ready":false,"failing":[]}"#, &own));
        assert!(!ready_for_pair(r#"{"ready":false}"#, &own));
        assert!(!ready_for_pair("not json", &own));
    }

    /// `channels.status` of OpenClaw 2026.9.6 right after a live switch-on
    /// with a token that cannot connect (the lab): started and reconnecting.
    const CONNECTING: &str = r#"{"channelAccounts":{"discord":[{"accountId":"default","enabled":true,"lastStartAt":1795586986043,"lastStopAt":1795586986071,"restartPending":true,"reconnectAttempts":2,"lifecycle":"recovering","configured":true,"running":false,"connected":false,"lastError":"Failed to resolve Discord application id: fetch failed"}]}}"#;

    #[test]
    fn started_and_connecting_is_started() {
        let ch = ["discord".to_string()];
        let c = judge_channel_status(CONNECTING, &ch, 1795586980000);
        assert!(c.all_started(), "{c:?}");
        assert_eq!(c.started_at_ms, Some(1795586986043));
        // A start from before the switch is not this promotion's.
        let c = judge_channel_status(CONNECTING, &ch, 1795587000000);
        assert!(!c.all_started());
    }

    #[test]
    fn a_blocked_or_missing_or_disabled_channel_did_not_start() {
        let ch = ["discord".to_string()];
        let blocked = r#"{"channelAccounts":{"discord":[{"accountId":"default","enabled":true,"running":false,"lifecycle":"blocked","lastError":"plugin failed to load"}]}}"#;
        let c = judge_channel_status(blocked, &ch, 0);
        assert!(!c.all_started());
        assert!(c.not_started[0].1.contains("blocked"), "{c:?}");
        let c = judge_channel_status(r#"{"channelAccounts":{}}"#, &ch, 0);
        assert!(c.not_started[0].1.contains("does not list"));
        let off = r#"{"channelAccounts":{"discord":[{"enabled":false,"running":false}]}}"#;
        assert!(judge_channel_status(off, &ch, 0).not_started[0]
            .1
            .contains("not enabled"));
        assert!(!judge_channel_status("not json", &ch, 0).all_started());
    }

    /// `channels.status` of OpenClaw 2026.9.6 in the lab: a gateway started
    /// without the credentials file, and the same after arming.
    const UNARMED: &str = r#"{"channelAccounts":{"discord":[{"accountId":"default","running":false,"lastStartAt":null,"lastError":"Secret owner account:discord:default is configured but unavailable (secret provider failed).","connected":false,"lifecycle":"blocked","enabled":true,"configured":true}]}}"#;
    const ARMED: &str = r#"{"channelAccounts":{"discord":[{"accountId":"default","enabled":true,"lastStartAt":null,"lastStopAt":1795607873660,"lifecycle":"stopped","tokenSource":"config","tokenStatus":"available","running":false,"configured":true}]}}"#;

    #[test]
    fn armed_means_credentials_loaded_and_channels_stopped() {
        let ch = ["discord".to_string()];
        assert_eq!(judge_armed(ARMED, &ch, &[]), Ok(()));
        let e = judge_armed(UNARMED, &ch, &[]).unwrap_err();
        assert!(e.contains("unavailable"), "{e}");
        // Started (and reconnecting in the lab) is live, not armed.
        assert!(judge_armed(CONNECTING, &ch, &[])
            .unwrap_err()
            .contains("running"));
        assert!(judge_channels_live(CONNECTING, &ch));
        assert!(!judge_channels_live(ARMED, &ch));
        assert!(!judge_channels_live(UNARMED, &ch));
        assert!(!judge_channels_live("not json", &ch));
        assert!(judge_armed(r#"{"channelAccounts":{}}"#, &ch, &[]).is_err());
        let missing = ARMED.replace("\"available\"", "\"missing\"");
        assert!(judge_armed(&missing, &ch, &[])
            .unwrap_err()
            .contains("missing"));
    }

    /// A Telegram standby with its token file absent (2026.9.6): blocked on
    /// a fresh gateway, stopped after a demotion; both armed, running not.
    #[test]
    fn a_token_file_channel_is_armed_while_blocked_or_stopped() {
        let tg = ["telegram".to_string()];
        let blocked = r#"{"channelAccounts":{"telegram":[{"accountId":"default","enabled":true,"running":false,"lifecycle":"blocked","tokenStatus":"configured_unavailable","lastError":"token file missing"}]}}"#;
        let stopped = r#"{"channelAccounts":{"telegram":[{"accountId":"default","enabled":true,"running":false,"lifecycle":"stopped","tokenStatus":"configured_unavailable"}]}}"#;
        let running = r#"{"channelAccounts":{"telegram":[{"accountId":"default","enabled":true,"running":true,"lifecycle":"running"}]}}"#;
        assert_eq!(judge_armed(blocked, &[], &tg), Ok(()));
        assert_eq!(judge_armed(stopped, &[], &tg), Ok(()));
        assert!(judge_armed(running, &[], &tg)
            .unwrap_err()
            .contains("running"));
        assert!(judge_armed(r#"{"channelAccounts":{}}"#, &[], &tg).is_err());
    }
}
