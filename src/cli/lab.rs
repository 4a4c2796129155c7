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
