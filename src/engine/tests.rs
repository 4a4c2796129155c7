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
use super::host::{CmdOutput, Host, HostError};
use super::playbook::{Playbook, TagFilter, Task};
use super::report::{HostReport, Status};
use super::runner::{RestartGate, Runner};
use crate::inventory::{load_str, LoadOptions, Role};
use crate::layout::Layout;
use crate::render::{render_node, SecretMode};

/// Directories (path → "mode owner group") and a log of mutating commands.
#[derive(Default)]
struct FakeHost {
    dirs: Mutex<BTreeMap<String, String>>,
    mutations: Mutex<Vec<String>>,
    fail_path: Option<String>,
    /// Commands and writes sent (each a round trip over SSH).
    trips: std::sync::atomic::AtomicU64,
    /// Every script as run, a batch as the scripts in it.
    seen: Mutex<Vec<String>>,
    /// Another deploy's lock owner, if one holds it.
    lock_owner: Mutex<Option<String>>,
    /// The release the host reports (`os_id version codename`); Debian 12
    /// when unset.
    release: Mutex<Option<(String, String, String)>>,
    /// `/var/lib/ocfo/pending-handlers`: one name a line.
    pending: Mutex<Vec<String>>,
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

    fn round_trips(&self) -> Option<u64> {
        Some(self.trips.load(std::sync::atomic::Ordering::SeqCst))
    }

    async fn run(&self, script: &str, _stdin: Option<&[u8]>) -> Result<CmdOutput, HostError> {
        self.trips.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Some(out) = super::batch::fake_reply(script, |s| self.answer(s)) {
            return Ok(out);
        }
        Ok(self.answer(script))
    }

    async fn put(&self, _: &str, _: &[u8], _: u32, _: &str, _: &str) -> Result<(), HostError> {
        self.trips.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

impl FakeHost {
    fn locked_by(&self, owner: &str) {
        *self.lock_owner.lock().unwrap() = Some(owner.to_string());
    }

    fn answer(&self, script: &str) -> CmdOutput {
        self.seen.lock().unwrap().push(script.to_string());
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
                return CmdOutput {
                    status: Some(1),
                    stdout: String::new(),
                    stderr: format!(
                        "install: cannot create directory '{path}': Read-only file system"
                    ),
                };
            }
            let mode = mode.trim_start_matches('0');
            self.dirs
                .lock()
                .unwrap()
                .insert(path.to_string(), format!("{mode} {owner} {group}"));
            return ok("");
        }
        if script.contains("stat -c '%a %U %G'") {
            let dirs = self.dirs.lock().unwrap();
            return ok(&format!(
                "{}\n",
                dirs.get(args[0]).map_or("missing", String::as_str)
            ));
        }
        // Handlers noted before a change; cleared by a run that ended well.
        if script.contains("sort -u > \"$f.new\"") {
            let mut pending = self.pending.lock().unwrap();
            pending.extend(args[1..].iter().map(|a| a.to_string()));
            pending.sort();
            pending.dedup();
            return ok("");
        }
        if script.contains(&format!("rm -f {}", crate::layout::PENDING_HANDLERS)) {
            self.pending.lock().unwrap().clear();
        }
        // The deploy lock and anything else: succeed quietly.
        if script.contains("mkdir /run/ocfo-deploy.lock") {
            return match &*self.lock_owner.lock().unwrap() {
                Some(owner) => ok(&format!("{owner}\n1000\n1042\n")),
                None => ok("acquired\n"),
            };
        }
        if script.contains("os_id=") {
            let (id, version, codename) = self
                .release
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| ("debian".into(), "12".into(), "bookworm".into()));
            let pending = self.pending.lock().unwrap().join(",");
            return ok(&format!(
                "os_id={id}\nos_version={version}\nos_codename={codename}\ninit=systemd\npending_handlers={pending}\n"
            ));
        }
        ok("")
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
        loc: crate::diagnostics::Location { line: 1, column: 1 },
        restarts_gateway: extra.get("restarts_gateway") == Some(&json!(true)),
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
    run_gated(host, book, check, tags, cancel, None).await
}

