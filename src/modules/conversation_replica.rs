//! The conversation replica: a git repository of the gateway's user, apart
//! from the workspace, where OpenClaw's `backup git create` writes its
//! per-table snapshots of the agent's database (the primary) and from which
//! `backup git restore` reads them (a promoted standby). It travels on its
//! own branch of the workspace remote, with the workspace's credential
//! (docs/monitor.md, "Conversations").
//!
//! Only `init` is done here: the snapshots are the push script's, the
//! restores the monitor's.

use super::workspace::{auth_config, configure_git, user_git_function, FACTS};
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
        Some("clone") => (
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
        &identity,
        remote,
        &crate::layout::conversation_branch(ctx.role.as_str()),
    ]);
    let what = if origin.is_none() {
        format!("create the conversation replica {repo_dir}")
    } else {
        format!("configure git in {repo_dir}")
    };
    Ok(vec![Change::new(what, vec![Step::run(script)])])
}

/// $1 the replica, $2 user, $3 credential key, $4 its value (empty: unset),
/// $5 identity name, $6 remote, $7 branch. Idempotent: it also repairs a
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
ocfo_git "$2" -C "$1" rev-parse -q --verify HEAD >/dev/null || ocfo_git "$2" -C "$1" symbolic-ref HEAD "refs/heads/$7"
ocfo_git "$2" -C "$1" remote get-url origin >/dev/null 2>&1 || ocfo_git "$2" -C "$1" remote add origin "$6"
"#,
    configure_git!()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_script_parses_and_configures_what_it_was_given() {
        // The same credential/identity tail as the workspace's, by position.
        assert!(INIT.ends_with(concat!("\n", configure_git!())), "{INIT}");
        assert!(INIT.contains(r#"remote add origin "$6""#) && INIT.contains(r#"refs/heads/$7""#));
        let script = Script::new(INIT)
            .guarded()
            .args(["/x", "u", "k", "v", "id", "r", "b"]);
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", &script.render()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
