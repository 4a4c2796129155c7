//! The ocfo binary on each host: the standby runs it as `ocfo monitor`, the
//! primary as `ocfo workspace-watch`.
//!
//! - `--monitor-binary PATH`: that file is uploaded, whatever the host.
//! - This very executable is uploaded when it can run on the host (the
//!   laptop is Linux on the host's architecture), unless `--monitor-fetch`.
//! - Otherwise the host fetches the release build of *this* ocfo's
//!   version for its architecture from `monitor.binary_source`
//!   (`<base>/v<ver>/ocfo-<ver>-<arch>-linux`) and installs it only if its
//!   SHA-256 is the one the laptop vouches for: compiled into this ocfo by
//!   the release build (`OCFO_MONITOR_SHA256SUMS`), or pinned by the operator
//!   in `monitor.binary_sha256`. Nothing the download source says is trusted.

use std::sync::{Arc, Mutex, OnceLock, Weak};

use super::{facts, fail, ModuleError, Script};
use crate::engine::{Change, Host, Step, TaskContext};
use crate::layout::OCFO_BINARY;

/// What the binary looked like when its SHA-256 was last known (size,
/// mtime, ctime, inode, device) and that hash. Only root can change the
/// binary, and any change moves its ctime or inode, so while the stamp
/// matches the hash is still true and the 12 MB need no hashing.
pub const OCFO_BINARY_STAMP: &str = "/var/lib/ocfo/ocfo-binary.stamp";

super::no_args!(Args);

pub use crate::inventory::MONITOR_ARCHS;

/// The SHA256SUMS of the release's Linux binaries, compiled in by the
/// release build (`examples/release/release.sh`); absent in a source build.
const EMBEDDED_SUMS: Option<&str> = option_env!("OCFO_MONITOR_SHA256SUMS");

/// The OS and architecture a binary was built for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Platform {
    pub os: &'static str,
    pub arch: &'static str,
}

impl Platform {
    pub const THIS: Platform = Platform {
        os: std::env::consts::OS,
        arch: std::env::consts::ARCH,
    };
}

/// `uname -m` as the release's architecture name, or None when the release
/// has no build for it.
pub(crate) fn release_arch(uname_m: &str) -> Option<&'static str> {
    match uname_m {
        "x86_64" | "amd64" => Some("x86_64"),
        "aarch64" | "arm64" => Some("aarch64"),
        _ => None,
    }
}

/// The file name of a release's Linux binary.
pub fn release_file(version: &str, arch: &str) -> String {
    format!("ocfo-{version}-{arch}-linux")
}

/// The checksum of `file` in a SHA256SUMS text (`<hex>  <name>` or
/// `<hex> *<name>` lines), lowercased.
pub fn sum_for(sums: &str, file: &str) -> Option<String> {
    sums.lines().find_map(|l| {
        let (hash, name) = l.trim().split_once(char::is_whitespace)?;
        let name = name.trim_start().trim_start_matches('*');
        (name == file && hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| hash.to_ascii_lowercase())
    })
}

