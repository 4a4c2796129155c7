//! The standby client's fixed scripts, run against a local `sh` with the
//! monitor's folder in a temp dir, and its waiting, on tokio's paused clock.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::modules::testkit::{ok, Fixture, ScriptedHost};
use crate::monitor::requests::{Hold, SwitchoverRequest};

/// Runs `script` with `sh`, failing the test unless it exits 0.
fn sh(script: &Script) -> String {
    let out = crate::shell::run_local(&script.render());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn unix_now() -> u64 {
    crate::clock::unix_ms() / 1000
}

#[test]
fn the_hold_script_writes_a_lease_that_the_monitor_reads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let file = dir.path().join("hold.json").display().to_string();
    sh(&lease_script(
        &d,
        &file,
        "deploy by a\"b",
        "r'$(x)",
        Duration::from_secs(60),
    ));
    let text = std::fs::read_to_string(dir.path().join("hold.json")).unwrap();
    let now = unix_now();
    let h = Hold::parse_active(&text, now).expect(&text);
    assert_eq!(h.by, "deploy by a\"b");
    assert_eq!(h.reason, "r'$(x)");
    assert!(h.until >= now + 59 && h.until <= now + 61);
    assert!(Hold::parse_active(&text, now + 61).is_none());
}

/// A percent or a backslash in a lease's values is printf's data too.
#[test]
fn a_lease_holds_any_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let file = dir.path().join("drill.json").display().to_string();
    for by in ["ops 100%", "a%sb%d%n", "x\\ny\\\"z", "{\"until\": 1}"] {
        sh(&lease_script(&d, &file, by, "%s", Duration::from_secs(5)));
        let text = std::fs::read_to_string(&file).unwrap();
        let h = Hold::parse_active(&text, unix_now()).expect(&text);
        assert_eq!((h.by.as_str(), h.reason.as_str()), (by, "%s"));
    }
}

#[test]
fn a_lease_is_not_written_through_a_symlinked_folder() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let d = link.display().to_string();
    let script = lease_script(
        &d,
        &format!("{d}/hold.json"),
        "x",
        "y",
        Duration::from_secs(5),
    );
    let out = crate::shell::run_local(&script.render());
    assert!(!out.status.success());
    assert!(!real.join("hold.json").exists());
}

/// The request file written for `by`, parsed back.
fn requested(by: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let file = dir.path().join("switchover.json").display().to_string();
    sh(&request_script(&d, &file, by));
    let text = std::fs::read_to_string(&file).unwrap();
    let r = SwitchoverRequest::parse(&text).expect(&text);
    assert_eq!(r.by, by);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn the_request_file_is_json_whatever_the_name() {
    let v = requested("ops \"x\" $(y)");
    assert_eq!(v["by"], "ops \"x\" $(y)");
    assert!(v["since"].as_str().unwrap().ends_with('Z'));
}

/// The name is printf's argument, never its format: `%s`, `%d` and a
/// backslash in it arrive as themselves (issue 16).
#[test]
fn a_percent_or_backslash_in_the_name_is_data_not_format() {
    for by in ["ops 100%", "a%sb%d%n", "x\\ny\\\"z", "%%"] {
        let v = requested(by);
        assert_eq!(v["by"], by);
        assert!(v["since"].as_str().unwrap().ends_with('Z'), "{v}");
    }
}

#[test]
fn read_and_remove_take_the_path_as_data() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("-n $(x) 'y'.json");
    let f = file.display().to_string();
    assert_eq!(sh(&Script::new(READ).arg(&f)), "");
    std::fs::write(&file, "{}").unwrap();
    assert_eq!(sh(&Script::new(READ).arg(&f)), "{}");
    sh(&Script::new(REMOVE).arg(&f));
    assert!(!file.exists());
    sh(&Script::new(REMOVE).arg(&f));
}

