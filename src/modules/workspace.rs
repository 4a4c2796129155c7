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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::engine::context::RunOptions;
    use crate::engine::facts::Facts;
    use crate::engine::host::{CmdOutput, HostError};
    use crate::inventory::{load_str, LoadOptions, Role};
    use crate::render::layout::Layout;
    use crate::render::{render_node, SecretMode};

    /// Answers the facts script with a fixed text.
    struct Facts1(String);

    impl Host for Facts1 {
        fn name(&self) -> &str {
            "fake"
        }
        async fn run(&self, _: &str, _: Option<&[u8]>) -> Result<CmdOutput, HostError> {
            Ok(CmdOutput {
                status: Some(0),
                stdout: self.0.clone(),
                stderr: String::new(),
            })
        }
        async fn put(&self, _: &str, _: &[u8], _: u32, _: &str, _: &str) -> Result<(), HostError> {
            Ok(())
        }
    }

    const TOKEN: &str = "ghp_never-in-a-script-0001";

    /// The steps planned for the fixture with its workspace replaced by
    /// `workspace`, the host answering `facts`.
    async fn steps(workspace: &str, facts: &str) -> Vec<String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid.yaml");
        let base = std::fs::read_to_string(&path).unwrap();
        let start = base.find("workspace:\n").unwrap();
        let end = base.find("monitor:\n").unwrap();
        let source = format!("{}{workspace}{}", &base[..start], &base[end..]);
        std::env::set_var("T_WS_GIT_TOKEN", TOKEN);
        // The fixture's other secrets, with values of their own.
        for (i, name) in [
            "T_TS_AUTHKEY",
            "T_GATEWAY_TOKEN",
            "T_ANTHROPIC_KEY",
            "T_TELEGRAM_TOKEN",
            "T_DISCORD_TOKEN",
            "T_WEBHOOK",
        ]
        .iter()
        .enumerate()
        {
            std::env::set_var(name, format!("workspace-test-value-{i}"));
        }
        let loaded = load_str(&source, &path, LoadOptions::default());
        let inv = loaded
            .inventory
            .unwrap_or_else(|| panic!("{}", loaded.report.render(false)));
        let files = render_node(&inv, Role::Primary, &loaded.secrets, SecretMode::Reveal).unwrap();
        let (facts_, layout, opts) = (Facts::default(), Layout::new(&inv), RunOptions::default());
        let redactor = loaded.secrets.redactor();
        let ctx = TaskContext {
            inv: &inv,
            role: Role::Primary,
            facts: &facts_,
            files: &files,
            secrets: &loaded.secrets,
            layout: &layout,
            opts: &opts,
            redactor: &redactor,
        };
        let changes = plan(&Args {}, &Facts1(facts.into()), &ctx).await.unwrap();
        changes
            .iter()
            .flat_map(|c| c.steps.iter())
            .map(|s| match s {
                Step::Run { script, .. } => script.clone(),
                Step::Put { path, .. } => format!("put {path}"),
            })
            .collect()
    }

    const HTTPS: &str = "workspace:\n  repo: https://git.example.invalid/you/ws.git\n  token: {env: T_WS_GIT_TOKEN}\n";

    #[tokio::test]
    async fn https_clone_goes_through_the_credential_helper_only() {
        let s = steps(HTTPS, "none\n").await.join("\n");
        assert!(
            s.contains(
                "git -c credential.helper= -c credential.helper=/usr/local/lib/ocfo/git-credential-workspace clone -q https://git.example.invalid/you/ws.git"
            ),
            "{s}"
        );
        assert!(s.contains("config --local --replace-all credential.helper /usr/local/lib/ocfo/git-credential-workspace"));
        assert!(!s.contains(TOKEN) && !s.contains("sshCommand"), "{s}");
    }

    #[tokio::test]
    async fn a_checkout_with_the_helper_is_left_alone_and_one_without_is_fixed() {
        let ok = "clone\nhttps://git.example.invalid/you/ws.git\n/usr/local/lib/ocfo/git-credential-workspace\n";
        assert!(steps(HTTPS, ok).await.is_empty());
        let missing = "clone\nhttps://git.example.invalid/you/ws.git\n\n";
        let s = steps(HTTPS, missing).await.join("\n");
        assert!(s.contains("--replace-all credential.helper"), "{s}");
    }

    #[tokio::test]
    async fn a_public_https_checkout_has_no_credential_setting() {
        let public = "workspace:\n  repo: https://git.example.invalid/you/public.git\n";
        let s = steps(public, "none\n").await.join("\n");
        assert!(
            s.contains(
                "GIT_TERMINAL_PROMPT=0 git  clone -q https://git.example.invalid/you/public.git"
            ),
            "{s}"
        );
        assert!(
            s.contains("config --local --unset-all credential.helper"),
            "{s}"
        );
    }

    #[tokio::test]
    async fn an_ssh_checkout_uses_the_deploy_key() {
        let s = steps(
            "workspace:\n  repo: git@example.invalid:you/ws.git\n  deploy_key: {command: \"printf key\"}\n",
            "none\n",
        )
        .await
        .join("\n");
        assert!(
            s.contains("git -c core.sshCommand='ssh -i /home/openclaw/.ssh/ocfo_workspace_key"),
            "{s}"
        );
        assert!(!s.contains("credential.helper"), "{s}");
    }
}
