#![cfg(target_os = "linux")]
//! The lab's chat world, served for real on loopback (no lab, no root): the
//! Telegram Bot API stand-in keeps Telegram's rules (one bot per token, 401,
//! updates kept until an offset confirms them, a second poller ends the
//! first with 409, a bot cannot write first, 4096 characters), the model
//! stand-in speaks OpenAI's protocol and quotes the person, the journal
//! survives a restart, and `lab chat`'s client finds the answer to its
//! question. A bot is played here by plain HTTP calls, as OpenClaw makes
//! them (JSON bodies, long polls, `reply_parameters`).

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use ocfo::lab::world::client::WorldClient;
use ocfo::lab::world::state::{BotSpec, UserSpec};
use ocfo::lab::world::{serve, WorldConfig};
use serde_json::{json, Value};

const PRIMARY: &str = "7100000001:primary-token-aaaaaaaaaaaaaaaaaaaaaaaaaa";
const STANDBY: &str = "7100000002:standby-token-bbbbbbbbbbbbbbbbbbbbbbbbbb";
const MODEL_KEY: &str = "sk-lab-test-key";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(dir: &Path) -> WorldConfig {
    let bot = |node: &str, token: &str, id: u64| BotSpec {
        node: node.into(),
        id,
        token: token.into(),
        username: format!("t_{node}_bot"),
        first_name: format!("Test {node}"),
    };
    WorldConfig {
        lab: "test".into(),
        listen: "127.0.0.1".into(),
        telegram_port: free_port(),
        model_port: free_port(),
        socket: dir.join("world.sock"),
        journal: dir.join("world.jsonl"),
        bots: vec![
            bot("primary", PRIMARY, 7100000001),
            bot("standby", STANDBY, 7100000002),
        ],
        user: UserSpec {
            id: 123456789,
            first_name: "Lab User".into(),
            username: "lab_user".into(),
        },
        model_key: MODEL_KEY.into(),
    }
}