/// A real run with `--allow-unsupported-os` or without.
async fn run_on_release(
    host: &FakeHost,
    book: &Playbook,
    allow_unsupported_os: bool,
) -> HostReport {
    run_with(
        host,
        book,
        false,
        TagFilter::default(),
        false,
        None,
        allow_unsupported_os,
    )
    .await
}

async fn run_gated(
    host: &FakeHost,
    book: &Playbook,
    check: bool,
    tags: TagFilter,
    cancel: bool,
    gate: Option<&dyn RestartGate>,
) -> HostReport {
    run_with(host, book, check, tags, cancel, gate, false).await
}

async fn run_with(
    host: &FakeHost,
    book: &Playbook,
    check: bool,
    tags: TagFilter,
    cancel: bool,
    gate: Option<&dyn RestartGate>,
    allow_unsupported_os: bool,
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
    let cancel = AtomicBool::new(cancel);
    let runner = Runner {
        playbook: book,
        tags: &tags,
        events: None,
        cancel: &cancel,
        who: "test".into(),
        gate,
        allow_unsupported_os,
    };
    let mut report = HostReport::new(Role::Primary, "fake");
    let started = match runner.begin(host, check).await {
        Ok(s) => s,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    let facts = started.facts;
    let layout = Layout::new(&inv.openclaw.user);
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
    runner.run(host, &ctx, started.locked, &mut report).await;
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

/// A run that fails after a change that notified a handler leaves the
/// handler owed on the host (not the failed change's own); the next run runs it although nothing changes
/// then (a switched tree is restarted onto), and a run that ends well
/// clears it.
#[tokio::test]
async fn a_handler_a_failed_run_never_ran_runs_on_the_next() {
    let host = FakeHost {
        fail_path: Some("/srv/b".into()),
        ..Default::default()
    };
    let mut book = playbook();
    book.tasks[0].notify = vec!["h".into(), "gone".into()];
    // The failing change made nothing: its handler is not owed.
    book.tasks[1].notify = vec!["other".into()];
    let r = run(&host, &book, false, TagFilter::default(), false).await;
    assert!(r.failed());
    assert!(r.tasks.iter().all(|t| !t.handler));
    assert_eq!(*host.pending.lock().unwrap(), ["gone", "h"]);

    // Without the failing task: nothing changes, the owed handler runs.
    book.tasks.remove(1);
    let check = run(&host, &book, true, TagFilter::default(), false).await;
    assert!(check
        .tasks
        .iter()
        .any(|t| t.handler && t.status == Status::Changed));
    let r = run(&host, &book, false, TagFilter::default(), false).await;
    assert!(!r.failed(), "{:?}", statuses(&r));
    assert_eq!(r.tasks[0].status, Status::Ok);
    assert_eq!(
        r.tasks.iter().filter(|t| t.handler).count(),
        1,
        "{:?}",
        statuses(&r)
    );
    assert!(host.dirs.lock().unwrap().contains_key("/srv/handled"));
    assert!(host.pending.lock().unwrap().is_empty());
    let again = run(&host, &book, false, TagFilter::default(), false).await;
    assert!(again.tasks.iter().all(|t| !t.handler));
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

/// Records the gate's calls next to the host's mutations.
struct FakeGate<'a> {
    host: &'a FakeHost,
}

impl RestartGate for FakeGate<'_> {
    fn hold(&self, upgrade: bool) -> futures::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.host
                .mutations
                .lock()
                .unwrap()
                .push(format!("HOLD upgrade={upgrade}"));
            Ok(())
        })
    }
    fn release(&self) -> futures::future::BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            self.host.mutations.lock().unwrap().push("RELEASE".into());
            vec!["released".into()]
        })
    }
}

