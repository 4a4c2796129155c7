//! The control socket: what the lab's user does, and what happened. Root
//! only (a 0600 socket in the lab's state folder), never on the network.
//!
//! - `GET /status`: each bot (polling now? last poll? waiting updates?);
//! - `POST /send {"bot": NODE, "text": ...}`: the user writes to a bot;
//! - `POST /start {"bot": NODE}`: the user opens a bot and presses Start;
//! - `GET /events?after=SEQ&wait_ms=MS&limit=N`: the record after `SEQ`,
//!   waiting up to `wait_ms` for something new.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::{json, Value};

use super::http::{self, Answer};
use super::{unix_ms, Shared};

fn bad(message: impl Into<String>) -> Answer {
    http::json(StatusCode::BAD_REQUEST, &json!({"error": message.into()}))
}

fn query_u64(query: Option<&str>, key: &str) -> Option<u64> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.parse().ok())
}

pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Answer {
    let (method, path, query) = (
        req.method().clone(),
        req.uri().path().to_string(),
        req.uri().query().map(str::to_string),
    );
    let body = match http::body(req).await {
        Ok((_, b)) => b,
        Err(a) => return a,
    };
    let input: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return bad(format!("not JSON: {e}")),
        }
    };
    let bot_of = |input: &Value| -> Result<usize, Answer> {
        let node = input["bot"].as_str().unwrap_or("");
        shared.world().bot_by_node(node).map_err(bad)
    };
    match (method, path.as_str()) {
        (Method::GET, "/status") => {
            let w = shared.world();
            http::json(
                StatusCode::OK,
                &json!({"bots": w.status(unix_ms()), "last_seq": w.last_seq(), "user": w.user}),
            )
        }
        (Method::POST, "/send") => {
            let bot = match bot_of(&input) {
                Ok(b) => b,
                Err(a) => return a,
            };
            let text = input["text"].as_str().unwrap_or("");
            let now = unix_ms();
            let sent = shared.world().user_writes(bot, text, now);
            shared.commit();
            match sent {
                Ok((seq, message_id, update_id)) => http::json(
                    StatusCode::OK,
                    &json!({"seq": seq, "at_ms": now, "message_id": message_id, "update_id": update_id}),
                ),
                Err(e) => bad(e),
            }
        }
        (Method::POST, "/start") => {
            let bot = match bot_of(&input) {
                Ok(b) => b,
                Err(a) => return a,
            };
            shared.world().start(bot, unix_ms());
            shared.commit();
            http::json(StatusCode::OK, &json!({}))
        }
        (Method::GET, "/events") => {
            let after = query_u64(query.as_deref(), "after").unwrap_or(0);
            let wait = Duration::from_millis(
                query_u64(query.as_deref(), "wait_ms")
                    .unwrap_or(0)
                    .min(60_000),
            );
            let limit = query_u64(query.as_deref(), "limit")
                .unwrap_or(1000)
                .clamp(1, 10_000) as usize;
            let mut changed = shared.subscribe();
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let (events, last) = {
                    let w = shared.world();
                    (w.events_after(after, limit), w.last_seq())
                };
                if !events.is_empty() || tokio::time::Instant::now() >= deadline {
                    return http::json(
                        StatusCode::OK,
                        &json!({"events": events, "last_seq": last}),
                    );
                }
                let _ = tokio::time::timeout_at(deadline, changed.changed()).await;
            }
        }
        _ => http::json(
            StatusCode::NOT_FOUND,
            &json!({"error": format!("no {path} here")}),
        ),
    }
}
