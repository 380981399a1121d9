//! [`SupervisorRoutes`]: the endpoints of a supervisor as an axum `Router`,
//! and their handlers.
//!
//! # Invariants
//!
//! 1. No handler changes the supervisor: each reads it (snapshots,
//!    readiness, the shutdown cause) or subscribes to its events.
//! 2. Every body is JSON (serde), the metrics text, or the status page
//!    compiled into the crate: no handler writes a string of a service (a
//!    name, an error message) into HTML.
//! 3. A handler takes no lock a service's restart needs for longer than a
//!    snapshot does: each service is read under its own short lock.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde::Serialize;
use supervisor_core::{MetricsSnapshot, Readiness, ServiceStatus, ShutdownCause, Supervisor};
use tokio::sync::Semaphore;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::events::event_stream;
use crate::{Limits, ReadyWhen};

/// The status page served on `GET /`: one self-contained HTML file.
const STATUS_PAGE: &str = include_str!("../assets/status.html");

/// What the page may load: itself, its inline script and style, and
/// requests to its own origin (`/status`, `/events`).
const STATUS_PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// How often an idle event stream sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The HTTP surface of a [`Supervisor`], built into an axum [`Router`].
///
/// | route | answers |
/// |---|---|
/// | `GET /` | the status page (`text/html; charset=utf-8`), compiled into the crate |
/// | `GET /livez` | `200 {"live":true}`; `503` once a critical service failed for good, the restart intensity was exceeded or a service's [`TerminateTree`](supervisor_core::TerminateTree) error shut the supervisor down (at once, not only once drained: the process is on its way to exit non-zero), or the shutdown has finished, with `reason` (`critical_failed`, `intensity_exceeded`, `tree_terminated`, `drained`), `cause` and `message` |
/// | `GET /readyz` | `200` when the services the [`ReadyWhen`] names are ready (by default every service: [`Supervisor::readiness`]), `503` otherwise and from the moment shutdown begins; the body is the supervisor's [`Readiness`] as JSON, its `ready` as the `ReadyWhen` decides |
/// | `GET /status` | every service's [`ServiceStatus`] (its snapshot, settings and dependencies), the readiness `/readyz` answers with and its `ready_when`, the shutdown cause, whether it drained, the built-in counters and the supervisor's clock, as JSON |
/// | `GET /events` | the lifecycle events as Server-Sent Events (below) |
/// | `GET /metrics` | with `with_prometheus` (feature `prometheus`): the registry, as OpenMetrics when the `Accept` header asks for it, as text 0.0.4 otherwise; `404` without |
///
/// Every body a route writes is JSON, metrics text, an event stream or the
/// page (the refusals of the routing and the [`Limits`] are axum's, tower's
/// and hyper's: empty or a line of text); `HEAD` works wherever `GET` does, any other method is `405`. No
/// endpoint changes the supervisor. Every route is bounded by the
/// [`Limits`] ([`with_limits`](Self::with_limits)); every response says
/// `X-Content-Type-Options: nosniff`, and `Cache-Control: no-store` but for
/// the page and the event stream (`no-cache`).
///
/// # What `/status` shows
///
/// ```json
/// {"services": [{"snapshot": {"service_name": "db", "phase": "running", "last_error": null, …},
///                "policy": "on_failure", "dependencies": [], "critical": true, …}],
///  "readiness": {"ready": true, "shutting_down": false, "waiting": [], "failed": []},
///  "shutdown_cause": null, "drained": false,
///  "metrics": {"restarts_total": 0, …}, "now": {"secs": 12, "nanos": 0}}
/// ```
///
/// Services' error messages (`last_error`, termination reasons) appear here
/// and on the page as the services wrote them: they may contain anything
/// (a connection string, a customer's input). Expose the surface only where
/// those may be read; it listens on loopback by default
/// ([`DEFAULT_ADDR`](crate::DEFAULT_ADDR)). They are JSON-encoded, and the
/// page shows them as text, never as HTML.
///
/// # The event stream
///
/// `GET /events` sends, in order:
///
/// - first an event named `status`, whose data is what `/status` returns,
///   taken *after* subscribing: apply a following event only if its `seq`
///   is above the `seq` of its service's snapshot, and the view misses
///   nothing and repeats nothing;
/// - then one unnamed (`message`) event per [`LifecycleEvent`](supervisor_core::LifecycleEvent),
///   its JSON as data and its `seq` as `id:`;
/// - when the client fell behind, an event named `lagged` with data
///   `{"missed": N}`, then a fresh `status` event to join again from;
/// - a keep-alive comment every 15 s of silence;
/// - once the supervisor has drained, the events still queued and a last
///   `status` event; then the stream ends.
///
/// A slow client never slows a service: events wait in the supervisor's
/// bounded channel, and the client lags. At most
/// [`Limits::max_event_streams`] streams are open at once (`503` beyond).
///
/// # Examples
///
/// Merge it into the host's app in one line, and serve that:
///
/// ```no_run
/// use axum::Router;
/// use axum::routing::get;
/// use supervisor_core::Supervisor;
/// use supervisor_http::SupervisorRoutes;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let supervisor = Supervisor::with_defaults();
/// let app = Router::new()
///     .route("/api/hello", get(|| async { "hello" }))
///     .merge(SupervisorRoutes::new(supervisor.clone()));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(listener, app).await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SupervisorRoutes {
    supervisor: Supervisor,
    limits: Limits,
    ready_when: ReadyWhen,
    #[cfg(feature = "prometheus")]
    registry: Option<Arc<supervisor_prometheus::prometheus_client::registry::Registry>>,
}

