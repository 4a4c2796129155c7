//! `ocfo deploy`: converge both hosts, with progress, recap and exit codes
//! (0 converged, 1 failure, 2 changes pending under --check).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ocfo::deploy::{deploy, DeployOptions};
use ocfo::engine::context::RunOptions;
use ocfo::engine::playbook::TagFilter;
use ocfo::inventory::Role;

use super::progress::{recap, Progress};
use super::{load_inventory, OutputSettings};

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The inventory file.
    pub inventory: PathBuf,
    /// Report what would change; change nothing (exit 2 when changes are pending).
    #[arg(long)]
    pub check: bool,
    /// Show a diff of every changed file (secrets redacted).
    #[arg(long)]
    pub diff: bool,
    /// Only this node.
    #[arg(long, value_parser = ["primary", "standby", "standby2"])]
    pub limit: Option<String>,
    /// Only tasks with one of these tags (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Skip tasks with one of these tags (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub skip_tags: Vec<String>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Accept and record host keys of hosts not yet in known_hosts (a changed key is always refused).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// The ocfo binary to install on the standby when this one cannot run there (other OS or architecture).
    #[arg(long)]
    pub monitor_binary: Option<PathBuf>,
    /// Have the standby fetch the release build of this version from `monitor.binary_source` (checksum-verified) even when this binary could run there.
    #[arg(long, conflicts_with = "monitor_binary")]
    pub monitor_fetch: bool,
    /// Deploy to a host whose release ocfo does not support (Debian 12 and 13, Ubuntu 24.04 are): a warning instead of a refusal.
    #[arg(long)]
    pub allow_unsupported_os: bool,
    /// Print every task, not only changed and failed ones.
    #[arg(long)]
    pub all_tasks: bool,
}

pub fn run(args: DeployArgs, out: OutputSettings) -> ExitCode {
    let Some((inv, secrets)) = load_inventory(&args.inventory, true, out) else {
        return ExitCode::FAILURE;
    };
    let book = match ocfo::engine::playbook::load_for(&inv) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let known = ocfo::engine::playbook::all_tags(&book);
    for t in args.tags.iter().chain(&args.skip_tags) {
        if !known.contains(t) {
            eprintln!(
                "error: unknown tag `{t}`; the playbooks use: {}",
                known.join(", ")
            );
            return ExitCode::FAILURE;
        }
    }
    let path = match &args.monitor_binary {
        Some(p) => Some(p.clone()),
        // This executable, read now: a rebuild mid-deploy must not matter.
        None if args.limit.as_deref() != Some("primary") => std::env::current_exe().ok(),
        None => None,
    };
    let monitor_binary = match path {
        Some(p) => match std::fs::read(&p) {
            Ok(b) => Some(Arc::new(b)),
            Err(e) => {
                eprintln!("error: cannot read the monitor binary {}: {e}", p.display());
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let opts = DeployOptions {
        run: RunOptions {
            check: args.check,
            diff: args.diff,
            monitor_binary,
            monitor_binary_explicit: args.monitor_binary.is_some(),
            monitor_fetch: args.monitor_fetch,
            allow_unsupported_os: args.allow_unsupported_os,
        },
        limit: args.limit.as_deref().and_then(Role::parse),
        tags: TagFilter {
            only: args.tags.clone(),
            skip: args.skip_tags.clone(),
        },
    };
    let Some(runtime) = super::runtime() else {
        return ExitCode::FAILURE;
    };
    if opts.limit.is_some_and(|l| !inv.roles().contains(&l)) {
        eprintln!(
            "error: --limit standby2: {} has no `nodes.standby2`",
            args.inventory.display()
        );
        return ExitCode::FAILURE;
    }
    let nodes: Vec<String> = inv
        .roles()
        .iter()
        .filter(|r| opts.limit.is_none_or(|l| l == **r))
        .map(|r| r.to_string())
        .collect();
    let cancel = Arc::new(AtomicBool::new(false));
    let reports = runtime.block_on(async {
        // First Ctrl-C: finish the running task on each host, then stop and
        // print the recap. Second: abort.
        let c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                c.store(true, Ordering::SeqCst);
                eprintln!("\ninterrupted: finishing the running task on each host (Ctrl-C again to abort)");
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("aborted");
                    std::process::exit(130);
                }
            }
        });
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut progress = Progress::new(out, &nodes, args.all_tasks, args.diff, args.check);
        let printer = tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                progress.event(e);
            }
            progress.finish();
        });
        let accept_new = args.accept_new_host_keys;
        let reports = deploy(
            &inv,
            &secrets,
            &opts,
            |role| ocfo::ssh::connect(&inv, role, accept_new),
            Some(tx),
            &cancel,
        )
        .await;
        let _ = printer.await;
        reports
    });
    let failed = reports.iter().any(|r| r.failed());
    let interrupted = reports.iter().any(|r| r.interrupted);
    let pending = reports.iter().any(|r| r.counts.changed > 0);
    if args.json {
        let doc = serde_json::json!({
            "inventory": args.inventory,
            "check": args.check,
            "ok": !failed && !interrupted,
            "changes_pending": args.check && pending,
            "hosts": reports,
        });
        let json = secrets.redactor().redact(&format!("{doc:#}"));
        println!("{}", ocfo::terminal::escape_json(&json));
    }
    if !out.quiet {
        eprint!("{}", recap(&reports, out, args.check));
    }
    if failed || interrupted {
        ExitCode::FAILURE
    } else if args.check && pending {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
