//! Root never follows the gateway user's paths. The modules' real scripts
//! run here, locally, as root, against a home owned by `nobody` in which the
//! "agent" planted links to root's things: every one must fail naming the
//! link, and leave the target as it was. (Root and runuser are needed, so
//! these are system tests.)

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;

use super::testkit::Fixture;
use super::{plan, ModuleCall};
use crate::engine::{CmdOutput, Host, HostError, Step};
use crate::shell::Script;

/// Runs scripts with the local `sh`, files through the transport's own
/// write script: the same bytes a remote root shell would get.
struct LocalRoot;

fn sh(script: &str, stdin: Option<&[u8]>) -> CmdOutput {
    use std::io::Write;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // A script that refuses (the point of these tests) may exit before it
    // reads its input: a broken pipe here is that refusal, not a failure.
    let _ = input.write_all(stdin.unwrap_or_default());
    drop(input);
    let out = child.wait_with_output().unwrap();
    CmdOutput {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Host for LocalRoot {
    fn name(&self) -> &str {
        "local"
    }

    async fn run(&self, script: &str, stdin: Option<&[u8]>) -> Result<CmdOutput, HostError> {
        Ok(sh(script, stdin))
    }

    async fn put(
        &self,
        path: &str,
        content: &[u8],
        mode: u32,
        owner: &str,
        group: &str,
    ) -> Result<(), HostError> {
        let script = crate::ssh::put_script(path, mode, owner, group);
        let out = sh(&script.render(), Some(content));
        if out.success() {
            Ok(())
        } else {
            Err(HostError::command("local", &script.describe(), &out))
        }
    }
}

/// A scratch tree: `home` owned by nobody (the gateway user), `victim` a
/// root-owned 0700 folder with a root-owned 0600 file: what the agent wants.
struct Tree {
    _dir: tempfile::TempDir,
    home: PathBuf,
    victim: PathBuf,
    victim_file: PathBuf,
}

fn tree() -> Tree {
    assert!(
        nix_uid() == 0,
        "system test prerequisite missing: root (runuser, chown)"
    );
    let dir = scratch();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    chown(&home, "nobody:nogroup");
    let victim = dir.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o700)).unwrap();
    let victim_file = victim.join("secret");
    std::fs::write(&victim_file, "root's\n").unwrap();
    std::fs::set_permissions(&victim_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    Tree {
        _dir: dir,
        home,
        victim,
        victim_file,
    }
}

/// A scratch folder (0755) in folders only root can write: `/tmp` is
/// writable by everyone, so the path guard rightly refuses anything in it.
fn scratch() -> tempfile::TempDir {
    let base = Path::new("/var/lib/ocfo-guard-tests");
    std::fs::create_dir_all(base).unwrap();
    std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tempfile::tempdir_in(base).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn nix_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
}

fn chown(p: &Path, who: &str) {
    assert!(Command::new("chown")
        .args(["-h", who])
        .arg(p)
        .status()
        .unwrap()
        .success());
}

fn assert_untouched(t: &Tree) {
    let d = std::fs::metadata(&t.victim).unwrap();
    assert_eq!((d.uid(), d.gid(), d.mode() & 0o7777), (0, 0, 0o700));
    let f = std::fs::metadata(&t.victim_file).unwrap();
    assert_eq!((f.uid(), f.gid(), f.mode() & 0o7777), (0, 0, 0o600));
    assert_eq!(std::fs::read_to_string(&t.victim_file).unwrap(), "root's\n");
    let names: Vec<_> = std::fs::read_dir(&t.victim)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["secret"], "something was written into the victim");
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

async fn run_steps(call: serde_json::Value) -> Result<(), String> {
    let fx = Fixture::load(|_| {});
    let call: ModuleCall = serde_json::from_value(call).unwrap();
    let changes = plan(&call, &LocalRoot, &fx.ctx())
        .await
        .map_err(|e| e.to_string())?;
    for step in changes.iter().flat_map(|c| &c.steps) {
        step.execute(&LocalRoot).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `ln -s /root ~/.ssh`: the next deploy must not hand the folder to the
/// user (it did: `install -d -o openclaw` follows the link).
#[tokio::test]
async fn directory_refuses_a_planted_link() {
    let t = tree();
    let ssh = t.home.join(".ssh");
    symlink(&t.victim, &ssh).unwrap();
    chown(&ssh, "nobody:nogroup");
    let err = run_steps(json!({"directory": {
        "path": s(&ssh), "mode": "0700", "owner": "nobody", "group": "nogroup"
    }}))
    .await
    .unwrap_err();
    assert!(
        err.contains(&s(&ssh)) && err.contains("symbolic link"),
        "{err}"
    );
    assert_untouched(&t);
    // Planted between the facts and the step: the step checks again.
    let step = Step::run(Script::new(super::directory::ENSURE).guarded().args([
        s(&ssh).as_str(),
        "0700",
        "nobody",
        "nogroup",
    ]));
    let err = step.execute(&LocalRoot).await.unwrap_err().to_string();
    assert!(err.contains("symbolic link"), "{err}");
    assert_untouched(&t);
}

#[tokio::test]
async fn directory_in_the_users_home_is_made_as_the_user() {
    let t = tree();
    let dir = t.home.join(".openclaw");
    run_steps(json!({"directory": {
        "path": s(&dir), "mode": "0700", "owner": "nobody", "group": "nogroup"
    }}))
    .await
    .unwrap();
    let m = std::fs::metadata(&dir).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o700);
    assert_eq!(m.uid(), 65534);
    // Converged: a second plan finds nothing to do.
    run_steps(json!({"directory": {
        "path": s(&dir), "mode": "0700", "owner": "nobody", "group": "nogroup"
    }}))
    .await
    .unwrap();
    // Root-owned inside the user's home: refused, the user could swap it.
    let err = run_steps(json!({"directory": {
        "path": s(&t.home.join("rootdir")), "mode": "0755", "owner": "root"
    }}))
    .await
    .unwrap_err();
    assert!(err.contains("belongs to nobody"), "{err}");
}

/// A file write into the user's folders: refused through a linked folder or
/// at a linked file, done as the user otherwise.
#[tokio::test]
async fn put_refuses_links_and_writes_as_the_user() {
    let t = tree();
    let ssh = t.home.join(".ssh");
    symlink(&t.victim, &ssh).unwrap();
    let key = s(&ssh.join("ocfo_workspace_key"));
    let err = LocalRoot
        .put(&key, b"KEY", 0o600, "nobody", "nogroup")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&s(&ssh)) && err.contains("symbolic link"),
        "{err}"
    );
    assert_untouched(&t);

    let oc = t.home.join(".openclaw");
    std::fs::create_dir(&oc).unwrap();
    chown(&oc, "nobody:nogroup");
    let config = oc.join("openclaw.json");
    symlink(&t.victim_file, &config).unwrap();
    let err = LocalRoot
        .put(&s(&config), b"{}", 0o600, "nobody", "nogroup")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("symbolic link"), "{err}");
    assert_untouched(&t);

    std::fs::remove_file(&config).unwrap();
    LocalRoot
        .put(&s(&config), b"{}", 0o600, "nobody", "nogroup")
        .await
        .unwrap();
    let m = std::fs::metadata(&config).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (65534, 0o600));
    assert_eq!(std::fs::read(&config).unwrap(), b"{}");
    // A root-owned file in the user's folder: refused.
    let err = LocalRoot
        .put(&s(&oc.join("x")), b"x", 0o644, "root", "root")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("belongs to nobody"), "{err}");
}

