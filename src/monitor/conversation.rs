//! Conversation catch-up: after a promotion the standby answers at once with
//! what it has, then restores the primary's newest conversation snapshot
//! and restarts its gateway on it, because OpenClaw activates a restored
//! database only offline (docs/monitor.md, "Conversations").
//!
//! The snapshots are OpenClaw's own `backup git create --exclude-secrets`
//! (per-table JSONL, no auth profiles) on the primary's branch of the
//! workspace remote; the restore is its `backup git restore`. What is ours
//! is only which snapshot, when, and the offline swap below.

use serde::{Deserialize, Serialize};

/// One snapshot on the other node's branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Its git commit.
    pub commit: String,
    /// When it was taken (unix seconds, the commit's time).
    pub taken_at: u64,
}

impl Snapshot {
    /// From `git log -1 --format='%H %ct'`.
    pub fn parse(line: &str) -> Result<Snapshot, String> {
        let mut parts = line.split_whitespace();
        let (Some(commit), Some(at), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("unexpected `git log` answer: {line:?}"));
        };
        if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("not a commit id: {commit:?}"));
        }
        let taken_at = at
            .parse()
            .map_err(|_| format!("not a commit time: {at:?}"))?;
        Ok(Snapshot {
            commit: commit.to_ascii_lowercase(),
            taken_at,
        })
    }
}

/// Whether `newest` must be activated, given the snapshot this node
/// activated last (none: never).
pub fn is_new(newest: &Snapshot, activated: Option<&str>) -> bool {
    activated != Some(newest.commit.as_str())
}

/// The tables OpenClaw's redacted backup leaves out that belong to this
/// node: its own auth profiles (OAuth tokens, API keys). They are copied
/// from the database being replaced into the restored one, so the standby
/// keeps its own credentials and never gets the primary's.
pub const OWN_TABLES: &[&str] = &["auth_profile_store", "auth_profile_state"];

/// The offline swap, as the gateway's user with its gateway stopped:
/// $1 the live database, $2 the restored one, $3 the folder the replaced
/// database is kept in (one generation), then the own tables.
/// sqlite3 does the copy (never a copy of live files: the gateway is
/// stopped, and sqlite reads the old database with its WAL).
pub const ACTIVATE: &str = r#"set -eu
db=$1; new=$2; keep=$3; shift 3
[ -s "$new" ] || { echo "no restored database at $new" >&2; exit 1; }
if [ -e "$db" ]; then
  for t in "$@"; do
    schema=$(sqlite3 -batch -bail "$db" ".schema $t")
    [ -n "$schema" ] || continue
    have=$(sqlite3 -batch -bail "$new" "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '$t'")
    {
      [ "$have" != 0 ] || printf '%s\n' "$schema"
      printf "ATTACH '%s' AS own;\nINSERT OR REPLACE INTO main.%s SELECT * FROM own.%s;\n" "$db" "$t" "$t"
    } | sqlite3 -batch -bail "$new"
  done
fi
mkdir -p -m 0700 "$keep"
rm -f "$keep"/openclaw-agent.sqlite*
for f in "$db" "$db-wal" "$db-shm"; do
  [ ! -e "$f" ] || mv -f "$f" "$keep/"
done
mv "$new" "$db"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_read_from_git_log() {
        let s = Snapshot::parse("3AE7D4F0B7B625FC49A096E4094505B255415D3D 1796593123\n").unwrap();
        assert_eq!(s.commit, "3ae7d4f0b7b625fc49a096e4094505b255415d3d");
        assert_eq!(s.taken_at, 1796593123);
        for bad in [
            "",
            "abc 1",
            "3ae7d4f0b7b625fc49a096e4094505b255415d3d",
            "3ae7d4f0b7b625fc49a096e4094505b255415d3d x",
            "3ae7d4f0b7b625fc49a096e4094505b255415d3d 1 2",
        ] {
            assert!(Snapshot::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_a_snapshot_not_yet_activated_is_new() {
        let s = Snapshot {
            commit: "a".repeat(40),
            taken_at: 1,
        };
        assert!(is_new(&s, None));
        assert!(is_new(&s, Some(&"b".repeat(40))));
        assert!(!is_new(&s, Some(&"a".repeat(40))));
    }
}
