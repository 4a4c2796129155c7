//! The Telegram Bot API stand-in: `<root>/bot<TOKEN>/<method>`, the methods
//! OpenClaw's Telegram channel calls (docs/lab.md lists them and how they
//! were found), with Telegram's answers and errors: one bot per token,
//! updates kept until an offset confirms them, and one poller per token (a
//! second `getUpdates` ends the waiting one with 409 Conflict).

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{json, Map, Value};

use super::http::{self, Answer};
use super::state::{ApiError, Poll};
use super::{unix_ms, Shared};

/// Telegram's longest long poll.
const MAX_POLL: Duration = Duration::from_secs(50);

fn ok(result: Value) -> Answer {
    http::json(StatusCode::OK, &json!({"ok": true, "result": result}))
}

fn error(e: ApiError) -> Answer {
    http::json(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::BAD_REQUEST),
        &json!({"ok": false, "error_code": e.code, "description": e.description}),
    )
}

/// Parameters from the query string, then a JSON or form body (grammY
/// sends JSON; curl users send forms).
fn params(
    query: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> Result<Map<String, Value>, ApiError> {
    let mut out = Map::new();
    let form = |bytes: &[u8], out: &mut Map<String, Value>| {
        for (k, v) in form_urlencoded::parse(bytes) {
            // Form values that are JSON (numbers, objects) are read as such,
            // as the Bot API does.
            let value = serde_json::from_str(&v).unwrap_or(Value::String(v.into_owned()));
            out.insert(k.into_owned(), value);
        }
    };
    if let Some(q) = query {
        form(q.as_bytes(), &mut out);
    }
    if body.is_empty() {
        return Ok(out);
    }
    if content_type.starts_with("application/json") {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => out.extend(m),
            _ => return Err(ApiError::new(400, "Bad Request: invalid JSON")),
        }
    } else if content_type.starts_with("multipart/") {
        return Err(ApiError::new(
            400,
            "Bad Request: the lab's Bot API stand-in takes no file uploads",
        ));
    } else {
        form(body, &mut out);
    }
    Ok(out)
}

fn int(p: &Map<String, Value>, key: &str) -> Option<i64> {
    match p.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn string<'a>(p: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    p.get(key).and_then(Value::as_str)
}

fn required_chat(p: &Map<String, Value>) -> Result<i64, ApiError> {
    int(p, "chat_id").ok_or_else(|| ApiError::new(400, "Bad Request: chat_id is empty"))
}

