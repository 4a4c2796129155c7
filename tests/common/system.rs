//! Helpers for system tests that need root and a lab.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub fn require_root_and_tools() {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    assert!(
        root,
        "system test prerequisite missing: root. Run `cargo test` as root (CI does), or deselect system tests with `cargo test --no-default-features`."
    );
    // The lab's own tools (debootstrap, systemd-nspawn, iptables, npm, ...)
    // are installed by `ocfo lab up` itself, as for a new user; the tests
    // also run plain `ssh`.
    super::tools::apt("ssh", "openssh-client");
}

pub fn ocfo(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_ocfo"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("ocfo runs");
    out
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn ok(args: &[&str]) -> String {
    let out = ocfo(args);
    assert!(
        out.status.success(),
        "`ocfo {}` failed:\n{}",
        args.join(" "),
        text(&out)
    );
    text(&out)
}

/// Every system test file's lab: its name and subnet. System tests run one
/// binary at a time, but a lab left by a failed run must never be another
/// test's, so each file has its own row. A new test file adds one row here
/// (the next free subnet) and calls `TestLab::up(file!())`.
pub const LABS: &[(&str, &str, &str)] = &[
    // (test file, lab name, subnet)
    ("tests/lab.rs", "tlab", "10.249.1.0/24"),
    ("tests/deploy.rs", "tdep", "10.249.2.0/24"),
    ("tests/failover.rs", "tfail", "10.249.3.0/24"),
    ("tests/drill.rs", "tdrill", "10.249.4.0/24"),
    ("tests/sudo.rs", "tsudo", "10.249.7.0/24"),
    ("tests/scanners.rs", "tscan", "10.249.10.0/24"),
    ("tests/user_tasks.rs", "ops", "10.231.6.0/24"),
    ("tests/monitor_fetch.rs", "fetch", "10.231.11.0/24"),
    // One file, one lab per release (`#suite`), run one after the other.
    ("tests/releases.rs#trixie", "trixie", "10.249.12.0/24"),
    ("tests/releases.rs#noble", "noble", "10.249.13.0/24"),
    ("tests/chain.rs", "tchain", "10.249.14.0/24"),
];

/// The lab name and subnet of a test file (`file!()`).
pub fn lab_for(test_file: &str) -> (&'static str, &'static str) {
    let row = LABS
        .iter()
        .find(|(file, _, _)| *file == test_file)
        .unwrap_or_else(|| panic!("{test_file} has no row in tests/common/system.rs LABS: add one with the next free subnet"));
    (row.1, row.2)
}

/// Polls `f` every 500 ms until it holds, and returns how long that took;
/// panics after `timeout`, naming `what`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("timed out after {timeout:?} waiting for: {what}");
}

/// A lab for one test file; `ocfo lab down` when dropped, whatever happened.
pub struct TestLab {
    pub name: String,
    pub dir: PathBuf,
}

impl TestLab {
    /// The lab of the test file `file!()` (its row in [`LABS`]).
    pub fn up(test_file: &str) -> TestLab {
        TestLab::up_with(test_file, &[])
    }

    /// With more `ocfo lab up` arguments (`--standby-channel discord`).
    pub fn up_with(test_file: &str, extra: &[&str]) -> TestLab {
        let (name, subnet) = lab_for(test_file);
        require_root_and_tools();
        let lab = TestLab {
            name: name.into(),
            dir: PathBuf::from(format!("/var/lib/ocfo/lab/{name}")),
        };
        TestLab::clear_leftover(name);
        let mut args = vec!["lab", "up", "--name", name, "--subnet", subnet];
        args.extend(extra);
        ok(&args);
        lab
    }