#[tokio::test]
async fn the_hold_comes_before_the_first_restarting_change_and_is_released_after_the_handlers() {
    let host = FakeHost::default();
    let book = Playbook {
        tasks: vec![
            task("quiet", "/srv/quiet", json!({})),
            task(
                "restarts",
                "/srv/r",
                json!({"notify": ["restart it"], "restarts_gateway": true}),
            ),
        ],
        handlers: vec![task(
            "restart it",
            "/srv/restarted",
            json!({"restarts_gateway": true}),
        )],
    };
    let gate = FakeGate { host: &host };
    // Check mode: nothing held, nothing changed.
    run_gated(&host, &book, true, TagFilter::default(), false, Some(&gate)).await;
    assert!(host.mutations.lock().unwrap().is_empty());
    let r = run_gated(
        &host,
        &book,
        false,
        TagFilter::default(),
        false,
        Some(&gate),
    )
    .await;
    let log = host.mutations.lock().unwrap().clone();
    let pos = |needle: &str| {
        log.iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {log:?}"))
    };
    assert!(pos("/srv/quiet") < pos("HOLD"), "held too early: {log:?}");
    assert!(pos("HOLD") < pos("/srv/r"), "{log:?}");
    assert!(pos("/srv/restarted") < pos("RELEASE"), "{log:?}");
    assert!(
        log.iter().all(|l| !l.contains("upgrade=true")),
        "a directory is no upgrade"
    );
    assert_eq!(r.notes, ["released"]);
    // Converged: no restart, so no hold.
    host.mutations.lock().unwrap().clear();
    run_gated(
        &host,
        &book,
        false,
        TagFilter::default(),
        false,
        Some(&gate),
    )
    .await;
    assert!(
        host.mutations.lock().unwrap().is_empty(),
        "{:?}",
        host.mutations.lock().unwrap()
    );
}
/// The operator's tasks follow ocfo's: `hosts` becomes part of `when`, a
/// `file` task installs its rendered file through `files`, every task is
/// tagged `tasks`, and their handlers follow ocfo's.
#[test]
fn user_tasks_follow_the_site_playbook() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/with-tasks.yaml");
    let loaded = load_str(
        &std::fs::read_to_string(&path).unwrap(),
        &path,
        LoadOptions {
            resolve_secrets: false,
        },
    );
    let inv = loaded.inventory.expect("fixture with tasks is valid");
    let site = super::playbook::load_site().unwrap();
    let book = super::playbook::load_for(&inv).unwrap();
    let user = &book.tasks[site.tasks.len()..];
    assert_eq!(user.len(), 7);
    assert_eq!(book.handlers.len(), site.handlers.len() + 1);
    let by_name = |n: &str| user.iter().find(|t| t.name == n).unwrap();
    let conf = by_name("transcoder settings");
    assert_eq!(conf.module, "files");
    assert_eq!(
        conf.args,
        json!({"paths": ["/etc/ocfo-media/transcode.toml"]})
    );
    assert_eq!(conf.notify, ["restart transcoder"]);
    assert!(conf.tags.contains(&"tasks".to_string()));
    let timer = by_name("transcoder timer running (primary)");
    assert_eq!(timer.when.as_deref(), Some("role == \"primary\""));
    assert_eq!(timer.tags, ["media", "tasks"]);
    assert!(super::playbook::all_tags(&book).contains(&"tasks".to_string()));

    // `when` with `hosts` holds on the named node only; the rendered file
    // the `files` task names exists on both.
    let env = crate::render::template_env();
    for role in [Role::Primary, Role::Standby] {
        let vars = minijinja::Value::from(minijinja::value::Serde(crate::render::base_vars(
            &inv,
            role,
            &Layout::new(&inv.openclaw.user),
        )));
        assert_eq!(timer.applies(&env, &vars).unwrap(), role == Role::Primary);
        let files = render_node(&inv, role, &loaded.secrets, SecretMode::Redact).unwrap();
        assert!(files.get("/etc/ocfo-media/transcode.toml").is_some());
    }
}

fn trips(host: &FakeHost) -> u64 {
    host.round_trips().unwrap()
}