/// Starts the world and waits for its control socket.
async fn start(config: &WorldConfig) -> tokio::task::JoinHandle<()> {
    let c = config.clone();
    let task = tokio::spawn(async move {
        serve(c).await.expect("the world serves");
    });
    for _ in 0..100 {
        if tokio::net::UnixStream::connect(&config.socket)
            .await
            .is_ok()
        {
            return task;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the world did not start");
}

/// One HTTP request: (status, JSON body or the text as a JSON string).
async fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<Value>,
    auth: Option<&str>,
) -> (u16, Value) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json");
    if let Some(a) = auth {
        req = req.header("authorization", format!("Bearer {a}"));
    }
    let req = req
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

async fn bot(c: &WorldConfig, token: &str, method: &str, params: Value) -> (u16, Value) {
    http(
        c.telegram_port,
        "POST",
        &format!("/bot{token}/{method}"),
        Some(params),
        None,
    )
    .await
}

#[tokio::test]
async fn the_bot_api_keeps_telegrams_rules() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let world = start(&c).await;
    let user = WorldClient {
        socket: c.socket.clone(),
    };

    // One bot per token; an unknown token is 401, an unknown method 404.
    let (status, me) = bot(&c, PRIMARY, "getMe", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(me["result"]["username"], "t_primary_bot");
    let (status, e) = bot(&c, "1:nope", "getMe", json!({})).await;
    assert_eq!((status, e["error_code"].clone()), (401, json!(401)));
    assert_eq!(bot(&c, PRIMARY, "noSuchMethod", json!({})).await.0, 404);

    // The user writes; the update waits until an offset confirms it.
    use ocfo::user_side::UserSide;
    let sent = user.send("primary", "hello bot").await.unwrap();
    let (_, u) = bot(&c, PRIMARY, "getUpdates", json!({"timeout": 0})).await;
    let updates = u["result"].as_array().unwrap().clone();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["message"]["text"], "hello bot");
    assert_eq!(updates[0]["message"]["from"]["id"], 123456789);
    let id = updates[0]["update_id"].as_u64().unwrap();
    let (_, again) = bot(&c, PRIMARY, "getUpdates", json!({"timeout": 0})).await;
    assert_eq!(
        again["result"].as_array().unwrap().len(),
        1,
        "not confirmed yet"
    );
    let (_, gone) = bot(
        &c,
        PRIMARY,
        "getUpdates",
        json!({"timeout": 0, "offset": id + 1}),
    )
    .await;
    assert_eq!(gone["result"], json!([]));
    // The standby's bot never saw it.
    let (_, other) = bot(&c, STANDBY, "getUpdates", json!({"timeout": 0})).await;
    assert_eq!(other["result"], json!([]));

    // A second poller ends the waiting one with Telegram's 409.
    let c2 = c.clone();
    let first = tokio::spawn(async move {
        bot(
            &c2,
            PRIMARY,
            "getUpdates",
            json!({"timeout": 20, "offset": id + 1}),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c3 = c.clone();
    let second = tokio::spawn(async move {
        bot(
            &c3,
            PRIMARY,
            "getUpdates",
            json!({"timeout": 2, "offset": id + 1}),
        )
        .await
    });
    let (status, conflict) = tokio::time::timeout(Duration::from_secs(5), first)
        .await
        .expect("the first poller is ended at once")
        .unwrap();
    assert_eq!(status, 409);
    assert_eq!(
        conflict["description"],
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
    );
    assert_eq!(second.await.unwrap().0, 200);

    // A long poll returns as soon as the user writes.
    let c4 = c.clone();
    let waiting = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let r = bot(&c4, STANDBY, "getUpdates", json!({"timeout": 20})).await;
        (r, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    user.send("standby", "are you there?").await.unwrap();
    let ((_, u), took) = waiting.await.unwrap();
    assert_eq!(u["result"][0]["message"]["text"], "are you there?");
    assert!(took < Duration::from_secs(5), "{took:?}");

    // A bot cannot write to someone who never started it; HTML is what
    // the user sees without its markup; Telegram's length limit.
    let fresh = tempfile::tempdir().unwrap();
    let c5 = config(fresh.path());
    let w5 = start(&c5).await;
    let (status, e) = bot(
        &c5,
        STANDBY,
        "sendMessage",
        json!({"chat_id": 123456789, "text": "hi"}),
    )
    .await;
    assert_eq!(status, 403, "{e}");
    assert_eq!(
        e["description"],
        "Forbidden: bot can't initiate conversation with a user"
    );
    WorldClient {
        socket: c5.socket.clone(),
    }
    .start("standby")
    .await
    .unwrap();
    let (status, m) = bot(
        &c5,
        STANDBY,
        "sendMessage",
        json!({"chat_id": "123456789", "text": "<b>Hi</b> &amp; welcome", "parse_mode": "HTML"}),
    )
    .await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["result"]["text"], "Hi & welcome");
    let long = "x".repeat(4097);
    let (status, e) = bot(
        &c5,
        STANDBY,
        "sendMessage",
        json!({"chat_id": 123456789, "text": long}),
    )
    .await;
    assert_eq!(
        (status, e["description"].as_str()),
        (400, Some("Bad Request: message is too long"))
    );
    assert_eq!(
        bot(
            &c5,
            STANDBY,
            "sendMessage",
            json!({"chat_id": 42, "text": "x"})
        )
        .await
        .0,
        400,
        "chat not found"
    );
    w5.abort();

    // The record: the 409 and every message, with times.
    let events = user.all_events().await.unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e.kind {
            ocfo::lab::world::state::EventKind::UserMessage { .. } => "user",
            ocfo::lab::world::state::EventKind::Delivered { .. } => "delivered",
            ocfo::lab::world::state::EventKind::Conflict { .. } => "409",
            _ => "",
        })
        .filter(|k| !k.is_empty())
        .collect();
    assert_eq!(kinds, ["user", "delivered", "409", "user", "delivered"]);
    assert!(events.iter().all(|e| e.at_ms >= sent.at_ms));
    world.abort();
}

#[tokio::test]
async fn the_journal_keeps_update_ids_growing_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let world = start(&c).await;
    let user = WorldClient {
        socket: c.socket.clone(),
    };
    use ocfo::user_side::UserSide;
    user.send("primary", "one").await.unwrap();
    user.send("primary", "two").await.unwrap();
    let (_, u) = bot(&c, PRIMARY, "getUpdates", json!({"timeout": 0})).await;
    let first = u["result"][0]["update_id"].as_u64().unwrap();
    // Confirm the first only, then restart the world.
    bot(
        &c,
        PRIMARY,
        "getUpdates",
        json!({"timeout": 0, "offset": first + 1}),
    )
    .await;
    world.abort();
    let _ = world.await;
    let world = start(&c).await;
    user.send("primary", "three").await.unwrap();
    let (_, u) = bot(
        &c,
        PRIMARY,
        "getUpdates",
        json!({"timeout": 0, "offset": first + 1}),
    )
    .await;
    let texts: Vec<&str> = u["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["message"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["two", "three"]);
    assert_eq!(u["result"][1]["update_id"].as_u64().unwrap(), first + 2);
    world.abort();
}

/// OpenClaw's framing of what the person wrote (2026.9.6).
fn framed(text: &str) -> String {
    format!("[Sun 2026-12-06 08:26 UTC] Conversation info: ⟦openclaw:ctx⟧\n```json\n{{\"sender\":{{\"id\":\"123456789\"}}}}\n```\n\n{text}")
}

#[tokio::test]
async fn the_model_speaks_openai_and_quotes_the_person() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let world = start(&c).await;
    let request = json!({"model": "echo", "stream": false, "messages": [
        {"role": "system", "content": "You are a personal assistant."},
        {"role": "user", "content": framed("first: remember kumquat")},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": framed("second: what fruit?")},
    ]});
    let (status, _) = http(
        c.model_port,
        "POST",
        "/v1/chat/completions",
        Some(request.clone()),
        None,
    )
    .await;
    assert_eq!(status, 401, "no key, no answer");
    let (status, r) = http(
        c.model_port,
        "POST",
        "/v1/chat/completions",
        Some(request.clone()),
        Some(MODEL_KEY),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        r["choices"][0]["message"]["content"],
        "lab model: you wrote 2 messages in this conversation:\n1. first: remember kumquat\n2. second: what fruit?"
    );
    assert_eq!(r["choices"][0]["finish_reason"], "stop");
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (status, sse) = http(
        c.model_port,
        "POST",
        "/v1/chat/completions",
        Some(streamed),
        Some(MODEL_KEY),
    )
    .await;
    assert_eq!(status, 200);
    let sse = sse.as_str().unwrap().to_string();
    let chunks: Vec<Value> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(text.ends_with("2. second: what fruit?"), "{text}");
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "stop"));
    assert!(chunks
        .iter()
        .any(|c| c["usage"]["total_tokens"].as_u64().is_some()));
    assert!(sse.trim_end().ends_with("data: [DONE]"));
    let (_, models) = http(c.model_port, "GET", "/v1/models", None, Some(MODEL_KEY)).await;
    assert_eq!(models["data"][0]["id"], "echo");
    world.abort();
}

