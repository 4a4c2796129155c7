//! The conversation replica on a node (docs/monitor.md, "Conversations"):
//! OpenClaw's git backup repository in the gateway user's home, and what
//! root does with it through that user: fetch the other node's snapshot,
//! restore it beside the live database, put it in place offline, hand the
//! standby's back, and read or move the remote's hand-back refs.
//!
//! Shared by both halves of the hand-over: the standby's monitor
//! (`actions::SystemActions`) and the primary's taker (`take_back`). Every
//! command runs as the gateway's user in a transient unit (`as_user`), never
//! as root in that user's files.

use std::time::Duration;

use super::actions::{as_user, git_as, openclaw_as, with_openclaw_env};
use super::config::{ConversationConfig, OpenClawCli};
use super::conversation::{self, Snapshot};
use crate::child::run;

pub struct Replica<'a> {
    pub cli: &'a OpenClawCli,
    pub conversation: &'a ConversationConfig,
}

/// Where OpenClaw restores a snapshot to: beside the live database.
fn restored_path(c: &ConversationConfig) -> String {
    format!("{}.ocfo-restored", c.database)
}

fn agent_dir(c: &ConversationConfig) -> Result<&str, String> {
    std::path::Path::new(&c.database)
        .parent()
        .and_then(|p| p.to_str())
        .ok_or_else(|| format!("no folder in {}", c.database))
}

/// Reads a small root-owned file; anything odd (missing, huge) is `None`.
pub(super) fn read_small(path: &str) -> Option<String> {
    use std::io::Read;
    let f = std::fs::File::open(path).ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut s = String::new();
    f.take(64 * 1024).read_to_string(&mut s).ok()?;
    Some(s)
}

impl Replica<'_> {
    async fn git(&self, args: &[&str]) -> Result<String, String> {
        let c = self.conversation;
        run(
            &mut git_as(&self.cli.user, &c.repo, c.timeout, args),
            c.timeout + Duration::from_secs(5),
        )
        .await
    }

    /// The snapshot this node activated last (root's record).
    pub fn activated(&self) -> Option<String> {
        read_small(&self.conversation.activated_file).map(|s| s.trim().to_string())
    }

    /// The newest snapshot on the other node's branch (`conversation.branch`),
    /// fetched into the replica, if this node has not activated it yet.
    pub async fn fetch(&self) -> Result<Option<Snapshot>, String> {
        let c = self.conversation;
        match self
            .git(&["fetch", "-q", "origin", c.branch.as_str()])
            .await
        {
            Ok(_) => {}
            // A node that never had a conversation has no snapshot yet.
            Err(e) if e.contains("couldn't find remote ref") => return Ok(None),
            Err(e) => return Err(format!("fetching {} failed: {e}", c.branch)),
        }
        let line = self
            .git(&["log", "-1", "--format=%H %ct", "FETCH_HEAD"])
            .await?;
        let newest = Snapshot::parse(&line)?;
        Ok(conversation::is_new(&newest, self.activated().as_deref()).then_some(newest))
    }

    /// Restores `snapshot` beside the live database (OpenClaw's `backup git
    /// restore`), at the lowest CPU priority: the node answers meanwhile.
    pub async fn restore(&self, snapshot: &Snapshot) -> Result<(), String> {
        let c = self.conversation;
        let target = restored_path(c);
        // OpenClaw restores only to a new file, in a folder only its user
        // can write: the agent's own.
        let mut prepare = as_user(&self.cli.user, c.timeout, &[], None);
        prepare
            .args(["sh", "-c", "mkdir -p -m 0700 -- \"$1\" && rm -f -- \"$2\" \"$2-wal\" \"$2-shm\" \"$2-journal\"", "sh"])
            .args([agent_dir(c)?, target.as_str()]);
        run(&mut prepare, c.timeout + Duration::from_secs(5)).await?;
        openclaw_as(
            self.cli,
            &[
                "backup",
                "git",
                "restore",
                "--repository",
                &c.repo,
                "--ref",
                &snapshot.commit,
                "--agent",
                &c.agent,
                "--target",
                &target,
            ],
            c.timeout,
            true,
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "`openclaw backup git restore` of {} failed: {e}",
                snapshot.commit
            )
        })
    }

    /// With the gateway stopped: puts the restored database in place,
    /// keeping this node's own auth profiles, and records the snapshot.
    pub async fn activate(&self, snapshot: &Snapshot) -> Result<(), String> {
        let c = self.conversation;
        let keep = format!("{}/ocfo-replaced", agent_dir(c)?);
        let mut swap = as_user(
            &self.cli.user,
            c.timeout,
            &[("PATH", "/usr/bin:/bin")],
            None,
        );
        swap.args(["sh", "-c", conversation::ACTIVATE, "sh"])
            .args([c.database.as_str(), &restored_path(c), &keep])
            .args(conversation::OWN_TABLES);
        run(&mut swap, c.timeout + Duration::from_secs(5)).await?;
        crate::fsutil::write_atomic(
            std::path::Path::new(&c.activated_file),
            format!("{}\n", snapshot.commit).as_bytes(),
            0o600,
        )
        .map_err(|e| format!("cannot write {}: {e}", c.activated_file))
    }

    /// The standby's side: a last snapshot of its conversation (its push
    /// script in hand-back mode: it waits for a quiet moment, snapshots and
    /// pushes to its own branch and to the hand-back branch). `None`: this
    /// node never had a conversation.
    pub async fn hand_back(&self, push_script: &str) -> Result<Option<Snapshot>, String> {
        let c = self.conversation;
        let mut cmd = with_openclaw_env(self.cli, c.timeout);
        cmd.args(["nice", "-n", "10", push_script, "handback"]);
        let out = run(&mut cmd, c.timeout + Duration::from_secs(5)).await?;
        match out.lines().rev().find(|l| !l.trim().is_empty()) {
            None => Ok(None),
            Some(line) if line.trim() == "none" => Ok(None),
            Some(line) => Snapshot::parse(line).map(Some),
        }
    }

    /// The commits the remote's `branches` point at (absent: not there).
    pub async fn remote_heads(&self, branches: &[&str]) -> Result<Vec<Option<String>>, String> {
        let refs: Vec<String> = branches.iter().map(|b| format!("refs/heads/{b}")).collect();
        let mut args = vec!["ls-remote", "origin"];
        args.extend(refs.iter().map(String::as_str));
        let out = self.git(&args).await?;
        Ok(heads_in(&out, &refs))
    }

    /// Points the remote's `branch` at `commit` (which the replica holds),
    /// or deletes it.
    ///
    /// `commit` is often not a descendant of what the branch holds (another
    /// replica's snapshot: in a chain the standby's answer follows
    /// standby2's), and a remote that refuses non-fast-forward updates
    /// (`receive.denyNonFastForwards`, a protected branch) refuses even
    /// `--force`: then the branch is deleted and pushed anew, as the
    /// snapshot script does with its hand-back branch.
    pub async fn set_remote_branch(
        &self,
        branch: &str,
        commit: Option<&str>,
    ) -> Result<(), String> {
        let delete = format!(":refs/heads/{branch}");
        let failed = |e: String| format!("updating {branch} on the workspace remote failed: {e}");
        let Some(commit) = commit else {
            return self
                .git(&["push", "-q", "origin", &delete])
                .await
                .map(drop)
                .map_err(failed);
        };
        let spec = format!("{commit}:refs/heads/{branch}");
        if self
            .git(&["push", "-q", "--force", "origin", &spec])
            .await
            .is_ok()
        {
            return Ok(());
        }
        let _ = self.git(&["push", "-q", "origin", &delete]).await;
        self.git(&["push", "-q", "origin", &spec])
            .await
            .map(drop)
            .map_err(failed)
    }
}

