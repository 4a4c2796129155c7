//! The glue between the engine and SSH: what `deploy`, `status` and `drill`
//! call to get a [`Host`](crate::engine::Host) for a node.

use crate::inventory::{Inventory, Role};
use crate::ssh::{connect_node, ConnectOptions, HostSession};

pub async fn connect(
    inv: &Inventory,
    role: Role,
    accept_new_host_keys: bool,
) -> Result<HostSession, String> {
    let opts = ConnectOptions {
        accept_new_host_keys,
        ..Default::default()
    };
    connect_node(inv, role, opts)
        .await
        .map_err(|e| e.to_string())
}
