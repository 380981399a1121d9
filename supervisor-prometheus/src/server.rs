//! A minimal HTTP/1.1 server answering `GET /metrics` with the OpenMetrics
//! rendering of a registry (feature `server`).
//!
//! Hand-written on a tokio [`TcpListener`] instead of hyper: it reads one
//! request head (bounded size, bounded time), answers it and closes the
//! connection. That is all a Prometheus scraper needs.
//!
//! # Invariants
//!
//! 1. A connection carries exactly one request and is closed after the
//!    response (`Connection: close`).
//! 2. A request head larger than [`MAX_REQUEST_HEAD_BYTES`] is answered with
//!    `431` and one that takes longer than [`REQUEST_TIMEOUT`] with `408`;
//!    neither holds memory or a task for longer.
//! 3. At most [`MAX_CONNECTIONS`] connections are served at once; further
//!    clients wait in the listener's backlog.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::timeout;

use crate::render::{OPENMETRICS_CONTENT_TYPE, render};

/// The address [`serve`] is usually given: loopback only, port 9898.
///
/// Exposing metrics beyond the host is a deployment decision: pass
/// `0.0.0.0:9898` (or a specific interface) explicitly.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9898));

/// The path the server answers on.
pub const METRICS_PATH: &str = "/metrics";

/// The largest request head (request line and headers) the server reads.
pub const MAX_REQUEST_HEAD_BYTES: usize = 8 * 1024;

/// How long a client may take to send its request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How many connections are served at once.
pub const MAX_CONNECTIONS: usize = 64;

/// How long writing a response may take before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after an accept error that is not about one connection (for example
/// running out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `registry` on `addr` until the future is dropped.
///
/// Shorthand for [`MetricsServer::bind`] followed by [`MetricsServer::run`]
/// with a shutdown that never fires. Futures do nothing unless polled.
///
/// # Errors
///
/// The error of binding `addr`. Once bound, the server does not fail: errors
/// of single connections are dropped with the connection.
///
/// # Panics
///
/// If polled outside a tokio runtime (with the `net` and `rt` drivers).
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
///
/// use prometheus_client::registry::Registry;
/// use supervisor_metrics::MetricsSink;
/// use supervisor_prometheus::{DEFAULT_ADDR, PrometheusSink, serve};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let mut registry = Registry::default();
/// let sink = Arc::new(PrometheusSink::register(&mut registry));
/// // Hand `sink` to the supervisor, then:
/// serve(DEFAULT_ADDR, Arc::new(registry)).await
/// # }
/// ```
pub async fn serve(addr: SocketAddr, registry: Arc<Registry>) -> io::Result<()> {
    let server = MetricsServer::bind(addr, registry).await?;
    server.run(std::future::pending()).await;
    Ok(())
}

/// A bound `/metrics` server, not yet accepting connections.
///
/// Binding and running are separate so callers (and tests) can bind port 0
/// and read the chosen port with [`local_addr`](Self::local_addr).
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
/// use std::sync::Arc;
///
/// use prometheus_client::registry::Registry;
/// use supervisor_metrics::MetricsSink;
/// use supervisor_prometheus::{MetricsServer, PrometheusSink};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use tokio::net::TcpStream;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let mut registry = Registry::default();
/// let sink = PrometheusSink::register(&mut registry);
/// sink.service_spawned(&sink.resolve("feed"));
///
/// let addr: SocketAddr = "127.0.0.1:0".parse().expect("a valid address");
/// let server = MetricsServer::bind(addr, Arc::new(registry)).await?;
/// let addr = server.local_addr();
/// tokio::spawn(server.run(std::future::pending()));
///
/// let mut stream = TcpStream::connect(addr).await?;
/// stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await?;
/// let mut response = String::new();
/// stream.read_to_string(&mut response).await?;
/// assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(response.contains("supervisor_spawned_total 1\n"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    registry: Arc<Registry>,
}

