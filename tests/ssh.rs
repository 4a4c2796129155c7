#![cfg(feature = "system-tests")]
//! The SSH transport against a real OpenSSH server started by the test on a
//! free port of 127.0.0.1 (needs root and openssh-server: CI installs it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use ocfo::engine::Host;
use ocfo::ssh::{ConnectOptions, HostSession, SshError, SshTarget};

mod common;

struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn require(cond: bool, what: &str) {
    assert!(cond, "system test prerequisite missing: {what}. Run as root with openssh-server and openssh-client installed (apt-get install openssh-server openssh-client), or deselect system tests with `cargo test --no-default-features`.");
}

fn keygen(path: &Path, passphrase: &str) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", passphrase, "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs");
    assert!(st.success());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sshd {
    fn start() -> Sshd {
        Sshd::start_with("")
    }

    /// With extra sshd_config lines.
    fn start_with(extra: &str) -> Sshd {
        require(nix_is_root(), "root");
        let sshd = common::tools::sshd();
        require(
            common::tools::apt("ssh-keygen", "openssh-client").is_file(),
            "ssh-keygen",
        );
        // Not under /tmp: files are written there through the path guard,
        // which refuses folders everyone may write (docs/security.md).
        let base = Path::new("/var/lib/ocfo-ssh-tests");
        std::fs::create_dir_all(base).unwrap();
        let dir = tempfile::tempdir_in(base).unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"), "");
        keygen(&d.join("client_key"), "");
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\nSubsystem sftp internal-sftp\n{extra}",
            hk = d.join("host_key").display(),
            ak = d.join("authorized_keys").display(),
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let child = Command::new(&sshd)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .expect("sshd starts");
        // Owned by the guard from here: its Drop kills and reaps sshd.
        let sshd = Sshd { child, port, dir };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return sshd;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let d = sshd.dir.path();
        panic!(
            "sshd did not listen: {}",
            std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
        );
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn host_line(&self) -> String {
        let pubkey = std::fs::read_to_string(self.path("host_key.pub")).unwrap();
        let mut parts = pubkey.split_whitespace();
        format!(
            "[127.0.0.1]:{} {} {}\n",
            self.port,
            parts.next().unwrap(),
            parts.next().unwrap()
        )
    }

    fn target(&self, known_hosts: &Path, key: &str) -> SshTarget {
        SshTarget {
            name: "testhost".into(),
            hostname: "127.0.0.1".into(),
            port: self.port,
            user: "root".into(),
            identity_files: vec![self.path(key)],
            identities_only: false,
            known_hosts: known_hosts.to_path_buf(),
        }
    }
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false)
}

/// The tests change SSH_AUTH_SOCK, which is process-wide: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

async fn no_agent() -> tokio::sync::MutexGuard<'static, ()> {
    let guard = serial().await;
    // The tests choose their agent explicitly.
    std::env::remove_var("SSH_AUTH_SOCK");
    guard
}

async fn connect(
    sshd: &Sshd,
    known_hosts: &Path,
    accept_new: bool,
) -> Result<HostSession, SshError> {
    let opts = ConnectOptions {
        accept_new_host_keys: accept_new,
        ..Default::default()
    };
    HostSession::connect(&sshd.target(known_hosts, "client_key"), opts).await
}

#[tokio::test]
async fn host_keys_unknown_accepted_then_verified_and_changed_refused() {
    let _serial = no_agent().await;
    let sshd = Sshd::start();
    let kh = sshd.path("kh/known_hosts");
    let err = connect(&sshd, &kh, false)
        .await
        .err()
        .expect("unknown host refused");
    let msg = err.to_string();
    assert!(
        msg.contains("SHA256:") && msg.contains("--accept-new-host-keys"),
        "{msg}"
    );
    assert!(!kh.exists(), "nothing recorded without the flag");

    let s = connect(&sshd, &kh, true)
        .await
        .expect("accept-new records the key");
    s.close().await;
    assert!(std::fs::read_to_string(&kh)
        .unwrap()
        .contains(&format!("[127.0.0.1]:{}", sshd.port)));
    // Now verified without the flag.
    connect(&sshd, &kh, false)
        .await
        .expect("recorded key verifies")
        .close()
        .await;

    // A changed key is refused, even with accept-new.
    let other = sshd.path("other_key");
    keygen(&other, "");
    let pubkey = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let mut p = pubkey.split_whitespace();
    let forged = sshd.path("forged_known_hosts");
    std::fs::write(
        &forged,
        format!(
            "[127.0.0.1]:{} {} {}\n",
            sshd.port,
            p.next().unwrap(),
            p.next().unwrap()
        ),
    )
    .unwrap();
    let err = connect(&sshd, &forged, true)
        .await
        .err()
        .expect("changed key refused");
    let msg = err.to_string();
    assert!(
        msg.contains("HOST KEY CHANGED") && msg.contains("forged_known_hosts:1"),
        "{msg}"
    );
}

