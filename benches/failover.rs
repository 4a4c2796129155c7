//! Failover benchmarks against a deployed lab pair (warm standby, default
//! monitor settings): drills of each fault, re-deploys that force a primary
//! gateway restart or make a hot config change (counting promotions and
//! gateway restarts), a switchover and back, and the warm standby's idle cost.
//!
//! Needs a deployed lab (root): `ocfo lab up --name perf && ocfo deploy
//! /var/lib/ocfo/lab/perf/inventory.yaml`, then
//! `OCFO_BENCH_INVENTORY=/var/lib/ocfo/lab/perf/inventory.yaml cargo bench --bench failover`.
//! The bench deploys a copy of the inventory whose only change is
//! `monitor.flap.max_promotions: 100`: drills back to back are not a
//! flapping primary (with the default, the third drill in 15 minutes pins).
//! `OCFO_BENCH_DRILLS` (default 5) drills per fault, `OCFO_BENCH_DEPLOYS`
//! (default 5) re-deploys of each kind; `OCFO_BENCH_ONLY=drills|turns|deploys|switchover|idle|workspace`;
//! `OCFO_BENCH_WRITES` (default 5) workspace writes timed to the remote;
//! `OCFO_BENCH_FAULTS=stop,kill,cut` (the default) picks the drills' faults;
//! `OCFO_BENCH_TURNS` (default 5) rounds of the no-failover reference turns.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn ocfo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ocfo"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("ocfo runs")
}

fn json(out: &Output, what: &str) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        eprintln!(
            "{what}: no JSON\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::process::exit(1)
    })
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

struct Lab {
    inventory: String,
    dir: PathBuf,
}

impl Lab {
    /// Plain OpenSSH to a lab node, as an operator would.
    fn ssh(&self, node: &str, script: &str) -> String {
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(self.dir.join("state.json")).unwrap())
                .unwrap();
        let addr = state["hosts"][node]["address"]
            .as_str()
            .unwrap()
            .to_string();
        let out = Command::new("ssh")
            .args(["-o", "BatchMode=yes", "-i"])
            .arg(self.dir.join("id_ed25519"))
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.dir.join("known_hosts").display()
            ))
            .arg(format!("root@{addr}"))
            .arg(script)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn status(&self) -> serde_json::Value {
        json(&ocfo(&["status", &self.inventory, "--json"]), "status")
    }

    fn promotions(&self) -> u64 {
        self.status()[1]["monitor"]["counters"]["promotions"]
            .as_u64()
            .unwrap_or(0)
    }

    fn gateway_pid(&self, node: &str) -> String {
        self.ssh(node, "systemctl show -p MainPID --value openclaw-gateway")
    }
}

/// The least time between two `kill` drills' starts beyond the drill itself
/// (about 60 s): two kills per OpenClaw's 5-minute breaker window.
const KILL_SPACING: Duration = Duration::from_secs(100);

