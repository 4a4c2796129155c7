//! Playbooks: the embedded YAML task lists in `playbooks/`.
//!
//! A task is a mapping with one module key plus `name`, `when`, `notify` and
//! `tags` (the syntax the operator's tasks share: `inventory::task_syntax`).
//! `site.yaml` imports the others in order; `handlers.yaml` holds the tasks
//! that `notify` triggers once at the end of a host's run, and marks those
//! that restart the gateway (`restarts_gateway: true`).

use include_dir::{include_dir, Dir};
use serde_json::Value as Json;

use crate::inventory::task_syntax::{decode_playbook, PlaybookEntry};
use crate::modules::ModuleCall;

static PLAYBOOKS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/playbooks");

pub use crate::inventory::task_syntax::Task;

#[derive(Debug, Clone)]
pub struct Playbook {
    pub tasks: Vec<Task>,
    pub handlers: Vec<Task>,
}

#[derive(Debug, thiserror::Error)]
#[error("playbook {file}: {message}")]
pub struct PlaybookError {
    pub file: String,
    pub message: String,
}

fn err(file: &str, message: impl Into<String>) -> PlaybookError {
    PlaybookError {
        file: file.to_string(),
        message: message.into(),
    }
}

fn source(file: &str) -> Result<&'static str, PlaybookError> {
    PLAYBOOKS
        .get_file(file)
        .and_then(|f| f.contents_utf8())
        .ok_or_else(|| err(file, "no such embedded playbook"))
}

/// The playbook whose entries are handlers.
const HANDLERS: &str = "handlers.yaml";

/// Loads `site.yaml` with its imports and `handlers.yaml`.
pub fn load_site() -> Result<Playbook, PlaybookError> {
    let mut tasks = Vec::new();
    load_into("site.yaml", &mut tasks, 0)?;
    let mut handlers = Vec::new();
    load_into(HANDLERS, &mut handlers, 0)?;
    for t in &mut tasks {
        for n in &t.notify {
            let mut named = handlers.iter().filter(|h| &h.name == n).peekable();
            if named.peek().is_none() {
                return Err(err(
                    &t.source,
                    format!("task `{}` notifies unknown handler `{n}`", t.name),
                ));
            }
            if named.any(|h| h.restarts_gateway) {
                t.restarts_gateway = true;
            }
        }
    }
    Ok(Playbook { tasks, handlers })
}

/// The site playbook followed by the operator's own tasks (`tasks:` in the
/// inventory), whose handlers run after ocfo's.
pub fn load_for(inv: &crate::inventory::Inventory) -> Result<Playbook, PlaybookError> {
    let mut book = load_site()?;
    if let Some(ut) = &inv.tasks {
        let source = ut.file.display().to_string();
        book.tasks
            .extend(ut.tasks.iter().map(|t| user_task(t, &source)));
        book.handlers
            .extend(ut.handlers.iter().map(|t| user_task(t, &source)));
    }
    Ok(book)
}

/// An operator's task as the runner sees it: `hosts` becomes part of `when`,
/// and a `file` task installs its rendered file through the `files` module,
/// so it is compared, diffed and repaired exactly like ocfo's own files.
fn user_task(t: &crate::inventory::tasks::UserTask, source: &str) -> Task {
    use crate::inventory::tasks::{Hosts, TASKS_TAG};
    let role = match t.hosts {
        Hosts::All => None,
        Hosts::Primary => Some("role == \"primary\""),
        Hosts::Standby => Some("role == \"standby\""),
    };
    let when = match (role, &t.when) {
        (None, w) => w.clone(),
        (Some(r), None) => Some(r.to_string()),
        (Some(r), Some(w)) => Some(format!("({r}) and ({w})")),
    };
    let (module, args) = match &t.file {
        Some(f) => (
            "files".to_string(),
            serde_json::json!({ "paths": [f.path] }),
        ),
        None => (t.module.clone(), t.args.clone()),
    };
    let mut tags = t.tags.clone();
    tags.push(TASKS_TAG.to_string());
    Task {
        name: t.name.clone(),
        when,
        notify: t.notify.clone(),
        tags,
        module,
        args,
        source: source.to_string(),
        loc: t.loc,
        // The operator's handlers are not the gateway's (validate refuses
        // ocfo's handler names for them).
        restarts_gateway: false,
    }
}

