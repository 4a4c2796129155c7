//! What others ask of the monitor through files in its state folder, as both
//! sides read them: the laptop writes them (`standby_client`), the monitor
//! obeys them. A deploy's hold and a drill's mark are leases ([`Hold`]); a
//! planned switchover is a request ([`SwitchoverRequest`]) in force while
//! its file exists.

use serde::{Deserialize, Serialize};

/// A lease on the monitor (`/var/lib/ocfo/hold.json` for a deploy's hold,
/// `drill.json` for a drill's mark), written with the standby's own clock so
/// no clock skew can stretch it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Unix seconds at which the hold ends by itself.
    pub until: u64,
    pub by: String,
    pub reason: String,
}

impl Hold {
    /// The hold in `text`, if it is well-formed and not expired at `now`.
    pub fn parse_active(text: &str, now: u64) -> Option<Hold> {
        let h: Hold = serde_json::from_str(text).ok()?;
        (h.until > now).then_some(h)
    }
}

/// A planned switchover (`/var/lib/ocfo/switchover.json`). The monitor obeys
/// the file while it exists, whatever it holds; its content says who asked
/// and when (the standby's clock, RFC 3339 UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchoverRequest {
    pub by: String,
    pub since: String,
}

impl SwitchoverRequest {
    pub fn parse(text: &str) -> Option<SwitchoverRequest> {
        serde_json::from_str(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_expire() {
        let h = r#"{"until": 100, "by": "deploy", "reason": "restart"}"#;
        assert!(Hold::parse_active(h, 99).is_some());
        assert!(Hold::parse_active(h, 100).is_none());
        assert!(Hold::parse_active("garbage", 0).is_none());
    }
}