/// files' chown/chmod fix on a file that became a link.
#[tokio::test]
async fn fixing_mode_and_owner_never_follows_a_link() {
    let t = tree();
    let f = t.home.join("openclaw.json");
    symlink(&t.victim_file, &f).unwrap();
    let step = Step::run(Script::new(super::files::FIX_META).guarded().args([
        s(&f).as_str(),
        "0644",
        "nobody",
        "nogroup",
    ]));
    let err = step.execute(&LocalRoot).await.unwrap_err().to_string();
    assert!(err.contains("symbolic link"), "{err}");
    assert_untouched(&t);
}

/// `openclaw plugins install` keeps the config aside with `cp -p`; with
/// `openclaw.json.ocfo-keep` linked to a root file, root's cp wrote
/// through it. Now the user does it, and cannot.
#[tokio::test]
async fn plugin_install_keeps_the_config_as_the_user() {
    let t = tree();
    let oc = t.home.join(".openclaw");
    std::fs::create_dir(&oc).unwrap();
    let config = oc.join("openclaw.json");
    std::fs::write(&config, "{\"ours\":1}").unwrap();
    // A root file the user can read (like /etc/passwd): `[ -f keep ]` is
    // then true through the link.
    let public = t.home.parent().unwrap().join("public");
    std::fs::write(&public, "root's, world-readable\n").unwrap();
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
    symlink(&public, oc.join("openclaw.json.ocfo-keep")).unwrap();
    for p in [&oc, &config, &oc.join("openclaw.json.ocfo-keep")] {
        chown(p, "nobody:nogroup");
    }
    // A prefix whose `openclaw` does nothing: the plugin is then missing.
    let prefix = t.home.parent().unwrap().join("prefix");
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::write(prefix.join("bin/openclaw"), "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(
        prefix.join("bin/openclaw"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let step = Step::run(Script::new(super::openclaw::PLUGIN_INSTALL).args([
        "nobody",
        &s(&t.home),
        &s(&prefix),
        "/nonexistent",
        &s(&config),
        "@openclaw/x@1.0.0",
        "1.0.0",
        "x",
    ]));
    let err = step.execute(&LocalRoot).await.unwrap_err().to_string();
    assert!(err.contains("not installed"), "{err}");
    assert_untouched(&t);
    assert_eq!(
        std::fs::read_to_string(&public).unwrap(),
        "root's, world-readable\n"
    );
    // And the keep-and-restore did not leave the config a link to it.
    let m = std::fs::symlink_metadata(&config).unwrap();
    assert!(m.file_type().is_file(), "{m:?}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "{\"ours\":1}");
}

/// A folder of root's that `owner:group MODE` others may write in, beside
/// the tree's victim.
fn shared(t: &Tree, name: &str, who: &str, mode: u32) -> PathBuf {
    let d = t.home.parent().unwrap().join(name);
    std::fs::create_dir(&d).unwrap();
    chown(&d, who);
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
    d
}

/// Issue 16, finding 2, the experiment itself: in a root-owned folder the
/// agent's group may write (`root:nogroup 2770`, an operator's "shared with
/// the agent" folder), the agent swaps root's temp file for a link while
/// root writes it; root's `chown`/`chmod` then landed on the link's target
/// (a root 0600 file became nobody's, 0644). Root's stdin is held open
/// here so the swap happens at a known moment.
#[tokio::test]
async fn a_temp_file_in_a_group_writable_root_folder_cannot_be_swapped() {
    use std::io::Write;
    let t = tree();
    let dir = shared(&t, "shared", "root:nogroup", 0o2770);
    let target = dir.join("notes.txt");
    let script = crate::ssh::put_script(&s(&target), 0o644, "nobody", "nogroup");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script.render())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let temp = loop {
        let found = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| s(p).contains(".ocfo-"));
        if found.is_some() || child.try_wait().unwrap().is_some() {
            break found;
        }
        assert!(start.elapsed().as_secs() < 10, "the write script hangs");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    if let Some(temp) = &temp {
        // The agent (nobody) swaps root's temp file for a link.
        let planted = Command::new("runuser")
            .args([
                "-u",
                "nobody",
                "--",
                "sh",
                "-c",
                r#"rm -f -- "$1" && ln -s -- "$2" "$1""#,
                "sh",
            ])
            .arg(temp)
            .arg(&t.victim_file)
            .status()
            .unwrap();
        assert!(planted.success());
    }
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(b"agent's notes\n");
    }
    let out = child.wait_with_output().unwrap();
    assert_untouched(&t);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(&s(&dir)) && err.contains("nogroup"),
        "{err}"
    );
}

