//! The operator's own tasks: `tasks: FILE` in the inventory names a playbook
//! in ocfo's task format that deploy runs after its own, with the same
//! guarantees (exact `--check` and `--diff`, drift repaired, handlers).
//!
//! Read here, when the inventory is read, so `validate` checks it offline
//! and every problem is reported at its file:line:column (in the tasks file,
//! or in a template it names). Only the modules that make sense for users are
//! available; ocfo's own (sshd, ufw, openclaw, ...) are not, so the operator's
//! tasks cannot fight ocfo's. Secrets are not available in them yet.

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::diagnostics::{did_you_mean, Location};

use super::decode::{join, Decoder};
use super::task_syntax::{decode_task, Syntax};
use super::yaml::{self, Kind, Node, Scalar};

/// Modules the operator's tasks may use.
pub const MODULES: &[&str] = &["apt", "directory", "file", "systemd", "user"];
/// Every user task carries this tag too: `--tags tasks` runs only them,
/// `--skip-tags tasks` everything else.
pub const TASKS_TAG: &str = "tasks";

#[derive(Debug, Clone)]
pub struct UserTasks {
    /// The tasks file, as found from the inventory's folder.
    pub file: PathBuf,
    pub tasks: Vec<UserTask>,
    pub handlers: Vec<UserTask>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hosts {
    All,
    Primary,
    Standby,
}

impl Hosts {
    pub fn includes(self, role: super::Role) -> bool {
        match self {
            Hosts::All => true,
            Hosts::Primary => role == super::Role::Primary,
            Hosts::Standby => role.is_standby(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct UserTask {
    pub name: String,
    pub when: Option<String>,
    pub notify: Vec<String>,
    pub tags: Vec<String>,
    pub hosts: Hosts,
    /// One of [`MODULES`].
    pub module: String,
    /// The module's arguments (for `file`, see [`UserTask::file`]).
    pub args: Json,
    pub file: Option<UserFile>,
    /// Where the task begins in the tasks file, and its key path there
    /// (`tasks[3]`), for messages.
    pub loc: Location,
    pub path: String,
}

/// A `file` task: a file with literal content or rendered from a minijinja
/// template, installed like ocfo's own rendered files.
#[derive(Debug, Clone)]
pub struct UserFile {
    /// Absolute path on the host; may use `{{ }}` (not `facts`).
    pub path: String,
    pub source: FileSource,
    pub mode: u32,
    pub owner: String,
    pub group: String,
}

#[derive(Debug, Clone)]
pub enum FileSource {
    Content(String),
    /// The template's file (relative names are taken from the tasks file's
    /// folder) and its text, read when the inventory is read.
    Template {
        file: PathBuf,
        text: String,
    },
}

/// Reads `tasks: FILE`. Problems inside the tasks file are recorded in `d`
/// placed in that file. `gateway_user` is `openclaw.user`, when it decoded.
pub fn load(
    d: &mut Decoder,
    node: &Node,
    inventory: &Path,
    gateway_user: Option<&str>,
    checks: &dyn super::load::Checks,
) -> Option<UserTasks> {
    let name = d.string(node, "tasks")?;
    let path = crate::secrets::laptop_path(&name, inventory.parent());
    let source = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) => {
            d.error(
                "tasks",
                node.loc,
                format!("cannot read the tasks file {}: {e}", path.display()),
            );
            return None;
        }
    };
    let mut td = Decoder::default();
    let result = match yaml::parse(&source) {
        Err(diag) => {
            td.diagnostics.push(diag);
            None
        }
        Ok((root, diags)) => {
            td.diagnostics.extend(diags);
            match root {
                None => {
                    td.diagnostics.push(crate::diagnostics::Diagnostic::error(
                        "the tasks file is empty",
                    ));
                    None
                }
                Some(root) => decode_file(&mut td, &root, &path, gateway_user, checks),
            }
        }
    };
    for diag in td.diagnostics {
        let diag = if diag.file.is_some() {
            diag
        } else {
            diag.in_file(&path)
        };
        d.diagnostics.push(diag);
    }
    result
}

/// What a task needs to know beyond its own text.
struct Ctx<'a> {
    dir: &'a Path,
    gateway_user: Option<&'a str>,
    checks: &'a dyn super::load::Checks,
}

fn decode_file(
    d: &mut Decoder,
    root: &Node,
    path: &Path,
    gateway_user: Option<&str>,
    checks: &dyn super::load::Checks,
) -> Option<UserTasks> {
    let dir = &Ctx {
        dir: path.parent().unwrap_or(Path::new(".")),
        gateway_user,
        checks,
    };
    let (tasks_node, handlers_node) = match &root.kind {
        Kind::Seq(_) => (Some(root), None),
        _ => {
            let f = d.fields(root, "", &["tasks", "handlers"])?;
            (d.required(&f, "tasks"), f.get("handlers"))
        }
    };
    // Broken tasks are left out, but the checks below still run on the
    // others, so one pass reports every problem.
    let (tasks, tasks_ok) = match tasks_node {
        Some(n) => task_list(d, n, "tasks", dir, false),
        None => (Vec::new(), false),
    };
    let (handlers, handlers_ok) = match handlers_node {
        Some(n) => task_list(d, n, "handlers", dir, true),
        None => (Vec::new(), true),
    };
    let builtin = checks.builtin_handlers();
    let mut ok = tasks_ok && handlers_ok;
    for (i, h) in handlers.iter().enumerate() {
        if builtin.contains(&h.name) {
            d.error(
                &format!("{}.name", h.path),
                h.loc,
                format!(
                    "`{}` is the name of one of ocfo's own handlers; name yours differently",
                    h.name
                ),
            );
            ok = false;
        }
        if handlers[..i].iter().any(|o| o.name == h.name) {
            d.error(
                &format!("{}.name", h.path),
                h.loc,
                format!("a second handler named `{}`", h.name),
            );
            ok = false;
        }
    }
    for t in &tasks {
        for n in &t.notify {
            // A notified handler that failed to decode was reported already.
            if !handlers.iter().any(|h| &h.name == n) && handlers_ok {
                let mut diag = crate::diagnostics::Diagnostic::error(format!(
                    "task `{}` notifies `{n}`, which is not a handler in this file",
                    t.name
                ))
                .at(format!("{}.notify", t.path), Some(t.loc));
                if let Some(s) = did_you_mean(n, handlers.iter().map(|h| h.name.as_str())) {
                    diag = diag.hint(format!("did you mean `{s}`?"));
                }
                d.diagnostics.push(diag);
                ok = false;
            }
        }
    }
    ok.then(|| UserTasks {
        file: path.to_path_buf(),
        tasks,
        handlers,
    })
}

/// The tasks that decoded, and whether all did.
fn task_list(
    d: &mut Decoder,
    node: &Node,
    path: &str,
    dir: &Ctx<'_>,
    handlers: bool,
) -> (Vec<UserTask>, bool) {
    let Kind::Seq(items) = &node.kind else {
        d.error(
            path,
            node.loc,
            format!("expected a list of tasks, found {}", node.type_name()),
        );
        return (Vec::new(), false);
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match task(d, item, &format!("{path}[{i}]"), dir, handlers) {
            Some(t) => out.push(t),
            None => ok = false,
        }
    }
    (out, ok)
}

fn task(d: &mut Decoder, node: &Node, path: &str, cx: &Ctx<'_>, handler: bool) -> Option<UserTask> {
    let syntax = Syntax {
        modules: MODULES,
        extra_keys: &["hosts"],
        withheld_modules: &cx.checks.own_modules(),
        refuse_secrets: true,
    };
    let text = decode_task(d, node, path, &syntax, handler);
    // Read even when the rest failed, so its problems are reported too.
    let hosts = match node_entry(node, "hosts") {
        Some(n) => task_hosts(d, n, path),
        None => Some(Hosts::All),
    };
    let text = text?;
    let module = text.module;
    let args_path = join(path, module);
    let file = if module == "file" {
        Some(user_file(d, text.args_node, &args_path, cx.dir)?)
    } else {
        if let Err(e) = cx.checks.module_args(module, &text.args) {
            d.error(
                &args_path,
                text.module_loc,
                format!("invalid arguments: {e}"),
            );
            return None;
        }
        if !module_rules(d, module, &text.args, text.args_node, &args_path, cx) {
            return None;
        }
        None
    };
    Some(UserTask {
        name: text.name,
        when: text.when,
        notify: text.notify,
        tags: text.tags,
        hosts: hosts?,
        module: module.to_string(),
        args: text.args,
        file,
        loc: node.loc,
        path: path.to_string(),
    })
}

/// A mapping's value under `key`, if the node is a mapping that has it.
fn node_entry<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
    match &node.kind {
        Kind::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
            .filter(|v| !v.is_null()),
        _ => None,
    }
}

/// `hosts:` all (the default), primary or standby.
fn task_hosts(d: &mut Decoder, n: &Node, path: &str) -> Option<Hosts> {
    match d.string(n, &join(path, "hosts")).as_deref() {
        Some("all") => Some(Hosts::All),
        Some("primary") => Some(Hosts::Primary),
        Some("standby") => Some(Hosts::Standby),
        Some(other) => {
            d.error(
                &join(path, "hosts"),
                n.loc,
                format!("`{other}` is not one of all, primary, standby"),
            );
            None
        }
        None => None,
    }
}

/// Rules on a module's arguments beyond their shape: ocfo's own units and
/// the gateway's user are not the operator's, and a mode is octal. False
/// after reporting a problem.
fn module_rules(
    d: &mut Decoder,
    module: &str,
    args: &Json,
    args_node: &Node,
    args_path: &str,
    cx: &Ctx<'_>,
) -> bool {
    if module == "systemd" {
        if let Some(unit) = args.get("unit").and_then(Json::as_str) {
            if is_ocfo_unit(unit) {
                d.error(
                        &join(args_path, "unit"),
                        args_node.loc,
                        format!("`{unit}` is ocfo's own unit: deploy and the monitor decide whether it runs (a task of yours would fight the failover)"),
                    );
                return false;
            }
        }
    }
    // The gateway's user is ocfo's: its home holds the config, the
    // workspace and the credentials.
    if module == "user"
        && cx.gateway_user.is_some()
        && args.get("name").and_then(Json::as_str) == cx.gateway_user
    {
        d.error(
            &join(args_path, "name"),
            args_node.loc,
            format!(
                "`{}` is the gateway's user (openclaw.user), which ocfo manages",
                cx.gateway_user.unwrap_or_default()
            ),
        );
        return false;
    }
    if module == "directory" {
        if let Some(mode) = args.get("mode").and_then(Json::as_str) {
            if parse_mode(mode).is_none() {
                d.error(
                    &join(args_path, "mode"),
                    args_node.loc,
                    format!("mode `{mode}` is not octal (like \"0750\")"),
                );
                return false;
            }
        }
    }
    true
}

/// The units ocfo itself starts, stops and restarts (with or without the
/// `.service` suffix systemctl allows).
fn is_ocfo_unit(unit: &str) -> bool {
    use crate::layout::{GATEWAY_UNIT, MONITOR_UNIT, PUSH_SERVICE, PUSH_TIMER, WATCH_SERVICE};
    let full = if unit.contains('.') {
        unit.to_string()
    } else {
        format!("{unit}.service")
    };
    [
        GATEWAY_UNIT,
        MONITOR_UNIT,
        PUSH_SERVICE,
        PUSH_TIMER,
        WATCH_SERVICE,
    ]
    .contains(&full.as_str())
}

fn parse_mode(s: &str) -> Option<u32> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    (!digits.is_empty() && digits.len() <= 4)
        .then(|| u32::from_str_radix(digits, 8).ok())
        .flatten()
}

