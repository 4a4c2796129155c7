//! `ocfo switchover`: planned handover to the standby, and back.

use std::path::PathBuf;
use std::process::ExitCode;

use ocfo::switchover::{run as switchover, summary};

use super::{load_inventory, OutputSettings};

#[derive(Debug, clap::Args)]
pub struct SwitchoverArgs {
    /// The inventory file.
    pub inventory: PathBuf,
    /// Return service to the primary (start it, wait until it is ready, then
    /// let the standby step down).
    #[arg(long)]
    pub back: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: SwitchoverArgs, out: OutputSettings) -> ExitCode {
    let Some((inv, _secrets)) = load_inventory(&args.inventory, false, out) else {
        return ExitCode::FAILURE;
    };
    let Some(rt) = super::runtime() else {
        return ExitCode::FAILURE;
    };
    let report = rt.block_on(async {
        let (p, s) = ocfo::ssh::connect_pair(&inv).await?;
        if !out.quiet && !args.json {
            eprintln!(
                "switchover{}: watching the monitor carry it out...",
                if args.back { " --back" } else { "" }
            );
        }
        let r = switchover(&inv, &p, &s, args.back, &ocfo::deploy::who()).await;
        p.close().await;
        s.close().await;
        Ok::<_, String>(r)
    });
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    super::print_report(&report, report.ok, args.json, summary)
}
