#![cfg(feature = "system-tests")]
//! The usual VPS setup: a non-root login with passwordless sudo. A login
//! whose sudo wants a password is refused before anything changes; with
//! NOPASSWD sudo the first deploy converges, the re-deploy changes nothing,
//! drift is repaired, and `ocfo status` works. The first deploy turns root's
//! SSH login off (`PermitRootLogin no` for a non-root login), so after it the
//! test reaches the hosts as `admin` with sudo, as an operator would.

mod common;

use std::process::{Command, Output};

use common::system::*;

const SETUP: &str = r#"set -e
for u in admin nopw; do
  id "$u" >/dev/null 2>&1 || useradd -m -s /bin/bash "$u"
  usermod -p '*' "$u"
  install -d -m 700 -o "$u" -g "$u" "/home/$u/.ssh"
  install -m 600 -o "$u" -g "$u" /root/.ssh/authorized_keys "/home/$u/.ssh/authorized_keys"
done
echo 'admin ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/admin
echo 'nopw ALL=(ALL) ALL' > /etc/sudoers.d/nopw
chmod 440 /etc/sudoers.d/admin /etc/sudoers.d/nopw"#;

fn inventory_as(lab: &TestLab, user: &str) -> String {
    let text = std::fs::read_to_string(lab.inventory()).unwrap();
    assert!(text.contains("\n  user: root\n"), "{text}");
    let text = text.replace("\n  user: root\n", &format!("\n  user: {user}\n"));
    let path = lab.path(&format!("inventory-{user}.yaml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// OpenSSH as `admin`, the script run with sudo.
fn admin_ssh(lab: &TestLab, node: &str, script: &str) -> String {
    let out: Output = Command::new("ssh")
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-i",
        ])
        .arg(lab.path("id_ed25519"))
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            lab.path("known_hosts").display()
        ))
        .arg(format!("admin@{}", lab.address(node)))
        .arg(format!("sudo -n sh -c '{script}'"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{node}: {script}:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn deploy(inv: &str) -> (i32, serde_json::Value, String) {
    let out = ocfo(&["deploy", inv, "--json"]);
    let all = text(&out);
    let json = serde_json::from_str(&String::from_utf8_lossy(&out.stdout))
        .unwrap_or_else(|e| panic!("deploy --json printed no JSON ({e}):\n{all}"));
    (out.status.code().unwrap_or(-1), json, all)
}

fn changed(json: &serde_json::Value) -> Vec<String> {
    let mut v = Vec::new();
    for host in json["hosts"].as_array().unwrap() {
        for t in host["tasks"].as_array().unwrap() {
            if t["status"] == "changed" {
                v.push(format!("{}: {}", host["node"], t["task"]));
            }
        }
    }
    v
}

#[test]
fn deploy_with_a_passwordless_sudo_login() {
    let lab = TestLab::up(file!());
    for node in ["primary", "standby"] {
        lab.ssh_ok(node, SETUP);
    }

    // sudo wants a password: a clear error per host, nothing changed.
    let nopw = inventory_as(&lab, "nopw");
    let out = ocfo(&["deploy", &nopw]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("nopw@") && t.contains("passwordless sudo is not available"),
        "{t}"
    );
    assert!(t.contains("a password is required"), "{t}");
    for node in ["primary", "standby"] {
        let left = lab.ssh_ok(
            node,
            "ls -d /etc/openclaw /etc/ssh/sshd_config.d/*ocfo* 2>/dev/null; true",
        );
        assert_eq!(left.trim(), "", "{node}: the refused deploy changed {left}");
    }

    // NOPASSWD sudo: the first deploy converges both hosts.
    let admin = inventory_as(&lab, "admin");
    let (code, json, all) = deploy(&admin);
    assert_eq!(code, 0, "{all}");
    // The operator is not locked out: admin still logs in and has sudo.
    for node in ["primary", "standby"] {
        assert_eq!(admin_ssh(&lab, node, "id -u").trim(), "0");
    }
    assert!(!changed(&json).is_empty());

    // The re-deploy changes nothing and reports its round trips.
    let (code, json, all) = deploy(&admin);
    assert_eq!(code, 0, "{all}");
    assert_eq!(changed(&json), Vec::<String>::new(), "{all}");
    for host in json["hosts"].as_array().unwrap() {
        assert!(host["round_trips"].as_u64().unwrap_or(0) > 0, "{host}");
    }

    // Drift: the firewall off on the primary; the deploy turns it back on.
    admin_ssh(&lab, "primary", "ufw disable");
    let (code, json, all) = deploy(&admin);
    assert_eq!(code, 0, "{all}");
    let fixed = changed(&json);
    assert!(
        !fixed.is_empty() && fixed.iter().all(|c| c.starts_with("\"primary\"")),
        "{fixed:?}"
    );
    assert!(admin_ssh(&lab, "primary", "ufw status").contains("Status: active"));

    let status = ok(&["status", &admin]);
    assert!(
        status.contains("primary") && status.contains("standby"),
        "{status}"
    );
}