/// World-writable, sticky or not (`/tmp`): anyone can create names there,
/// so no path under it is root's to write, chmod or create.
#[tokio::test]
async fn a_world_writable_folder_is_nobody_s_to_trust() {
    let t = tree();
    for mode in [0o1777, 0o777] {
        let dir = shared(&t, &format!("public-{mode:o}"), "root:root", mode);
        let err = LocalRoot
            .put(&s(&dir.join("f")), b"x", 0o600, "root", "root")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("writable by everyone"), "{err}");
        assert!(!dir.join("f").exists());
        // A link planted in advance is refused too, and never followed.
        let f = dir.join("g");
        symlink(&t.victim_file, &f).unwrap();
        for script in [super::files::FIX_META, super::directory::ENSURE] {
            let step = Step::run(Script::new(script).guarded().args([
                s(&dir.join("sub")).as_str(),
                "0644",
                "nobody",
                "nogroup",
            ]));
            let err = step.execute(&LocalRoot).await.unwrap_err().to_string();
            assert!(err.contains("writable by everyone"), "{err}");
        }
        assert!(!dir.join("sub").exists());
        assert_untouched(&t);
    }
}

/// `root:daemon 2770`: a folder shared with the group of user `daemon` (its
/// own group, like `root:openclaw` for the gateway user) is that user's,
/// as its home would be: written as `daemon`, and a root file there refused.
#[tokio::test]
async fn a_folder_shared_with_a_users_own_group_is_that_users() {
    let t = tree();
    let dir = shared(&t, "shared", "root:daemon", 0o2770);
    let f = dir.join("f");
    LocalRoot
        .put(&s(&f), b"x", 0o640, "daemon", "daemon")
        .await
        .unwrap();
    let m = std::fs::metadata(&f).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1, 1, 0o640));
    let err = LocalRoot
        .put(&s(&dir.join("g")), b"x", 0o600, "root", "root")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("belongs to daemon"), "{err}");
    assert!(!dir.join("g").exists());
}

