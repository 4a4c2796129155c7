//! Runs the playbook on one host: lock, facts, tasks in order, handlers.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures::future::BoxFuture;
use tokio::sync::mpsc::UnboundedSender;

use crate::modules;

use super::batch;
use super::change::Step;
use super::context::TaskContext;
use super::facts::{self, Facts};
use super::host::{CmdOutput, Host, HostError};
use super::playbook::{Playbook, TagFilter, Task};
use super::prefetch::{self, Prefetched};
use super::report::{HostReport, Status, TaskReport};
use crate::shell::Script;

/// Progress for the terminal: which task each host is on.
#[derive(Debug, Clone)]
pub enum Event {
    Started { node: String, task: String },
    Finished { node: String, report: TaskReport },
}

/// Serialises deploys on one host. `mkdir` is atomic; the folder is in /run,
/// so a reboot clears a lock left by a killed run.
use crate::layout::DEPLOY_LOCK as LOCK;

fn lock_script(who: &str) -> String {
    format!(
        "if mkdir {LOCK} 2>/dev/null; then printf '%s\\n' {who} > {LOCK}/owner; echo acquired; \
         else cat {LOCK}/owner 2>/dev/null; stat -c %Y {LOCK} 2>/dev/null; date +%s; fi",
        who = crate::shell::quote(who)
    )
}

/// Whether [`lock_script`] took the lock; if not, who holds it since when.
fn judge_lock(out: &CmdOutput) -> Result<(), String> {
    if out.stdout.trim() == "acquired" {
        return Ok(());
    }
    let lines: Vec<&str> = out.stdout.lines().collect();
    let owner = lines.first().copied().unwrap_or("unknown");
    let age = match (
        lines.get(1).and_then(|l| l.trim().parse::<i64>().ok()),
        lines.get(2).and_then(|l| l.trim().parse::<i64>().ok()),
    ) {
        // The host's clock readings: a lying host must not overflow this.
        (Some(then), Some(now)) => match now.checked_sub(then) {
            Some(age) => format!("{age}s ago"),
            None => "at an unknown time".into(),
        },
        _ => "at an unknown time".into(),
    };
    Err(format!(
        "another deploy holds the lock on this host ({owner}, taken {age}); wait for it, or if no deploy is running, remove {LOCK} on the host"
    ))
}

/// The end of a locked run in one round trip: the `last deploy` stamp (for
/// `ocfo status`; bookkeeping, not a change, so its failure is ignored) when
/// the run succeeded, then the lock released.
/// Adds the handler names (`$2`...) to the file `$1`
/// (`layout::PENDING_HANDLERS`), atomically.
const NOTE_PENDING: &str = r#"set -e
f=$1; shift
mkdir -p -m 0755 -- "${f%/*}"
{ cat -- "$f" 2>/dev/null || true; printf '%s\n' "$@"; } | sort -u > "$f.new"
mv -f -- "$f.new" "$f"
"#;

async fn finish<H: Host>(host: &H, stamp: bool) {
    let mut script = String::new();
    if stamp {
        script.push_str(&format!(
            "{{ mkdir -p {} && date -u +%Y-%m-%dT%H:%M:%SZ > {}; }} 2>/dev/null\n",
            crate::layout::MONITOR_STATE_DIR,
            crate::layout::LAST_DEPLOY
        ));
    }
    if stamp {
        // Every handler the run's changes (or an earlier run's) asked for ran.
        script.push_str(&format!("rm -f {}\n", crate::layout::PENDING_HANDLERS));
    }
    script.push_str(&format!("rm -rf {LOCK}"));
    match host.run(&script, None).await {
        Ok(out) if out.success() => {}
        Ok(out) => tracing::warn!(
            "{}: could not release the deploy lock: {}",
            host.name(),
            HostError::command(host.name(), &script, &out)
        ),
        Err(e) => tracing::warn!("{}: could not release the deploy lock: {e}", host.name()),
    }
}

/// What [`Runner::begin`] found.
pub struct Started {
    pub facts: Facts,
    /// Whether this run holds the host's deploy lock (never under `--check`).
    pub locked: bool,
}

