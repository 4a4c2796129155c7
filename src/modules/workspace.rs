//! The OpenClaw workspace: a git checkout owned by the gateway's user, cloned
//! with the deploy key. The primary pushes it on a timer; the standby pulls
//! it when promoted.

use super::{facts, fail, ModuleError, Script};
use crate::engine::{Change, Host, Step, TaskContext};

pub type Args = super::NoArgs;

pub async fn plan<H: Host>(
    _: &Args,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<Vec<Change>, ModuleError> {
    let ws = &ctx.layout.workspace;
    let user = &ctx.layout.user;
    let repo = &ctx.inv.workspace.repo;
    let branch = &ctx.inv.workspace.branch;
    let ssh = ctx.layout.git_ssh_command();
    let out = facts(host, &Script::new(FACTS).guarded().args([ws, user])).await?;
    let lines: Vec<&str> = out.lines().collect();
    let identity = format!("ocfo on {}-{}", ctx.inv.name, ctx.role);
    let configure = Script::new(CONFIGURE).args([ws, user, &ssh, &identity]);
    match lines.first().copied() {
        Some("none") => {
            let script = Script::new(CLONE)
                .guarded()
                .args([ws, user, &ssh, repo, branch, &identity]);
            Ok(vec![Change::new(
                format!("clone {repo} into {ws}"),
                vec![Step::run(script)],
            )])
        }
        Some("clone") => {
            let origin = lines.get(1).copied().unwrap_or("").trim();
            if origin != repo {
                return Err(fail(format!(
                    "{ws} is a checkout of `{origin}`, not of workspace.repo `{repo}`; fix its remote or move it away"
                )));
            }
            if lines.get(2).copied().unwrap_or("").trim() != ssh {
                return Ok(vec![Change::new(
                    format!("configure git in {ws}"),
                    vec![Step::run(configure)],
                )]);
            }
            Ok(Vec::new())
        }
        _ => Err(fail(format!("unexpected workspace facts: {out}"))),
    }
}

/// Everything in the checkout runs as the gateway user (its hooks and config
/// are the agent's to write); root only checks that no link leads out of the
/// user's folders. $1 the workspace, $2 the user.
const FACTS: &str = r#"cd /
ocfo_guard "$1"
if [ -d "$1/.git" ]; then
  echo clone
  runuser -u "$2" -- git -C "$1" remote get-url origin 2>/dev/null || echo
  runuser -u "$2" -- git -C "$1" config core.sshCommand || echo
else
  echo none
fi"#;

/// $1 workspace, $2 user, $3 git's ssh command, $4 identity name.
const CONFIGURE: &str = r#"set -e
cd /
runuser -u "$2" -- git -C "$1" config core.sshCommand "$3"
runuser -u "$2" -- git -C "$1" config user.name "$4"
runuser -u "$2" -- git -C "$1" config user.email ocfo@localhost"#;

/// $1 workspace, $2 user, $3 git's ssh command, $4 repo, $5 branch,
/// $6 identity name.
const CLONE: &str = r#"set -e
cd /
ocfo_guard "$1"
ocfo_user_only "$1" "$2"
case $5 in -*) echo "ocfo: refusing branch name '$5'" >&2; exit 1 ;; esac
if [ -e "$1" ] && [ -n "$(ocfo_as_owner ls -A -- "$1" 2>/dev/null)" ]; then
  echo "$1 exists and is not a git checkout; move it away first" >&2; exit 1
fi
ocfo_as_owner rm -rf -- "$1"
runuser -u "$2" -- env GIT_SSH_COMMAND="$3" git clone -q -- "$4" "$1"
runuser -u "$2" -- git -C "$1" checkout -q "$5" 2>/dev/null || runuser -u "$2" -- git -C "$1" checkout -q -b "$5"
runuser -u "$2" -- git -C "$1" config core.sshCommand "$3"
runuser -u "$2" -- git -C "$1" config user.name "$6"
runuser -u "$2" -- git -C "$1" config user.email ocfo@localhost"#;
