//! `ocfo lab`: two local Debian hosts for trying and testing ocfo.

use std::path::PathBuf;
use std::process::ExitCode;

use ocfo::lab;

use super::Output;

#[derive(Debug, clap::Args)]
pub struct LabArgs {
    /// Which lab (1-8 lower-case letters and digits).
    #[arg(long, global = true, default_value = "lab")]
    pub name: String,
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Boot (or repair) the lab's two hosts and write its inventory.
    Up {
        /// Where to write the inventory, SSH key and known_hosts (default: /var/lib/ocfo/lab/NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The lab's /24, e.g. 10.231.0.0/24 (default: derived from the name).
        #[arg(long)]
        subnet: Option<String>,
        /// Rebuild the cached base image.
        #[arg(long)]
        refresh: bool,
    },
    /// Hosts, addresses, running or not.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Stop the hosts and remove everything the lab created on this machine.
    Down {
        /// Also drop the cached base image and Node.js mirror.
        #[arg(long)]
        purge: bool,
    },
    /// Power a host off (its disk survives).
    Stop { node: String },
    /// Power a host on again.
    Start { node: String },
    /// The whole story on this machine: lab up, deploy (real OpenClaw from
    /// npm), a failover drill, status. Prints the failover timeline.
    Demo {
        /// The fault the drill injects.
        #[arg(long, value_enum, default_value = "stop")]
        fault: ocfo::drill::Fault,
    },
    /// Drop all traffic between two hosts.
    Cut { a: String, b: String },
    /// Restore traffic between all hosts.
    Heal,
}

pub fn run(args: LabArgs, out: Output) -> ExitCode {
    let name = args.name.as_str();
    let result = match args.command {
        LabCommand::Up {
            dir,
            subnet,
            refresh,
        } => {
            let opts = lab::UpOptions {
                name: name.to_string(),
                dir,
                subnet,
                refresh,
            };
            lab::up(&opts).map(|r| {
                if !out.quiet {
                    let l = &r.lab;
                    println!(
                        "lab `{}` is up in {:.1}s ({}):",
                        l.name, r.seconds, l.subnet
                    );
                    for h in l.hosts.values() {
                        println!("  {:<8} {}", h.node, h.address);
                    }
                    println!("inventory:   {}", l.inventory_path().display());
                    println!(
                        "ssh:         ssh -i {} -o UserKnownHostsFile={} root@{}",
                        l.key_path().display(),
                        l.known_hosts_path().display(),
                        l.host("primary").map(|h| h.address.as_str()).unwrap_or("")
                    );
                    println!("next:        ocfo deploy {}", l.inventory_path().display());
                }
            })
        }
        LabCommand::Status { json } => lab::status(name).map(|s| {
            if json {
                println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
            } else {
                println!(
                    "lab `{}` ({}), inventory {}",
                    s.name,
                    s.subnet,
                    s.inventory.display()
                );
                for h in &s.hosts {
                    let state = match (h.running, h.ssh) {
                        (true, true) => "running, ssh up",
                        (true, false) => "running, ssh not answering",
                        _ => "stopped",
                    };
                    println!("  {:<8} {:<14} {state}", h.node, h.address);
                }
                for (a, b) in &s.cuts {
                    println!("  cut: {a} <-/-> {b}");
                }
            }
        }),
        LabCommand::Down { purge } => lab::down(name, purge).map(|_| {
            if !out.quiet {
                println!(
                    "lab `{name}` is down{}",
                    if purge { " and the cache purged" } else { "" }
                );
            }
        }),
        LabCommand::Demo { fault } => return demo(name, fault),
        LabCommand::Stop { node } => lab::stop(name, &node),
        LabCommand::Start { node } => lab::start(name, &node),
        LabCommand::Cut { a, b } => lab::cut(name, &a, &b),
        LabCommand::Heal => lab::heal(name),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs each step as this same binary, so what the demo shows is exactly what
/// a user typing the commands would see.
fn demo(name: &str, fault: ocfo::drill::Fault) -> ExitCode {
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("error: cannot find the running ocfo binary");
        return ExitCode::FAILURE;
    };
    let inventory = ocfo::lab::labs_dir().join(name).join("inventory.yaml");
    let inv = inventory.display().to_string();
    let fault = format!("{fault:?}").to_lowercase();
    let steps: Vec<(&str, Vec<&str>)> = vec![
        (
            "boot the lab: two Debian hosts with systemd",
            vec!["lab", "up", "--name", name],
        ),
        (
            "deploy both hosts (hardening, Node, OpenClaw from npm, monitor)",
            vec!["deploy", &inv],
        ),
        ("re-deploy: nothing to change", vec!["deploy", &inv, "-q"]),
        (
            "drill: break the primary and measure the failover",
            vec!["drill", &inv, "--fault", &fault, "--wait", "300s"],
        ),
        ("status of the pair", vec!["status", &inv]),
    ];
    for (i, (what, args)) in steps.iter().enumerate() {
        println!(
            "\n== {}/{}: {what}\n$ ocfo {}",
            i + 1,
            steps.len(),
            args.join(" ")
        );
        let status = std::process::Command::new(&exe).args(args).status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("error: step {} failed: ocfo {}", i + 1, args.join(" "));
            return ExitCode::FAILURE;
        }
    }
    println!("\nThe lab stays up: `ocfo lab status --name {name}`, `ocfo lab down --name {name}`.");
    ExitCode::SUCCESS
}
