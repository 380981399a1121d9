//! Scenario 11: the cost of the HTTP surface (`supervisor-http`).
//!
//! - 11a: `GET /metrics` of an N-service registry, through the real router
//!   and server over a real loopback connection (keep-alive HTTP/1.1, the
//!   `Accept` header Prometheus sends, so OpenMetrics), timed by the client
//!   from the request to the body's last byte; beside it the plain text
//!   format (what curl gets) and `render` alone, without HTTP.
//! - 11b: the restart cycle of one failing service (scenario 4) next to N
//!   idle services, served, with nothing else running, with a scraper
//!   looping on `/metrics` back to back, with an SSE client following
//!   `/events`, and with an in-process subscriber draining `subscribe()`
//!   (the events' own cost, scenario 4c, so the stream's part shows); and
//!   the scraper's control, a task keeping the runtime's other worker as
//!   busy as the scrapes do, touching nothing (a busy worker is never
//!   parked, so the restarts' wake-ups get cheaper: the scraper's ratio
//!   below 1× is that, not the scrape).
//!
//! The clients are OS threads (as a scraper is another process), on
//! `ureq`; the server runs on the scenario's runtime, as in a host. Every
//! measurement builds a fresh runtime, supervisor and server; the SSE
//! stream ends when the supervisor drains.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use supervisor_core::{LifecycleEvents, RecvError, Supervisor, SupervisorConfig};
use supervisor_http::{HttpServer, SupervisorRoutes, drained};
use supervisor_prometheus::PrometheusSink;
use supervisor_prometheus::prometheus_client::registry::Registry;

use crate::fleet::Fleet;
use crate::measure::{Arrivals, now, per, run_on_worker};
use crate::script::{Script, names};

/// The `Accept` header Prometheus 3 sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";

/// How long the busy worker spins before it yields: about one render of
/// 1k services' `/metrics` (scenario 11a).
const BUSY_SLICE: Duration = Duration::from_millis(3);

/// The largest `/metrics` body the client reads.
const MAX_BODY: u64 = 256 * 1024 * 1024;

/// What 11a measured, per scrape.
#[derive(Debug, Clone)]
pub(crate) struct Scrapes {
    /// ns per `GET /metrics` with Prometheus' `Accept` (OpenMetrics).
    pub(crate) openmetrics: Vec<f64>,
    /// ns per `GET /metrics` without `Accept` (text 0.0.4).
    pub(crate) text: Vec<f64>,
    /// ns per `render(&registry)`, no HTTP.
    pub(crate) render: Vec<f64>,
    /// Bytes of one OpenMetrics body.
    pub(crate) bytes: usize,
    /// Samples (lines that are not comments) of one OpenMetrics body.
    pub(crate) samples: usize,
}

/// 11a: `services` idle services with the Prometheus sink, served; then
/// `scrapes` timed requests of each format, and as many renders.
pub(crate) fn scrapes(services: usize, scrapes: usize, limit: Duration) -> Result<Scrapes> {
    let runtime = runtime()?;
    run_on_worker(&runtime, async move {
        let served = Served::start(services, limit).await?;
        let addr = served.addr;
        let registry = Arc::clone(&served.registry);
        let measured = tokio::task::spawn_blocking(move || -> Result<Scrapes> {
            let agent = agent();
            let scrape = |accept: Option<&str>| -> Result<(f64, String)> {
                let started = now();
                let body = get_metrics(&agent, addr, accept)?;
                Ok((per(started.elapsed(), 1), body))
            };
            // A warm-up, and the body to check.
            let (_, body) = scrape(Some(PROMETHEUS_ACCEPT))?;
            check_exposition(&body, services, true)?;
            let (_, text) = scrape(None)?;
            check_exposition(&text, services, false)?;
            let mut measured = Scrapes {
                openmetrics: Vec::with_capacity(scrapes),
                text: Vec::with_capacity(scrapes),
                render: Vec::with_capacity(scrapes),
                bytes: body.len(),
                samples: body.lines().filter(|line| !line.starts_with('#')).count(),
            };
            for _ in 0..scrapes {
                measured
                    .openmetrics
                    .push(scrape(Some(PROMETHEUS_ACCEPT))?.0);
                measured.text.push(scrape(None)?.0);
                let started = now();
                let rendered = supervisor_prometheus::render(&registry)
                    .map_err(|_| anyhow!("the registry did not render"))?;
                measured.render.push(per(started.elapsed(), 1));
                std::hint::black_box(rendered);
            }
            Ok(measured)
        })
        .await
        .context("the scraper thread panicked")??;
        served.stop(limit).await?;
        Ok(measured)
    })
}

/// What runs next to the restarts in one measurement of 11b.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alongside {
    /// Nothing: the server is up, nobody asks it anything.
    Nothing,
    /// A thread scraping `/metrics` back to back.
    Scraper,
    /// A thread reading `/events`.
    EventStream,
    /// A task draining `Supervisor::subscribe()`, in process.
    Subscriber,
    /// The control of the scraper: a task on the runtime as busy as the
    /// scrapes keep the server (slices of [`BUSY_SLICE`]), touching nothing.
    BusyWorker,
}

