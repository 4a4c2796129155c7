//! `deploy`: both hosts in parallel, each through the same playbook. A failure
//! on one host never stops the other.

use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use crate::engine::context::{RunOptions, TaskContext};
use crate::engine::playbook::{self, TagFilter};
use crate::engine::runner::{Event, Runner};
use crate::engine::{facts, Host, HostReport};
use crate::inventory::{Inventory, Role, Secrets};
use crate::render::layout::Layout;
use crate::render::{render_node, SecretMode};

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
            return selected(opts)
                .map(|r| {
                    let mut rep = HostReport::new(r, &inv.node(r).host);
                    rep.error = Some(e.to_string());
                    rep
                })
                .collect();
        }
    };
    let redactor = secrets.redactor();
    let layout = Layout::new(inv);
    let runner = Runner {
        playbook: &book,
        tags: &opts.tags,
        events,
        cancel,
        who: who(),
    };
    let one = |role: Role| {
        let (runner, layout, redactor, connect) = (&runner, &layout, &redactor, &connect);
        async move {
            let start = Instant::now();
            let node = inv.node(role);
            let mut report = HostReport::new(role, &node.host);
            let result: Result<(), String> = async {
                let host = connect(role).await?;
                let files = render_node(inv, role, secrets, SecretMode::Reveal)
                    .map_err(|e| redactor.redact(&e.to_string()))?;
                let facts = facts::gather(&host).await.map_err(|e| e.to_string())?;
                if facts.init != "systemd" {
                    return Err(format!(
                        "{role}: ocfo needs systemd as init, found `{}`",
                        facts.init
                    ));
                }
                let ctx = TaskContext {
                    inv,
                    role,
                    facts: &facts,
                    files: &files,
                    secrets,
                    layout,
                    opts: &opts.run,
                    redactor,
                };
                runner.run(&host, &ctx, &mut report).await;
                Ok(())
            }
            .await;
            if let Err(e) = result {
                report.error = Some(redactor.redact(&e));
            }
            report.duration_ms = start.elapsed().as_millis();
            report
        }
    };
    futures::future::join_all(selected(opts).map(one)).await
}

fn selected(opts: &DeployOptions) -> impl Iterator<Item = Role> + '_ {
    Role::ALL
        .into_iter()
        .filter(move |r| opts.limit.is_none_or(|l| l == *r))
}
