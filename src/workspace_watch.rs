//! The primary's workspace watcher (`ocfo workspace-watch`, run by
//! `ocfo-workspace-watch.service` as the gateway user): pushes the OpenClaw
//! workspace seconds after the agent writes to it, so a standby that promotes
//! pulls what was written just before the fault (docs/monitor.md,
//! "Continuity").
//!
//! inotify (through the `notify` crate) says *that* something changed; the
//! push script (`workspace-push`, the same one the timer runs) decides *what*:
//! it commits and pushes only when git sees a difference. Idle costs nothing
//! but a blocked thread; a write storm costs one push every `max_delay`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// When a push is due, from what happened: pure, so it is tested on a
/// paused clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Push once the workspace has been quiet this long (a burst of writes
    /// becomes one commit)...
    pub quiet: Duration,
    /// ...but never later than this after the first unpushed write (a
    /// storm that never goes quiet still reaches the remote).
    pub max_delay: Duration,
    /// A push even without an event: a missed event (the inotify queue
    /// overflowed, a folder the watch could not add) is caught here.
    pub interval: Duration,
    /// The first wait after a failed push; it doubles up to `interval`.
    pub retry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            quiet: Duration::from_secs(1),
            max_delay: Duration::from_secs(5),
            interval: Duration::from_secs(300),
            retry: Duration::from_secs(5),
        }
    }
}

/// What the watcher knows: unpushed writes since when, and how the last
/// push went.
#[derive(Debug, Clone)]
pub struct Schedule {
    timing: Timing,
    first_unpushed: Option<Instant>,
    last_event: Option<Instant>,
    last_push: Instant,
    failures: u32,
}

impl Schedule {
    pub fn new(timing: Timing, now: Instant) -> Self {
        Schedule {
            timing,
            first_unpushed: None,
            last_event: None,
            last_push: now,
            failures: 0,
        }
    }

    /// Something in the workspace changed at `now`.
    pub fn changed(&mut self, now: Instant) {
        self.first_unpushed.get_or_insert(now);
        self.last_event = Some(now);
    }

    /// When the next push is due.
    pub fn due(&self) -> Instant {
        let t = &self.timing;
        if self.failures > 0 {
            let backoff = t
                .retry
                .saturating_mul(1 << self.failures.min(16).saturating_sub(1))
                .min(t.interval);
            return self.last_push + backoff;
        }
        match (self.first_unpushed, self.last_event) {
            (Some(first), Some(last)) => (last + t.quiet).min(first + t.max_delay),
            _ => self.last_push + t.interval,
        }
    }