fn drills(lab: &Lab, n: usize) {
    let faults = std::env::var("OCFO_BENCH_FAULTS").unwrap_or_else(|_| "stop,kill,cut".into());
    for fault in faults.split(',') {
        let (mut over, mut back, mut fallbacks) = (Vec::new(), Vec::new(), 0);
        let (mut answered, mut turn, mut remembered) = (Vec::new(), Vec::new(), Vec::new());
        let mut forgot = 0;
        let mut in_flight = std::collections::BTreeMap::<String, usize>::new();
        for i in 0..n {
            // OpenClaw's restart-loop breaker suppresses a gateway's channels
            // after 3 unclean boots within 5 minutes (every `kill` is one):
            // kills back to back would measure the breaker, not a failover.
            if fault == "kill" && i > 0 {
                std::thread::sleep(KILL_SPACING);
            }
            let out = ocfo(&[
                "drill",
                &lab.inventory,
                "--fault",
                fault,
                "--json",
                "--wait",
                "300s",
                "--max-failback",
                "10m",
            ]);
            let r = json(&out, "drill");
            if r["ok"] != true {
                eprintln!("drill {fault} failed: {r:#}");
                std::process::exit(1);
            }
            over.push(r["failover_ms"].as_f64().unwrap() / 1000.0);
            back.push(r["failback_ms"].as_f64().unwrap() / 1000.0);
            if let Some(a) = r["answered_ms"].as_f64() {
                answered.push(a / 1000.0);
                // The standby's agent turn: from fetching the ping to its answer.
                if let Some(f) = r["user"]["standby_fetched_ms"].as_f64() {
                    turn.push((a - f) / 1000.0);
                }
            }
            // The first answer quoting the word told to the primary before the fault.
            match r["user"]["remembered_ms"].as_f64() {
                Some(ms) => remembered.push(ms / 1000.0),
                None => forgot += usize::from(r["user"].is_object()),
            }
            fallbacks += usize::from(r["fallback_restart"] == true);
            if let Some(o) = r["user"]["before_fault"]["outcome"].as_str() {
                *in_flight.entry(o.to_string()).or_insert(0) += 1;
            }
        }
        let answered_line = if answered.is_empty() {
            "answered: no chat world".to_string()
        } else {
            format!(
                "answered p50 {:.1} s, p95 {:.1} s, max {:.1} s (of which the standby's agent turn p50 {:.1} s, p95 {:.1} s); remembered p50 {:.1} s, p95 {:.1} s, max {:.1} s, never {forgot}",
                pct(&mut answered, 0.5),
                pct(&mut answered, 0.95),
                pct(&mut answered, 1.0),
                pct(&mut turn, 0.5),
                pct(&mut turn, 0.95),
                pct(&mut remembered, 0.5),
                pct(&mut remembered, 0.95),
                pct(&mut remembered, 1.0)
            )
        };
        println!(
            "drill {fault} x{n}: {answered_line}; failover (channel started) p50 {:.1} s, p95 {:.1} s, max {:.1} s; failback p50 {:.1} s, p95 {:.1} s; live-switch fallbacks {fallbacks}; message in flight {in_flight:?}",
            pct(&mut over, 0.5),
            pct(&mut over, 0.95),
            pct(&mut over, 1.0),
            pct(&mut back, 0.5),
            pct(&mut back, 0.95)
        );
    }
}

/// The reference for `answered`: how long the primary itself takes to answer
/// with no failover at all, after a quiet 90 s (OpenClaw retires its session
/// workers after about a minute idle, so this is the turn a user gets after a
/// pause) and 3 s after that (warm).
fn turns(lab: &Lab, n: usize) {
    let name = lab.dir.file_name().unwrap().to_str().unwrap().to_string();
    let chat = |msg: &str| -> f64 {
        let out = ocfo(&[
            "lab", "chat", "--name", &name, "--wait", "120s", "--json", msg,
        ]);
        json(&out, "lab chat")["latency_ms"].as_f64().unwrap() / 1000.0
    };
    let (mut quiet, mut warm) = (Vec::new(), Vec::new());
    chat("bench: wake up");
    for i in 0..n {
        std::thread::sleep(Duration::from_secs(90));
        quiet.push(chat(&format!("bench: after a quiet 90 s, #{i}")));
        std::thread::sleep(Duration::from_secs(3));
        warm.push(chat(&format!("bench: 3 s later, #{i}")));
    }
    println!(
        "primary, no failover x{n}: answered after a quiet 90 s p50 {:.1} s, p95 {:.1} s, max {:.1} s; 3 s later p50 {:.1} s, p95 {:.1} s",
        pct(&mut quiet, 0.5),
        pct(&mut quiet, 0.95),
        pct(&mut quiet, 1.0),
        pct(&mut warm, 0.5),
        pct(&mut warm, 0.95)
    );
}

