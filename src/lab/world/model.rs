//! The model stand-in: an OpenAI-compatible `POST /v1/chat/completions`
//! (streamed as server-sent events, or whole) and `GET /v1/models`, which
//! OpenClaw uses as a custom provider. Deterministic and instant: its reply
//! quotes, in order, every message the person wrote in the conversation it
//! was sent, so a test reads off the reply exactly what the agent remembers.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::http::{self, Answer};
use super::{unix_ms, Shared};

/// The one model it serves.
pub const MODEL_ID: &str = "echo";
/// Replies stay under Telegram's 4096 characters: beyond this, the oldest
/// messages are counted instead of quoted.
const MAX_REPLY: usize = 3500;
/// OpenClaw 2026.9.6 frames what the person wrote: `[time] Conversation
/// info: ⟦openclaw:ctx⟧` + a JSON block about the sender, then the text
/// (and on the first turn a `Runtime:` line). Its own context blocks are
/// not the person's words.
const SENDER_BLOCK: &str = "Conversation info: ⟦openclaw:ctx⟧";
const INTERNAL: &str = "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>";

fn error(status: StatusCode, message: &str, code: &str) -> Answer {
    http::json(
        status,
        &json!({"error": {"message": message, "type": "invalid_request_error", "code": code}}),
    )
}

/// The text of a message's content: a string, or the text parts of a list.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// What the person wrote in one user message, without OpenClaw's framing;
/// `None` for OpenClaw's own turns (context blocks, heartbeat polls).
pub fn person_text(content: &str) -> Option<String> {
    if content.contains(INTERNAL) {
        return None;
    }
    let Some(at) = content.find(SENDER_BLOCK) else {
        // Not framed: an OpenClaw prompt such as `[time] [OpenClaw heartbeat poll]`.
        return None;
    };
    let after = &content[at + SENDER_BLOCK.len()..];
    // The sender block is a fenced JSON block: the text follows its fence.
    let text = match after.find("```") {
        Some(open) => {
            let rest = &after[open + 3..];
            match rest.find("```") {
                Some(close) => &rest[close + 3..],
                None => rest,
            }
        }
        None => after,
    };
    let text = text.split("\n\nRuntime: agent=").next().unwrap_or(text);
    Some(text.trim().to_string())
}

/// Whether the turn was started by OpenClaw itself (a heartbeat poll, a
/// scheduled job), not by the person: its last prompt is not framed as
/// theirs. Such turns are answered `NO_REPLY`, OpenClaw's "nothing to say",
/// so nothing reaches the chat.
pub fn openclaw_turn(request: &Value) -> bool {
    let last = request["messages"].as_array().and_then(|messages| {
        messages
            .iter()
            .rev()
            .filter(|m| m["role"] == "user")
            .map(|m| content_text(&m["content"]))
            .find(|t| !t.contains(INTERNAL))
    });
    last.is_some_and(|t| person_text(&t).is_none())
}

/// Every message the person wrote, in order.
pub fn person_messages(request: &Value) -> Vec<String> {
    request["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .filter(|m| m["role"] == "user")
                .filter_map(|m| person_text(&content_text(&m["content"])))
                .collect()
        })
        .unwrap_or_default()
}

/// What every reply of the lab model begins with.
pub const REPLY_PREFIX: &str = "lab model: ";

/// The last message a lab-model reply quotes, as candidates: its whole text
/// and each of its lines (OpenClaw merges messages that arrive together into
/// one, a line each); `None` if `text` is no such reply.
pub fn last_quoted(text: &str) -> Option<Vec<String>> {
    let body = text.strip_prefix(REPLY_PREFIX)?;
    let lines: Vec<&str> = body.lines().collect();
    let start = lines.iter().rposition(|l| {
        let digits = l.chars().take_while(char::is_ascii_digit).count();
        digits > 0 && l[digits..].starts_with(". ")
    })?;
    let first = lines[start];
    let digits = first.chars().take_while(char::is_ascii_digit).count();
    let mut item = vec![first[digits + 2..].to_string()];
    item.extend(lines[start + 1..].iter().map(|l| l.to_string()));
    let whole = item.join("\n");
    let mut candidates: Vec<String> = item.into_iter().filter(|l| !l.trim().is_empty()).collect();
    candidates.insert(0, whole);
    Some(candidates)
}

