//! The HTTP server around the router: HTTP/1.1 connections served with hyper
//! under the dashboard's limits (header-read, idle and request timeouts, a cap
//! on connections and on event streams), security headers on every answer,
//! and a graceful shutdown that ends the event streams.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// Limits of the server (flags of `ecom dashboard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; past it a connection is answered 503 and closed.
    pub max_connections: usize,
    /// Event streams (`/api/events`) open at once; past it the request is answered 503.
    pub max_sse_clients: usize,
    /// Time to receive a whole request head, counted from when the connection
    /// is ready for a request (so it also closes idle keep-alive connections).
    pub header_read_timeout: Duration,
    /// A connection on which no byte moves either way for this long is closed
    /// (stalled clients, readers that stopped reading).
    pub idle_timeout: Duration,
    /// Time to produce an answer's head (not its streamed body; not `/api/events`).
    pub request_timeout: Duration,
    /// Answers (and export batches) computed at once; more wait their turn
    /// (within the request timeout). Bounds the memory a burst of large answers holds.
    pub max_computations: usize,
}

/// Default of [`Limits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default of [`Limits::max_sse_clients`].
pub const DEFAULT_MAX_SSE_CLIENTS: usize = 64;
/// Default of [`Limits::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`Limits::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default of [`Limits::request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of [`Limits::max_computations`]: four per core (drill-down pages
/// wait on the fact table, so a few more than the cores keep them busy).
pub fn default_max_computations() -> usize {
    4 * std::thread::available_parallelism().map_or(2, usize::from)
}
/// Refused connections being answered at once; past it they are closed unanswered.
const REFUSALS_IN_FLIGHT: usize = 64;
/// Time allowed to answer a refused connection.
const REFUSAL_TIME: Duration = Duration::from_secs(2);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_sse_clients: DEFAULT_MAX_SSE_CLIENTS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_computations: default_max_computations(),
        }
    }
}

impl Limits {
    /// The keep-alive interval of event streams: 15 s, or a third of the idle
    /// timeout when that is shorter, so an open stream is never idle.
    pub fn sse_keep_alive(&self) -> Duration {
        Duration::from_secs(15)
            .min(self.idle_timeout / 3)
            .max(Duration::from_millis(100))
    }
}

/// The Content-Security-Policy of every answer: the page loads its script,
/// style sheet and data from its own origin only (no inline script or style,
/// a `data:` favicon), and may not be framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Headers set on every answer of the router.
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("x-content-type-options", "nosniff"),
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
];

/// Adds [`SECURITY_HEADERS`] to an answer.
pub async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        h.insert(name, HeaderValue::from_static(value));
    }
    res
}

/// Answers 503 when the handler has not produced an answer within the request
/// timeout. Event streams are exempt (their answer is immediate, their body endless).
pub async fn request_timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/api/events" {
        return next.run(req).await;
    }
    let path = req.uri().path().to_string();
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            tracing::warn!(%path, ?limit, "request timed out");
            let msg = format!(
                "the answer took longer than the request timeout ({} ms, --request-timeout)",
                limit.as_millis()
            );
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "error": msg })),
            )
                .into_response()
        }
    }
}

/// The router with the request timeout and the security headers.
pub fn with_layers(router: Router, limits: &Limits) -> Router {
    router
        .layer(axum::middleware::from_fn_with_state(
            limits.request_timeout,
            request_timeout,
        ))
        .layer(axum::middleware::map_response(security_headers))
}

/// One open event stream, counted until dropped.
#[derive(Debug)]
pub struct SseSlot(Arc<AtomicUsize>);

impl SseSlot {
    /// A slot among `max`, if one is free.
    pub fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<SseSlot> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| SseSlot(Arc::clone(open)))
    }
}

impl Drop for SseSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A TCP stream closed with an error once no byte has moved either way for
/// `timeout` while the server waits on it.
struct IdleTimeout {
    io: TcpStream,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl IdleTimeout {
    fn new(io: TcpStream, timeout: Duration) -> Self {
        IdleTimeout {
            io,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    /// Progress: the deadline moves on.
    fn moved(&mut self) {
        let next = Instant::now() + self.timeout;
        self.deadline.as_mut().reset(next);
    }

    /// Waiting: an error once the deadline has passed.
    fn waiting<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connection idle for {:?}", self.timeout),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn track<T>(&mut self, cx: &mut Context<'_>, p: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match p {
            Poll::Ready(r) => {
                self.moved();
                Poll::Ready(r)
            }
            Poll::Pending => self.waiting(cx),
        }
    }
}

impl AsyncRead for IdleTimeout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let p = Pin::new(&mut self.io).poll_read(cx, buf);
        self.track(cx, p)
    }
}