impl MetricsServer {
    /// Binds a listener on `addr` (port 0 picks a free port).
    ///
    /// Futures do nothing unless polled.
    ///
    /// # Errors
    ///
    /// The error of binding `addr` or of reading the bound address.
    ///
    /// # Panics
    ///
    /// If polled outside a tokio runtime with the I/O driver enabled.
    pub async fn bind(addr: SocketAddr, registry: Arc<Registry>) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(MetricsServer {
            listener,
            local_addr,
            registry,
        })
    }

    /// The address the server is bound to.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Accepts and answers connections until `shutdown` completes.
    ///
    /// Each connection is served by its own task; when `shutdown` completes
    /// the listener is closed and connections still in flight are aborted.
    /// Accept errors do not end the loop: an error about one connection is
    /// skipped, any other error (such as running out of file descriptors)
    /// pauses accepting for 100 ms. Futures do nothing unless polled.
    ///
    /// | request | response |
    /// |---------|----------|
    /// | `GET /metrics` (query string ignored) | `200`, [`OPENMETRICS_CONTENT_TYPE`], [`render`]ed registry |
    /// | `HEAD /metrics` | `200`, same headers, no body |
    /// | other method on `/metrics` | `405`, `Allow: GET, HEAD` |
    /// | any other path | `404` |
    /// | malformed request line | `400` |
    /// | head over [`MAX_REQUEST_HEAD_BYTES`] | `431` |
    /// | head not received within [`REQUEST_TIMEOUT`] | `408` |
    ///
    /// # Panics
    ///
    /// If polled outside a tokio runtime with the I/O driver enabled.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes the listener and aborts every connection
    /// task, like completing `shutdown` does.
    pub async fn run<F>(self, shutdown: F)
    where
        F: Future<Output = ()>,
    {
        let MetricsServer {
            listener, registry, ..
        } = self;
        let mut shutdown = std::pin::pin!(shutdown);
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(_finished) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept(), if connections.len() < MAX_CONNECTIONS => match accepted {
                    Ok((stream, _peer)) => {
                        connections.spawn(serve_connection(stream, Arc::clone(&registry)));
                    }
                    Err(error) if is_connection_error(&error) => {}
                    Err(_) => tokio::time::sleep(ACCEPT_ERROR_PAUSE).await,
                },
            }
        }
        connections.shutdown().await;
    }
}

/// Errors that concern the one connection being accepted, not the listener.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection(mut stream: TcpStream, registry: Arc<Registry>) {
    let mut buffer = vec![0_u8; MAX_REQUEST_HEAD_BYTES];
    let response = match timeout(REQUEST_TIMEOUT, read_request_head(&mut stream, &mut buffer)).await
    {
        Err(_elapsed) => Response::status_only(Status::RequestTimeout),
        Ok(Err(HeadError::TooLarge)) => Response::status_only(Status::HeadersTooLarge),
        Ok(Err(HeadError::Gone)) => return,
        Ok(Ok(head_len)) => respond(&buffer[..head_len], &registry),
    };
    // A client too slow to take the response loses it; nothing else to do.
    let _ = timeout(WRITE_TIMEOUT, response.write_to(&mut stream)).await;
}

#[derive(Debug)]
enum HeadError {
    /// The connection closed or failed before the end of the head: there is
    /// nobody to answer.
    Gone,
    TooLarge,
}

/// Reads until the blank line that ends the request head; returns the length
/// of the head, terminator included. Bytes after it (a body) are ignored.
async fn read_request_head(stream: &mut TcpStream, buffer: &mut [u8]) -> Result<usize, HeadError> {
    let mut filled = 0;
    loop {
        let Some(free) = buffer.get_mut(filled..).filter(|free| !free.is_empty()) else {
            return Err(HeadError::TooLarge);
        };
        let read = stream.read(free).await.map_err(|_| HeadError::Gone)?;
        if read == 0 {
            return Err(HeadError::Gone);
        }
        // Search only the bytes that could complete a terminator.
        let search_from = filled.saturating_sub(3);
        filled += read;
        if let Some(end) = find_head_end(&buffer[search_from..filled]) {
            return Ok(search_from + end);
        }
    }
}

