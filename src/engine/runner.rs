//! Runs the playbook on one host: lock, facts, tasks in order, handlers.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures::future::BoxFuture;
use tokio::sync::mpsc::UnboundedSender;

use crate::modules;

use super::context::TaskContext;
use super::host::Host;
use super::playbook::{Playbook, TagFilter, Task};
use super::report::{HostReport, Status, TaskReport};

/// Progress for the terminal: which task each host is on.
#[derive(Debug, Clone)]
pub enum Event {
    Started { node: String, task: String },
    Finished { node: String, report: TaskReport },
}

/// Serialises deploys on one host. `mkdir` is atomic; the folder is in /run,
/// so a reboot clears a lock left by a killed run.
const LOCK: &str = "/run/ocfo-deploy.lock";

async fn acquire_lock<H: Host>(host: &H, who: &str) -> Result<(), String> {
    let script = format!(
        "if mkdir {LOCK} 2>/dev/null; then printf '%s\\n' {who} > {LOCK}/owner; echo acquired; \
         else cat {LOCK}/owner 2>/dev/null; stat -c %Y {LOCK} 2>/dev/null; date +%s; fi",
        who = crate::shell::quote(who)
    );
    let out = host.check(&script).await.map_err(|e| e.to_string())?;
    if out.stdout.trim() == "acquired" {
        return Ok(());
    }
    let lines: Vec<&str> = out.stdout.lines().collect();
    let owner = lines.first().copied().unwrap_or("unknown");
    let age = match (
        lines.get(1).and_then(|l| l.trim().parse::<i64>().ok()),
        lines.get(2).and_then(|l| l.trim().parse::<i64>().ok()),
    ) {
        (Some(then), Some(now)) => format!("{}s ago", now - then),
        _ => "at an unknown time".into(),
    };
    Err(format!(
        "another deploy holds the lock on this host ({owner}, taken {age}); wait for it, or if no deploy is running, remove {LOCK} on the host"
    ))
}

async fn release_lock<H: Host>(host: &H) {
    if let Err(e) = host.run(&format!("rm -rf {LOCK}"), None).await {
        tracing::warn!("{}: could not release the deploy lock: {e}", host.name());
    }
}

/// The handler every task that may restart the primary's gateway notifies.
pub const RESTART_GATEWAY: &str = "restart gateway";

/// What a run does around the primary's gateway restarts: deploy puts a hold
/// on the standby's monitor before the first change that leads to one, and
/// once the run is over waits for the primary to be ready and releases it.
pub trait RestartGate: Sync {
    /// Takes (or renews) the hold; an error stops the run before any restart.
    /// `upgrade`: OpenClaw or Node changes, so both gateways restart; the
    /// standby is asked to serve first (make before break).
    fn hold(&self, upgrade: bool) -> BoxFuture<'_, Result<(), String>>;
    /// The run is over: wait for the gateway, release the hold; returns notes.
    fn release(&self) -> BoxFuture<'_, Vec<String>>;
}

pub struct Runner<'a> {
    pub playbook: &'a Playbook,
    pub tags: &'a TagFilter,
    pub events: Option<UnboundedSender<Event>>,
    pub cancel: &'a AtomicBool,
    /// Identifies this run in the lock (user@machine, pid).
    pub who: String,
    /// Around the primary's gateway restarts (none for the standby).
    pub gate: Option<&'a dyn RestartGate>,
}

/// Whether this run took the gate's hold (so it must release it).
#[derive(Default)]
struct Held(AtomicBool);

