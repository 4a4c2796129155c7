//! Rendered files (see `render`): compared with the host by SHA-256, mode and
//! owner in one round trip, uploaded atomically when they differ.

use serde::Deserialize;

use super::{facts, fail, q, ModuleError};
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
    /// A root script run right after any of these files changed (e.g.
    /// `update-ca-certificates`), when a handler at the end would be too late.
    #[serde(default)]
    pub after_change: Option<String>,
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

/// Per file, one line: `sha256 mode owner group` or `missing`.
fn facts_script(files: &[&RenderedFile], prune_dir: Option<&str>) -> String {
    let mut s = String::new();
    for f in files {
        let p = q(&f.path);
        s.push_str(&format!(
            "if [ -f {p} ]; then printf '%s %s\\n' \"$(sha256sum < {p} | cut -d' ' -f1)\" \"$(stat -c '%a %U %G' {p})\"; else echo missing; fi\n"
        ));
    }
    if let Some(dir) = prune_dir {
        s.push_str(&format!(
            "echo '--'; find {} -maxdepth 1 -type f 2>/dev/null || true\n",
            q(dir)
        ));
    }
    s
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
                    vec![Step::run(format!("rm -f {}", q(path)))],
                ));
            }
        }
    }
    if let (Some(script), Some(last)) = (&args.after_change, changes.last_mut()) {
        last.steps.push(Step::run(script.clone()));
        last.summary.push_str(&format!(", then `{script}`"));
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
            let old = host.check(&format!("cat {}", q(&f.path))).await?.stdout;
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
            vec![Step::run(format!(
                "chown {}:{} {p} && chmod {:04o} {p}",
                q(&f.owner),
                q(&f.group),
                f.mode,
                p = q(&f.path)
            ))],
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