fn state(json: serde_json::Value) -> MonitorState {
    let mut base = serde_json::json!({
        "version": "0", "name": "t", "pid": 1, "role": "watching", "since": "",
        "pinned": false, "consecutive_failures": 0, "consecutive_successes": 0,
        "updated": "", "standby": "warm", "recent_probes": [],
        "counters": {"probes": 0, "probe_failures": 0, "promotions": 0, "demotions": 0, "failed_actions": 0},
        "transitions": []
    });
    for (k, v) in json.as_object().unwrap() {
        base[k] = v.clone();
    }
    serde_json::from_value(base).unwrap()
}

/// The standby's monitor `states` in turn (the last one for ever), each
/// script it was sent kept.
fn standby_answering(states: Vec<String>) -> ScriptedHost {
    let next = Mutex::new(
        states
            .into_iter()
            .collect::<std::collections::VecDeque<_>>(),
    );
    ScriptedHost::new(move |script| {
        if !script.contains(READ) {
            return ok("");
        }
        let mut q = next.lock().unwrap();
        let s = if q.len() > 1 {
            q.pop_front()
        } else {
            q.front().cloned()
        };
        ok(&s.unwrap_or_default())
    })
}

#[tokio::test]
async fn every_script_is_fixed_text_with_its_values_as_arguments() {
    let host = standby_answering(vec![String::new()]);
    let fx = Fixture::load(|_| {});
    let s = Standby::new(&host);
    assert!(s.state().await.unwrap().is_none());
    s.hold("a b", "$(c)", Duration::from_secs(1)).await.unwrap();
    s.release().await.unwrap();
    s.mark_drill("stop", Duration::from_secs(1)).await.unwrap();
    s.unmark_drill().await.unwrap();
    s.request_switchover("d'e").await.unwrap();
    s.end_switchover().await.unwrap();
    s.observe(&fx.inv).await.unwrap();
    let sent = host.sent.lock().unwrap();
    assert_eq!(sent.len(), 8);
    let fixed = [READ, LEASE, REMOVE, REQUEST, OBSERVE];
    for (script, _) in sent.iter() {
        let (args, text) = script.split_once('\n').unwrap();
        assert!(args.starts_with("set -- "), "{script}");
        assert!(fixed.contains(&text), "{script}");
    }
    assert!(sent[1].0.contains("'{\"by\":\"a b\",\"reason\":\"$(c)\"}'"));
    assert!(sent[2].0.starts_with(&format!("set -- {HOLD_FILE}\n")));
    assert!(sent[4].0.starts_with(&format!("set -- {DRILL_FILE}\n")));
    assert!(sent[6]
        .0
        .starts_with(&format!("set -- {SWITCHOVER_FILE}\n")));
}

#[test]
fn an_observation_judges_the_answers_here() {
    let st = serde_json::to_string(&state(serde_json::json!({"channels_live": true}))).unwrap();
    let o = Observation::parse(&format!(
        "own={{\"ok\":true,\"status\":\"live\"}}\nprimary=\nunit=active\n--state--\n{st}\n"
    ));
    assert!(o.own_up && !o.primary_up);
    assert_eq!(o.unit, "active");
    assert!(o.warm() && o.standby_serving());
    assert_eq!(o.role(), Some(StandbyRole::Watching));
    let o = Observation::parse("own=<html>ok</html>\nprimary={\"ok\":true}\nunit=inactive\n");
    assert!(!o.own_up && o.primary_up && o.state.is_none());
    assert!(!o.standby_serving());
}

