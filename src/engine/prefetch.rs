//! Reads the facts of every task before the first task runs, a few
//! round trips in all instead of one per task.
//!
//! A plan only reads the host (its facts scripts) and computes; so every
//! applicable task is planned against a [`Recorder`], which answers the
//! facts already fetched and notes the ones it lacks. The noted scripts go to
//! the host in one [`batch`](super::batch), and the plans that lacked them
//! run again, until none lacks any (a plan may choose its second facts script
//! from its first one's answer) or [`MAX_WAVES`] batches were sent.
//!
//! The answers then serve the real run through [`Prefetched`], but only while
//! the host is as they found it: the runner calls
//! [`Prefetched::mark_changed`] before it executes a step, and from then on
//! every script goes to the host, as before this module existed. The plans
//! themselves run again in the real run, on the same answers, so what a task
//! reports (`--check`, `--diff`) is computed exactly as a live run does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::batch;
use super::context::TaskContext;
use super::host::{CmdOutput, Host, HostError};
use crate::modules::{self, ModuleCall};

/// Batches of facts sent before the run at most. Two suffice for every
/// module today (a second script only when the first found a difference).
pub const MAX_WAVES: usize = 4;

/// Facts scripts (as sent) and what the host answered.
pub type Answers = HashMap<String, CmdOutput>;

/// A host for planning ahead: answers from `known`, defers what it does not
/// know, and refuses anything that is not a plain read.
struct Recorder<'a, H> {
    host: &'a H,
    known: &'a Answers,
    wanted: &'a Mutex<Vec<String>>,
    deferred: AtomicBool,
    refused: AtomicBool,
}

impl<H: Host> Recorder<'_, H> {
    fn not_now(&self, why: &str) -> HostError {
        HostError::Transport {
            host: self.host.name().to_string(),
            message: format!("planning ahead: {why}"),
        }
    }
}

impl<H: Host> Host for Recorder<'_, H> {
    fn name(&self) -> &str {
        self.host.name()
    }

    fn ssh_port(&self) -> Option<u16> {
        self.host.ssh_port()
    }

    async fn run(&self, script: &str, stdin: Option<&[u8]>) -> Result<CmdOutput, HostError> {
        // A plan that sends input is not a plain read: planned live only.
        if stdin.is_some() {
            self.refused.store(true, Ordering::SeqCst);
            return Err(self.not_now("a script with input is not prefetched"));
        }
        if let Some(out) = self.known.get(script) {
            return Ok(out.clone());
        }
        self.deferred.store(true, Ordering::SeqCst);
        let mut wanted = self.wanted.lock().unwrap();
        if !wanted.iter().any(|w| w == script) {
            wanted.push(script.to_string());
        }
        Err(self.not_now("deferred to the next facts batch"))
    }

    async fn put(&self, path: &str, _: &[u8], _: u32, _: &str, _: &str) -> Result<(), HostError> {
        self.refused.store(true, Ordering::SeqCst);
        Err(self.not_now(&format!("a plan wrote {path}")))
    }
}

/// What planning ahead fetched, and how.
#[derive(Debug, Default)]
pub struct Prefetch {
    pub answers: Answers,
    /// Facts batches sent (each one round trip).
    pub batches: usize,
    /// Tasks whose plans still lacked facts, or were refused, when planning
    /// ahead stopped: they read the host live.
    pub live: usize,
    /// Why planning ahead stopped early, if it did (the run goes on live).
    pub problem: Option<String>,
}