/// Re-deploys alternating between two variants of the inventory.
fn deploys(lab: &Lab, n: usize, kind: &str, a: &str, b: &str) {
    let path = Path::new(&lab.inventory).with_file_name("inventory-bench.yaml");
    let base = std::fs::read_to_string(&lab.inventory).unwrap();
    let promos = lab.promotions();
    let (mut restarts_p, mut restarts_s) = (0, 0);
    let mut walls = Vec::new();
    for i in 0..n {
        let text = if i % 2 == 0 {
            base.replace(a, b)
        } else {
            base.clone()
        };
        std::fs::write(&path, text).unwrap();
        let (pp, ps) = (lab.gateway_pid("primary"), lab.gateway_pid("standby"));
        let start = std::time::Instant::now();
        let out = ocfo(&["deploy", path.to_str().unwrap(), "-q"]);
        walls.push(start.elapsed().as_secs_f64());
        if !out.status.success() {
            eprintln!("deploy failed: {}", String::from_utf8_lossy(&out.stderr));
            std::process::exit(1);
        }
        // Long enough for any promotion the restart could have caused.
        std::thread::sleep(Duration::from_secs(10));
        restarts_p += usize::from(lab.gateway_pid("primary") != pp);
        restarts_s += usize::from(lab.gateway_pid("standby") != ps);
    }
    let _ = std::fs::remove_file(&path);
    ocfo(&["deploy", &lab.inventory, "-q"]);
    println!(
        "{kind} re-deploys x{n}: promotions {}, primary gateway restarts {restarts_p}, standby gateway restarts {restarts_s}; deploy wall p50 {:.1} s",
        lab.promotions() - promos,
        pct(&mut walls, 0.5)
    );
}

fn switchover(lab: &Lab) {
    let over = json(
        &ocfo(&["switchover", &lab.inventory, "--json"]),
        "switchover",
    );
    let back = json(
        &ocfo(&["switchover", &lab.inventory, "--back", "--json"]),
        "switchover --back",
    );
    for (what, r) in [("switchover", &over), ("switchover --back", &back)] {
        if r["ok"] != true {
            eprintln!("{what} failed: {r:#}");
            std::process::exit(1);
        }
        println!(
            "{what}: no node serving {:.1} s, both serving {:.1} s, took {:.1} s",
            r["no_serve_ms"].as_f64().unwrap() / 1000.0,
            r["overlap_ms"].as_f64().unwrap() / 1000.0,
            r["steps"]
                .as_array()
                .and_then(|s| s.last())
                .map_or(0.0, |s| s["at_ms"].as_f64().unwrap() / 1000.0)
        );
    }
}

/// RSS and CPU ticks of every process in each unit's cgroup (v2, or v1's
/// `systemd` hierarchy as in the lab's containers), where systemd's own
/// accounting may be off.
const UNIT_USAGE: &str = r#"for u in openclaw-gateway ocfo-monitor; do
  f=/sys/fs/cgroup/system.slice/$u.service/cgroup.procs
  [ -f "$f" ] || f=/sys/fs/cgroup/systemd/system.slice/$u.service/cgroup.procs
  rss=0; ticks=0
  for p in $(cat "$f" 2>/dev/null); do
    r=$(awk '/^VmRSS/ {print $2}' /proc/$p/status 2>/dev/null); rss=$((rss + ${r:-0}))
    t=$(awk '{print $14 + $15}' /proc/$p/stat 2>/dev/null); ticks=$((ticks + ${t:-0}))
  done
  echo "$rss $ticks $(getconf CLK_TCK)"
done"#;

fn idle(lab: &Lab) {
    let parse = |s: &str| -> Vec<(f64, f64, f64)> {
        s.lines()
            .map(|l| {
                let v: Vec<f64> = l
                    .split_whitespace()
                    .map(|x| x.parse().unwrap_or(0.0))
                    .collect();
                (v[0], v[1], v[2].max(1.0))
            })
            .collect()
    };
    let a = parse(&lab.ssh("standby", UNIT_USAGE));
    std::thread::sleep(Duration::from_secs(60));
    let b = parse(&lab.ssh("standby", UNIT_USAGE));
    for (i, unit) in ["gateway", "monitor"].iter().enumerate() {
        let cpu = (b[i].1 - a[i].1) / b[i].2;
        println!(
            "warm standby idle, {unit}: RSS {:.0} MiB, CPU {cpu:.2} s per minute ({:.1} % of a core)",
            b[i].0 / 1024.0,
            cpu / 60.0 * 100.0
        );
    }
}

