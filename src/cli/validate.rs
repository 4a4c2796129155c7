//! `ocfo validate`: offline checks of an inventory, every problem at once.

use std::path::PathBuf;
use std::process::ExitCode;

use ocfo::inventory::LoadOptions;
use ocfo::validate::load_file;

use super::OutputSettings;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The inventory file.
    pub inventory: PathBuf,
    /// Do not resolve secret references (lint without credentials).
    #[arg(long)]
    pub no_secrets: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ValidateArgs, out: OutputSettings) -> ExitCode {
    let loaded = load_file(
        &args.inventory,
        LoadOptions {
            resolve_secrets: !args.no_secrets,
        },
    );
    let report = &loaded.report;
    if args.json {
        let doc = serde_json::json!({
            "file": report.file,
            "valid": !report.has_errors(),
            "errors": report.error_count(),
            "warnings": report.warning_count(),
            "secrets_resolved": !args.no_secrets,
            "diagnostics": report.diagnostics,
        });
        println!("{doc:#}");
    } else {
        if !out.quiet || report.has_errors() {
            eprint!("{}", report.render(out.color));
        }
        if !report.has_errors() && !out.quiet {
            let warnings = match report.warning_count() {
                0 => String::new(),
                1 => " (1 warning)".into(),
                n => format!(" ({n} warnings)"),
            };
            let secrets = if args.no_secrets {
                ", secrets not resolved"
            } else {
                ""
            };
            println!("{}: valid{warnings}{secrets}", args.inventory.display());
        } else if report.has_errors() {
            eprintln!(
                "{}: {} error(s), {} warning(s)",
                args.inventory.display(),
                report.error_count(),
                report.warning_count()
            );
        }
    }
    if report.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
