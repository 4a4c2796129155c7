//! systemd units: enabled or not, running or not, and the restarts and
//! reloads handlers ask for. `daemon-reload` runs only when systemd says a
//! unit file changed on disk (or is new), never "just in case".

use serde::Deserialize;

use super::{facts, q, ModuleError};
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
    let u = q(&args.unit);
    let out = facts(
        host,
        &format!(
            "systemctl show -p LoadState -p NeedDaemonReload -p UnitFileState -p ActiveState -p ActiveEnterTimestampMonotonic {u}; \
             [ -e /etc/systemd/system/{u} ] || [ -e /lib/systemd/system/{u} ] || [ -e /usr/lib/systemd/system/{u} ] && echo FileExists=yes || echo FileExists=no"
        ),
    )
    .await?;
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
            vec![Step::run("systemctl daemon-reload")],
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
            vec![Step::run(format!("systemctl {cmd} {u}"))],
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
                vec![Step::run(format!("systemctl enable --quiet {u}"))],
            ));
        } else if !want && file_state == "enabled" {
            changes.push(Change::new(
                format!("disable {}", args.unit),
                vec![Step::run(format!("systemctl disable --quiet {u}"))],
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
                vec![Step::run(format!("systemctl start {u}"))],
            )),
            State::Stopped if active => changes.push(Change::new(
                format!("stop {}", args.unit),
                vec![Step::run(format!("systemctl stop {u}"))],
            )),
            _ => {}
        }
    }
    Ok(changes)
}
