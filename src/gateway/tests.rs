//! The client against a fake gateway on 127.0.0.1 that plays frames recorded
//! from a real OpenClaw 2026.9.6 gateway (`testdata/`, trimmed).

use std::future::Future;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::*;

/// The token the recordings were made with (it appears in recorded frames).
const TOKEN: &str = "r5-test-token-0123456789abcdef";

macro_rules! recorded {
    ($name:literal) => {
        serde_json::from_str::<Value>(include_str!(concat!("testdata/", $name))).expect(concat!(
            "testdata/",
            $name,
            " is JSON"
        ))
    };
}

type ServerSocket = WebSocketStream<TcpStream>;

/// A fake gateway for one connection, running `script` once the WebSocket is up.
async fn fake_gateway<F, Fut>(script: F) -> (String, tokio::task::JoinHandle<()>)
where
    F: FnOnce(ServerSocket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        script(ws).await;
    });
    (url, task)
}

/// A fake gateway that completes the upgrade by hand and then writes `raw`
/// bytes: for frames tungstenite would never send.
async fn raw_gateway(raw: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.ends_with(b"\r\n\r\n") {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0);
            request.extend_from_slice(&buf[..n]);
        }
        let request = String::from_utf8(request).unwrap();
        let key = request
            .lines()
            .find_map(|l| {
                l.strip_prefix("Sec-WebSocket-Key: ")
                    .or(l.strip_prefix("sec-websocket-key: "))
            })
            .unwrap();
        let accept =
            tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.trim().as_bytes());
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        tcp.write_all(response.as_bytes()).await.unwrap();
        tcp.write_all(&raw).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    url
}

async fn send_json(ws: &mut ServerSocket, frame: &Value) {
    ws.send(Message::text(frame.to_string())).await.unwrap();
}

/// The client's next frame as JSON; `None` once it closed.
async fn recv_json(ws: &mut ServerSocket) -> Option<Value> {
    while let Some(message) = ws.next().await {
        match message.ok()? {
            Message::Text(text) => return Some(serde_json::from_str(text.as_str()).unwrap()),
            Message::Close(_) => return None,
            _ => {}
        }
    }
    None
}

async fn until_closed(ws: &mut ServerSocket) {
    while recv_json(ws).await.is_some() {}
}

/// A recorded answer, re-addressed to the client's request id.
fn answer(mut frame: Value, request: &Value) -> Value {
    frame["id"] = request["id"].clone();
    frame
}

/// Plays the recorded challenge, checks nothing, answers `hello`; returns
/// the client's connect request.
async fn handshake_with(ws: &mut ServerSocket, hello: Value) -> Value {
    send_json(ws, &recorded!("challenge.json")).await;
    let connect = recv_json(ws).await.expect("a connect request");
    send_json(ws, &answer(hello, &connect)).await;
    connect
}

async fn handshake(ws: &mut ServerSocket) -> Value {
    handshake_with(ws, recorded!("hello-ok.json")).await
}

fn options(url: &str) -> ConnectOptions {
    ConnectOptions {
        client_version: "test-version".into(),
        connect_timeout: Duration::from_secs(3),
        call_timeout: Duration::from_secs(3),
        ..ConnectOptions::new(url, TOKEN)
    }
}

fn temp_device() -> (tempfile::TempDir, Arc<DeviceIdentity>) {
    let dir = tempfile::tempdir().unwrap();
    let device = DeviceIdentity::load_or_create(&dir.path().join("device.pem")).unwrap();
    (dir, Arc::new(device))
}