/// Plans ahead those of `calls` that `ahead` allows (the runner passes
/// [`modules::prefetchable`]) and fetches their facts, plus `extra`
/// read-only scripts (a check's inputs), in at most [`MAX_WAVES`] round
/// trips.
pub async fn prefetch<H: Host>(
    host: &H,
    ctx: &TaskContext<'_>,
    calls: &[&ModuleCall],
    ahead: &dyn Fn(&ModuleCall) -> bool,
    extra: Vec<String>,
) -> Prefetch {
    let mut p = Prefetch::default();
    let mut pending: Vec<&ModuleCall> = calls.iter().copied().filter(|c| ahead(c)).collect();
    p.live = calls.len() - pending.len();
    let mut first = extra;
    loop {
        let wanted = Mutex::new(std::mem::take(&mut first));
        let mut still = Vec::new();
        for call in pending {
            let rec = Recorder {
                host,
                known: &p.answers,
                wanted: &wanted,
                deferred: AtomicBool::new(false),
                refused: AtomicBool::new(false),
            };
            // The result is not kept: the real run plans again on the same
            // answers. Errors are the real run's to report.
            let _ = modules::plan(call, &rec, ctx).await;
            if rec.refused.load(Ordering::SeqCst) {
                p.live += 1;
            } else if rec.deferred.load(Ordering::SeqCst) {
                still.push(call);
            }
        }
        pending = still;
        let wanted = wanted.into_inner().unwrap();
        if wanted.is_empty() {
            break;
        }
        if p.batches == MAX_WAVES {
            p.live += pending.len();
            break;
        }
        p.batches += 1;
        match batch::run_all(host, &wanted).await {
            Ok(outs) => p.answers.extend(wanted.into_iter().zip(outs)),
            Err(e) => {
                p.live += pending.len();
                p.problem = Some(e.to_string());
                break;
            }
        }
    }
    p
}

/// The real host, with the prefetched answers in front of it while nothing
/// on the host changed since they were read.
pub struct Prefetched<'h, H> {
    host: &'h H,
    answers: Answers,
    fresh: AtomicBool,
    missed: AtomicBool,
}

impl<'h, H: Host> Prefetched<'h, H> {
    pub fn new(host: &'h H, answers: Answers) -> Self {
        Prefetched {
            host,
            fresh: AtomicBool::new(!answers.is_empty()),
            answers,
            missed: AtomicBool::new(false),
        }
    }

    /// Something is about to change on the host: the answers may be stale.
    pub fn mark_changed(&self) {
        self.fresh.store(false, Ordering::SeqCst);
    }

    /// Whether the answers still stand.
    pub fn fresh(&self) -> bool {
        self.fresh.load(Ordering::SeqCst)
    }

    /// Whether anything went to the host since the last call.
    pub fn take_missed(&self) -> bool {
        self.missed.swap(false, Ordering::SeqCst)
    }
}