/// Each of `refs` in `git ls-remote` output: its object id, or `None` when
/// absent or not an object id. Only an object id goes on into a later
/// `git push` spec, never something the remote made look like an option.
fn heads_in(out: &str, refs: &[String]) -> Vec<Option<String>> {
    refs.iter()
        .map(|r| {
            out.lines().find_map(|l| {
                let (commit, name) = l.split_once('\t')?;
                let commit = commit.trim();
                let id = matches!(commit.len(), 40 | 64)
                    && commit.bytes().all(|b| b.is_ascii_hexdigit());
                (name.trim() == r && id).then(|| commit.to_ascii_lowercase())
            })
        })
        .collect()
}

/// Waits, within `limit`, for a moment with no turn running and then
/// closes OpenClaw's admission (`gateway.suspend.prepare` without `drain`:
/// "busy" takes no lease and keeps admitting, so a message that arrives
/// meanwhile is still answered now). `call` sends the request, however the
/// caller reaches the gateway.
pub async fn quiesce<F, Fut>(limit: Duration, call: F) -> Result<(), String>
where
    F: Fn(serde_json::Value) -> Fut,
    Fut: std::future::Future<Output = Result<String, String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let request = format!("ocfo-quiesce-{}", crate::clock::unix_ms());
    loop {
        let answer =
            call(serde_json::json!({ "requestId": request, "terminalPolicy": "terminate" }))
                .await?;
        let answer: serde_json::Value =
            serde_json::from_str(&answer).map_err(|e| format!("gateway.suspend.prepare: {e}"))?;
        match answer["status"].as_str() {
            Some("ready") => return Ok(()),
            Some("busy") => {}
            _ => return Err(format!("gateway.suspend.prepare answered {answer}")),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "still busy after {}s: {}",
                limit.as_secs(),
                answer["blockers"]
            ));
        }
        let retry = answer["retryAfterMs"]
            .as_u64()
            .unwrap_or(500)
            .clamp(200, 2000);
        tokio::time::sleep(Duration::from_millis(retry)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_object_ids_are_read_from_ls_remote() {
        let refs = vec![
            "refs/heads/ocfo/conversation-handback".to_string(),
            "refs/heads/ocfo/conversation-returned".to_string(),
        ];
        let id = "AEF82CDAD040D62C9E80A8BA308DC6C8029BEDC6";
        let out = format!("{id}\trefs/heads/ocfo/conversation-handback\n");
        assert_eq!(heads_in(&out, &refs), [Some(id.to_ascii_lowercase()), None]);
        let hostile = "--receive-pack=sh\trefs/heads/ocfo/conversation-handback\n";
        assert_eq!(heads_in(hostile, &refs), [None, None]);
    }
}
