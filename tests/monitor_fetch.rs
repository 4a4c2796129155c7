#![cfg(feature = "system-tests")]
//! The hosts fetch their ocfo from `monitor.binary_source` (as they do when
//! the laptop is a Mac or another architecture; `--monitor-fetch` forces that
//! path on the lab's x86_64 Linux machine): a tampered file is refused with
//! nothing installed, the genuine one is installed and runs the monitor.

mod common;

use std::path::Path;

use common::system::*;

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// On the standby, served as file:// like the lab's Node mirror.
const RELEASES: &str = "/srv/ocfo-release";

fn sha256(bytes: &[u8]) -> String {
    ocfo::sha256_hex(bytes)
}

/// Publishes `bytes` as this version's x86_64 release in the official
/// layout, with the SHA256SUMS of `sums_for` (what the release published).
fn publish(root: &Path, bytes: &[u8], sums_for: &[u8]) {
    let dir = root.join(format!("{}/v{VERSION}", RELEASES.trim_start_matches('/')));
    std::fs::create_dir_all(&dir).unwrap();
    let file = ocfo::modules::release_file(VERSION, "x86_64");
    std::fs::write(dir.join(&file), bytes).unwrap();
    std::fs::write(
        dir.join("SHA256SUMS"),
        format!("{}  {file}\n", sha256(sums_for)),
    )
    .unwrap();
}

#[test]
fn the_standby_installs_only_the_binary_the_laptop_vouches_for() {
    let lab = TestLab::up(file!());
    let root = lab.path("hosts/standby/root");
    assert!(
        root.join("etc/os-release").exists(),
        "standby root at {root:?}"
    );

    // The "release build": this ocfo with a marker appended (an ELF runs
    // with trailing bytes), so the installed file is told apart from the
    // laptop's own binary, which --monitor-binary or an upload would install.
    let mut genuine = std::fs::read(env!("CARGO_BIN_EXE_ocfo")).unwrap();
    genuine.extend_from_slice(b"\n-- ocfo release build for the fetch test --\n");
    let want = sha256(&genuine);
    let mut tampered = genuine.clone();
    tampered.extend_from_slice(b"evil");

    // The laptop vouches for `want` (a source build pins it in the inventory).
    let inv = std::fs::read_to_string(lab.inventory()).unwrap().replace(
        "  hold_down: 60s\n",
        &format!(
            "  hold_down: 60s\n  binary_source: file://{RELEASES}\n  binary_sha256: {{x86_64: {want}}}\n"
        ),
    );
    assert!(inv.contains("binary_source"), "{inv}");
    let inv_path = lab.path("inventory-fetch.yaml");
    std::fs::write(&inv_path, inv).unwrap();
    let inv_path = inv_path.display().to_string();

    // A tampered file behind the published SHA256SUMS of the genuine one:
    // refused, naming both hashes, and nothing is left in /usr/local/bin.
    publish(&root, &tampered, &genuine);
    let out = ocfo(&[
        "deploy",
        &inv_path,
        "--limit",
        "standby",
        "--tags",
        "monitor",
        "--monitor-fetch",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("checksum mismatch"), "{t}");
    assert!(t.contains(&want) && t.contains(&sha256(&tampered)), "{t}");
    assert_eq!(
        lab.ssh_ok("standby", "ls -A /usr/local/bin").trim(),
        "",
        "nothing installed, no temp file left"
    );

    // The genuine file: a full deploy installs it and the monitor runs it.
    // The primary fetches its own copy too (it runs the workspace watcher).
    publish(&root, &genuine, &genuine);
    publish(&lab.path("hosts/primary/root"), &genuine, &genuine);
    let t = ok(&["deploy", &inv_path, "--monitor-fetch"]);
    assert!(t.contains("fetched from file:///srv/ocfo-release"), "{t}");
    for node in ["primary", "standby"] {
        let installed = lab.ssh_ok(node, "sha256sum < /usr/local/bin/ocfo | cut -d' ' -f1");
        assert_eq!(installed.trim(), want, "{node}");
    }
    let installed = lab.ssh_ok("standby", "sha256sum < /usr/local/bin/ocfo | cut -d' ' -f1");
    assert_eq!(installed.trim(), want);
    let v = lab.ssh_ok("standby", "/usr/local/bin/ocfo --version");
    assert!(v.contains(VERSION), "{v}");
    let running = lab.ssh_ok(
        "standby",
        "pid=$(systemctl show -p MainPID --value ocfo-monitor.service); readlink /proc/$pid/exe; sha256sum < /proc/$pid/exe | cut -d' ' -f1",
    );
    assert_eq!(running, format!("/usr/local/bin/ocfo\n{want}\n"));

    // Converged: a re-check fetches nothing.
    let out = ocfo(&[
        "deploy",
        &inv_path,
        "--limit",
        "standby",
        "--tags",
        "monitor",
        "--monitor-fetch",
        "--check",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
