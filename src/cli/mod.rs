//! Command-line layer: parses arguments, sets up logging and colour, and hands
//! each subcommand to its own file in this folder.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod deploy;
mod drill;
#[cfg(target_os = "linux")]
mod lab;
mod monitor;
mod progress;
mod render;
mod status;
mod switchover;
mod validate;
mod workspace_watch;

#[derive(Debug, Parser)]
#[command(name = "ocfo", version, about = "OpenClaw failover orchestrator", long_about = None)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only print errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check an inventory offline and list every problem.
    Validate(validate::ValidateArgs),
    /// Write the files deploy would install, per node, into a folder.
    Render(render::RenderArgs),
    /// Converge both hosts over SSH: harden, install, configure, start.
    Deploy(deploy::DeployArgs),
    /// Break the primary on purpose and measure failover and failback.
    Drill(drill::DrillArgs),
    /// Planned maintenance: hand service to the standby (make-before-break), `--back` to return it.
    Switchover(switchover::SwitchoverArgs),
    /// Which node serves: gateway, monitor, versions, last deploy, per node.
    Status(status::StatusArgs),
    /// Two local Debian hosts (systemd-nspawn) to try and test ocfo on (needs root).
    #[cfg(target_os = "linux")]
    Lab(lab::LabArgs),
    /// The standby's failover daemon (run by ocfo-monitor.service), and `monitor status`.
    Monitor(monitor::MonitorArgs),
    /// The primary's workspace watcher (run by ocfo-workspace-watch.service): pushes seconds after the agent writes.
    #[command(hide = true)]
    WorkspaceWatch(workspace_watch::WorkspaceWatchArgs),
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
}

/// Global output settings every subcommand shares.
#[derive(Debug, Clone, Copy)]
pub struct OutputSettings {
    pub color: bool,
    pub quiet: bool,
}

impl OutputSettings {
    fn detect(quiet: bool) -> Self {
        use std::io::IsTerminal;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        OutputSettings {
            color: !no_color && std::io::stderr().is_terminal(),
            quiet,
        }
    }
}

fn init_logging(verbose: u8, quiet: bool, color: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("OCFO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(color)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = OutputSettings::detect(cli.quiet);
    init_logging(cli.verbose, cli.quiet, out.color);
    match cli.command {
        Command::Validate(args) => validate::run(args, out),
        Command::Render(args) => render::run(args, out),
        Command::Deploy(args) => deploy::run(args, out),
        #[cfg(target_os = "linux")]
        Command::Lab(args) => lab::run(args, out),
        Command::Status(args) => status::run(args, out),
        Command::Drill(args) => drill::run(args, out),
        Command::Switchover(args) => switchover::run(args, out),
        Command::Monitor(args) => monitor::run(args, out),
        Command::WorkspaceWatch(args) => workspace_watch::run(args),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "ocfo", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}

/// Loads an inventory for a command that needs a valid one: prints the
/// diagnostics (warnings too) and returns `None` when there are errors.
pub fn load_inventory(
    path: &std::path::Path,
    resolve_secrets: bool,
    out: OutputSettings,
) -> Option<(ocfo::inventory::Inventory, ocfo::inventory::Secrets)> {
    let loaded = ocfo::validate::load_file(path, ocfo::inventory::LoadOptions { resolve_secrets });
    if loaded.report.has_errors() || !out.quiet {
        eprint!("{}", loaded.report.render(out.color));
    }
    match loaded.inventory {
        Some(inv) => Some((inv, loaded.secrets)),
        None => {
            eprintln!(
                "{}: invalid inventory ({} error(s)); `ocfo validate` lists the problems",
                path.display(),
                loaded.report.error_count()
            );
            None
        }
    }
}

/// Prints a report as JSON (`--json`) or as text, and turns `ok` into the
/// exit code: what `drill` and `switchover` end with.
pub fn print_report<T: serde::Serialize>(
    report: &T,
    ok: bool,
    json: bool,
    text: impl FnOnce(&T) -> String,
) -> std::process::ExitCode {
    // Reports carry what hosts said (errors, states): escaped for the terminal.
    if json {
        let json = serde_json::to_string_pretty(report).unwrap_or_default();
        println!("{}", ocfo::terminal::escape_json(&json));
    } else {
        print!("{}", ocfo::terminal::escape_lines(&text(report)));
    }
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// The async runtime a command runs on; `None` (after saying why) if it
/// cannot start.
pub fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            None
        }
    }
}

/// The single-threaded runtime the hosts' daemons run on (the monitor, the
/// workspace watcher, the take-back): small, and one core is theirs at most.
pub fn daemon_runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency checks over every subcommand: an argument
    /// clashing with a global one (the watcher's `--quiet` did, and every
    /// start of it panicked) fails here, not on a host.
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }

    /// The watcher's command line exactly as its unit writes it.
    #[test]
    fn the_watcher_parses_its_units_command_line() {
        use clap::Parser;
        let cli = super::Cli::try_parse_from([
            "ocfo",
            "-v",
            "workspace-watch",
            "--workspace",
            "/home/openclaw/workspace",
            "--push-script",
            "/usr/local/lib/ocfo/workspace-push",
            "--interval",
            "5m",
        ])
        .unwrap();
        assert!(matches!(cli.command, super::Command::WorkspaceWatch(_)));
    }
}
