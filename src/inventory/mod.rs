//! The inventory: one YAML file describing the failover pair.
//!
//! Reading happens in three steps, each in its own file: `yaml` parses into a
//! tree that remembers positions, `load` types it section by section through
//! `decode`, and `rules` checks what spans sections (the channel split).
//! Checks that need the floors above (render, the engine, the modules) are
//! supplied through [`Checks`] by `crate::validate`.

pub mod announce;
mod decode;
pub mod env_names;
mod load;
mod model;
mod names;
pub mod node_pins;
pub mod openclaw_locks;
mod rules;
pub mod task_syntax;
pub mod tasks;
pub mod units;
pub mod yaml;

pub use load::{
    laptop_path, load_file, load_file_with, load_str, load_str_with, Checks, LoadOptions, Loaded,
    OwnChecks, Secrets, DEFAULT_GATEWAY_PORT, DEFAULT_NODE_MIRROR, DEFAULT_NODE_VERSION,
};
pub use model::*;
pub use names::ca_certificate_name;