impl<H: Host> Host for Prefetched<'_, H> {
    fn name(&self) -> &str {
        self.host.name()
    }

    fn ssh_port(&self) -> Option<u16> {
        self.host.ssh_port()
    }

    fn round_trips(&self) -> Option<u64> {
        self.host.round_trips()
    }

    async fn run(&self, script: &str, stdin: Option<&[u8]>) -> Result<CmdOutput, HostError> {
        if stdin.is_none() && self.fresh() {
            if let Some(out) = self.answers.get(script) {
                return Ok(out.clone());
            }
        }
        self.missed.store(true, Ordering::SeqCst);
        self.host.run(script, stdin).await
    }

    async fn put(
        &self,
        path: &str,
        content: &[u8],
        mode: u32,
        owner: &str,
        group: &str,
    ) -> Result<(), HostError> {
        self.missed.store(true, Ordering::SeqCst);
        self.host.put(path, content, mode, owner, group).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::batch::fake_reply;
    use crate::modules::testkit::{ok, Fixture, ScriptedHost};
    use crate::modules::{plan, prefetchable};

    fn call(v: serde_json::Value) -> ModuleCall {
        serde_json::from_value(v).unwrap()
    }

    /// A host that answers batches by answering each script in them.
    fn batching(
        answer: impl Fn(&str) -> CmdOutput + Send + Sync + Clone + 'static,
    ) -> ScriptedHost {
        ScriptedHost::new(move |s| fake_reply(s, answer.clone()).unwrap_or_else(|| answer(s)))
    }

    fn batches(host: &ScriptedHost) -> usize {
        let sent = host.sent.lock().unwrap();
        sent.iter()
            .filter(|(s, _)| s.starts_with("# facts batch"))
            .count()
    }

    /// A rendered file that is not secret, and one line of its facts saying
    /// it differs from what is rendered.
    fn unit_file(fx: &Fixture) -> String {
        fx.files
            .files
            .iter()
            .find(|f| !f.sensitive && f.path.ends_with(".service"))
            .expect("a rendered unit")
            .path
            .clone()
    }

    fn files_host() -> ScriptedHost {
        batching(|s| {
            if s.contains("ocfo_as_owner cat -- \"$1\"") && !s.contains("sha256sum") {
                ok("an old line\n")
            } else if s.contains("sha256sum") {
                ok(&format!("{} 644 root root\n", "0".repeat(64)))
            } else {
                panic!("unexpected script {s}")
            }
        })
    }

    #[tokio::test]
    async fn a_second_facts_script_comes_in_a_second_wave_and_the_plan_is_the_live_one() {
        let mut fx = Fixture::load(|_| {});
        fx.opts.diff = true;
        let ctx = fx.ctx();
        let files = call(serde_json::json!({"files": {"paths": [unit_file(&fx)]}}));
        let host = files_host();
        let p = prefetch(&host, &ctx, &[&files], &prefetchable, Vec::new()).await;
        assert_eq!((p.batches, p.live, p.problem.as_deref()), (2, 0, None));
        assert_eq!(batches(&host), 2);
        assert_eq!(host.sent.lock().unwrap().len(), 2, "only the two batches");
        assert_eq!(p.answers.len(), 2, "the file's facts, then its old content");

        // Planned on the answers, with a host that must not be asked.
        let never = ScriptedHost::new(|s| panic!("went to the host: {s}"));
        let ahead = plan(&files, &Prefetched::new(&never, p.answers), &ctx)
            .await
            .unwrap();
        let live = plan(&files, &files_host(), &ctx).await.unwrap();
        assert_eq!(ahead, live);
        assert!(ahead[0].diff.as_deref().unwrap().contains("-an old line"));
    }

    #[tokio::test]
    async fn after_a_change_the_answers_are_not_used() {
        let fx = Fixture::load(|_| {});
        let ctx = fx.ctx();
        let files = call(serde_json::json!({"files": {"paths": [unit_file(&fx)]}}));
        let host = files_host();
        let p = prefetch(&host, &ctx, &[&files], &prefetchable, Vec::new()).await;
        assert_eq!(p.batches, 1, "no diff asked: one wave");
        let live = ScriptedHost::new(|_| ok("missing\n"));
        let cached = Prefetched::new(&live, p.answers);
        plan(&files, &cached, &ctx).await.unwrap();
        assert!(live.sent.lock().unwrap().is_empty());
        assert!(!cached.take_missed());
        cached.mark_changed();
        let changes = plan(&files, &cached, &ctx).await.unwrap();
        assert_eq!(live.sent.lock().unwrap().len(), 1);
        assert!(cached.take_missed());
        assert!(changes[0].summary.starts_with("create "), "{changes:?}");
    }

    #[tokio::test]
    async fn a_task_that_opts_out_is_read_live_and_the_others_still_batch() {
        let fx = Fixture::load(|_| {});
        let ctx = fx.ctx();
        let a = call(
            serde_json::json!({"directory": {"path": "/srv/a", "mode": "0750", "owner": "root"}}),
        );
        let b = call(
            serde_json::json!({"directory": {"path": "/srv/b", "mode": "0750", "owner": "root"}}),
        );
        let host = batching(|_| ok("750 root root\n"));
        let not_b = |c: &ModuleCall| !matches!(c, ModuleCall::Directory(d) if d.path == "/srv/b");
        let p = prefetch(&host, &ctx, &[&a, &b], &not_b, Vec::new()).await;
        assert_eq!((p.batches, p.live), (1, 1));
        assert_eq!(p.answers.len(), 1);
        assert!(p.answers.keys().all(|k| k.contains("/srv/a")));
    }

    #[tokio::test]
    async fn a_broken_batch_is_reported_and_the_run_reads_live() {
        let fx = Fixture::load(|_| {});
        let ctx = fx.ctx();
        let a = call(
            serde_json::json!({"directory": {"path": "/srv/a", "mode": "0750", "owner": "root"}}),
        );
        let host = ScriptedHost::new(|_| ok("OCFO-BATCH 0\ngarbage\n"));
        let p = prefetch(&host, &ctx, &[&a], &prefetchable, Vec::new()).await;
        assert_eq!((p.batches, p.live), (1, 1));
        assert!(p.answers.is_empty());
        assert!(p.problem.unwrap().contains("unexpected facts batch output"));
    }

    #[tokio::test]
    async fn a_failing_facts_script_gives_the_live_error() {
        let fx = Fixture::load(|_| {});
        let ctx = fx.ctx();
        let a = call(
            serde_json::json!({"directory": {"path": "/srv/a", "mode": "0750", "owner": "root"}}),
        );
        let broken = |_: &str| CmdOutput {
            status: Some(2),
            stdout: String::new(),
            stderr: "stat: cannot statx '/srv': Permission denied\n".into(),
        };
        let p = prefetch(&batching(broken), &ctx, &[&a], &prefetchable, Vec::new()).await;
        let never = ScriptedHost::new(|s| panic!("went to the host: {s}"));
        let ahead = plan(&a, &Prefetched::new(&never, p.answers), &ctx)
            .await
            .unwrap_err()
            .to_string();
        let live = plan(&a, &ScriptedHost::new(broken), &ctx)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(ahead, live);
        assert!(ahead.contains("Permission denied"), "{ahead}");
    }

    #[tokio::test]
    async fn a_check_whose_inputs_did_not_change_costs_no_round_trip() {
        let fx = Fixture::load(|_| {});
        let ctx = fx.ctx();
        let validate = call(serde_json::json!({"openclaw_validate": {}}));
        let inputs = |now: &'static str| {
            batching(move |s| {
                assert!(
                    s.contains("sha256sum"),
                    "only the inputs are read ahead: {s}"
                );
                ok(now)
            })
        };
        let reads = crate::modules::check_reads(&validate, &ctx);
        assert_eq!(reads.len(), 1);

        let p = prefetch(
            &inputs("abc\nabc\n"),
            &ctx,
            &[&validate],
            &prefetchable,
            reads.clone(),
        )
        .await;
        assert_eq!(p.batches, 1);
        let never = ScriptedHost::new(|s| panic!("went to the host: {s}"));
        let cached = Prefetched::new(&never, p.answers);
        crate::modules::verify(&validate, &cached, &ctx)
            .await
            .unwrap();
        assert!(!cached.take_missed());

        // Changed since the last validation: `openclaw config validate` runs,
        // on the host, and the run treats the host as changed from then on.
        let p = prefetch(
            &inputs("new\nold\n"),
            &ctx,
            &[&validate],
            &prefetchable,
            reads,
        )
        .await;
        let live = ScriptedHost::new(|s| {
            if s.contains("config validate") {
                ok("{\"valid\": true}\n")
            } else {
                ok("")
            }
        });
        let cached = Prefetched::new(&live, p.answers);
        crate::modules::verify(&validate, &cached, &ctx)
            .await
            .unwrap();
        assert!(cached.take_missed());
        let sent = live.sent.lock().unwrap();
        assert!(sent.iter().any(|(s, _)| s.contains("config validate")));
    }
}
