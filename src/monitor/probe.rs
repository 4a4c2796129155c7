//! The health probe: HTTP GET of the gateway's `/healthz` (or `/readyz`),
//! judged on the status *and* the JSON body, since OpenClaw answers unknown
//! paths with 200 and HTML. A small HTTP/1.1 client keeps the daemon lean.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::config::ProbeMode;
use crate::openclaw::Health;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, String> {
        let rest = s
            .strip_prefix("http://")
            .ok_or_else(|| format!("`{s}`: only http:// is probed"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse().map_err(|_| format!("`{s}`: bad port"))?)
            }
            _ => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("`{s}`: no host"));
        }
        Ok(Url {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            path: path.to_string(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProbeResult {
    pub ok: bool,
    pub latency_ms: u64,
    /// How long the TCP connect took, when it succeeded: the network's round
    /// trip (the kernel answers a SYN whatever its gateway is doing), which
    /// `latency_ms` is not (it includes OpenClaw's answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<u64>,
    /// Why it failed, or the status on success.
    pub detail: String,
    /// Not ready only because these of the primary's channels fail (the
    /// gateway itself serves): a policy decision, not plainly down.
    pub channels_failing: Vec<String>,
    /// Connected, but no answer in time: a process holds the port and the
    /// path works, yet the gateway is busy (OpenClaw blocks its event loop
    /// for seconds while loading a plugin). Down only once it lasts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stalled: bool,
    /// The primary said itself that its gateway is gone: the connection was
    /// refused or reset (no process holds the port), or `/readyz` reported
    /// `gateway-draining` (it is stopping). Silence never is: a timeout may
    /// be the network, so it waits for `fall`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub definitive: bool,
    /// A chain's later standby: up only because of a standby before this
    /// one (the primary itself is down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<StandbyBefore>,
}

/// What a chain's later standby knows of the standby before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StandbyBefore {
    /// Its gateway lives (or did within the grace): it takes over first,
    /// so a watching later standby waits; a serving one keeps serving.
    Alive,
    /// It serves (its `/readyz` is ready): a serving later standby may
    /// step down to it.
    Serving,
}

impl ProbeResult {
    pub fn up(detail: impl Into<String>) -> Self {
        ProbeResult {
            ok: true,
            latency_ms: 0,
            connect_ms: None,
            detail: detail.into(),
            channels_failing: Vec::new(),
            stalled: false,
            definitive: false,
            before: None,
        }
    }

    pub fn down(detail: impl Into<String>) -> Self {
        ProbeResult {
            ok: false,
            latency_ms: 0,
            connect_ms: None,
            detail: detail.into(),
            channels_failing: Vec::new(),
            stalled: false,
            definitive: false,
            before: None,
        }
    }

    /// Down, and said so by the primary itself (see `definitive`).
    pub fn gone(detail: impl Into<String>) -> Self {
        ProbeResult {
            definitive: true,
            before: None,
            ..ProbeResult::down(detail)
        }
    }
}

/// Refused or reset: the host answered, and no process holds the port.
fn is_gone(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionRefused | ConnectionReset)
}

/// How to ask: which endpoint, how long to wait, the token that unlocks
/// `/readyz`'s details, and which `failing` entries are the primary's channels.
#[derive(Debug, Clone, Copy)]
pub struct Probe<'a> {
    pub mode: ProbeMode,
    pub timeout: Duration,
    /// At most `timeout`: how long the TCP connect may take.
    pub connect_timeout: Duration,
    pub token: Option<&'a str>,
    pub channels: &'a [String],
}

impl Probe<'static> {
    /// Without the gateway token, judging no channel.
    pub fn plain(mode: ProbeMode, timeout: Duration) -> Probe<'static> {
        Probe {
            mode,
            timeout,
            connect_timeout: timeout,
            token: None,
            channels: &[],
        }
    }
}

/// The connect timeout of a probe that confirms a failure: four times the
/// slowest recent healthy connect, at least 250 ms, at most the probe's
/// timeout; with no healthy connect to go by, the timeout. A kernel answers a connect within a round trip: one that
/// takes four lost its SYN, and TCP would only send it again after a
/// second, so waiting longer learns nothing.
pub fn confirming_connect_timeout(
    healthy_connects_ms: impl Iterator<Item = u64>,
    timeout: Duration,
) -> Duration {
    match healthy_connects_ms.max() {
        None => timeout,
        Some(ms) => Duration::from_millis(ms.saturating_mul(4))
            .max(Duration::from_millis(250))
            .min(timeout),
    }
}

