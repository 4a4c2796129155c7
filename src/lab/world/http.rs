//! The little HTTP the world needs on top of hyper: serving a listener,
//! reading a bounded body, JSON answers, and a client for the control socket.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

pub type Answer = Response<Full<Bytes>>;

/// The largest request body read: Bot API calls and chat completions are
/// small; OpenClaw's prompts with their tool schemas reach a few hundred KiB.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

pub fn json(status: StatusCode, value: &serde_json::Value) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

pub fn text(status: StatusCode, body: impl Into<String>) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body.into())));
    *r.status_mut() = status;
    r
}

/// The body, or an answer saying why not (too big, broken).
pub async fn body(req: Request<Incoming>) -> Result<(hyper::http::request::Parts, Bytes), Answer> {
    let (parts, body) = req.into_parts();
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => Ok((parts, b.to_bytes())),
        Err(e) => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("cannot read the request body: {e}"),
        )),
    }
}

/// Serves one connection with `handler` in its own task.
pub fn spawn_connection<I, H, F>(io: I, handler: H)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Answer> + Send + 'static,
{
    tokio::spawn(async move {
        let service = hyper::service::service_fn(move |req| {
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(handler(req).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(io), service)
            .await;
    });
}

/// Serves a TCP listener forever.
pub async fn serve_tcp<H, F>(listener: tokio::net::TcpListener, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Answer> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((io, _)) => spawn_connection(io, handler.clone()),
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves a Unix socket listener forever.
pub async fn serve_unix<H, F>(listener: tokio::net::UnixListener, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Answer> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((io, _)) => spawn_connection(io, handler.clone()),
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One request over the control socket, bounded by `limit`; the answer's
/// status and JSON body.
pub async fn unix_request(
    socket: &std::path::Path,
    method: hyper::Method,
    path_and_query: &str,
    body: Option<serde_json::Value>,
    limit: Duration,
) -> Result<(StatusCode, serde_json::Value), String> {
    let exchange = async {
        let stream = tokio::net::UnixStream::connect(socket).await.map_err(|e| {
            format!(
                "cannot reach the lab's chat world at {}: {e}",
                socket.display()
            )
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(hyper::header::HOST, "world")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| e.to_string())?;
        let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = res.status();
        let bytes = Limited::new(res.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        });
        Ok((status, value))
    };
    tokio::time::timeout(limit, exchange).await.map_err(|_| {
        format!(
            "the lab's chat world did not answer within {}s",
            limit.as_secs()
        )
    })?
}
