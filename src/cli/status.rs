//! `ocfo status`: which node is serving, at a glance.

use std::path::PathBuf;
use std::process::ExitCode;

use ocfo::inventory::Role;
use ocfo::status::{node_status, NodeStatus};

use super::{load_inventory, Output};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The inventory file.
    pub inventory: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub async fn gather(inv: &ocfo::inventory::Inventory) -> Vec<NodeStatus> {
    let one = |role: Role| async move {
        match ocfo::transport::connect(inv, role, false).await {
            Ok(session) => {
                let s = node_status(inv, role, Ok(&session)).await;
                session.close().await;
                s
            }
            Err(e) => node_status::<ocfo::ssh::HostSession>(inv, role, Err(e)).await,
        }
    };
    futures::future::join_all(Role::ALL.map(one)).await
}

pub fn print(nodes: &[NodeStatus]) {
    let local = env!("CARGO_PKG_VERSION");
    for n in nodes {
        println!("{} ({})  {}", n.node, n.host, n.role);
        if let Some(e) = &n.error {
            println!("  unreachable: {e}");
            continue;
        }
        println!(
            "  gateway   {} / {}{}",
            n.gateway_active,
            n.gateway_enabled,
            if n.gateway_healthy {
                ", /healthz ok"
            } else {
                ", /healthz not answering"
            }
        );
        if let Some(m) = &n.monitor {
            let last = m
                .transitions
                .back()
                .map(|t| format!("{} -> {} at {}", t.from.as_str(), t.to.as_str(), t.at))
                .unwrap_or_else(|| "none".into());
            println!(
                "  monitor   {} since {}; last transition: {last}",
                m.role.as_str(),
                m.since
            );
        } else if let Some(a) = &n.monitor_active {
            println!("  monitor   {a} (no state file)");
        }
        let ocfo_note = if !n.ocfo_version.is_empty() && n.ocfo_version != local {
            format!(" (this ocfo: {local})")
        } else {
            String::new()
        };
        println!(
            "  versions  openclaw {}, node {}, ocfo {}{ocfo_note}",
            or_dash(&n.openclaw_version),
            or_dash(&n.node_version),
            or_dash(&n.ocfo_version)
        );
        println!("  deployed  {}", or_dash(&n.last_deploy));
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

pub fn run(args: StatusArgs, out: Output) -> ExitCode {
    let Some((inv, _secrets)) = load_inventory(&args.inventory, false, out) else {
        return ExitCode::FAILURE;
    };
    let Some(rt) = super::runtime() else {
        return ExitCode::FAILURE;
    };
    let nodes = rt.block_on(gather(&inv));
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&nodes).unwrap_or_default()
        );
    } else {
        print(&nodes);
    }
    if nodes.iter().all(|n| n.reachable) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