/// The largest answer read: a health answer is tiny, a bigger one is not ours.
const MAX_BODY: usize = 64 * 1024;

/// An unauthenticated probe (the local gateway's `/healthz`, tests).
pub async fn probe(url: &str, mode: ProbeMode, timeout: Duration) -> ProbeResult {
    probe_with(url, Probe::plain(mode, timeout)).await
}

pub async fn probe_with(url: &str, p: Probe<'_>) -> ProbeResult {
    let start = Instant::now();
    let mut r = match Url::parse(url) {
        Ok(u) => ask(&u, p).await,
        Err(e) => ProbeResult::down(e),
    };
    r.latency_ms = start.elapsed().as_millis() as u64;
    r
}

/// One request within `p.timeout`, telling "nobody there" (refused, no
/// route, connect timeout) from "connected but no answer" (stalled).
async fn ask(u: &Url, p: Probe<'_>) -> ProbeResult {
    let began = tokio::time::Instant::now();
    let deadline = began + p.timeout;
    let no_answer = || format!("no answer within {}ms", p.timeout.as_millis());
    let stream = match tokio::time::timeout_at(
        deadline.min(began + p.connect_timeout),
        TcpStream::connect((u.host.as_str(), u.port)),
    )
    .await
    {
        Err(_) => {
            return ProbeResult::down(format!(
                "no connection within {}ms",
                p.connect_timeout.min(p.timeout).as_millis()
            ))
        }
        Ok(Err(e)) if is_gone(&e) => return ProbeResult::gone(e.to_string()),
        Ok(Err(e)) => return ProbeResult::down(e.to_string()),
        Ok(Ok(s)) => s,
    };
    let connect_ms = Some(began.elapsed().as_millis() as u64);
    let r = match tokio::time::timeout_at(deadline, exchange(stream, u, p.token)).await {
        Err(_) => ProbeResult {
            stalled: true,
            ..ProbeResult::down(format!("{} (connected: busy?)", no_answer()))
        },
        Ok(Err(Exchange::Gone(e))) => ProbeResult::gone(e),
        Ok(Err(Exchange::Failed(e))) => ProbeResult::down(e),
        Ok(Ok((status, body))) => judge(status, &body, p.mode, p.channels),
    };
    ProbeResult { connect_ms, ..r }
}

/// The primary is up when any path answers healthy; a channel-only failure
/// beats plain down (the gateway was reached).
pub async fn probe_any(urls: &[String], mode: ProbeMode, timeout: Duration) -> ProbeResult {
    probe_any_with(urls, Probe::plain(mode, timeout)).await
}

pub async fn probe_any_with(urls: &[String], p: Probe<'_>) -> ProbeResult {
    let results = futures::future::join_all(urls.iter().map(|u| probe_with(u, p))).await;
    if let Some(ok) = results.iter().find(|r| r.ok) {
        return ok.clone();
    }
    let channels_failing = results
        .iter()
        .find(|r| !r.channels_failing.is_empty())
        .map(|r| r.channels_failing.clone())
        .unwrap_or_default();
    ProbeResult {
        ok: false,
        latency_ms: results.iter().map(|r| r.latency_ms).max().unwrap_or(0),
        connect_ms: results.iter().filter_map(|r| r.connect_ms).max(),
        detail: urls
            .iter()
            .zip(&results)
            .map(|(u, r)| format!("{u}: {}", r.detail))
            .collect::<Vec<_>>()
            .join("; "),
        stalled: results.iter().any(|r| r.stalled),
        // Gone only when every path says so: one refusing path may be a
        // firewall while another still reaches a live gateway.
        definitive: results.iter().all(|r| r.definitive),
        before: None,
        channels_failing,
    }
}

/// Why an exchange failed: the peer reset it (gone), or anything else.
enum Exchange {
    Gone(String),
    Failed(String),
}

impl From<String> for Exchange {
    fn from(e: String) -> Self {
        Exchange::Failed(e)
    }
}

fn io_error(e: std::io::Error) -> Exchange {
    if is_gone(&e) {
        Exchange::Gone(e.to_string())
    } else {
        Exchange::Failed(e.to_string())
    }
}

