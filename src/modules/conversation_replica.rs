//! The conversation replica: a git repository of the gateway's user, apart
//! from the workspace, where OpenClaw's `backup git create` writes its
//! per-table snapshots of the agent's database (the primary) and from which
//! `backup git restore` reads them (a promoted standby). It travels on its
//! own branch of the workspace remote, with the workspace's credential
//! (docs/monitor.md, "Conversations").
//!
//! Only `init` is done here: the snapshots are the push script's, the
//! restores the monitor's.

use super::workspace::{auth_config, user_git_function};
use super::{facts, fail, ModuleError, Script};
use crate::engine::{Change, Host, Step, TaskContext};

super::no_args!(Args);

pub async fn plan<H: Host>(
    _: &Args,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<Vec<Change>, ModuleError> {
    let repo_dir = &ctx.layout.conversation_repo;
    let user = &ctx.layout.user;
    let remote = &ctx.inv.workspace.repo;
    let (key, want) = auth_config(ctx);
    let out = facts(
        host,
        &Script::new(FACTS).guarded().args([repo_dir, user, key]),
    )
    .await?;
    let lines: Vec<&str> = out.lines().collect();
    let (origin, have) = match lines.first().copied() {
        Some("none") => (None, None),
        Some("repo") => (
            Some(lines.get(1).copied().unwrap_or("").trim()),
            Some(lines.get(2).copied().unwrap_or("").trim()),
        ),
        _ => {
            return Err(fail(format!(
                "unexpected conversation replica facts: {out}"
            )))
        }
    };
    if origin.is_some_and(|o| o != remote) {
        return Err(fail(format!(
            "{repo_dir} pushes to `{}`, not to workspace.repo `{remote}`; move it away and deploy again",
            origin.unwrap_or_default()
        )));
    }
    if origin.is_some() && have == Some(want.as_str()) {
        return Ok(Vec::new());
    }
    let identity = format!("ocfo on {}-{}", ctx.inv.name, ctx.role);
    let script = Script::new(INIT).guarded().args([
        repo_dir.as_str(),
        user,
        key,
        &want,
        remote,
        &crate::layout::conversation_branch(ctx.role.as_str()),
        &identity,
    ]);
    let what = if origin.is_none() {
        format!("create the conversation replica {repo_dir}")
    } else {
        format!("configure git in {repo_dir}")
    };
    Ok(vec![Change::new(what, vec![Step::run(script)])])
}

/// $1 the replica, $2 the user, $3 the credential key.
const FACTS: &str = concat!(
    user_git_function!(),
    r#"cd /
ocfo_guard "$1"
if [ -d "$1/.git" ]; then
  echo repo
  ocfo_git "$2" -C "$1" remote get-url origin 2>/dev/null || echo
  ocfo_git "$2" -C "$1" config --local "$3" || echo
else
  echo none
fi"#
);

/// $1 the replica, $2 user, $3 credential key, $4 its value (empty: unset),
/// $5 remote, $6 branch, $7 identity name. Idempotent: it also repairs a
/// half-made one. OpenClaw refuses a repository others can read or write.
const INIT: &str = concat!(
    user_git_function!(),
    r#"set -e
cd /
ocfo_guard "$1"
ocfo_user_only "$1" "$2"
if [ -e "$1" ] && [ ! -d "$1/.git" ] && [ -n "$(ocfo_as_owner ls -A -- "$1" 2>/dev/null)" ]; then
  echo "$1 exists and is not a git repository; move it away first" >&2; exit 1
fi
runuser -u "$2" -- mkdir -p -m 0700 -- "$1"
runuser -u "$2" -- chmod 0700 -- "$1"
ocfo_git "$2" init -q -- "$1"
ocfo_git "$2" -C "$1" rev-parse -q --verify HEAD >/dev/null || ocfo_git "$2" -C "$1" symbolic-ref HEAD "refs/heads/$6"
ocfo_git "$2" -C "$1" remote get-url origin >/dev/null 2>&1 || ocfo_git "$2" -C "$1" remote add origin "$5"
if [ -n "$4" ]; then
  ocfo_git "$2" -C "$1" config --local --replace-all "$3" "$4"
else
  ocfo_git "$2" -C "$1" config --local --unset-all "$3" || true
fi
ocfo_git "$2" -C "$1" config user.name "$7"
ocfo_git "$2" -C "$1" config user.email ocfo@localhost"#
);

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
