#![cfg(feature = "system-tests")]
//! `ocfo lab` for real: two Debian hosts booted with systemd-nspawn.

mod common;

use common::system::*;

#[test]
fn lab_lifecycle() {
    require_root_and_tools();
    let (name, subnet) = lab_for(file!());
    TestLab::clear_leftover(name);
    let before = machine_snapshot();
    {
        let lab = TestLab::up(file!());
        let (p, s) = (lab.address("primary"), lab.address("standby"));

        // Both hosts booted systemd and answer plain OpenSSH with verified host keys.
        for node in ["primary", "standby"] {
            let state = lab.ssh_ok(node, "systemctl is-system-running || true");
            assert!(
                matches!(state.trim(), "running" | "degraded"),
                "{node}: {state}"
            );
            assert_eq!(
                lab.ssh_ok(node, "hostname").trim(),
                format!("{}-{node}", lab.name)
            );
        }
        // The generated inventory validates.
        ok(&["validate", &lab.inventory()]);

        // The hosts reach each other on the lab network.
        lab.ssh_ok("primary", &format!("timeout 5 bash -c '</dev/tcp/{s}/22'"));
        // ...and the outside through NAT: apt works.
        lab.ssh_ok("standby", "apt-get update -qq");

        // Cut and heal.
        ok(&["lab", "cut", "primary", "standby", "--name", &lab.name]);
        let cut = lab.ssh("primary", &format!("timeout 3 bash -c '</dev/tcp/{s}/22'"));
        assert!(!cut.status.success(), "traffic still flows after cut");
        assert!(ok(&["lab", "status", "--name", &lab.name]).contains("cut: primary"));
        ok(&["lab", "heal", "--name", &lab.name]);
        lab.ssh_ok("primary", &format!("timeout 5 bash -c '</dev/tcp/{s}/22'"));
        lab.ssh_ok("standby", &format!("timeout 5 bash -c '</dev/tcp/{p}/22'"));

        // Power cycle keeps the disk.
        lab.ssh_ok("standby", "echo kept > /root/marker && sync");
        ok(&["lab", "stop", "standby", "--name", &lab.name]);
        assert!(ok(&["lab", "status", "--name", &lab.name]).contains("stopped"));
        ok(&["lab", "start", "standby", "--name", &lab.name]);
        assert_eq!(lab.ssh_ok("standby", "cat /root/marker").trim(), "kept");

        // A memory cap like the guide's 2 GB VPS: kept in the lab's state,
        // applied when a host boots, enforced on the host's whole scope.
        ok(&["lab", "up", "--name", &lab.name, "--memory-max", "1536M"]);
        ok(&["lab", "stop", "standby", "--name", &lab.name]);
        ok(&["lab", "start", "standby", "--name", &lab.name]);
        // The limit on the host's memory cgroup (cgroup v1 or v2, as this
        // machine mounts it), or on a parent of it.
        let cap = |node: &str| -> Option<String> {
            let pid = std::process::Command::new("pgrep")
                .args([
                    "-o",
                    "-f",
                    "--",
                    &format!("--machine=ocfo-{}-{node}", lab.name),
                ])
                .output()
                .unwrap();
            let pid = String::from_utf8_lossy(&pid.stdout).trim().to_string();
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
            let (mut dir, file) = match cgroup
                .lines()
                .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
            {
                Some(p) => (
                    std::path::PathBuf::from(format!("/sys/fs/cgroup/memory{p}")),
                    "memory.limit_in_bytes",
                ),
                None => {
                    let p = cgroup.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
                    (
                        std::path::PathBuf::from(format!("/sys/fs/cgroup{p}")),
                        "memory.max",
                    )
                }
            };
            loop {
                if let Ok(m) = std::fs::read_to_string(dir.join(file)) {
                    let m = m.trim();
                    // v1 writes "no limit" as a huge number.
                    if m != "max" && m.parse::<u64>().is_ok_and(|b| b < 1 << 50) {
                        return Some(m.to_string());
                    }
                }
                if !dir.pop() || dir.as_os_str().len() <= "/sys/fs/cgroup".len() {
                    return None;
                }
            }
        };
        assert_eq!(cap("standby").as_deref(), Some("1610612736"));
        // The primary kept running, uncapped, as it booted.
        assert_ne!(cap("primary").as_deref(), Some("1610612736"));
        assert_eq!(lab.ssh_ok("standby", "cat /root/marker").trim(), "kept");
        let bad = ocfo(&["lab", "up", "--name", &lab.name, "--memory-max", "2 G"]);
        assert!(!bad.status.success(), "a bad size was accepted");
        assert!(text(&bad).contains("--memory-max `2 G`"), "{}", text(&bad));

        // A second `up` leaves one healthy lab.
        ok(&["lab", "up", "--name", &lab.name, "--subnet", subnet]);
        let status = ok(&["lab", "status", "--name", &lab.name, "--json"]);
        let doc: serde_json::Value = serde_json::from_str(
            status
                .lines()
                .take_while(|l| !l.starts_with("warning"))
                .collect::<Vec<_>>()
                .join("\n")
                .as_str(),
        )
        .unwrap();
        let hosts = doc["hosts"].as_array().unwrap();
        assert_eq!(hosts.len(), 2);
        assert!(
            hosts
                .iter()
                .all(|h| h["running"] == true && h["ssh"] == true),
            "{doc}"
        );
    }
    // `lab down` (the guard's drop) leaves the machine as it was.
    let after = machine_snapshot();
    assert_eq!(before, after, "lab down left something behind");
}
