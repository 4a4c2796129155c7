//! The ocfo binary on the standby, which runs as `ocfo monitor`. The running
//! binary is uploaded when the host's OS and architecture match it; otherwise
//! `--monitor-binary` must name a Linux build for the host.

use super::{facts, fail, ModuleError, Script};
use crate::engine::{Change, Host, Step, TaskContext};
use crate::render::layout::OCFO_BINARY;

pub type Args = super::NoArgs;

/// The bytes to install: `--monitor-binary`, or this very executable when it
/// can run on the host.
fn binary(ctx: &TaskContext<'_>) -> Result<std::sync::Arc<Vec<u8>>, ModuleError> {
    if let (Some(b), true) = (&ctx.opts.monitor_binary, ctx.opts.monitor_binary_explicit) {
        return Ok(b.clone());
    }
    let host_arch = ctx.facts.arch.as_str();
    let ours = std::env::consts::ARCH;
    let same_arch = host_arch == ours
        || (host_arch == "amd64" && ours == "x86_64")
        || (host_arch == "arm64" && ours == "aarch64");
    if std::env::consts::OS != "linux" || !same_arch {
        return Err(fail(format!(
            "this ocfo is built for {}-{ours} but the standby is linux-{host_arch}: pass --monitor-binary PATH with a Linux {host_arch} build of ocfo",
            std::env::consts::OS
        )));
    }
    let exe = std::env::current_exe()
        .map_err(|e| fail(format!("cannot find the running ocfo binary: {e}")))?;
    let bytes =
        std::fs::read(&exe).map_err(|e| fail(format!("cannot read {}: {e}", exe.display())))?;
    Ok(std::sync::Arc::new(bytes))
}

pub async fn plan<H: Host>(
    _: &Args,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<Vec<Change>, ModuleError> {
    let bytes = binary(ctx)?;
    let want = crate::sha256_hex(&bytes);
    let out = facts(
        host,
        &Script::new(r#"if [ -f "$1" ]; then sha256sum < "$1" | cut -d' ' -f1; stat -c '%a %U' -- "$1"; else echo missing; fi"#)
            .arg(OCFO_BINARY),
    )
    .await?;
    let mut lines = out.lines();
    let (sha, meta) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    if sha == want && meta == "755 root" {
        return Ok(Vec::new());
    }
    Ok(vec![Change::new(
        format!(
            "{} {OCFO_BINARY} ({:.1} MB, sha256 {})",
            if sha == "missing" {
                "install"
            } else {
                "update"
            },
            bytes.len() as f64 / 1e6,
            &want[..12]
        ),
        vec![Step::Put {
            path: OCFO_BINARY.into(),
            content: bytes.to_vec(),
            mode: 0o755,
            owner: "root".into(),
            group: "root".into(),
        }],
    )])
}
