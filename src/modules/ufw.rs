//! The firewall: deny incoming by default, SSH open, the gateway port open to
//! `private_cidr` only. ocfo's rules carry an `ocfo …` comment, so they
//! converge (added, or deleted when no longer wanted) without touching
//! anyone else's. Facts come from ufw's own files, not the (slow, Python)
//! `ufw` command.

use super::{facts, ModuleError};
use crate::engine::{Change, Host, Step, TaskContext};

pub type Args = super::NoArgs;

/// A rule as ufw records it in user.rules: `### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in comment=<hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub action: String,
    pub proto: String,
    pub port: String,
    pub source: String,
    pub comment: String,
}

impl Rule {
    /// The arguments `ufw` takes to add (or, after `delete`, remove) it.
    pub fn spec(&self) -> String {
        let from = if self.source == "0.0.0.0/0" || self.source == "::/0" {
            "any"
        } else {
            &self.source
        };
        format!(
            "{} proto {} from {from} to any port {}",
            self.action, self.proto, self.port
        )
    }

    fn key(&self) -> (String, String, String, String) {
        let src = if self.source == "::/0" {
            "0.0.0.0/0".to_string()
        } else {
            self.source.clone()
        };
        (
            self.action.clone(),
            self.proto.clone(),
            self.port.clone(),
            src,
        )
    }
}

pub fn wanted_rules(ssh_port: u16, gateway_port: u16, cidr: &str) -> Vec<Rule> {
    let rule = |port: u16, source: &str, comment: &str| Rule {
        action: "allow".into(),
        proto: "tcp".into(),
        port: port.to_string(),
        source: source.into(),
        comment: comment.into(),
    };
    vec![
        rule(ssh_port, "0.0.0.0/0", "ocfo ssh"),
        rule(gateway_port, cidr, "ocfo gateway"),
    ]
}

pub fn parse_tuple(line: &str) -> Option<Rule> {
    let rest = line.strip_prefix("### tuple ###")?.trim();
    let f: Vec<&str> = rest.split_whitespace().collect();
    // action proto dport dst sport src [direction] [comment=hex]
    if f.len() < 6 {
        return None;
    }
    let comment = f
        .iter()
        .find_map(|w| w.strip_prefix("comment="))
        .and_then(|h| hex::decode(h).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    Some(Rule {
        action: f[0].into(),
        proto: f[1].into(),
        port: f[2].into(),
        source: f[5].into(),
        comment,
    })
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
        "grep -hE '^(ENABLED|DEFAULT_INPUT_POLICY|DEFAULT_OUTPUT_POLICY)=' /etc/ufw/ufw.conf /etc/default/ufw 2>/dev/null; \
         grep -h '^### tuple ###' /etc/ufw/user.rules /etc/ufw/user6.rules 2>/dev/null; true",
    )
    .await?;
    let setting = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or("")
            .trim_matches('"')
            .to_string()
    };
    let have: Vec<Rule> = out.lines().filter_map(parse_tuple).collect();
    let mut changes = Vec::new();
    // Rules before enabling, so enabling never cuts the SSH session.
    for rule in &want {
        if !have
            .iter()
            .any(|h| h.key() == rule.key() && h.comment == rule.comment)
        {
            changes.push(Change::new(
                format!("firewall: {} ({})", rule.spec(), rule.comment),
                vec![Step::run(format!(
                    "ufw {} comment '{}' >/dev/null",
                    rule.spec(),
                    rule.comment
                ))],
            ));
        }
    }
    let mut deleted = Vec::new();
    for rule in have
        .iter()
        .filter(|r| r.comment.starts_with("ocfo") && !want.iter().any(|w| w.key() == r.key()))
    {
        if deleted.contains(&rule.key()) {
            continue; // the v6 twin of a rule already deleted
        }
        deleted.push(rule.key());
        changes.push(Change::new(
            format!(
                "firewall: delete stale rule {} ({})",
                rule.spec(),
                rule.comment
            ),
            vec![Step::run(format!("ufw delete {} >/dev/null", rule.spec()))],
        ));
    }
    if setting("DEFAULT_INPUT_POLICY") != "DROP" {
        changes.push(Change::new(
            "firewall: deny incoming by default",
            vec![Step::run("ufw default deny incoming >/dev/null")],
        ));
    }
    if setting("DEFAULT_OUTPUT_POLICY") != "ACCEPT" {
        changes.push(Change::new(
            "firewall: allow outgoing by default",
            vec![Step::run("ufw default allow outgoing >/dev/null")],
        ));
    }
    if setting("ENABLED") != "yes" {
        changes.push(Change::new(
            "firewall: enable ufw",
            vec![Step::run("ufw --force enable >/dev/null")],
        ));
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ufw_tuples_and_matches_wanted_rules() {
        let ssh = parse_tuple(
            "### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in comment=6f63666f20737368",
        )
        .unwrap();
        let gw = parse_tuple("### tuple ### allow tcp 18789 0.0.0.0/0 any 10.231.0.0/24 in comment=6f63666f2067617465776179").unwrap();
        let v6 =
            parse_tuple("### tuple ### allow tcp 22 ::/0 any ::/0 in comment=6f63666f20737368")
                .unwrap();
        let want = wanted_rules(22, 18789, "10.231.0.0/24");
        assert_eq!(ssh, want[0]);
        assert_eq!(gw, want[1]);
        assert_eq!(v6.key(), want[0].key());
        assert_eq!(
            want[1].spec(),
            "allow proto tcp from 10.231.0.0/24 to any port 18789"
        );
        assert!(parse_tuple("### tuple ### junk").is_none());
    }
}