/// The gate before any change: systemd as init, and a release ocfo
/// supports (or the operator's explicit `--allow-unsupported-os`).
fn supported_host<H: Host>(
    host: &H,
    facts: Facts,
    allow_unsupported_os: bool,
) -> Result<Facts, String> {
    if facts.init != "systemd" {
        return Err(format!(
            "{}: ocfo needs systemd as init, found `{}`",
            host.name(),
            facts.init
        ));
    }
    if let Some(why) = facts.unsupported_release() {
        if !allow_unsupported_os {
            return Err(format!(
                "{}: {why}; nothing was changed. To try it anyway, run deploy again with --allow-unsupported-os",
                host.name()
            ));
        }
        tracing::warn!("{}: {why}; going on (--allow-unsupported-os)", host.name());
    }
    Ok(facts)
}

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
    /// `--allow-unsupported-os`: a release ocfo does not support is a
    /// warning, not a refusal.
    pub allow_unsupported_os: bool,
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

    /// Reads the host's facts and, for a real run, takes the deploy lock, in
    /// one round trip: the lock is taken before anything can change, and
    /// reading facts first changes nothing. Refuses a host without systemd
    /// or on a release ocfo does not support (releasing the lock it took).
    pub async fn begin<H: Host>(&self, host: &H, check: bool) -> Result<Started, String> {
        if check {
            let facts = facts::gather(host).await.map_err(|e| e.to_string())?;
            return supported_host(host, facts, self.allow_unsupported_os).map(|facts| Started {
                facts,
                locked: false,
            });
        }
        let scripts = [facts::SCRIPT.to_string(), lock_script(&self.who)];
        let outs = batch::run_all(host, &scripts)
            .await
            .map_err(|e| e.to_string())?;
        let (facts_out, lock_out) = (&outs[0], &outs[1]);
        if !lock_out.success() {
            return Err(HostError::command(host.name(), &scripts[1], lock_out).to_string());
        }
        judge_lock(lock_out)?;
        let facts = if facts_out.success() {
            supported_host(
                host,
                facts::parse(&facts_out.stdout),
                self.allow_unsupported_os,
            )
        } else {
            Err(HostError::command(host.name(), facts::SCRIPT, facts_out).to_string())
        };
        if facts.is_err() {
            finish(host, false).await;
        }
        facts.map(|facts| Started {
            facts,
            locked: true,
        })
    }

    /// Runs the tasks and handlers; `locked`: [`Runner::begin`] took the
    /// lock, which this releases.
    pub async fn run<H: Host>(
        &self,
        host: &H,
        ctx: &TaskContext<'_>,
        locked: bool,
        report: &mut HostReport,
    ) {
        let start = Instant::now();
        let held = Held::default();
        self.run_tasks(host, ctx, report, &held).await;
        if held.0.load(Ordering::SeqCst) {
            if let Some(gate) = self.gate {
                report.notes.extend(gate.release().await);
            }
        }
        if locked {
            finish(host, !report.failed() && !report.interrupted).await;
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
        let host = &self.plan_ahead(host, ctx, (&env, &vars)).await;
        // What an earlier run changed but never got to restart or reload
        // (it failed after the change) is owed first: without it, a tree
        // switched by a failed run would never be restarted onto.
        let mut notified: BTreeSet<String> = ctx
            .facts
            .pending_handlers
            .iter()
            .filter(|n| self.playbook.handlers.iter().any(|h| &h.name == *n))
            .cloned()
            .collect();
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

    /// Fetches the facts of every task that will run, in a few round trips
    /// (`prefetch`), for the tasks to use until the first change.
    async fn plan_ahead<'h, H: Host>(
        &self,
        host: &'h H,
        ctx: &TaskContext<'_>,
        (env, vars): (&minijinja::Environment<'_>, &minijinja::Value),
    ) -> Prefetched<'h, H> {
        let mut calls = Vec::new();
        let mut extra = Vec::new();
        for task in &self.playbook.tasks {
            // A `when:` or arguments that do not evaluate are the real
            // run's to report, in order.
            if !self.tags.selects(task) || task.applies(env, vars) != Ok(true) {
                continue;
            }
            let Ok(call) = task.module_call(env, vars) else {
                continue;
            };
            if !ctx.opts.check {
                extra.extend(modules::check_reads(&call, ctx));
            }
            calls.push(call);
        }
        let calls: Vec<&modules::ModuleCall> = calls.iter().collect();
        let p = prefetch::prefetch(host, ctx, &calls, &modules::prefetchable, extra).await;
        if let Some(problem) = &p.problem {
            tracing::warn!(
                "{}: reading all facts at once failed, each task reads its own: {problem}",
                host.name()
            );
        }
        tracing::debug!(
            "{}: {} tasks planned ahead in {} facts batches ({} read live)",
            host.name(),
            calls.len(),
            p.batches,
            p.live
        );
        Prefetched::new(host, p.answers)
    }

    async fn run_task<H: Host>(
        &self,
        host: &Prefetched<'_, H>,
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
            host.take_missed();
            let changes = modules::plan(&call, host, ctx).await;
            // A plan that may not be a plain read counts as a change if it
            // reached the host at all.
            if !modules::prefetchable(&call) && host.take_missed() {
                host.mark_changed();
            }
            let changes = changes.map_err(|e| e.to_string())?;
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
            // From here on the host may differ from the facts read ahead.
            if !changes.is_empty() {
                host.mark_changed();
            }
            // Renewed before each such task, so a long run keeps its lease.
            if task.restarts_gateway && !changes.is_empty() {
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
            // Noted on the host once the change is made (a step that failed
            // made none: nothing to restart onto), so the handlers run even
            // if this run fails later (cleared by `finish`).
            if !handler && !task.notify.is_empty() && !changes.is_empty() {
                let note = Script::new(NOTE_PENDING)
                    .arg(crate::layout::PENDING_HANDLERS)
                    .args(task.notify.iter().map(String::as_str));
                Step::run(note)
                    .execute(host)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            if changes.is_empty() && !modules::is_check(&call) {
                return Ok(());
            }
            // A check whose inputs were read ahead and did not change
            // answers from them; one that had to run may have changed
            // something (OpenClaw's CLI can install plugins when it starts).
            host.take_missed();
            let verified = modules::verify(&call, host, ctx).await;
            if host.take_missed() {
                host.mark_changed();
            }
            verified.map_err(|e| e.to_string())?;
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

#[cfg(test)]
mod lock_tests {
    use super::*;

    fn held(stdout: &str) -> String {
        judge_lock(&CmdOutput {
            status: Some(0),
            stdout: stdout.into(),
            stderr: String::new(),
        })
        .unwrap_err()
    }

    #[test]
    fn the_lock_holder_is_named_with_its_age() {
        assert!(held("laptop\n100\n160\n").contains("(laptop, taken 60s ago)"));
    }

    #[test]
    fn lying_lock_times_are_an_unknown_time_not_a_panic() {
        // Before, `now - then` overflowed (a panic in debug builds).
        let err = held(&format!("x\n{}\n{}\n", i64::MIN, i64::MAX));
        assert!(err.contains("at an unknown time"), "{err}");
        let err = held(&format!("x\n{}\n{}\n", i64::MAX, i64::MIN));
        assert!(err.contains("at an unknown time"), "{err}");
    }
}
