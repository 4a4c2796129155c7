//! The deploy engine: playbooks of tasks, each handled by a module that first
//! reads the host (facts) and then decides the changes (a plan of steps).
//! `--check` stops after planning; a real run executes the same steps.

pub mod batch;
pub mod change;
pub mod context;
pub mod facts;
pub mod host;
pub mod playbook;
pub mod prefetch;
pub mod report;
pub mod runner;

pub use change::{Change, Step};
pub use context::{RunOptions, TaskContext};
pub use facts::Facts;
pub use host::{CmdOutput, Host, HostError};
pub use report::{HostReport, Status, TaskReport};
#[cfg(test)]
mod tests;
