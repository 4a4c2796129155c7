//! The runner's logic against a simulated host that understands only the
//! `directory` module's two commands: check mode reports exactly what a real
//! run then does, a second run changes nothing, handlers run once, `when` and
//! tags select, a failure stops the host, Ctrl-C stops between tasks.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use serde_json::json;

use super::context::{RunOptions, TaskContext};
use super::facts::Facts;
use super::host::{CmdOutput, Host, HostError};
use super::playbook::{Playbook, TagFilter, Task};
use super::report::{HostReport, Status};
use super::runner::Runner;
use crate::inventory::{load_str, LoadOptions, Role};
use crate::render::layout::Layout;
use crate::render::{render_node, SecretMode};

/// Directories (path → "mode owner group") and a log of mutating commands.
#[derive(Default)]
struct FakeHost {
    dirs: Mutex<BTreeMap<String, String>>,
    mutations: Mutex<Vec<String>>,
    fail_path: Option<String>,
}

fn ok(stdout: &str) -> CmdOutput {
    CmdOutput {
        status: Some(0),
        stdout: stdout.to_string(),
        stderr: String::new(),
    }
}

impl Host for FakeHost {
    fn name(&self) -> &str {
        "fake"
    }

    async fn run(&self, script: &str, _stdin: Option<&[u8]>) -> Result<CmdOutput, HostError> {
        // The directory module's scripts: `set -- PATH [MODE OWNER GROUP]`
        // (plain words here), then the fixed text.
        let args: Vec<&str> = script
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("set -- "))
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default();
        if script.contains("install -d -m \"$2\"") {
            let [path, mode, owner, group] = args.as_slice() else {
                panic!("unexpected directory args: {args:?}");
            };
            self.mutations.lock().unwrap().push(script.to_string());
            if self.fail_path.as_deref() == Some(*path) {
                return Ok(CmdOutput {
                    status: Some(1),
                    stdout: String::new(),
                    stderr: format!(
                        "install: cannot create directory '{path}': Read-only file system"
                    ),
                });
            }
            let mode = mode.trim_start_matches('0');
            self.dirs
                .lock()
                .unwrap()
                .insert(path.to_string(), format!("{mode} {owner} {group}"));
            return Ok(ok(""));
        }
        if script.contains("stat -c '%a %U %G'") {
            let dirs = self.dirs.lock().unwrap();
            return Ok(ok(&format!(
                "{}\n",
                dirs.get(args[0]).map_or("missing", String::as_str)
            )));
        }
        // The deploy lock and anything else: succeed quietly.
        if script.contains("mkdir /run/ocfo-deploy.lock") {
            return Ok(ok("acquired\n"));
        }
        Ok(ok(""))
    }

    async fn put(&self, _: &str, _: &[u8], _: u32, _: &str, _: &str) -> Result<(), HostError> {
        Ok(())
    }
}