#[tokio::test]
async fn hashed_known_hosts_entry_verifies() {
    let _serial = no_agent().await;
    let sshd = Sshd::start();
    let kh = sshd.path("hashed_known_hosts");
    std::fs::write(&kh, sshd.host_line()).unwrap();
    let st = Command::new("ssh-keygen")
        .args(["-q", "-H", "-f"])
        .arg(&kh)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(std::fs::read_to_string(&kh).unwrap().starts_with("|1|"));
    connect(&sshd, &kh, false)
        .await
        .expect("hashed entry verifies")
        .close()
        .await;
}

#[tokio::test]
async fn exec_status_stderr_stdin_and_many_concurrent_channels() {
    let _serial = no_agent().await;
    let sshd = Sshd::start();
    let kh = sshd.path("known_hosts");
    std::fs::write(&kh, sshd.host_line()).unwrap();
    let s = connect(&sshd, &kh, false).await.unwrap();
    let out = s.run("echo out; echo err >&2; exit 3", None).await.unwrap();
    assert_eq!(
        (out.status, out.stdout.as_str(), out.stderr.as_str()),
        (Some(3), "out\n", "err\n")
    );
    let out = s.run("cat | tr a-z A-Z", Some(b"hello")).await.unwrap();
    assert_eq!(out.stdout, "HELLO");
    let err = s
        .check("ls /nonexistent-ocfo")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("testhost")
            && err.contains("ls /nonexistent-ocfo")
            && err.contains("No such file"),
        "{err}"
    );
    let cmds: Vec<String> = (0..20).map(|i| format!("sleep 0.2; echo {i}")).collect();
    let runs = cmds.iter().map(|c| s.run(c, None));
    let start = std::time::Instant::now();
    let outs = futures::future::join_all(runs).await;
    for (i, o) in outs.into_iter().enumerate() {
        let o = o.unwrap_or_else(|e| {
            panic!(
                "{e}\nsshd log:\n{}",
                std::fs::read_to_string(sshd.path("sshd.log")).unwrap_or_default()
            )
        });
        assert_eq!(o.stdout.trim(), i.to_string());
    }
    // 20 × 0.2 s would take 4 s one after the other; in batches of 8
    // channels 0.6 s. The margin is for a loaded 2-core machine.
    assert!(
        start.elapsed() < Duration::from_millis(3500),
        "channels run concurrently over one connection: {:?}",
        start.elapsed()
    );
    s.close().await;
}

#[tokio::test]
async fn file_writes_are_atomic_with_mode_and_owner() {
    let _serial = no_agent().await;
    let sshd = Sshd::start();
    let kh = sshd.path("known_hosts");
    std::fs::write(&kh, sshd.host_line()).unwrap();
    let s = connect(&sshd, &kh, false).await.unwrap();
    let dir = sshd.path("remote/sub");
    let target = dir.join("file.bin");
    let t = target.to_str().unwrap();
    let big: Vec<u8> = (0..10 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    s.put(t, &big, 0o640, "root", "root").await.unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), big);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o640
    );
    s.put(t, b"small", 0o600, "root", "root").await.unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"small");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temp files left: {leftovers:?}");
    assert_eq!(
        s.read_file(t).await.unwrap().as_deref(),
        Some(&b"small"[..])
    );
    assert_eq!(s.read_file("/nonexistent/x").await.unwrap(), None);
    s.close().await;
}

