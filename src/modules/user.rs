//! A system user with its own group and home (the gateway's user).

use serde::Deserialize;

use super::{facts, q, ModuleError};
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
    let out = facts(host, &format!("getent passwd {} || true", q(&args.name))).await?;
    let fields: Vec<&str> = out.trim().split(':').collect();
    if fields.len() < 7 {
        return Ok(vec![Change::new(
            format!("create system user {} (home {})", args.name, args.home),
            vec![Step::run(format!(
                "useradd --system --user-group --create-home --home-dir {home} --shell {shell} {name}",
                home = q(&args.home),
                shell = q(&args.shell),
                name = q(&args.name)
            ))],
        )]);
    }
    let mut changes = Vec::new();
    if fields[5] != args.home {
        changes.push(Change::new(
            format!(
                "move {}'s home from {} to {}",
                args.name, fields[5], args.home
            ),
            vec![Step::run(format!(
                "usermod --home {} --move-home {}",
                q(&args.home),
                q(&args.name)
            ))],
        ));
    }
    if fields[6] != args.shell {
        changes.push(Change::new(
            format!("set {}'s shell to {}", args.name, args.shell),
            vec![Step::run(format!(
                "usermod --shell {} {}",
                q(&args.shell),
                q(&args.name)
            ))],
        ));
    }
    Ok(changes)
}