impl Alongside {
    pub(crate) const ALL: [Alongside; 5] = [
        Alongside::Nothing,
        Alongside::Scraper,
        Alongside::BusyWorker,
        Alongside::EventStream,
        Alongside::Subscriber,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Alongside::Nothing => "nothing",
            Alongside::Scraper => "scraper",
            Alongside::EventStream => "event stream",
            Alongside::Subscriber => "subscriber",
            Alongside::BusyWorker => "busy worker",
        }
    }

    /// What [`Measured::work`] counts.
    pub(crate) fn work_unit(self) -> &'static str {
        match self {
            Alongside::Nothing => "nothing",
            Alongside::Scraper => "scrapes",
            Alongside::EventStream => "events read",
            Alongside::Subscriber => "events received or missed",
            Alongside::BusyWorker => "busy slices",
        }
    }
}

/// One measurement of 11b.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Measured {
    /// ns per restart.
    pub(crate) ns: f64,
    /// Scrapes completed, events read (SSE `data:` lines, or `subscribe()`
    /// events), or busy slices begun, by the time the restarts were done
    /// ([`Alongside::work_unit`]).
    pub(crate) work: u64,
}

/// 11b: the restart cycle of one service failing `restarts` times next to
/// `services` idle ones, served, with `alongside` running.
pub(crate) fn restart_alongside(
    alongside: Alongside,
    services: usize,
    restarts: u64,
    limit: Duration,
) -> Result<Measured> {
    let runtime = runtime()?;
    run_on_worker(&runtime, async move {
        let served = Served::start(services, limit).await?;
        let client = Client::start(alongside, &served)?;
        client.wait_for_first(limit).await?;

        let done = Arc::new(Arrivals::new(1));
        let script = Arc::new(Script::failing(restarts, Arc::clone(&done)));
        let started = now();
        served
            .fleet
            .spawn_restarting(&Arc::from("crasher"), &script)?;
        done.wait(limit).await?;
        let elapsed = started.elapsed();
        let work = client.count();
        ensure!(
            script.runs() == restarts + 1,
            "the crasher ran {} times, expected {}",
            script.runs(),
            restarts + 1
        );
        let restarted = served.supervisor.metrics().snapshot().restarts_total;
        ensure!(
            restarted == restarts,
            "{restarted} restarts counted, expected {restarts}"
        );

        // The scraper stops at its next request; the event stream ends with
        // the drain.
        client.ask_to_stop();
        served.stop(limit).await?;
        client.join(limit).await?;
        Ok(Measured {
            ns: per(elapsed, restarts),
            work,
        })
    })
}

/// The runtime of scenario 11: the scenarios' own (2 workers) with the I/O
/// driver the server needs.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(crate::measure::WORKERS)
        .enable_time()
        .enable_io()
        .build()
        .context("cannot build the tokio runtime")
}

/// A supervisor with the Prometheus sink and `services` idle services, its
/// routes served on a free loopback port until it drains.
struct Served {
    fleet: Fleet,
    supervisor: Supervisor,
    registry: Arc<Registry>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Served {
    async fn start(services: usize, limit: Duration) -> Result<Self> {
        let mut registry = Registry::default();
        let sink = Arc::new(PrometheusSink::register(&mut registry));
        let registry = Arc::new(registry);
        let supervisor = Supervisor::new(
            SupervisorConfig::default()
                .without_signal_handler()
                .with_metrics_sink(sink),
        );
        let fleet = Fleet::Project(supervisor.clone());
        let running = Arc::new(Arrivals::new(services));
        let idle = Arc::new(Script::idle(Arc::clone(&running)));
        for name in names(services).iter() {
            fleet.spawn_restarting(name, &idle)?;
        }
        running.wait(limit).await?;

        let server = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .context("cannot bind a loopback port")?;
        let addr = server.local_addr();
        let routes =
            SupervisorRoutes::new(supervisor.clone()).with_prometheus(Arc::clone(&registry));
        let server = tokio::spawn(server.run(routes, drained(&supervisor)));
        Ok(Self {
            fleet,
            supervisor,
            registry,
            addr,
            server,
        })
    }

    /// Drains the fleet; the server stops with it.
    async fn stop(mut self, limit: Duration) -> Result<()> {
        self.fleet.drain(limit).await?;
        tokio::time::timeout(limit, self.server)
            .await
            .context("the server did not stop after the drain")?
            .context("the server panicked")
    }
}

/// A client of 11b, running next to the restarts.
struct Client {
    alongside: Alongside,
    stop: Arc<AtomicBool>,
    /// Scrapes completed, events read, or busy slices begun.
    count: Arc<AtomicU64>,
    thread: Option<JoinHandle<Result<()>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Client {
    fn start(alongside: Alongside, served: &Served) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let addr = served.addr;
        let (thread, task) = match alongside {
            Alongside::Nothing => (None, None),
            Alongside::Scraper => {
                let (stop, count) = (Arc::clone(&stop), Arc::clone(&count));
                let thread = std::thread::spawn(move || {
                    let agent = agent();
                    while !stop.load(Ordering::Acquire) {
                        std::hint::black_box(get_metrics(&agent, addr, Some(PROMETHEUS_ACCEPT))?);
                        count.fetch_add(1, Ordering::Release);
                    }
                    Ok(())
                });
                (Some(thread), None)
            }
            Alongside::EventStream => {
                let count = Arc::clone(&count);
                let thread = std::thread::spawn(move || read_events(addr, &count));
                (Some(thread), None)
            }
            Alongside::Subscriber => {
                // Subscribed from here on: nothing to wait for.
                let events = served.supervisor.subscribe();
                (None, Some(tokio::spawn(listen(events, Arc::clone(&count)))))
            }
            Alongside::BusyWorker => {
                let (stop, count) = (Arc::clone(&stop), Arc::clone(&count));
                let task = tokio::spawn(async move {
                    while !stop.load(Ordering::Acquire) {
                        count.fetch_add(1, Ordering::Release);
                        let started = now();
                        while started.elapsed() < BUSY_SLICE {
                            std::hint::spin_loop();
                        }
                        tokio::task::yield_now().await;
                    }
                });
                (None, Some(task))
            }
        };
        Ok(Self {
            alongside,
            stop,
            count,
            thread,
            task,
        })
    }

