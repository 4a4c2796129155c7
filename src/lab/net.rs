//! The lab network: a bridge on the machine, one network namespace per host
//! joined by a veth pair, NAT to the outside, and cuts between hosts.

use super::sys::{other, sh, succeeds, LabError};
use super::LabState;

fn comment(lab: &LabState) -> String {
    format!("ocfo-lab:{}", lab.name)
}

/// iptables rules ocfo adds on the machine: (table, chain, rule).
fn machine_rules(lab: &LabState) -> Vec<(&'static str, &'static str, Vec<String>)> {
    let c = comment(lab);
    let words = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    vec![
        (
            "nat",
            "POSTROUTING",
            words(&format!(
                "-s {} ! -o {} -m comment --comment {c} -j MASQUERADE",
                lab.subnet, lab.bridge
            )),
        ),
        // The chat world's stand-ins listen on the bridge's address: only
        // the lab's hosts (on the bridge) and this machine itself may reach
        // them, not the rest of the network the machine is on.
        (
            "filter",
            "INPUT",
            words(&format!(
                "-d {} -p tcp -m multiport --dports {},{} ! -i {} -m addrtype ! --src-type LOCAL -m comment --comment {c} -j DROP",
                bridge_address(lab),
                super::world::TELEGRAM_PORT,
                super::world::MODEL_PORT,
                lab.bridge
            )),
        ),
        // Hosts forward through the machine even where FORWARD's policy is DROP.
        (
            "filter",
            "FORWARD",
            words(&format!(
                "-i {} -m comment --comment {c} -j ACCEPT",
                lab.bridge
            )),
        ),
        (
            "filter",
            "FORWARD",
            words(&format!(
                "-o {} -m comment --comment {c} -j ACCEPT",
                lab.bridge
            )),
        ),
    ]
}

fn iptables(table: &str, op: &str, chain: &str, rule: &[String]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "iptables".into(),
        "-w".into(),
        "-t".into(),
        table.into(),
        op.into(),
        chain.into(),
    ];
    v.extend(rule.iter().cloned());
    v
}

fn run_words(words: &[String]) -> Result<(), LabError> {
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    sh(&refs).map(|_| ())
}

fn ok_words(words: &[String]) -> bool {
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    succeeds(&refs)
}

pub fn bridge_address(lab: &LabState) -> String {
    format!("{}.1", lab.prefix)
}

pub fn ensure(lab: &LabState) -> Result<(), LabError> {
    if !succeeds(&["ip", "link", "show", &lab.bridge]) {
        sh(&["ip", "link", "add", &lab.bridge, "type", "bridge"])?;
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", bridge_address(lab)),
            "dev",
            &lab.bridge,
        ])?;
    }
    sh(&["ip", "link", "set", &lab.bridge, "up"])?;
    sh(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
    for (table, chain, rule) in machine_rules(lab) {
        if !ok_words(&iptables(table, "-C", chain, &rule)) {
            run_words(&iptables(table, "-A", chain, &rule))?;
        }
    }
    for h in lab.hosts.values() {
        if !succeeds(&["ip", "netns", "exec", &h.netns, "true"]) {
            let _ = sh(&["ip", "netns", "del", &h.netns]);
            sh(&["ip", "netns", "add", &h.netns])?;
        }
        // A veth left from a lab torn down a moment ago can still exist while
        // its old namespace dies; its peer is not in this host's namespace.
        if succeeds(&["ip", "link", "show", &h.veth])
            && !succeeds(&["ip", "-n", &h.netns, "link", "show", "eth0"])
        {
            let _ = sh(&["ip", "link", "del", &h.veth]);
        }
        if !succeeds(&["ip", "link", "show", &h.veth]) {
            sh(&[
                "ip", "link", "add", &h.veth, "type", "veth", "peer", "name", "eth0", "netns",
                &h.netns,
            ])?;
        }
        sh(&["ip", "link", "set", &h.veth, "master", &lab.bridge, "up"])?;
        let addrs =
            super::sys::stdout(&["ip", "-n", &h.netns, "-4", "addr", "show", "dev", "eth0"])?;
        if !addrs.contains(&format!("inet {}/24", h.address)) {
            sh(&[
                "ip",
                "-n",
                &h.netns,
                "addr",
                "add",
                &format!("{}/24", h.address),
                "dev",
                "eth0",
            ])?;
        }
        sh(&["ip", "-n", &h.netns, "link", "set", "eth0", "up"])?;
        sh(&["ip", "-n", &h.netns, "link", "set", "lo", "up"])?;
        sh(&[
            "ip",
            "-n",
            &h.netns,
            "route",
            "replace",
            "default",
            "via",
            &bridge_address(lab),
        ])?;
    }
    Ok(())
}

