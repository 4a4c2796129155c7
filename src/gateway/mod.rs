//! A client of OpenClaw's gateway protocol (WebSocket, version 4): connect
//! with the shared token and optionally an Ed25519 device identity, call
//! methods, wait for events, every step bounded in time and size.
//!
//! One request at a time (`&mut self`): what the monitor needs, and it keeps
//! the client free of background tasks. Events that arrive while a call waits
//! are queued (bounded) for [`GatewayClient::next_event`].

mod device;
mod protocol;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use device::{DeviceError, DeviceIdentity, MAX_KEY_FILE};
pub use protocol::{Event, Hello, PROTOCOL_VERSION, REQUESTED_SCOPES};

use protocol::{ErrorShape, Frame};

/// Events kept for [`GatewayClient::next_event`]; beyond this the oldest go.
pub const EVENT_QUEUE_LIMIT: usize = 256;

/// The largest frame accepted by default. OpenClaw's own limit is 25 MiB,
/// but nothing the monitor asks for comes near this (`hello-ok` is ~15 KiB).
pub const DEFAULT_MAX_FRAME: usize = 4 * 1024 * 1024;

/// How a gateway is reached and who we are to it.
#[derive(Clone)]
pub struct ConnectOptions {
    /// `ws://host:port` (this build has no TLS).
    pub url: String,
    /// The gateway's shared token (`gateway.auth.token`).
    pub token: String,
    /// Needed beyond the gateway's loopback: a shared token alone gets no scopes there.
    pub device: Option<Arc<DeviceIdentity>>,
    pub client_version: String,
    /// Bounds the whole handshake: TCP, WebSocket upgrade, challenge, hello.
    pub connect_timeout: Duration,
    /// Bounds each call, from sending the request to its answer.
    pub call_timeout: Duration,
    pub max_frame: usize,
}

impl ConnectOptions {
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        ConnectOptions {
            url: url.into(),
            token: token.into(),
            device: None,
            client_version: env!("CARGO_PKG_VERSION").to_string(),
            connect_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(10),
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("url", &self.url)
            .field("token", &crate::secrets::REDACTED)
            .field("device", &self.device.as_ref().map(|d| d.id()))
            .field("client_version", &self.client_version)
            .field("connect_timeout", &self.connect_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("max_frame", &self.max_frame)
            .finish()
    }
}

/// Why talking to the gateway failed. Every text that came from the gateway
/// (or the network) has the token removed before it gets here.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("invalid gateway URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot open a WebSocket to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("timed out after {after:?} {context}")]
    Timeout { context: String, after: Duration },
    #[error("{}", refused_text(.method, .code, .detail_code.as_deref(), .message))]
    Refused {
        method: String,
        /// OpenClaw's error code (`INVALID_REQUEST`, `FORBIDDEN`, `UNAVAILABLE`, ...).
        code: String,
        /// `details.code`, the precise reason (`AUTH_TOKEN_MISMATCH`, `MISSING_SCOPE`, ...).
        detail_code: Option<String>,
        message: String,
        /// The gateway says trying again later may work (e.g. while it starts).
        retryable: bool,
        retry_after: Option<Duration>,
    },
    #[error("{}", not_paired_text(.device_id, .request_id.as_deref()))]
    NotPaired {
        request_id: Option<String>,
        device_id: String,
    },
    #[error(
        "the gateway accepted the connection but granted no scopes: away from the \
         gateway's loopback a shared token alone gets none; connect with a paired device identity"
    )]
    NoScopes,
    #[error("protocol error while {context}: the gateway sent {reason}")]
    Protocol { context: String, reason: String },
    #[error("a frame larger than {limit} bytes arrived while {context}")]
    FrameTooLarge { context: String, limit: usize },
    #[error("{}", closed_text(.context, *.code, .reason, .shutdown.as_deref()))]
    Closed {
        context: String,
        code: Option<u16>,
        reason: String,
        /// The reason a `shutdown` event gave before the close, if one came:
        /// a planned stop rather than a crash or a network failure.
        shutdown: Option<String>,
    },
    #[error("WebSocket failure while {context}: {reason}")]
    Transport { context: String, reason: String },
}

fn refused_text(method: &str, code: &str, detail: Option<&str>, message: &str) -> String {
    let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
    format!("the gateway refused `{method}`: {code}{detail}: {message}")
}

// `openclaw gateway call device.pair.approve` is not enough for an admin-scoped
// request: it asks only for `operator.pairing` (checked on 2026.9.6).
fn not_paired_text(device_id: &str, request_id: Option<&str>) -> String {
    let approve = match request_id {
        Some(id) => format!("`openclaw devices approve {id}`"),
        None => "`openclaw devices list`, then `openclaw devices approve <requestId>`".into(),
    };
    format!(
        "the gateway has not paired device {device_id} yet: on the gateway's host run \
         {approve}, then reconnect"
    )
}

