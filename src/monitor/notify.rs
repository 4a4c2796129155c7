//! Webhook notifications (a JSON POST that Discord and Slack incoming
//! webhooks accept: `content` and `text`), sent in the background with a
//! timeout and retries, so they never hold up a failover. The URL is a
//! secret: it is handed to curl on stdin, never on a command line or in a log.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::config::NotifyConfig;

#[derive(Debug, Clone)]
pub struct Notifier {
    url: Option<String>,
    timeout: Duration,
    retries: u32,
    name: String,
}

impl Notifier {
    pub fn new(config: Option<&NotifyConfig>, name: &str) -> Notifier {
        let url = config
            .and_then(|c| std::env::var(&c.webhook_env).ok())
            .filter(|u| !u.is_empty());
        Notifier {
            url,
            timeout: config.map_or(Duration::from_secs(5), |c| c.timeout),
            retries: config.map_or(0, |c| c.retries),
            name: name.to_string(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }

    /// Queues a message; returns at once.
    pub fn send(&self, event: &str, message: &str) {
        let Some(url) = self.url.clone() else {
            return;
        };
        let body = serde_json::json!({
            "content": format!("[{}] {message}", self.name),
            "text": format!("[{}] {message}", self.name),
            "event": event,
            "assistant": self.name,
            "node": "standby",
            "at": crate::clock::rfc3339_now(),
        })
        .to_string();
        let (timeout, retries) = (self.timeout, self.retries);
        tokio::spawn(async move {
            for attempt in 0..=retries {
                match post(&url, &body, timeout).await {
                    Ok(()) => return,
                    Err(e) => tracing::warn!(attempt, "webhook notification failed: {e}"),
                }
                tokio::time::sleep(Duration::from_secs(1 << attempt.min(5))).await;
            }
        });
    }
}

fn curl_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

async fn post(url: &str, body: &str, timeout: Duration) -> Result<(), String> {
    let config = format!(
        "url = {}\nrequest = \"POST\"\nheader = \"Content-Type: application/json\"\ndata-binary = {}\nmax-time = {}\nsilent\nshow-error\nfail\noutput = \"/dev/null\"\n",
        curl_quote(url),
        curl_quote(body),
        timeout.as_secs().max(1)
    );
    let mut child = Command::new("curl")
        .args(["--config", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(config.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().await.map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        // curl's message can quote the URL: keep only its exit code.
        Err(format!("curl exit {}", out.status.code().unwrap_or(-1)))
    }
}
