//! `ocfo status`: which node is serving, at a glance.

use std::path::PathBuf;
use std::process::ExitCode;

use ocfo::inventory::Role;
use ocfo::status::{node_status, NodeStatus};

use super::{load_inventory, OutputSettings};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The inventory file.
    pub inventory: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub async fn gather(inv: &ocfo::inventory::Inventory) -> Vec<NodeStatus> {
    let one = |role: Role| async move {
        match ocfo::ssh::connect(inv, role, false).await {
            Ok(session) => {
                let s = node_status(inv, role, Ok(&session)).await;
                session.close().await;
                s
            }
            Err(e) => node_status::<ocfo::ssh::HostSession>(inv, role, Err(e)).await,
        }
    };
    futures::future::join_all(inv.roles().into_iter().map(one)).await
}

pub fn print(nodes: &[NodeStatus]) {
    print!("{}", ocfo::status::text(nodes, env!("CARGO_PKG_VERSION")));
}

pub fn run(args: StatusArgs, out: OutputSettings) -> ExitCode {
    let Some((inv, _secrets)) = load_inventory(&args.inventory, false, out) else {
        return ExitCode::FAILURE;
    };
    let Some(rt) = super::runtime() else {
        return ExitCode::FAILURE;
    };
    let nodes = rt.block_on(gather(&inv));
    if args.json {
        let json = serde_json::to_string_pretty(&nodes).unwrap_or_default();
        println!("{}", ocfo::terminal::escape_json(&json));
    } else {
        print(&nodes);
    }
    if nodes.iter().all(|n| n.reachable) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
