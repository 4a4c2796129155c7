//! For module tests: the test inventory as a task context, and a simulated
//! host that answers scripts from a closure and records what it was sent.

use std::path::Path;
use std::sync::Mutex;

use crate::engine::context::{RunOptions, TaskContext};
use crate::engine::facts::Facts;
use crate::engine::host::{CmdOutput, Host, HostError};
use crate::inventory::{load_str, Inventory, LoadOptions, Role, Secrets};
use crate::layout::Layout;
use crate::render::{render_node, NodeFiles, SecretMode};
use crate::secrets::Redactor;

pub struct Fixture {
    pub inv: Inventory,
    pub secrets: Secrets,
    pub files: NodeFiles,
    pub facts: Facts,
    pub layout: Layout,
    pub opts: RunOptions,
    pub redactor: Redactor,
}

impl Fixture {
    /// `tests/fixtures/valid.yaml` with every `{env: X}` secret resolved to
    /// `X-value`, its files rendered, then edited by `edit` (bypassing
    /// validation on purpose).
    pub fn load(edit: impl FnOnce(&mut Inventory)) -> Fixture {
        let source = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid.yaml"),
        )
        .unwrap();
        let source = with_command_secrets(&source);
        let loaded = load_str(
            &source,
            Path::new("valid.yaml"),
            LoadOptions {
                resolve_secrets: true,
            },
        );
        let mut inv = loaded.inventory.expect("fixture is valid");
        // Rendered before the edit: rendering refuses some hostile values
        // itself, and these tests are about the modules' scripts.
        let files = render_node(&inv, Role::Primary, &loaded.secrets, SecretMode::Reveal).unwrap();
        edit(&mut inv);
        let layout = Layout::new(&inv.openclaw.user);
        let redactor = loaded.secrets.redactor();
        Fixture {
            inv,
            secrets: loaded.secrets,
            files,
            facts: Facts {
                os_id: "debian".into(),
                os_version: "12".into(),
                os_codename: "bookworm".into(),
                arch: "x86_64".into(),
                init: "systemd".into(),
                ..Default::default()
            },
            layout,
            opts: RunOptions::default(),
            redactor,
        }
    }

    pub fn ctx(&self) -> TaskContext<'_> {
        TaskContext {
            inv: &self.inv,
            role: Role::Primary,
            facts: &self.facts,
            files: &self.files,
            secrets: &self.secrets,
            layout: &self.layout,
            opts: &self.opts,
            redactor: &self.redactor,
        }
    }
}

/// `{env: NAME}` → `{command: "printf 'NAME-value'"}`: resolvable without
/// touching the process environment.
fn with_command_secrets(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("{env: ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 6..];
        let end = after.find('}').unwrap();
        out.push_str(&format!(
            "{{command: \"printf '{}-value'\"}}",
            &after[..end]
        ));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

pub fn ok(stdout: &str) -> CmdOutput {
    CmdOutput {
        status: Some(0),
        stdout: stdout.to_string(),
        stderr: String::new(),
    }
}

type Answer = Box<dyn Fn(&str) -> CmdOutput + Send + Sync>;

/// A host whose answers come from `answer(script)`; every script (as sent)
/// and its stdin are recorded.
pub struct ScriptedHost {
    pub port: Option<u16>,
    answer: Answer,
    pub sent: Mutex<Vec<(String, Option<Vec<u8>>)>>,
}

impl ScriptedHost {
    pub fn new(answer: impl Fn(&str) -> CmdOutput + Send + Sync + 'static) -> Self {
        ScriptedHost {
            port: None,
            answer: Box::new(answer),
            sent: Mutex::new(Vec::new()),
        }
    }
}

impl Host for ScriptedHost {
    fn name(&self) -> &str {
        "sim"
    }

    fn ssh_port(&self) -> Option<u16> {
        self.port
    }

    async fn run(&self, script: &str, stdin: Option<&[u8]>) -> Result<CmdOutput, HostError> {
        self.sent
            .lock()
            .unwrap()
            .push((script.to_string(), stdin.map(<[u8]>::to_vec)));
        Ok((self.answer)(script))
    }

    async fn put(&self, _: &str, _: &[u8], _: u32, _: &str, _: &str) -> Result<(), HostError> {
        Ok(())
    }
}
