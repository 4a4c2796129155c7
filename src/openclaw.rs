//! What OpenClaw's answers mean, judged in one place for the laptop's
//! commands: is a gateway healthy (`/healthz`), and is the primary ready for
//! the pair (`/readyz`). The monitor's own probe judges the same answers
//! with its policy on top (`monitor::probe`).

/// `/healthz` says the gateway serves: a JSON object whose `ok` is `true`
/// (OpenClaw answers unknown paths with 200 and HTML, so the status alone
/// says nothing).
pub fn healthz_ok(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body.trim())
        .ok()
        .and_then(|v| v.get("ok").cloned())
        == Some(serde_json::Value::Bool(true))
}

/// `/readyz` (asked with the gateway token) says the primary is ready for
/// the pair: the gateway serves and nothing but (possibly) its own
/// `channels` fails; channels are the monitor's policy, not a restart's.
pub fn ready_for_pair(body: &str, channels: &[String]) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body.trim()) else {
        return false;
    };
    if v.get("ready") == Some(&serde_json::Value::Bool(true)) {
        return true;
    }
    v.get("failing")
        .and_then(|f| f.as_array())
        .is_some_and(|f| {
            !f.is_empty()
                && f.iter()
                    .all(|x| x.as_str().is_some_and(|s| channels.iter().any(|c| c == s)))
        })
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
}