/// What the host gets.
#[derive(Debug)]
pub(crate) enum Plan {
    Upload(Arc<Vec<u8>>),
    Fetch(Fetch),
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Fetch {
    pub url: String,
    pub sha256: String,
    pub version: String,
    pub arch: &'static str,
    /// Who vouches for `sha256`, for the change's summary.
    pub vouched_by: &'static str,
}

/// Decides, without touching the host: `laptop` is the platform of this
/// binary, `embedded` the SHA256SUMS compiled into it.
pub(crate) fn choose(
    ctx: &TaskContext<'_>,
    laptop: Platform,
    embedded: Option<&str>,
) -> Result<Plan, ModuleError> {
    if let (Some(b), true) = (&ctx.opts.monitor_binary, ctx.opts.monitor_binary_explicit) {
        return Ok(Plan::Upload(b.clone()));
    }
    let host_arch = ctx.facts.arch.as_str();
    let runs_there = laptop.os == "linux" && release_arch(host_arch) == Some(laptop.arch);
    if runs_there && !ctx.opts.monitor_fetch {
        return Ok(Plan::Upload(own_binary(ctx)?));
    }
    let why = if ctx.opts.monitor_fetch {
        "--monitor-fetch asks each host to fetch its ocfo".to_string()
    } else {
        format!(
            "this ocfo is built for {}-{} but this host is linux-{host_arch}",
            laptop.os, laptop.arch
        )
    };
    let Some(arch) = release_arch(host_arch) else {
        return Err(fail(format!(
            "{why}, and ocfo releases have no Linux build for `{host_arch}` (only {}): pass --monitor-binary PATH with a Linux {host_arch} build of ocfo",
            MONITOR_ARCHS.join(", ")
        )));
    };
    let version = env!("CARGO_PKG_VERSION");
    let file = release_file(version, arch);
    let Some(base) = ctx.inv.monitor.binary_source.as_deref() else {
        return Err(fail(format!(
            "{why}: set `monitor.binary_source` in the inventory to where the release binaries are (each host downloads <source>/v{version}/{file} and checks it against the checksum this laptop vouches for), or pass --monitor-binary PATH with a Linux {arch} build of ocfo {version}"
        )));
    };
    let built_in = embedded.and_then(|s| sum_for(s, &file));
    let pinned = ctx.inv.monitor.binary_sha256.get(arch).cloned();
    let (sha256, vouched_by) = match (built_in, pinned) {
        (Some(b), Some(p)) if b != p => {
            return Err(fail(format!(
                "`monitor.binary_sha256.{arch}` pins {p}, but this ocfo {version} was released with {b} for {file}: remove the pin (or correct it) rather than install a binary this release does not vouch for"
            )))
        }
        (Some(b), _) => (b, "this ocfo's release checksums"),
        (None, Some(p)) => (p, "monitor.binary_sha256"),
        (None, None) => {
            return Err(fail(format!(
                "{why}, and this ocfo was built without release checksums (a source build), so it cannot vouch for {file}: pin its SHA-256 as `monitor.binary_sha256.{arch}` in the inventory (from the release's SHA256SUMS, verified as you verified this ocfo), or pass --monitor-binary PATH"
            )))
        }
    };
    Ok(Plan::Fetch(Fetch {
        url: format!("{base}/v{version}/{file}"),
        sha256,
        version: version.to_string(),
        arch,
        vouched_by,
    }))
}

/// The SHA-256 of the binary to upload, hashed once per binary: planning
/// ahead (`engine::prefetch`) runs this plan up to three times, and hashing
/// 10 MB takes tens of milliseconds. This very executable's hash also
/// survives the process, in the user's cache (see `OwnSum`).
fn sha256_of(bytes: &Arc<Vec<u8>>) -> String {
    static LAST: Mutex<Option<(Weak<Vec<u8>>, String)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((w, sum)) = last.as_ref() {
        // Same allocation still alive: the same bytes (an Arc's Vec is never
        // written through).
        if w.upgrade().is_some_and(|b| Arc::ptr_eq(&b, bytes)) {
            return sum.clone();
        }
    }
    let own = OWN.get().filter(|(b, _)| Arc::ptr_eq(b, bytes));
    let sum = match own.and_then(|(_, o)| o.as_ref()) {
        Some(o) => o.sum(bytes),
        None => crate::sha256_hex(bytes),
    };
    *last = Some((Arc::downgrade(bytes), sum.clone()));
    sum
}

/// This executable, as read when the run started, and where its hash is kept.
static OWN: OnceLock<(Arc<Vec<u8>>, Option<OwnSum>)> = OnceLock::new();

/// The running binary's SHA-256 kept between runs in
/// `$XDG_CACHE_HOME/ocfo/own-sha256` (or `~/.cache`), keyed on the file's
/// path, device, inode, size, mtime and ctime: any rebuild or replacement
/// changes the key. The file is the operator's own, like the binary.
struct OwnSum {
    cache: std::path::PathBuf,
    key: String,
}

impl OwnSum {
    fn new(exe: &std::path::Path) -> Option<OwnSum> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(exe).ok()?;
        let dir = std::env::var_os("XDG_CACHE_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache"))
            })?;
        Some(OwnSum {
            cache: dir.join("ocfo").join("own-sha256"),
            key: format!(
                "{} {} {} {} {}.{} {}.{}",
                exe.display(),
                m.dev(),
                m.ino(),
                m.size(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec()
            ),
        })
    }

    /// The cached hash if the key matches, else hashed and cached (best
    /// effort: a cache that cannot be written costs the hash next time).
    fn sum(&self, bytes: &[u8]) -> String {
        let cached = std::fs::read_to_string(&self.cache).ok().and_then(|t| {
            let (key, sum) = t.trim_end().rsplit_once(' ')?;
            (key == self.key && sum.len() == 64).then(|| sum.to_string())
        });
        if let Some(sum) = cached {
            return sum;
        }
        let sum = crate::sha256_hex(bytes);
        if let Some(dir) = self.cache.parent() {
            let _ = std::fs::create_dir_all(dir);
            let tmp = self.cache.with_extension("tmp");
            if std::fs::write(&tmp, format!("{} {sum}\n", self.key)).is_ok() {
                let _ = std::fs::rename(&tmp, &self.cache);
            }
        }
        sum
    }
}

