//! A directory with mode and owner. A folder inside one the gateway user
//! controls (`~/.ssh`, `~/.openclaw`) is created and chmod-ed as that user;
//! root only ever `chown -h`s it, and refuses any symbolic link on the way
//! (`ln -s /root ~/.ssh` must not hand /root to the user).

use serde::Deserialize;

use super::{facts, ModuleError, Script};
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
    let out = facts(host, &Script::new(FACTS).guarded().arg(&args.path)).await?;
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
        vec![Step::run(Script::new(ENSURE).guarded().args([
            args.path.clone(),
            format!("{mode:04o}"),
            args.owner.clone(),
            group,
        ]))],
    )])
}

const FACTS: &str = r#"# stat PATH
ocfo_guard "$1"
if [ -d "$1" ]; then stat -c '%a %U %G' -- "$1"; else echo missing; fi"#;

/// $1 path, $2 mode, $3 owner, $4 group.
pub(crate) const ENSURE: &str = r#"# install -d PATH MODE OWNER GROUP
set -eu
ocfo_guard "$1"
if [ "$ocfo_as" = root ]; then
  # Every folder above is root's: nobody else can swap the path under us.
  install -d -m "$2" -o "$3" -g "$4" -- "$1"
else
  ocfo_user_only "$1" "$3"
  ocfo_as_owner mkdir -p -- "$1"
  ocfo_guard "$1"
  [ -d "$1" ] || { echo "ocfo: $1 is not a folder" >&2; exit 1; }
  # -h: if the user swapped in a link since the check, only the link changes.
  chown -h -- "$3:$4" "$1"
  ocfo_as_owner chmod -- "$2" "$1"
fi"#;

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