#[tokio::test]
async fn agent_auth_and_encrypted_key_hint() {
    let _serial = serial().await;
    let sshd = Sshd::start();
    let kh = sshd.path("known_hosts");
    std::fs::write(&kh, sshd.host_line()).unwrap();
    // An encrypted key and no agent: the error says to ssh-add it.
    let enc = sshd.path("enc_key");
    keygen(&enc, "correct horse");
    std::fs::copy(enc.with_extension("pub"), sshd.path("authorized_keys")).unwrap();
    std::env::remove_var("SSH_AUTH_SOCK");
    let err = HostSession::connect(&sshd.target(&kh, "enc_key"), ConnectOptions::default())
        .await
        .err()
        .expect("encrypted key cannot be used without an agent");
    let msg = err.to_string();
    assert!(
        msg.contains("passphrase-protected") && msg.contains("ssh-add"),
        "{msg}"
    );
    assert!(!msg.contains("correct horse"));

    // A real agent holding an unencrypted key: used first.
    let agent_key = sshd.path("agent_key");
    keygen(&agent_key, "");
    std::fs::copy(
        agent_key.with_extension("pub"),
        sshd.path("authorized_keys"),
    )
    .unwrap();
    let sock = sshd.path("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .args(["-D", "-a"])
        .arg(&sock)
        .spawn()
        .expect("ssh-agent");
    for _ in 0..50 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = Command::new("ssh-add")
        .arg(&agent_key)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    std::env::set_var("SSH_AUTH_SOCK", &sock);
    // The identity file is the (unauthorized) encrypted one: only the agent can succeed.
    let s = HostSession::connect(&sshd.target(&kh, "enc_key"), ConnectOptions::default()).await;
    std::env::remove_var("SSH_AUTH_SOCK");
    let _ = agent.kill();
    let _ = agent.wait();
    let s = s.expect("agent auth works");
    assert_eq!(s.run("echo ok", None).await.unwrap().stdout, "ok\n");
    s.close().await;
}

#[tokio::test]
async fn many_sequential_commands_on_one_connection() {
    let _serial = no_agent().await;
    let sshd = Sshd::start();
    let kh = sshd.path("known_hosts");
    std::fs::write(&kh, sshd.host_line()).unwrap();
    let s = connect(&sshd, &kh, false).await.unwrap();
    for i in 0..30 {
        let cmd = match i % 3 {
            0 => format!("echo {i}"),
            1 => format!("sleep 0.05; echo {i}"),
            _ => format!("cat >/dev/null; echo {i}"),
        };
        let stdin = (i % 3 == 2).then_some(&b"data"[..]);
        let out = s
            .run(&cmd, stdin)
            .await
            .unwrap_or_else(|e| panic!("command {i}: {e}"));
        assert_eq!(out.stdout.trim(), i.to_string());
    }
    s.close().await;
}

#[tokio::test]
async fn more_concurrent_commands_than_sshd_max_sessions_queue() {
    let _serial = no_agent().await;
    let sshd = Sshd::start();
    let kh = sshd.path("known_hosts");
    std::fs::write(&kh, sshd.host_line()).unwrap();
    let s = connect(&sshd, &kh, false).await.unwrap();
    let cmds: Vec<String> = (0..20).map(|i| format!("sleep 0.2; echo {i}")).collect();
    let runs = cmds.iter().map(|c| s.run(c, None));
    let outs = futures::future::join_all(runs).await;
    let errs: Vec<_> = outs
        .iter()
        .enumerate()
        .filter(|(_, o)| o.is_err())
        .map(|(i, _)| i)
        .collect();
    assert!(errs.is_empty(), "failed: {errs:?}");
}

#[tokio::test]
async fn known_hosts_fails_closed() {
    let _serial = no_agent().await;
    let sshd = Sshd::start();

    // Unreadable (a directory in its place): refused with the reason, not
    // taken for an empty file in which the host is simply new.
    let dir = sshd.path("kh_dir");
    std::fs::create_dir(&dir).unwrap();
    let err = connect(&sshd, &dir, true)
        .await
        .err()
        .expect("unreadable known_hosts refused");
    let msg = err.to_string();
    assert!(
        msg.contains("kh_dir") && msg.contains("not a regular file"),
        "{msg}"
    );
    assert!(dir.is_dir());

    // A non-UTF-8 byte elsewhere in the file does not hide the recorded key:
    // a changed key is still refused, even with --accept-new-host-keys, and
    // the file is left exactly as it was.
    let other = sshd.path("other_key");
    keygen(&other, "");
    let pubkey = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let mut p = pubkey.split_whitespace();
    let mut content = b"# caf\xe9\n".to_vec();
    content.extend_from_slice(
        format!(
            "[127.0.0.1]:{} {} {}\n",
            sshd.port,
            p.next().unwrap(),
            p.next().unwrap()
        )
        .as_bytes(),
    );
    let kh = sshd.path("latin1_known_hosts");
    std::fs::write(&kh, &content).unwrap();
    let err = connect(&sshd, &kh, true)
        .await
        .err()
        .expect("changed key refused");
    let msg = err.to_string();
    assert!(
        msg.contains("HOST KEY CHANGED") && msg.contains("latin1_known_hosts:2"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&kh).unwrap(), content);
}

struct Agent {
    child: Child,
    sock: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    fn start(sock: PathBuf) -> Agent {
        let child = Command::new("ssh-agent")
            .args(["-D", "-a"])
            .arg(&sock)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ssh-agent");
        let agent = Agent { child, sock };
        for _ in 0..100 {
            if agent.sock.exists() {
                return agent;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("ssh-agent did not create {}", agent.sock.display());
    }

    fn add(&self, key: &Path, passphrase: Option<&str>) {
        let mut cmd = Command::new("ssh-add");
        cmd.arg(key).env("SSH_AUTH_SOCK", &self.sock);
        if let Some(p) = passphrase {
            // ssh-add reads the passphrase through SSH_ASKPASS when forced.
            let askpass = key.with_extension("askpass");
            std::fs::write(&askpass, format!("#!/bin/sh\necho '{p}'\n")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
            cmd.env("SSH_ASKPASS", &askpass)
                .env("SSH_ASKPASS_REQUIRE", "force")
                .env("DISPLAY", ":0");
        }
        let out = cmd.stdin(std::process::Stdio::null()).output().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}

#[tokio::test]
async fn a_configured_key_is_offered_before_many_agent_keys() {
    let _serial = serial().await;
    // Two tries only: five agent keys offered first would lock us out.
    let sshd = Sshd::start_with("MaxAuthTries 2\n");
    let kh = sshd.path("known_hosts");
    std::fs::write(&kh, sshd.host_line()).unwrap();
    let agent = Agent::start(sshd.path("agent.sock"));
    for i in 0..5 {
        let k = sshd.path(&format!("wrong{i}"));
        keygen(&k, "");
        agent.add(&k, None);
    }
    std::env::set_var("SSH_AUTH_SOCK", &agent.sock);
    let mut target = sshd.target(&kh, "client_key");
    target.identities_only = true;
    let plain = HostSession::connect(&target, ConnectOptions::default()).await;

    // A passphrase-protected configured key is used through the agent that
    // holds it, still before (and instead of) the five wrong ones.
    let enc = sshd.path("enc_key");
    keygen(&enc, "correct horse");
    std::fs::copy(enc.with_extension("pub"), sshd.path("authorized_keys")).unwrap();
    agent.add(&enc, Some("correct horse"));
    let mut target = sshd.target(&kh, "enc_key");
    target.identities_only = true;
    let via_agent = HostSession::connect(&target, ConnectOptions::default()).await;
    std::env::remove_var("SSH_AUTH_SOCK");

    let log = || std::fs::read_to_string(sshd.path("sshd.log")).unwrap_or_default();
    let s = plain.unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", log()));
    assert_eq!(s.run("echo ok", None).await.unwrap().stdout, "ok\n");
    s.close().await;
    let s = via_agent.unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", log()));
    s.close().await;
}

#[tokio::test]
async fn an_identity_file_that_is_a_fifo_does_not_hang() {
    let _serial = no_agent().await;
    let sshd = Sshd::start();
    let kh = sshd.path("known_hosts");
    std::fs::write(&kh, sshd.host_line()).unwrap();
    let fifo = sshd.path("fifo_key");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let mut target = sshd.target(&kh, "fifo_key");
    target.identities_only = true;
    let start = std::time::Instant::now();
    let connecting = HostSession::connect(&target, ConnectOptions::default());
    let err = tokio::time::timeout(Duration::from_secs(20), connecting)
        .await
        .expect("connect returns instead of blocking on the FIFO")
        .err()
        .expect("no usable key");
    let msg = err.to_string();
    assert!(
        msg.contains("fifo_key (unreadable: it is not a regular file"),
        "{msg}"
    );
    assert!(start.elapsed() < Duration::from_secs(20));
}

/// The gateway user (here `nobody`) planted `~/.ssh -> victim`: a write
/// there must fail naming the link and leave the victim as it was; a write
/// into its own folders is done as that user.
#[tokio::test]
async fn file_writes_never_follow_a_link_in_a_users_folder() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let _serial = no_agent().await;
    let sshd = Sshd::start();
    let kh = sshd.path("known_hosts");
    std::fs::write(&kh, sshd.host_line()).unwrap();
    let s = connect(&sshd, &kh, false).await.unwrap();
    let base = sshd.path("tree");
    let (home, victim) = (base.join("home"), base.join("victim"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir(&victim).unwrap();
    for (p, mode) in [
        (sshd.path(""), 0o755),
        (base.clone(), 0o755),
        (victim.clone(), 0o700),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let chown = |p: &Path| {
        assert!(Command::new("chown")
            .args(["-h", "nobody:nogroup"])
            .arg(p)
            .status()
            .unwrap()
            .success())
    };
    chown(&home);
    std::os::unix::fs::symlink(&victim, home.join(".ssh")).unwrap();
    let key = home.join(".ssh/ocfo_workspace_key");
    let err = s
        .put(key.to_str().unwrap(), b"KEY", 0o600, "nobody", "nogroup")
        .await
        .unwrap_err()
        .to_string();
    let link = home.join(".ssh");
    assert!(
        err.contains(link.to_str().unwrap()) && err.contains("symbolic link"),
        "{err}"
    );
    let v = std::fs::metadata(&victim).unwrap();
    assert_eq!((v.uid(), v.mode() & 0o7777), (0, 0o700));
    assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 0);
    let err = s.read_file(key.to_str().unwrap()).await.unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");

    let config = home.join(".openclaw/openclaw.json");
    s.put(config.to_str().unwrap(), b"{}", 0o600, "nobody", "nogroup")
        .await
        .unwrap();
    let m = std::fs::metadata(&config).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (65534, 0o600));
    assert_eq!(std::fs::read(&config).unwrap(), b"{}");
    s.close().await;
}

/// Makes a local user (idempotent) and, with `nopasswd`, gives it
/// passwordless sudo; without, removes any sudo rule (sudo wants a password).
fn sudo_user(name: &str, nopasswd: bool) {
    // Installed like the other tools when the machine lacks it (CI's does).
    common::tools::apt("sudo", "sudo");
    let _ = Command::new("useradd")
        .args(["-m", "-s", "/bin/sh", name])
        .output();
    // A locked account (`!`) is refused by sshd without PAM; `*` is not.
    let _ = Command::new("usermod").args(["-p", "*", name]).output();
    let rule = format!("/etc/sudoers.d/ocfo-test-{name}");
    if nopasswd {
        std::fs::write(&rule, format!("{name} ALL=(ALL) NOPASSWD: ALL\n")).unwrap();
    } else {
        std::fs::write(&rule, format!("{name} ALL=(ALL) ALL\n")).unwrap();
    }
    std::fs::set_permissions(&rule, std::os::unix::fs::PermissionsExt::from_mode(0o440)).unwrap();
}

async fn connect_as(sshd: &Sshd, known_hosts: &Path, user: &str) -> Result<HostSession, SshError> {
    let mut target = sshd.target(known_hosts, "client_key");
    target.user = user.into();
    HostSession::connect(&target, ConnectOptions::default()).await
}

/// A non-root login with NOPASSWD sudo: commands run as root in privileged
/// shells with the same results as a root login (status, stdout, stderr,
/// exact stdin, files), concurrently, and each one counted as a round trip.
#[tokio::test]
async fn a_sudo_login_runs_commands_as_root_in_privileged_shells() {
    let _serial = no_agent().await;
    sudo_user("ocfosudo", true);
    let sshd = Sshd::start();
    let kh = sshd.path("known_hosts");
    std::fs::write(&kh, sshd.host_line()).unwrap();
    let s = connect_as(&sshd, &kh, "ocfosudo")
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}\nsshd log:\n{}",
                std::fs::read_to_string(sshd.path("sshd.log")).unwrap_or_default()
            )
        });
    let out = s.run("id -u; echo err >&2; exit 3", None).await.unwrap();
    assert_eq!(
        (out.status, out.stdout.as_str(), out.stderr.as_str()),
        (Some(3), "0\n", "err\n")
    );
    // Exact stdin, with binary-ish bytes and no trailing newline.
    let out = s
        .run("cat | od -An -c | tr -s ' '", Some(b"a\nb"))
        .await
        .unwrap();
    assert_eq!(out.stdout.trim(), "a \\n b");
    // A script that ignores a large stdin does not break the framing.
    let big = vec![b'x'; 3 * 1024 * 1024];
    let out = s.run("echo ignored", Some(&big)).await.unwrap();
    assert_eq!(out.stdout, "ignored\n");
    let out = s.run("wc -c", Some(&big)).await.unwrap();
    assert_eq!(out.stdout.trim(), big.len().to_string());
    // Output without a final newline, and a large output.
    let out = s.run("printf abc", None).await.unwrap();
    assert_eq!(out.stdout, "abc");
    let out = s
        .run("head -c 5000000 /dev/zero | tr '\\0' y", None)
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), 5_000_000);
    // A file write as root, with mode and owner.
    let path = sshd.dir.path().join("sudo-written");
    s.put(path.to_str().unwrap(), b"secret\n", 0o600, "root", "root")
        .await
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"secret\n");
    // Concurrent commands share a few shells and still run in parallel.
    let cmds: Vec<String> = (0..12).map(|i| format!("sleep 0.3; echo {i}")).collect();
    let start = std::time::Instant::now();
    let outs = futures::future::join_all(cmds.iter().map(|c| s.run(c, None))).await;
    for (i, o) in outs.into_iter().enumerate() {
        assert_eq!(o.unwrap().stdout.trim(), i.to_string());
    }
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // 6 sequential commands and one write, then 12 concurrent ones.
    assert_eq!(s.round_trips(), 6 + 1 + 12);
    // Many sequential commands reuse the shells.
    for i in 0..50 {
        let out = s.run(&format!("echo {i}"), None).await.unwrap();
        assert_eq!(out.stdout.trim(), i.to_string());
    }
    s.close().await;
}