#[tokio::test]
async fn connect_call_events_and_refusals_from_recorded_frames() {
    let (url, server) = fake_gateway(|mut ws| async move {
        let connect = handshake(&mut ws).await;
        assert_eq!(connect["type"], "req");
        assert_eq!(connect["method"], "connect");
        let p = &connect["params"];
        assert_eq!((p["minProtocol"].as_u64(), p["maxProtocol"].as_u64()), (Some(4), Some(4)));
        assert_eq!(
            p["client"],
            json!({"id": "gateway-client", "version": "test-version", "platform": "linux", "mode": "backend"})
        );
        assert_eq!(p["role"], "operator");
        assert_eq!(p["scopes"], json!(["operator.admin", "operator.read", "operator.write"]));
        assert_eq!(p["auth"], json!({ "token": TOKEN }));
        assert!(p.get("device").is_none());

        let health = recv_json(&mut ws).await.unwrap();
        assert_eq!((health["type"].as_str(), health["method"].as_str()), (Some("req"), Some("health")));
        assert_eq!(health["params"], json!({}));
        send_json(&mut ws, &recorded!("event-tick.json")).await;
        send_json(&mut ws, &answer(recorded!("res-health.json"), &health)).await;

        let send = recv_json(&mut ws).await.unwrap();
        assert_eq!(send["params"]["idempotencyKey"], "k-1");
        send_json(&mut ws, &answer(recorded!("res-send-no-channel.json"), &send)).await;

        let status = recv_json(&mut ws).await.unwrap();
        // A stale answer (to a call that timed out) comes first and is skipped.
        send_json(&mut ws, &answer(recorded!("res-health.json"), &json!({"id": "ocfo-0"}))).await;
        send_json(&mut ws, &answer(recorded!("res-missing-scope.json"), &status)).await;

        let ids: std::collections::BTreeSet<_> = [&connect, &health, &send, &status]
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), 4, "every request has a fresh id: {ids:?}");
        until_closed(&mut ws).await;
    })
    .await;

    let mut client = GatewayClient::connect(&options(&url)).await.unwrap();
    let hello = client.hello();
    assert_eq!(hello.scopes, REQUESTED_SCOPES);
    assert_eq!(hello.auth_method.as_deref(), Some("token"));
    assert_eq!(hello.protocol, 4);
    assert!(hello.device_token.is_none());
    assert!(hello.methods.iter().any(|m| m == "send"));

    let health = client.call("health", json!({})).await.unwrap();
    assert_eq!(health["ok"], true);
    let tick = client.next_event(Duration::ZERO).await.unwrap().unwrap();
    assert_eq!((tick.name.as_str(), tick.seq), ("tick", Some(1)));
    assert!(tick.payload["ts"].is_u64());

    let params = json!({"to": "123", "message": "hi", "idempotencyKey": "k-1"});
    let err = client.call("send", params).await.unwrap_err();
    let GatewayError::Refused {
        method,
        code,
        message,
        retryable,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (method.as_str(), code.as_str(), *retryable),
        ("send", "INVALID_REQUEST", false)
    );
    assert!(
        message.starts_with("Error: Channel is required"),
        "{message}"
    );
    assert!(
        err.to_string()
            .starts_with("the gateway refused `send`: INVALID_REQUEST: Error: Channel"),
        "{err}"
    );

    let err = client.call("channels.status", json!({})).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the gateway refused `channels.status`: FORBIDDEN (MISSING_SCOPE): missing scope: operator.read"
    );
    client.close().await;
    server.await.unwrap();
}