/// `lab chat`'s client: the answer is the bot's message that names the
/// question, not an earlier one's, not an announcement.
#[tokio::test]
async fn lab_chat_finds_the_answer_to_its_question() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let world = start(&c).await;
    let user = WorldClient {
        socket: c.socket.clone(),
    };
    user.start("primary").await.unwrap();
    // A bot: an announcement first, then each question answered, by name.
    let cb = c.clone();
    let bot_task = tokio::spawn(async move {
        bot(
            &cb,
            PRIMARY,
            "sendMessage",
            json!({"chat_id": 123456789, "text": "announcement"}),
        )
        .await;
        let mut offset = 0;
        loop {
            let (_, u) = bot(
                &cb,
                PRIMARY,
                "getUpdates",
                json!({"timeout": 10, "offset": offset}),
            )
            .await;
            for update in u["result"].as_array().cloned().unwrap_or_default() {
                offset = update["update_id"].as_u64().unwrap() + 1;
                let id = update["message"]["message_id"].clone();
                let text = format!("you said: {}", update["message"]["text"].as_str().unwrap());
                bot(
                    &cb,
                    PRIMARY,
                    "sendChatAction",
                    json!({"chat_id": 123456789, "action": "typing"}),
                )
                .await;
                bot(&cb, PRIMARY, "sendMessage", json!({"chat_id": "123456789", "text": text,
                    "parse_mode": "HTML", "reply_parameters": {"message_id": id, "allow_sending_without_reply": true}})).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let reply = user
        .chat("primary", "what is 2+2?", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(reply.answers.len(), 1, "{reply:?}");
    assert_eq!(reply.answers[0].text, "you said: what is 2+2?");
    assert!(reply.delivered_at_ms.is_some());
    assert!(reply.latency_ms().unwrap() < 5000);
    // Nobody polls the standby's bot: a clear error, in time.
    let started = std::time::Instant::now();
    let err = user
        .chat("standby", "hello?", Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        err.contains("no answer from the standby's bot within 2s"),
        "{err}"
    );
    assert!(err.contains("nothing polls @t_standby_bot"), "{err}");
    // The transcript: both directions, the answer naming its question.
    let events = user.all_events().await.unwrap();
    let bots = user.status().await.unwrap();
    let lines = ocfo::lab::world::client::transcript(&events, &bots);
    let text = ocfo::lab::world::client::transcript_text(&lines);
    assert!(text.contains("user -> @t_primary_bot #"), "{text}");
    assert!(
        text.contains("@t_primary_bot -> user #3 (reply to #2): you said: what is 2+2?"),
        "{text}"
    );
    bot_task.abort();
    world.abort();
}