impl Runner<'_> {
    fn emit(&self, e: Event) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }

    pub async fn run<H: Host>(&self, host: &H, ctx: &TaskContext<'_>, report: &mut HostReport) {
        let start = Instant::now();
        let locked = if ctx.opts.check {
            false
        } else {
            match acquire_lock(host, &self.who).await {
                Ok(()) => true,
                Err(e) => {
                    report.error = Some(e);
                    return;
                }
            }
        };
        let held = Held::default();
        self.run_tasks(host, ctx, report, &held).await;
        if held.0.load(Ordering::SeqCst) {
            if let Some(gate) = self.gate {
                report.notes.extend(gate.release().await);
            }
        }
        if locked && !report.failed() && !report.interrupted {
            // For `ocfo status`; bookkeeping, not a change.
            let _ = host
                .run(
                    &format!(
                        "mkdir -p /var/lib/ocfo && date -u +%Y-%m-%dT%H:%M:%SZ > {}",
                        crate::status::LAST_DEPLOY
                    ),
                    None,
                )
                .await;
        }
        if locked {
            release_lock(host).await;
        }
        report.duration_ms = start.elapsed().as_millis();
    }

    async fn run_tasks<H: Host>(
        &self,
        host: &H,
        ctx: &TaskContext<'_>,
        report: &mut HostReport,
        held: &Held,
    ) {
        let env = crate::render::template_env();
        let vars = ctx.vars();
        let mut notified: BTreeSet<String> = BTreeSet::new();
        for task in &self.playbook.tasks {
            if self.cancel.load(Ordering::SeqCst) {
                report.interrupted = true;
                return;
            }
            if !self.tags.selects(task) {
                continue;
            }
            let r = self
                .run_task(host, ctx, task, (&env, &vars), false, held)
                .await;
            let (status, failed) = (r.status, r.status == Status::Failed);
            report.push(r);
            if status == Status::Changed {
                notified.extend(task.notify.iter().cloned());
            }
            if failed {
                return;
            }
        }
        // Handlers run once each, in the order handlers.yaml lists them.
        for handler in &self.playbook.handlers {
            if !notified.contains(&handler.name) {
                continue;
            }
            if self.cancel.load(Ordering::SeqCst) {
                report.interrupted = true;
                return;
            }
            let r = self
                .run_task(host, ctx, handler, (&env, &vars), true, held)
                .await;
            let failed = r.status == Status::Failed;
            report.push(r);
            if failed {
                return;
            }
        }
    }

    async fn run_task<H: Host>(
        &self,
        host: &H,
        ctx: &TaskContext<'_>,
        task: &Task,
        (env, vars): (&minijinja::Environment<'_>, &minijinja::Value),
        handler: bool,
        held: &Held,
    ) -> TaskReport {
        let start = Instant::now();
        let mut r = TaskReport {
            task: task.name.clone(),
            status: Status::Ok,
            changes: Vec::new(),
            diffs: Vec::new(),
            error: None,
            reason: None,
            duration_ms: 0,
            handler,
        };
        let result: Result<(), String> = async {
            if !task.applies(env, vars)? {
                r.status = Status::Skipped;
                r.reason = task.when.as_ref().map(|w| format!("when: {w}"));
                return Ok(());
            }
            self.emit(Event::Started {
                node: host.name().to_string(),
                task: task.name.clone(),
            });
            let call = task.module_call(env, vars)?;
            let changes = modules::plan(&call, host, ctx)
                .await
                .map_err(|e| e.to_string())?;
            if !changes.is_empty() {
                r.status = Status::Changed;
            }
            for c in &changes {
                r.changes.push(ctx.redactor.redact(&c.summary));
                if ctx.opts.diff {
                    if let Some(d) = &c.diff {
                        r.diffs.push(ctx.redactor.redact(d));
                    }
                }
            }
            if ctx.opts.check {
                if modules::is_check(&call) {
                    r.reason = Some("a check: not run under --check".into());
                }
                return Ok(());
            }
            // Renewed before each such task, so a long run keeps its lease.
            let restarts = task.notify.iter().any(|n| n == RESTART_GATEWAY)
                || (handler && task.name == RESTART_GATEWAY);
            if restarts && !changes.is_empty() {
                if let Some(gate) = self.gate {
                    gate.hold(modules::is_upgrade(&call)).await?;
                    held.0.store(true, Ordering::SeqCst);
                }
            }
            for c in &changes {
                for step in &c.steps {
                    step.execute(host).await.map_err(|e| e.to_string())?;
                }
            }
            if changes.is_empty() && !modules::is_check(&call) {
                return Ok(());
            }
            modules::verify(&call, host, ctx)
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            r.status = Status::Failed;
            r.error = Some(ctx.redactor.redact(&format!("task `{}`: {e}", task.name)));
        }
        r.duration_ms = start.elapsed().as_millis();
        self.emit(Event::Finished {
            node: host.name().to_string(),
            report: r.clone(),
        });
        r
    }
}
