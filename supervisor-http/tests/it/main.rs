//! Behaviour tests of supervisor-http: a real supervisor served on a free
//! loopback port, spoken to with a real HTTP client (`ureq`, from the
//! workspace's shared test support, the `tests` crate); one module per
//! subject.
//!
//! Real time, on purpose: the server's timeouts run on tokio's clock, which
//! paused time would advance while the blocking client waits. No test sleeps
//! for a fixed time: each waits for what it needs, bounded by a deadline.

mod endpoints;
mod events;
mod limits;
#[cfg(feature = "prometheus")]
mod metrics;
#[cfg(feature = "prometheus")]
mod real_prometheus;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use supervisor_core::{Service, ServiceContext, Supervisor, SupervisorConfig, service_fn};
use supervisor_http::{HttpServer, SupervisorRoutes, drained};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The longest any one step may take on a slow machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// A supervisor without a signal handler (tests trigger the shutdown).
fn supervisor() -> Supervisor {
    Supervisor::new(quiet())
}

/// The configuration of [`supervisor`], to add to.
fn quiet() -> SupervisorConfig {
    SupervisorConfig::default().without_signal_handler()
}

/// A service that runs until it is asked to stop.
fn idle(name: &'static str) -> impl Service {
    service_fn(name, |ctx: ServiceContext| async move {
        ctx.cancelled().await;
        anyhow::Ok(())
    })
}

/// A supervisor with one service, `flush`, which, asked to stop, returns
/// only once the sender fires (or is dropped): it holds the drain.
fn holding_its_drain() -> (Supervisor, oneshot::Sender<()>) {
    let (release, released) = oneshot::channel();
    let released = std::sync::Mutex::new(Some(released));
    let flush = service_fn("flush", move |ctx: ServiceContext| {
        let released = released.lock().expect("not poisoned").take();
        async move {
            ctx.cancelled().await;
            if let Some(released) = released {
                let _ = released.await;
            }
            anyhow::Ok(())
        }
    });
    let supervisor = supervisor();
    supervisor.spawn_service(flush).expect("spawned");
    (supervisor, release)
}

/// Waits until every service of `supervisor` is ready.
async fn ready(supervisor: &Supervisor) {
    tokio::time::timeout(PATIENCE, supervisor.wait_ready())
        .await
        .expect("ready in time")
        .expect("nothing failed");
}

/// Waits until `supervisor` has drained.
async fn drain(supervisor: &Supervisor) {
    tokio::time::timeout(PATIENCE, supervisor.wait_for_drain())
        .await
        .expect("drained in time");
}

/// An app served on a free loopback port until `shutdown`.
struct Served {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Served {
    /// Serves `routes` until their supervisor has drained, as `serve` does.
    async fn until_drained(routes: SupervisorRoutes) -> Self {
        let shutdown = drained(routes.supervisor());
        Self::start(routes, shutdown).await
    }

    /// Serves `app` until the returned sender is used or dropped: a host
    /// whose router outlives the supervisor.
    async fn until_told(app: impl Into<axum::Router>) -> (Self, oneshot::Sender<()>) {
        let (stop, stopped) = oneshot::channel::<()>();
        let served = Self::start(app, async {
            let _ = stopped.await;
        })
        .await;
        (served, stop)
    }

    /// Serves `app` until `shutdown` completes.
    async fn start(
        app: impl Into<axum::Router>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        Self::with_server(
            HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .expect("a free loopback port"),
            app,
            shutdown,
        )
    }

    fn with_server(
        server: HttpServer,
        app: impl Into<axum::Router>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        let addr = server.local_addr();
        let app = app.into();
        Served {
            addr,
            task: tokio::spawn(server.run(app, shutdown)),
        }
    }

    /// Waits for the server to stop (after its shutdown signal).
    async fn stopped(self) {
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the server stops after its shutdown signal")
            .expect("the server's task");
    }
}
