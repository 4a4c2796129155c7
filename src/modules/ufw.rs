//! The firewall: deny incoming by default, SSH open, the gateway port open to
//! `private_cidr` only. ocfo's rules carry an `ocfo …` comment, so they
//! converge (added, or deleted when no longer wanted) without touching
//! anyone else's. Facts come from ufw's own files, not the (slow, Python)
//! `ufw` command.
//!
//! The SSH rule is for the port this very connection uses, which
//! `~/.ssh/config` may have chosen over the inventory's `ssh.port`; and ufw is
//! never enabled (nor its default turned to deny) unless a rule allows that
//! port, checked on the host right before: nothing would roll back a lockout.

use super::{facts, fail, ModuleError, Script};
use crate::engine::{Change, Host, Step, TaskContext};

super::no_args!(Args);

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
    pub fn args(&self) -> Vec<String> {
        let from = if self.source == "0.0.0.0/0" || self.source == "::/0" {
            "any"
        } else {
            &self.source
        };
        [
            &self.action,
            "proto",
            &self.proto,
            "from",
            from,
            "to",
            "any",
            "port",
            &self.port,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    pub fn spec(&self) -> String {
        self.args().join(" ")
    }

    /// Whether this rule lets anyone reach TCP `port`.
    fn opens(&self, port: u16) -> bool {
        matches!(self.action.as_str(), "allow" | "limit")
            && matches!(self.proto.as_str(), "tcp" | "any")
            && self.port == port.to_string()
            && matches!(self.source.as_str(), "0.0.0.0/0" | "::/0")
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

const FACTS: &str = "grep -hE '^(ENABLED|DEFAULT_INPUT_POLICY|DEFAULT_OUTPUT_POLICY)=' /etc/ufw/ufw.conf /etc/default/ufw 2>/dev/null
grep -h '^### tuple ###' /etc/ufw/user.rules /etc/ufw/user6.rules 2>/dev/null; true";

const RULE: &str = r#"ufw "$@" >/dev/null"#;

/// Runs `ufw` with `$3…` only if `$2` (ufw's rules file) holds a rule that
/// lets anyone reach TCP port `$1`, the port this deploy is connected through.
pub const GUARDED: &str = r#"port=$1 rules=$2; shift 2
if ! grep -qE "^### tuple ### (allow|limit) (tcp|any) $port 0\.0\.0\.0/0 any 0\.0\.0\.0/0 in( |$)" "$rules" 2>/dev/null; then
  echo "ocfo: refusing to run ufw $*: no ufw rule lets SSH in on port $port, the port this deploy is connected through; that would lock it out" >&2
  exit 1
fi
ufw "$@" >/dev/null"#;

const RULES_FILE: &str = "/etc/ufw/user.rules";

pub async fn plan<H: Host>(
    _: &Args,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<Vec<Change>, ModuleError> {
    let node = ctx.inv.node(ctx.role);
    let ssh_port = host.ssh_port().unwrap_or(node.ssh.port);
    let want = wanted_rules(
        ssh_port,
        ctx.inv.openclaw.port,
        &ctx.inv.network.private_cidr.to_string(),
    );
    let out = facts(host, &Script::new(FACTS)).await?;
    plan_from_facts(&out, &want, ssh_port)
}

/// The changes, from the facts script's output: what the planning decides,
/// apart from reading the host.
pub fn plan_from_facts(
    out: &str,
    want: &[Rule],
    ssh_port: u16,
) -> Result<Vec<Change>, ModuleError> {
    let setting = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or("")
            .trim_matches('"')
            .to_string()
    };
    let have: Vec<Rule> = out.lines().filter_map(parse_tuple).collect();
    let mut changes = Vec::new();
    let mut added = Vec::new();
    // Rules before enabling, so enabling never cuts the SSH session.
    for rule in want {
        if !have
            .iter()
            .any(|h| h.key() == rule.key() && h.comment == rule.comment)
        {
            added.push(rule.clone());
            changes.push(Change::new(
                format!("firewall: {} ({})", rule.spec(), rule.comment),
                vec![Step::run(
                    Script::new(RULE)
                        .args(rule.args())
                        .args(["comment", rule.comment.as_str()]),
                )],
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
            vec![Step::run(Script::new(RULE).arg("delete").args(rule.args()))],
        ));
    }
    let ssh_open = have
        .iter()
        .filter(|r| !deleted.contains(&r.key()))
        .chain(&added)
        .any(|r| r.opens(ssh_port));
    let guarded = |what: &str, args: &[&str]| -> Result<Change, ModuleError> {
        if !ssh_open {
            return Err(fail(format!(
                "refusing to {what}: no ufw rule lets SSH in on port {ssh_port}, the port this deploy is connected through"
            )));
        }
        Ok(Change::new(
            format!("firewall: {what}"),
            vec![Step::run(
                Script::new(GUARDED)
                    .args([ssh_port.to_string(), RULES_FILE.to_string()])
                    .args(args.iter().copied()),
            )],
        ))
    };
    if setting("DEFAULT_INPUT_POLICY") != "DROP" {
        changes.push(guarded(
            "deny incoming by default",
            &["default", "deny", "incoming"],
        )?);
    }
    if setting("DEFAULT_OUTPUT_POLICY") != "ACCEPT" {
        changes.push(Change::new(
            "firewall: allow outgoing by default",
            vec![Step::run(
                Script::new(RULE).args(["default", "allow", "outgoing"]),
            )],
        ));
    }
    if setting("ENABLED") != "yes" {
        changes.push(guarded("enable ufw", &["--force", "enable"])?);
    }
    Ok(changes)
}

impl super::Module for Args {
    const PREFETCHABLE: bool = true;

    async fn plan<H: Host>(
        &self,
        host: &H,
        ctx: &TaskContext<'_>,
    ) -> Result<Vec<Change>, ModuleError> {
        plan(self, host, ctx).await
    }
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

    use crate::engine::Step;
    use crate::modules::testkit::{ok, Fixture, ScriptedHost};

    fn run_args(change: &Change) -> Vec<String> {
        match &change.steps[0] {
            Step::Run { script, .. } => script.arguments().to_vec(),
            other => panic!("not a script: {other:?}"),
        }
    }

    /// The inventory says port 22, `~/.ssh/config` made the connection use
    /// 2222: the rule must open 2222, before ufw is enabled with every step
    /// that could cut SSH guarded by that port.
    #[tokio::test]
    async fn opens_the_port_the_connection_uses_not_the_inventorys() {
        let fx = Fixture::load(|inv| inv.primary.ssh.port = 22);
        let mut host = ScriptedHost::new(|_| ok("ENABLED=no\nDEFAULT_INPUT_POLICY=\"ACCEPT\"\n"));
        host.port = Some(2222);
        let changes = plan(&Default::default(), &host, &fx.ctx()).await.unwrap();
        let summaries: Vec<&str> = changes.iter().map(|c| c.summary.as_str()).collect();
        let ssh = changes
            .iter()
            .position(|c| c.summary.contains("(ocfo ssh)"))
            .unwrap();
        assert_eq!(
            run_args(&changes[ssh]),
            [
                "allow", "proto", "tcp", "from", "any", "to", "any", "port", "2222", "comment",
                "ocfo ssh"
            ],
            "{summaries:?}"
        );
        assert!(
            !summaries.iter().any(|s| s.contains("port 22 ")),
            "{summaries:?}"
        );
        let deny = summaries
            .iter()
            .position(|s| s.contains("deny incoming"))
            .unwrap();
        let enable = summaries
            .iter()
            .position(|s| s.contains("enable ufw"))
            .unwrap();
        assert!(ssh < deny && deny < enable, "{summaries:?}");
        for i in [deny, enable] {
            let args = run_args(&changes[i]);
            assert_eq!(args[..2], ["2222", "/etc/ufw/user.rules"], "{args:?}");
            match &changes[i].steps[0] {
                Step::Run { script, .. } => assert_eq!(script.text(), GUARDED),
                _ => unreachable!(),
            }
        }
    }

    #[test]
    fn refuses_to_plan_enabling_when_no_rule_opens_the_ssh_port() {
        let facts = "ENABLED=no\nDEFAULT_INPUT_POLICY=\"DROP\"\n\
                     ### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in comment=6f63666f20737368\n";
        // Only the gateway rule is wanted: nothing opens 2222.
        let want = &wanted_rules(2222, 18789, "10.0.0.0/8")[1..];
        let err = plan_from_facts(facts, want, 2222).unwrap_err().to_string();
        assert!(err.contains("refusing to enable ufw"), "{err}");
        assert!(err.contains("port 2222"), "{err}");
        // A rule someone else added for the port is enough.
        let theirs = format!("{facts}### tuple ### allow tcp 2222 0.0.0.0/0 any 0.0.0.0/0 in\n");
        assert!(plan_from_facts(&theirs, want, 2222).is_ok());
    }

    /// The host-side guard: run for real against a rules file and a fake
    /// `ufw` that records that it ran.
    #[test]
    fn the_guard_on_the_host_refuses_without_a_rule_for_the_port() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ran = d.join("ufw-ran");
        std::fs::write(
            d.join("ufw"),
            format!("#!/bin/sh\necho \"$*\" > '{}'\n", ran.display()),
        )
        .unwrap();
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(d.join("ufw"))
            .status()
            .unwrap();
        let rules = d.join("user.rules");
        let run = |port: &str| {
            let script = Script::new(GUARDED)
                .args([port, rules.to_str().unwrap()])
                .args(["--force", "enable"]);
            std::process::Command::new("sh")
                .arg("-c")
                .arg(script.render())
                .env("PATH", format!("{}:/usr/bin:/bin", d.display()))
                .output()
                .unwrap()
        };
        std::fs::write(
            &rules,
            "### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in comment=6f63666f20737368\n\
             ### tuple ### allow tcp 22221 0.0.0.0/0 any 0.0.0.0/0 in\n",
        )
        .unwrap();
        let out = run("2222");
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("port 2222"), "{stderr}");
        assert!(!ran.exists(), "ufw ran without a rule for the SSH port");
        let out = run("22");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(&ran).unwrap().trim(),
            "--force enable"
        );
    }
}