fn closed_text(context: &str, code: Option<u16>, reason: &str, shutdown: Option<&str>) -> String {
    let how = match code {
        Some(code) if reason.is_empty() => format!(" with code {code}"),
        Some(code) => format!(" with code {code} ({reason})"),
        None if reason.is_empty() => String::new(),
        None => format!(" ({reason})"),
    };
    let announced = match shutdown {
        Some(why) => format!("after announcing a shutdown ({why})"),
        None => "without announcing a shutdown".to_string(),
    };
    format!("the gateway connection closed {context}{how}, {announced}")
}

/// Removes the token from text that came from outside, which may quote it.
#[derive(Clone)]
struct Redactor {
    token: String,
}

impl Redactor {
    fn clean(&self, text: &str) -> String {
        if self.token.is_empty() || !text.contains(&self.token) {
            return text.to_string();
        }
        text.replace(&self.token, crate::secrets::REDACTED)
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How the connection ended, kept so every later use fails the same way.
struct Ended {
    code: Option<u16>,
    reason: String,
}

/// The socket, the event queue and what is known about the connection's end.
struct Connection {
    socket: Socket,
    redactor: Redactor,
    next_id: u64,
    events: VecDeque<Event>,
    dropped_events: u64,
    shutdown: Option<String>,
    ended: Option<Ended>,
}

impl Connection {
    fn fresh_id(&mut self) -> String {
        self.next_id += 1;
        format!("ocfo-{}", self.next_id)
    }

    fn closed(&self, context: &str, ended: &Ended) -> GatewayError {
        GatewayError::Closed {
            context: context.to_string(),
            code: ended.code,
            reason: self.redactor.clean(&ended.reason),
            shutdown: self.shutdown.as_deref().map(|s| self.redactor.clean(s)),
        }
    }

    fn end(&mut self, context: &str, code: Option<u16>, reason: String) -> GatewayError {
        let ended = Ended { code, reason };
        let error = self.closed(&format!("while {context}"), &ended);
        self.ended = Some(ended);
        error
    }

    fn check_open(&self, context: &str) -> Result<(), GatewayError> {
        match &self.ended {
            Some(ended) => Err(self.closed(&format!("before {context}"), ended)),
            None => Ok(()),
        }
    }

    fn queue_event(&mut self, event: Event) {
        if event.name == "shutdown" {
            let reason = event.payload.get("reason").and_then(Value::as_str);
            self.shutdown = Some(reason.unwrap_or("no reason given").to_string());
        }
        if self.events.len() >= EVENT_QUEUE_LIMIT {
            self.events.pop_front();
            self.dropped_events += 1;
        }
        self.events.push_back(event);
    }

    /// Sends `text` before `deadline`; `budget` is the timeout the caller
    /// configured, for the error.
    async fn send(
        &mut self,
        text: String,
        deadline: Instant,
        budget: Duration,
        context: &str,
    ) -> Result<(), GatewayError> {
        self.check_open(context)?;
        match timeout_at(deadline, self.socket.send(Message::text(text))).await {
            Err(_) => Err(GatewayError::Timeout {
                context: context.to_string(),
                after: budget,
            }),
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.socket_error(e, context)),
        }
    }

    /// The next frame before `deadline`; `None` when the deadline passes.
    /// Pings, pongs and raw frames are handled by tungstenite and skipped.
    async fn read_frame(
        &mut self,
        deadline: Instant,
        context: &str,
    ) -> Result<Option<Frame>, GatewayError> {
        self.check_open(context)?;
        loop {
            let message = match timeout_at(deadline, self.socket.next()).await {
                Err(_) => return Ok(None),
                Ok(None) => return Err(self.end(context, None, String::new())),
                Ok(Some(Err(e))) => return Err(self.socket_error(e, context)),
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Text(text) => {
                    return protocol::parse_frame(text.as_str())
                        .map(Some)
                        .map_err(|reason| GatewayError::Protocol {
                            context: context.to_string(),
                            reason,
                        });
                }
                Message::Binary(_) => {
                    return Err(GatewayError::Protocol {
                        context: context.to_string(),
                        reason: "a binary frame (the protocol uses only text frames)".into(),
                    })
                }
                Message::Close(frame) => {
                    let (code, reason) = match frame {
                        Some(f) => (Some(u16::from(f.code)), f.reason.as_str().to_string()),
                        None => (None, String::new()),
                    };
                    return Err(self.end(context, code, reason));
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    /// Every tungstenite error leaves the socket unusable: the connection
    /// is marked ended so later calls fail at once instead of hanging.
    fn socket_error(&mut self, error: WsError, context: &str) -> GatewayError {
        let error = match error {
            WsError::ConnectionClosed | WsError::AlreadyClosed => {
                return self.end(context, None, String::new())
            }
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                return self.end(context, None, "reset without a close frame".into())
            }
            WsError::Io(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::BrokenPipe
                        | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                return self.end(context, None, e.to_string())
            }
            WsError::Capacity(CapacityError::MessageTooLong { max_size, .. }) => {
                GatewayError::FrameTooLarge {
                    context: context.to_string(),
                    limit: max_size,
                }
            }
            WsError::Utf8(_) => GatewayError::Protocol {
                context: context.to_string(),
                reason: "a text frame that is not UTF-8".into(),
            },
            other => GatewayError::Transport {
                context: context.to_string(),
                reason: self.redactor.clean(&other.to_string()),
            },
        };
        self.ended = Some(Ended {
            code: None,
            reason: format!("connection abandoned after: {error}"),
        });
        error
    }
}

/// A connected, authenticated gateway session.
pub struct GatewayClient {
    connection: Connection,
    hello: Hello,
    call_timeout: Duration,
}

impl fmt::Debug for GatewayClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayClient")
            .field("hello", &self.hello)
            .field("queued_events", &self.connection.events.len())
            .field("ended", &self.connection.ended.is_some())
            .finish_non_exhaustive()
    }
}

/// Runs `connect` until it succeeds or fails for good, waiting while the
/// gateway says it is still starting (a refusal it marks retryable, at its
/// `retryAfterMs`, 250 ms to 5 s), for at most `wait`. A gateway restarting
/// on purpose (a catch-up, a recycle) answers within seconds; the CLI the
/// callers fall back to cannot reach it any sooner.
pub async fn connect_patiently<T, F, Fut>(wait: Duration, mut connect: F) -> Result<T, GatewayError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, GatewayError>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match connect().await {
            Err(GatewayError::Refused {
                retryable: true,
                retry_after,
                ..
            }) if tokio::time::Instant::now() < deadline => {
                let pause = retry_after
                    .unwrap_or(Duration::from_secs(1))
                    .clamp(Duration::from_millis(250), Duration::from_secs(5));
                tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + pause)).await;
            }
            other => return other,
        }
    }
}

