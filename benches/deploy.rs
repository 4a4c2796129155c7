//! No-op re-deploy of both lab hosts: wall time of `ocfo deploy` when nothing
//! needs to change (the common case for a converged pair), side by side with
//! the same no-op through a passwordless-sudo login and a bare OpenSSH login.
//!
//! Needs a deployed lab (root): `ocfo lab up && ocfo deploy <inventory>`, then
//! `OCFO_BENCH_INVENTORY=/var/lib/ocfo/lab/lab/inventory.yaml cargo bench --bench deploy`.
//! Optional, measured in the same runs (interleaved, so load affects all
//! alike): `OCFO_BENCH_SUDO_INVENTORY` (the same lab deployed with
//! `ssh.user` a NOPASSWD sudo user) and `OCFO_BENCH_SSH` (a shell command,
//! e.g. `ssh -i KEY -o UserKnownHostsFile=KH root@HOST true`).
//! `OCFO_BENCH_ARGS` adds arguments to every deploy: the sshd drop-in differs
//! between a root and a sudo login, so comparing both on one lab needs
//! `--skip-tags ssh` (one task fewer for both).

use std::process::Command;
use std::time::{Duration, Instant};

struct Case {
    label: String,
    command: Command,
    times: Vec<Duration>,
}

fn extra_args() -> Vec<String> {
    std::env::var("OCFO_BENCH_ARGS")
        .map(|a| a.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

fn deploy_case(label: &str, exe: &str, inventory: &str) -> Case {
    let mut command = Command::new(exe);
    command.args(["deploy", inventory, "-q"]).args(extra_args());
    Case {
        label: label.into(),
        command,
        times: Vec::new(),
    }
}

/// SSH round trips per host of one no-op run (`deploy --json`).
fn round_trips(exe: &str, inventory: &str) -> String {
    let out = Command::new(exe)
        .args(["deploy", inventory, "--json"])
        .args(extra_args())
        .output()
        .expect("ocfo runs");
    let json: serde_json::Value = match serde_json::from_slice(&out.stdout) {
        Ok(j) => j,
        Err(_) => return "?".into(),
    };
    json["hosts"]
        .as_array()
        .map(|hosts| {
            hosts
                .iter()
                .map(|h| format!("{} {}", h["node"].as_str().unwrap_or("?"), h["round_trips"]))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn main() {
    let Ok(inventory) = std::env::var("OCFO_BENCH_INVENTORY") else {
        eprintln!("set OCFO_BENCH_INVENTORY to a deployed lab's inventory (see the file's header); nothing measured");
        return;
    };
    let runs: usize = std::env::var("OCFO_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let exe = env!("CARGO_BIN_EXE_ocfo");
    let sudo = std::env::var("OCFO_BENCH_SUDO_INVENTORY").ok();
    let mut cases = vec![deploy_case(
        "no-op deploy of both hosts (root)",
        exe,
        &inventory,
    )];
    if let Some(sudo) = &sudo {
        cases.push(deploy_case("no-op deploy of both hosts (sudo)", exe, sudo));
    }
    if let Ok(ssh) = std::env::var("OCFO_BENCH_SSH") {
        let mut command = Command::new("sh");
        command.args(["-c", &ssh]);
        cases.push(Case {
            label: format!("`{ssh}`"),
            command,
            times: Vec::new(),
        });
    }
    for i in 0..=runs {
        for case in &mut cases {
            let start = Instant::now();
            let out = case.command.output().expect("the command runs");
            let took = start.elapsed();
            if !out.status.success() {
                eprintln!(
                    "{}: run {i} failed:\n{}",
                    case.label,
                    String::from_utf8_lossy(&out.stderr)
                );
                std::process::exit(1);
            }
            if i > 0 {
                case.times.push(took); // the first run warms caches
            }
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for case in &mut cases {
        let times = &mut case.times;
        times.sort();
        let p = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "{}, {runs} runs: min {:.0} ms, median {:.0} ms, p95 {:.0} ms, max {:.0} ms",
            case.label,
            ms(times[0]),
            ms(p(0.5)),
            ms(p(0.95)),
            ms(times[times.len() - 1])
        );
    }
    println!("round trips (root): {}", round_trips(exe, &inventory));
    if let Some(sudo) = &sudo {
        println!("round trips (sudo): {}", round_trips(exe, sudo));
    }
}
