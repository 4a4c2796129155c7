//! ocfo: the OpenClaw failover orchestrator.
//!
//! The library holds everything that can be tested without a terminal; the
//! `ocfo` binary (`src/main.rs`) is a thin command-line layer over it.

pub mod diagnostics;
pub mod inventory;
pub mod secrets;
