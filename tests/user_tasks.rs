//! The operator's own tasks (`tasks:` in the inventory): the documented
//! example validates and renders; broken tasks files are rejected with every
//! problem at its file:line:column; and (system test) in the lab they deploy,
//! their drift is found by `deploy --check` (exit 2) and repaired.

mod common;

use std::path::Path;

use common::*;

/// The base fixture with `tasks:` naming `tasks` (relative to the inventory).
fn inventory_with_tasks(dir: &Path, tasks: &str) -> std::path::PathBuf {
    let base = std::fs::read_to_string(fixture("valid.yaml")).unwrap();
    let source = base.replacen("hardening:\n", &format!("tasks: {tasks}\nhardening:\n"), 1);
    assert_ne!(source, base);
    let path = dir.join("inventory.yaml");
    std::fs::write(&path, source).unwrap();
    path
}

fn validate(inv: &Path) -> (String, i32) {
    let out = ocfo().arg("validate").arg(inv).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_no_secrets("validate", &stdout);
    assert_no_secrets("validate", &stderr);
    (format!("{stdout}{stderr}"), out.status.code().unwrap_or(-1))
}

#[test]
fn the_documented_example_validates_and_renders() {
    let inv = fixture("with-tasks.yaml");
    let (out, code) = validate(&inv);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("warning"), "{out}");

    let tmp = tempfile::tempdir().unwrap();
    let out = ocfo()
        .arg("render")
        .arg(&inv)
        .arg("--out")
        .arg(tmp.path().join("out"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    for node in ["primary", "standby"] {
        let root = tmp.path().join("out").join(node);
        let toml = std::fs::read_to_string(root.join("etc/ocfo-media/transcode.toml")).unwrap();
        assert!(
            toml.contains(&format!("(testpair, {node})"))
                && toml.contains("input = \"/home/openclaw/media/inbox\""),
            "{toml}"
        );
        let script = root.join("usr/local/bin/ocfo-transcode");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&script).unwrap().permissions().mode() & 0o777,
            0o755
        );
        let unit = std::fs::read_to_string(root.join("etc/systemd/system/ocfo-transcode.service"))
            .unwrap();
        assert!(unit.contains("User=openclaw"), "{unit}");
        assert!(root
            .join("etc/systemd/system/ocfo-transcode.timer")
            .exists());
    }
}

#[test]
fn the_example_is_what_docs_tasks_md_shows() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/tasks.md"))
        .unwrap();
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tasks/my-tasks.yaml"),
    )
    .unwrap();
    // The doc quotes the tasks file whole, after its leading comment.
    let body: String = example
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        doc.contains(&body),
        "docs/tasks.md does not show examples/tasks/my-tasks.yaml as it is"
    );
}

