//! ocfo: the OpenClaw failover orchestrator.
//!
//! The library holds everything that can be tested without a terminal; the
//! `ocfo` binary (`src/main.rs`) is a thin command-line layer over it.

pub mod child;
pub mod clock;
pub mod diagnostics;
pub mod fsutil;
pub mod inventory;
pub mod jinja;
pub mod layout;
pub mod render;
pub mod secrets;
pub mod shell;
pub mod terminal;

/// Hex SHA-256, the checksum ocfo compares files by (locally and on hosts).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
pub mod deploy;
pub mod drill;
pub mod engine;
pub mod gateway;
/// The lab needs Linux (systemd-nspawn, network namespaces, iptables); the
/// laptop side of ocfo builds without it on macOS.
#[cfg(target_os = "linux")]
pub mod lab;
pub mod modules;
pub mod monitor;
pub mod openclaw;
pub mod restart_gate;
pub mod ssh;
pub mod standby_client;
pub mod status;
pub mod switchover;
pub mod user_side;
pub mod validate;
pub mod workspace_watch;
