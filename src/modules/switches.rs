//! A warm standby's switch files (`/etc/openclaw/switches/*.json`): deploy
//! creates the ones that are missing, switched off, and never rewrites one
//! that exists. Whether they are on is the monitor's runtime state: a
//! re-deploy during a promotion must not switch the serving channels off.

use super::{facts, q, ModuleError};
use crate::engine::{Change, Host, Step, TaskContext};
use crate::render::layout::{switch_path, SWITCH_DIR};

pub type Args = super::NoArgs;

pub const OFF: &str = "{ \"enabled\": false }\n";

/// The switch names of this inventory's standby: its channels, and `cron`.
pub fn names(ctx: &TaskContext<'_>) -> Vec<String> {
    ctx.inv
        .channels_of(crate::inventory::Role::Standby)
        .map(|c| c.name.clone())
        .chain(["cron".to_string()])
        .collect()
}

pub async fn plan<H: Host>(
    _: &Args,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<Vec<Change>, ModuleError> {
    let paths: Vec<String> = names(ctx).iter().map(|n| switch_path(n)).collect();
    let script = paths
        .iter()
        .map(|p| {
            format!(
                "[ -f {p} ] && [ ! -L {p} ] && echo present || echo missing",
                p = q(p)
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let out = facts(host, &script).await?;
    let missing: Vec<&String> = paths
        .iter()
        .zip(out.lines().chain(std::iter::repeat("missing")))
        .filter(|(_, state)| *state != "present")
        .map(|(p, _)| p)
        .collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let mut steps = vec![Step::run(format!(
        "set -e\n[ ! -L {d} ] || {{ echo '{SWITCH_DIR} is a symlink' >&2; exit 1; }}\ninstall -d -m 0755 -o root -g root {d}",
        d = q(SWITCH_DIR)
    ))];
    for p in &missing {
        steps.push(Step::Put {
            path: p.to_string(),
            content: OFF.as_bytes().to_vec(),
            mode: 0o644,
            owner: "root".into(),
            group: "root".into(),
        });
    }
    Ok(vec![Change::new(
        format!(
            "create switch files (off): {}",
            missing
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        steps,
    )])
}