/// Every problem at once, each in the file it is in.
#[test]
fn broken_tasks_are_located_in_their_file() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory_with_tasks(tmp.path(), "ops/tasks.yaml");
    std::fs::create_dir_all(tmp.path().join("ops")).unwrap();
    std::fs::write(
        tmp.path().join("ops/tasks.yaml"),
        "tasks:
  - name: unknown argument
    apt: {packages: [jq], bogus: 1}
  - name: ocfo's own module
    sshd: {}
  - name: missing template
    file: {path: /etc/x, template: nope.j2}
  - name: unquoted mode
    file: {path: /etc/y, content: x, mode: 0644}
  - name: a secret
    directory: {path: /x, mode: \"0700\", owner: {env: T_GATEWAY_TOKEN}}
  - name: two modules
    apt: {packages: [jq]}
    user: {name: x, home: /x}
  - name: typo
    hots: primary
    apt: {packages: [jq]}
  - name: broken template
    file: {path: /etc/z, template: bad.j2}
  - name: notifies nothing
    apt: {packages: [jq]}
    notify: [restrat]
  - name: fights the monitor
    systemd: {unit: openclaw-gateway, state: stopped}
  - name: the gateway's user
    user: {name: openclaw, home: /srv/elsewhere}
handlers:
  - name: restart
    systemd: {unit: x.service, action: restart}
  - name: reload sshd
    systemd: {unit: x.service, action: reload}
",
    )
    .unwrap();
    std::fs::write(tmp.path().join("ops/bad.j2"), "line one\n{{ foo(\n").unwrap();
    let (out, code) = validate(&inv);
    assert_eq!(code, 1, "{out}");
    let out = out.replace(&tmp.path().display().to_string(), "T");
    for want in [
        "error: T/ops/tasks.yaml:3:5: tasks[0].apt: invalid arguments: unknown field `bogus`",
        "error: T/ops/tasks.yaml:5:5: tasks[1]: module `sshd` is ocfo's own",
        "error: T/ops/tasks.yaml:7:36: tasks[2].file.template: cannot read the template T/ops/nope.j2",
        "error: T/ops/tasks.yaml:9:44: tasks[3].file.mode: write the mode as a quoted octal string",
        "error: T/ops/tasks.yaml:11:48: tasks[4].directory.owner: secrets are not available in the operator's tasks",
        "error: T/ops/tasks.yaml:14:5: tasks[5]: a task names exactly one module; this one has `apt` and `user`",
        "error: T/ops/tasks.yaml:16:5: tasks[6]: unknown key `hots`",
        "did you mean `hosts`?",
        "error: T/ops/bad.j2:2:1: template does not parse",
        "error: T/ops/tasks.yaml:20:5: tasks[8].notify: task `notifies nothing` notifies `restrat`, which is not a handler in this file",
        "did you mean `restart`?",
        "error: T/ops/tasks.yaml:24:14: tasks[9].systemd.unit: `openclaw-gateway` is ocfo's own unit",
        "error: T/ops/tasks.yaml:26:11: tasks[10].user.name: `openclaw` is the gateway's user",
        "error: T/ops/tasks.yaml:30:5: handlers[1].name: `reload sshd` is the name of one of ocfo's own handlers",
    ] {
        assert!(out.contains(want), "missing `{want}` in:\n{out}");
    }
}

#[test]
fn a_missing_tasks_file_is_located_in_the_inventory() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory_with_tasks(tmp.path(), "nowhere.yaml");
    let (out, code) = validate(&inv);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("inventory.yaml:") && out.contains("tasks: cannot read the tasks file"),
        "{out}"
    );
}

/// A template naming a variable that does not exist fails `validate` (it is
/// rendered for both nodes), not a deploy.
#[test]
fn an_undefined_template_variable_fails_validate() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory_with_tasks(tmp.path(), "tasks.yaml");
    std::fs::write(
        tmp.path().join("tasks.yaml"),
        "- name: conf\n  file:\n    path: /etc/x.conf\n    template: x.j2\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("x.j2"),
        "a = {{ role }}\nb = {{ no_such_thing }}\n",
    )
    .unwrap();
    let (out, code) = validate(&inv);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("tasks.yaml:1:3: tasks[0]: on the primary:") && out.contains("x.j2"),
        "{out}"
    );
}

/// The operator's files are not treated as secret (their diffs are shown),
/// so one that would carry a secret's value, or replace one of ocfo's own
/// files, is refused, and the value is never printed.
#[test]
fn user_files_cannot_carry_secrets_or_replace_ocfo_files() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory_with_tasks(tmp.path(), "tasks.yaml");
    let gateway_token = SECRETS[1].1;
    std::fs::write(
        tmp.path().join("tasks.yaml"),
        format!("- name: leak\n  file: {{path: /etc/leak, content: \"token={gateway_token}\"}}\n"),
    )
    .unwrap();
    let out = ocfo()
        .arg("render")
        .arg(&inv)
        .arg("--out")
        .arg(tmp.path().join("out"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("cannot carry secrets"), "{stderr}");
    assert!(!stdout.contains(gateway_token) && !stderr.contains(gateway_token));

    std::fs::write(
        tmp.path().join("tasks.yaml"),
        "- name: mine\n  file: {path: /etc/openclaw/gateway.env, content: \"X=1\"}\n",
    )
    .unwrap();
    let (out, code) = validate(&inv);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ocfo manages this file itself"), "{out}");
}

