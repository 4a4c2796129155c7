//! `deploy`: both hosts in parallel, each through the same playbook. A failure
//! on one host never stops the other.

use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use crate::engine::context::{RunOptions, TaskContext};
use crate::engine::playbook::{self, TagFilter};
use crate::engine::runner::{Event, RestartGate, Runner};
use crate::engine::{Host, HostReport};
use crate::inventory::{Inventory, Role, Secrets};
use crate::layout::Layout;
use crate::render::{render_node, SecretMode};
use crate::restart_gate::StandbyHold;

#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    pub run: RunOptions,
    /// Only this node (`--limit`).
    pub limit: Option<Role>,
    pub tags: TagFilter,
}

/// Who is deploying, for the lock message on the host.
pub fn who() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "someone".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("ocfo deploy by {user}@{host}, pid {}", std::process::id())
}

/// Runs the site playbook on the selected nodes. `connect` opens one session
/// per node; the returned reports are in node order.
pub async fn deploy<H, F, Fut>(
    inv: &Inventory,
    secrets: &Secrets,
    opts: &DeployOptions,
    connect: F,
    events: Option<UnboundedSender<Event>>,
    cancel: &AtomicBool,
) -> Vec<HostReport>
where
    H: Host,
    F: Fn(Role) -> Fut,
    Fut: Future<Output = Result<H, String>>,
{
    let book = match playbook::load_for(inv) {
        Ok(b) => b,
        Err(e) => {
            // An embedded playbook that does not load is a bug the tests catch;
            // still, report it per host rather than panic.
            return selected(inv, opts)
                .map(|r| {
                    let mut rep = HostReport::new(r, &inv.node(r).host);
                    rep.error = Some(e.to_string());
                    rep
                })
                .collect();
        }
    };
    let redactor = secrets.redactor();
    let layout = Layout::new(&inv.openclaw.user);
    let nodes: Vec<Role> = selected(inv, opts).collect();
    // The standby is connected also for a primary-only run: its monitor is
    // held while the primary's gateway restarts.
    let needs_standby = !opts.run.check && nodes.contains(&Role::Primary);
    // A chain's standby2 is held with the standby (`StandbyHold`).
    let connect_if = |role: Role, wanted: bool| {
        let connecting = wanted.then(|| connect(role));
        async move {
            match connecting {
                Some(c) => Some(c.await),
                None => None,
            }
        }
    };
    let (primary, standby, standby2) = futures::future::join3(
        connect_if(Role::Primary, nodes.contains(&Role::Primary)),
        connect_if(
            Role::Standby,
            nodes.contains(&Role::Standby) || needs_standby,
        ),
        connect_if(
            Role::Standby2,
            nodes.contains(&Role::Standby2) || (needs_standby && inv.standby2.is_some()),
        ),
    )
    .await;
    let by = who();
    let (standby_done, _) = tokio::sync::watch::channel(None);
    let standby_in_run = nodes.contains(&Role::Standby);
    let gate = match (&primary, &standby) {
        (Some(Ok(p)), Some(Ok(s))) if needs_standby => Some(StandbyHold {
            inv,
            primary: p,
            standby: s,
            standby2: match &standby2 {
                Some(Ok(h)) => Some(h),
                _ => None,
            },
            by: by.clone(),
            standby_done: standby_in_run.then_some(&standby_done),
            handed_over: Default::default(),
            notes: Default::default(),
        }),
        _ => None,
    };
    let runner = |role: Role| Runner {
        playbook: &book,
        tags: &opts.tags,
        events: events.clone(),
        cancel,
        who: by.clone(),
        gate: match role {
            Role::Primary => gate.as_ref().map(|g| g as &dyn RestartGate),
            Role::Standby | Role::Standby2 => None,
        },
        allow_unsupported_os: opts.run.allow_unsupported_os,
    };
    let standby_error = match (&standby, needs_standby) {
        (Some(Err(e)), true) => Some(e.clone()),
        _ => None,
    };
    let runs = nodes.iter().map(|&role| {
        let host = match role {
            Role::Primary => primary.as_ref(),
            Role::Standby => standby.as_ref(),
            Role::Standby2 => standby2.as_ref(),
        };
        let node = NodeRun {
            inv,
            secrets,
            opts,
            layout: &layout,
            redactor: &redactor,
            runner: runner(role),
            unheld: match role {
                Role::Primary => standby_error.clone(),
                Role::Standby | Role::Standby2 => None,
            },
        };
        let done = &standby_done;
        async move {
            let report = node.run(role, host).await;
            if role == Role::Standby {
                // An upgrade of the primary waits for this (send_replace:
                // it works with no receiver yet), and stops if it failed.
                let outcome = if report.failed() {
                    Err(report
                        .tasks
                        .iter()
                        .find(|t| t.error.is_some())
                        .map(|t| format!("task `{}` failed", t.task))
                        .or_else(|| report.error.clone())
                        .unwrap_or_else(|| "it was interrupted".into()))
                } else {
                    Ok(())
                };
                done.send_replace(Some(outcome));
            }
            report
        }
    });
    futures::future::join_all(runs).await
}

/// One node's run, once its connection was tried.
struct NodeRun<'a> {
    inv: &'a Inventory,
    secrets: &'a Secrets,
    opts: &'a DeployOptions,
    layout: &'a Layout,
    redactor: &'a crate::secrets::Redactor,
    runner: Runner<'a>,
    /// Why the standby's monitor could not be held, if it could not.
    unheld: Option<String>,
}

impl NodeRun<'_> {
    async fn run<H: Host>(self, role: Role, host: Option<&Result<H, String>>) -> HostReport {
        let start = Instant::now();
        let inv = self.inv;
        let mut report = HostReport::new(role, &inv.node(role).host);
        let result: Result<(), String> = async {
            let host = match host {
                Some(Ok(h)) => h,
                Some(Err(e)) => return Err(e.clone()),
                None => return Err("not connected".into()),
            };
            let files = render_node(inv, role, self.secrets, SecretMode::Reveal)
                .map_err(|e| self.redactor.redact(&e.to_string()))?;
            let started = self.runner.begin(host, self.opts.run.check).await?;
            let ctx = TaskContext {
                inv,
                role,
                facts: &started.facts,
                files: &files,
                secrets: self.secrets,
                layout: self.layout,
                opts: &self.opts.run,
                redactor: self.redactor,
            };
            let before = host.round_trips();
            self.runner
                .run(host, &ctx, started.locked, &mut report)
                .await;
            report.round_trips = host.round_trips();
            if let (Some(before), Some(after)) = (before, report.round_trips) {
                tracing::info!(
                    "{role}: {after} SSH round trips ({before} for {}, {} for the tasks and the end)",
                    if started.locked {
                        "facts and the lock"
                    } else {
                        "facts"
                    },
                    after - before
                );
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            report.error = Some(self.redactor.redact(&e));
        }
        if let Some(e) = &self.unheld {
            report.notes.push(self.redactor.redact(&format!(
                "WARNING: the standby is unreachable ({e}), so its monitor could not be held during this run"
            )));
        }
        report.duration_ms = start.elapsed().as_millis();
        report
    }
}

fn selected<'a>(inv: &Inventory, opts: &'a DeployOptions) -> impl Iterator<Item = Role> + 'a {
    inv.roles()
        .into_iter()
        .filter(move |r| opts.limit.is_none_or(|l| l == *r))
}
