//! Tailscale from its signed apt repository; `tailscale up` only when the node
//! is not logged in. The auth key reaches the host on stdin and `tailscale up
//! --auth-key=file:/dev/stdin` reads it from there (its `file:` prefix is
//! `os.ReadFile`, which reads a pipe to its end): never on disk, never in
//! argv, so a dropped connection leaves nothing behind.

use super::{facts, fail, ModuleError, Script};
use crate::engine::{Change, Host, Step, TaskContext};

super::no_args!(Args);

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
    let out = facts(host, &Script::new(FACTS)).await?;
    let installed = out.lines().next() == Some("installed");
    let running = out.contains("\"Running\"");
    let mut changes = Vec::new();
    if !installed {
        let base = format!("https://pkgs.tailscale.com/stable/{os}");
        let script = Script::new(INSTALL).args([
            format!("{base}/{codename}.noarmor.gpg"),
            base,
            codename.clone(),
        ]);
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
                script: Script::new(UP).arg(&hostname),
                stdin: Some(key.expose().as_bytes().to_vec()),
            }],
        ));
    }
    Ok(changes)
}

const FACTS: &str = r#"command -v tailscale >/dev/null && echo installed || echo absent
tailscale status --json 2>/dev/null | grep -o '"BackendState": *"[A-Za-z]*"' | head -n1 || true"#;

/// $1 the repository key's URL, $2 the repository, $3 the release codename.
const INSTALL: &str = r#"set -e
curl -fsSL --retry 3 -o /usr/share/keyrings/tailscale-archive-keyring.gpg "$1"
printf 'deb [signed-by=/usr/share/keyrings/tailscale-archive-keyring.gpg] %s %s main\n' "$2" "$3" > /etc/apt/sources.list.d/tailscale.list
apt-get update -qq -o Dir::Etc::sourcelist=sources.list.d/tailscale.list -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tailscale >/dev/null
systemctl enable --now tailscaled"#;

/// The key is the step's stdin; $1 the hostname.
const UP: &str = r#"tailscale up --auth-key=file:/dev/stdin --hostname="$1""#;

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
    use super::UP;
    use crate::engine::Step;
    use crate::modules::testkit::{ok, Fixture, ScriptedHost};

    /// Planned against a host where Tailscale is absent: the key is the `up`
    /// step's stdin and nowhere else: not in any script or argument, and no
    /// step writes a temp file.
    #[tokio::test]
    async fn the_planned_steps_carry_the_key_on_stdin_only() {
        let fx = Fixture::load(|_| {});
        let host = ScriptedHost::new(|_| ok("absent\n"));
        let changes = super::plan(&Default::default(), &host, &fx.ctx())
            .await
            .unwrap();
        let key = "T_TS_AUTHKEY-value";
        let mut on_stdin = 0;
        for step in changes.iter().flat_map(|c| &c.steps) {
            let Step::Run { script, stdin } = step else {
                panic!("unexpected {step:?}");
            };
            let sent = script.render();
            assert!(!sent.contains(key), "{sent}");
            for never in ["mktemp", "/tmp", "TMPDIR"] {
                assert!(!sent.contains(never), "{never} in {sent}");
            }
            if let Some(bytes) = stdin {
                assert_eq!(bytes, key.as_bytes());
                assert!(sent.contains("--auth-key=file:/dev/stdin"), "{sent}");
                on_stdin += 1;
            }
        }
        assert_eq!(on_stdin, 1);
        for (sent, _) in host.sent.lock().unwrap().iter() {
            assert!(!sent.contains(key));
        }
    }

    /// The key must only ever be on stdin: no temp file that a dropped
    /// connection would leave behind, no argv that `ps` shows.
    #[test]
    fn the_key_is_read_from_stdin_only() {
        assert!(UP.contains("--auth-key=file:/dev/stdin"));
        for never in ["mktemp", "/tmp", "cat >", "$f", "TS_AUTHKEY"] {
            assert!(!UP.contains(never), "{never} in {UP}");
        }
    }
}
