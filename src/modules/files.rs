//! Rendered files (see `render`): compared with the host by SHA-256, mode and
//! owner in one round trip, uploaded atomically when they differ.

use serde::Deserialize;

use super::{facts, fail, ModuleError, Script};
use crate::engine::{Change, Host, Step, TaskContext};
use crate::render::RenderedFile;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Exact paths from the node's rendered files.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Or every rendered file under this folder.
    #[serde(default)]
    pub prefix: Option<String>,
    /// With `prefix`: remove files in the folder that are no longer rendered.
    #[serde(default)]
    pub prune: bool,
    /// What to run right after any of these files changed, when a handler at
    /// the end would be too late. A fixed choice rather than a script: a
    /// playbook argument is templated with inventory values, and those never
    /// become script text.
    #[serde(default)]
    pub after_change: Option<AfterChange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum AfterChange {
    #[serde(rename = "update-ca-certificates")]
    UpdateCaCertificates,
    /// Applies ocfo's sysctl file (skipping keys a container makes read-only).
    #[serde(rename = "systemd-sysctl")]
    SystemdSysctl,
    #[serde(rename = "systemctl daemon-reload")]
    DaemonReload,
}

impl AfterChange {
    fn script(self) -> (Script, &'static str) {
        match self {
            AfterChange::UpdateCaCertificates => (
                Script::new("update-ca-certificates >/dev/null"),
                "update-ca-certificates",
            ),
            AfterChange::SystemdSysctl => (
                Script::new(r#"/lib/systemd/systemd-sysctl "$1""#)
                    .arg(crate::layout::SYSCTL_HARDENING),
                "systemd-sysctl",
            ),
            AfterChange::DaemonReload => (
                Script::new("systemctl daemon-reload"),
                "systemctl daemon-reload",
            ),
        }
    }
}

fn selected<'a>(
    args: &Args,
    ctx: &'a TaskContext<'_>,
) -> Result<Vec<&'a RenderedFile>, ModuleError> {
    let mut out = Vec::new();
    for p in &args.paths {
        match ctx.files.get(p) {
            Some(f) => out.push(f),
            None => return Err(fail(format!("no rendered file {p} for the {}", ctx.role))),
        }
    }
    if let Some(prefix) = &args.prefix {
        let dir = format!("{}/", prefix.trim_end_matches('/'));
        out.extend(ctx.files.files.iter().filter(|f| f.path.starts_with(&dir)));
    }
    Ok(out)
}