/// The reply: the person's messages, quoted verbatim and numbered, the
/// latest ones when they would not all fit in one chat message.
pub fn reply(messages: &[String]) -> String {
    if messages.is_empty() {
        return format!("{REPLY_PREFIX}nothing from you in this conversation yet.");
    }
    let head = format!(
        "{REPLY_PREFIX}you wrote {} message{} in this conversation:",
        messages.len(),
        if messages.len() == 1 { "" } else { "s" }
    );
    let mut lines: Vec<String> = Vec::new();
    let mut size = head.len();
    for (i, m) in messages.iter().enumerate().rev() {
        let line = format!("{}. {m}", i + 1);
        if size + line.len() + 1 > MAX_REPLY && !lines.is_empty() {
            lines.push(format!("(messages 1 to {} not quoted: too long)", i + 1));
            break;
        }
        size += line.len() + 1;
        lines.push(line);
    }
    lines.reverse();
    format!("{head}\n{}", lines.join("\n"))
}

pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Answer {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let authorized = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|k| k == shared.model_key);
    if !authorized {
        return error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided",
            "invalid_api_key",
        );
    }
    match (method, path.as_str()) {
        (Method::GET, "/v1/models") => http::json(
            StatusCode::OK,
            &json!({"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "ocfo-lab"}]}),
        ),
        (Method::POST, "/v1/chat/completions") => {
            let body = match http::body(req).await {
                Ok((_, b)) => b,
                Err(a) => return a,
            };
            let Ok(request) = serde_json::from_slice::<Value>(&body) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "the body is not JSON",
                    "invalid_json",
                );
            };
            let messages = person_messages(&request);
            let text = if openclaw_turn(&request) {
                "NO_REPLY".to_string()
            } else {
                reply(&messages)
            };
            let stream = request["stream"] == true;
            shared
                .world()
                .record_model_reply(messages.len(), stream, unix_ms());
            shared.commit();
            let model = request["model"].as_str().unwrap_or(MODEL_ID).to_string();
            if stream {
                streamed(
                    &model,
                    &text,
                    request["stream_options"]["include_usage"] == true,
                )
            } else {
                http::json(StatusCode::OK, &completion(&model, &text))
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            &format!("no {path} here"),
            "not_found",
        ),
    }
}

fn usage(text: &str) -> Value {
    let completion = text.split_whitespace().count();
    json!({"prompt_tokens": 100, "completion_tokens": completion, "total_tokens": 100 + completion})
}

fn completion(model: &str, text: &str) -> Value {
    json!({
        "id": format!("chatcmpl-lab-{}", unix_ms()), "object": "chat.completion",
        "created": unix_ms() / 1000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": usage(text),
    })
}

