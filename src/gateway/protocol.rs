//! The frames of OpenClaw's gateway protocol v4 (JSON text frames `req`,
//! `res` and `event`): the `connect` request with its v3 device signature,
//! and defensive parsing of whatever the gateway sends.

use std::time::Duration;

use serde_json::{json, Value};

use super::device::DeviceIdentity;
use crate::secrets::SecretValue;

/// The only version this client speaks (OpenClaw 2026.9.6: `PROTOCOL_VERSION = 4`).
pub const PROTOCOL_VERSION: u64 = 4;
/// With `CLIENT_MODE`, the identity OpenClaw gives full operator scopes on its
/// own loopback without pairing (`shouldSkipLocalBackendSelfPairing`).
pub const CLIENT_ID: &str = "gateway-client";
pub const CLIENT_MODE: &str = "backend";
pub const CLIENT_PLATFORM: &str = "linux";
pub const ROLE: &str = "operator";
pub const REQUESTED_SCOPES: [&str; 3] = ["operator.admin", "operator.read", "operator.write"];

/// An event the gateway pushed (`tick`, `health`, `shutdown`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    pub payload: Value,
    /// The gateway numbers broadcast events; a jump means events were lost.
    pub seq: Option<u64>,
}

/// One frame from the gateway.
#[derive(Debug)]
pub(crate) enum Frame {
    Event(Event),
    Response {
        id: String,
        outcome: Result<Value, ErrorShape>,
    },
    /// A frame type this client does not know: a newer gateway may add some.
    Unknown,
}

/// OpenClaw's `errorShape`: `{code, message, details?, retryable?, retryAfterMs?}`.
#[derive(Debug, Clone)]
pub(crate) struct ErrorShape {
    pub code: String,
    pub message: String,
    /// `details.code`, the precise reason (`AUTH_TOKEN_MISMATCH`, `PAIRING_REQUIRED`, ...).
    pub detail_code: Option<String>,
    pub details: Value,
    pub retryable: bool,
    pub retry_after_ms: Option<u64>,
}

/// What `hello-ok` said about this connection.
#[derive(Debug, Clone)]
pub struct Hello {
    pub protocol: u64,
    pub server_version: Option<String>,
    /// How the gateway authenticated us (`token`, `device-token`, ...).
    pub auth_method: Option<String>,
    pub role: Option<String>,
    /// The scopes granted, which may be fewer than requested.
    pub scopes: Vec<String>,
    /// Issued to a paired device; a credential, hence never printed.
    pub device_token: Option<SecretValue>,
    /// The methods this gateway serves.
    pub methods: Vec<String>,
    pub tick_interval: Option<Duration>,
}

/// The `connect.challenge` event's payload.
#[derive(Debug, Clone)]
pub(crate) struct Challenge {
    pub nonce: String,
    /// The gateway's clock (ms since the epoch).
    pub ts: Option<u64>,
}

/// Everything `buildDeviceAuthPayloadV3` signs, in its order.
pub(crate) struct DeviceAuthFields<'a> {
    pub device_id: &'a str,
    pub client_id: &'a str,
    pub client_mode: &'a str,
    pub role: &'a str,
    pub scopes: &'a [&'a str],
    pub signed_at_ms: u64,
    pub token: &'a str,
    pub nonce: &'a str,
    pub platform: &'a str,
    pub device_family: &'a str,
}

/// `v3|deviceId|clientId|clientMode|role|scopes|signedAtMs|token|nonce|platform|deviceFamily`,
/// platform and family trimmed and lower-cased (ASCII only, as OpenClaw does).
pub(crate) fn device_auth_payload_v3(f: &DeviceAuthFields) -> String {
    [
        "v3",
        f.device_id,
        f.client_id,
        f.client_mode,
        f.role,
        &f.scopes.join(","),
        &f.signed_at_ms.to_string(),
        f.token,
        f.nonce,
        &f.platform.trim().to_ascii_lowercase(),
        &f.device_family.trim().to_ascii_lowercase(),
    ]
    .join("|")
}