/// The end of the head: after the first `\r\n\r\n`, or `\n\n` from lenient
/// clients.
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|at| at + 4);
    let lf = bytes
        .windows(2)
        .position(|window| window == b"\n\n")
        .map(|at| at + 2);
    match (crlf, lf) {
        (Some(crlf), Some(lf)) => Some(crlf.min(lf)),
        (crlf, lf) => crlf.or(lf),
    }
}

fn respond(head: &[u8], registry: &Registry) -> Response {
    let Some(request_line) = head
        .split(|&byte| byte == b'\n')
        .next()
        .and_then(|line| std::str::from_utf8(line).ok())
    else {
        return Response::status_only(Status::BadRequest);
    };
    let mut parts = request_line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Response::status_only(Status::BadRequest);
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Response::status_only(Status::BadRequest);
    }
    let path = target.split('?').next().unwrap_or(target);
    if path != METRICS_PATH {
        return Response::status_only(Status::NotFound);
    }
    let with_body = match method {
        "GET" => true,
        "HEAD" => false,
        _ => return Response::status_only(Status::MethodNotAllowed),
    };
    match render(registry) {
        Ok(body) => Response {
            status: Status::Ok,
            content_type: OPENMETRICS_CONTENT_TYPE,
            content_length: body.len(),
            body: if with_body { body } else { String::new() },
        },
        Err(std::fmt::Error) => Response::status_only(Status::InternalServerError),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    HeadersTooLarge,
    InternalServerError,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Status::Ok => "200 OK",
            Status::BadRequest => "400 Bad Request",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::RequestTimeout => "408 Request Timeout",
            Status::HeadersTooLarge => "431 Request Header Fields Too Large",
            Status::InternalServerError => "500 Internal Server Error",
        }
    }
}

#[derive(Debug)]
struct Response {
    status: Status,
    content_type: &'static str,
    /// The length of the representation; differs from `body.len()` for `HEAD`.
    content_length: usize,
    body: String,
}

impl Response {
    /// An error response whose body is its status line.
    fn status_only(status: Status) -> Self {
        let body = format!("{}\n", status.line());
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            content_length: body.len(),
            body,
        }
    }

    async fn write_to(&self, stream: &mut TcpStream) -> io::Result<()> {
        let allow = match self.status {
            Status::MethodNotAllowed => "Allow: GET, HEAD\r\n",
            _ => "",
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n{allow}Connection: close\r\n\r\n",
            status = self.status.line(),
            content_type = self.content_type,
            length = self.content_length,
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(self.body.as_bytes()).await?;
        stream.flush().await?;
        stream.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_is_found_after_either_terminator() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn requests_are_routed_by_method_and_path() {
        let registry = Registry::default();
        let status = |head: &[u8]| respond(head, &registry).status;
        assert_eq!(status(b"GET /metrics HTTP/1.1\r\n\r\n"), Status::Ok);
        assert_eq!(
            status(b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n"),
            Status::Ok
        );
        assert_eq!(status(b"HEAD /metrics HTTP/1.1\r\n\r\n"), Status::Ok);
        assert_eq!(
            status(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Status::MethodNotAllowed
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), Status::NotFound);
        assert_eq!(status(b"GET /metricsx HTTP/1.1\r\n\r\n"), Status::NotFound);
        assert_eq!(status(b"GET /metrics\r\n\r\n"), Status::BadRequest);
        assert_eq!(status(b"GET /metrics SPDY/3\r\n\r\n"), Status::BadRequest);
        assert_eq!(status(b"\xff\xfe\r\n\r\n"), Status::BadRequest);
    }

    #[test]
    fn head_responses_announce_the_length_without_a_body() {
        let response = respond(b"HEAD /metrics HTTP/1.1\r\n\r\n", &Registry::default());
        assert!(response.body.is_empty());
        assert_eq!(response.content_length, "# EOF\n".len());
    }
}
