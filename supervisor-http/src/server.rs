//! [`HttpServer`] and [`serve`]: the routes on a listener of their own, for
//! hosts without an HTTP server, with bounded connections and a graceful
//! shutdown tied to the supervisor.
//!
//! # Invariants
//!
//! 1. At most [`Limits::max_connections`] connections are served at once;
//!    further clients wait in the listener's backlog.
//! 2. A request head is bounded in size, header count and time by hyper's
//!    HTTP/1 settings (`431`, or the connection closed), before any route
//!    sees it.
//! 3. Once the shutdown signal fires, nothing new is accepted, every
//!    connection is asked to close after its current request, and what is
//!    still open after [`Limits::request_timeout`] is dropped.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use supervisor_core::Supervisor;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::{Limits, SupervisorRoutes};

/// The address the surface is usually served on: loopback only, port 9898.
///
/// Exposing it beyond the host (to a Prometheus server or a kubelet
/// elsewhere) is a deployment decision: bind `0.0.0.0:9898` or a given
/// interface explicitly. `/status` and the page show services' error
/// messages.
///
/// # Examples
///
/// ```
/// assert_eq!(supervisor_http::DEFAULT_ADDR.to_string(), "127.0.0.1:9898");
/// ```
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9898));

/// Pause after an accept error that is not about one connection (running out
/// of file descriptors, say), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `routes` on `addr` until their supervisor has shut down and
/// drained (see [`drained`]), then shuts down gracefully.
///
/// Shorthand for [`HttpServer::bind`] with the routes' [`Limits`], then
/// [`HttpServer::run`]. To learn the port of `127.0.0.1:0` before serving,
/// use those two. Futures do nothing unless polled.
///
/// # Errors
///
/// The error of binding `addr`. Once bound, serving does not fail: the
/// errors of single connections close those connections.
///
/// # Examples
///
/// ```no_run
/// use supervisor_core::Supervisor;
/// use supervisor_http::{DEFAULT_ADDR, SupervisorRoutes, serve};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let supervisor = Supervisor::with_defaults();
/// // Spawn the services, then:
/// tokio::spawn(serve(DEFAULT_ADDR, SupervisorRoutes::new(supervisor.clone())));
/// let _report = supervisor.run_until_shutdown().await;
/// # Ok(())
/// # }
/// ```
pub async fn serve(addr: SocketAddr, routes: SupervisorRoutes) -> io::Result<()> {
    let shutdown = drained(routes.supervisor());
    let server = HttpServer::bind(addr).await?.with_limits(routes.limits());
    server.run(routes, shutdown).await;
    Ok(())
}

/// Completes once `supervisor`'s shutdown has begun *and* its drain has
/// finished: the shutdown signal of [`serve`], and the end of every event
/// stream.
///
/// Not at the start of the shutdown: while the services drain, `/readyz`
/// keeps answering `503` (a load balancer or a kubelet sees the pod leave,
/// rather than a refused connection), and the event streams carry the
/// drain. The future holds a clone of the supervisor.
///
/// # Examples
///
/// ```
/// use supervisor_core::{Supervisor, SupervisorConfig};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
/// let drained = supervisor_http::drained(&supervisor);
/// supervisor.trigger_shutdown();
/// drained.await; // Nothing to drain: at once.
/// assert!(supervisor.is_drained());
/// # }
/// ```
pub fn drained(supervisor: &Supervisor) -> impl Future<Output = ()> + Send + 'static {
    let supervisor = supervisor.clone();
    async move {
        supervisor.cancel_token().cancelled().await;
        supervisor.wait_for_drain().await;
    }
}

/// A bound listener, not yet serving.
///
/// Binding and serving are separate so that a host (or a test) can bind port
/// 0 and read the port with [`local_addr`](Self::local_addr) first. Every
/// connection is HTTP/1.1 on hyper, with the connection [`Limits`]
/// ([`with_limits`](Self::with_limits)): how many connections at once, the
/// size, header count and time of a request head.
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
///
/// use supervisor_core::{Supervisor, SupervisorConfig};
/// use supervisor_http::{HttpServer, SupervisorRoutes};
/// use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
/// let server = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
/// let addr = server.local_addr();
/// let serving = tokio::spawn(server.run(
///     SupervisorRoutes::new(supervisor.clone()),
///     supervisor_http::drained(&supervisor),
/// ));
///
/// let mut stream = tokio::net::TcpStream::connect(addr).await?;
/// stream.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
/// let mut response = String::new();
/// stream.read_to_string(&mut response).await?;
/// assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(response.ends_with(r#"{"live":true}"#));
///
/// supervisor.trigger_shutdown();
/// serving.await?; // Drained: the server stops.
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct HttpServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    limits: Limits,
}