/// The `connect` request's params; with a device, its signed proof.
pub(crate) fn connect_params(
    client_version: &str,
    token: &str,
    device: Option<&DeviceIdentity>,
    challenge: &Challenge,
    now_ms: u64,
) -> Value {
    let mut params = json!({
        "minProtocol": PROTOCOL_VERSION,
        "maxProtocol": PROTOCOL_VERSION,
        "client": {
            "id": CLIENT_ID,
            "version": client_version,
            "platform": CLIENT_PLATFORM,
            "mode": CLIENT_MODE,
        },
        "role": ROLE,
        "scopes": REQUESTED_SCOPES,
        "auth": { "token": token },
    });
    if let Some(device) = device {
        // The gateway accepts a signature within 2 minutes of *its* clock;
        // signing at its own challenge time (as OpenClaw's client does) makes
        // our clock's skew irrelevant.
        let signed_at_ms = challenge.ts.unwrap_or(now_ms);
        let payload = device_auth_payload_v3(&DeviceAuthFields {
            device_id: device.id(),
            client_id: CLIENT_ID,
            client_mode: CLIENT_MODE,
            role: ROLE,
            scopes: &REQUESTED_SCOPES,
            signed_at_ms,
            token,
            nonce: &challenge.nonce,
            platform: CLIENT_PLATFORM,
            device_family: "",
        });
        params["device"] = json!({
            "id": device.id(),
            "publicKey": device.public_key(),
            "signature": device.sign(&payload),
            "signedAt": signed_at_ms,
            "nonce": challenge.nonce,
        });
    }
    params
}

pub(crate) fn request_frame(id: &str, method: &str, params: Value) -> String {
    json!({ "type": "req", "id": id, "method": method, "params": params }).to_string()
}

/// Parses a text frame. Errors describe the frame's shape, never its content
/// (which may quote anything, credentials included).
pub(crate) fn parse_frame(text: &str) -> Result<Frame, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|_| "a text frame that is not JSON".to_string())?;
    let Some(frame) = value.as_object() else {
        return Err("a JSON frame that is not an object".into());
    };
    match frame.get("type").and_then(Value::as_str) {
        Some("event") => {
            let name = frame
                .get("event")
                .and_then(Value::as_str)
                .ok_or("an `event` frame without a string `event` name")?;
            Ok(Frame::Event(Event {
                name: name.to_string(),
                payload: frame.get("payload").cloned().unwrap_or(Value::Null),
                seq: frame.get("seq").and_then(Value::as_u64),
            }))
        }
        Some("res") => {
            let id = frame
                .get("id")
                .and_then(Value::as_str)
                .ok_or("a `res` frame without a string `id`")?;
            let ok = frame
                .get("ok")
                .and_then(Value::as_bool)
                .ok_or("a `res` frame without a boolean `ok`")?;
            let outcome = if ok {
                Ok(frame.get("payload").cloned().unwrap_or(Value::Null))
            } else {
                Err(parse_error_shape(frame.get("error"))?)
            };
            Ok(Frame::Response {
                id: id.to_string(),
                outcome,
            })
        }
        Some(_) => Ok(Frame::Unknown),
        None => Err("a frame without a string `type`".into()),
    }
}

fn parse_error_shape(error: Option<&Value>) -> Result<ErrorShape, String> {
    let error = error
        .and_then(Value::as_object)
        .ok_or("a failed `res` frame without an `error` object")?;
    let code = error
        .get("code")
        .and_then(Value::as_str)
        .ok_or("a failed `res` frame without an error `code`")?;
    let details = error.get("details").cloned().unwrap_or(Value::Null);
    Ok(ErrorShape {
        code: code.to_string(),
        message: str_field(error.get("message")).unwrap_or_default(),
        detail_code: str_field(details.get("code")),
        retryable: error
            .get("retryable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        retry_after_ms: error.get("retryAfterMs").and_then(Value::as_u64),
        details,
    })
}

pub(crate) fn parse_challenge(payload: &Value) -> Result<Challenge, String> {
    let nonce = payload
        .get("nonce")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or("a connect.challenge without a nonce")?;
    Ok(Challenge {
        nonce: nonce.to_string(),
        ts: payload.get("ts").and_then(Value::as_u64),
    })
}

pub(crate) fn parse_hello(payload: &Value) -> Result<Hello, String> {
    if payload.get("type").and_then(Value::as_str) != Some("hello-ok") {
        return Err("a successful connect answer that is not `hello-ok`".into());
    }
    let protocol = payload
        .get("protocol")
        .and_then(Value::as_u64)
        .ok_or("a hello-ok without a `protocol` number")?;
    if protocol != PROTOCOL_VERSION {
        return Err(format!(
            "the gateway chose protocol {protocol}; this client speaks only {PROTOCOL_VERSION}"
        ));
    }
    let auth = payload
        .get("auth")
        .filter(|a| a.is_object())
        .ok_or("a hello-ok without an `auth` object")?;
    Ok(Hello {
        protocol,
        server_version: str_field(payload.pointer("/server/version")),
        auth_method: str_field(auth.get("method")),
        role: str_field(auth.get("role")),
        scopes: str_list(auth.get("scopes")),
        device_token: str_field(auth.get("deviceToken")).map(SecretValue::new),
        methods: str_list(payload.pointer("/features/methods")),
        tick_interval: payload
            .pointer("/policy/tickIntervalMs")
            .and_then(Value::as_u64)
            .map(Duration::from_millis),
    })
}

fn str_field(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_string)
}

