//! The firewall: deny incoming by default, SSH open, the gateway port open to
//! `private_cidr` only. ocfo's rules carry an `ocfo` comment, so they converge
//! (added, or deleted when no longer wanted) without touching anyone else's.

use serde::Deserialize;

use super::{facts, ModuleError};
use crate::engine::{Change, Host, Step, TaskContext};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {}

/// The rules as `ufw show added` prints them (and as `ufw` takes them).
pub fn wanted_rules(ssh_port: u16, gateway_port: u16, cidr: &str) -> Vec<String> {
    vec![
        format!("allow {ssh_port}/tcp comment 'ocfo ssh'"),
        format!("allow from {cidr} to any port {gateway_port} proto tcp comment 'ocfo gateway'"),
    ]
}

pub async fn plan<H: Host>(
    _: &Args,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<Vec<Change>, ModuleError> {
    let node = ctx.inv.node(ctx.role);
    let want = wanted_rules(
        node.ssh.port,
        ctx.inv.openclaw.port,
        &ctx.inv.network.private_cidr.to_string(),
    );
    let out = facts(
        host,
        "ufw status | head -n1; grep -E '^DEFAULT_(INPUT|OUTPUT)_POLICY=' /etc/default/ufw; echo '--'; ufw show added",
    )
    .await?;
    let (head, added) = out.split_once("--\n").unwrap_or((out.as_str(), ""));
    let active = head
        .lines()
        .next()
        .is_some_and(|l| l.trim() == "Status: active");
    let input_policy = head
        .lines()
        .find_map(|l| l.strip_prefix("DEFAULT_INPUT_POLICY="))
        .unwrap_or("")
        .trim_matches('"');
    let output_policy = head
        .lines()
        .find_map(|l| l.strip_prefix("DEFAULT_OUTPUT_POLICY="))
        .unwrap_or("")
        .trim_matches('"');
    let have: Vec<String> = added
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ufw "))
        .map(str::to_string)
        .collect();

    let mut changes = Vec::new();
    // Rules before enabling, so enabling never cuts the SSH session.
    for rule in &want {
        if !have.contains(rule) {
            changes.push(Change::new(
                format!("firewall: add `{rule}`"),
                vec![Step::run(format!("ufw {rule} >/dev/null"))],
            ));
        }
    }
    for rule in have
        .iter()
        .filter(|r| r.contains("comment 'ocfo") && !want.contains(r))
    {
        let spec = rule.split(" comment ").next().unwrap_or(rule);
        changes.push(Change::new(
            format!("firewall: delete stale ocfo rule `{spec}`"),
            vec![Step::run(format!("ufw delete {spec} >/dev/null"))],
        ));
    }
    if input_policy != "DROP" {
        changes.push(Change::new(
            "firewall: deny incoming by default",
            vec![Step::run("ufw default deny incoming >/dev/null")],
        ));
    }
    if output_policy != "ACCEPT" {
        changes.push(Change::new(
            "firewall: allow outgoing by default",
            vec![Step::run("ufw default allow outgoing >/dev/null")],
        ));
    }
    if !active {
        changes.push(Change::new(
            "firewall: enable ufw",
            vec![Step::run("ufw --force enable >/dev/null")],
        ));
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rules_match_ufw_show_added_format() {
        let r = super::wanted_rules(22, 18789, "10.231.0.0/24");
        assert_eq!(r[0], "allow 22/tcp comment 'ocfo ssh'");
        assert_eq!(
            r[1],
            "allow from 10.231.0.0/24 to any port 18789 proto tcp comment 'ocfo gateway'"
        );
    }
}
