//! One task syntax for both kinds of task lists: ocfo's embedded playbooks
//! (`playbooks/`, read by the engine) and the operator's own tasks file
//! (`tasks:`, read with the inventory).
//!
//! A task is a mapping with `name`, one module key and optionally `when`,
//! `notify` and `tags`; what the two lists may add differs and is named by a
//! [`Syntax`]. Both are read into the position-carrying YAML tree, so a typo
//! in either is reported at its file:line:column, and both go through this
//! one decoder, so the two cannot drift apart in what a task means.

use serde_json::Value as Json;

use crate::diagnostics::{did_you_mean, Diagnostic, Location};

use super::decode::{join, Decoder, Fields};
use super::yaml::{self, Kind, Node, Scalar};

/// The keys every task may have besides its module.
pub(super) const TASK_KEYS: &[&str] = &["name", "when", "notify", "tags"];

/// What sets one kind of task list apart.
pub(super) struct Syntax<'a> {
    /// The modules a task may name.
    pub modules: &'a [&'a str],
    /// Task keys besides [`TASK_KEYS`] (the operator's `hosts`; ocfo's
    /// `restarts_gateway` on handlers).
    pub extra_keys: &'a [&'a str],
    /// Modules that exist but are not in `modules`, named as such when used.
    pub withheld_modules: &'a [&'a str],
    /// Refuse a secret reference (`{env: ...}`) as an argument.
    pub refuse_secrets: bool,
}

/// A task as written, decoded and checked for shape.
pub(super) struct TaskText<'n> {
    pub name: String,
    pub when: Option<String>,
    pub notify: Vec<String>,
    pub tags: Vec<String>,
    pub module: &'n str,
    pub args: Json,
    pub args_node: &'n Node,
    pub module_loc: Location,
    pub fields: Fields<'n>,
    pub loc: Location,
}

/// Decodes one task. Every problem is recorded in `d`, and all of them are
/// looked for before giving up, so one pass reports them all.
pub(super) fn decode_task<'n>(
    d: &mut Decoder,
    node: &'n Node,
    path: &str,
    syntax: &Syntax<'_>,
    handler: bool,
) -> Option<TaskText<'n>> {
    let Kind::Map(entries) = &node.kind else {
        d.error(
            path,
            node.loc,
            format!("expected a task (a mapping), found {}", node.type_name()),
        );
        return None;
    };
    let (module, ok) = module_key(d, entries, path, syntax);
    // Every key is allowed here: unknown ones were reported above, with a
    // better message; `fields` only gives typed access to the task keys.
    let present: Vec<&str> = entries.iter().map(|(k, _)| k.name.as_str()).collect();
    let fields = d.fields(node, path, &present)?;
    let name = task_name(d, &fields, path);
    let when = task_when(d, fields.get("when"), path);
    let notify = match fields.get("notify") {
        Some(n) if handler => {
            d.error(
                &join(path, "notify"),
                n.loc,
                "a handler cannot notify handlers",
            );
            None
        }
        Some(n) => strings(d, n, &join(path, "notify")),
        None => Some(Vec::new()),
    };
    let tags = match fields.get("tags") {
        Some(n) => strings(d, n, &join(path, "tags")),
        None => Some(Vec::new()),
    };
    let Some((module, args_node, module_loc)) = module else {
        if ok {
            d.error(
                path,
                node.loc,
                format!(
                    "the task names no module (one of {})",
                    syntax.modules.join(", ")
                ),
            );
        }
        return None;
    };
    let args_path = join(path, module);
    let args = to_json(d, args_node, &args_path, syntax.refuse_secrets)?;
    check_templates(d, &args, &args_path, args_node.loc);
    if !ok {
        return None;
    }
    Some(TaskText {
        name: name?,
        when: when?,
        notify: notify?,
        tags: tags?,
        module,
        args,
        args_node,
        module_loc,
        fields,
        loc: node.loc,
    })
}

