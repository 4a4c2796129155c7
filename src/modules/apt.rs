//! Debian packages. The package cache is refreshed only when something must
//! be installed and the cache is older than `cache_valid_time`, so a converged
//! host never reports a change.

use std::time::Duration;

use serde::Deserialize;

use super::{facts, ModuleError, Script};
use crate::engine::{Change, Host, Step};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub packages: Vec<String>,
    /// Refresh the cache before installing when it is older than this.
    #[serde(default = "default_valid", with = "crate::modules::apt::duration")]
    pub cache_valid_time: Duration,
}

fn default_valid() -> Duration {
    Duration::from_secs(24 * 3600)
}

pub(crate) mod duration {
    use std::time::Duration;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        crate::inventory::units::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// One line per package, `NAME STATUS` (`absent` when dpkg knows none); a
/// package that is absent or only half-installed is "missing". The last line
/// is the cache age. One `dpkg-query` for all plain names (each run reads
/// dpkg's whole status file, and this runs for every package task of every
/// deploy); a name with an architecture or a pattern is asked alone, as
/// dpkg-query matches it.
const FACTS: &str = r#"plain=
for p in "$@"; do
  case $p in *[:*?[]*|*[[:space:]]*) ;; *) case " $plain " in *" $p "*) ;; *) plain="$plain $p" ;; esac ;; esac
done
all=
if [ -n "$plain" ]; then all=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' -- $plain 2>/dev/null); fi
for p in "$@"; do
  case $p in
    *[:*?[]*|*[[:space:]]*) s=$(dpkg-query -W -f='${db:Status-Status}' -- "$p" 2>/dev/null) ;;
    *) s=$(printf '%s\n' "$all" | while read -r n st; do [ "$n" = "$p" ] && printf '%s' "$st"; done) ;;
  esac
  echo "$p ${s:-absent}"
done
t=$(stat -c %Y /var/cache/apt/pkgcache.bin 2>/dev/null || echo 0); echo "cache_age $(( $(date +%s) - t ))""#;

const INSTALL: &str =
    "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -- \"$@\" >/dev/null";

pub async fn plan<H: Host>(args: &Args, host: &H) -> Result<Vec<Change>, ModuleError> {
    if args.packages.is_empty() {
        return Ok(Vec::new());
    }
    let out = facts(host, &Script::new(FACTS).args(&args.packages)).await?;
    let (missing, cache_age) = parse(&out);
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let mut steps = Vec::new();
    let stale = cache_age.is_none_or(|age| age > args.cache_valid_time);
    if stale {
        steps.push(Step::run(Script::new("apt-get update -qq")));
    }
    steps.push(Step::run(Script::new(INSTALL).args(&missing)));
    Ok(vec![Change::new(
        format!(
            "install {}{}",
            missing.join(", "),
            if stale {
                " (after refreshing the package cache)"
            } else {
                ""
            }
        ),
        steps,
    )])
}

fn parse(out: &str) -> (Vec<String>, Option<Duration>) {
    let mut missing = Vec::new();
    let mut age = None;
    for line in out.lines() {
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next()) {
            (Some("cache_age"), Some(secs)) => {
                age = secs
                    .parse::<i64>()
                    .ok()
                    .map(|s| Duration::from_secs(s.max(0) as u64));
            }
            (Some(pkg), Some("installed")) => {
                let _ = pkg;
            }
            (Some(pkg), Some(_)) => missing.push(pkg.to_string()),
            _ => {}
        }
    }
    (missing, age)
}

impl super::Module for Args {
    const PREFETCHABLE: bool = true;

    async fn plan<H: Host>(
        &self,
        host: &H,
        _ctx: &crate::engine::TaskContext<'_>,
    ) -> Result<Vec<Change>, ModuleError> {
        plan(self, host).await
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use std::time::Duration;

    /// The facts script against a fake `dpkg-query` that answers like the
    /// real one: one line per installed match, an error for an unknown name.
    #[test]
    fn one_dpkg_query_answers_every_plain_name() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let fake = dir.path().join("dpkg-query");
        let fake_script = r#"#!/bin/sh
echo "$*" >> LOG
f=${2#-f=}; shift 3
found=
for p in "$@"; do
  case $p in
    ufw) names=ufw; st=installed ;;
    libc6|libc6:amd64) names="libc6 libc6"; st=installed ;;
    curl) names=curl; st=half-installed ;;
    *) echo "dpkg-query: no packages found matching $p" >&2; continue ;;
  esac
  found=1
  for n in $names; do
    if [ "$f" = '${db:Status-Status}' ]; then printf '%s' "$st"; else printf '%s %s\n' "$n" "$st"; fi
  done
done
[ -n "$found" ]"#;
        std::fs::write(
            &fake,
            fake_script.replace("LOG", &log.display().to_string()),
        )
        .unwrap();
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(&fake)
            .status()
            .unwrap();
        let script = crate::shell::Script::new(super::FACTS)
            .args(["ufw", "fail2ban", "curl", "libc6:amd64", "libc6", "ufw"])
            .render();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
            .output()
            .unwrap();
        let out = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[..6],
            [
                "ufw installed",
                "fail2ban absent",
                "curl half-installed",
                "libc6:amd64 installedinstalled",
                "libc6 installedinstalled",
                "ufw installed",
            ]
        );
        assert!(lines[6].starts_with("cache_age "), "{out}");
        // Each line exactly as one `dpkg-query` per name printed it (a
        // package installed for two architectures included).
        let (missing, _) = parse(&out);
        assert_eq!(missing, ["fail2ban", "curl", "libc6:amd64", "libc6"]);
        let calls = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            calls.lines().filter(|l| l.starts_with("-W")).count(),
            2,
            "all names at once, then libc6:amd64 alone: {calls}"
        );
    }

    #[test]
    fn finds_missing_packages_and_cache_age() {
        let (missing, age) =
            parse("ufw installed\nfail2ban absent\ncurl half-installed\ncache_age 7200\n");
        assert_eq!(missing, ["fail2ban", "curl"]);
        assert_eq!(age, Some(Duration::from_secs(7200)));
    }
}
