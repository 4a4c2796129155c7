//! Checks that span several parts of the inventory: the channel split that
//! prevents duplicate replies, and addresses that must agree with each other.

use indexmap::IndexMap;

use crate::diagnostics::{did_you_mean, Diagnostic, Location};

use super::decode::Decoder;
use super::load::{DecodedNode, Secrets};
use super::model::{key_looks_secret, Bind, Channel, Network, OpenClaw, Secret, Value};

/// `nodes` in priority order, the primary first.
pub(super) fn check_channel_ownership(
    d: &mut Decoder,
    nodes: &[DecodedNode],
    channels: &IndexMap<String, Channel>,
) {
    for node in nodes {
        let path = format!("nodes.{}.channels", node.role);
        for (i, name) in node.channels.iter().enumerate() {
            let loc = node.channel_locs.get(i).copied().unwrap_or(node.loc);
            if node.channels[..i].contains(name) {
                d.error(
                    &format!("{path}[{i}]"),
                    loc,
                    format!("channel `{name}` is listed twice"),
                );
            } else if !channels.contains_key(name) {
                let mut diag = Diagnostic::error(format!(
                    "channel `{name}` is not defined under the top-level `channels`"
                ))
                .at(format!("{path}[{i}]"), Some(loc));
                if let Some(s) = did_you_mean(name, channels.keys().map(String::as_str)) {
                    diag = diag.hint(format!("did you mean `{s}`?"));
                }
                d.diagnostics.push(diag);
            }
        }
    }
    for (name, channel) in channels {
        let owners: Vec<&DecodedNode> =
            nodes.iter().filter(|n| n.channels.contains(name)).collect();
        let path = format!("channels.{name}");
        match owners.as_slice() {
            [] => d.diagnostics.push(
                Diagnostic::error(format!("channel `{name}` is not owned by any node"))
                    .at(path, Some(channel.loc))
                    .hint("add it to `nodes.primary.channels` or `nodes.standby.channels`"),
            ),
            [_] => {}
            [.., later] => {
                let at = later.channels.iter().position(|c| c == name).unwrap_or(0);
                d.diagnostics.push(
                    Diagnostic::error(format!(
                        "channel `{name}` is owned by {}: both gateways would answer on it (duplicate replies, token conflicts)",
                        if nodes.len() == 2 { "both nodes".to_string() } else {
                            owners.iter().map(|n| n.role.as_str()).collect::<Vec<_>>().join(" and ")
                        }
                    ))
                    .at(
                        format!("nodes.{}.channels[{at}]", later.role),
                        later.channel_locs.get(at).copied().or(Some(channel.loc)),
                    )
                    .hint("give each node its own channel: a second bot of the same platform is a named entry with `type`, e.g. `rescue-bot: {type: telegram, botToken: ...}`"),
                )
            }
        }
    }
    // OpenClaw configures one block per platform on a node (`channels.telegram`).
    for node in nodes {
        for (i, name) in node.channels.iter().enumerate() {
            let Some(kind) = channels.get(name).map(|c| c.kind.as_str()) else {
                continue;
            };
            let earlier = node.channels[..i]
                .iter()
                .find(|n| *n != name && channels.get(*n).is_some_and(|c| c.kind == kind));
            if let Some(first) = earlier {
                d.diagnostics.push(
                    Diagnostic::error(format!(
                        "channels `{first}` and `{name}` are both {kind} channels on the {}: a node runs one channel per platform",
                        node.role
                    ))
                    .at(
                        format!("nodes.{}.channels[{i}]", node.role),
                        node.channel_locs.get(i).copied().or(Some(node.loc)),
                    )
                    .hint("give the other node the second bot (e.g. a Telegram bot on each node)"),
                );
            }
        }
    }
    let (primary, standbys) = match nodes {
        [primary, standbys @ ..] => (primary, standbys),
        [] => return,
    };
    for standby in standbys.iter().filter(|n| n.channels.is_empty()) {
        d.diagnostics.push(
            Diagnostic::error(format!("the {} owns no channel, so nobody could reach the assistant during a failover", standby.role))
                .at(format!("nodes.{}.channels", standby.role), Some(standby.channels_loc))
                .hint(format!("give the {} its own channel with its own bot token, e.g. `channels: [discord]`, or a second Telegram bot as a named entry `rescue-bot: {{type: telegram, ...}}`", standby.role)),
        );
    }
    if primary.channels.is_empty() {
        d.warn(
            "nodes.primary.channels",
            primary.loc,
            "the primary owns no channel",
        );
    }
    for name in standbys.iter().flat_map(|n| &n.channels) {
        let Some(channel) = channels.get(name) else {
            continue;
        };
        let policy = channel.settings.get("dmPolicy").and_then(Value::as_str);
        if matches!(policy, None | Some("pairing")) {
            d.diagnostics.push(
                Diagnostic::warning(format!(
                    "standby channel `{name}` uses dmPolicy `pairing`{}: pairing approvals live on each host and are not synced to the standby",
                    if policy.is_none() { " (the default)" } else { "" }
                ))
                .at(format!("channels.{name}"), Some(channel.loc))
                .hint("use `dmPolicy: allowlist` with an explicit `allowFrom` list"),
            );
        }
    }
}