fn user_file(d: &mut Decoder, node: &Node, path: &str, dir: &Path) -> Option<UserFile> {
    let f = d.fields(
        node,
        path,
        &["path", "content", "template", "mode", "owner", "group"],
    )?;
    let target = d.req_string(&f, "path").and_then(|p| {
        if p.chars().any(crate::terminal::is_hidden) {
            d.error(
                &f.path_of("path"),
                f.get("path")?.loc,
                "a file path must not hold control, bidirectional or invisible characters",
            );
            None
        } else if p.starts_with('/') || p.starts_with("{{") {
            Some(p)
        } else {
            d.error(
                &f.path_of("path"),
                f.get("path")?.loc,
                format!("`{p}` is not an absolute path"),
            );
            None
        }
    });
    let source = match (f.get("content"), f.get("template")) {
        (Some(c), None) => d.string(c, &f.path_of("content")).map(FileSource::Content),
        (None, Some(t)) => d.string(t, &f.path_of("template")).and_then(|name| {
            let file = crate::secrets::laptop_path(&name, Some(dir));
            let text = match std::fs::read_to_string(&file) {
                Ok(text) => text,
                Err(e) => {
                    d.error(
                        &f.path_of("template"),
                        t.loc,
                        format!("cannot read the template {}: {e}", file.display()),
                    );
                    return None;
                }
            };
            let env = crate::jinja::environment();
            if let Err(e) = env.template_from_str(&text) {
                // minijinja knows the line; the problem is in the template.
                let loc = e.line().map(|line| Location { line, column: 1 });
                d.diagnostics.push(
                    crate::diagnostics::Diagnostic::error(format!(
                        "template does not parse: {}",
                        e.detail().unwrap_or("syntax error")
                    ))
                    .at("", loc)
                    .in_file(&file),
                );
                return None;
            }
            Some(FileSource::Template { file, text })
        }),
        (Some(_), Some(t)) => {
            d.error(path, t.loc, "give either `content` or `template`, not both");
            None
        }
        (None, None) => {
            d.error(path, f.loc, "a file needs `content` or `template`");
            None
        }
    };
    let mode = match f.get("mode") {
        None => Some(0o644),
        Some(n) => match n.scalar() {
            Some(Scalar::Str(s)) => match parse_mode(s) {
                Some(m) => Some(m),
                None => {
                    d.error(
                        &f.path_of("mode"),
                        n.loc,
                        format!("mode `{s}` is not octal (like \"0644\")"),
                    );
                    None
                }
            },
            _ => {
                d.error(
                    &f.path_of("mode"),
                    n.loc,
                    "write the mode as a quoted octal string, like \"0644\" (unquoted, YAML reads 0644 as the number 644)",
                );
                None
            }
        },
    };
    let owner = match f.get("owner") {
        None => Some("root".to_string()),
        Some(n) => d.string(n, &f.path_of("owner")),
    };
    let group = match f.get("group") {
        None => owner.clone(),
        Some(n) => d.string(n, &f.path_of("group")),
    };
    Some(UserFile {
        path: target?,
        source: source?,
        mode: mode?,
        owner: owner?,
        group: group?,
    })
}
