//! systemd units: enabled or not, running or not, and the restarts and
//! reloads handlers ask for. `daemon-reload` runs only when systemd says a
//! unit file changed on disk (or is new), never "just in case".

use serde::Deserialize;

use super::{facts, ModuleError, Script};
use crate::engine::{Change, Host, Step, TaskContext};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Started,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Restart,
    /// Restart only if running: a standby's gateway is the monitor's to run.
    TryRestart,
    Reload,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub unit: String,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub state: Option<State>,
    /// For handlers: always act.
    #[serde(default)]
    pub action: Option<Action>,
}

pub async fn plan<H: Host>(
    args: &Args,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<Vec<Change>, ModuleError> {
    let u = args.unit.as_str();
    let out = facts(host, &Script::new(FACTS).arg(u)).await?;
    let get = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let mut changes = Vec::new();
    let needs_reload = get("NeedDaemonReload") == "yes"
        || (get("LoadState") == "not-found" && get("FileExists") == "yes");
    if needs_reload {
        changes.push(Change::new(
            format!("daemon-reload ({} changed on disk)", args.unit),
            vec![Step::run(Script::new("systemctl daemon-reload"))],
        ));
    }
    if let Some(action) = args.action {
        // A unit this very run started already runs the new files; restarting
        // it again while it initialises only interrupts it.
        let started_at = get("ActiveEnterTimestampMonotonic")
            .parse::<f64>()
            .unwrap_or(0.0)
            / 1e6;
        let active = get("ActiveState") == "active";
        if active
            && action != Action::Reload
            && ctx.facts.uptime_at_start > 0.0
            && started_at >= ctx.facts.uptime_at_start
        {
            return Ok(changes);
        }
        let (verb, cmd) = match action {
            Action::Restart => ("restart", "restart"),
            Action::TryRestart => ("restart if running", "try-restart"),
            Action::Reload => ("reload", "reload"),
        };
        changes.push(Change::new(
            format!("{verb} {}", args.unit),
            vec![Step::run(
                Script::new(r#"systemctl "$1" -- "$2""#).args([cmd, u]),
            )],
        ));
        return Ok(changes);
    }
    let file_state = get("UnitFileState");
    if let Some(want) = args.enabled {
        let enabled = matches!(
            file_state.as_str(),
            "enabled" | "enabled-runtime" | "static" | "alias"
        );
        if want && !enabled {
            changes.push(Change::new(
                format!("enable {}", args.unit),
                vec![Step::run(
                    Script::new(r#"systemctl enable --quiet -- "$1""#).arg(u),
                )],
            ));
        } else if !want && file_state == "enabled" {
            changes.push(Change::new(
                format!("disable {}", args.unit),
                vec![Step::run(
                    Script::new(r#"systemctl disable --quiet -- "$1""#).arg(u),
                )],
            ));
        }
    }
    if let Some(state) = args.state {
        let active = matches!(
            get("ActiveState").as_str(),
            "active" | "activating" | "reloading"
        );
        match state {
            State::Started if !active => changes.push(Change::new(
                format!("start {}", args.unit),
                vec![Step::run(Script::new(r#"systemctl start -- "$1""#).arg(u))],
            )),
            State::Stopped if active => changes.push(Change::new(
                format!("stop {}", args.unit),
                vec![Step::run(Script::new(r#"systemctl stop -- "$1""#).arg(u))],
            )),
            _ => {}
        }
    }
    Ok(changes)
}

const FACTS: &str = r#"systemctl show -p LoadState -p NeedDaemonReload -p UnitFileState -p ActiveState -p ActiveEnterTimestampMonotonic -- "$1"
[ -e "/etc/systemd/system/$1" ] || [ -e "/lib/systemd/system/$1" ] || [ -e "/usr/lib/systemd/system/$1" ] && echo FileExists=yes || echo FileExists=no"#;

impl super::Module for Args {
    const PREFETCHABLE: bool = true;

    async fn plan<H: Host>(
        &self,
        host: &H,
        ctx: &TaskContext<'_>,
    ) -> Result<Vec<Change>, ModuleError> {
        plan(self, host, ctx).await
    }
}
