//! [`Limits`]: every bound of the HTTP surface, per request (tower layers)
//! and per connection (hyper's settings).

use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// The bounds of the HTTP surface.
///
/// The first four bound each request and apply wherever the routes are
/// served, because [`SupervisorRoutes::into_router`](crate::SupervisorRoutes::into_router)
/// layers them onto its routes with [`apply`](Self::apply); the others bound
/// connections and apply to [`HttpServer`](crate::HttpServer) (a host that
/// serves the router with its own server sets its own).
///
/// | bound | when it is reached |
/// |---|---|
/// | `max_body_bytes` | `413 Payload Too Large` (no endpoint reads a body) |
/// | `request_timeout` | `408 Request Timeout` if the response has not started by then |
/// | `max_concurrent_requests` | `503 Service Unavailable` at once: requests are refused, never queued |
/// | `max_event_streams` | `503` on `GET /events` |
/// | `max_connections` | further clients wait in the listener's backlog |
/// | `max_header_bytes`, `max_headers` | `431 Request Header Fields Too Large` |
/// | `header_read_timeout` | the connection is closed (also an idle keep-alive one) |
///
/// An event stream's response starts at once, so `request_timeout` does not
/// cut it; it ends when the supervisor has drained.
///
/// The fields are public and new ones may come: start from
/// [`Limits::default`] and set what you change.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor_http::Limits;
///
/// let mut limits = Limits::default();
/// limits.request_timeout = Duration::from_secs(2);
/// assert_eq!(limits.max_concurrent_requests, 64);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The largest request body accepted, by its `Content-Length`.
    pub max_body_bytes: usize,
    /// How long a request may take until its response starts.
    pub request_timeout: Duration,
    /// Requests handled at once, across the routes the limits were applied to.
    pub max_concurrent_requests: usize,
    /// `GET /events` streams open at once.
    pub max_event_streams: usize,
    /// Connections served at once by [`HttpServer`](crate::HttpServer).
    pub max_connections: usize,
    /// The largest request head (request line and headers).
    pub max_header_bytes: usize,
    /// The most headers a request may have.
    pub max_headers: usize,
    /// How long a client may take to send a request head.
    pub header_read_timeout: Duration,
}

impl Default for Limits {
    /// Small, for an admin surface on loopback: 4 KiB bodies, 10 s per
    /// request, 64 requests at once, 32 event streams, 128 connections,
    /// 16 KiB and 64 headers per request head, 10 s to send it.
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 * 1024,
            request_timeout: Duration::from_secs(10),
            max_concurrent_requests: 64,
            max_event_streams: 32,
            max_connections: 128,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// Bounds every route of `router` (those it has now, not those merged
    /// later) by the body size, the time per request and the number of
    /// requests at once: a host can bound its own routes the same way.
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::Router;
    /// use axum::routing::get;
    /// use supervisor_http::Limits;
    ///
    /// let app: Router = Limits::default().apply(Router::new().route("/hello", get(|| async { "hi" })));
    /// # let _ = app;
    /// ```
    pub fn apply<S>(&self, router: Router<S>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let layers = ServiceBuilder::new()
            // What the two tower layers below return as errors: only
            // `Overloaded`, from the load shedder.
            .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                StatusCode::SERVICE_UNAVAILABLE
            }))
            .load_shed()
            // Global: one semaphore for every route (axum layers each route
            // on its own).
            .layer(GlobalConcurrencyLimitLayer::new(
                self.max_concurrent_requests.max(1),
            ))
            .layer(RequestBodyLimitLayer::new(self.max_body_bytes))
            // Innermost: its `408` needs the routes' own body type.
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                self.request_timeout,
            ));
        router.layer(layers)
    }
}
