//! `ocfo drill`: prove the failover works, with measured times.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ocfo::drill::{run as drill, timeline, DrillOptions, Fault};
use ocfo::inventory::Role;

use super::{load_inventory, OutputSettings};

fn duration(s: &str) -> Result<Duration, String> {
    ocfo::inventory::units::parse_duration(s)
}

#[derive(Debug, clap::Args)]
pub struct DrillArgs {
    /// The inventory file.
    pub inventory: PathBuf,
    /// How to break the primary.
    #[arg(long, value_enum, default_value = "stop")]
    pub fault: Fault,
    /// Which nodes the fault breaks: `primary`, or in a chain of three
    /// `primary,standby` (standby2 must then take over).
    #[arg(long, value_delimiter = ',', default_value = "primary")]
    pub on: Vec<String>,
    /// Fail when fault → standby healthy takes longer (default 60s).
    #[arg(long, value_parser = duration)]
    pub max_failover: Option<Duration>,
    /// Fail when primary restored → standby stepped down takes longer (default: hold_down + 60s).
    #[arg(long, value_parser = duration)]
    pub max_failback: Option<Duration>,
    /// Wait up to this long for a healthy, idle pair before refusing (e.g.
    /// right after a deploy; default 3m, `0s` checks once).
    #[arg(long, value_parser = duration)]
    pub wait: Option<Duration>,
    /// Drill even when this promotion would make the flap guard pin the
    /// standby (it then keeps serving until its promotions age out).
    #[arg(long)]
    pub allow_pin: bool,
    /// In a lab, do not chat with the bots (measure the machine's side only).
    #[arg(long)]
    pub no_chat: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also write the report as JUnit XML to FILE (for CI test reports);
    /// written whether the drill passes or fails.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

pub fn run(args: DrillArgs, out: OutputSettings) -> ExitCode {
    // Secrets are not resolved: the drill needs none, so it holds no secret
    // value that any of its outputs could print.
    let Some((inv, secrets)) = load_inventory(&args.inventory, false, out) else {
        return ExitCode::FAILURE;
    };
    let taker = match which_taker(&inv, &args.on) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = DrillOptions {
        taker,
        fault: args.fault,
        max_failover: args.max_failover.unwrap_or(Duration::from_secs(60)),
        max_failback: args
            .max_failback
            .unwrap_or(inv.monitor.hold_down + Duration::from_secs(60)),
        phase_timeout: Duration::from_secs(600),
        wait: args.wait.unwrap_or(Duration::from_secs(180)),
        allow_pin: args.allow_pin,
        progress: (!out.quiet && !args.json)
            .then(|| ocfo::drill::Progress(Arc::new(|line: &str| eprintln!("drill: {line}")))),
    };
    let user = if args.no_chat {
        None
    } else {
        user_side(&inv, out)
    };
    let Some(rt) = super::runtime() else {
        return ExitCode::FAILURE;
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let report = rt.block_on(async {
        let c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ninterrupted: restoring the primary...");
                c.store(true, Ordering::SeqCst);
            }
        });
        let mut roles = vec![Role::Primary, taker];
        if taker == Role::Standby2 {
            roles.push(Role::Standby);
        }
        let mut hosts = ocfo::ssh::connect_all(&inv, &roles).await?.into_iter();
        let (Some(p), Some(s)) = (hosts.next(), hosts.next()) else {
            return Err("no connection".to_string());
        };
        let broken = hosts.next();
        if !out.quiet && !args.json {
            eprintln!(
                "drill: {:?} fault on the {}; watching the {taker} take over...",
                opts.fault,
                if broken.is_some() {
                    "primary and the standby"
                } else {
                    "primary"
                }
            );
        }
        let r = match &user {
            #[cfg(target_os = "linux")]
            Some(u) => drill(&inv, &p, &s, broken.as_ref(), Some(u), &opts, &cancel).await,
            _ => {
                drill(
                    &inv,
                    &p,
                    &s,
                    broken.as_ref(),
                    None::<&ocfo::user_side::Nobody>,
                    &opts,
                    &cancel,
                )
                .await
            }
        };
        p.close().await;
        s.close().await;
        if let Some(b) = broken {
            b.close().await;
        }
        Ok::<_, String>(r)
    });
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            // CI still gets its test report: a drill that could not connect failed.
            let failed = ocfo::drill::DrillReport {
                fault: Some(opts.fault),
                error: Some(format!("cannot connect: {e}")),
                max_failover_ms: opts.max_failover.as_millis() as u64,
                max_failback_ms: opts.max_failback.as_millis() as u64,
                ..Default::default()
            };
            write_junit(args.junit.as_deref(), &failed, &inv.name, &secrets);
            return ExitCode::FAILURE;
        }
    };
    if !write_junit(args.junit.as_deref(), &report, &inv.name, &secrets) {
        return ExitCode::FAILURE;
    }
    super::print_report(&report, report.ok, args.json, timeline)
}

/// Who must take over when the fault breaks `on`: the standby, or for a
/// chain's double fault standby2. Anything else says why not.
fn which_taker(inv: &ocfo::inventory::Inventory, on: &[String]) -> Result<Role, String> {
    let mut roles = Vec::new();
    for name in on {
        match Role::parse(name) {
            Some(r) if inv.roles().contains(&r) => roles.push(r),
            _ => {
                return Err(format!(
                    "--on {name}: not a node of this inventory ({})",
                    inv.roles()
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
        }
    }
    roles.sort();
    roles.dedup();
    match roles.as_slice() {
        [Role::Primary] => Ok(Role::Standby),
        [Role::Primary, Role::Standby] if inv.standby2.is_some() => Ok(Role::Standby2),
        _ => Err(format!(
            "--on {}: a drill breaks the primary (`--on primary`), or in a chain of three the primary and the standby (`--on primary,standby`); a fault on a standby alone fails nothing over (stop its host, e.g. `ocfo lab stop standby`, to see `ocfo status` report it)",
            on.join(",")
        )),
    }
}

/// The lab's user, when the inventory is a lab's with a chat world where both
/// bots live: the drill then also measures failover to the first answer.
#[cfg(target_os = "linux")]
fn user_side(
    inv: &ocfo::inventory::Inventory,
    out: OutputSettings,
) -> Option<ocfo::lab::world::client::WorldClient> {
    let lab = ocfo::lab::for_hosts(&inv.node(Role::Primary).host, &inv.node(Role::Standby).host)?;
    if !ocfo::lab::world::is_running(&lab) {
        return None;
    }
    if lab.standby_channel != ocfo::lab::StandbyChannel::Telegram {
        if !out.quiet {
            eprintln!("drill: lab `{}`'s standby uses Discord, which its chat world does not stand in for: measuring the machine's side only", lab.name);
        }
        return None;
    }
    Some(ocfo::lab::world::client::WorldClient::for_lab(&lab))
}

#[cfg(not(target_os = "linux"))]
fn user_side(_: &ocfo::inventory::Inventory, _: OutputSettings) -> Option<ocfo::user_side::Nobody> {
    None
}

/// Writes the JUnit report when asked; false (after saying why) if it cannot.
fn write_junit(
    path: Option<&std::path::Path>,
    report: &ocfo::drill::DrillReport,
    suite: &str,
    secrets: &ocfo::inventory::Secrets,
) -> bool {
    let Some(path) = path else {
        return true;
    };
    let xml = ocfo::drill::junit::junit(report, suite, &secrets.redactor());
    match ocfo::fsutil::write_atomic(path, xml.as_bytes(), 0o644) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", path.display());
            false
        }
    }
}