/// The task's one module key, and whether every other key is a task key
/// (each problem reported with its fix).
fn module_key<'a>(
    d: &mut Decoder,
    entries: &'a [(yaml::Key, Node)],
    path: &str,
    syntax: &Syntax<'_>,
) -> (Option<(&'a str, &'a Node, Location)>, bool) {
    let mut module: Option<(&'a str, &'a Node, Location)> = None;
    let mut ok = true;
    for (k, v) in entries {
        let key = k.name.as_str();
        if TASK_KEYS.contains(&key) || syntax.extra_keys.contains(&key) {
            continue;
        }
        if syntax.modules.contains(&key) {
            if let Some((first, _, _)) = module {
                d.error(
                    path,
                    k.loc,
                    format!("a task names exactly one module; this one has `{first}` and `{key}`"),
                );
                ok = false;
            } else {
                module = Some((key, v, k.loc));
            }
            continue;
        }
        ok = false;
        let withheld = syntax.withheld_modules.contains(&key);
        let mut diag = Diagnostic::error(if withheld {
            format!("module `{key}` is ocfo's own and not available in the operator's tasks")
        } else {
            format!("unknown key `{key}`")
        })
        .at(path, Some(k.loc));
        let allowed = TASK_KEYS
            .iter()
            .chain(syntax.extra_keys)
            .chain(syntax.modules)
            .copied();
        diag = match did_you_mean(key, allowed).filter(|_| !withheld) {
            Some(s) => diag.hint(format!("did you mean `{s}`?")),
            None => {
                let extra: Vec<String> = syntax
                    .extra_keys
                    .iter()
                    .map(|k| format!(", `{k}`"))
                    .collect();
                diag.hint(format!(
                    "a task has `name`, one module ({}) and optionally `when`, `notify`, `tags`{}",
                    syntax.modules.join(", "),
                    extra.concat()
                ))
            }
        };
        d.diagnostics.push(diag);
    }
    (module, ok)
}

fn strings(d: &mut Decoder, node: &Node, path: &str) -> Option<Vec<String>> {
    match &node.kind {
        Kind::Scalar { .. } => d.string(node, path).map(|s| vec![s]),
        _ => d.string_list(node, path),
    }
}

/// Printed by every deploy, next to the other task names: one line.
fn task_name(d: &mut Decoder, f: &Fields<'_>, path: &str) -> Option<String> {
    d.req_string(f, "name").and_then(|n| {
        if n.chars().any(crate::terminal::is_hidden) {
            d.error(
                &join(path, "name"),
                f.get("name")?.loc,
                "a task name is one line without control, bidirectional or invisible characters",
            );
            None
        } else {
            Some(n)
        }
    })
}

/// `when:`, a boolean or an expression that compiles.
fn task_when(d: &mut Decoder, node: Option<&Node>, path: &str) -> Option<Option<String>> {
    match node {
        None => Some(None),
        Some(n) => match n.scalar() {
            Some(Scalar::Bool(b)) => Some(Some(b.to_string())),
            Some(Scalar::Str(s)) => {
                let env = crate::jinja::environment();
                match env.compile_expression(s) {
                    Ok(_) => Some(Some(s.to_string())),
                    Err(e) => {
                        d.error(
                            &join(path, "when"),
                            n.loc,
                            format!("`{s}` is not an expression: {e}"),
                        );
                        None
                    }
                }
            }
            _ => {
                d.error(
                    &join(path, "when"),
                    n.loc,
                    format!("expected an expression string, found {}", n.type_name()),
                );
                None
            }
        },
    }
}