pub(super) fn check_nodes_distinct(d: &mut Decoder, nodes: &[DecodedNode]) {
    let need = if nodes.len() == 2 {
        "a failover pair needs two machines"
    } else {
        "each node of the chain needs its own machine"
    };
    for (i, node) in nodes.iter().enumerate() {
        let Some(earlier) = nodes[..i].iter().find(|e| {
            matches!((&e.host, &node.host), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
                && e.port == node.port
        }) else {
            continue;
        };
        d.error(
            &format!("nodes.{}.host", node.role),
            node.host_loc,
            format!(
                "the {}'s host is the {}'s (`{}`): {need}",
                node.role,
                earlier.role,
                node.host.as_deref().unwrap_or_default()
            ),
        );
    }
    for (i, node) in nodes.iter().enumerate() {
        let Some(s) = node.private_address else {
            continue;
        };
        if let Some(earlier) = nodes[..i].iter().find(|e| e.private_address == Some(s)) {
            d.error(
                &format!("nodes.{}.private_address", node.role),
                node.address_loc,
                format!("{s} is also the {}'s private address", earlier.role),
            );
        }
    }
}

pub(super) fn check_network(
    d: &mut Decoder,
    nodes: &[DecodedNode],
    net: &Network,
    openclaw: Option<&OpenClaw>,
) {
    for node in nodes {
        let Some(address) = node.private_address else {
            continue;
        };
        let path = format!("nodes.{}.private_address", node.role);
        if !net.private_cidr.contains(address) {
            d.warn(
                &path,
                node.address_loc,
                format!(
                    "{} is outside network.private_cidr ({}): the firewall only lets that range reach the gateway",
                    address, net.private_cidr
                ),
            );
        }
        if openclaw.is_some_and(|o| o.bind == Bind::Custom) && !address.is_ipv4() {
            d.error(
                &path,
                node.address_loc,
                "`bind: custom` needs an IPv4 private address (OpenClaw's customBindHost is IPv4)",
            );
        }
    }
    if let Some(o) = openclaw {
        if o.bind == Bind::Tailnet && !net.tailscale.enabled {
            d.diagnostics.push(
                Diagnostic::error("`openclaw.bind: tailnet` needs Tailscale, which is disabled")
                    .at("openclaw.bind", None)
                    .hint("enable `network.tailscale` or use `bind: custom` to bind each node's private_address"),
            );
        }
    }
}

/// Two channels on one bot token would fight over it (Telegram 409s, Discord
/// silently starving one gateway). Compared on resolved values; only paths are
/// ever printed.
/// A short secret is hardly a credential, and output redaction of it
/// would blank ordinary words, so it is weakly redacted or not at all.
pub(super) fn warn_short_secrets(
    references: &[Secret],
    secrets: &Secrets,
    out: &mut Vec<Diagnostic>,
) {
    use crate::secrets::{MIN_REDACTED, SHORT_SECRET};
    for s in references {
        let Some(v) = secrets.get(s) else { continue };
        if v.expose().chars().count() < SHORT_SECRET {
            out.push(
                Diagnostic::warning(format!(
                    "{} is shorter than {SHORT_SECRET} characters: too short to be a real credential or to be redacted from output reliably",
                    s.reference
                ))
                .at(s.path.as_str(), Some(s.loc))
                .hint(format!(
                    "values under {MIN_REDACTED} characters are not redacted at all; use the full credential"
                )),
            );
        }
    }
}

pub(super) fn check_tokens_distinct(
    channels: &IndexMap<String, Channel>,
    secrets: &Secrets,
    out: &mut Vec<Diagnostic>,
) {
    let mut seen: Vec<(String, String, &str)> = Vec::new(); // (channel, path, value)
    for channel in channels.values() {
        let mut values: Vec<(String, &str, Option<Location>)> = Vec::new();
        collect_credentials(
            &channel.settings,
            &format!("channels.{}", channel.name),
            secrets,
            &mut values,
        );
        for (path, value, loc) in values {
            if let Some((other, other_path, _)) = seen
                .iter()
                .find(|(c, _, v)| *c != channel.name && *v == value)
            {
                out.push(
                    Diagnostic::error(format!(
                        "channels `{other}` and `{}` use the same credential ({other_path} and {path} resolve to the same value)",
                        channel.name
                    ))
                    .at(path.as_str(), loc.or(Some(channel.loc)))
                    .hint("each node must own its own bot token; create a separate bot for the standby"),
                );
            }
            seen.push((channel.name.clone(), path, value));
        }
    }
}

fn collect_credentials<'a>(
    value: &'a Value,
    path: &str,
    secrets: &'a Secrets,
    out: &mut Vec<(String, &'a str, Option<Location>)>,
) {
    match value {
        Value::Secret(s) => {
            if let Some(v) = secrets.get(s) {
                out.push((path.to_string(), v.expose(), Some(s.loc)));
            }
        }
        Value::Map(m) => {
            for (k, v) in m {
                let p = format!("{path}.{k}");
                match v {
                    Value::Str(s) if key_looks_secret(k) => out.push((p, s.as_str(), None)),
                    _ => collect_credentials(v, &p, secrets, out),
                }
            }
        }
        Value::Seq(items) => {
            for (i, v) in items.iter().enumerate() {
                collect_credentials(v, &format!("{path}[{i}]"), secrets, out);
            }
        }
        _ => {}
    }
}

/// `monitor.announce` names only allowlisted DM users of the standbys' own
/// channels: never a group, never someone its allowlist would not admit.
pub(super) fn check_announce(
    d: &mut Decoder,
    announce: &super::announce::Announce,
    standbys: &[DecodedNode],
    channels: &IndexMap<String, Channel>,
) {
    use super::announce::{allow_from, dm_target, has_allowlist, recipients};
    let Some(first) = standbys.first() else {
        return;
    };
    let loc = announce.loc.unwrap_or(first.loc);
    let own: Vec<&Channel> = standbys
        .iter()
        .flat_map(|n| &n.channels)
        .filter_map(|n| channels.get(n))
        .collect();
    if let Some(to) = &announce.to {
        for (name, entries) in to {
            let channel = if name.is_empty() {
                match own.as_slice() {
                    [only] => *only,
                    _ => {
                        d.error(
                            "monitor.announce.to",
                            loc,
                            "the standby owns several channels: give `to` per channel, e.g. `to: {rescue-bot: [\"tg:123456789\"]}`",
                        );
                        continue;
                    }
                }
            } else {
                match own.iter().find(|c| c.name == *name) {
                    Some(c) => *c,
                    None => {
                        let mut diag = Diagnostic::error(format!(
                            "`{name}` is not one of the standby's channels (announcements go out on the standby's own channels)"
                        ))
                        .at(format!("monitor.announce.to.{name}"), Some(loc));
                        if let Some(s) = did_you_mean(name, own.iter().map(|c| c.name.as_str())) {
                            diag = diag.hint(format!("did you mean `{s}`?"));
                        }
                        d.diagnostics.push(diag);
                        continue;
                    }
                }
            };
            let allowed = allow_from(channel);
            let path = if name.is_empty() {
                "monitor.announce.to".to_string()
            } else {
                format!("monitor.announce.to.{name}")
            };
            for entry in entries {
                if !has_allowlist(channel) || !allowed.contains(entry) {
                    d.diagnostics.push(
                        Diagnostic::error(format!(
                            "`{entry}` is not in channels.{}.allowFrom (with `dmPolicy: allowlist`): the standby only messages people its allowlist admits",
                            channel.name
                        ))
                        .at(path.as_str(), Some(loc)),
                    );
                } else if dm_target(&channel.kind, entry).is_none() {
                    d.error(
                        &path,
                        loc,
                        format!(
                            "`{entry}` is not one person reachable by direct message on {} (a group, a wildcard or a user name)",
                            channel.kind
                        ),
                    );
                }
            }
        }
    }
    if announce.enabled {
        for channel in &own {
            let told = recipients(announce, &[channel]);
            if has_allowlist(channel) && told.is_empty() && announce.to.is_none() {
                d.warn(
                    "monitor.announce",
                    loc,
                    format!(
                        "nobody on the standby's channel `{}` can be told of a takeover: ocfo addresses direct-message users on telegram and discord (numeric ids in allowFrom)",
                        channel.name
                    ),
                );
            }
        }
    }
}