fn task(name: &str, path: &str, extra: serde_json::Value) -> Task {
    let mut t = Task {
        name: name.into(),
        when: extra.get("when").and_then(|w| w.as_str()).map(String::from),
        notify: extra
            .get("notify")
            .and_then(|n| n.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        tags: extra
            .get("tags")
            .and_then(|n| n.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        module: "directory".into(),
        args: json!({"path": path, "mode": "0750", "owner": "root"}),
        source: "test".into(),
    };
    if let Some(m) = extra.get("mode") {
        t.args["mode"] = m.clone();
    }
    t
}

fn playbook() -> Playbook {
    Playbook {
        tasks: vec![
            task("a", "/srv/a", json!({"notify": ["h"], "tags": ["one"]})),
            task("b", "/srv/b", json!({"notify": ["h"], "tags": ["two"]})),
            task(
                "standby only",
                "/srv/s",
                json!({"when": "role == \"standby\""}),
            ),
            task("templated", "{{ layout.home }}/x", json!({})),
        ],
        handlers: vec![task("h", "/srv/handled", json!({}))],
    }
}

async fn run(
    host: &FakeHost,
    book: &Playbook,
    check: bool,
    tags: TagFilter,
    cancel: bool,
) -> HostReport {
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid.yaml"),
    )
    .unwrap();
    let loaded = load_str(
        &source,
        Path::new("valid.yaml"),
        LoadOptions {
            resolve_secrets: false,
        },
    );
    let inv = loaded.inventory.expect("fixture is valid");
    let files = render_node(&inv, Role::Primary, &loaded.secrets, SecretMode::Redact).unwrap();
    let facts = Facts::default();
    let layout = Layout::new(&inv);
    let opts = RunOptions {
        check,
        ..Default::default()
    };
    let redactor = loaded.secrets.redactor();
    let ctx = TaskContext {
        inv: &inv,
        role: Role::Primary,
        facts: &facts,
        files: &files,
        secrets: &loaded.secrets,
        layout: &layout,
        opts: &opts,
        redactor: &redactor,
    };
    let cancel = AtomicBool::new(cancel);
    let runner = Runner {
        playbook: book,
        tags: &tags,
        events: None,
        cancel: &cancel,
        who: "test".into(),
    };
    let mut report = HostReport::new(Role::Primary, "fake");
    runner.run(host, &ctx, &mut report).await;
    report
}

fn statuses(r: &HostReport) -> Vec<(String, Status)> {
    r.tasks.iter().map(|t| (t.task.clone(), t.status)).collect()
}

#[tokio::test]
async fn check_mode_reports_exactly_what_the_run_does_then_nothing_is_left() {
    let host = FakeHost::default();
    let book = playbook();
    let check = run(&host, &book, true, TagFilter::default(), false).await;
    assert!(
        host.mutations.lock().unwrap().is_empty(),
        "check mode must not change the host"
    );
    let real = run(&host, &book, false, TagFilter::default(), false).await;
    assert_eq!(statuses(&check), statuses(&real));
    let planned: Vec<_> = check.tasks.iter().flat_map(|t| t.changes.clone()).collect();
    let made: Vec<_> = real.tasks.iter().flat_map(|t| t.changes.clone()).collect();
    assert_eq!(planned, made);
    assert_eq!(real.counts.changed, 4, "{:?}", statuses(&real));
    assert_eq!(real.counts.skipped, 1);
    // The handler ran once although two tasks notified it.
    assert_eq!(real.tasks.iter().filter(|t| t.handler).count(), 1);
    assert!(
        host.dirs.lock().unwrap().contains_key("/home/openclaw/x"),
        "templated path rendered"
    );

    let again = run(&host, &book, false, TagFilter::default(), false).await;
    assert_eq!(again.counts.changed, 0, "{:?}", statuses(&again));
    assert!(
        again.tasks.iter().all(|t| !t.handler),
        "no change, no handler"
    );
    let check_again = run(&host, &book, true, TagFilter::default(), false).await;
    assert_eq!(check_again.counts.changed, 0);
}

#[tokio::test]
async fn drift_is_found_and_repaired() {
    let host = FakeHost::default();
    let book = playbook();
    run(&host, &book, false, TagFilter::default(), false).await;
    host.dirs
        .lock()
        .unwrap()
        .insert("/srv/b".into(), "777 nobody nogroup".into());
    let check = run(&host, &book, true, TagFilter::default(), false).await;
    assert_eq!(
        check.counts.changed,
        1,
        "only the drifted task: {:?}",
        statuses(&check)
    );
    assert!(
        check.tasks.iter().any(|t| t.handler),
        "its handler is notified"
    );
    assert!(check.tasks[1].changes[0].contains("777 nobody nogroup → 750 root root"));
    run(&host, &book, false, TagFilter::default(), false).await;
    assert_eq!(host.dirs.lock().unwrap()["/srv/b"], "750 root root");
}

#[tokio::test]
async fn tags_select_tasks() {
    let host = FakeHost::default();
    let only = TagFilter {
        only: vec!["two".into()],
        skip: vec![],
    };
    let r = run(&host, &playbook(), false, only, false).await;
    let names: Vec<_> = r
        .tasks
        .iter()
        .filter(|t| !t.handler)
        .map(|t| t.task.as_str())
        .collect();
    assert_eq!(names, ["b"]);
    let skip = TagFilter {
        only: vec![],
        skip: vec!["one".into()],
    };
    let r = run(&FakeHost::default(), &playbook(), false, skip, false).await;
    assert!(r.tasks.iter().all(|t| t.task != "a"));
}

#[tokio::test]
async fn a_failure_stops_the_host_and_names_the_command_and_stderr() {
    let host = FakeHost {
        fail_path: Some("/srv/b".into()),
        ..Default::default()
    };
    let r = run(&host, &playbook(), false, TagFilter::default(), false).await;
    assert_eq!(
        statuses(&r),
        [
            ("a".to_string(), Status::Changed),
            ("b".to_string(), Status::Failed)
        ]
    );
    let err = r.tasks[1].error.as_deref().unwrap();
    assert!(
        err.contains("install -d PATH MODE OWNER GROUP (with /srv/b 0750 root root)"),
        "{err}"
    );
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(r.failed());
}

#[tokio::test]
async fn cancel_stops_before_the_next_task() {
    let r = run(
        &FakeHost::default(),
        &playbook(),
        false,
        TagFilter::default(),
        true,
    )
    .await;
    assert!(r.interrupted);
    assert!(r.tasks.is_empty());
}