/// The arguments as JSON, for the modules' own serde types. With
/// `refuse_secrets`, a secret reference is refused: the operator's tasks
/// cannot carry secrets yet (a file task's content would be shown by
/// `--diff` and installed readable).
fn to_json(d: &mut Decoder, node: &Node, path: &str, refuse_secrets: bool) -> Option<Json> {
    match &node.kind {
        Kind::Map(entries) => {
            if let [(k, _)] = entries.as_slice() {
                if refuse_secrets && ["env", "file", "command"].contains(&k.name.as_str()) {
                    d.error(
                        path,
                        node.loc,
                        "secrets are not available in the operator's tasks (yet): their files are not treated as secret, so `--diff` would show them",
                    );
                    return None;
                }
            }
            let mut m = serde_json::Map::new();
            let mut ok = true;
            for (k, v) in entries {
                match to_json(d, v, &join(path, &k.name), refuse_secrets) {
                    Some(j) => {
                        m.insert(k.name.clone(), j);
                    }
                    None => ok = false,
                }
            }
            ok.then_some(Json::Object(m))
        }
        Kind::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| to_json(d, n, &format!("{path}[{i}]"), refuse_secrets))
            .collect::<Option<Vec<_>>>()
            .map(Json::Array),
        Kind::Scalar { .. } => Some(match node.scalar() {
            Some(Scalar::Bool(b)) => Json::Bool(b),
            Some(Scalar::Int(i)) => Json::from(i),
            Some(Scalar::Float(f)) => Json::from(f),
            Some(Scalar::Str(s)) => Json::String(s.to_string()),
            Some(Scalar::Null) | None => Json::Null,
        }),
    }
}

/// `{{ }}` in arguments must at least parse; what they name is checked when
/// the host's facts are known.
fn check_templates(d: &mut Decoder, v: &Json, path: &str, loc: Location) {
    match v {
        Json::String(s) if s.contains("{{") || s.contains("{%") => {
            let env = crate::jinja::environment();
            if let Err(e) = env.template_from_str(s) {
                d.error(path, loc, format!("`{s}`: {e}"));
            }
        }
        Json::Array(a) => a.iter().for_each(|x| check_templates(d, x, path, loc)),
        Json::Object(m) => m
            .iter()
            .for_each(|(k, x)| check_templates(d, x, &join(path, k), loc)),
        _ => {}
    }
}

/// One entry of an embedded playbook: another playbook to read in its
/// place, or a task.
pub enum PlaybookEntry {
    Import(String),
    /// (Boxed: a task is large beside an import's file name.)
    Task(Box<Task>),
}

/// A task as the engine runs it: one of ocfo's own playbooks, or one of the
/// operator's as `engine::playbook` turns it into one. Its methods (the
/// module call, `when`) are the engine's, which knows the modules.
#[derive(Debug, Clone)]
pub struct Task {
    pub name: String,
    /// A minijinja expression over the task context; the task runs when true.
    pub when: Option<String>,
    pub notify: Vec<String>,
    pub tags: Vec<String>,
    /// The module's name and raw arguments; strings may hold `{{ }}`
    /// expressions, filled in per host.
    pub module: String,
    pub args: Json,
    /// The playbook file it came from, and where in it, for messages.
    pub source: String,
    pub loc: Location,
    /// Running it (a handler marked `restarts_gateway: true`) or a change
    /// it notifies about (a task) restarts the gateway: deploy holds the
    /// standby's monitor first.
    pub restarts_gateway: bool,
}

/// Reads one of ocfo's embedded playbooks: a list of `import: FILE` entries
/// (`file`, for the tasks' `source`) and tasks that may use every module in
/// `modules`. Problems come back located, all of them.
pub fn decode_playbook(
    source: &str,
    file: &str,
    modules: &[&str],
    handlers: bool,
) -> Result<Vec<PlaybookEntry>, Vec<Diagnostic>> {
    let mut d = Decoder::default();
    let root = match yaml::parse(source) {
        Err(diag) => return Err(vec![diag]),
        Ok((root, diags)) => {
            d.diagnostics.extend(diags);
            root
        }
    };
    let syntax = Syntax {
        modules,
        extra_keys: if handlers { &["restarts_gateway"] } else { &[] },
        withheld_modules: &[],
        refuse_secrets: false,
    };
    let mut out = Vec::new();
    match root.as_ref().map(|r| &r.kind) {
        Some(Kind::Seq(items)) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("[{i}]");
                if let Some(entry) = playbook_entry(&mut d, item, &path, &syntax, file, handlers) {
                    out.push(entry);
                }
            }
        }
        _ => d.diagnostics.push(Diagnostic::error(
            "a playbook is a list of tasks and imports",
        )),
    }
    if d.diagnostics.iter().any(Diagnostic::is_error) {
        Err(d.diagnostics)
    } else {
        Ok(out)
    }
}

