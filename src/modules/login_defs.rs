//! Settings in `/etc/login.defs` (a distribution file, so ocfo edits its
//! lines rather than owning it): each key's active line is replaced, or a
//! commented-out one is uncommented, or the line is appended.

use serde::Deserialize;
use std::collections::BTreeMap;

use super::{facts, fail, ModuleError, Script};
use crate::engine::{Change, Host, Step};
use crate::layout::LOGIN_DEFS;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// `KEY: value`, e.g. `UMASK: "027"`.
    pub values: BTreeMap<String, String>,
}

fn valid(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '/')
}

pub async fn plan<H: Host>(args: &Args, host: &H) -> Result<Vec<Change>, ModuleError> {
    if let Some((k, v)) = args.values.iter().find(|(k, v)| !valid(k) || !valid(v)) {
        return Err(fail(format!(
            "login_defs: unsupported key or value `{k} {v}`"
        )));
    }
    let out = facts(
        host,
        &Script::new(FACTS)
            .arg(LOGIN_DEFS)
            .args(args.values.keys().cloned()),
    )
    .await?;
    let now: BTreeMap<&str, &str> = out.lines().filter_map(|l| l.split_once(' ')).collect();
    let mut changes = Vec::new();
    for (k, v) in &args.values {
        let cur = now.get(k.as_str()).copied().unwrap_or("-");
        if cur == v {
            continue;
        }
        changes.push(Change::new(
            format!("set {k} {v} in {LOGIN_DEFS} (now: {cur})"),
            vec![Step::run(Script::new(SET).args([LOGIN_DEFS, k, v]))],
        ));
    }
    Ok(changes)
}

/// $1 the file, then the keys: one `KEY value` line each (`-` when unset).
const FACTS: &str = r#"f=$1; shift
for k in "$@"; do
  v=$(awk -v k="$k" '$1 == k { print $2; exit }' "$f" 2>/dev/null); echo "$k ${v:--}"
done"#;

/// Replace the active line, else the first commented-out one, else append.
/// $1 the file, $2 the key, $3 the value (both plain words, checked above).
const SET: &str = r#"set -e
f=$1 k=$2 v=$3
if grep -qE "^[[:space:]]*$k[[:space:]]" "$f"; then sed -i -E "s|^[[:space:]]*$k[[:space:]].*|$k\t\t$v|" "$f"
elif grep -qE "^#[[:space:]]*$k[[:space:]]" "$f"; then sed -i -E "0,/^#[[:space:]]*$k[[:space:]]/s|^#[[:space:]]*$k[[:space:]].*|$k\t\t$v|" "$f"
else printf '%s\t\t%s\n' "$k" "$v" >> "$f"; fi"#;

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
    #[test]
    fn keys_and_values_are_plain_words() {
        assert!(
            super::valid("UMASK") && super::valid("027") && super::valid("SHA_CRYPT_MIN_ROUNDS")
        );
        assert!(!super::valid("a b") && !super::valid("x|y") && !super::valid(""));
    }
}
