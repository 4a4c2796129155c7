//! The monitor's HTTP probe and webhook against real local HTTP servers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ocfo::monitor::config::{NotifyConfig, ProbeMode};
use ocfo::monitor::notify::Notifier;
use ocfo::monitor::probe::{probe, probe_any, probe_any_with, Probe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves every connection with `respond(request) -> Option<raw response>`;
/// `None` means: accept, then never answer.
async fn server<F>(respond: F) -> (String, Arc<Mutex<Vec<String>>>)
where
    F: Fn(usize, &str) -> Option<String> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (s, respond) = (seen.clone(), Arc::new(respond));
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (s, respond) = (s.clone(), respond.clone());
            let i = n;
            n += 1;
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                // Read the head, then as much body as Content-Length says.
                loop {
                    let Ok(k) = sock.read(&mut buf).await else {
                        return;
                    };
                    if k == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..k]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some(h) = text.find("\r\n\r\n") {
                        let len = text[..h]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if got.len() >= h + 4 + len {
                            break;
                        }
                    }
                }
                let req = String::from_utf8_lossy(&got).to_string();
                s.lock().unwrap().push(req.clone());
                match respond(i, &req) {
                    Some(r) => {
                        let _ = sock.write_all(r.as_bytes()).await;
                        let _ = sock.shutdown().await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

fn response(status: &str, body: &str) -> String {
    format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
}

const T: Duration = Duration::from_millis(1500);

#[tokio::test]
async fn healthy_json_is_up() {
    let (base, seen) =
        server(|_, _| Some(response("200 OK", r#"{"ok":true,"status":"live"}"#))).await;
    let r = probe(&format!("{base}/healthz"), ProbeMode::Healthz, T).await;
    assert!(r.ok, "{r:?}");
    assert!(seen.lock().unwrap()[0].starts_with("GET /healthz HTTP/1.1\r\n"));
}

/// OpenClaw's `/readyz`: reasons only for a caller with the gateway token.
#[tokio::test]
async fn readyz_with_the_token_sees_why_and_judges_channels_by_policy() {
    let failing = std::sync::Arc::new(std::sync::Mutex::new("telegram"));
    let f = failing.clone();
    let (base, seen) = server(move |_, req| {
        let authed = req.contains("Authorization: Bearer s3cret-token\r\n");
        let why = *f.lock().unwrap();
        Some(response(
            "503 Service Unavailable",
            &if authed {
                format!(r#"{{"ready":false,"failing":["{why}"],"uptimeMs":5}}"#)
            } else {
                r#"{"ready":false}"#.to_string()
            },
        ))
    })
    .await;
    let urls = [format!("{base}/readyz")];
    let channels = ["telegram".to_string()];
    let p = |token| Probe {
        mode: ProbeMode::Readyz,
        timeout: T,
        connect_timeout: T,
        token,
        channels: &channels,
    };
    let r = probe_any_with(&urls, p(Some("s3cret-token"))).await;
    assert!(!r.ok);
    assert_eq!(r.channels_failing, ["telegram"], "{r:?}");
    assert!(seen.lock().unwrap()[0].contains("Authorization: Bearer s3cret-token"));
    // Draining: plainly down, whatever the channel policy.
    *failing.lock().unwrap() = "gateway-draining";
    let r = probe_any_with(&urls, p(Some("s3cret-token"))).await;
    assert!(
        !r.ok && r.channels_failing.is_empty() && r.detail.contains("gateway-draining"),
        "{r:?}"
    );
    // A wrong token gets no reasons: down, and the detail says to check it.
    let r = probe_any_with(&urls, p(Some("wrong"))).await;
    assert!(!r.ok && r.detail.contains("token"), "{r:?}");
    assert!(!r.detail.contains("s3cret-token"));
}

#[tokio::test]
async fn status_503_is_down() {
    let (base, _) =
        server(|_, _| Some(response("503 Service Unavailable", r#"{"ok":false}"#))).await;
    let r = probe(&format!("{base}/healthz"), ProbeMode::Healthz, T).await;
    assert!(!r.ok);
    assert!(r.detail.starts_with("HTTP 503"), "{}", r.detail);
}

#[tokio::test]
async fn html_200_is_down() {
    let (base, _) = server(|_, _| Some("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 15\r\n\r\n<!doctype html>".into())).await;
    let r = probe(&format!("{base}/healthz"), ProbeMode::Healthz, T).await;
    assert!(!r.ok);
    assert!(r.detail.contains("not JSON"), "{r:?}");
}

#[tokio::test]
async fn a_hang_past_the_timeout_is_down_in_time() {
    let (base, _) = server(|_, _| None).await;
    let start = std::time::Instant::now();
    let r = probe(
        &format!("{base}/healthz"),
        ProbeMode::Healthz,
        Duration::from_millis(300),
    )
    .await;
    assert!(!r.ok);
    assert!(r.detail.contains("no answer within 300ms"), "{r:?}");
    assert!(start.elapsed() < Duration::from_millis(1000));
}

/// A real lost SYN: a listener that never accepts, with its accept queue
/// full, makes the kernel drop new SYNs, as a cut link does. A confirming
/// probe's short connect timeout ends the wait, and says so.
#[tokio::test]
async fn a_lost_syn_ends_at_the_connect_timeout_not_the_whole_timeout() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    // Fill the queue (backlog 1 holds two), then check a connect now hangs.
    let mut held = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(s)) => held.push(s),
            _ => break,
        }
    }
    assert!(held.len() < 8, "the accept queue never filled");
    let url = format!("http://{addr}/healthz");
    let start = std::time::Instant::now();
    let r = probe_any_with(
        std::slice::from_ref(&url),
        Probe {
            mode: ProbeMode::Healthz,
            timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_millis(250),
            token: None,
            channels: &[],
        },
    )
    .await;
    let took = start.elapsed();
    assert!(!r.ok && !r.stalled && !r.definitive, "{r:?}");
    assert!(r.detail.contains("no connection within 250ms"), "{r:?}");
    assert!(
        took >= Duration::from_millis(240) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    drop(listener);
}

/// The connect's share of a probe is its own figure: the round trip a
/// confirming probe's connect timeout is made of, not OpenClaw's answer time.
#[tokio::test]
async fn a_probe_says_how_long_its_connect_took() {
    let (base, _) = server(|_, _| {
        std::thread::sleep(Duration::from_millis(300));
        Some("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}".into())
    })
    .await;
    let r = probe(&format!("{base}/healthz"), ProbeMode::Healthz, T).await;
    assert!(r.ok, "{r:?}");
    assert!(r.latency_ms >= 300, "{r:?}");
    assert!(r.connect_ms.is_some_and(|ms| ms < 100), "{r:?}");
}

#[test]
fn a_confirming_connect_waits_a_few_round_trips_of_the_slowest_healthy_answer() {
    use ocfo::monitor::probe::confirming_connect_timeout as quick;
    let ms = Duration::from_millis;
    assert_eq!(quick([2, 1, 3].into_iter(), ms(800)), ms(250), "the floor");
    assert_eq!(quick([40, 120, 90].into_iter(), ms(800)), ms(480));
    assert_eq!(
        quick([400].into_iter(), ms(800)),
        ms(800),
        "at most the timeout"
    );
    assert_eq!(
        quick(std::iter::empty(), ms(800)),
        ms(800),
        "nothing to go by"
    );
}

#[tokio::test]
async fn connection_refused_is_down() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = probe(
        &format!("http://127.0.0.1:{port}/healthz"),
        ProbeMode::Healthz,
        T,
    )
    .await;
    assert!(!r.ok);
    assert!(r.detail.to_lowercase().contains("refused"), "{r:?}");
}

#[tokio::test]
async fn readiness_mode_reads_ready() {
    let (base, _) = server(|_, req| {
        Some(if req.starts_with("GET /readyz") {
            response("200 OK", r#"{"ready":true}"#)
        } else {
            response("404 Not Found", "{}")
        })
    })
    .await;
    assert!(
        probe(&format!("{base}/readyz"), ProbeMode::Readyz, T)
            .await
            .ok
    );
    let (base2, _) = server(|_, _| Some(response("200 OK", r#"{"ready":false}"#))).await;
    assert!(
        !probe(&format!("{base2}/readyz"), ProbeMode::Readyz, T)
            .await
            .ok
    );
}

#[tokio::test]
async fn the_primary_is_down_only_when_every_path_fails() {
    let (alive, _) = server(|_, _| Some(response("200 OK", r#"{"ok":true}"#))).await;
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{dead_port}/healthz");
    let both = vec![dead.clone(), format!("{alive}/healthz")];
    assert!(probe_any(&both, ProbeMode::Healthz, T).await.ok);
    let r = probe_any(&[dead.clone(), dead], ProbeMode::Healthz, T).await;
    assert!(!r.ok);
}

/// A chain's standby2 probes the primary's `/readyz`, and the standby's
/// `/healthz` (alive) and `/readyz` (serving) at once: a dead primary while
/// the standby lives is nothing for it to promote for; both dead is the
/// primary's own failure, definitive (refused) as it was.
#[tokio::test]
async fn a_later_standby_waits_while_a_standby_before_it_lives() {
    use ocfo::monitor::daemon::{HttpProber, Prober};
    use ocfo::monitor::probe::StandbyBefore;
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{dead_port}");
    // Alive, its channel stopped (a watching warm standby).
    let (watching, seen) = server(|_, req| {
        Some(if req.starts_with("GET /healthz") {
            response("200 OK", r#"{"ok":true,"status":"live"}"#)
        } else {
            response(
                "503 Service Unavailable",
                r#"{"ready":false,"failing":["telegram"]}"#,
            )
        })
    })
    .await;
    let (serving, _) = server(|_, _| {
        Some(response(
            "200 OK",
            r#"{"ok":true,"ready":true,"failing":[]}"#,
        ))
    })
    .await;
    let prober = |before: &str| HttpProber {
        urls: vec![format!("{dead}/readyz")],
        mode: ProbeMode::Readyz,
        timeout: T,
        token: Some("the-token-of-the-gateway".into()),
        channels: vec!["telegram".into()],
        standbys_before: vec![format!("{before}/healthz")],
        chain: std::sync::Mutex::new(ocfo::monitor::chain::ChainView::new(Duration::ZERO)),
    };
    let r = prober(&watching).probe(Duration::from_millis(800)).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.before, Some(StandbyBefore::Alive), "{r:?}");
    assert!(
        r.detail.contains("the standby before this one lives"),
        "{r:?}"
    );
    let requests = seen.lock().unwrap().clone();
    let health = requests
        .iter()
        .find(|r| r.starts_with("GET /healthz"))
        .unwrap();
    assert!(
        !health.contains("the-token-of-the-gateway"),
        "liveness needs no token: {health}"
    );
    let ready = requests
        .iter()
        .find(|r| r.starts_with("GET /readyz"))
        .unwrap();
    assert!(ready.contains("the-token-of-the-gateway"), "{ready}");
    let r = prober(&serving).probe(Duration::from_millis(800)).await;
    assert_eq!(r.before, Some(StandbyBefore::Serving), "{r:?}");
    let r = prober(&dead).probe(Duration::from_millis(800)).await;
    assert!(!r.ok && r.definitive && r.before.is_none(), "{r:?}");
    assert!(r.detail.to_lowercase().contains("refused"), "{r:?}");
}

#[tokio::test]
async fn webhook_posts_discord_and_slack_fields_and_retries() {
    // The first attempt fails with 500; the retry succeeds.
    let (base, seen) = server(|i, _| {
        Some(if i == 0 {
            response("500 Internal Server Error", "{}")
        } else {
            response("204 No Content", "")
        })
    })
    .await;
    let url = format!("{base}/hook/s3cr3t-token");
    std::env::set_var("OCFO_TEST_WEBHOOK_URL", &url);
    let notifier = Notifier::new(
        Some(&NotifyConfig {
            webhook_env: "OCFO_TEST_WEBHOOK_URL".into(),
            timeout: Duration::from_secs(2),
            retries: 3,
        }),
        "assistant",
    );
    assert!(notifier.enabled());
    notifier.send("promoted", "the standby's gateway is serving");
    for _ in 0..100 {
        if seen.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "one failure, one retry: {requests:?}");
    let req = &requests[1];
    assert!(req.starts_with("POST /hook/s3cr3t-token HTTP/1.1"), "{req}");
    let body: serde_json::Value =
        serde_json::from_str(&req[req.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(
        body["content"],
        "[assistant] the standby's gateway is serving"
    );
    assert_eq!(body["text"], body["content"]);
    assert_eq!(body["event"], "promoted");
    assert!(
        !body.to_string().contains("s3cr3t"),
        "the URL is not in the payload"
    );
}