#[tokio::test]
async fn a_device_connect_is_signed_over_the_exact_v3_payload() {
    let (_dir, device) = temp_device();
    let (url, server) = fake_gateway(|mut ws| async move {
        let challenge = recorded!("challenge.json");
        send_json(&mut ws, &challenge).await;
        let connect = recv_json(&mut ws).await.unwrap();
        let d = &connect["params"]["device"];
        let public_key = data_encoding::BASE64URL_NOPAD
            .decode(d["publicKey"].as_str().unwrap().as_bytes())
            .unwrap();
        assert_eq!(public_key.len(), 32);
        assert_eq!(d["id"].as_str().unwrap(), crate::sha256_hex(&public_key));
        // Signed at the gateway's own challenge time, with its nonce.
        assert_eq!(d["signedAt"], challenge["payload"]["ts"]);
        assert_eq!(d["nonce"], challenge["payload"]["nonce"]);
        let payload = format!(
            "v3|{}|gateway-client|backend|operator|operator.admin,operator.read,operator.write|{}|{TOKEN}|{}|linux|",
            d["id"].as_str().unwrap(),
            challenge["payload"]["ts"],
            challenge["payload"]["nonce"].as_str().unwrap(),
        );
        let signature = data_encoding::BASE64URL_NOPAD
            .decode(d["signature"].as_str().unwrap().as_bytes())
            .unwrap();
        let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public_key);
        key.verify(payload.as_bytes(), &signature).expect("the signature verifies");
        assert!(key.verify(payload.replace("|linux|", "|darwin|").as_bytes(), &signature).is_err());
        send_json(&mut ws, &answer(recorded!("hello-ok-device-token.json"), &connect)).await;
        until_closed(&mut ws).await;
    })
    .await;

    let opts = ConnectOptions {
        device: Some(device.clone()),
        ..options(&url)
    };
    let client = GatewayClient::connect(&opts).await.unwrap();
    let token = client.hello().device_token.clone().expect("a device token");
    assert!(!format!("{:?}", client.hello()).contains(token.expose()));
    assert!(!format!("{opts:?}").contains(TOKEN));
    client.close().await;
    server.await.unwrap();
}

