//! The OpenClaw workspace: a git checkout owned by the gateway's user, cloned
//! with the deploy key (SSH remotes) or through ocfo's credential helper
//! (https:// remotes with a token). The primary pushes it on a timer; the
//! standby pulls it when promoted. Either is configured in the checkout's own
//! git config, so the push timer and the monitor's pulls use it unchanged.

use super::{facts, fail, ModuleError, Script};
use crate::engine::{Change, Host, Step, TaskContext};
use crate::inventory::WorkspaceAuth;
use crate::layout::GIT_CREDENTIAL_HELPER;

super::no_args!(Args);

/// The git config key that carries the credential and its wanted value
/// (empty: the key must be unset). Only the helper's path, never the token,
/// is ever in git's config or argv.
pub(super) fn auth_config(ctx: &TaskContext<'_>) -> (&'static str, String) {
    match &ctx.inv.workspace.auth {
        WorkspaceAuth::DeployKey(_) => ("core.sshCommand", ctx.layout.git_ssh_command()),
        WorkspaceAuth::Token { .. } => ("credential.helper", GIT_CREDENTIAL_HELPER.to_string()),
        WorkspaceAuth::Anonymous => ("credential.helper", String::new()),
    }
}

pub async fn plan<H: Host>(
    _: &Args,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<Vec<Change>, ModuleError> {
    let ws = &ctx.layout.workspace;
    let user = &ctx.layout.user;
    let repo = &ctx.inv.workspace.repo;
    let branch = &ctx.inv.workspace.branch;
    let (key, want) = auth_config(ctx);
    let out = facts(host, &Script::new(FACTS).guarded().args([ws, user, key])).await?;
    let lines: Vec<&str> = out.lines().collect();
    let identity = format!("ocfo on {}-{}", ctx.inv.name, ctx.role);
    match lines.first().copied() {
        Some("none") => {
            let script = Script::new(CLONE)
                .guarded()
                .args([ws, user, key, &want, repo, branch, &identity]);
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
                let configure = Script::new(CONFIGURE).args([ws, user, key, &want, &identity]);
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

/// `ocfo_git USER ARGS…`: git as USER, reading none of USER's own git
/// config (`~/.gitconfig`: hooks, fsmonitor, `init.templateDir`, all the
/// agent's to write) and running no hook or fsmonitor even where the
/// checkout's `.git/config` asks (command-line settings win), as the
/// monitor's git does (`monitor::actions::GIT_ENV`, `GIT_OPTIONS`).
macro_rules! user_git_function {
    () => {
        r#"ocfo_git() {
  ocfo_u=$1; shift
  runuser -u "$ocfo_u" -- env GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0 \
    git -c core.hooksPath=/dev/null -c core.fsmonitor=false "$@"
}
"#
    };
}
pub(super) use user_git_function;

/// Everything in the checkout runs as the gateway user (its hooks and config
/// are the agent's to write); root only checks that no link leads out of the
/// user's folders. $1 the workspace, $2 the user, $3 the credential key.
/// Also the conversation replica's facts: `clone` (a repository there), its
/// origin and credential, or `none`. Both reads in one `runuser` (its PAM
/// session is most of a read's cost, and every no-op deploy makes them),
/// with `ocfo_git`'s environment and options.
pub(super) const FACTS: &str = r#"cd /
ocfo_guard "$1"
if [ -d "$1/.git" ]; then
  echo clone
  runuser -u "$2" -- env GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0 sh -c '
o="-c core.hooksPath=/dev/null -c core.fsmonitor=false"
git $o -C "$1" remote get-url origin 2>/dev/null || echo
git $o -C "$1" config --local "$2" || echo' sh "$1" "$3"
else
  echo none
fi"#;

/// The credential and identity of a repository of the gateway user's:
/// $1 the repository, $2 user, $3 credential key, $4 its value (empty:
/// unset), $5 identity name. A macro, so scripts can `concat!` it.
macro_rules! configure_git {
    () => {
        r#"if [ -n "$4" ]; then
  ocfo_git "$2" -C "$1" config --local --replace-all "$3" "$4"
else
  ocfo_git "$2" -C "$1" config --local --unset-all "$3" || true
fi
ocfo_git "$2" -C "$1" config user.name "$5"
ocfo_git "$2" -C "$1" config user.email ocfo@localhost"#
    };
}
pub(super) use configure_git;

/// $1 workspace, $2 user, $3 credential key, $4 its value, $5 identity.
const CONFIGURE: &str = concat!(user_git_function!(), "set -e\ncd /\n", configure_git!());

/// $1 workspace, $2 user, $3 credential key, $4 its value (empty: none),
/// $5 repo, $6 branch, $7 identity name. The empty `credential.helper`
/// first drops any helper inherited from the system's git config.
const CLONE: &str = concat!(
    user_git_function!(),
    r#"set -e
cd /
ocfo_guard "$1"
ocfo_user_only "$1" "$2"
case $6 in -*) echo "ocfo: refusing branch name '$6'" >&2; exit 1 ;; esac
if [ -e "$1" ] && [ -n "$(ocfo_as_owner ls -A -- "$1" 2>/dev/null)" ]; then
  echo "$1 exists and is not a git checkout; move it away first" >&2; exit 1
fi
ocfo_as_owner rm -rf -- "$1"
if [ -n "$4" ]; then
  ocfo_git "$2" -c credential.helper= -c "$3=$4" clone -q -- "$5" "$1"
  ocfo_git "$2" -C "$1" config --local --replace-all "$3" "$4"
else
  ocfo_git "$2" clone -q -- "$5" "$1"
fi
ocfo_git "$2" -C "$1" checkout -q "$6" 2>/dev/null || ocfo_git "$2" -C "$1" checkout -q -b "$6"
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::engine::context::RunOptions;
    use crate::engine::facts::Facts;
    use crate::engine::host::{CmdOutput, HostError};
    use crate::inventory::{load_str, LoadOptions, Role};
    use crate::layout::Layout;
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
        let (facts_, layout, opts) = (
            Facts::default(),
            Layout::new(&inv.openclaw.user),
            RunOptions::default(),
        );
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
                Step::Run { script, .. } => script.render(),
                Step::Put { path, .. } => format!("put {path}"),
            })
            .collect()
    }

    /// `ocfo_git` run by a real `sh` and git (`runuser` stood in for by a
    /// function that runs the command as this user), in a temp HOME where
    /// the "agent" planted a `~/.gitconfig` whose hooks folder and
    /// `init.templateDir` hooks write markers: a clone, checkout and
    /// commit run none of them.
    fn planted_clone(script: &str) -> Vec<String> {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let marks = t.join("marks");
        for d in ["home/hooks", "home/template/hooks", "marks", "origin"] {
            std::fs::create_dir_all(t.join(d)).unwrap();
        }
        for (hook, dir) in [
            ("post-checkout", "home/hooks"),
            ("pre-commit", "home/hooks"),
            ("post-checkout", "home/template/hooks"),
            ("pre-commit", "home/template/hooks"),
        ] {
            let path = t.join(dir).join(hook);
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\ntouch '{}/{}-{hook}'\n",
                    marks.display(),
                    dir.replace('/', "_")
                ),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(
            t.join("home/.gitconfig"),
            format!(
                "[core]\n\thooksPath = {0}/home/hooks\n[init]\n\ttemplateDir = {0}/home/template\n",
                t.display()
            ),
        )
        .unwrap();
        let out = std::process::Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(t)
            .env_clear()
            .env("HOME", t.join("home"))
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut found: Vec<String> = std::fs::read_dir(&marks)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        found.sort();
        found
    }

    const CLONE_AND_COMMIT: &str = r#"set -e
