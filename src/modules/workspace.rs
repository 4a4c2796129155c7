//! The OpenClaw workspace: a git checkout owned by the gateway's user, cloned
//! with the deploy key. The primary pushes it on a timer; the standby pulls
//! it when promoted.

use super::{facts, fail, q, ModuleError};
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
    let out = facts(
        host,
        &format!(
            "if [ -d {w}/.git ]; then echo clone; runuser -u {u} -- git -C {w} remote get-url origin 2>/dev/null || echo; runuser -u {u} -- git -C {w} config core.sshCommand || echo; else echo none; fi",
            w = q(ws),
            u = q(user)
        ),
    )
    .await?;
    let lines: Vec<&str> = out.lines().collect();
    let git = |args: &str| format!("runuser -u {} -- git -C {} {args}", q(user), q(ws));
    let configure = format!(
        "{}\n{}\n{}",
        git(&format!("config core.sshCommand {}", q(&ssh))),
        git(&format!(
            "config user.name {}",
            q(&format!("ocfo on {}-{}", ctx.inv.name, ctx.role))
        )),
        git("config user.email ocfo@localhost"),
    );
    match lines.first().copied() {
        Some("none") => {
            let script = format!(
                "set -e\ncd /\nif [ -e {w} ] && [ -n \"$(ls -A {w} 2>/dev/null)\" ]; then echo \"{ws} exists and is not a git checkout; move it away first\" >&2; exit 1; fi\n\
                 rm -rf {w}\nrunuser -u {u} -- env GIT_SSH_COMMAND={s} git clone -q {r} {w}\n\
                 {checkout}\n{configure}",
                w = q(ws),
                u = q(user),
                s = q(&ssh),
                r = q(repo),
                checkout = git(&format!("checkout -q {b} 2>/dev/null || {} ", git(&format!("checkout -q -b {b}", b = q(branch))), b = q(branch))),
            );
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
