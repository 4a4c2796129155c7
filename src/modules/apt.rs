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

/// `dpkg-query` prints one line per known package; a package that is absent
/// or only half-installed is "missing". The last line is the cache age.
const FACTS: &str = r#"for p in "$@"; do s=$(dpkg-query -W -f='${db:Status-Status}' -- "$p" 2>/dev/null); echo "$p ${s:-absent}"; done
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

#[cfg(test)]
mod tests {
    use super::parse;
    use std::time::Duration;

    #[test]
    fn finds_missing_packages_and_cache_age() {
        let (missing, age) =
            parse("ufw installed\nfail2ban absent\ncurl half-installed\ncache_age 7200\n");
        assert_eq!(missing, ["fail2ban", "curl"]);
        assert_eq!(age, Some(Duration::from_secs(7200)));
    }
}
