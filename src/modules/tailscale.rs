//! Tailscale from its signed apt repository; `tailscale up` only when the node
//! is not logged in. The auth key reaches the host on stdin, into a 0600 file
//! that `tailscale up --auth-key=file:` reads and that is removed right after.

use super::{facts, fail, q, ModuleError};
use crate::engine::{Change, Host, Step, TaskContext};

pub type Args = super::NoArgs;

pub async fn plan<H: Host>(
    _: &Args,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<Vec<Change>, ModuleError> {
    let ts = &ctx.inv.network.tailscale;
    if !ts.enabled {
        return Ok(Vec::new());
    }
    let os = &ctx.facts.os_id;
    let codename = &ctx.facts.os_codename;
    if !matches!(os.as_str(), "debian" | "ubuntu") || codename.is_empty() {
        return Err(fail(format!(
            "Tailscale's apt repository needs Debian or Ubuntu, found `{os}`"
        )));
    }
    let out = facts(
        host,
        "command -v tailscale >/dev/null && echo installed || echo absent; \
         tailscale status --json 2>/dev/null | grep -o '\"BackendState\": *\"[A-Za-z]*\"' | head -n1 || true",
    )
    .await?;
    let installed = out.lines().next() == Some("installed");
    let running = out.contains("\"Running\"");
    let mut changes = Vec::new();
    if !installed {
        let base = format!("https://pkgs.tailscale.com/stable/{os}");
        let script = format!(
            "set -e\ncurl -fsSL --retry 3 -o /usr/share/keyrings/tailscale-archive-keyring.gpg {key}\n\
             echo 'deb [signed-by=/usr/share/keyrings/tailscale-archive-keyring.gpg] {base} {codename} main' > /etc/apt/sources.list.d/tailscale.list\n\
             apt-get update -qq -o Dir::Etc::sourcelist=sources.list.d/tailscale.list -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0\n\
             DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tailscale >/dev/null\nsystemctl enable --now tailscaled",
            key = q(&format!("{base}/{codename}.noarmor.gpg")),
            base = base,
            codename = codename,
        );
        changes.push(Change::new(
            "install Tailscale from its signed apt repository",
            vec![Step::run(script)],
        ));
    }
    if !running {
        let Some(key) = ts.auth_key.as_ref().and_then(|k| ctx.secrets.get(k)) else {
            return Err(fail("the Tailscale auth key is not resolved"));
        };
        let hostname = format!("{}-{}", ctx.inv.name, ctx.role);
        changes.push(Change::new(
            format!("tailscale up as {hostname}"),
            vec![Step::Run {
                script: format!(
                    "set -e\numask 077\nf=$(mktemp)\ntrap 'rm -f \"$f\"' EXIT\ncat > \"$f\"\ntailscale up --auth-key=\"file:$f\" --hostname={}",
                    q(&hostname)
                ),
                stdin: Some(key.expose().as_bytes().to_vec()),
            }],
        ));
    }
    Ok(changes)
}