fn str_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_frames_parse() {
        let Frame::Event(challenge) = parse_frame(include_str!("testdata/challenge.json")).unwrap()
        else {
            panic!("not an event")
        };
        assert_eq!(challenge.name, "connect.challenge");
        let c = parse_challenge(&challenge.payload).unwrap();
        assert_eq!(c.nonce, "24d0b697-b167-4603-9a9d-0be9a8c87ffd");
        assert_eq!(c.ts, Some(1796554558393));

        let Frame::Response { id, outcome } =
            parse_frame(include_str!("testdata/hello-ok-device-token.json")).unwrap()
        else {
            panic!("not a response")
        };
        assert_eq!(id, "c1");
        let hello = parse_hello(&outcome.unwrap()).unwrap();
        assert_eq!(hello.protocol, 4);
        assert_eq!(hello.server_version.as_deref(), Some("2026.9.6"));
        assert_eq!(hello.scopes, REQUESTED_SCOPES);
        assert_eq!(hello.tick_interval, Some(Duration::from_secs(30)));
        assert!(hello.methods.iter().any(|m| m == "channels.status"));
        let token = hello.device_token.as_ref().unwrap();
        assert_eq!(token.expose().len(), 43);
        assert!(!format!("{hello:?}").contains(token.expose()));

        let Frame::Response { outcome, .. } =
            parse_frame(include_str!("testdata/res-not-paired.json")).unwrap()
        else {
            panic!("not a response")
        };
        let error = outcome.unwrap_err();
        assert_eq!(error.code, "NOT_PAIRED");
        assert_eq!(error.detail_code.as_deref(), Some("PAIRING_REQUIRED"));

        let Frame::Response { outcome, .. } =
            parse_frame(include_str!("testdata/res-gateway-starting.json")).unwrap()
        else {
            panic!("not a response")
        };
        let error = outcome.unwrap_err();
        assert!(error.retryable);
        assert_eq!(error.retry_after_ms, Some(500));

        let Frame::Event(tick) = parse_frame(include_str!("testdata/event-tick.json")).unwrap()
        else {
            panic!("not an event")
        };
        assert_eq!((tick.name.as_str(), tick.seq), ("tick", Some(1)));
    }

    #[test]
    fn malformed_frames_are_described_not_quoted() {
        for (text, expected) in [
            ("secret-token", "not JSON"),
            ("[1,2]", "not an object"),
            (r#"{"event":"tick"}"#, "without a string `type`"),
            (
                r#"{"type":"event","payload":{}}"#,
                "without a string `event`",
            ),
            (r#"{"type":"res","ok":true}"#, "without a string `id`"),
            (r#"{"type":"res","id":"1"}"#, "without a boolean `ok`"),
            (
                r#"{"type":"res","id":"1","ok":false}"#,
                "without an `error` object",
            ),
            (
                r#"{"type":"res","id":"1","ok":false,"error":{"message":"secret-token"}}"#,
                "error `code`",
            ),
        ] {
            let err = parse_frame(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(!err.contains("secret-token"), "{err}");
        }
        assert!(matches!(
            parse_frame(r#"{"type":"future-kind"}"#),
            Ok(Frame::Unknown)
        ));
        assert!(parse_challenge(&json!({"nonce": "  "})).is_err());
        assert!(parse_hello(&json!({"type": "hello-ok", "protocol": 3, "auth": {}})).is_err());
        assert!(parse_hello(&json!({"type": "hello-ok", "protocol": 4})).is_err());
        assert!(parse_hello(&json!({"type": "hello", "protocol": 4, "auth": {}})).is_err());
    }

    #[test]
    fn the_v3_payload_matches_openclaws_layout() {
        let payload = device_auth_payload_v3(&DeviceAuthFields {
            device_id: "dev",
            client_id: CLIENT_ID,
            client_mode: CLIENT_MODE,
            role: ROLE,
            scopes: &REQUESTED_SCOPES,
            signed_at_ms: 1796554566315,
            token: "tok",
            nonce: "n-1",
            platform: " Linux ",
            device_family: "Server",
        });
        assert_eq!(
            payload,
            "v3|dev|gateway-client|backend|operator|operator.admin,operator.read,operator.write|1796554566315|tok|n-1|linux|server"
        );
    }
}