/// This very executable, as read when the run started.
fn own_binary(ctx: &TaskContext<'_>) -> Result<Arc<Vec<u8>>, ModuleError> {
    if let Some(b) = &ctx.opts.monitor_binary {
        return Ok(b.clone());
    }
    // Read once per process, so the plan's hash is computed once too.
    if let Some((b, _)) = OWN.get() {
        return Ok(b.clone());
    }
    let exe = std::env::current_exe()
        .map_err(|e| fail(format!("cannot find the running ocfo binary: {e}")))?;
    let bytes =
        std::fs::read(&exe).map_err(|e| fail(format!("cannot read {}: {e}", exe.display())))?;
    let sum = OwnSum::new(&exe);
    Ok(OWN.get_or_init(|| (Arc::new(bytes), sum)).0.clone())
}

pub async fn plan<H: Host>(
    _: &Args,
    host: &H,
    ctx: &TaskContext<'_>,
) -> Result<Vec<Change>, ModuleError> {
    plan_for(host, ctx, Platform::THIS, EMBEDDED_SUMS).await
}

pub(crate) async fn plan_for<H: Host>(
    host: &H,
    ctx: &TaskContext<'_>,
    laptop: Platform,
    embedded: Option<&str>,
) -> Result<Vec<Change>, ModuleError> {
    let plan = choose(ctx, laptop, embedded)?;
    let want = match &plan {
        Plan::Upload(bytes) => sha256_of(bytes),
        Plan::Fetch(f) => f.sha256.clone(),
    };
    let out = facts(
        host,
        &Script::new(INSTALLED).args([OCFO_BINARY, OCFO_BINARY_STAMP]),
    )
    .await?;
    let mut lines = out.lines();
    let (sha, meta) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    let stamped = lines.next() == Some("stamped");
    if sha == want && meta == "755 root" {
        if stamped {
            return Ok(Vec::new());
        }
        // The right binary, hashed because no stamp vouched for it: stamp it
        // so the next run reads the stamp instead.
        return Ok(vec![Change::new(
            format!("stamp {OCFO_BINARY} (unchanged, sha256 {})", &want[..12]),
            vec![stamp_step(&want)],
        )]);
    }
    let verb = if sha == "missing" {
        "install"
    } else {
        "update"
    };
    Ok(vec![match plan {
        Plan::Upload(bytes) => Change::new(
            format!(
                "{verb} {OCFO_BINARY} ({:.1} MB, sha256 {})",
                bytes.len() as f64 / 1e6,
                &want[..12]
            ),
            vec![
                Step::Put {
                    path: OCFO_BINARY.into(),
                    content: bytes.to_vec(),
                    mode: 0o755,
                    owner: "root".into(),
                    group: "root".into(),
                },
                stamp_step(&want),
            ],
        ),
        Plan::Fetch(f) => Change::new(
            format!(
                "{verb} {OCFO_BINARY}: ocfo {} for {}, fetched from {}, sha256 {} (vouched for by {})",
                f.version,
                f.arch,
                f.url,
                &f.sha256[..12],
                f.vouched_by
            ),
            vec![
                Step::run(Script::new(FETCH).args([
                    f.url,
                    f.sha256.clone(),
                    OCFO_BINARY.to_string(),
                    super::download::MAX_MONITOR_BINARY.to_string(),
                ])),
                stamp_step(&f.sha256),
            ],
        ),
    }])
}