    /// Waits until the client is in its steady state: a scrape done, the
    /// stream's first event (the `status`) read, the busy worker spinning.
    async fn wait_for_first(&self, limit: Duration) -> Result<()> {
        if matches!(self.alongside, Alongside::Nothing | Alongside::Subscriber) {
            // Nothing to wait for (the subscriber is subscribed already).
            return Ok(());
        }
        let started = now();
        while self.count() == 0 {
            if started.elapsed() > limit || self.thread.as_ref().is_some_and(|t| t.is_finished()) {
                bail!("the {} never got going", self.alongside.as_str());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    fn ask_to_stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Waits for the client to end (the event stream ends with the drain).
    async fn join(self, limit: Duration) -> Result<()> {
        if let Some(task) = self.task {
            task.abort();
        }
        let Some(thread) = self.thread else {
            return Ok(());
        };
        let joined = tokio::task::spawn_blocking(move || thread.join());
        tokio::time::timeout(limit, joined)
            .await
            .with_context(|| format!("the {} did not stop", self.alongside.as_str()))?
            .context("cannot join the client")?
            .map_err(|_| anyhow!("the {} panicked", self.alongside.as_str()))?
    }
}

/// A keep-alive HTTP/1.1 client, any status accepted, no proxy.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into()
}

/// `GET /metrics`, read to its end; its body.
fn get_metrics(agent: &ureq::Agent, addr: SocketAddr, accept: Option<&str>) -> Result<String> {
    let mut request = agent.get(format!("http://{addr}/metrics"));
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let mut response = request.call().context("GET /metrics failed")?;
    ensure!(
        response.status() == 200,
        "GET /metrics said {}",
        response.status()
    );
    response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_string()
        .context("cannot read /metrics")
}

/// The exposition lists every service: one `restarts_total` series each,
/// and OpenMetrics ends with `# EOF`.
fn check_exposition(body: &str, services: usize, openmetrics: bool) -> Result<()> {
    let series = body
        .lines()
        .filter(|line| line.starts_with("supervisor_restarts_total{service="))
        .count();
    ensure!(
        series == services,
        "{series} restart series for {services} services"
    );
    ensure!(
        body.trim_end().ends_with("# EOF") == openmetrics,
        "the body is not in the format asked for"
    );
    Ok(())
}

/// Reads `GET /events` until it ends (the supervisor drained), counting the
/// events (their `data:` lines).
fn read_events(addr: SocketAddr, count: &AtomicU64) -> Result<()> {
    let response = agent()
        .get(format!("http://{addr}/events"))
        .header("Accept", "text/event-stream")
        .call()
        .context("GET /events failed")?;
    ensure!(
        response.status() == 200,
        "GET /events said {}",
        response.status()
    );
    let reader = std::io::BufReader::new(response.into_body().into_reader());
    for line in reader.lines() {
        let line = line.context("the event stream broke")?;
        if line.starts_with("data:") {
            count.fetch_add(1, Ordering::Release);
        }
    }
    Ok(())
}

/// Drains `events`, counting them, until the channel closes.
async fn listen(mut events: LifecycleEvents, count: Arc<AtomicU64>) {
    loop {
        match events.recv().await {
            Ok(event) => {
                std::hint::black_box(&event);
                count.fetch_add(1, Ordering::Release);
            }
            Err(RecvError::Lagged { missed }) => {
                count.fetch_add(missed, Ordering::Release);
            }
            Err(_) => return,
        }
    }
}
