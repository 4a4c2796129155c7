//! `validate`'s full check of an inventory: the inventory's own (what it
//! can see by itself) and, one floor up, those that need the renderer, the
//! engine's site playbook and the modules. Every command that reads an
//! inventory for work goes through here (`cli::load_inventory`), so a
//! template naming an unknown variable fails before anything connects.

use std::path::Path;

use crate::diagnostics::Diagnostic;
use crate::inventory::{self, Inventory, LoadOptions, Loaded, Secrets};
use crate::render::{render_node, user_files, RenderError, SecretMode};

/// The checks the inventory cannot make by itself.
pub struct Full;

impl inventory::Checks for Full {
    fn builtin_handlers(&self) -> Vec<String> {
        crate::engine::playbook::load_site()
            .map(|p| p.handlers.into_iter().map(|h| h.name).collect())
            .unwrap_or_default()
    }

    fn own_modules(&self) -> Vec<&'static str> {
        crate::modules::NAMES
            .iter()
            .copied()
            .filter(|m| !inventory::tasks::MODULES.contains(m))
            .collect()
    }

    fn module_args(&self, module: &str, args: &serde_json::Value) -> Result<(), String> {
        let mut call = serde_json::Map::new();
        call.insert(module.to_string(), args.clone());
        serde_json::from_value::<crate::modules::ModuleCall>(serde_json::Value::Object(call))
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn inventory(&self, inv: &Inventory, secrets: &Secrets, out: &mut Vec<Diagnostic>) {
        check_user_files(inv, secrets, out);
    }
}

/// Reads an inventory file with every check.
pub fn load_file(path: &Path, opts: LoadOptions) -> Loaded {
    inventory::load_file_with(path, opts, &Full)
}

/// Reads an inventory text with every check.
pub fn load_str(source: &str, file: &Path, opts: LoadOptions) -> Loaded {
    inventory::load_str_with(source, file, opts, &Full)
}

/// Renders the operator's files for both nodes, as deploy will, so a
/// template naming an unknown variable fails `validate`, not a deploy.
fn check_user_files(inv: &Inventory, secrets: &Secrets, out: &mut Vec<Diagnostic>) {
    let Some(ut) = &inv.tasks else {
        return;
    };
    for role in inv.roles() {
        // The whole node, secrets redacted: what the operator's files may
        // not replace, and (when resolved) the values they may not hold.
        if let Err(e @ RenderError::UserFile { .. }) =
            render_node(inv, role, secrets, SecretMode::Redact)
        {
            out.push(
                Diagnostic::error(format!("on the {role}: {e}"))
                    .at("tasks", None)
                    .in_file(&ut.file),
            );
            return;
        }
        if let Err(e) = user_files(inv, role) {
            let n = ut.tasks.len();
            let (path, task) = if e.task < n {
                (format!("tasks[{}]", e.task), &ut.tasks[e.task])
            } else {
                (
                    format!("handlers[{}]", e.task - n),
                    &ut.handlers[e.task - n],
                )
            };
            out.push(
                Diagnostic::error(format!("on the {role}: {}", e.error))
                    .at(path, Some(task.loc))
                    .in_file(&ut.file),
            );
            return;
        }
    }
}