impl GatewayClient {
    /// Opens the WebSocket, answers the gateway's challenge with `connect`
    /// (signed when `opts.device` is set) and reads `hello-ok`, all within
    /// `opts.connect_timeout`.
    pub async fn connect(opts: &ConnectOptions) -> Result<GatewayClient, GatewayError> {
        let redactor = Redactor {
            token: opts.token.clone(),
        };
        let deadline = Instant::now() + opts.connect_timeout;
        let timed_out = |context: &str| GatewayError::Timeout {
            context: context.to_string(),
            after: opts.connect_timeout,
        };
        let url = redactor.clean(&opts.url);
        let invalid_url = |reason: String| GatewayError::InvalidUrl {
            url: url.clone(),
            reason: redactor.clean(&reason),
        };
        if !opts.url.starts_with("ws://") {
            return Err(invalid_url(
                "only ws:// URLs are supported (no TLS in this build)".into(),
            ));
        }
        let request = opts
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| invalid_url(e.to_string()))?;
        let config = WebSocketConfig::default()
            .max_message_size(Some(opts.max_frame))
            .max_frame_size(Some(opts.max_frame));
        let opening = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
        let (socket, _) = timeout_at(deadline, opening)
            .await
            .map_err(|_| timed_out(&format!("opening the WebSocket to {url}")))?
            .map_err(|e| GatewayError::Connect {
                url: url.clone(),
                reason: redactor.clean(&e.to_string()),
            })?;
        let mut connection = Connection {
            socket,
            redactor: redactor.clone(),
            next_id: 0,
            events: VecDeque::new(),
            dropped_events: 0,
            shutdown: None,
            ended: None,
        };

        let context = "waiting for the connect.challenge event";
        let challenge = loop {
            match connection.read_frame(deadline, context).await? {
                None => return Err(timed_out(context)),
                Some(Frame::Event(event)) if event.name == "connect.challenge" => {
                    break protocol::parse_challenge(&event.payload).map_err(|reason| {
                        GatewayError::Protocol {
                            context: context.to_string(),
                            reason,
                        }
                    })?;
                }
                Some(Frame::Event(event)) => connection.queue_event(event),
                Some(_) => {}
            }
        };

        let params = protocol::connect_params(
            &opts.client_version,
            &opts.token,
            opts.device.as_deref(),
            &challenge,
            crate::clock::unix_ms(),
        );
        let id = connection.fresh_id();
        let context = "sending connect";
        let frame = protocol::request_frame(&id, "connect", params);
        connection
            .send(frame, deadline, opts.connect_timeout, context)
            .await?;