/// Another spelling of one of ocfo's paths is the same file on the host:
/// `//` is compared as `/`, and `.` or `..` in a path is refused (issue 16).
#[test]
fn another_spelling_of_an_ocfo_path_is_still_ocfo_s_file() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory_with_tasks(tmp.path(), "tasks.yaml");
    for (path, want) in [
        (
            "/etc/openclaw//gateway.env",
            "ocfo manages this file itself",
        ),
        (
            "//etc/openclaw/gateway.env",
            "ocfo manages this file itself",
        ),
        ("/etc/openclaw/./gateway.env", "`.` or `..`"),
        ("/etc/openclaw/x/../gateway.env", "`.` or `..`"),
        ("/etc/openclaw/gateway.env/.", "`.` or `..`"),
    ] {
        std::fs::write(
            tmp.path().join("tasks.yaml"),
            format!("- name: mine\n  file: {{path: \"{path}\", content: \"X=1\"}}\n"),
        )
        .unwrap();
        let (out, code) = validate(&inv);
        assert_eq!(code, 1, "{path}: {out}");
        assert!(out.contains(want), "{path}: {out}");
    }
}

/// In the lab: the operator's tasks deploy on both hosts (packages, a
/// directory the agent may write, templated files, a timer on the primary
/// only, a handler), a second deploy changes nothing, drift (a deleted file,
/// a stopped timer) makes `deploy --check` exit 2 without repairing it, and
/// deploy repairs it.
#[cfg(feature = "system-tests")]
#[test]
fn user_tasks_deploy_drift_and_repair_in_the_lab() {
    use common::system::{ocfo as run, text as all, TestLab};

    let lab = TestLab::up(file!());
    std::fs::create_dir_all(lab.path("my")).unwrap();
    std::fs::write(
        lab.path("my/tasks.yaml"),
        r#"tasks:
  - name: tools
    apt: {packages: [jq]}
  - name: agent scratch folder
    directory:
      path: "{{ layout.home }}/scratch"
      mode: "0750"
      owner: "{{ openclaw.user }}"
  - name: greeting
    file:
      path: /etc/ocfo-greet/greeting.conf
      template: greeting.conf.j2
    notify: [restart greeter]
  - name: greeter service
    file:
      path: /etc/systemd/system/ocfo-greet.service
      content: |
        [Unit]
        Description=ocfo user task test
        [Service]
        Type=oneshot
        ExecStart=/bin/sh -c 'cat /etc/ocfo-greet/greeting.conf > /run/ocfo-greet.out'
  - name: greeter timer
    file:
      path: /etc/systemd/system/ocfo-greet.timer
      content: |
        [Timer]
        OnActiveSec=1h
        [Install]
        WantedBy=timers.target
  - name: greeter timer running
    hosts: primary
    systemd: {unit: ocfo-greet.timer, enabled: true, state: started}
handlers:
  - name: restart greeter
    hosts: primary
    systemd: {unit: ocfo-greet.timer, action: restart}
"#,
    )
    .unwrap();
    std::fs::write(
        lab.path("my/greeting.conf.j2"),
        "hello from {{ name }} ({{ role }}), home {{ layout.home }}\n",
    )
    .unwrap();
    let inv = std::fs::read_to_string(lab.inventory()).unwrap().replacen(
        "hardening:\n",
        "tasks: my/tasks.yaml\nhardening:\n",
        1,
    );
    let inv_path = lab.path("inventory-tasks.yaml");
    std::fs::write(&inv_path, inv).unwrap();
    let inv = inv_path.to_str().unwrap().to_string();

    // Every secret the lab holds (its bots' tokens, the model key, ...).
    let secrets: Vec<String> = lab.secret_values();
    assert!(secrets.len() >= 3, "{secrets:?}");
    let deploy = |extra: &[&str]| -> (i32, String, serde_json::Value) {
        let mut args = vec!["deploy", inv.as_str(), "--json"];
        args.extend_from_slice(extra);
        let out = run(&args);
        let t = all(&out);
        for s in &secrets {
            assert!(
                !t.contains(s.as_str()),
                "deploy output leaks a secret:\n{t}"
            );
        }
        let json = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("deploy --json printed no JSON ({e}):\n{t}"));
        (out.status.code().unwrap_or(-1), t, json)
    };
    let changed = |json: &serde_json::Value| -> Vec<String> {
        let mut v = Vec::new();
        for host in json["hosts"].as_array().unwrap() {
            for t in host["tasks"].as_array().unwrap() {
                if t["status"] == "changed" {
                    v.push(format!(
                        "{}: {}",
                        host["node"].as_str().unwrap(),
                        t["task"].as_str().unwrap()
                    ));
                }
            }
        }
        v
    };

    // First deploy: everything, the operator's tasks last. (Their handler
    // has nothing to do: the timer was started by this very run.)
    let (code, t, json) = deploy(&[]);
    assert_eq!(code, 0, "{t}");
    let c = changed(&json);
    for want in [
        "primary: greeting",
        "standby: greeting",
        "primary: greeter timer running",
        "standby: agent scratch folder",
    ] {
        assert!(c.iter().any(|x| x == want), "`{want}` not changed: {c:?}");
    }
    assert!(
        !c.iter().any(|x| x == "standby: greeter timer running"),
        "{c:?}"
    );
    for node in ["primary", "standby"] {
        let got = lab.ssh_ok(node, "cat /etc/ocfo-greet/greeting.conf; stat -c '%a %U' /home/openclaw/scratch; command -v jq");
        assert!(
            got.contains(&format!("hello from ops ({node}), home /home/openclaw"))
                && got.contains("750 openclaw")
                && got.contains("/usr/bin/jq"),
            "{node}: {got}"
        );
    }
    assert_eq!(
        lab.ssh_ok("primary", "systemctl is-active ocfo-greet.timer")
            .trim(),
        "active"
    );
    let standby_timer = lab.ssh("standby", "systemctl is-active ocfo-greet.timer");
    assert_eq!(
        String::from_utf8_lossy(&standby_timer.stdout).trim(),
        "inactive"
    );

    // Converged: nothing to do.
    let (code, t, json) = deploy(&["--check"]);
    assert_eq!(
        code,
        0,
        "a converged pair reports changes:\n{t}\n{:?}",
        changed(&json)
    );

    // Drift: a deleted file, a stopped timer. --check finds both, changes nothing.
    lab.ssh_ok(
        "primary",
        "rm /etc/ocfo-greet/greeting.conf && systemctl stop ocfo-greet.timer",
    );
    let (code, t, json) = deploy(&["--check", "--diff", "--tags", "tasks"]);
    assert_eq!(code, 2, "drift not found:\n{t}");
    let c = changed(&json);
    assert!(c.contains(&"primary: greeting".to_string()), "{c:?}");
    assert!(
        c.contains(&"primary: greeter timer running".to_string()),
        "{c:?}"
    );
    assert!(!c.iter().any(|x| x.starts_with("standby:")), "{c:?}");
    assert!(
        t.contains("hello from ops (primary)"),
        "--diff shows the file:\n{t}"
    );
    let still = lab.ssh("primary", "test -e /etc/ocfo-greet/greeting.conf");
    assert!(!still.status.success(), "--check repaired the file");

    // Deploy repairs both.
    let (code, t, json) = deploy(&[]);
    assert_eq!(code, 0, "{t}");
    let c = changed(&json);
    assert!(c.contains(&"primary: greeting".to_string()), "{c:?}");
    assert!(lab
        .ssh_ok("primary", "cat /etc/ocfo-greet/greeting.conf")
        .contains("hello from ops (primary)"));
    assert_eq!(
        lab.ssh_ok("primary", "systemctl is-active ocfo-greet.timer")
            .trim(),
        "active"
    );
    let (code, t, _) = deploy(&["--check"]);
    assert_eq!(code, 0, "not converged after the repair:\n{t}");

    // A file edited by hand: --diff shows it, deploy puts it back and the
    // task's handler restarts the (running) timer.
    lab.ssh_ok("primary", "echo tampered > /etc/ocfo-greet/greeting.conf");
    let (code, t, _) = deploy(&["--check", "--diff"]);
    assert_eq!(code, 2, "{t}");
    assert!(
        t.contains("-tampered") && t.contains("+hello from ops (primary)"),
        "{t}"
    );
    let (code, t, json) = deploy(&[]);
    assert_eq!(code, 0, "{t}");
    let c = changed(&json);
    assert!(c.contains(&"primary: greeting".to_string()), "{c:?}");
    assert!(c.contains(&"primary: restart greeter".to_string()), "{c:?}");
    assert!(!c.iter().any(|x| x.starts_with("standby:")), "{c:?}");
}