/// The text a user sees: HTML markup removed, entities decoded (Telegram
/// counts the 4096 characters after parsing).
fn visible_text(text: &str, parse_mode: Option<&str>) -> String {
    if !parse_mode.is_some_and(|m| m.eq_ignore_ascii_case("html")) {
        return text.to_string();
    }
    let mut out = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Answer {
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let Some((token, method)) = path
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'))
    else {
        return error(ApiError::new(404, "Not Found"));
    };
    let (token, method) = (token.to_string(), method.to_string());
    let bot = shared.world().bot_by_token(&token);
    let Some(bot) = bot else {
        return error(ApiError::new(401, "Unauthorized"));
    };
    let body = match http::body(req).await {
        Ok((_, b)) => b,
        Err(a) => return a,
    };
    let p = match params(query.as_deref(), &content_type, &body) {
        Ok(p) => p,
        Err(e) => return error(e),
    };
    if std::env::var_os("OCFO_WORLD_TRACE").is_some() {
        // No token here: it is in the URL's path, not the parameters.
        let node = shared.world().spec(bot).node.clone();
        eprintln!("telegram {node}: {method} {}", Value::Object(p.clone()));
    }
    let answer = match method.as_str() {
        "getUpdates" => return get_updates(&shared, bot, &p).await,
        _ => call(&shared, bot, &method, &p),
    };
    shared.commit();
    match answer {
        Ok(v) => ok(v),
        Err(e) => error(e),
    }
}

/// Every method but `getUpdates`: answered at once.
fn call(
    shared: &Shared,
    bot: usize,
    method: &str,
    p: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let now = unix_ms();
    let mut w = shared.world();
    match method {
        "getMe" => Ok(w.get_me(bot)),
        "sendMessage" => {
            let chat = required_chat(p)?;
            let text = visible_text(string(p, "text").unwrap_or(""), string(p, "parse_mode"));
            let reply_to = int(p, "reply_to_message_id")
                .or_else(|| {
                    p.get("reply_parameters")
                        .and_then(Value::as_object)
                        .and_then(|r| int(r, "message_id"))
                })
                .map(|r| r as u64);
            w.bot_sends(bot, chat, &text, reply_to, now)
        }
        "editMessageText" => {
            let chat = required_chat(p)?;
            let id = int(p, "message_id").ok_or_else(|| {
                ApiError::new(400, "Bad Request: message identifier is not specified")
            })?;
            let text = visible_text(string(p, "text").unwrap_or(""), string(p, "parse_mode"));
            w.bot_edits(bot, chat, id as u64, &text, now)
        }
        "sendChatAction" | "setMessageReaction" | "deleteMessage" => {
            let chat = required_chat(p)?;
            if chat != w.user.id as i64 {
                return Err(ApiError::new(400, "Bad Request: chat not found"));
            }
            Ok(Value::Bool(true))
        }
        "getChat" => {
            let chat = required_chat(p)?;
            if chat != w.user.id as i64 {
                return Err(ApiError::new(400, "Bad Request: chat not found"));
            }
            Ok(json!({
                "id": w.user.id, "type": "private", "first_name": w.user.first_name,
                "username": w.user.username, "accent_color_id": 0, "max_reaction_count": 11,
            }))
        }
        "deleteWebhook" => {
            w.set_webhook(bot, None);
            if p.get("drop_pending_updates").and_then(Value::as_bool) == Some(true) {
                w.drop_pending(bot, now);
            }
            Ok(Value::Bool(true))
        }
        "setWebhook" => {
            let url = string(p, "url").unwrap_or("").to_string();
            w.set_webhook(bot, Some(url));
            Ok(Value::Bool(true))
        }
        "getWebhookInfo" => Ok(w.webhook_info(bot)),
        "setMyCommands" => {
            w.set_commands(bot, p.get("commands").cloned().unwrap_or(json!([])));
            Ok(Value::Bool(true))
        }
        "getMyCommands" => Ok(w.commands(bot)),
        "deleteMyCommands" => {
            w.set_commands(bot, json!([]));
            Ok(Value::Bool(true))
        }
        "answerCallbackQuery"
        | "setMyDescription"
        | "setMyShortDescription"
        | "setChatMenuButton"
        | "close"
        | "logOut" => Ok(Value::Bool(true)),
        _ => Err(ApiError::new(404, "Not Found")),
    }
}

/// Long polling: waits up to `timeout` seconds for updates, ends with 409
/// when another poller takes over, keeps the bot's "polling" flag up while
/// it waits (also when the client goes away mid-wait).
async fn get_updates(shared: &Arc<Shared>, bot: usize, p: &Map<String, Value>) -> Answer {
    let timeout =
        Duration::from_secs(int(p, "timeout").unwrap_or(0).clamp(0, 50) as u64).min(MAX_POLL);
    let limit = int(p, "limit").unwrap_or(100).clamp(1, 100) as usize;
    let mut changed = shared.subscribe();
    let generation = {
        let mut w = shared.world();
        match w.begin_poll(bot, int(p, "offset"), unix_ms()) {
            Ok(g) => g,
            Err(e) => return error(e),
        }
    };
    shared.commit();
    struct Waiting<'a>(&'a Shared, usize);
    impl Drop for Waiting<'_> {
        fn drop(&mut self) {
            self.0.world().set_polling(self.1, false);
        }
    }
    shared.world().set_polling(bot, true);
    let _waiting = Waiting(shared, bot);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let outcome = {
            let mut w = shared.world();
            let now = unix_ms();
            if w.taken_over(bot, generation, now) {
                Some(Err(ApiError::new(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                )))
            } else {
                match w.poll(bot, limit, now) {
                    Poll::Updates(u) => Some(Ok(Value::Array(u))),
                    Poll::Empty if tokio::time::Instant::now() >= deadline => Some(Ok(json!([]))),
                    Poll::Empty => None,
                }
            }
        };
        if let Some(outcome) = outcome {
            shared.commit();
            return match outcome {
                Ok(v) => ok(v),
                Err(e) => error(e),
            };
        }
        let _ = tokio::time::timeout_at(deadline, changed.changed()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_from_json_forms_and_queries() {
        let p = params(Some("offset=5&timeout=30"), "", b"").unwrap();
        assert_eq!(int(&p, "offset"), Some(5));
        let p = params(
            None,
            "application/json",
            br#"{"chat_id": "42", "text": "hi"}"#,
        )
        .unwrap();
        assert_eq!(int(&p, "chat_id"), Some(42));
        let p = params(
            None,
            "application/x-www-form-urlencoded",
            b"chat_id=-7&text=a%20b",
        )
        .unwrap();
        assert_eq!(
            (int(&p, "chat_id"), string(&p, "text")),
            (Some(-7), Some("a b"))
        );
        assert_eq!(
            params(None, "application/json", b"[1]").unwrap_err().code,
            400
        );
        assert_eq!(
            params(None, "multipart/form-data; boundary=x", b"--x")
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn html_is_what_the_user_sees_without_the_markup() {
        assert_eq!(
            visible_text("<b>Hi</b> &lt;you&gt; &amp; me", Some("HTML")),
            "Hi <you> & me"
        );
        assert_eq!(visible_text("<b>raw</b>", None), "<b>raw</b>");
    }
}