impl AsyncWrite for IdleTimeout {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let p = Pin::new(&mut self.io).poll_write(cx, buf);
        self.track(cx, p)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let p = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.track(cx, p)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let p = Pin::new(&mut self.io).poll_flush(cx);
        self.track(cx, p)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The answer to a connection past the cap.
fn refusal(max: usize) -> Vec<u8> {
    let body = format!(
        "{{\"error\":\"too many connections (at most {max}, --max-connections); retry later\"}}"
    );
    let mut head = String::from(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         connection: close\r\nretry-after: 1\r\n",
    );
    for (name, value) in SECURITY_HEADERS {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    head.into_bytes()
}

/// Answers a refused connection 503 and closes it (reading what the client
/// sent meanwhile, so that closing does not reset the connection before the
/// client has read the answer). Bounded in time.
async fn refuse(mut stream: TcpStream, answer: Arc<Vec<u8>>) {
    let _ = tokio::time::timeout(REFUSAL_TIME, async move {
        stream.write_all(&answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), io::Error>(())
    })
    .await;
}

/// Whether an accept error concerns only the connection being accepted.
fn connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves `app` on `listener` under `limits` until `shutdown` resolves, then
/// raises `closing` (ending the event streams), stops accepting, lets every
/// connection finish its request in flight and returns.
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    closing: tokio::sync::watch::Sender<bool>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let conns = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let refusals = Arc::new(tokio::sync::Semaphore::new(REFUSALS_IN_FLIGHT));
    let answer = Arc::new(refusal(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    let (mut refused, mut last_warned) = (0u64, None);
    loop {
        let (stream, peer): (TcpStream, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) if connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&conns).try_acquire_owned() else {
            // One warning per second at most: a flood must not flood the log too.
            refused += 1;
            if last_warned.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(1)) {
                tracing::warn!(%peer, refused, max = limits.max_connections, "connections refused: too many connections");
                last_warned = Some(Instant::now());
                refused = 0;
            }
            if let Ok(r) = Arc::clone(&refusals).try_acquire_owned() {
                let answer = Arc::clone(&answer);
                tokio::spawn(async move {
                    refuse(stream, answer).await;
                    drop(r);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(IdleTimeout::new(stream, limits.idle_timeout));
        let conn = http.serve_connection(io, TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    // End the open event streams, or the graceful shutdown waits for them
    // (`send_replace`: a stream opened later sees it too).
    closing.send_replace(true);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_slots_are_counted_and_released() {
        let open = Arc::new(AtomicUsize::new(0));
        let a = SseSlot::take(&open, 2).expect("first");
        let b = SseSlot::take(&open, 2).expect("second");
        assert!(SseSlot::take(&open, 2).is_none());
        drop(a);
        let c = SseSlot::take(&open, 2).expect("after a release");
        assert_eq!(open.load(Ordering::Acquire), 2);
        drop((b, c));
        assert_eq!(open.load(Ordering::Acquire), 0);
        assert!(SseSlot::take(&open, 0).is_none());
    }

    #[test]
    fn refusal_is_a_complete_503() {
        let text = String::from_utf8(refusal(7)).expect("utf8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head");
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        assert!(body.contains("at most 7"), "{body}");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(head.contains("x-content-type-options: nosniff"));
    }

    #[test]
    fn keep_alive_beats_the_idle_timeout() {
        let mut l = Limits::default();
        assert_eq!(l.sse_keep_alive(), Duration::from_secs(15));
        l.idle_timeout = Duration::from_secs(3);
        assert_eq!(l.sse_keep_alive(), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn slow_handlers_time_out_and_every_answer_has_the_headers() {
        use axum::routing::get;
        use tower::ServiceExt;
        let limits = Limits {
            request_timeout: Duration::from_millis(50),
            ..Limits::default()
        };
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        };
        let app = with_layers(
            Router::new()
                .route("/slow", get(slow))
                .route("/api/events", get(slow))
                .route("/fast", get(|| async { "ok" })),
            &limits,
        );
        let call = |path: &'static str| {
            let app = app.clone();
            async move {
                let req = Request::builder().uri(path).body(axum::body::Body::empty());
                app.oneshot(req.expect("request")).await.expect("answer")
            }
        };
        let res = call("/slow").await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(res.headers()[name], value);
        }
        let res = call("/fast").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers()[axum::http::header::X_CONTENT_TYPE_OPTIONS],
            "nosniff"
        );
        // Event streams are exempt: still waiting when the timeout has long passed.
        let events = tokio::time::timeout(Duration::from_millis(500), call("/api/events")).await;
        assert!(
            events.is_err(),
            "/api/events was cut by the request timeout"
        );
    }
}