    /// Every secret value the lab holds: none may appear in any output.
    pub fn secret_values(&self) -> Vec<String> {
        let mut v: Vec<String> = [
            "secrets/gateway_token",
            "secrets/telegram_primary_token",
            "secrets/telegram_standby_token",
            "secrets/telegram_standby2_token",
            "secrets/discord_token",
            "secrets/model_key",
        ]
        .iter()
        .filter_map(|f| std::fs::read_to_string(self.path(f)).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
        if let Ok(key) = std::fs::read_to_string(self.path("workspace_deploy_key")) {
            v.extend(key.lines().nth(1).map(str::to_string));
        }
        v
    }

    /// `ocfo lab chat` as the lab's user: the answer's text.
    pub fn chat(&self, to: &str, message: &str) -> String {
        ok(&[
            "lab", "chat", "--name", &self.name, "--to", to, "--wait", "180s", message,
        ])
    }

    /// `ocfo lab transcript --json`.
    pub fn transcript(&self) -> Vec<serde_json::Value> {
        let out = ocfo(&["lab", "transcript", "--name", &self.name, "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `lab up` repairs and reuses a lab of that name; a test needs fresh
    /// hosts, not what an interrupted earlier run left deployed.
    pub fn clear_leftover(name: &str) {
        if Path::new(&format!("/var/lib/ocfo/lab/{name}/state.json")).exists() {
            eprintln!("a lab `{name}` was left from an earlier run: taking it down first");
            ok(&["lab", "down", "--name", name]);
        }
    }

    pub fn inventory(&self) -> String {
        self.dir.join("inventory.yaml").display().to_string()
    }

    pub fn address(&self, node: &str) -> String {
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(self.dir.join("state.json")).unwrap())
                .unwrap();
        state["hosts"][node]["address"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Plain OpenSSH with the lab key and strict host key checking against
    /// the lab's known_hosts: what an operator would type.
    fn ssh_command(&self, node: &str, script: &str) -> Command {
        let mut c = Command::new("ssh");
        c.args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=10",
            "-i",
        ])
        .arg(self.dir.join("id_ed25519"))
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            self.dir.join("known_hosts").display()
        ))
        .arg(format!("root@{}", self.address(node)))
        .arg(script);
        c
    }

    pub fn ssh(&self, node: &str, script: &str) -> Output {
        self.ssh_command(node, script).output().expect("ssh runs")
    }

    /// [`Self::ssh`] with `input` on the script's stdin: how a test hands
    /// a secret to a remote command without putting it in any argv.
    pub fn ssh_with_input(&self, node: &str, script: &str, input: &[u8]) -> Output {
        use std::io::Write;
        let mut child = self
            .ssh_command(node, script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("ssh runs");
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().expect("ssh runs")
    }

    /// The main PID of `unit` on `node` (`0` when it is not running).
    pub fn main_pid(&self, node: &str, unit: &str) -> String {
        self.ssh_ok(node, &format!("systemctl show -p MainPID --value {unit}"))
            .trim()
            .to_string()
    }

    /// The last `lines` of `unit`'s journal on `node`, for a failure's
    /// message (what OpenClaw or the monitor said when it went wrong).
    pub fn journal(&self, node: &str, unit: &str, lines: u32) -> String {
        let out = self.ssh(
            node,
            &format!("journalctl -u {unit} -n {lines} --no-pager -o short-precise"),
        );
        format!("--- {node}: journalctl -u {unit} ---\n{}", text(&out))
    }

    /// `ocfo drill ARGS --json`, which must pass: its report. On failure,
    /// the journals of `units` (node, unit) are printed before the panic.
    pub fn drill_ok(&self, args: &[&str], units: &[(&str, &str)]) -> serde_json::Value {
        let mut all = vec!["drill"];
        all.extend(args);
        all.push("--json");
        let out = ocfo(&all);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("drill --json:\n{}", text(&out)));
        if !(out.status.success() && report["ok"] == true) {
            for (node, unit) in units {
                eprintln!("{}", self.journal(node, unit, 150));
            }
            panic!("{report:#}\n{}", text(&out));
        }
        report
    }

    pub fn ssh_ok(&self, node: &str, script: &str) -> String {
        let out = self.ssh(node, script);
        assert!(
            out.status.success(),
            "{node}: `{script}` failed:\n{}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        Path::new(&self.dir).join(rel)
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        let out = ocfo(&["lab", "down", "--name", &self.name]);
        if !out.status.success() {
            eprintln!("lab down failed: {}", text(&out));
        }
    }
}

/// What `lab down` must restore: namespaces, links, firewall rules, mounts.
pub fn machine_snapshot() -> String {
    let mut s = String::new();
    for cmd in [
        "ip netns list",
        "ip -br link",
        "iptables -S",
        "iptables -t nat -S",
        "iptables -t raw -S",
        "cat /proc/self/mountinfo | awk '{print $5}' | sort",
    ] {
        let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
        s.push_str(&format!(
            "$ {cmd}\n{}\n",
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    s
}
