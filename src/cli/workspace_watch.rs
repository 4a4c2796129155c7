//! `ocfo workspace-watch`: the primary's workspace watcher (run by
//! `ocfo-workspace-watch.service`, written by deploy).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ocfo::workspace_watch::{Options, Timing};

#[derive(Debug, clap::Args)]
pub struct WorkspaceWatchArgs {
    /// The gateway's workspace checkout.
    #[arg(long)]
    pub workspace: PathBuf,
    /// The script that commits and pushes it.
    #[arg(long, default_value = ocfo::layout::PUSH_SCRIPT)]
    pub push_script: PathBuf,
    /// Push once the workspace has been quiet this long (e.g. 1s, 500ms).
    /// Not `--quiet`: that is everyone's global flag (`-q`).
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub quiet_for: Duration,
    /// Push at most this long after the first unpushed write.
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub max_delay: Duration,
    /// Push at least this often, changes seen or not.
    #[arg(long, default_value = "5m", value_parser = duration)]
    pub interval: Duration,
}

fn duration(s: &str) -> Result<Duration, String> {
    ocfo::inventory::units::parse_duration(s)
}

pub fn run(args: WorkspaceWatchArgs) -> ExitCode {
    if args.quiet_for > args.max_delay || args.interval < args.max_delay {
        eprintln!("error: expected --quiet-for ≤ --max-delay ≤ --interval");
        return ExitCode::FAILURE;
    }
    let opts = Options {
        workspace: args.workspace,
        push_script: args.push_script,
        timing: Timing {
            quiet: args.quiet_for,
            max_delay: args.max_delay,
            interval: args.interval,
            ..Timing::default()
        },
        push_timeout: Duration::from_secs(120),
    };
    let Some(runtime) = super::daemon_runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(ocfo::workspace_watch::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
