//! The OpenClaw workspace: a git checkout owned by the gateway's user, cloned
//! with the deploy key (SSH remotes) or through ocfo's credential helper
//! (https:// remotes with a token). The primary pushes it on a timer; the
//! standby pulls it when promoted. Either is configured in the checkout's own
//! git config, so the push timer and the monitor's pulls use it unchanged.

use super::{facts, fail, q, ModuleError};
use crate::engine::{Change, Host, Step, TaskContext};
use crate::inventory::WorkspaceAuth;
use crate::render::layout::GIT_CREDENTIAL_HELPER;

/// The git config key that carries the credential, its wanted value, and the
/// `git -c` options for the first clone (before the checkout has a config).
fn auth_config(ctx: &TaskContext<'_>) -> (&'static str, String, String) {
    match &ctx.inv.workspace.auth {
        WorkspaceAuth::DeployKey(_) => {
            let ssh = ctx.layout.git_ssh_command();
            let opt = format!("-c core.sshCommand={}", q(&ssh));
            ("core.sshCommand", ssh, opt)
        }
        // Only the token file's path is ever in git's config or argv; the
        // empty value first drops any helper inherited from system config.
        WorkspaceAuth::Token { .. } => (
            "credential.helper",
            GIT_CREDENTIAL_HELPER.to_string(),
            format!(
                "-c credential.helper= -c credential.helper={}",
                q(GIT_CREDENTIAL_HELPER)
            ),
        ),
        WorkspaceAuth::Anonymous => ("credential.helper", String::new(), String::new()),
    }
}

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
    let (key, want, clone_opts) = auth_config(ctx);
    let out = facts(
        host,
        &format!(
            "if [ -d {w}/.git ]; then echo clone; runuser -u {u} -- git -C {w} remote get-url origin 2>/dev/null || echo; runuser -u {u} -- git -C {w} config --local {key} || echo; else echo none; fi",
            w = q(ws),
            u = q(user)
        ),
    )
    .await?;
    let lines: Vec<&str> = out.lines().collect();
    let git = |args: &str| format!("runuser -u {} -- git -C {} {args}", q(user), q(ws));
    let set_auth = if want.is_empty() {
        git(&format!("config --local --unset-all {key} || true"))
    } else {
        git(&format!("config --local --replace-all {key} {}", q(&want)))
    };
    let configure = format!(
        "{}\n{}\n{}",
        set_auth,
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
                 rm -rf {w}\nrunuser -u {u} -- env GIT_TERMINAL_PROMPT=0 git {clone_opts} clone -q {r} {w}\n\
                 {checkout}\n{configure}",
                w = q(ws),
                u = q(user),
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
            if lines.get(2).copied().unwrap_or("").trim() != want {
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