/// Removes everything `ensure` created; missing pieces are not errors.
pub fn remove(lab: &LabState) -> Vec<String> {
    let mut problems = Vec::new();
    for h in lab.hosts.values() {
        if succeeds(&["ip", "netns", "exec", &h.netns, "true"]) {
            if let Err(e) = sh(&["ip", "netns", "del", &h.netns]) {
                problems.push(e.to_string());
            }
        }
        if succeeds(&["ip", "link", "show", &h.veth]) {
            let _ = sh(&["ip", "link", "del", &h.veth]);
        }
        // The kernel removes a namespace's links when its last process is
        // gone: wait, so an `up` right after sees none of them.
        let start = std::time::Instant::now();
        while succeeds(&["ip", "link", "show", &h.veth])
            && start.elapsed() < std::time::Duration::from_secs(10)
        {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    if succeeds(&["ip", "link", "show", &lab.bridge]) {
        if let Err(e) = sh(&["ip", "link", "del", &lab.bridge]) {
            problems.push(e.to_string());
        }
    }
    for (table, chain, rule) in machine_rules(lab) {
        while ok_words(&iptables(table, "-C", chain, &rule)) {
            if let Err(e) = run_words(&iptables(table, "-D", chain, &rule)) {
                problems.push(e.to_string());
                break;
            }
        }
    }
    if lab.ip_forward_before == "0" && !other_labs_running(lab) {
        let _ = sh(&["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
    }
    problems
}

fn other_labs_running(lab: &LabState) -> bool {
    super::list_names().iter().any(|n| n != &lab.name)
}

/// Traffic between two hosts is dropped in both hosts' namespaces, in the raw
/// table, which the hosts' own firewalls (ufw) never touch.
fn cut_rules(from: &str, to_address: &str, lab: &LabState) -> Vec<Vec<String>> {
    let c = comment(lab);
    let words = |s: String| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    vec![
        words(format!(
            "PREROUTING -s {to_address} -m comment --comment {c}-cut -j DROP"
        )),
        words(format!(
            "OUTPUT -d {to_address} -m comment --comment {c}-cut -j DROP"
        )),
    ]
    .into_iter()
    .map(|r| {
        let mut v: Vec<String> = ["ip", "netns", "exec", from, "iptables", "-w", "-t", "raw"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.push("OP".into());
        v.extend(r);
        v
    })
    .collect()
}

fn with_op(rule: &[String], op: &str) -> Vec<String> {
    rule.iter()
        .map(|w| if w == "OP" { op.to_string() } else { w.clone() })
        .collect()
}

pub fn cut(lab: &LabState, a: &str, b: &str) -> Result<(), LabError> {
    let (ha, hb) = (lab.host(a)?, lab.host(b)?);
    if a == b {
        return Err(other("cut needs two different hosts"));
    }
    for (from, to) in [(ha, hb), (hb, ha)] {
        for rule in cut_rules(&from.netns, &to.address, lab) {
            if !ok_words(&with_op(&rule, "-C")) {
                run_words(&with_op(&rule, "-I"))?;
            }
        }
    }
    Ok(())
}

pub fn heal(lab: &LabState) -> Result<(), LabError> {
    for from in lab.hosts.values() {
        for to in lab.hosts.values() {
            for rule in cut_rules(&from.netns, &to.address, lab) {
                while ok_words(&with_op(&rule, "-C")) {
                    run_words(&with_op(&rule, "-D"))?;
                }
            }
        }
    }
    Ok(())
}

/// Pairs of hosts currently cut from each other.
pub fn cuts(lab: &LabState) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (na, a) in &lab.hosts {
        for (nb, b) in &lab.hosts {
            if na < nb
                && cut_rules(&a.netns, &b.address, lab)
                    .iter()
                    .all(|r| ok_words(&with_op(r, "-C")))
            {
                out.push((na.clone(), nb.clone()));
            }
        }
    }
    out
}