/// A login whose sudo wants a password is refused at connect, with sudo's
/// message, before any command runs.
#[tokio::test]
async fn a_sudo_that_wants_a_password_is_refused_at_connect() {
    let _serial = no_agent().await;
    sudo_user("ocfonopw", false);
    let sshd = Sshd::start();
    let kh = sshd.path("known_hosts");
    std::fs::write(&kh, sshd.host_line()).unwrap();
    let err = match connect_as(&sshd, &kh, "ocfonopw").await {
        Ok(_) => panic!("connected although sudo wants a password"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("passwordless sudo is not available") && err.contains("password"),
        "{err}"
    );
    assert!(err.contains("ocfonopw@127.0.0.1"), "{err}");
}

/// A command that outlives the timeout closes its privileged shell; the next
/// command gets a fresh one, and the framing never mixes replies.
#[tokio::test]
async fn a_sudo_command_timeout_drops_its_shell() {
    let _serial = no_agent().await;
    sudo_user("ocfosudo", true);
    let sshd = Sshd::start();
    let kh = sshd.path("known_hosts");
    std::fs::write(&kh, sshd.host_line()).unwrap();
    let mut target = sshd.target(&kh, "client_key");
    target.user = "ocfosudo".into();
    let opts = ConnectOptions {
        command_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let s = HostSession::connect(&target, opts).await.unwrap();
    let err = s
        .run("sleep 3; echo late", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("did not finish within 1s"), "{err}");
    for i in 0..3 {
        let out = s.run(&format!("echo {i}"), None).await.unwrap();
        assert_eq!(out.stdout, format!("{i}\n"));
    }
    s.close().await;
}
