//! A warm standby's switch file (`/etc/openclaw/switches/standby.json`):
//! deploy creates it, switched off, when it is missing, and never rewrites
//! it. Whether it is on is the monitor's runtime state: a re-deploy during a
//! promotion must not switch the serving channels off.

use super::{facts, ModuleError, Script};
use crate::engine::{Change, Host, Step, TaskContext};
use crate::layout::{SWITCH_DIR, SWITCH_FILE};
use crate::monitor::config::switch_content;

super::no_args!(Args);

pub async fn plan<H: Host>(
    _: &Args,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<Vec<Change>, ModuleError> {
    let out = facts(host, &Script::new(FACTS).args([SWITCH_DIR, SWITCH_FILE])).await?;
    if out.trim() == "present" {
        return Ok(Vec::new());
    }
    // Token-file channels (Telegram) are not switched: their token arrives
    // at promotion (docs/monitor.md).
    let channels: Vec<String> = ctx
        .inv
        .channel_ids(ctx.role)
        .into_iter()
        .filter(|c| !crate::layout::TOKEN_FILE_CHANNELS.contains(&c.as_str()))
        .collect();
    let steps = vec![
        Step::run(Script::new(MAKE_DIR).args([SWITCH_DIR])),
        Step::Put {
            path: SWITCH_FILE.to_string(),
            content: switch_content(&channels, false, false).into_bytes(),
            mode: 0o644,
            owner: "root".into(),
            group: "root".into(),
        },
    ];
    Ok(vec![Change::new(
        format!("create {SWITCH_FILE} (automations off)"),
        steps,
    )])
}

/// $1 the switch folder, $2 the switch file.
const FACTS: &str =
    r#"[ -f "$2" ] && [ ! -L "$2" ] && [ ! -L "$1" ] && echo present || echo missing"#;

/// $1 the switch folder: root's, never a link.
const MAKE_DIR: &str = r#"set -e
[ ! -L "$1" ] || { echo "$1 is a symbolic link" >&2; exit 1; }
install -d -m 0755 -o root -g root "$1""#;

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
