//! No-op re-deploy of both lab hosts: wall time of `ocfo deploy` when nothing
//! needs to change (the common case for a converged pair).
//!
//! Needs a deployed lab (root): `ocfo lab up && ocfo deploy <inventory>`, then
//! `OCFO_BENCH_INVENTORY=/var/lib/ocfo/lab/lab/inventory.yaml cargo bench --bench deploy`.

use std::process::Command;
use std::time::{Duration, Instant};

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
    let mut times: Vec<Duration> = Vec::new();
    for i in 0..=runs {
        let start = Instant::now();
        let out = Command::new(exe)
            .args(["deploy", &inventory, "-q"])
            .output()
            .expect("ocfo runs");
        let took = start.elapsed();
        if !out.status.success() {
            eprintln!("run {i} failed:\n{}", String::from_utf8_lossy(&out.stderr));
            std::process::exit(1);
        }
        if i > 0 {
            times.push(took); // the first run warms caches
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "no-op deploy of both hosts, {runs} runs: min {:.0} ms, median {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        ms(times[0]),
        ms(p(0.5)),
        ms(p(0.95)),
        ms(times[times.len() - 1])
    );
}
