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

/// Plans `calls` ahead and fetches their facts, plus `extra` read-only
/// scripts (a check's inputs), in at most [`MAX_WAVES`] round trips.
pub async fn prefetch<H: Host>(
    host: &H,
    ctx: &TaskContext<'_>,
    calls: &[&ModuleCall],
    extra: Vec<String>,
) -> Prefetch {
    let mut p = Prefetch::default();
    let mut pending: Vec<&ModuleCall> = calls
        .iter()
        .copied()
        .filter(|c| modules::prefetchable(c))
        .collect();
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