impl SupervisorRoutes {
    /// The routes of `supervisor`, with the default [`Limits`],
    /// [`ReadyWhen::AllServices`] and no `/metrics`.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{Supervisor, SupervisorConfig};
    /// use supervisor_http::{Limits, SupervisorRoutes};
    ///
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let routes = SupervisorRoutes::new(supervisor);
    /// assert_eq!(routes.limits(), Limits::default());
    /// ```
    #[must_use]
    pub fn new(supervisor: Supervisor) -> Self {
        SupervisorRoutes {
            supervisor,
            limits: Limits::default(),
            ready_when: ReadyWhen::AllServices,
            #[cfg(feature = "prometheus")]
            registry: None,
        }
    }

    /// Serves `registry` on `GET /metrics` (feature `prometheus`): the
    /// registry a [`PrometheusSink`](supervisor_prometheus::PrometheusSink)
    /// writes, with any metric of the host's own.
    ///
    /// The format follows the `Accept` header as the official Prometheus
    /// clients choose it: OpenMetrics 1.0.0 (`application/openmetrics-text;
    /// version=1.0.0; charset=utf-8`) when the client accepts it, as a
    /// Prometheus server does; the text format 0.0.4 (`text/plain;
    /// version=0.0.4; charset=utf-8`) otherwise, which is what `curl` and
    /// `promtool check metrics` get. The response says `Vary: Accept`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use supervisor_core::{Supervisor, SupervisorConfig};
    /// use supervisor_http::SupervisorRoutes;
    /// use supervisor_prometheus::PrometheusSink;
    /// use supervisor_prometheus::prometheus_client::registry::Registry;
    ///
    /// let mut registry = Registry::default();
    /// let sink = Arc::new(PrometheusSink::register(&mut registry));
    /// let config = SupervisorConfig::default().without_signal_handler().with_metrics_sink(sink);
    /// let routes = SupervisorRoutes::new(Supervisor::new(config)).with_prometheus(Arc::new(registry));
    /// let app: axum::Router = routes.into_router();
    /// # let _ = app;
    /// ```
    #[cfg(feature = "prometheus")]
    #[must_use]
    pub fn with_prometheus(
        mut self,
        registry: Arc<supervisor_prometheus::prometheus_client::registry::Registry>,
    ) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Bounds the routes by `limits` instead of the default ones.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use supervisor_core::{Supervisor, SupervisorConfig};
    /// use supervisor_http::{Limits, SupervisorRoutes};
    ///
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let mut limits = Limits::default();
    /// limits.request_timeout = Duration::from_secs(3);
    /// let routes = SupervisorRoutes::new(supervisor).with_limits(limits);
    /// assert_eq!(routes.limits().request_timeout, Duration::from_secs(3));
    /// ```
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Answers `GET /readyz` with `200` when `ready_when` holds, instead of
    /// when every service is ready.
    ///
    /// With [`ReadyWhen::CriticalServices`], a process whose optional
    /// services fail for good (or back off) keeps receiving traffic as long
    /// as its critical services run and are ready; the body still lists
    /// every service that waits or failed. From the moment shutdown begins,
    /// `/readyz` is `503` whatever the policy. `/status`, its `status`
    /// events and the status page show the same readiness, with the policy
    /// (`"ready_when": "critical_services"`).
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{Supervisor, SupervisorConfig};
    /// use supervisor_http::{ReadyWhen, SupervisorRoutes};
    ///
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let routes = SupervisorRoutes::new(supervisor).with_ready_when(ReadyWhen::CriticalServices);
    /// assert_eq!(routes.ready_when(), ReadyWhen::CriticalServices);
    /// ```
    #[must_use]
    pub fn with_ready_when(mut self, ready_when: ReadyWhen) -> Self {
        self.ready_when = ready_when;
        self
    }