async fn exchange(
    mut stream: TcpStream,
    u: &Url,
    token: Option<&str>,
) -> Result<(u16, Vec<u8>), Exchange> {
    let host = if u.host.contains(':') {
        format!("[{}]", u.host)
    } else {
        u.host.clone()
    };
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!("GET {} HTTP/1.1\r\nHost: {host}:{}\r\nUser-Agent: ocfo-monitor\r\nAccept: application/json\r\n{auth}Connection: close\r\n\r\n", u.path, u.port);
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(io_error)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.map_err(io_error)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_BODY {
            return Err(Exchange::Failed(
                "answer too large for a health check".into(),
            ));
        }
        if let Some(done) = complete(&buf) {
            buf.truncate(done);
            break;
        }
    }
    Ok(parse_response(&buf)?)
}

/// The length of a complete response with Content-Length, if it is complete.
fn complete(buf: &[u8]) -> Option<usize> {
    let head_end = find(buf, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))?
        .trim()
        .parse()
        .ok()?;
    (buf.len() >= head_end + len).then_some(head_end + len)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_response(buf: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let head_end = find(buf, b"\r\n\r\n").ok_or("incomplete HTTP answer")?;
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let status_line = head.lines().next().unwrap_or("");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {status_line:?}"))?;
    let mut body = buf[head_end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body).ok_or("bad chunked body")?;
    }
    Ok((status, body))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(b, b"\r\n")?;
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&b[..line_end])
                .split(';')
                .next()?
                .trim(),
            16,
        )
        .ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// Judges an answer. `/readyz` answers 503 with `failing` reasons to an