/// Server-sent events as OpenAI streams them: a role chunk, the text, a
/// final chunk with `finish_reason`, the usage when asked, `[DONE]`.
fn streamed(model: &str, text: &str, include_usage: bool) -> Answer {
    let id = format!("chatcmpl-lab-{}", unix_ms());
    let created = unix_ms() / 1000;
    let chunk = |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut events = vec![
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": text}), Value::Null),
        chunk(json!({}), json!("stop")),
    ];
    if include_usage {
        events.push(
            json!({"id": id, "object": "chat.completion.chunk", "created": created,
                           "model": model, "choices": [], "usage": usage(text)}),
        );
    }
    let mut body = String::new();
    for e in events {
        body.push_str(&format!("data: {e}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages as OpenClaw 2026.9.6 sent them to a custom provider
    /// (trimmed): the first turn with its `Runtime:` line, a later turn, a
    /// heartbeat poll, and its internal context block.
    fn request() -> Value {
        let framed = |text: &str, runtime: bool| {
            format!(
                "[Sun 2026-12-06 08:26 UTC] Conversation info: ⟦openclaw:ctx⟧\n```json\n{{\"sender\":{{\"id\":\"123456789\",\"name\":\"Lab User\"}}}}\n```\n\n{text}{}",
                if runtime { "\n\nRuntime: agent=main | session=agent:main:main | channel=telegram" } else { "" }
            )
        };
        json!({"model": "echo", "stream": true, "messages": [
            {"role": "system", "content": "You are a personal assistant running inside OpenClaw."},
            {"role": "user", "content": framed("Hello bot, first message", true)},
            {"role": "assistant", "content": "lab model: ..."},
            {"role": "user", "content": "[Sun 2026-12-06 08:31 UTC] [OpenClaw heartbeat poll]"},
            {"role": "user", "content": framed("Second: what did I say?\nTwo lines.", false)},
            {"role": "user", "content": [{"type": "text", "text": "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>\nConversation data ...\n<<<END_OPENCLAW_INTERNAL_CONTEXT>>>"}]},
        ]})
    }

    #[test]
    fn quotes_what_the_person_wrote_in_order() {
        let messages = person_messages(&request());
        assert_eq!(
            messages,
            [
                "Hello bot, first message",
                "Second: what did I say?\nTwo lines."
            ]
        );
        let text = reply(&messages);
        assert_eq!(
            text,
            "lab model: you wrote 2 messages in this conversation:\n1. Hello bot, first message\n2. Second: what did I say?\nTwo lines."
        );
        assert_eq!(
            reply(&[]),
            "lab model: nothing from you in this conversation yet."
        );
    }

    #[test]
    fn openclaws_own_turns_get_no_reply() {
        assert!(!openclaw_turn(&request()));
        let mut heartbeat = request();
        heartbeat["messages"]
            .as_array_mut()
            .unwrap()
            .insert(5, json!({"role": "user", "content": "[Sun 2026-12-06 08:37 UTC] Read HEARTBEAT.md if it exists. If nothing needs attention, reply NO_REPLY."}));
        assert!(openclaw_turn(&heartbeat));
    }

    #[test]
    fn a_long_conversation_keeps_the_latest_messages_under_telegrams_limit() {
        let messages: Vec<String> = (1..=400).map(|i| format!("message number {i}")).collect();
        let text = reply(&messages);
        assert!(text.chars().count() < 4096, "{}", text.len());
        assert!(text.ends_with("400. message number 400"), "{text}");
        assert!(text.contains("not quoted"), "{text}");
        assert!(text.starts_with("lab model: you wrote 400 messages"));
    }

    #[test]
    fn the_last_quoted_message_is_found_as_telegram_shows_it() {
        // As the user sees it: OpenClaw renders the list with a blank line,
        // and messages that arrived together as one item, a line each.
        let seen = "lab model: you wrote 3 messages in this conversation:\n\n1. hello\n2. drill ping 1\ndrill ping 2\n3. what now?";
        assert_eq!(last_quoted(seen).unwrap(), ["what now?", "what now?"]);
        let batch = "lab model: you wrote 2 messages in this conversation:\n\n1. hello\n2. drill ping 1\ndrill ping 2";
        assert_eq!(
            last_quoted(batch).unwrap(),
            ["drill ping 1\ndrill ping 2", "drill ping 1", "drill ping 2"]
        );
        assert_eq!(last_quoted("⚠️ an announcement"), None);
        assert_eq!(
            last_quoted("lab model: nothing from you in this conversation yet."),
            None
        );
    }

    #[test]
    fn streams_as_openai_does() {
        let r = streamed("echo", "hi there", true);
        assert_eq!(
            r.headers()[hyper::header::CONTENT_TYPE],
            "text/event-stream"
        );
    }
}