    /// A push began at `started` and ended `ok` or not. Changes seen while it
    /// ran (after `started`) stay unpushed: the script may have read the tree
    /// before them.
    pub fn pushed(&mut self, started: Instant, ok: bool, now: Instant) {
        self.last_push = now;
        if !ok {
            self.failures = self.failures.saturating_add(1);
            return;
        }
        self.failures = 0;
        match self.last_event {
            Some(last) if last > started => self.first_unpushed = Some(last),
            _ => {
                self.first_unpushed = None;
                self.last_event = None;
            }
        }
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// Whether an event at `path` is a change to the workspace's own files: git's
/// folder is written by every push, and opening or reading a file is not a
/// change.
pub fn is_change(root: &Path, path: &Path, kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    let relevant = matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Remove(_)
            | EventKind::Modify(_)
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
    );
    relevant
        && !path
            .strip_prefix(root)
            .unwrap_or(path)
            .components()
            .any(|c| c.as_os_str() == ".git")
}

pub struct Options {
    pub workspace: PathBuf,
    /// The push script (`layout::PUSH_SCRIPT`): commits and pushes if git
    /// sees a change, quiet otherwise.
    pub push_script: PathBuf,
    pub timing: Timing,
    /// The longest one push may take before it is killed.
    pub push_timeout: Duration,
}

/// Runs until SIGTERM or SIGINT, then pushes once more (the gateway stopped
/// just before: `PartOf=`, ordered after it) and returns.
pub async fn run(opts: Options) -> Result<(), String> {
    // Capacity 1: a burst of events is one wake-up, and memory is bounded
    // whatever the agent writes.
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let root = opts.workspace.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        match res {
            Ok(ev) => {
                if ev.paths.iter().any(|p| is_change(&root, p, &ev.kind)) {
                    let _ = tx.try_send(());
                }
            }
            // An overflowed queue or a lost watch: push to be safe.
            Err(_) => {
                let _ = tx.try_send(());
            }
        }
    })
    .map_err(|e| format!("cannot start watching: {e}"))?;
    // Symlinks are not followed: the agent could point one at `/`.
    let _ = notify::Watcher::configure(
        &mut watcher,
        notify::Config::default().with_follow_symlinks(false),
    );
    let mode = match notify::Watcher::watch(
        &mut watcher,
        &opts.workspace,
        notify::RecursiveMode::Recursive,
    ) {
        Ok(()) => "on change",
        // Out of inotify watches, say: still a push every interval.
        Err(e) => {
            tracing::warn!(
                "cannot watch {}: {e}; pushing every {}s only",
                opts.workspace.display(),
                opts.timing.interval.as_secs()
            );
            "every interval only"
        }
    };
    tracing::info!(workspace = %opts.workspace.display(), mode, "watching the workspace");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    // Whatever was written before the watch began is pushed first.
    let mut schedule = Schedule::new(opts.timing, Instant::now());
    schedule.changed(Instant::now());
    loop {
        tokio::select! {
            got = rx.recv() => match got {
                Some(()) => schedule.changed(Instant::now()),
                None => return Err("the workspace watch ended".into()),
            },
            _ = tokio::time::sleep_until(schedule.due()) => {
                let started = Instant::now();
                let ok = push(&opts).await;
                schedule.pushed(started, ok, Instant::now());
                if !ok {
                    tracing::warn!(failures = schedule.failures(), "workspace push failed; retrying");
                }
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    drop(watcher);
    tracing::info!("stopping: a last push");
    if push(&opts).await {
        Ok(())
    } else {
        Err("the last workspace push failed".into())
    }
}

async fn push(opts: &Options) -> bool {
    let began = std::time::Instant::now();
    let mut cmd = Command::new(&opts.push_script);
    match crate::child::run(&mut cmd, opts.push_timeout).await {
        Ok(out) => {
            tracing::debug!(ms = began.elapsed().as_millis() as u64, "{out}");
            true
        }
        Err(e) => {
            tracing::warn!("{e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, EventKind, ModifyKind, RemoveKind,
    };

    fn timing() -> Timing {
        Timing::default()
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_pushed_once_the_workspace_is_quiet() {
        let t0 = Instant::now();
        let mut s = Schedule::new(timing(), t0);
        assert_eq!(s.due(), t0 + Duration::from_secs(300), "idle: the interval");
        s.changed(t0);
        s.changed(t0 + Duration::from_millis(400));
        s.changed(t0 + Duration::from_millis(800));
        assert_eq!(s.due(), t0 + Duration::from_millis(1800));
        s.pushed(
            t0 + Duration::from_millis(1800),
            true,
            t0 + Duration::from_millis(2100),
        );
        assert_eq!(
            s.due(),
            t0 + Duration::from_millis(2100) + Duration::from_secs(300)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_storm_that_never_goes_quiet_is_pushed_every_max_delay() {
        let t0 = Instant::now();
        let mut s = Schedule::new(timing(), t0);
        let mut pushes = Vec::new();
        let mut now = t0;
        // A write every 200 ms for a minute.
        while now < t0 + Duration::from_secs(60) {
            s.changed(now);
            now += Duration::from_millis(200);
            if now >= s.due() {
                let started = now;
                now += Duration::from_millis(300); // the push itself
                s.pushed(started, true, now);
                pushes.push(started - t0);
            }
        }
        assert!((11..=13).contains(&pushes.len()), "{pushes:?}");
        for pair in pushes.windows(2) {
            assert!(
                pair[1] - pair[0] <= Duration::from_millis(5600),
                "{pushes:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_during_a_push_is_pushed_next() {
        let t0 = Instant::now();
        let mut s = Schedule::new(timing(), t0);
        s.changed(t0);
        let started = t0 + Duration::from_secs(1);
        s.changed(started + Duration::from_millis(100));
        s.pushed(started, true, started + Duration::from_millis(500));
        assert_eq!(s.due(), started + Duration::from_millis(1100));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_pushes_back_off_up_to_the_interval_and_keep_the_change() {
        let t0 = Instant::now();
        let mut s = Schedule::new(timing(), t0);
        s.changed(t0);
        let mut now = t0 + Duration::from_secs(1);
        let mut waits = Vec::new();
        for _ in 0..10 {
            s.pushed(now, false, now);
            waits.push((s.due() - now).as_secs());
            now = s.due();
        }
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300, 300, 300]);
        s.pushed(now, true, now);
        assert_eq!(s.failures(), 0);
        assert_eq!(s.due(), now + Duration::from_secs(300));
    }

    #[test]
    fn only_changes_to_the_agents_files_count() {
        let root = Path::new("/home/oc/workspace");
        let write = EventKind::Access(AccessKind::Close(AccessMode::Write));
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(is_change(root, &root.join("MEMORY.md"), &write));
        assert!(is_change(root, &root.join("memory/2026-12-06.md"), &data));
        assert!(is_change(
            root,
            &root.join("new"),
            &EventKind::Create(CreateKind::File)
        ));
        assert!(is_change(
            root,
            &root.join("old"),
            &EventKind::Remove(RemoveKind::Any)
        ));
        // Reading is not writing, and every push writes in .git.
        assert!(!is_change(
            root,
            &root.join("MEMORY.md"),
            &EventKind::Access(AccessKind::Open(AccessMode::Any))
        ));
        assert!(!is_change(
            root,
            &root.join("MEMORY.md"),
            &EventKind::Access(AccessKind::Close(AccessMode::Read))
        ));
        assert!(!is_change(root, &root.join(".git/index"), &data));
        assert!(!is_change(
            root,
            &root.join(".git/objects/ab/cdef"),
            &EventKind::Create(CreateKind::File)
        ));
        // A file merely named like git's folder elsewhere is the agent's.
        assert!(is_change(root, &root.join("notes/.gitkeep"), &data));
    }

    /// The real watcher on a temp folder with a push "script" that counts:
    /// writes are pushed within quiet + a little, a write in `.git` is not.
    #[tokio::test]
    async fn the_watcher_pushes_after_a_write_and_once_more_at_the_end() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        std::fs::create_dir_all(ws.join(".git")).unwrap();
        let count = tmp.path().join("count");
        let script = tmp.path().join("push");
        std::fs::write(
            &script,
            format!("#!/bin/sh\necho x >> '{}'\n", count.display()),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let pushes = || {
            std::fs::read_to_string(&count)
                .map(|t| t.lines().count())
                .unwrap_or(0)
        };
        let opts = Options {
            workspace: ws.clone(),
            push_script: script.clone(),
            timing: Timing {
                quiet: Duration::from_millis(200),
                ..Timing::default()
            },
            push_timeout: Duration::from_secs(10),
        };
        let task = tokio::spawn(run(opts));
        // The first push: whatever was there before the watch.
        let wait_for = |n: usize| async move {
            for _ in 0..100 {
                if pushes() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("{n} pushes expected, {} seen", pushes());
        };
        wait_for(1).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(pushes(), 1);
        std::fs::create_dir_all(ws.join("memory")).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::fs::write(ws.join("memory/today.md"), "kumquat\n").unwrap();
        let written = std::time::Instant::now();
        wait_for(2).await;
        assert!(written.elapsed() < Duration::from_secs(2));
        // git's own folder is not the agent's writing.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let before = pushes();
        std::fs::write(ws.join(".git/index"), "x").unwrap();
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(pushes(), before);
        // SIGTERM is for the process; here the task is dropped instead.
        task.abort();
    }
}