fn load_into(file: &str, out: &mut Vec<Task>, depth: usize) -> Result<(), PlaybookError> {
    if depth > 4 {
        return Err(err(file, "imports nest too deeply"));
    }
    let handlers = file == HANDLERS;
    let entries =
        decode_playbook(source(file)?, file, crate::modules::NAMES, handlers).map_err(|diags| {
            let report = crate::diagnostics::Report::new(std::path::Path::new(file), diags);
            err(file, report.render(false).trim_end())
        })?;
    for entry in entries {
        let t = match entry {
            PlaybookEntry::Import(name) => {
                load_into(&name, out, depth + 1)?;
                continue;
            }
            PlaybookEntry::Task(t) => t,
        };
        check_args(&t)?;
        out.push(*t);
    }
    Ok(())
}

/// Arguments are checked now, with their `{{ }}` unfilled, so a typo in an
/// embedded playbook fails every test run, not a deploy.
fn check_args(t: &Task) -> Result<(), PlaybookError> {
    let mut call = serde_json::Map::new();
    call.insert(t.module.clone(), t.args.clone());
    serde_json::from_value::<ModuleCall>(Json::Object(call)).map_err(|e| {
        err(
            &t.source,
            format!("{}:{}: task `{}`: {e}", t.loc.line, t.loc.column, t.name),
        )
    })?;
    Ok(())
}

impl Task {
    /// The module call with every string argument rendered against `vars`.
    pub fn module_call(
        &self,
        env: &minijinja::Environment<'_>,
        vars: &minijinja::Value,
    ) -> Result<ModuleCall, String> {
        let args = fill(&self.args, env, vars)?;
        let mut map = serde_json::Map::new();
        map.insert(self.module.clone(), args);
        serde_json::from_value(Json::Object(map)).map_err(|e| e.to_string())
    }

    /// Whether `when` holds for these variables (no `when`: always).
    pub fn applies(
        &self,
        env: &minijinja::Environment<'_>,
        vars: &minijinja::Value,
    ) -> Result<bool, String> {
        let Some(expr) = &self.when else {
            return Ok(true);
        };
        let compiled = env
            .compile_expression(expr)
            .map_err(|e| format!("when `{expr}`: {e}"))?;
        compiled
            .eval(vars)
            .map(|v| v.is_true())
            .map_err(|e| format!("when `{expr}`: {e}"))
    }
}

fn fill(
    value: &Json,
    env: &minijinja::Environment<'_>,
    vars: &minijinja::Value,
) -> Result<Json, String> {
    Ok(match value {
        Json::String(s) if s.contains("{{") => {
            Json::String(env.render_str(s, vars).map_err(|e| format!("`{s}`: {e}"))?)
        }
        Json::Array(a) => Json::Array(
            a.iter()
                .map(|v| fill(v, env, vars))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(m) => Json::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), fill(v, env, vars)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// Which tasks a run includes: `--tags` and `--skip-tags`.
#[derive(Debug, Clone, Default)]
pub struct TagFilter {
    pub only: Vec<String>,
    pub skip: Vec<String>,
}

impl TagFilter {
    pub fn selects(&self, task: &Task) -> bool {
        let has = |list: &[String]| task.tags.iter().any(|t| list.contains(t));
        (self.only.is_empty() || has(&self.only)) && !has(&self.skip)
    }
}

/// Every tag used in the embedded playbooks, for `--tags` validation.
pub fn all_tags(p: &Playbook) -> Vec<String> {
    let mut tags: Vec<String> = p.tasks.iter().flat_map(|t| t.tags.clone()).collect();
    tags.sort();
    tags.dedup();
    tags
}