fn playbook_entry(
    d: &mut Decoder,
    item: &Node,
    path: &str,
    syntax: &Syntax<'_>,
    file: &str,
    handlers: bool,
) -> Option<PlaybookEntry> {
    if let Kind::Map(entries) = &item.kind {
        if let Some((_, file)) = entries.iter().find(|(k, _)| k.name == "import") {
            if entries.len() != 1 {
                d.error(path, item.loc, "an `import` entry has no other keys");
                return None;
            }
            return d
                .string(file, &join(path, "import"))
                .map(PlaybookEntry::Import);
        }
    }
    let text = decode_task(d, item, path, syntax, handlers)?;
    let restarts_gateway = match text.fields.get("restarts_gateway") {
        None => false,
        Some(n) => match n.scalar() {
            Some(Scalar::Bool(b)) => b,
            _ => {
                d.error(
                    &join(path, "restarts_gateway"),
                    n.loc,
                    format!("expected true or false, found {}", n.type_name()),
                );
                return None;
            }
        },
    };
    Some(PlaybookEntry::Task(Box::new(Task {
        name: text.name,
        when: text.when,
        notify: text.notify,
        tags: text.tags,
        module: text.module.to_string(),
        args: text.args,
        source: file.to_string(),
        loc: text.loc,
        restarts_gateway,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODULES: &[&str] = &["systemd", "directory"];

    fn errors(source: &str, handlers: bool) -> Vec<String> {
        match decode_playbook(source, "test.yaml", MODULES, handlers) {
            Ok(_) => Vec::new(),
            Err(diags) => diags
                .iter()
                .map(|d| {
                    let loc = d.location.map(|l| format!("{}:{}", l.line, l.column));
                    format!("{}: {}", loc.unwrap_or_default(), d.message)
                })
                .collect(),
        }
    }

    #[test]
    fn an_embedded_playbook_reads_imports_tasks_and_the_gateway_mark() {
        let source = "- import: other.yaml\n- name: restart it\n  restarts_gateway: true\n  systemd: {unit: x, action: restart}\n  when: role == \"primary\"\n";
        let entries =
            decode_playbook(source, "test.yaml", MODULES, true).unwrap_or_else(|_| panic!());
        assert!(matches!(&entries[0], PlaybookEntry::Import(f) if f == "other.yaml"));
        let PlaybookEntry::Task(t) = &entries[1] else {
            panic!("a task")
        };
        assert_eq!(
            (t.name.as_str(), t.module.as_str(), t.restarts_gateway),
            ("restart it", "systemd", true)
        );
        assert_eq!(t.when.as_deref(), Some("role == \"primary\""));
        assert_eq!(t.args["unit"], "x");
    }

    #[test]
    fn every_problem_of_an_embedded_playbook_is_located() {
        let source = "- name: a\n  systemd: {unit: x}\n  when: role ==\n- name: b\n  systemdd: {}\n- name: c\n  systemd: {}\n  directory: {}\n- systemd: {}\n";
        let errs = errors(source, false);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("3:9: `role ==` is not an expression")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("5:3: unknown key `systemdd`")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("8:3: a task names exactly one module")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("9:3: missing required key `name`")),
            "{errs:?}"
        );
    }

    #[test]
    fn only_handlers_mark_the_gateway_and_they_notify_nothing() {
        let task = "- name: a\n  restarts_gateway: true\n  systemd: {unit: x}\n";
        assert!(errors(task, false)[0].starts_with("2:3: unknown key `restarts_gateway`"));
        let notifying = "- name: a\n  notify: b\n  systemd: {unit: x}\n";
        assert!(errors(notifying, true)[0].contains("a handler cannot notify handlers"));
        let not_bool = "- name: a\n  restarts_gateway: yes please\n  systemd: {unit: x}\n";
        assert!(errors(not_bool, true)[0].contains("expected true or false"));
    }
}
