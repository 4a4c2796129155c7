//! A kept-open connection to the primary's gateway, so the standby hears of
//! a death the moment it happens instead of at the next probe.
//!
//! When the gateway's process dies or starts draining, its kernel or OpenClaw
//! closes every connection: the sentinel's read returns at once, and it wakes
//! the daemon, which probes now. The probe, not the sentinel, decides: a
//! closed connection only says "look now" (Node also closes idle connections
//! on its own after a minute, and then the probe finds a healthy primary).
//! Nothing is ever sent, so the gateway has nothing to parse.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::probe::Url;

/// How long a connect may take; the probe reports why a primary is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// After a close, before connecting again: the primary's own restart.
const RECONNECT_AFTER: Duration = Duration::from_millis(250);
/// A connection that lived less than this counts as bouncing.
const SHORT_LIVED: Duration = Duration::from_secs(5);
/// The longest wait between attempts, for a primary that keeps closing at
/// once (a proxy, a firewall): the sentinel must not turn into a probe flood.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Watches each URL's host and port until the task is dropped.
pub async fn watch(urls: Vec<String>, wake: Arc<Notify>) {
    let targets: Vec<(String, u16)> = urls
        .iter()
        .filter_map(|u| Url::parse(u).ok())
        .map(|u| (u.host, u.port))
        .collect();
    futures::future::join_all(
        targets
            .into_iter()
            .map(|(host, port)| watch_one(host, port, wake.clone())),
    )
    .await;
}

async fn watch_one(host: String, port: u16, wake: Arc<Notify>) {
    let mut backoff = RECONNECT_AFTER;
    loop {
        let connected =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), port))).await;
        let Ok(Ok(mut stream)) = connected else {
            // Down or unreachable: the probe is already counting; try later.
            tokio::time::sleep(backoff.max(Duration::from_secs(1))).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        };
        let opened = tokio::time::Instant::now();
        closed(&mut stream).await;
        tracing::debug!(%host, port, "the primary closed the sentinel connection: probing now");
        wake.notify_one();
        backoff = if opened.elapsed() < SHORT_LIVED {
            (backoff * 2).min(MAX_BACKOFF)
        } else {
            RECONNECT_AFTER
        };
        tokio::time::sleep(backoff).await;
    }
}

/// Returns when the peer closes or resets the connection. Anything it sends
/// is read into a small buffer and dropped: nothing accumulates.
async fn closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gateway that closes its connections (killed, draining) wakes the
    /// daemon at once; one that keeps them open does not.
    #[tokio::test]
    async fn a_closed_connection_wakes_the_daemon_at_once() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(watch(
            vec![format!("http://127.0.0.1:{port}/readyz")],
            wake.clone(),
        ));
        let (conn, _) = listener.accept().await.unwrap();
        // Held open: no wake.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), wake.notified())
                .await
                .is_err()
        );
        let started = std::time::Instant::now();
        drop(conn);
        tokio::time::timeout(Duration::from_secs(2), wake.notified())
            .await
            .expect("woken when the primary closed the connection");
        assert!(started.elapsed() < Duration::from_millis(500));
        // It connects again for the next death.
        let again = tokio::time::timeout(Duration::from_secs(3), listener.accept()).await;
        assert!(again.is_ok(), "the sentinel reconnects");
        task.abort();
    }

    /// A primary that closes every connection at once is not probed in a
    /// loop: the sentinel backs off.
    #[tokio::test]
    async fn a_primary_that_always_closes_is_not_a_probe_flood() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(watch(
            vec![format!("http://127.0.0.1:{port}/readyz")],
            wake.clone(),
        ));
        let accepts = tokio::spawn(async move {
            let mut n = 0;
            while let Ok(Ok((c, _))) =
                tokio::time::timeout(Duration::from_secs(3), listener.accept()).await
            {
                drop(c);
                n += 1;
            }
            n
        });
        let n = accepts.await.unwrap();
        task.abort();
        // Reconnects after 0.5 s, 1 s, 2 s, then 4 s (past the 3 s this
        // waits): a handful of attempts, not hundreds.
        assert!((3..=5).contains(&n), "{n} connections");
    }
}
