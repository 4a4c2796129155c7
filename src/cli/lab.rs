//! `ocfo lab`: two local Debian hosts for trying and testing ocfo.

use std::path::PathBuf;
use std::process::ExitCode;

use ocfo::lab;

use super::OutputSettings;

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
    /// Boot (or repair) the lab's hosts and write its inventory.
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
        /// The standby's channel: a second Telegram bot (chats both ways), or
        /// Discord (the plugin path; a fake token that never connects).
        #[arg(long, value_enum)]
        standby_channel: Option<lab::StandbyChannel>,
        /// Cap each host's memory, like a small VPS (systemd's MemoryMax:
        /// 2G, 1536M); applies when a host boots.
        #[arg(long)]
        memory_max: Option<String>,
        /// The hosts' release: Debian 12, Debian 13, or Ubuntu 24.04 (the
        /// guide's); chosen when the lab is created (default bookworm).
        #[arg(long, value_enum)]
        suite: Option<lab::Suite>,
        /// 2 hosts (primary, standby) or 3 (a chain: standby2 serves when
        /// both others are down); chosen when the lab is created (default 2).
        #[arg(long, value_parser = clap::value_parser!(u8).range(2..=3))]
        nodes: Option<u8>,
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
    /// Write to a node's bot as the lab's allowlisted user and print its answer.
    Chat {
        /// Whose bot: the primary's, the standby's (or standby2's).
        #[arg(long, default_value = "primary")]
        to: String,
        /// How long to wait for the answer (e.g. 30s, 2m).
        #[arg(long, default_value = "60s", value_parser = parse_wait)]
        wait: std::time::Duration,
        #[arg(long)]
        json: bool,
        /// The message.
        message: String,
    },
    /// Every message each bot received and sent, with timestamps.
    Transcript {
        #[arg(long)]
        json: bool,
        /// Only the messages of the last DURATION (e.g. 10m).
        #[arg(long, value_parser = parse_wait)]
        since: Option<std::time::Duration>,
    },
    /// Run the lab's chat world in the foreground (`lab up` starts it).
    #[command(hide = true)]
    World,
    /// Restore traffic between all hosts.
    Heal,
}

pub fn run(args: LabArgs, out: OutputSettings) -> ExitCode {
    let name = args.name.as_str();
    let result = match args.command {
        LabCommand::Up {
            dir,
            subnet,
            refresh,
            standby_channel,
            memory_max,
            suite,
            nodes,
        } => {
            let opts = lab::UpOptions {
                name: name.to_string(),
                dir,
                subnet,
                refresh,
                standby_channel,
                memory_max,
                suite,
                nodes: nodes.map(usize::from),
            };
            lab::up(&opts).map(|r| {
                if !out.quiet {
                    let l = &r.lab;
                    println!(
                        "lab `{}` is up in {:.1}s ({}, {}):",
                        l.name,
                        r.seconds,
                        l.subnet,
                        l.suite.release()
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
                    "lab `{}` ({}, {}), inventory {}",
                    s.name,
                    s.subnet,
                    s.suite.release(),
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
                match &s.world {
                    None => println!("  chat world: not running (`ocfo lab up` starts it)"),
                    Some(bots) => {
                        println!("  chat world: running");
                        for b in bots {
                            let poll = match (b.polling, b.last_poll_ms_ago) {
                                (true, _) => "polling".to_string(),
                                (false, Some(ms)) => {
                                    format!("last poll {:.1}s ago", ms as f64 / 1000.0)
                                }
                                (false, None) => "never polled".to_string(),
                            };
                            println!(
                                "    @{:<24} {:<8} {poll}, {} waiting",
                                b.username, b.node, b.pending_updates
                            );
                        }
                    }
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
        LabCommand::Chat {
            to,
            wait,
            json,
            message,
        } => return chat(name, &to, wait, json, &message),
        LabCommand::Transcript { json, since } => lab::transcript(name).map(|mut lines| {
            if let Some(d) = since {
                let from = ocfo::clock::unix_ms().saturating_sub(d.as_millis() as u64);
                lines.retain(|l| l.at_ms >= from);
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&lines).unwrap_or_default()
                );
            } else {
                print!("{}", lab::world::client::transcript_text(&lines));
            }
        }),
        LabCommand::World => lab::serve_world(name),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    ocfo::inventory::units::parse_duration(s)
}

/// `lab chat`: the answer's text on stdout (or JSON); exit 1 with the
/// reason when none comes in time.
fn chat(name: &str, to: &str, wait: std::time::Duration, json: bool, message: &str) -> ExitCode {
    match lab::chat(name, to, message, wait) {
        Ok(reply) => {
            if json {
                let mut v = serde_json::to_value(&reply).unwrap_or_default();
                v["latency_ms"] = reply.latency_ms().into();
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                for a in &reply.answers {
                    println!("{}", a.text);
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One step of the demo: says what, runs `ocfo ARGS`, false if it failed.
fn demo_step(exe: &std::path::Path, n: usize, of: usize, what: &str, args: &[&str]) -> bool {
    println!("\n== {n}/{of}: {what}\n$ ocfo {}", args.join(" "));
    let status = std::process::Command::new(exe).args(args).status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("error: step {n} failed: ocfo {}", args.join(" "));
        return false;
    }
    true
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
    let started = std::time::Instant::now();
    let steps: Vec<(&str, Vec<&str>)> = vec![
        (
            "boot the lab: two Debian hosts with systemd, and a chat world (a Telegram Bot API and a model stand-in)",
            vec!["lab", "up", "--name", name],
        ),
        (
            "deploy both hosts (hardening, Node, OpenClaw from npm, monitor): a Telegram bot on each",
            vec!["deploy", &inv],
        ),
        ("re-deploy: nothing to change", vec!["deploy", &inv, "-q"]),
        (
            "the user writes to the primary's bot",
            vec!["lab", "chat", "--name", name, "--wait", "180s", "Hello! Please remember the word kumquat."],
        ),
        (
            "drill: break the primary; the user keeps writing, to the standby's bot, which continues the primary's conversation",
            vec!["drill", &inv, "--fault", &fault, "--wait", "300s"],
        ),
    ];
    for (i, (what, args)) in steps.iter().enumerate() {
        if !demo_step(&exe, i + 1, steps.len() + 2, what, args) {
            return ExitCode::FAILURE;
        }
    }
    let since = format!("{}s", started.elapsed().as_secs() + 1);
    let tail: Vec<(&str, Vec<&str>)> = vec![
        (
            "the conversation as the user saw it: the answer, the standby's announcement, its answers, its word that it has the conversation back, the failback message",
            vec!["lab", "transcript", "--name", name, "--since", &since],
        ),
        ("status of the pair", vec!["status", &inv]),
    ];
    for (i, (what, args)) in tail.iter().enumerate() {
        if !demo_step(
            &exe,
            steps.len() + i + 1,
            steps.len() + tail.len(),
            what,
            args,
        ) {
            return ExitCode::FAILURE;
        }
    }
    println!("\nThe lab stays up: `ocfo lab status --name {name}`, `ocfo lab down --name {name}`.");
    ExitCode::SUCCESS
}
