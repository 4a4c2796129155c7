//! A system user with its own group and home (the gateway's user).

use serde::Deserialize;

use super::{facts, ModuleError, Script};
use crate::engine::{Change, Host, Step};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub name: String,
    pub home: String,
    #[serde(default = "default_shell")]
    pub shell: String,
}

fn default_shell() -> String {
    "/usr/sbin/nologin".into()
}

pub async fn plan<H: Host>(args: &Args, host: &H) -> Result<Vec<Change>, ModuleError> {
    let out = facts(
        host,
        &Script::new(r#"getent passwd -- "$1" || true"#).arg(&args.name),
    )
    .await?;
    let fields: Vec<&str> = out.trim().split(':').collect();
    if fields.len() < 7 {
        return Ok(vec![Change::new(
            format!("create system user {} (home {})", args.name, args.home),
            vec![Step::run(
                Script::new(r#"useradd --system --user-group --create-home --home-dir "$1" --shell "$2" -- "$3""#)
                    .args([&args.home, &args.shell, &args.name]),
            )],
        )]);
    }
    let mut changes = Vec::new();
    if fields[5] != args.home {
        changes.push(Change::new(
            format!(
                "move {}'s home from {} to {}",
                args.name, fields[5], args.home
            ),
            vec![Step::run(
                Script::new(r#"usermod --home "$1" --move-home -- "$2""#)
                    .args([&args.home, &args.name]),
            )],
        ));
    }
    if fields[6] != args.shell {
        changes.push(Change::new(
            format!("set {}'s shell to {}", args.name, args.shell),
            vec![Step::run(
                Script::new(r#"usermod --shell "$1" -- "$2""#).args([&args.shell, &args.name]),
            )],
        ));
    }
    Ok(changes)
}

impl super::Module for Args {
    const PREFETCHABLE: bool = true;

    async fn plan<H: Host>(
        &self,
        host: &H,
        _ctx: &crate::engine::TaskContext<'_>,
    ) -> Result<Vec<Change>, ModuleError> {
        plan(self, host).await
    }
}