impl HttpServer {
    /// Binds a listener on `addr` (port 0 picks a free port), with the
    /// default [`Limits`].
    ///
    /// Futures do nothing unless polled.
    ///
    /// # Errors
    ///
    /// The error of binding `addr`, or of reading the bound address.
    ///
    /// # Panics
    ///
    /// If polled outside a tokio runtime with its I/O driver.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use supervisor_http::HttpServer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let server = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    /// assert_ne!(server.local_addr().port(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::from_listener(TcpListener::bind(addr).await?)
    }

    /// Serves on a listener the host bound itself (handed over by systemd's
    /// socket activation, say), with the default [`Limits`].
    ///
    /// # Errors
    ///
    /// The error of reading the listener's address.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_http::HttpServer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let addr = listener.local_addr()?;
    /// assert_eq!(HttpServer::from_listener(listener)?.local_addr(), addr);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_listener(listener: TcpListener) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        Ok(HttpServer {
            listener,
            local_addr,
            limits: Limits::default(),
        })
    }

    /// Serves with `limits`: their connection bounds here, and their
    /// `request_timeout` as the grace of the shutdown.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use supervisor_http::{HttpServer, Limits};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mut limits = Limits::default();
    /// limits.max_connections = 8;
    /// let server = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?.with_limits(limits);
    /// # let _ = server;
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The address the listener is bound to.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use supervisor_http::HttpServer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let server = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    /// assert!(server.local_addr().ip().is_loopback());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves `app` (a [`SupervisorRoutes`], or any `Router`, the host's
    /// routes merged in) until `shutdown` completes; then stops accepting,
    /// lets every connection finish its request (at most
    /// [`Limits::request_timeout`]) and returns. Pass [`drained`] to stop
    /// once the supervisor has drained, as [`serve`] does.
    ///
    /// Each connection is served by a task of its own. Accept errors do not
    /// end the loop: an error about one connection is skipped, any other
    /// (running out of file descriptors, say) pauses accepting for 100 ms.
    /// Futures do nothing unless polled.
    ///
    /// # Panics
    ///
    /// If polled outside a tokio runtime with its I/O and time drivers.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes the listener and drops every connection
    /// at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::SocketAddr;
    ///
    /// use axum::Router;
    /// use axum::routing::get;
    /// use supervisor_core::Supervisor;
    /// use supervisor_http::{HttpServer, SupervisorRoutes};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let supervisor = Supervisor::with_defaults();
    /// let app = Router::new()
    ///     .route("/version", get(|| async { "1.0" }))
    ///     .merge(SupervisorRoutes::new(supervisor));
    /// let server = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    /// server.run(app, async {}).await; // A shutdown that fires at once.
    /// # Ok(())
    /// # }
    /// ```
    pub async fn run<F>(self, app: impl Into<Router>, shutdown: F)
    where
        F: Future<Output = ()>,
    {
        let HttpServer {
            listener, limits, ..
        } = self;
        let app: Router = app.into();
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_header_size(limits.max_header_bytes)
            // hyper's floor for its read buffer is 8 KiB.
            .max_buf_size(limits.max_header_bytes.max(8 * 1024))
            .max_headers(limits.max_headers);
        let allowed = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        let graceful = GracefulShutdown::new();
        let mut connections = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            while connections.try_join_next().is_some() {}
            let permit = tokio::select! {
                biased;
                () = &mut shutdown => break,
                permit = Arc::clone(&allowed).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    // Never closed.
                    Err(_closed) => break,
                },
            };
            let stream = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(error) if is_connection_error(&error) => continue,
                    Err(_) => {
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                },
            };
            let service = TowerToHyperService::new(app.clone());
            let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
            connections.spawn(async move {
                // A connection's error concerns that client only.
                let _ = connection.await;
                drop(permit);
            });
        }
        drop(listener);
        let _ = tokio::time::timeout(limits.request_timeout, graceful.shutdown()).await;
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