        let context = "waiting for hello-ok";
        let outcome = loop {
            match connection.read_frame(deadline, context).await? {
                None => return Err(timed_out(context)),
                Some(Frame::Response {
                    id: answered,
                    outcome,
                }) if answered == id => break outcome,
                Some(Frame::Event(event)) => connection.queue_event(event),
                Some(_) => {}
            }
        };
        let payload = outcome.map_err(|shape| {
            connect_refusal(shape, opts.device.as_ref().map(|d| d.id()), &redactor)
        })?;
        let hello = protocol::parse_hello(&payload).map_err(|reason| GatewayError::Protocol {
            context: context.to_string(),
            reason,
        })?;
        let client = GatewayClient {
            connection,
            hello,
            call_timeout: opts.call_timeout,
        };
        if client.hello.scopes.is_empty() {
            client.close().await;
            return Err(GatewayError::NoScopes);
        }
        Ok(client)
    }

    /// What the gateway's `hello-ok` said: granted scopes, device token, ...
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// Calls `method` and waits up to the call timeout for its answer; events
    /// that arrive meanwhile are queued for [`GatewayClient::next_event`].
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, GatewayError> {
        let deadline = Instant::now() + self.call_timeout;
        let context = format!("calling `{method}`");
        let id = self.connection.fresh_id();
        let frame = protocol::request_frame(&id, method, params);
        self.connection
            .send(frame, deadline, self.call_timeout, &context)
            .await?;
        loop {
            match self.connection.read_frame(deadline, &context).await? {
                None => {
                    return Err(GatewayError::Timeout {
                        context,
                        after: self.call_timeout,
                    })
                }
                Some(Frame::Response {
                    id: answered,
                    outcome,
                }) if answered == id => {
                    return outcome
                        .map_err(|shape| refusal(method, shape, &self.connection.redactor));
                }
                Some(Frame::Event(event)) => self.connection.queue_event(event),
                // A late answer to a call that already timed out, or a frame
                // type from a newer gateway.
                Some(_) => {}
            }
        }
    }

    /// The next event, queued or read within `timeout`; `Ok(None)` if none came.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, GatewayError> {
        if let Some(event) = self.connection.events.pop_front() {
            return Ok(Some(event));
        }
        let deadline = Instant::now() + timeout;
        let context = "waiting for an event";
        loop {
            match self.connection.read_frame(deadline, context).await? {
                None => return Ok(None),
                Some(Frame::Event(event)) => {
                    self.connection.queue_event(event);
                    return Ok(self.connection.events.pop_front());
                }
                Some(_) => {}
            }
        }
    }

    /// Events dropped because the queue was full (the oldest go first).
    pub fn dropped_events(&self) -> u64 {
        self.connection.dropped_events
    }

    /// The reason of the `shutdown` event the gateway sent, if it sent one.
    pub fn shutdown_announced(&self) -> Option<&str> {
        self.connection.shutdown.as_deref()
    }

    /// Says goodbye (close code 1000) and waits briefly for the gateway's
    /// answer; a gateway that does not answer is simply dropped.
    pub async fn close(mut self) {
        if self.connection.ended.is_some() {
            return;
        }
        let deadline = Instant::now() + self.call_timeout.min(Duration::from_secs(2));
        let goodbye = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = timeout_at(deadline, self.connection.socket.close(Some(goodbye))).await;
        let _ = timeout_at(deadline, async {
            while let Some(Ok(_)) = self.connection.socket.next().await {}
        })
        .await;
    }
}

fn refusal(method: &str, shape: ErrorShape, redactor: &Redactor) -> GatewayError {
    GatewayError::Refused {
        method: method.to_string(),
        code: redactor.clean(&shape.code),
        detail_code: shape.detail_code.as_deref().map(|c| redactor.clean(c)),
        message: redactor.clean(&shape.message),
        retryable: shape.retryable,
        retry_after: shape.retry_after_ms.map(Duration::from_millis),
    }
}

/// `NOT_PAIRED` means "approve this device" unless it says a device identity
/// is missing altogether (a client without one, away from loopback).
fn connect_refusal(
    shape: ErrorShape,
    device_id: Option<&str>,
    redactor: &Redactor,
) -> GatewayError {
    let detail = shape.detail_code.as_deref();
    let pairing = detail == Some("PAIRING_REQUIRED")
        || (shape.code == "NOT_PAIRED" && detail != Some("DEVICE_IDENTITY_REQUIRED"));
    if !pairing {
        return refusal("connect", shape, redactor);
    }
    let detail_str = |key: &str| shape.details.get(key).and_then(Value::as_str);
    GatewayError::NotPaired {
        request_id: detail_str("requestId").map(|r| redactor.clean(r)),
        device_id: redactor.clean(
            detail_str("deviceId")
                .or(device_id)
                .unwrap_or("(no device identity sent)"),
        ),
    }
}
