//! The ready-to-copy CI workflows in examples/ci/ are linted by actionlint
//! (with shellcheck on their `run:` scripts when it is installed), keep their
//! teardown unconditional, pass secrets only through `env:`, and the
//! inventory the VPS job writes is valid for this very ocfo.
//!
//! actionlint and shellcheck are test prerequisites, installed by the test
//! itself when missing (as root; tests/common/tools.rs): a missing tool
//! fails these tests, never skips them.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;

mod common;

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ci");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    files
}

fn actionlint(files: &[PathBuf]) -> std::process::Output {
    // actionlint runs shellcheck on the `run:` scripts when it finds it.
    common::tools::shellcheck();
    Command::new(common::tools::actionlint())
        .arg("-no-color")
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run actionlint ({e})"))
}

fn workflow(name: &str) -> (String, Json) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/ci")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let json: Json = serde_saphyr::from_str(&text).unwrap();
    (text, json)
}

fn steps(w: &Json) -> Vec<Json> {
    w["jobs"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|j| j["steps"].as_array().unwrap().clone())
        .collect()
}

fn step(w: &Json, name: &str) -> Json {
    steps(w)
        .into_iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step `{name}`"))
}

#[test]
fn both_examples_exist() {
    let names: Vec<String> = examples()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["lab-drill.yml", "vps-drill.yml"]);
}

#[test]
fn actionlint_passes_on_every_example() {
    let out = actionlint(&examples());
    assert!(
        out.status.success(),
        "actionlint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The lint is real: the same actionlint rejects a broken workflow (so a
/// stub on PATH that always succeeds cannot make the test above pass).
#[test]
fn actionlint_rejects_a_broken_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-22.04\n    steps:\n      - run: echo ${{ github.nonexistent_context_key }}\n        iff: always()\n",
    )
    .unwrap();
    let out = actionlint(&[bad]);
    assert!(
        !out.status.success(),
        "actionlint accepted a broken workflow"
    );
}

#[test]
fn teardown_and_reports_run_always() {
    let (_, lab) = workflow("lab-drill.yml");
    let down = step(&lab, "Lab down");
    assert_eq!(down["if"], "always()");
    assert!(down["run"].as_str().unwrap().contains("ocfo lab down"));
    let (_, vps) = workflow("vps-drill.yml");
    let destroy = step(&vps, "Destroy the servers");
    assert_eq!(destroy["if"], "always()");
    assert!(destroy["run"]
        .as_str()
        .unwrap()
        .contains("hcloud server delete"));
    for w in [&lab, &vps] {
        let up = step(w, "Upload the drill report");
        assert_eq!(up["if"], "always()");
        assert!(up["with"]["path"].as_str().unwrap().contains("drill.xml"));
        let drill = step(w, "Drill");
        let run = drill["run"].as_str().unwrap();
        assert!(run.contains("--json") && run.contains("--junit drill.xml"));
    }
}

/// `${{ secrets.X }}` inside a script would be pasted into its text (and
/// into the log on error); secrets reach steps only as environment variables.
#[test]
fn secrets_only_through_env() {
    for name in ["lab-drill.yml", "vps-drill.yml"] {
        let (_, w) = workflow(name);
        for s in steps(&w) {
            if let Some(run) = s["run"].as_str() {
                assert!(
                    !run.contains("secrets."),
                    "{name}: step `{}` uses a secret in its script",
                    s["name"]
                );
            }
        }
    }
}

/// The inventory the VPS job writes, with its shell variables filled in as
/// the job would, validates with no error and no warning.
#[test]
fn vps_inventory_is_valid() {
    let (_, w) = workflow("vps-drill.yml");
    let run = step(&w, "Write the inventory")["run"]
        .as_str()
        .unwrap()
        .to_string();
    let body = run
        .split_once("<<INVENTORY\n")
        .and_then(|(_, rest)| rest.split_once("\nINVENTORY\n"))
        .map(|(b, _)| b.to_string())
        .expect("a heredoc named INVENTORY");
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().display().to_string();
    let text = body
        .replace("$WORK", &work)
        .replace("$PRIMARY_PUBLIC", "203.0.113.10")
        .replace("$STANDBY_PUBLIC", "203.0.113.11")
        .replace("$PRIMARY_PRIVATE", "10.77.1.2")
        .replace("$STANDBY_PRIVATE", "10.77.1.3")
        .replace(
            "$WORKSPACE_REPO",
            "git@github.com:example/drill-workspace.git",
        );
    assert!(!text.contains('$'), "an unfilled variable:\n{text}");
    let loaded = ocfo::validate::load_str(
        &text,
        &dir.path().join("inventory.yaml"),
        ocfo::inventory::LoadOptions {
            resolve_secrets: false,
        },
    );
    assert!(
        loaded.report.diagnostics.is_empty(),
        "{}\n{text}",
        loaded.report.render(false)
    );
    let inv = loaded.inventory.unwrap();
    assert_eq!(inv.primary.host, "203.0.113.10");
    assert!(inv.network.private_cidr.to_string().starts_with("10.77."));
}
