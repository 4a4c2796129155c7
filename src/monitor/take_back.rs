//! The primary's half of the conversation hand-back (docs/monitor.md,
//! "Conversations"): `ocfo monitor take-back`, run by a root timer on the
//! primary. When the standby, about to step down, has put the outage's
//! conversation on the hand-back branch, the primary restores it beside its
//! live database, waits for a moment with no turn running, restarts its
//! gateway on it (OpenClaw activates a restored database only offline),
//! and answers on the returned branch; the standby serves until then, so
//! the users are never without a bot.
//!
//! Idle, a run is one `git ls-remote` of two refs: no fetch, no Node.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::process::Command;
use tokio::time::Instant;

use super::actions::openclaw_as;
use super::config::{ConversationConfig, GatewayConfig, OpenClawCli};
use super::conversation::Snapshot;
use super::replica::{quiesce, Replica};
use crate::child::run;

/// `/etc/ocfo/take-back.yaml`, written by deploy on the primary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TakeBackConfig {
    /// The primary's own gateway.
    pub gateway: GatewayConfig,
    pub openclaw: OpenClawCli,
    /// Its `branch` is the hand-back branch (the standby's offer).
    pub conversation: ConversationConfig,
    /// Where the primary answers that it took an offer.
    pub returned_branch: String,
}

impl TakeBackConfig {
    pub fn from_yaml(text: &str) -> Result<TakeBackConfig, String> {
        let c: TakeBackConfig = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        super::probe::Url::parse(&c.gateway.health_url)?;
        if c.returned_branch.is_empty() || c.returned_branch == c.conversation.branch {
            return Err("returned_branch must name a branch of its own".into());
        }
        Ok(c)
    }

    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).unwrap_or_default()
    }
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No offer, or it was answered already.
    Nothing,
    /// An offer, but the gateway is not running: the next run takes it.
    GatewayDown,
    /// The offer was taken before; only the answer was missing.
    Answered(Snapshot),
    /// Restored and serving with it; offline this long.
    TookBack { snapshot: Snapshot, offline_ms: u64 },
}

/// The turns in flight may take this long to finish before the restart.
const QUIESCE: Duration = Duration::from_secs(60);

pub async fn take_back(config: &TakeBackConfig) -> Result<Outcome, String> {
    let replica = Replica {
        cli: &config.openclaw,
        conversation: &config.conversation,
    };
    let heads = replica
        .remote_heads(&[&config.conversation.branch, &config.returned_branch])
        .await?;
    let (Some(offered), answered) = (heads[0].clone(), heads[1].clone()) else {
        return Ok(Outcome::Nothing);
    };
    if answered.as_deref() == Some(offered.as_str()) {
        return Ok(Outcome::Nothing);
    }
    if replica.activated().as_deref() == Some(offered.as_str()) {
        replica
            .set_remote_branch(&config.returned_branch, Some(&offered))
            .await?;
        let snapshot = Snapshot {
            commit: offered,
            taken_at: 0,
        };
        return Ok(Outcome::Answered(snapshot));
    }
    if systemctl(
        &["is-active", "--quiet", &config.gateway.unit],
        Duration::from_secs(10),
    )
    .await
    .is_err()
    {
        return Ok(Outcome::GatewayDown);
    }
    let Some(snapshot) = replica.fetch().await? else {
        return Ok(Outcome::Nothing);
    };
    tracing::info!(snapshot = %snapshot.commit, "the standby handed the outage's conversation back; restoring it");
    replica.restore(&snapshot).await?;
    let offline = Instant::now();
    let cli = &config.openclaw;
    let quiet = quiesce(QUIESCE, |params| async move {
        let params = params.to_string();
        openclaw_as(
            cli,
            &[
                "gateway",
                "call",
                "gateway.suspend.prepare",
                "--params",
                &params,
                "--json",
            ],
            Duration::from_secs(30),
            false,
        )
        .await
    })
    .await;
    if let Err(e) = quiet {
        // The stop still drains what it can (OpenClaw's own budget).
        tracing::warn!("the gateway did not go quiet before taking the conversation back: {e}");
    }
    systemctl(&["stop", &config.gateway.unit], Duration::from_secs(360)).await?;
    let activated = replica.activate(&snapshot).await;
    let started = systemctl(&["start", &config.gateway.unit], Duration::from_secs(60)).await;
    activated.map_err(|e| format!("activating the handed-back conversation failed: {e}"))?;
    started.map_err(|e| format!("starting {} failed: {e}", config.gateway.unit))?;
    let deadline = Instant::now() + config.gateway.start_timeout;
    loop {
        let r = super::probe::probe(
            &config.gateway.health_url,
            super::config::ProbeMode::Healthz,
            Duration::from_secs(2),
        )
        .await;
        if r.ok {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the gateway did not answer {} within {}s of its restart",
                config.gateway.health_url,
                config.gateway.start_timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let offline_ms = offline.elapsed().as_millis() as u64;
    replica
        .set_remote_branch(&config.returned_branch, Some(&snapshot.commit))
        .await?;
    Ok(Outcome::TookBack {
        snapshot,
        offline_ms,
    })
}

async fn systemctl(args: &[&str], limit: Duration) -> Result<String, String> {
    run(Command::new("systemctl").args(args), limit).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml() -> String {
        r#"gateway:
  unit: openclaw-gateway.service
  health_url: http://127.0.0.1:18789/healthz
  start_timeout: 60s
  start_attempts: 1
openclaw:
  bin: /opt/openclaw/bin/openclaw
  user: openclaw
  home: /home/openclaw
  path: /usr/bin:/bin
  config_path: /home/openclaw/.openclaw/openclaw.json
  include_roots: /etc/openclaw/switches
  gateway_env: /etc/openclaw/gateway.env
conversation:
  repo: /home/openclaw/conversation-replica
  branch: ocfo/conversation-handback
  agent: main
  database: /home/openclaw/.openclaw/agents/main/agent/openclaw-agent.sqlite
  activated_file: /var/lib/ocfo/conversation-activated
  timeout: 60s
returned_branch: ocfo/conversation-returned
"#
        .to_string()
    }

    #[test]
    fn the_config_reads_back_what_it_writes_and_refuses_one_branch_for_both() {
        let c = TakeBackConfig::from_yaml(&yaml()).unwrap();
        assert_eq!(TakeBackConfig::from_yaml(&c.to_yaml()).unwrap(), c);
        let same = yaml().replace(
            "returned_branch: ocfo/conversation-returned",
            "returned_branch: ocfo/conversation-handback",
        );
        assert!(TakeBackConfig::from_yaml(&same)
            .unwrap_err()
            .contains("returned_branch"));
        let typo = yaml().replace("returned_branch", "returned_brnch");
        assert!(TakeBackConfig::from_yaml(&typo).is_err());
    }
}