/// Per file (`$2`…), one line: `sha256 mode owner group` or `missing`; then,
/// with a prune folder (`$1`, or empty), `--` and the files in it. A file in a
/// folder the gateway user controls is read as that user, never through a link.
/// A file in root's folders is hashed and stat'ed from one subshell: a
/// no-op deploy runs this for every managed file, and processes are most of
/// its cost on the host.
const FACTS: &str = r#"set -e
prune=$1; shift
for p in "$@"; do
  ocfo_guard "$p"
  if [ -f "$p" ]; then
    if [ "$ocfo_as" = root ]; then
      r=$(sha256sum < "$p"; stat -c '%a %U %G' -- "$p")
      h=${r%%"
"*}; m=${r#*"
"}
    else
      h=$(ocfo_as_owner cat -- "$p" | sha256sum)
      m=$(stat -c '%a %U %G' -- "$p")
    fi
    printf '%s %s\n' "${h%% *}" "$m"
  else
    echo missing
  fi
done
if [ -n "$prune" ]; then echo '--'; find "$prune" -maxdepth 1 -type f 2>/dev/null || true; fi"#;

/// $1 path, $2 mode, $3 owner, $4 group.
pub(crate) const FIX_META: &str = r#"set -e
ocfo_guard "$1"
ocfo_user_only "$1" "$3"
chown -h -- "$3:$4" "$1"
ocfo_as_owner chmod -- "$2" "$1""#;

const READ: &str = r#"set -e
ocfo_guard "$1"
ocfo_as_owner cat -- "$1""#;

fn facts_script(files: &[&RenderedFile], prune_dir: Option<&str>) -> Script {
    Script::new(FACTS)
        .guarded()
        .arg(prune_dir.unwrap_or(""))
        .args(files.iter().map(|f| f.path.as_str()))
}

pub async fn plan<H: Host>(
    args: &Args,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<Vec<Change>, ModuleError> {
    let files = selected(args, ctx)?;
    let prune_dir = args.prefix.as_deref().filter(|_| args.prune);
    if files.is_empty() && prune_dir.is_none() {
        return Ok(Vec::new());
    }
    let out = facts(host, &facts_script(&files, prune_dir)).await?;
    let (states, present) = match out.split_once("--\n") {
        Some((a, b)) => (a, Some(b)),
        None => (out.as_str(), None),
    };
    let states: Vec<&str> = states.lines().collect();
    if states.len() != files.len() {
        return Err(fail(format!(
            "unexpected facts output from {}: {out}",
            host.name()
        )));
    }
    let mut changes = Vec::new();
    for (f, state) in files.iter().zip(states) {
        if let Some(c) = file_change(f, state, host, ctx).await? {
            changes.push(c);
        }
    }
    if let Some(present) = present {
        for path in present.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if !files.iter().any(|f| f.path == path) {
                changes.push(Change::new(
                    format!("remove {path} (no longer in the inventory)"),
                    vec![Step::run(
                        Script::new(r#"ocfo_guard "$1"; rm -f -- "$1""#)
                            .guarded()
                            .arg(path),
                    )],
                ));
            }
        }
    }
    if let (Some(after), Some(last)) = (args.after_change, changes.last_mut()) {
        let (script, name) = after.script();
        last.steps.push(Step::run(script));
        last.summary.push_str(&format!(", then `{name}`"));
    }
    Ok(changes)
}

async fn file_change<H: Host>(
    f: &RenderedFile,
    state: &str,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<Option<Change>, ModuleError> {
    let want_meta = format!("{:o} {} {}", f.mode, f.owner, f.group);
    let put = || Step::Put {
        path: f.path.clone(),
        content: f.content.clone(),
        mode: f.mode,
        owner: f.owner.clone(),
        group: f.group.clone(),
    };
    if state == "missing" {
        let diff = ctx.opts.diff.then(|| diff_text(f, None));
        return Ok(Some(
            Change::new(
                format!("create {} ({:04o} {})", f.path, f.mode, f.owner),
                vec![put()],
            )
            .with_diff(diff),
        ));
    }
    let (sha, meta) = state.split_once(' ').unwrap_or((state, ""));
    if sha != crate::sha256_hex(&f.content) {
        let diff = if ctx.opts.diff && !f.sensitive {
            let old = facts(host, &Script::new(READ).guarded().arg(&f.path)).await?;
            Some(diff_text(f, Some(&old)))
        } else if ctx.opts.diff {
            Some(format!(
                "--- {0}\n+++ {0}\n(holds secrets: content changed, not shown)\n",
                f.path
            ))
        } else {
            None
        };
        return Ok(Some(
            Change::new(format!("update {}", f.path), vec![put()]).with_diff(diff),
        ));
    }
    if meta != want_meta {
        return Ok(Some(Change::new(
            format!("fix {}: {meta} → {want_meta}", f.path),
            vec![Step::run(Script::new(FIX_META).guarded().args([
                f.path.clone(),
                format!("{:04o}", f.mode),
                f.owner.clone(),
                f.group.clone(),
            ]))],
        )));
    }
    Ok(None)
}

fn diff_text(f: &RenderedFile, old: Option<&str>) -> String {
    if f.sensitive {
        return format!("--- {0}\n+++ {0}\n(holds secrets: not shown)\n", f.path);
    }
    let new = String::from_utf8_lossy(&f.content);
    let old = old.unwrap_or("");
    similar::TextDiff::from_lines(old, &new)
        .unified_diff()
        .header(&f.path, &f.path)
        .to_string()
}

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