/// Workspace RPO: how long after the agent writes a file it is on the
/// workspace remote (the lab's bare repository on this machine), `n`
/// writes spaced 8 s apart; then the watcher's cost idle for a minute and
/// under a storm of writes (one every 100 ms for 30 s).
fn workspace(lab: &Lab, n: usize) {
    let remote = lab.dir.join("workspace.git");
    let on_remote = |file: &str| -> bool {
        Command::new("git")
            .arg("--git-dir")
            .arg(&remote)
            .args(["cat-file", "-e", &format!("main:{file}")])
            .status()
            .is_ok_and(|s| s.success())
    };
    let write = |file: &str| {
        lab.ssh(
            "primary",
            &format!("runuser -u openclaw -- sh -c 'date > /home/openclaw/workspace/{file}'"),
        );
    };
    let mut lags = Vec::new();
    for i in 0..n {
        let file = format!("bench-rpo-{}-{i}.md", std::process::id());
        let t = std::time::Instant::now();
        write(&file);
        while !on_remote(&file) && t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        println!("workspace write {i}: on the remote after {ms:.0} ms");
        lags.push(ms);
        std::thread::sleep(Duration::from_secs(8));
    }
    if !lags.is_empty() {
        println!(
            "workspace RPO over {n} writes: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
            pct(&mut lags, 0.5),
            pct(&mut lags, 0.95),
            pct(&mut lags, 1.0)
        );
    }
    let usage = || -> (f64, u64) {
        let out = lab.ssh(
            "primary",
            "systemctl show -p CPUUsageNSec --value ocfo-workspace-watch; git -C /home/openclaw/workspace rev-list --count HEAD",
        );
        let mut l = out.lines();
        (
            l.next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 1e9,
            l.next().and_then(|v| v.parse().ok()).unwrap_or(0),
        )
    };
    let (cpu0, _) = usage();
    std::thread::sleep(Duration::from_secs(60));
    let (cpu1, commits1) = usage();
    println!("workspace watcher idle: {:.3} s CPU in 60 s", cpu1 - cpu0);
    let storm = "runuser -u openclaw -- sh -c 'i=0; while [ $i -lt 300 ]; do echo $i >> /home/openclaw/workspace/bench-storm.md; i=$((i+1)); sleep 0.1; done'";
    let t = std::time::Instant::now();
    lab.ssh("primary", storm);
    let storm_s = t.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(8));
    let (cpu2, commits2) = usage();
    println!(
        "workspace watcher under a storm (300 writes in {storm_s:.0} s): {} commits, {:.2} s CPU (the watcher and its pushes)",
        commits2 - commits1,
        cpu2 - cpu1
    );
}

fn main() {
    let Ok(inventory) = std::env::var("OCFO_BENCH_INVENTORY") else {
        eprintln!("set OCFO_BENCH_INVENTORY to a deployed lab's inventory (see the file's header); nothing measured");
        return;
    };
    let n = |k: &str| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5usize)
    };
    let only = std::env::var("OCFO_BENCH_ONLY").unwrap_or_default();
    let dir = Path::new(&inventory).parent().unwrap().to_path_buf();
    let bench_inventory = dir.join("inventory-bench-base.yaml");
    let text = std::fs::read_to_string(&inventory).expect("the inventory");
    std::fs::write(
        &bench_inventory,
        text.replace(
            "  hold_down: 60s\n",
            "  hold_down: 60s\n  flap: {max_promotions: 100, window: 15m}\n",
        ),
    )
    .unwrap();
    let lab = Lab {
        dir,
        inventory: bench_inventory.display().to_string(),
    };
    let out = ocfo(&["deploy", &lab.inventory, "-q"]);
    if !out.status.success() {
        eprintln!("deploy failed: {}", String::from_utf8_lossy(&out.stderr));
        std::process::exit(1);
    }
    let run = |what: &str| only.is_empty() || only == what;
    if run("idle") {
        idle(&lab);
    }
    if run("drills") {
        drills(&lab, n("OCFO_BENCH_DRILLS"));
    }
    if run("turns") {
        turns(&lab, n("OCFO_BENCH_TURNS"));
    }
    if run("deploys") {
        let d = n("OCFO_BENCH_DEPLOYS");
        deploys(
            &lab,
            d,
            "restart-class (gateway environment)",
            "  env: {}",
            "  env: {LAB_BENCH: \"1\"}",
        );
        deploys(
            &lab,
            d,
            "hot (model fallbacks)",
            "fallbacks: [anthropic/claude-sonnet-4-5]",
            "fallbacks: [anthropic/claude-haiku-4-5]",
        );
    }
    if run("switchover") {
        switchover(&lab);
    }
    if run("workspace") {
        workspace(&lab, n("OCFO_BENCH_WRITES"));
    }
}