fn stamp_step(sha256: &str) -> Step {
    Step::run(Script::new(STAMP).args([OCFO_BINARY, OCFO_BINARY_STAMP, sha256]))
}

/// $1 the binary, $2 its stamp: prints its SHA-256 (from the stamp while the
/// stamp matches the file, else hashed), its mode and owner, and `stamped`
/// when the stamp vouched; or `missing`. Reads only.
const INSTALLED: &str = r#"if [ -f "$1" ]; then
  id=$(stat -c '%s %.9Y %.9Z %i %d' -- "$1")
  if [ -f "$2" ] && [ ! -L "$2" ] && [ "$(sed -n 1p -- "$2")" = "$id" ]; then
    sed -n 2p -- "$2"; stat -c '%a %U' -- "$1"; echo stamped
  else
    sha256sum < "$1" | cut -d' ' -f1; stat -c '%a %U' -- "$1"
  fi
else echo missing; fi"#;

/// $1 the binary just installed, $2 its stamp, $3 the SHA-256 it was
/// installed with (uploaded as those bytes, or fetched and checked). The
/// stamp's folder is root's; nothing is written through anything else.
const STAMP: &str = r#"set -eu
dir=$(dirname -- "$2")
mkdir -p -m 0755 -- "$dir"
[ -d "$dir" ] && [ ! -L "$dir" ] && [ "$(stat -c '%U %a' -- "$dir")" = "root 755" ] || { echo "$dir is not root's own folder: not stamping $1" >&2; exit 1; }
tmp=$(mktemp -- "$dir/.ocfo-stamp.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
printf '%s
%s
' "$(stat -c '%s %.9Y %.9Z %i %d' -- "$1")" "$3" > "$tmp"
chmod 0644 -- "$tmp"
mv -f -- "$tmp" "$2"
trap - EXIT"#;

/// $1 the binary's URL, $2 the SHA-256 the laptop vouches for, $3 where to
/// install it, $4 the most bytes it may have. Downloaded next to $3 (same
/// file system, so the rename is atomic), checked, made executable, run
/// once, renamed into place; any failure leaves $3 as it was and no temp
/// file behind.
const FETCH: &str = concat!(
    "# fetch the ocfo binary and check it against the laptop's checksum\n",
    super::download::fetch_function!(),
    r#"set -eu
url=$1; want=$2; dest=$3; max=$4
tmp=$(mktemp -- "$(dirname -- "$dest")/.ocfo-fetch.XXXXXX")
trap 'rm -f -- "$tmp" "$tmp.rc"' EXIT
ocfo_fetch "$url" "$tmp" "$max"
if ! printf '%s  %s\n' "$want" "$tmp" | sha256sum -c --quiet --status -; then
  got=$(sha256sum < "$tmp" | cut -d' ' -f1)
  echo "checksum mismatch for $url: expected sha256 $want (vouched for by the laptop), got $got: refusing to install it" >&2
  exit 1
fi
chown root:root -- "$tmp"; chmod 755 -- "$tmp"
"$tmp" --version >/dev/null || { echo "$url passed its checksum but does not run on this host" >&2; exit 1; }
mv -f -- "$tmp" "$dest"
trap - EXIT
"#
);

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
    use super::{plan_for, sum_for, Platform, FETCH};
    use crate::engine::Step;
    use crate::modules::testkit::{ok, Fixture, ScriptedHost};
    use std::sync::Arc;

    const LINUX_X86: Platform = Platform {
        os: "linux",
        arch: "x86_64",
    };
    const MAC_ARM: Platform = Platform {
        os: "macos",
        arch: "aarch64",
    };
    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn fixture(source: Option<&str>, pins: &[(&str, &str)]) -> Fixture {
        let mut fx = Fixture::load(|inv| {
            inv.monitor.binary_source = source.map(String::from);
            for (a, h) in pins {
                inv.monitor
                    .binary_sha256
                    .insert(a.to_string(), h.to_string());
            }
        });
        fx.opts.monitor_binary = Some(Arc::new(b"laptop ocfo".to_vec()));
        fx
    }

    fn sums(version: &str) -> String {
        format!("{A}  ocfo-{version}-x86_64-linux\n{B}  ocfo-{version}-aarch64-linux\n")
    }

    async fn plan(
        fx: &Fixture,
        laptop: Platform,
        embedded: Option<&str>,
    ) -> Result<Vec<Step>, String> {
        let host = ScriptedHost::new(|_| ok("missing\n"));
        plan_for(&host, &fx.ctx(), laptop, embedded)
            .await
            .map(|c| c.into_iter().flat_map(|c| c.steps).collect())
            .map_err(|e| e.to_string())
    }

    /// The install's steps, and that the last one stamps what it installed.
    fn installed(steps: &[Step]) -> &[Step] {
        let Some((Step::Run { script, .. }, install)) = steps.split_last() else {
            panic!("{steps:?}");
        };
        assert_eq!(script.text(), super::STAMP, "{steps:?}");
        install
    }

    fn fetched(steps: &[Step]) -> (String, Vec<String>) {
        let [Step::Run {
            script,
            stdin: None,
        }] = installed(steps)
        else {
            panic!("expected one fetch step, got {steps:?}");
        };
        assert_eq!(script.text(), FETCH);
        (script.render(), script.arguments().to_vec())
    }

    #[tokio::test]
    async fn a_matching_laptop_uploads_itself() {
        let fx = fixture(Some("https://rel.example/ocfo"), &[]);
        let steps = plan(&fx, LINUX_X86, None).await.unwrap();
        let [Step::Put { content, mode, .. }] = installed(&steps) else {
            panic!("{steps:?}");
        };
        assert_eq!(content, b"laptop ocfo");
        assert_eq!(*mode, 0o755);
    }

    #[tokio::test]
    async fn another_arch_fetches_the_exact_version_with_the_built_in_checksum() {
        let v = env!("CARGO_PKG_VERSION");
        let mut fx = fixture(Some("https://rel.example/ocfo"), &[]);
        fx.facts.arch = "aarch64".into();
        let steps = plan(&fx, LINUX_X86, Some(&sums(v))).await.unwrap();
        let (_, args) = fetched(&steps);
        assert_eq!(
            args,
            [
                format!("https://rel.example/ocfo/v{v}/ocfo-{v}-aarch64-linux"),
                B.to_string(),
                "/usr/local/bin/ocfo".to_string(),
                // The most bytes the download may have.
                super::super::download::MAX_MONITOR_BINARY.to_string(),
            ]
        );
    }

    #[tokio::test]
    async fn a_mac_laptop_fetches_for_an_x86_host_with_a_pinned_checksum() {
        let v = env!("CARGO_PKG_VERSION");
        let fx = fixture(Some("file:///srv/rel"), &[("x86_64", A)]);
        let (_, args) = fetched(&plan(&fx, MAC_ARM, None).await.unwrap());
        assert_eq!(
            args[0],
            format!("file:///srv/rel/v{v}/ocfo-{v}-x86_64-linux")
        );
        assert_eq!(args[1], A);
    }

    #[tokio::test]
    async fn monitor_fetch_forces_the_fetch_on_a_matching_host() {
        let v = env!("CARGO_PKG_VERSION");
        let mut fx = fixture(Some("https://rel.example"), &[]);
        fx.opts.monitor_fetch = true;
        let (_, args) = fetched(&plan(&fx, LINUX_X86, Some(&sums(v))).await.unwrap());
        assert_eq!(args[1], A);
    }

    #[tokio::test]
    async fn an_explicit_monitor_binary_wins() {
        let mut fx = fixture(None, &[]);
        fx.opts.monitor_binary_explicit = true;
        fx.facts.arch = "riscv64".into();
        let steps = plan(&fx, MAC_ARM, None).await.unwrap();
        assert!(matches!(installed(&steps), [Step::Put { .. }]), "{steps:?}");
    }

    #[tokio::test]
    async fn without_a_source_the_error_says_what_to_do() {
        let fx = fixture(None, &[]);
        let e = plan(&fx, MAC_ARM, None).await.unwrap_err();
        assert!(
            e.contains("macos-aarch64") && e.contains("linux-x86_64"),
            "{e}"
        );
        assert!(
            e.contains("monitor.binary_source") && e.contains("--monitor-binary"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn without_a_vouched_checksum_nothing_is_fetched() {
        let fx = fixture(Some("https://rel.example"), &[("aarch64", B)]);
        // Sums for another version do not count: only this exact version.
        let e = plan(&fx, MAC_ARM, Some(&sums("0.0.1"))).await.unwrap_err();
        assert!(e.contains("monitor.binary_sha256.x86_64"), "{e}");
        assert!(e.contains("without release checksums"), "{e}");
    }

    #[tokio::test]
    async fn a_pin_that_contradicts_the_release_is_refused() {
        let v = env!("CARGO_PKG_VERSION");
        let fx = fixture(Some("https://rel.example"), &[("x86_64", B)]);
        let e = plan(&fx, MAC_ARM, Some(&sums(v))).await.unwrap_err();
        assert!(e.contains(A) && e.contains(B), "{e}");
        let fx = fixture(Some("https://rel.example"), &[("x86_64", A)]);
        assert!(plan(&fx, MAC_ARM, Some(&sums(v))).await.is_ok());
    }

    #[tokio::test]
    async fn an_arch_without_a_release_build_is_refused() {
        let mut fx = fixture(Some("https://rel.example"), &[]);
        fx.facts.arch = "armv7l".into();
        let e = plan(&fx, MAC_ARM, None).await.unwrap_err();
        assert!(
            e.contains("armv7l") && e.contains("--monitor-binary"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_installed_binary_with_the_vouched_hash_is_left_alone() {
        let fx = fixture(Some("https://rel.example"), &[("x86_64", A)]);
        let host = ScriptedHost::new(|_| ok(&format!("{A}\n755 root\nstamped\n")));
        let changes = plan_for(&host, &fx.ctx(), MAC_ARM, None).await.unwrap();
        assert!(changes.is_empty(), "{changes:?}");
        // Right, but hashed for want of a stamp: only the stamp is written.
        let host = ScriptedHost::new(|_| ok(&format!("{A}\n755 root\n")));
        let changes = plan_for(&host, &fx.ctx(), MAC_ARM, None).await.unwrap();
        let steps: Vec<Step> = changes.into_iter().flat_map(|c| c.steps).collect();
        assert!(installed(&steps).is_empty(), "{steps:?}");
    }

    /// The stamp on a real file system: it vouches while the file is the one
    /// stamped, and a file changed in place or replaced (same size, same
    /// mtime) is hashed again.
    #[test]
    fn the_stamp_vouches_only_for_the_file_it_stamped() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("ocfo");
        let stamp = dir.path().join("state/ocfo-binary.stamp");
        let (bin_s, stamp_s) = (bin.to_str().unwrap(), stamp.to_str().unwrap());
        std::fs::write(&bin, b"the binary").unwrap();
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let sh = |script: &str, args: &[&str]| {
            let out = std::process::Command::new("sh")
                .args(["-c", script, "sh"])
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let real = crate::sha256_hex(b"the binary");
        // A stamp claiming another hash proves the stamp, not a hash, answered.
        std::fs::create_dir(dir.path().join("state")).unwrap();
        sh(super::STAMP, &[bin_s, stamp_s, A]);
        let out = sh(super::INSTALLED, &[bin_s, stamp_s]);
        assert!(
            out.starts_with(&format!("{A}\n")) && out.ends_with("stamped\n"),
            "{out}"
        );
        // Changed in place, same size, mtime put back: hashed again.
        let mtime = std::fs::metadata(&bin).unwrap().modified().unwrap();
        std::fs::write(&bin, b"THE BINARY").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&bin)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let out = sh(super::INSTALLED, &[bin_s, stamp_s]);
        assert!(out.starts_with(&crate::sha256_hex(b"THE BINARY")), "{out}");
        assert!(!out.contains("stamped"), "{out}");
        // Stamped again with its real hash; then replaced by another file.
        sh(super::STAMP, &[bin_s, stamp_s, &real]);
        let other = dir.path().join("other");
        std::fs::write(&other, b"the binarY").unwrap();
        std::fs::rename(&other, &bin).unwrap();
        let out = sh(super::INSTALLED, &[bin_s, stamp_s]);
        assert!(out.starts_with(&crate::sha256_hex(b"the binarY")), "{out}");
        // A stamp that is a link is not read.
        std::fs::remove_file(&stamp).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &stamp).unwrap();
        std::fs::write(dir.path().join("elsewhere"), format!("x\n{A}\n")).unwrap();
        assert!(!sh(super::INSTALLED, &[bin_s, stamp_s]).contains("stamped"));
    }

    /// The laptop's own hash is read back while the binary is unchanged and
    /// computed again once it changed.
    #[test]
    fn the_laptops_own_hash_is_kept_until_the_binary_changes() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("ocfo");
        std::fs::write(&exe, b"v1").unwrap();
        let own = |cache: &std::path::Path| super::OwnSum {
            cache: cache.to_path_buf(),
            ..super::OwnSum::new(&exe).unwrap()
        };
        let cache = dir.path().join("cache/ocfo/own-sha256");
        assert_eq!(own(&cache).sum(b"v1"), crate::sha256_hex(b"v1"));
        // Kept: a lying cache entry for the same key is what comes back.
        let key = own(&cache).key;
        std::fs::write(&cache, format!("{key} {A}\n")).unwrap();
        assert_eq!(own(&cache).sum(b"v1"), A);
        // Rebuilt: a new key, hashed again.
        std::fs::write(&exe, b"v2").unwrap();
        assert_eq!(own(&cache).sum(b"v2"), crate::sha256_hex(b"v2"));
    }

    #[test]
    fn sums_are_read_per_file() {
        let s = format!(
            "{A}  ocfo-1.2.3-x86_64-linux\n{}  *ocfo-1.2.3-aarch64-linux\n",
            B.to_uppercase()
        );
        assert_eq!(sum_for(&s, "ocfo-1.2.3-x86_64-linux").as_deref(), Some(A));
        assert_eq!(sum_for(&s, "ocfo-1.2.3-aarch64-linux").as_deref(), Some(B));
        assert_eq!(sum_for(&s, "ocfo-1.2.3-x86_64-linu"), None);
        assert_eq!(
            sum_for("xyz  ocfo-1.2.3-x86_64-linux", "ocfo-1.2.3-x86_64-linux"),
            None
        );
    }

    /// The fetch verifies before it installs, with a temp file beside the
    /// target and an atomic rename, and curl cannot hang.
    #[test]
    fn the_fetch_checks_before_it_renames() {
        let check = FETCH.find("sha256sum -c").unwrap();
        let run = FETCH.find(r#""$tmp" --version"#).unwrap();
        let mv = FETCH.find(r#"mv -f -- "$tmp" "$dest""#).unwrap();
        assert!(check < run && run < mv);
        assert!(FETCH.contains("--connect-timeout") && FETCH.contains("--max-time"));
        assert!(FETCH.contains(r#"ocfo_fetch "$url" "$tmp" "$max""#));
        assert!(FETCH.contains(r#"dirname -- "$dest""#));
    }
}