#[tokio::test]
async fn a_no_op_run_is_facts_and_lock_one_batch_and_the_end() {
    let host = FakeHost::default();
    let book = playbook();
    run(&host, &book, false, TagFilter::default(), false).await;
    let before = trips(&host);
    let again = run(&host, &book, false, TagFilter::default(), false).await;
    assert_eq!(again.counts.changed, 0, "{:?}", statuses(&again));
    assert_eq!(
        trips(&host) - before,
        3,
        "facts and lock, the three tasks' facts, stamp and unlock"
    );
    let before = trips(&host);
    let check = run(&host, &book, true, TagFilter::default(), false).await;
    assert_eq!(check.counts.changed, 0);
    assert_eq!(trips(&host) - before, 2, "facts, the tasks' facts; no lock");
    // Every task's facts were read, in the batch.
    let seen = host.seen.lock().unwrap();
    for path in ["/srv/a", "/srv/b", "/home/openclaw/x"] {
        assert!(seen
            .iter()
            .any(|s| s.contains("stat -c") && s.contains(path)));
    }
}

#[tokio::test]
async fn after_a_change_the_next_tasks_read_the_host_again() {
    // Two tasks on one folder: the second one's facts, read ahead, are stale
    // once the first one changed it.
    let book = Playbook {
        tasks: vec![
            task("open", "/srv/shared", json!({"mode": "0750"})),
            task("close", "/srv/shared", json!({"mode": "0700"})),
            task("other", "/srv/other", json!({})),
        ],
        handlers: vec![],
    };
    let host = FakeHost::default();
    run(&host, &book, false, TagFilter::default(), false).await;
    assert_eq!(
        host.dirs.lock().unwrap().get("/srv/shared").unwrap(),
        "700 root root"
    );
    let before = trips(&host);
    let again = run(&host, &book, false, TagFilter::default(), false).await;
    assert_eq!(again.counts.changed, 2, "{:?}", statuses(&again));
    assert!(
        again.tasks[1].changes[0].contains("750 root root → 700"),
        "the second task saw the first one's change: {:?}",
        again.tasks[1].changes
    );
    assert_eq!(
        host.dirs.lock().unwrap().get("/srv/shared").unwrap(),
        "700 root root"
    );
    // facts+lock, batch, open's step, close's facts and step, other's
    // facts (live too: after a change), stamp+unlock.
    assert_eq!(trips(&host) - before, 7);
}

#[tokio::test]
async fn another_deploys_lock_stops_the_run_before_any_task() {
    let host = FakeHost::default();
    let book = playbook();
    host.locked_by("alice@laptop (pid 7)");
    let r = run(&host, &book, false, TagFilter::default(), false).await;
    let err = r.error.expect("refused");
    assert!(err.contains("another deploy holds the lock"), "{err}");
    assert!(err.contains("alice@laptop (pid 7)"), "{err}");
    assert!(r.tasks.is_empty());
    assert_eq!(trips(&host), 1, "facts and the lock only");
    assert!(host.mutations.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_release_ocfo_does_not_support_is_refused_before_any_change() {
    let book = playbook();
    for (id, version, codename, says) in [
        (
            "ubuntu",
            "22.04",
            "jammy",
            "`ubuntu 22.04 (jammy)` is not a supported release",
        ),
        (
            "debian",
            "11",
            "bullseye",
            "`debian 11 (bullseye)` is not a supported release",
        ),
        (
            "alpine",
            "3.20",
            "",
            "`alpine 3.20 ()` is not a supported release",
        ),
    ] {
        let host = FakeHost::default();
        *host.release.lock().unwrap() = Some((id.into(), version.into(), codename.into()));
        let r = run_on_release(&host, &book, false).await;
        let err = r.error.expect("refused");
        assert!(err.contains(says), "{err}");
        assert!(
            err.contains(
                "supported: Debian 12 (bookworm), Debian 13 (trixie), Ubuntu 24.04 (noble)"
            ),
            "{err}"
        );
        assert!(err.contains("--allow-unsupported-os"), "{err}");
        assert!(r.tasks.is_empty());
        // The lock taken with the facts is given back; nothing else ran.
        let mutations = host.mutations.lock().unwrap().clone();
        assert!(
            mutations.iter().all(|m| m.contains("ocfo-deploy.lock")),
            "{mutations:?}"
        );
        // The explicit override runs the playbook.
        let r = run_on_release(&host, &book, true).await;
        assert!(r.error.is_none(), "{:?}", r.error);
        assert!(!r.tasks.is_empty());
    }
}