/// authenticated caller: draining, starting, databases, plugin reloads are
/// down; a list naming only the primary's channels is a channel failure.
fn judge(status: u16, body: &[u8], mode: ProbeMode, channels: &[String]) -> ProbeResult {
    let field = match mode {
        ProbeMode::Healthz => "ok",
        ProbeMode::Readyz => "ready",
    };
    let Some(health) = Health::parse(body, field) else {
        return ProbeResult::down(if status == 200 {
            "HTTP 200 but not JSON (not an OpenClaw health answer)".to_string()
        } else {
            format!("HTTP {status}")
        });
    };
    if status == 200 && health.yes {
        // OpenClaw's crash-loop breaker keeps a channel from starting while
        // `/readyz` stays 200: it names it only under `suppressed`.
        let suppressed: Vec<String> = health
            .suppressed
            .into_iter()
            .filter(|c| channels.contains(c))
            .collect();
        if mode == ProbeMode::Readyz && !suppressed.is_empty() {
            let mut r = ProbeResult::down(format!(
                "HTTP 200, but OpenClaw's crash-loop breaker suppresses {}",
                suppressed.join(", ")
            ));
            r.channels_failing = suppressed;
            return r;
        }
        return ProbeResult::up("HTTP 200");
    }
    let failing: Vec<String> = health
        .failing
        .iter()
        .flatten()
        .map(|f| f.chars().take(80).collect())
        .take(16)
        .collect();
    if mode == ProbeMode::Readyz && health.failing.is_none() {
        return ProbeResult::down(format!(
            "HTTP {status}, not ready (no reasons given: is the gateway token right?)"
        ));
    }
    let mut r = ProbeResult::down(if failing.is_empty() {
        format!("HTTP {status} but `{field}` is not true")
    } else {
        format!("HTTP {status}, failing: {}", failing.join(", "))
    });
    // OpenClaw flips `/readyz` to draining at once on SIGTERM: it is stopping.
    r.definitive = failing.iter().any(|f| f == "gateway-draining");
    if !failing.is_empty() && failing.iter().all(|f| channels.contains(f)) {
        r.channels_failing = failing;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Url::parse("http://10.0.0.1:18789/healthz").unwrap(),
            Url {
                host: "10.0.0.1".into(),
                port: 18789,
                path: "/healthz".into()
            }
        );
        assert_eq!(Url::parse("http://[fd00::1]:80/x").unwrap().host, "fd00::1");
        assert!(Url::parse("https://x/").is_err());
        assert!(Url::parse("http://:80/").is_err());
    }

    /// OpenClaw 2026.9.6 with its crash-loop breaker tripped: ready, but the
    /// primary's channel is not started (`suppressed`).
    #[test]
    fn a_channel_suppressed_by_the_crash_loop_breaker_is_a_channel_failure() {
        let body = br#"{"ready":true,"failing":[],"suppressed":["telegram"]}"#;
        let own = ["telegram".to_string()];
        let r = judge(200, body, ProbeMode::Readyz, &own);
        assert!(!r.ok);
        assert_eq!(r.channels_failing, own);
        assert!(r.detail.contains("crash-loop breaker"), "{}", r.detail);
        // Someone else's channel, or liveness only: up.
        assert!(judge(200, body, ProbeMode::Readyz, &["discord".to_string()]).ok);
        assert!(
            judge(
                200,
                br#"{"ok":true,"suppressed":["telegram"]}"#,
                ProbeMode::Healthz,
                &own
            )
            .ok
        );
    }

    #[test]
    fn judging() {
        let j = |s, b: &[u8], m| judge(s, b, m, &[]).ok;
        assert!(j(
            200,
            br#"{"ok":true,"status":"live"}"#,
            ProbeMode::Healthz
        ));
        assert!(!j(200, b"<!doctype html>", ProbeMode::Healthz));
        assert!(!j(503, br#"{"ok":true}"#, ProbeMode::Healthz));
        assert!(!j(200, br#"{"ready":false}"#, ProbeMode::Readyz));
        assert!(j(200, br#"{"ready":true}"#, ProbeMode::Readyz));
    }

    /// Answers seen from OpenClaw 2026.9.6 with the gateway token.
    #[test]
    fn readiness_reasons() {
        let ch = ["telegram".to_string()];
        let r = judge(
            503,
            br#"{"ready":false,"failing":["gateway-draining"],"uptimeMs":5}"#,
            ProbeMode::Readyz,
            &ch,
        );
        assert!(!r.ok && r.channels_failing.is_empty(), "{r:?}");
        assert!(r.detail.contains("gateway-draining"));
        assert!(r.definitive, "draining is the gateway saying it stops");
        let r = judge(
            503,
            br#"{"ready":false,"failing":["telegram"],"uptimeMs":152595}"#,
            ProbeMode::Readyz,
            &ch,
        );
        assert!(!r.ok);
        assert_eq!(r.channels_failing, ["telegram"]);
        // A channel plus something else: plainly down.
        let r = judge(
            503,
            br#"{"ready":false,"failing":["telegram","state-database"]}"#,
            ProbeMode::Readyz,
            &ch,
        );
        assert!(!r.ok && r.channels_failing.is_empty());
        // No reasons: an unauthenticated answer; say what to check.
        let r = judge(503, br#"{"ready":false}"#, ProbeMode::Readyz, &ch);
        assert!(!r.ok && r.detail.contains("token"), "{r:?}");
    }

    #[test]
    fn chunked() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n").unwrap(),
            b"Wikipedia"
        );
    }

    /// Real sockets: a listener that accepts and never answers is stalled
    /// (busy); a closed port is down at once, not stalled.
    #[tokio::test]
    async fn a_silent_listener_is_stalled_and_a_closed_port_is_not() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let (_conn, _) = silent.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let url = format!("http://{addr}/readyz");
        let r = probe(&url, ProbeMode::Readyz, Duration::from_millis(300)).await;
        assert!(!r.ok && r.stalled && !r.definitive, "{r:?}");
        held.abort();

        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let r = probe(
            &format!("http://{addr}/readyz"),
            ProbeMode::Readyz,
            Duration::from_millis(300),
        )
        .await;
        assert!(!r.ok && !r.stalled, "{r:?}");
        assert!(r.definitive, "refused: nobody holds the port");
        // Silence (a dropped packet never answers) is not definitive.
        let r = probe(
            "http://10.255.255.1:9/readyz",
            ProbeMode::Readyz,
            Duration::from_millis(200),
        )
        .await;
        assert!(!r.ok && !r.definitive, "{r:?}");
        // Several paths: gone only when every one says so.
        let r = probe_any(
            &[
                format!("http://{addr}/readyz"),
                "http://10.255.255.1:9/readyz".to_string(),
            ],
            ProbeMode::Readyz,
            Duration::from_millis(200),
        )
        .await;
        assert!(!r.ok && !r.definitive, "{r:?}");
    }
}
