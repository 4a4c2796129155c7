//! A directory with mode and owner.

use serde::Deserialize;

use super::{facts, q, ModuleError};
use crate::engine::{Change, Host, Step};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub path: String,
    /// Octal, as a string: `"0700"`.
    pub mode: String,
    #[serde(default = "root")]
    pub owner: String,
    #[serde(default)]
    pub group: Option<String>,
}

fn root() -> String {
    "root".into()
}

pub async fn plan<H: Host>(args: &Args, host: &H) -> Result<Vec<Change>, ModuleError> {
    let mode = u32::from_str_radix(args.mode.trim_start_matches("0o"), 8).map_err(|_| {
        super::fail(format!(
            "directory {}: mode `{}` is not octal",
            args.path, args.mode
        ))
    })?;
    let group = args.group.clone().unwrap_or_else(|| args.owner.clone());
    let path = q(&args.path);
    let out = facts(
        host,
        &format!("if [ -d {path} ]; then stat -c '%a %U %G' {path}; else echo missing; fi"),
    )
    .await?;
    let want = format!("{mode:o} {} {group}", args.owner);
    let have = out.trim();
    if have == want {
        return Ok(Vec::new());
    }
    let summary = if have == "missing" {
        format!("create {} ({mode:04o} {}:{group})", args.path, args.owner)
    } else {
        format!("fix {}: {have} → {want}", args.path)
    };
    Ok(vec![Change::new(
        summary,
        vec![Step::run(format!(
            "install -d -m {mode:04o} -o {} -g {} {path}",
            q(&args.owner),
            q(&group)
        ))],
    )])
}