# The remote, made without the planted config (its hooks would leave marks).
GIT_CONFIG_GLOBAL=/dev/null git -C "$1/origin" init -q
GIT_CONFIG_GLOBAL=/dev/null git -C "$1/origin" -c user.name=o -c user.email=o@o commit -q --allow-empty -m first
ocfo_git me clone -q -- "$1/origin" "$1/ws"
ocfo_git me -C "$1/ws" checkout -q -b work
echo hi > "$1/ws/note"
ocfo_git me -C "$1/ws" add -A
ocfo_git me -C "$1/ws" -c user.name=ocfo -c user.email=ocfo@localhost commit -q -m save
"#;

    #[test]
    fn deploys_git_runs_no_hook_the_agent_planted_in_its_git_config() {
        // Plain git as the user, for comparison: the planted hooks run.
        let plain = "ocfo_git() { shift; git \"$@\"; }\n";
        let ran = planted_clone(&format!("{plain}{CLONE_AND_COMMIT}"));
        assert!(
            ran.contains(&"home_hooks-post-checkout".to_string()),
            "{ran:?}"
        );
        assert!(
            ran.contains(&"home_hooks-pre-commit".to_string()),
            "{ran:?}"
        );
        // ocfo's: none.
        let ours = concat!("runuser() { shift 3; \"$@\"; }\n", user_git_function!());
        let ran = planted_clone(&format!("{ours}{CLONE_AND_COMMIT}"));
        assert!(ran.is_empty(), "{ran:?}");
        for script in [FACTS, CONFIGURE, CLONE] {
            assert!(!script.contains("runuser -u \"$2\" -- git"), "{script}");
        }
    }

    const HTTPS: &str = "workspace:\n  repo: https://git.example.invalid/you/ws.git\n  token: {env: T_WS_GIT_TOKEN}\n";

    #[tokio::test]
    async fn https_clone_goes_through_the_credential_helper_only() {
        let s = steps(HTTPS, "none\n").await.join("\n");
        assert!(
            s.starts_with("set -- /home/openclaw/workspace openclaw credential.helper /usr/local/lib/ocfo/git-credential-workspace https://git.example.invalid/you/ws.git main"),
            "{s}"
        );
        assert!(
            s.contains(r#"ocfo_git "$2" -c credential.helper= -c "$3=$4" clone -q -- "$5" "$1""#),
            "{s}"
        );
        assert!(
            s.contains(r#"config --local --replace-all "$3" "$4""#),
            "{s}"
        );
        assert!(!s.contains(TOKEN) && !s.contains("sshCommand"), "{s}");
    }

    #[tokio::test]
    async fn a_checkout_with_the_helper_is_left_alone_and_one_without_is_fixed() {
        let ok = "clone\nhttps://git.example.invalid/you/ws.git\n/usr/local/lib/ocfo/git-credential-workspace\n";
        assert!(steps(HTTPS, ok).await.is_empty());
        let missing = "clone\nhttps://git.example.invalid/you/ws.git\n\n";
        let s = steps(HTTPS, missing).await.join("\n");
        assert!(
            s.starts_with("set -- /home/openclaw/workspace openclaw credential.helper /usr/local/lib/ocfo/git-credential-workspace"),
            "{s}"
        );
        assert!(s.contains(r#"--replace-all "$3" "$4""#), "{s}");
    }

    #[tokio::test]
    async fn a_public_https_checkout_has_no_credential_setting() {
        let public = "workspace:\n  repo: https://git.example.invalid/you/public.git\n";
        let s = steps(public, "none\n").await.join("\n");
        assert!(
            s.starts_with("set -- /home/openclaw/workspace openclaw credential.helper '' https://git.example.invalid/you/public.git"),
            "{s}"
        );
        // No credential value: the clone sets none.
        assert!(s.contains(r#"if [ -n "$4" ]; then"#), "{s}");
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
            s.starts_with("set -- /home/openclaw/workspace openclaw core.sshCommand 'ssh -i /home/openclaw/.ssh/ocfo_workspace_key"),
            "{s}"
        );
        assert!(!s.contains("credential.helper /"), "{s}");
    }
}