/// Issue 16, finding 1: `openclaw config validate` needs the gateway's
/// environment, and root used to source the file (`set -a; . gateway.env`)
/// then call `runuser` by name: a `PATH` in `openclaw.env` ran the agent's
/// tools as root. Now only the gateway user's shell reads the file, fed on
/// its stdin, in a clean environment; root calls every tool by its path.
#[tokio::test]
async fn validate_runs_no_planted_tool_as_root_and_leaks_no_root_environment() {
    let t = tree();
    let base = t.home.parent().unwrap().to_path_buf();
    let marks = shared(&t, "marks", "root:root", 0o1777);
    let planted = base.join("planted");
    std::fs::create_dir(&planted).unwrap();
    for tool in ["runuser", "mktemp", "rm", "ln", "env", "cat", "sh", "id"] {
        let p = planted.join(tool);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho \"{tool} $(/usr/bin/id -u)\" >> '{}/ran'\n",
                marks.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let prefix = base.join("prefix");
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::write(
        prefix.join("bin/openclaw"),
        "#!/bin/sh\nprintf '%s\\n' \"uid=$(/usr/bin/id -u)\" \"x=$OCFO_X\" \"root=${OCFO_ROOT_ONLY-unset}\" \"args=$*\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        prefix.join("bin/openclaw"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let env = base.join("gateway.env");
    let entries = vec![
        ("PATH".to_string(), s(&planted)),
        ("OCFO_X".to_string(), "va\"l$ue `x`".to_string()),
    ];
    std::fs::write(&env, crate::secrets::env_file::format("t", &entries, false)).unwrap();
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o600)).unwrap();
    let script = Script::new(super::openclaw::VALIDATE).args([
        s(&env),
        "nobody".into(),
        s(&t.home),
        s(&prefix),
        "/nonexistent".into(),
        s(&t.home.join("openclaw.json")),
    ]);
    let out = Command::new("sh")
        .arg("-c")
        .arg(script.render())
        .env("OCFO_ROOT_ONLY", "root's own")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let ran = std::fs::read_to_string(marks.join("ran")).unwrap_or_default();
    assert!(
        !ran.lines().any(|l| l.ends_with(" 0")),
        "root ran planted tools:\n{ran}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        "uid=65534\nx=va\"l$ue `x`\nroot=unset\nargs=config validate --json\n"
    );
    assert_untouched(&t);
}