    /// Which services `GET /readyz` waits for.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::Supervisor;
    /// use supervisor_http::{ReadyWhen, SupervisorRoutes};
    ///
    /// let routes = SupervisorRoutes::new(Supervisor::with_defaults());
    /// assert_eq!(routes.ready_when(), ReadyWhen::AllServices);
    /// ```
    #[must_use]
    pub fn ready_when(&self) -> ReadyWhen {
        self.ready_when
    }

    /// The limits the routes are bounded by.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::Supervisor;
    /// use supervisor_http::SupervisorRoutes;
    ///
    /// let routes = SupervisorRoutes::new(Supervisor::with_defaults());
    /// assert_eq!(routes.limits().max_event_streams, 32);
    /// ```
    #[must_use]
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The supervisor the routes serve.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::Supervisor;
    /// use supervisor_http::SupervisorRoutes;
    ///
    /// let routes = SupervisorRoutes::new(Supervisor::with_defaults());
    /// assert_eq!(routes.supervisor().service_count(), 0);
    /// ```
    #[must_use]
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// The routes as a [`Router`] of any state type, bounded by the
    /// [`Limits`], ready to [`merge`](Router::merge) into the host's app
    /// (`Router<S>` turns into it too, through `From`).
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::Router;
    /// use supervisor_core::Supervisor;
    /// use supervisor_http::SupervisorRoutes;
    ///
    /// #[derive(Clone)]
    /// struct AppState;
    ///
    /// let supervisor = Supervisor::with_defaults();
    /// let app: Router<AppState> = Router::new()
    ///     .merge(SupervisorRoutes::new(supervisor).into_router());
    /// let app: Router = app.with_state(AppState);
    /// # let _ = app;
    /// ```
    pub fn into_router<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let shared = Arc::new(Shared {
            supervisor: self.supervisor,
            ready_when: self.ready_when,
            streams: Arc::new(Semaphore::new(self.limits.max_event_streams)),
        });
        let router = Router::new()
            .route("/", get(status_page))
            .route("/livez", get(livez))
            .route("/readyz", get(readyz))
            .route("/status", get(status))
            .route("/events", get(events))
            .with_state(shared);
        #[cfg(feature = "prometheus")]
        let router = match self.registry {
            Some(registry) => router.route(
                "/metrics",
                get(crate::metrics::metrics).with_state(registry),
            ),
            None => router,
        };
        self.limits
            .apply(router)
            .layer(SetResponseHeaderLayer::overriding(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ))
    }
}