#[test]
fn a_takeover_is_a_new_healthy_promotion_for_the_switchover() {
    let before = state(serde_json::json!({}));
    let promoted = |switchover: bool, promotions: u64, healthy: Option<bool>| {
        let mut s = state(serde_json::json!({
            "role": "promoted", "switchover": switchover, "last_error": "boom",
            "counters": {"probes": 0, "probe_failures": 0, "promotions": promotions, "demotions": 0, "failed_actions": 0},
        }));
        if let Some(h) = healthy {
            s.last_promotion = Some(
                serde_json::from_value(serde_json::json!({
                    "at": "", "pull_ms": 0, "pull_ok": true, "start_ms": 0, "healthy": h
                }))
                .unwrap(),
            );
        }
        s
    };
    assert_eq!(took_over(&before, &before), Verdict::Pending(None));
    assert_eq!(
        took_over(&before, &promoted(false, 1, Some(true))),
        Verdict::Pending(None)
    );
    assert_eq!(
        took_over(&before, &promoted(true, 0, Some(true))),
        Verdict::Pending(None)
    );
    assert_eq!(
        took_over(&before, &promoted(true, 1, None)),
        Verdict::Pending(None)
    );
    assert_eq!(
        took_over(&before, &promoted(true, 1, Some(true))),
        Verdict::Done
    );
    assert!(matches!(
        took_over(&before, &promoted(true, 1, Some(false))),
        Verdict::Stop(e) if e.contains("boom")
    ));
    let already = promoted(true, 0, None);
    assert_eq!(took_over(&already, &already), Verdict::Done);
}

#[tokio::test(start_paused = true)]
async fn a_wait_runs_out_says_why_and_tells_each_new_reason_once() {
    let heard = Mutex::new(Vec::<String>::new());
    let tell = |w: &str| heard.lock().unwrap().push(w.to_string());
    let mut wait = Wait::new(Duration::from_secs(10), Duration::from_secs(1));
    wait.progress = Some(&tell);
    let mut looks = 0;
    let r = poll(
        &wait,
        || {
            looks += 1;
            let n = looks;
            async move { Ok::<_, String>(n) }
        },
        |n| Verdict::Pending(Some(if *n < 4 { "early" } else { "late" }.to_string())),
    )
    .await;
    assert_eq!(r, Err(WaitError::TimedOut(Some("late".into()))));
    assert_eq!(looks, 11);
    assert_eq!(*heard.lock().unwrap(), ["early", "late"]);
}

#[tokio::test(start_paused = true)]
async fn a_wait_ends_when_done_stopped_failed_or_cancelled() {
    let wait = Wait::new(Duration::from_secs(10), Duration::from_millis(250));
    let r = poll(&wait, || async { Ok::<_, String>(3) }, |n| (*n == 3).into()).await;
    assert_eq!(r, Ok(3));
    let r = poll(
        &wait,
        || async { Ok::<_, String>(3) },
        |_| Verdict::Stop("no".into()),
    )
    .await;
    assert_eq!(r, Err(WaitError::Stopped("no".into())));
    let r = poll(
        &wait,
        || async { Err::<u8, _>("down".to_string()) },
        |_| Verdict::Done,
    )
    .await;
    assert_eq!(r.unwrap_err().message(String::new), "down");
    let cancel = AtomicBool::new(true);
    let mut wait = wait;
    wait.cancel = Some(&cancel);
    let r = poll(&wait, || async { Ok::<_, String>(0) }, |_| false.into()).await;
    assert_eq!(r.clone(), Err(WaitError::Cancelled(None)));
    assert_eq!(r.unwrap_err().message(String::new), "interrupted");
}

/// A switchover that the monitor does not carry out is withdrawn.
#[tokio::test(start_paused = true)]
async fn a_takeover_that_does_not_come_withdraws_the_request() {
    let before = state(serde_json::json!({}));
    let host = standby_answering(vec![serde_json::to_string(&before).unwrap()]);
    let s = Standby::new(&host);
    let wait = Wait::new(Duration::from_secs(2), Duration::from_millis(250));
    let r = s.await_takeover(&before, &wait).await;
    assert!(matches!(r, Err(WaitError::TimedOut(None))), "{r:?}");
    let sent = host.sent.lock().unwrap();
    let last = &sent.last().unwrap().0;
    assert_eq!(*last, format!("set -- {SWITCHOVER_FILE}\n{REMOVE}"));
}