#[tokio::test]
async fn not_paired_carries_the_request_to_approve() {
    let (_dir, device) = temp_device();
    let (url, server) = fake_gateway(|mut ws| async move {
        send_json(&mut ws, &recorded!("challenge.json")).await;
        let connect = recv_json(&mut ws).await.unwrap();
        send_json(&mut ws, &answer(recorded!("res-not-paired.json"), &connect)).await;
        let close = recorded!("close-not-paired.json");
        let frame = CloseFrame {
            code: CloseCode::from(close["code"].as_u64().unwrap() as u16),
            reason: close["reason"].as_str().unwrap().into(),
        };
        let _ = ws.close(Some(frame)).await;
    })
    .await;
    let opts = ConnectOptions {
        device: Some(device),
        ..options(&url)
    };
    let err = GatewayClient::connect(&opts).await.err().unwrap();
    let GatewayError::NotPaired {
        request_id,
        device_id,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        request_id.as_deref(),
        Some("0c651eae-ab56-4399-8476-7a6cc725f284")
    );
    assert_eq!(
        device_id,
        "25f12b84721864f6ba589666559217be614ac52aa8b5adebcf58666cad259383"
    );
    assert!(
        err.to_string()
            .contains("run `openclaw devices approve 0c651eae-ab56-4399-8476-7a6cc725f284`"),
        "{err}"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn refused_connects_keep_openclaws_codes() {
    for (frame, detail, retry_after) in [
        (
            recorded!("res-token-mismatch.json"),
            Some("AUTH_TOKEN_MISMATCH"),
            None,
        ),
        (
            recorded!("res-gateway-starting.json"),
            None,
            Some(Duration::from_millis(500)),
        ),
    ] {
        let (url, _server) = fake_gateway(|mut ws| async move {
            send_json(&mut ws, &recorded!("challenge.json")).await;
            let connect = recv_json(&mut ws).await.unwrap();
            send_json(&mut ws, &answer(frame, &connect)).await;
            until_closed(&mut ws).await;
        })
        .await;
        let err = GatewayClient::connect(&options(&url)).await.err().unwrap();
        let GatewayError::Refused {
            method,
            detail_code,
            retryable,
            retry_after: after,
            ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(method, "connect");
        assert_eq!(detail_code.as_deref(), detail);
        assert_eq!(*after, retry_after);
        assert_eq!(*retryable, retry_after.is_some());
    }
}

#[tokio::test]
async fn no_scopes_is_said_at_connect() {
    // What a remote client with only the shared token gets from the real gateway.
    let (url, server) = fake_gateway(|mut ws| async move {
        handshake_with(&mut ws, recorded!("hello-ok-remote-no-scopes.json")).await;
        until_closed(&mut ws).await;
    })
    .await;
    let err = GatewayClient::connect(&options(&url)).await.err().unwrap();
    assert!(matches!(err, GatewayError::NoScopes), "{err:?}");
    assert!(err.to_string().contains("paired device identity"));
    server.await.unwrap();
}

#[tokio::test]
async fn silent_gateways_time_out() {
    // Upgrades but never challenges.
    let (url, _server) = fake_gateway(|mut ws| async move { until_closed(&mut ws).await }).await;
    let opts = ConnectOptions {
        connect_timeout: Duration::from_millis(300),
        ..options(&url)
    };
    let started = std::time::Instant::now();
    let err = GatewayClient::connect(&opts).await.err().unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        err.to_string(),
        "timed out after 300ms waiting for the connect.challenge event"
    );

    // Accepts TCP but never answers the upgrade.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let _held = tokio::spawn(async move {
        let conn = listener.accept().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(conn);
    });
    let err = GatewayClient::connect(&ConnectOptions {
        url: url.clone(),
        ..opts.clone()
    })
    .await
    .err()
    .unwrap();
    assert!(
        matches!(&err, GatewayError::Timeout { context, .. } if context.contains("opening the WebSocket")),
        "{err}"
    );

    // Challenges but never says hello.
    let (url, _server) = fake_gateway(|mut ws| async move {
        send_json(&mut ws, &recorded!("challenge.json")).await;
        until_closed(&mut ws).await;
    })
    .await;
    let err = GatewayClient::connect(&ConnectOptions {
        url,
        ..opts.clone()
    })
    .await
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "timed out after 300ms waiting for hello-ok"
    );

    // Says hello but never answers a call.
    let (url, _server) = fake_gateway(|mut ws| async move {
        handshake(&mut ws).await;
        until_closed(&mut ws).await;
    })
    .await;
    let mut client = GatewayClient::connect(&ConnectOptions {
        call_timeout: Duration::from_millis(200),
        ..options(&url)
    })
    .await
    .unwrap();
    let err = client.call("health", json!({})).await.unwrap_err();
    assert_eq!(err.to_string(), "timed out after 200ms calling `health`");
    assert!(client
        .next_event(Duration::from_millis(50))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn garbage_is_a_protocol_error() {
    let cases: Vec<(Message, &str)> = vec![
        (Message::binary(vec![1u8, 2, 3]), "a binary frame"),
        (Message::text("hello?"), "not JSON"),
        (
            Message::text("{\"type\":\"event\",\"event\":\"connect.challenge\",\"payload\":{}}"),
            "without a nonce",
        ),
        (
            Message::text("{\"type\":\"event\",\"payload\":{}}"),
            "without a string `event`",
        ),
        (Message::text("42"), "not an object"),
    ];
    for (garbage, expected) in cases {
        let (url, _server) = fake_gateway(|mut ws| async move {
            ws.send(garbage).await.unwrap();
            until_closed(&mut ws).await;
        })
        .await;
        let err = GatewayClient::connect(&options(&url)).await.err().unwrap();
        assert!(matches!(err, GatewayError::Protocol { .. }), "{err:?}");
        assert!(err.to_string().contains(expected), "{err}");
    }

    // A hello for another protocol version.
    let mut hello = recorded!("hello-ok.json");
    hello["payload"]["protocol"] = json!(5);
    let (url, _server) = fake_gateway(|mut ws| async move {
        handshake_with(&mut ws, hello).await;
        until_closed(&mut ws).await;
    })
    .await;
    let err = GatewayClient::connect(&options(&url)).await.err().unwrap();
    assert!(err.to_string().contains("chose protocol 5"), "{err}");

    // An answer without an id while a call waits; the connection survives it.
    let (url, server) = fake_gateway(|mut ws| async move {
        handshake(&mut ws).await;
        let _ = recv_json(&mut ws).await.unwrap();
        send_json(&mut ws, &json!({"type": "res", "ok": true, "payload": {}})).await;
        let request = recv_json(&mut ws).await.unwrap();
        send_json(&mut ws, &answer(recorded!("res-health.json"), &request)).await;
        until_closed(&mut ws).await;
    })
    .await;
    let mut client = GatewayClient::connect(&options(&url)).await.unwrap();
    let err = client.call("health", json!({})).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "protocol error while calling `health`: the gateway sent a `res` frame without a string `id`"
    );
    assert!(client.call("health", json!({})).await.is_ok());
    client.close().await;
    server.await.unwrap();

    // A frame tungstenite itself rejects (reserved opcode 0x3).
    let url = raw_gateway(vec![0x83, 0x02, b'h', b'i']).await;
    let err = GatewayClient::connect(&options(&url)).await.err().unwrap();
    assert!(matches!(err, GatewayError::Transport { .. }), "{err:?}");
}