impl<S> From<SupervisorRoutes> for Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    fn from(routes: SupervisorRoutes) -> Self {
        routes.into_router()
    }
}

/// What the handlers share.
struct Shared {
    supervisor: Supervisor,
    /// What `/readyz` waits for.
    ready_when: ReadyWhen,
    /// One permit per open event stream.
    streams: Arc<Semaphore>,
}

/// `GET /`.
async fn status_page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, STATUS_PAGE_POLICY),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STATUS_PAGE,
    )
}

/// The body of `GET /livez`.
#[derive(Serialize)]
struct Liveness {
    live: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<ShutdownCause>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// `GET /livez`.
async fn livez(State(shared): State<Arc<Shared>>) -> Response {
    let supervisor = &shared.supervisor;
    let (reason, cause) = match supervisor.shutdown_cause() {
        Some(cause @ ShutdownCause::CriticalFailed { .. }) => ("critical_failed", cause),
        Some(cause @ ShutdownCause::IntensityExceeded { .. }) => ("intensity_exceeded", cause),
        Some(cause @ ShutdownCause::TreeTerminated { .. }) => ("tree_terminated", cause),
        Some(cause) if supervisor.is_drained() => ("drained", cause),
        _ => {
            let live = Liveness {
                live: true,
                reason: None,
                cause: None,
                message: None,
            };
            return Json(live).into_response();
        }
    };
    let message = match reason {
        "drained" => format!("the supervisor has shut down ({cause})"),
        _ => cause.to_string(),
    };
    let dead = Liveness {
        live: false,
        reason: Some(reason),
        cause: Some(cause),
        message: Some(message),
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(dead)).into_response()
}

/// `GET /readyz`.
async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let readiness = crate::readiness::readiness(&shared.supervisor, shared.ready_when);
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

/// The body of `GET /status`, and the data of the `status` events.
#[derive(Serialize)]
pub(crate) struct Status {
    services: Vec<ServiceStatus>,
    /// What `GET /readyz` answers: `ready` as `ready_when` decides.
    readiness: Readiness,
    ready_when: ReadyWhen,
    shutdown_cause: Option<ShutdownCause>,
    drained: bool,
    metrics: MetricsSnapshot,
    /// The supervisor's clock: the `now` of `last_transition_at` and `at`.
    now: Duration,
}

impl Status {
    pub(crate) fn of(supervisor: &Supervisor, ready_when: ReadyWhen) -> Self {
        Status {
            services: supervisor.status(),
            readiness: crate::readiness::readiness(supervisor, ready_when),
            ready_when,
            shutdown_cause: supervisor.shutdown_cause(),
            drained: supervisor.is_drained(),
            metrics: supervisor.metrics().snapshot(),
            now: supervisor.elapsed(),
        }
    }
}

/// `GET /status`.
async fn status(State(shared): State<Arc<Shared>>) -> Json<Status> {
    Json(Status::of(&shared.supervisor, shared.ready_when))
}

/// The body of a refusal.
#[derive(Serialize)]
struct Refusal {
    error: &'static str,
}

/// `GET /events`.
async fn events(State(shared): State<Arc<Shared>>) -> Response {
    let Ok(permit) = Arc::clone(&shared.streams).try_acquire_owned() else {
        let refusal = Refusal {
            error: "too many event streams are open",
        };
        return (StatusCode::SERVICE_UNAVAILABLE, Json(refusal)).into_response();
    };
    let stream = event_stream(shared.supervisor.clone(), shared.ready_when, permit);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// An SSE event named `name` with `data` as JSON.
pub(crate) fn json_event(name: Option<&'static str>, data: &impl Serialize) -> Event {
    let event = match name {
        Some(name) => Event::default().event(name),
        None => Event::default(),
    };
    // Our types always serialize; should one not, the client sees why.
    event
        .json_data(data)
        .unwrap_or_else(|_| Event::default().comment("an event could not be serialized"))
}

/// The item type of the event stream.
pub(crate) type SseItem = Result<Event, Infallible>;
