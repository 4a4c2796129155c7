//! `ocfo monitor`: the standby's failover daemon, and its status.

use std::path::PathBuf;
use std::process::ExitCode;

use ocfo::monitor::{MonitorConfig, MonitorState};

use super::OutputSettings;

pub const DEFAULT_CONFIG: &str = ocfo::layout::MONITOR_CONFIG;
pub const DEFAULT_STATE: &str = ocfo::layout::MONITOR_STATE_FILE;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MonitorArgs {
    /// The monitor's config (written by `ocfo deploy`).
    #[arg(long, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<MonitorCommand>,
}

#[derive(Debug, clap::Subcommand)]
pub enum MonitorCommand {
    /// Validate a monitor config and exit.
    Check {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// On the primary (run by ocfo-conversation-take-back.timer): take the
    /// conversation the standby handed back at a failback, if it did.
    TakeBack {
        #[arg(long, default_value = ocfo::layout::TAKE_BACK_CONFIG)]
        config: PathBuf,
    },
    /// Print the running monitor's state.
    Status {
        #[arg(long, default_value = DEFAULT_STATE)]
        state_file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

fn load(path: &PathBuf) -> Result<MonitorConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    MonitorConfig::from_yaml(&text).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn run(args: MonitorArgs, _out: OutputSettings) -> ExitCode {
    match args.command {
        Some(MonitorCommand::Check { config }) => match load(&config) {
            Ok(_) => {
                println!("{}: valid", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Some(MonitorCommand::TakeBack { config }) => take_back(&config),
        Some(MonitorCommand::Status { state_file, json }) => {
            match MonitorState::load(&state_file.display().to_string()) {
                Ok(s) if json => {
                    let json = serde_json::to_string_pretty(&s).unwrap_or_default();
                    println!("{}", ocfo::terminal::escape_json(&json));
                    ExitCode::SUCCESS
                }
                Ok(s) => {
                    print!("{}", s.summary());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e} (is ocfo-monitor.service running?)");
                    ExitCode::FAILURE
                }
            }
        }
        None => {
            let config = match load(&args.config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let Some(runtime) = super::daemon_runtime() else {
                return ExitCode::FAILURE;
            };
            runtime.block_on(ocfo::monitor::run(config));
            ExitCode::SUCCESS
        }
    }
}

fn take_back(path: &PathBuf) -> ExitCode {
    use ocfo::monitor::take_back::{take_back, Outcome, TakeBackConfig};
    let config = match std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .and_then(|t| TakeBackConfig::from_yaml(&t).map_err(|e| format!("{}: {e}", path.display())))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(runtime) = super::daemon_runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(take_back(&config)) {
        Ok(Outcome::Nothing) => ExitCode::SUCCESS,
        Ok(Outcome::GatewayDown) => {
            tracing::info!("a conversation was handed back; taking it once the gateway runs");
            ExitCode::SUCCESS
        }
        Ok(Outcome::Answered(s)) => {
            tracing::info!(snapshot = %s.commit, "the handed-back conversation was taken before; answered the standby");
            ExitCode::SUCCESS
        }
        Ok(Outcome::TookBack {
            snapshot,
            offline_ms,
        }) => {
            tracing::info!(
                snapshot = %snapshot.commit,
                offline_ms,
                "took the outage's conversation back (as it was at {}); the gateway serves with it",
                ocfo::clock::hhmmss_utc(snapshot.taken_at)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: taking the handed-back conversation failed: {e}");
            ExitCode::FAILURE
        }
    }
}