#[tokio::test(start_paused = true)]
async fn a_step_down_waits_for_a_watching_standby_without_a_state_in_between() {
    let serving =
        state(serde_json::json!({"role": "promoted", "switchover": true, "channels_live": true}));
    let watching = state(serde_json::json!({}));
    let host = standby_answering(vec![
        serde_json::to_string(&serving).unwrap(),
        String::new(),
        serde_json::to_string(&watching).unwrap(),
    ]);
    let wait = Wait::new(Duration::from_secs(60), Duration::from_millis(250));
    let s = Standby::new(&host).await_step_down(&wait).await.unwrap();
    assert_eq!(s.role, StandbyRole::Watching);
    assert_eq!(host.sent.lock().unwrap().len(), 3);
}

/// The first request `listener` receives within `wait` (answered with a
/// ready `/readyz`), or `None`.
fn one_request(listener: &TcpListener, wait: std::time::Duration) -> Option<String> {
    listener.set_nonblocking(true).unwrap();
    let start = std::time::Instant::now();
    loop {
        match listener.accept() {
            Ok((mut conn, _)) => {
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                    .unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let body = "{\"ready\":true}";
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                return Some(String::from_utf8_lossy(&req).into_owned());
            }
            Err(_) if start.elapsed() < wait => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(_) => return None,
        }
    }
}

/// Issue 16: root sourced the gateway's environment file, so a `PATH` in
/// it made root run the agent's `curl` (with the token on its stdin),
/// and an `http_proxy` sent the token to the proxy. Root now reads the
/// token alone, and runs curl by path with a clean environment.
#[test]
fn readyz_reads_only_the_token_and_runs_no_planted_tool() {
    let dir = tempfile::tempdir().unwrap();
    let planted = dir.path().join("bin");
    std::fs::create_dir(&planted).unwrap();
    let marker = dir.path().join("planted-tool-ran");
    for tool in ["curl", "head", "sed", "cat", "env", "printf"] {
        let p = planted.join(tool);
        std::fs::write(
            &p,
            format!("#!/bin/sh\necho {tool} >> '{}'\n", marker.display()),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let gateway = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let token = "to\"k$en`x\\y z";
    let env = dir.path().join("gateway.env");
    let entries: Vec<(String, String)> = [
        ("PATH", planted.display().to_string()),
        ("http_proxy", proxy_url.clone()),
        ("ALL_PROXY", proxy_url),
        ("BASH_ENV", marker.display().to_string()),
        ("OCFO_GATEWAY_TOKEN", token.to_string()),
        ("OCFO_AFTER", "OCFO_GATEWAY_TOKEN=\"not-this\"".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    std::fs::write(
        &env,
        crate::secrets::env_file::format("test", &entries, false),
    )
    .unwrap();
    let port = gateway.local_addr().unwrap().port();
    let fx = crate::modules::testkit::Fixture::load(|inv| {
        inv.openclaw.port = port;
        inv.openclaw.bind = crate::inventory::Bind::Loopback;
    });
    let url = super::local_health_url(&fx.inv, crate::inventory::Role::Primary)
        .replace("/healthz", "/readyz");
    let script = super::readyz_script(&env.display().to_string(), &url).render();
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let request = one_request(&gateway, std::time::Duration::from_secs(5));
    let out = child.wait_with_output().unwrap();
    assert!(
        !marker.exists(),
        "root ran a planted tool: {}",
        std::fs::read_to_string(&marker).unwrap_or_default()
    );
    assert!(
        one_request(&proxy, std::time::Duration::ZERO).is_none(),
        "the request went to the proxy"
    );
    let request = request.expect("the gateway got no request");
    assert!(
        request
            .lines()
            .any(|l| l.trim_end() == format!("Authorization: Bearer {token}")),
        "{request}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"ready\":true}",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