#[tokio::test]
async fn frames_over_the_limit_are_refused() {
    let (url, server) = fake_gateway(|mut ws| async move {
        handshake(&mut ws).await;
        let _ = recv_json(&mut ws).await;
        let huge = json!({"type": "event", "event": "health", "payload": {"blob": "x".repeat(200 * 1024)}});
        let _ = ws.send(Message::text(huge.to_string())).await;
        until_closed(&mut ws).await;
    })
    .await;
    let opts = ConnectOptions {
        max_frame: 64 * 1024,
        ..options(&url)
    };
    let mut client = GatewayClient::connect(&opts).await.unwrap();
    let err = client.call("health", json!({})).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "a frame larger than 65536 bytes arrived while calling `health`"
    );
    // The socket is not trusted after that: later calls fail at once.
    let started = std::time::Instant::now();
    let err = client.call("health", json!({})).await.unwrap_err();
    assert!(matches!(err, GatewayError::Closed { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(500));
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn a_shutdown_before_the_close_is_told_apart_from_a_crash() {
    let (url, server) = fake_gateway(|mut ws| async move {
        handshake(&mut ws).await;
        send_json(&mut ws, &recorded!("event-shutdown.json")).await;
        let close = recorded!("close-shutdown.json");
        let frame = CloseFrame {
            code: CloseCode::from(close["code"].as_u64().unwrap() as u16),
            reason: close["reason"].as_str().unwrap().into(),
        };
        let _ = ws.close(Some(frame)).await;
    })
    .await;
    let mut client = GatewayClient::connect(&options(&url)).await.unwrap();
    let event = client
        .next_event(Duration::from_secs(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.name, "shutdown");
    assert_eq!(client.shutdown_announced(), Some("gateway stopping"));
    let err = client.next_event(Duration::from_secs(2)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the gateway connection closed while waiting for an event with code 1012 (service restart), \
         after announcing a shutdown (gateway stopping)"
    );
    // Closed stays closed, at once.
    let err = client.call("health", json!({})).await.unwrap_err();
    assert!(
        matches!(
            &err,
            GatewayError::Closed {
                code: Some(1012),
                shutdown: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    let shown = err.to_string();
    assert!(
        shown.starts_with("the gateway connection closed before calling `health`"),
        "{shown}"
    );
    server.await.unwrap();

    // A crash: the TCP connection just goes away.
    let (url, server) = fake_gateway(|mut ws| async move {
        handshake(&mut ws).await;
        let _ = recv_json(&mut ws).await;
        drop(ws);
    })
    .await;
    let mut client = GatewayClient::connect(&options(&url)).await.unwrap();
    let err = client.call("health", json!({})).await.unwrap_err();
    let GatewayError::Closed { shutdown, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(shutdown.is_none());
    assert!(
        err.to_string().contains("closed while calling `health`"),
        "{err}"
    );
    assert!(
        err.to_string().ends_with("without announcing a shutdown"),
        "{err}"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn the_event_queue_keeps_the_newest() {
    let (url, server) = fake_gateway(|mut ws| async move {
        handshake(&mut ws).await;
        let request = recv_json(&mut ws).await.unwrap();
        for seq in 1..=300u64 {
            let tick =
                json!({"type": "event", "event": "tick", "payload": {"ts": seq}, "seq": seq});
            send_json(&mut ws, &tick).await;
        }
        send_json(&mut ws, &answer(recorded!("res-health.json"), &request)).await;
        until_closed(&mut ws).await;
    })
    .await;
    let mut client = GatewayClient::connect(&options(&url)).await.unwrap();
    client.call("health", json!({})).await.unwrap();
    assert_eq!(client.dropped_events(), 300 - EVENT_QUEUE_LIMIT as u64);
    let mut seqs = Vec::new();
    while let Some(event) = client.next_event(Duration::from_millis(50)).await.unwrap() {
        seqs.push(event.seq.unwrap());
    }
    assert_eq!(seqs, (45..=300).collect::<Vec<_>>());
    client.close().await;
    server.await.unwrap();
}

#[tokio::test]
async fn unsupported_urls_are_refused_before_connecting() {
    for url in ["wss://127.0.0.1:1", "http://127.0.0.1:1", "ws://"] {
        let err = GatewayClient::connect(&options(url)).await.err().unwrap();
        assert!(
            matches!(err, GatewayError::InvalidUrl { .. }),
            "{url}: {err:?}"
        );
    }
}

/// Every error built from a frame (or URL) that quotes the token: neither
/// `Display` nor `Debug` may show it.
#[tokio::test]
async fn the_token_never_appears_in_an_error() {
    let mut errors: Vec<GatewayError> = Vec::new();
    let leaky = |code: &str| {
        json!({"type": "res", "id": "?", "ok": false, "error": {
            "code": code, "message": format!("bad token {TOKEN}"),
            "details": {"code": format!("D_{TOKEN}"), "requestId": TOKEN, "deviceId": TOKEN},
            "retryable": true, "retryAfterMs": 5}})
    };

    // Refused connects and NOT_PAIRED, quoting the token everywhere.
    for code in [format!("X_{TOKEN}"), "NOT_PAIRED".to_string()] {
        let frame = leaky(&code);
        let (url, _server) = fake_gateway(|mut ws| async move {
            send_json(&mut ws, &recorded!("challenge.json")).await;
            let connect = recv_json(&mut ws).await.unwrap();
            send_json(&mut ws, &answer(frame, &connect)).await;
            until_closed(&mut ws).await;
        })
        .await;
        errors.push(GatewayClient::connect(&options(&url)).await.err().unwrap());
    }
    assert!(matches!(errors[0], GatewayError::Refused { .. }));
    assert!(matches!(errors[1], GatewayError::NotPaired { .. }));

    // A refused call, then a close whose reason and shutdown quote the token.
    let frame = leaky("INVALID_REQUEST");
    let (url, _server) = fake_gateway(|mut ws| async move {
        handshake(&mut ws).await;
        let request = recv_json(&mut ws).await.unwrap();
        send_json(&mut ws, &answer(frame, &request)).await;
        let _ = recv_json(&mut ws).await.unwrap();
        let shutdown = json!({"type": "event", "event": "shutdown", "payload": {"reason": TOKEN}});
        send_json(&mut ws, &shutdown).await;
        let frame = CloseFrame {
            code: CloseCode::Away,
            reason: format!("bye {TOKEN}").into(),
        };
        let _ = ws.close(Some(frame)).await;
    })
    .await;
    let mut client = GatewayClient::connect(&options(&url)).await.unwrap();
    errors.push(client.call("send", json!({})).await.unwrap_err());
    errors.push(client.call("health", json!({})).await.unwrap_err());
    assert!(matches!(errors.last(), Some(GatewayError::Closed { .. })));

    // Garbage that is the token.
    let (url, _server) = fake_gateway(|mut ws| async move {
        ws.send(Message::text(TOKEN)).await.unwrap();
        until_closed(&mut ws).await;
    })
    .await;
    errors.push(GatewayClient::connect(&options(&url)).await.err().unwrap());

    // A hello granting nothing, a huge frame, a timeout, a transport failure.
    let (url, _server) = fake_gateway(|mut ws| async move {
        handshake_with(&mut ws, recorded!("hello-ok-remote-no-scopes.json")).await;
        until_closed(&mut ws).await;
    })
    .await;
    errors.push(GatewayClient::connect(&options(&url)).await.err().unwrap());
    let (url, _server) = fake_gateway(|mut ws| async move {
        handshake(&mut ws).await;
        let _ = ws.send(Message::text(TOKEN.repeat(4000))).await;
        until_closed(&mut ws).await;
    })
    .await;
    let mut client = GatewayClient::connect(&ConnectOptions {
        max_frame: 64 * 1024,
        ..options(&url)
    })
    .await
    .unwrap();
    errors.push(client.next_event(Duration::from_secs(2)).await.unwrap_err());
    let (url, _server) = fake_gateway(|mut ws| async move { until_closed(&mut ws).await }).await;
    errors.push(
        GatewayClient::connect(&ConnectOptions {
            connect_timeout: Duration::from_millis(100),
            ..options(&url)
        })
        .await
        .err()
        .unwrap(),
    );
    let mut raw = vec![0x83, TOKEN.len() as u8];
    raw.extend_from_slice(TOKEN.as_bytes());
    errors.push(
        GatewayClient::connect(&options(&raw_gateway(raw).await))
            .await
            .err()
            .unwrap(),
    );

    // URLs that carry the token.
    errors.push(
        GatewayClient::connect(&options(&format!("http://h/?t={TOKEN}")))
            .await
            .err()
            .unwrap(),
    );
    let closed_port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("ws://127.0.0.1:{closed_port}/?t={TOKEN}");
    errors.push(GatewayClient::connect(&options(&url)).await.err().unwrap());

    let variants: std::collections::BTreeSet<_> = errors
        .iter()
        .map(|e| {
            format!("{e:?}")
                .split([' ', '{', '('])
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        variants.into_iter().collect::<Vec<_>>(),
        [
            "Closed",
            "Connect",
            "FrameTooLarge",
            "InvalidUrl",
            "NoScopes",
            "NotPaired",
            "Protocol",
            "Refused",
            "Timeout",
            "Transport"
        ]
    );
    for error in &errors {
        let (shown, debug) = (error.to_string(), format!("{error:?}"));
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(!debug.contains(TOKEN), "{debug}");
    }
    assert!(
        errors[0].to_string().contains(crate::secrets::REDACTED),
        "{}",
        errors[0]
    );
}

fn starting(retry_after_ms: Option<u64>) -> GatewayError {
    GatewayError::Refused {
        method: "connect".into(),
        code: "UNAVAILABLE".into(),
        detail_code: None,
        message: "gateway starting; retry shortly".into(),
        retryable: true,
        retry_after: retry_after_ms.map(Duration::from_millis),
    }
}

/// A gateway that says it is starting is waited for at its own pace, up to
/// the bound; any other failure is returned at once.
#[tokio::test(start_paused = true)]
async fn a_starting_gateway_is_waited_for_and_nothing_else_is() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let calls = AtomicU32::new(0);
    let t0 = tokio::time::Instant::now();
    let r = connect_patiently(Duration::from_secs(90), || async {
        match calls.fetch_add(1, Ordering::SeqCst) {
            0 => Err(starting(Some(500))),
            1 => Err(starting(None)),
            _ => Ok(7),
        }
    })
    .await;
    assert_eq!(r.unwrap(), 7);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(t0.elapsed(), Duration::from_millis(1500));

    // Starting for ever: the refusal once the bound is spent.
    let t0 = tokio::time::Instant::now();
    let r: Result<(), _> = connect_patiently(Duration::from_secs(10), || async {
        Err(starting(Some(60_000)))
    })
    .await;
    assert!(matches!(
        r,
        Err(GatewayError::Refused {
            retryable: true,
            ..
        })
    ));
    assert_eq!(t0.elapsed(), Duration::from_secs(10));

    // Not a start: no waiting.
    let t0 = tokio::time::Instant::now();
    let calls = AtomicU32::new(0);
    let r: Result<(), _> = connect_patiently(Duration::from_secs(90), || async {
        calls.fetch_add(1, Ordering::SeqCst);
        Err(GatewayError::NoScopes)
    })
    .await;
    assert!(matches!(r, Err(GatewayError::NoScopes)));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(t0.elapsed(), Duration::ZERO);
}
