//! The demo fleet: a two-level supervision tree of six services under two
//! nested supervisors, supervised for real until Ctrl-C, SIGTERM or
//! `--duration SECS`, watched through the supervisor's lifecycle events and
//! served over HTTP.
//!
//! ```text
//! cargo run --example fleet                              # until Ctrl-C / SIGTERM
//! cargo run --example fleet -- --duration 8              # stops by itself after 8 s
//! cargo run --example fleet -- --chaos                   # stops, restarts, removes services
//! cargo run --example fleet -- --fail-critical-after 3   # the feed keeps failing: escalations, exit 2
//! cargo run --example fleet -- --kill-dependency-after 3 # the exchange bans the session: escalations, exit 2
//! cargo run --example fleet -- --http-addr 127.0.0.1:0   # any free port
//! ```
//!
//! It serves its HTTP surface (`supervisor-http`) on `http://127.0.0.1:9898/`
//! by default (`--http-addr`, or its old name `--metrics-addr`), and prints
//! the address it bound: the status page on `/`, `/metrics`, `/livez`,
//! `/readyz`, `/status` and `/events`. `/readyz` says 200 once the critical
//! `market-data` node runs and is ready (`ReadyWhen::CriticalServices`:
//! `price-poller` fails for good on purpose). The server keeps answering
//! while the fleet drains (`/readyz` is 503 from the first instant of the
//! shutdown), and stops once it has drained.
//!
//! Under systemd (`NOTIFY_SOCKET` set, `deploy/systemd/fleet.service`) it
//! sends `READY=1` at the same moment, its status line, the watchdog's
//! keep-alives and `STOPPING=1`; without `NOTIFY_SOCKET` the notifier does
//! nothing. Under Kubernetes (`deploy/k8s/`) the kubelet probes `/livez` and
//! `/readyz`.
//!
//! # The tree
//!
//! ```text
//! root (OneForOne)
//! ├── market-data *        a nested supervisor: OneForAll, 2 restarts in 10 s
//! │   ├── exchange-link *
//! │   └── market-feed *    after exchange-link
//! ├── orders               a nested supervisor: RestForOne
//! │   ├── order-consumer
//! │   └── risk-engine
//! ├── price-poller
//! └── stubborn-worker
//! ```
//!
//! A nested service is named by its path (`market-data/market-feed`) in the
//! events, the snapshots, the metric labels and `/status`; `*` marks what is
//! critical to its own supervisor.
//!
//! - `market-data`: the node over the exchange session and the feed built on
//!   it. Under `OneForAll`, a failure of either restarts both; its restart
//!   intensity (2 in 10 s) tripping, or either child failing for good, makes
//!   it *escalate*: it stops its children and its run fails
//!   (`NestedError::Escalated`). The root restarts it (a fresh session and
//!   feed) after a backoff, and its circuit breaker opens at the third
//!   failure within 30 s: the node is critical at the root, so its failure
//!   for good drains the fleet and the demo exits 2;
//! - `market-data/exchange-link`: the session; connects, says it is ready,
//!   runs until shutdown. `--kill-dependency-after SECS` makes the exchange
//!   ban the session then, and refuse every handshake from then on: each run
//!   fails for good (`DoNotRestart`), so the node escalates each time;
//! - `market-data/market-feed`: healthy, runs until shutdown, started once
//!   `exchange-link` is ready (`.after(["exchange-link"])`).
//!   `--fail-critical-after SECS` makes each of its runs fail from then on:
//!   the node's restart intensity trips, on each of its runs;
//! - `orders`: the node over the order path, under `RestForOne`: a failure of
//!   `order-consumer` restarts it and `risk-engine`, one of `risk-engine`
//!   restarts it alone;
//! - `orders/order-consumer`: fails three times ("broker unavailable"), then
//!   recovers;
//! - `orders/risk-engine`: loads its limits, then says it is ready; panics
//!   now and then (every other run that gets past its limits), restarted
//!   each time;
//! - `price-poller`: always fails: its circuit breaker trips;
//! - `stubborn-worker`: ignores cancellation, aborted at its stop timeout
//!   (the 2 s shutdown timeout).
//!
//! # What it prints
//!
//! Everything comes from one `Supervisor::subscribe` stream (it covers the
//! whole tree), joined to the snapshots without a gap: a line per lifecycle
//! event (time since start, service path, the change, with the failure or
//! the termination reason: a node's escalation is its failure, `supervisor
//! `market-data` escalated: …`), and a status table of every service, a
//! node's services indented under it, redrawn when something changed (at
//! most once a second, never while nothing happens). With `--chaos`, what
//! the chaos task asked for and what the call returned. At the end: the
//! table, the final metrics, the drain report, and whether the table built
//! from events agrees with the supervisor's own snapshots. The supervisor's
//! per-service logs are off by default (the events say the same);
//! `RUST_LOG=info` shows them.
//!
//! # Chaos
//!
//! With `--chaos`, every 1 to 2 s a task picks a path (a service of the
//! tree other than `market-data/exchange-link`, or the `orders` node) and a
//! control call (stop, restart or remove), from a fixed seed, calls it on
//! the root by path, and prints the call, then its result: `Ok`, or the
//! typed `ControlError` (restarting a service that has terminated, stopping
//! one that was removed, …). What it removed is spawned again 3 s later: a
//! root entry on the root, a nested service on its node's current child
//! supervisor (or not, if the node is not running: then the call's error is
//! printed). It uses the public API only. Stopping or removing a critical
//! service does not shut anything down: only a failure for good does.
//!
//! # Exit codes
//!
//! - 0: the fleet was drained after SIGTERM or Ctrl-C, after `--duration`,
//!   or because a critical service *completed* (`market-data` never does: it
//!   is restarted whenever it returns);
//! - 1: the demo could not run (a bad argument, the HTTP address in use, no
//!   signal handler), or a service was still active after the drain;
//! - 2: the critical `market-data` node failed for good (it escalated until
//!   its circuit breaker opened); the fleet was drained first, and stderr
//!   says ``critical service `market-data` failed: circuit breaker open
//!   after 3 failures (max retries 2); its last error: supervisor
//!   `market-data` escalated: …`` with why it escalated.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::FutureExt as _;
use supervisor_core::{
    BackoffConfig, DoNotRestart, DrainReport, EventKind, LifecycleEvent, LifecycleEvents,
    RecvError, RestartIntensity, RestartPolicy, ServiceContext, ServiceFn, ServiceHandle,
    ServiceLifecycleSnapshot, ServicePhase, ShutdownError, SpawnError, SpawnOptions, Strategy,
    Supervisor, SupervisorConfig, SupervisorSpec, TerminationReason, service_fn,
};
use supervisor_http::systemd::Notifier;
use supervisor_http::{HttpServer, ReadyWhen, SupervisorRoutes, drained};
use supervisor_prometheus::PrometheusSink;
use supervisor_prometheus::prometheus_client::registry::Registry;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::time::Instant;

const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// The node over the market's session and feed (`Strategy::OneForAll`),
/// critical at the root.
const MARKET_DATA: &str = "market-data";

/// The node over the order path (`Strategy::RestForOne`).
const ORDERS: &str = "orders";

/// The root's entries, in the order they are spawned.
const ROOT: [&str; 4] = [MARKET_DATA, ORDERS, "price-poller", "stubborn-worker"];

/// What the chaos task picks from, by path: every service but
/// `market-data/exchange-link` (what the feed depends on), and the
/// `orders` node.
const CHAOS_TARGETS: [&str; 6] = [
    "market-data/market-feed",
    ORDERS,
    "orders/order-consumer",
    "orders/risk-engine",
    "price-poller",
    "stubborn-worker",
];

/// The critical services, by path: `market-data` at the root, and
/// `exchange-link` and `market-feed` inside it (the failure for good of
/// either makes the node escalate).
const CRITICAL: [&str; 3] = [
    MARKET_DATA,
    "market-data/exchange-link",
    "market-data/market-feed",
];

/// The exit code when the critical service failed for good.
const CRITICAL_FAILED: u8 = 2;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = parse_args()?;

    // Metrics: a Prometheus registry fed by the supervisor's events, served on
    // `/metrics` with the rest of the HTTP surface. Swapping the back-end is
    // the one `with_metrics_sink` line.
    let mut registry = Registry::default();
    let sink = Arc::new(PrometheusSink::register(&mut registry));
    // The supervisor's clock (every event's `at`) starts with it, within
    // microseconds of this one: the logs and the demo's lines share it.
    let clock = Clock(Instant::now());
    let supervisor = Supervisor::new(
        SupervisorConfig::default()
            .with_shutdown_timeout(SHUTDOWN_TIMEOUT)
            .with_metrics_sink(sink),
    );

    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,supervisor_core::runner=error".into()),
        )
        .with_target(false)
        .with_timer(clock)
        .with_ansi(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
    // One log line per panic instead of the default hook's backtrace: the
    // supervisor catches the panic and reports its message with the failure.
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(ToString::to_string).unwrap_or_default();
        tracing::error!(%location, "a service panicked");
    }));

    // Subscribe, then read the snapshots: the view misses nothing and repeats
    // nothing (here before the first spawn, so it starts empty).
    let events = supervisor.subscribe();
    let table = LiveTable::join(supervisor.lifecycle_snapshots());

    // The status page, the probes, the status, the events and the metrics,
    // until the fleet has drained.
    let server = HttpServer::bind(args.http_addr)
        .await
        .with_context(|| format!("cannot serve HTTP on {}", args.http_addr))?;
    let addr = server.local_addr();
    println!(
        "serving the status page on http://{addr}/ (probes /livez /readyz, JSON /status, events /events)"
    );
    println!("serving metrics on http://{addr}/metrics");
    // `price-poller` is meant to fail for good, so "every service ready"
    // never holds: the process is ready (for a kubelet's `/readyz`, for
    // systemd's `READY=1`) once its critical service is.
    let routes = SupervisorRoutes::new(supervisor.clone())
        .with_prometheus(Arc::new(registry))
        .with_ready_when(ReadyWhen::CriticalServices);
    let http_task = tokio::spawn(server.run(routes, drained(&supervisor)));
    // Under systemd (`Type=notify`, deploy/systemd/): READY=1, STATUS=,
    // WATCHDOG=1, STOPPING=1. Without `NOTIFY_SOCKET` it returns at once.
    let notifier = Notifier::new(&supervisor)
        .with_ready_when(ReadyWhen::CriticalServices)
        .spawn();

    let (notes, notes_received) = tokio::sync::mpsc::unbounded_channel();
    let (stop_view, view_stopped) = stop_signal();
    let view = tokio::spawn(live_view(
        supervisor.clone(),
        table,
        events,
        notes_received,
        view_stopped,
    ));

    let started = Instant::now();
    let fleet = Fleet {
        critical_fails_at: args.fail_critical_after.map(|after| started + after),
        dependency_dies_at: args.kill_dependency_after.map(|after| started + after),
        nodes: Arc::default(),
    };
    for name in ROOT {
        fleet.spawn_top(&supervisor, name)?;
    }
    let chaos = args
        .chaos
        .then(|| tokio::spawn(chaos(supervisor.clone(), fleet, clock, notes)));
    if let Some(duration) = args.duration {
        let supervisor = supervisor.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            tracing::info!(?duration, "demo duration elapsed");
            supervisor.trigger_shutdown();
        });
    }

    let (report, critical_failure) = match supervisor.run_until_shutdown().await {
        Ok(report) => (report, None),
        Err(ShutdownError::CriticalFailed {
            service,
            reason,
            report,
        }) => {
            // Why the node failed for good: its breaker; why it failed each
            // time: its last escalation.
            let last_error = supervisor
                .service_lifecycle(&service)
                .and_then(|last| last.last_error);
            let mut failure = format!("critical service `{service}` failed: {reason}");
            if let Some(error) = last_error {
                let _ = write!(failure, "; its last error: {error}");
            }
            (report, Some(failure))
        }
        Err(error) => return Err(error).context("cannot install the signal handlers"),
    };
    // Every service has terminated: the chaos task's last call has returned,
    // and every event is in the view's channel.
    if let Some(chaos) = chaos {
        chaos.await.context("the chaos task panicked")?;
    }
    let _ = stop_view.send(());
    let table = view.await.context("the live view panicked")?;
    // The server and the notifier stop by themselves once the fleet has
    // drained.
    let _ = http_task.await;
    notifier.await.context("the systemd notifier panicked")?;

    table.print();
    let active = print_summary(&supervisor, &table, &report);
    if active != 0 {
        bail!("{active} services still active after drain");
    }
    if let Some(failure) = critical_failure {
        eprintln!("{failure}: exiting with status {CRITICAL_FAILED}");
        return Ok(ExitCode::from(CRITICAL_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints whether the live `table` agrees with the supervisor, the final
/// metrics and the drain `report`; returns how many services are still
/// active.
fn print_summary(supervisor: &Supervisor, table: &LiveTable, report: &DrainReport) -> u64 {
    match table
        .disagreements(&supervisor.lifecycle_snapshots())
        .as_slice()
    {
        [] => println!("the live view agrees with the supervisor's snapshots"),
        differences => println!(
            "the live view DISAGREES with the supervisor's snapshots:\n  {}",
            differences.join("\n  ")
        ),
    }
    let m = supervisor.metrics().snapshot();
    println!(
        "final metrics: spawned_total={} terminated_total={} active_services={} restarts_total={} circuit_breaker_trips={} failures_error={} failures_panic={} failures_timeout={} failures_hung={}",
        m.spawned_total,
        m.terminated_total,
        m.active_services,
        m.restarts_total,
        m.circuit_breaker_trips,
        m.failures.error,
        m.failures.panic,
        m.failures.timeout,
        m.failures.hung,
    );
    let cause = report
        .cause
        .as_ref()
        .map_or_else(|| "every service ended".to_owned(), ToString::to_string);
    println!(
        "drained in {:.2}s (cause: {cause})",
        report.took.as_secs_f64()
    );
    println!("aborted at the shutdown timeout: {:?}", report.aborted);
    m.active_services
}

struct Args {
    duration: Option<Duration>,
    http_addr: SocketAddr,
    chaos: bool,
    fail_critical_after: Option<Duration>,
    kill_dependency_after: Option<Duration>,
}

const USAGE: &str = "usage: fleet [--duration SECS] [--http-addr ADDR] [--chaos] \
     [--fail-critical-after SECS] [--kill-dependency-after SECS]";

fn parse_args() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        duration: None,
        http_addr: supervisor_http::DEFAULT_ADDR,
        chaos: false,
        fail_critical_after: None,
        kill_dependency_after: None,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--duration" => parsed.duration = Some(seconds(&arg, args.next())?),
            "--fail-critical-after" => {
                parsed.fail_critical_after = Some(seconds(&arg, args.next())?)
            }
            "--kill-dependency-after" => {
                parsed.kill_dependency_after = Some(seconds(&arg, args.next())?)
            }
            "--chaos" => parsed.chaos = true,
            // `--metrics-addr`: its name before the server served more than metrics.
            "--http-addr" | "--metrics-addr" => {
                parsed.http_addr = args
                    .next()
                    .with_context(|| format!("{arg} needs an address such as 127.0.0.1:9898"))?
                    .parse()
                    .with_context(|| format!("{arg} takes an address such as 127.0.0.1:9898"))?;
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}` ({USAGE})"),
        }
    }
    Ok(parsed)
}

/// The value of `flag`: a non-negative number of seconds.
fn seconds(flag: &str, value: Option<String>) -> anyhow::Result<Duration> {
    let secs: f64 = value
        .with_context(|| format!("{flag} needs a number of seconds"))?
        .parse()
        .with_context(|| format!("{flag} takes a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .with_context(|| format!("{flag} must be a non-negative number of seconds"))
}

/// A one-shot stop signal for a task.
fn stop_signal() -> (tokio::sync::oneshot::Sender<()>, impl Future<Output = ()>) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

/// Time since the demo started, on the clock of the events' `at` (the
/// supervisor is created right after it).
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now(self) -> Duration {
        self.0.elapsed()
    }
}

impl tracing_subscriber::fmt::time::FormatTime for Clock {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        w.write_str(&stamp(self.now()))
    }
}

/// A time since the start, as every line of the demo begins.
fn stamp(at: Duration) -> String {
    format!("{:>8.3}s", at.as_secs_f64())
}

/// What spawns the services of the fleet, at the start and again after the
/// chaos task removed one. The two nodes' factories spawn their children
/// through it too, on every run of the node.
#[derive(Clone)]
struct Fleet {
    /// When `--fail-critical-after` makes `market-feed` fail.
    critical_fails_at: Option<Instant>,
    /// When `--kill-dependency-after` makes `exchange-link` fail for good.
    dependency_dies_at: Option<Instant>,
    /// The child supervisor of each node's latest run, as its factory was
    /// given it: where a nested service the chaos task removed is spawned
    /// again.
    nodes: Arc<Mutex<BTreeMap<&'static str, Supervisor>>>,
}

impl Fleet {
    /// Spawns the service at `path` from scratch: on `root`, or on the
    /// child supervisor of its node's current run.
    fn spawn(&self, root: &Supervisor, path: &str) -> Result<ServiceHandle, Refused> {
        let Some((node, leaf)) = path.split_once('/') else {
            return self.spawn_top(root, path).map_err(Refused::from);
        };
        let child = self
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(node)
            .cloned()
            .filter(|child| !child.is_shutting_down())
            .ok_or_else(|| Refused(format!("NodeNotRunning({node:?})")))?;
        self.spawn_child(&child, leaf).map_err(Refused::from)
    }

    /// Spawns the root's entry called `name`: a node or a service.
    fn spawn_top(&self, root: &Supervisor, name: &str) -> Result<ServiceHandle, SpawnError> {
        match name {
            MARKET_DATA => {
                // OneForAll: the feed is useless without the session, and a
                // new session needs a new feed. Two restarts in 10 s, or a
                // critical child failing for good, and it escalates.
                let config = node_config()
                    .with_strategy(Strategy::OneForAll)
                    .with_restart_intensity(RestartIntensity::new(2, Duration::from_secs(10)));
                let spec = self.node(MARKET_DATA, config, ["exchange-link", "market-feed"]);
                // The root restarts the node when it escalates, with a
                // fresh session and feed; at the third escalation within
                // 30 s its breaker opens: it has failed for good, and the
                // fleet is drained (exit 2).
                let options = SpawnOptions::with_backoff(
                    quick(300, 1_000).with_circuit_breaker(2, Duration::from_secs(30)),
                )
                .critical();
                root.spawn_supervisor_with_options(spec, options)
            }
            ORDERS => {
                // RestForOne: the risk engine checks what the consumer
                // takes in; a new consumer needs a new engine, not the
                // other way round.
                let config = node_config().with_strategy(Strategy::RestForOne);
                let spec = self.node(ORDERS, config, ["order-consumer", "risk-engine"]);
                root.spawn_supervisor_with_options(
                    spec,
                    SpawnOptions::with_backoff(quick(300, 2_000)),
                )
            }
            "price-poller" => {
                let poller = service_fn("price-poller", |_ctx: ServiceContext| async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Err::<(), _>(std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "upstream refused the connection",
                    ))
                });
                root.spawn_service_with_options(
                    poller,
                    SpawnOptions::with_backoff(
                        quick(100, 400).with_circuit_breaker(4, Duration::from_secs(30)),
                    ),
                )
            }
            "stubborn-worker" => {
                let worker = service_fn("stubborn-worker", |_ctx: ServiceContext| async move {
                    // Ignores its cancellation token on purpose.
                    loop {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    #[allow(unreachable_code)]
                    anyhow::Ok(())
                });
                root.spawn_service(worker)
            }
            other => unreachable!("`{other}` is not an entry of the root"),
        }
    }

    /// Spawns the service `name` (a name relative to `node`) on a node's
    /// child supervisor.
    fn spawn_child(&self, node: &Supervisor, name: &str) -> Result<ServiceHandle, SpawnError> {
        match name {
            "exchange-link" => {
                let dies_at = self.dependency_dies_at;
                let link = service_fn("exchange-link", move |ctx: ServiceContext| async move {
                    // The handshake; once banned, the exchange refuses it.
                    tokio::select! {
                        () = ctx.cancelled() => return Ok(()),
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                    if dies_at.is_some_and(|at| Instant::now() >= at) {
                        return Err(DoNotRestart::new(
                            "the exchange refused the session: banned",
                        ));
                    }
                    ctx.ready();
                    let banned = async {
                        match dies_at {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        () = ctx.cancelled() => Ok::<_, DoNotRestart>(()),
                        () = banned => Err(DoNotRestart::new("the exchange banned the session")),
                    }
                })
                // Restarted with the feed when the feed fails (OneForAll);
                // a ban is final: `DoNotRestart`, it fails for good.
                .with_restart_policy(RestartPolicy::OnFailure);
                // Critical inside `market-data`, like the feed: without a
                // session the node is useless, and escalates.
                let options = SpawnOptions::default().signals_readiness().critical();
                node.spawn_service_with_options(link, options)
            }
            "market-feed" => {
                let fails_at = self.critical_fails_at;
                let feed = service_fn("market-feed", move |ctx: ServiceContext| async move {
                    let revoked = async {
                        match fails_at {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    };
                    let mut revoked = std::pin::pin!(revoked);
                    let mut ticks = 0_u64;
                    loop {
                        tokio::select! {
                            () = ctx.cancelled() => break,
                            () = &mut revoked => bail!("the exchange revoked the session"),
                            () = tokio::time::sleep(Duration::from_millis(250)) => ticks += 1,
                        }
                    }
                    tracing::info!(ticks, "market-feed closed its connection");
                    Ok(())
                })
                .with_restart_policy(RestartPolicy::Always);
                // Critical inside `market-data`: failing for good (its
                // breaker trips, or `exchange-link` fails for good) makes
                // the node escalate.
                let options = SpawnOptions::with_backoff(
                    quick(200, 2_000).with_circuit_breaker(3, Duration::from_secs(30)),
                )
                .after(["exchange-link"])
                .critical();
                node.spawn_service_with_options(feed, options)
            }
            "order-consumer" => {
                let consumer = numbered("order-consumer", |ctx, attempt| async move {
                    if attempt < 3 {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        bail!("broker unavailable (attempt {})", attempt + 1);
                    }
                    ctx.cancelled().await;
                    Ok(())
                });
                node.spawn_service_with_options(
                    consumer,
                    SpawnOptions::with_backoff(quick(200, 2_000)),
                )
            }
            "risk-engine" => {
                // Counts the runs that got past their limits: every other
                // one panics (restarts caused by `order-consumer` do not
                // count, they never get that far).
                let checked = Arc::new(AtomicU32::new(0));
                let engine = service_fn("risk-engine", move |ctx: ServiceContext| {
                    let checked = Arc::clone(&checked);
                    async move {
                        // Loads its limits table, then takes orders.
                        tokio::select! {
                            () = ctx.cancelled() => return Ok(()),
                            () = tokio::time::sleep(Duration::from_millis(300)) => ctx.ready(),
                        }
                        tokio::select! {
                            () = ctx.cancelled() => return Ok(()),
                            () = tokio::time::sleep(Duration::from_millis(1_200)) => {}
                        }
                        let check = checked.fetch_add(1, Ordering::Relaxed);
                        if check % 2 == 0 {
                            panic!("risk limits table corrupted (check {check})");
                        }
                        ctx.cancelled().await;
                        anyhow::Ok(())
                    }
                })
                .with_restart_policy(RestartPolicy::OnFailure);
                node.spawn_service_with_options(
                    engine,
                    SpawnOptions::with_backoff(quick(300, 3_000)).signals_readiness(),
                )
            }
            other => unreachable!("`{other}` is not a service of a node"),
        }
    }

    /// The node `name`, whose every run spawns `children` in order on its
    /// fresh child supervisor (kept for the chaos task).
    fn node(
        &self,
        name: &'static str,
        config: SupervisorConfig,
        children: [&'static str; 2],
    ) -> SupervisorSpec {
        let fleet = self.clone();
        SupervisorSpec::new(name, config, move |node: &Supervisor| {
            fleet.remember(name, node);
            for child in children {
                fleet.spawn_child(node, child)?;
            }
            Ok(())
        })
    }

    /// Keeps `child`, the child supervisor of `node`'s new run.
    fn remember(&self, node: &'static str, child: &Supervisor) {
        self.nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(node, child.clone());
    }
}

/// Why [`Fleet::spawn`] did not spawn: the [`SpawnError`], or the node not
/// running; shown as the error's `Debug`.
struct Refused(String);

impl From<SpawnError> for Refused {
    fn from(error: SpawnError) -> Self {
        Self(format!("{error:?}"))
    }
}

impl std::fmt::Debug for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The configuration of a node's child supervisor: the fleet's shutdown
/// timeout (its metrics sink is the root's, shared).
fn node_config() -> SupervisorConfig {
    SupervisorConfig::default().with_shutdown_timeout(SHUTDOWN_TIMEOUT)
}

/// A backoff from `base_ms` up to `max_ms`.
fn quick(base_ms: u64, max_ms: u64) -> BackoffConfig {
    BackoffConfig::new(
        Duration::from_millis(base_ms),
        Duration::from_millis(max_ms),
    )
}

/// `service_fn`, where each run also gets its number: 0 for the first run
/// of this spawn.
fn numbered<F, Fut>(
    name: &'static str,
    run: F,
) -> ServiceFn<impl Fn(ServiceContext) -> Fut + Send + Sync + 'static>
where
    F: Fn(ServiceContext, u32) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let runs = AtomicU32::new(0);
    service_fn(name, move |ctx: ServiceContext| {
        run(ctx, runs.fetch_add(1, Ordering::Relaxed))
    })
}

/// The least time between two tables.
const REDRAW_EVERY: Duration = Duration::from_secs(1);

/// How long a change waits for the ones that come with it (a stop is two
/// transitions) before the table is drawn.
const SETTLE: Duration = Duration::from_millis(200);

/// A line of the chaos task for the view, and how the view says it printed
/// it.
type Note = (String, tokio::sync::oneshot::Sender<()>);

/// The live view: prints each event as it comes, and each of the chaos
/// task's `notes` after the events that came before it; redraws `table`
/// after changes, until `stopped`. Then reads what is still queued, and
/// returns the table.
async fn live_view(
    supervisor: Supervisor,
    mut table: LiveTable,
    mut events: LifecycleEvents,
    mut notes: UnboundedReceiver<Note>,
    stopped: impl Future<Output = ()>,
) -> LiveTable {
    let mut stopped = std::pin::pin!(stopped);
    let mut drawn_at: Option<Instant> = None;
    let mut changed_at: Option<Instant> = None;
    let mut more_notes = true;
    loop {
        let draw_at = changed_at.map(|changed| {
            let settled = changed + SETTLE;
            drawn_at.map_or(settled, |drawn| settled.max(drawn + REDRAW_EVERY))
        });
        tokio::select! {
            // Events first: a note comes after the events its call caused.
            biased;
            received = events.recv() => {
                if !table.receive(received, &supervisor) {
                    break;
                }
                if table.changed {
                    table.changed = false;
                    changed_at.get_or_insert_with(Instant::now);
                }
            }
            note = notes.recv(), if more_notes => match note {
                Some((line, printed)) => {
                    println!("{line}");
                    let _ = printed.send(());
                }
                None => more_notes = false,
            },
            () = tokio::time::sleep_until(draw_at.unwrap_or_else(Instant::now)), if draw_at.is_some() => {
                table.print();
                drawn_at = Some(Instant::now());
                changed_at = None;
            }
            () = &mut stopped => break,
        }
    }
    // Without the cooperative budget, a queued event is never reported as
    // pending: this reads exactly what is queued.
    while let Some(received) = tokio::task::unconstrained(events.recv()).now_or_never() {
        if !table.receive(received, &supervisor) {
            break;
        }
    }
    while let Ok((line, printed)) = notes.try_recv() {
        println!("{line}");
        let _ = printed.send(());
    }
    table
}

/// The status table, built from lifecycle events.
struct LiveTable {
    rows: BTreeMap<Arc<str>, Row>,
    /// An event changed the table since this was last cleared.
    changed: bool,
}

/// One service, as the events told it.
struct Row {
    phase: ServicePhase,
    ready: bool,
    starts: u64,
    failures: u64,
    last_error: Option<Arc<str>>,
    reason: Option<TerminationReason>,
    /// When the latest change happened.
    since: Duration,
    /// The number of the latest change applied.
    seq: u64,
}

impl LiveTable {
    /// The table as of `snapshots`, taken after subscribing.
    fn join(snapshots: Vec<ServiceLifecycleSnapshot>) -> Self {
        let rows = snapshots
            .into_iter()
            .map(|s| {
                let row = Row {
                    phase: s.phase,
                    ready: s.ready,
                    starts: s.start_count,
                    failures: s.failures.total(),
                    last_error: s.last_error.map(Arc::from),
                    reason: s.termination_reason,
                    since: s.last_transition_at,
                    seq: s.seq,
                };
                (Arc::from(s.service_name), row)
            })
            .collect();
        Self {
            rows,
            changed: true,
        }
    }

    /// Handles what the subscription returned: applies and prints an event,
    /// joins again after a lag. Returns `false` once the supervisor is gone.
    fn receive(
        &mut self,
        received: Result<LifecycleEvent, RecvError>,
        supervisor: &Supervisor,
    ) -> bool {
        match received {
            Ok(event) => {
                if self.apply(&event) {
                    println!(
                        "{}  {:<26} {}",
                        stamp(event.at),
                        event.service,
                        describe(&event)
                    );
                    self.changed = true;
                }
                true
            }
            Err(RecvError::Lagged { missed }) => {
                println!("live view: missed {missed} events, joining again from the snapshots");
                *self = Self::join(supervisor.lifecycle_snapshots());
                true
            }
            Err(_closed) => false,
        }
    }

    /// Applies `event` unless the table includes it already (its service's
    /// row has a change as recent); returns whether it did.
    fn apply(&mut self, event: &LifecycleEvent) -> bool {
        let known = self.rows.get_mut(&event.service);
        if known.as_ref().is_some_and(|row| row.seq >= event.seq) {
            return false;
        }
        match (event.kind, known) {
            (EventKind::Spawned, _) => {
                let row = Row {
                    phase: event.to,
                    ready: event.ready,
                    starts: event.generation,
                    failures: 0,
                    last_error: None,
                    reason: None,
                    since: event.at,
                    seq: event.seq,
                };
                self.rows.insert(Arc::clone(&event.service), row);
            }
            (EventKind::Removed, _) => {
                self.rows.remove(&event.service);
            }
            // A service the table does not know: one spawned and removed
            // before the snapshots were taken (an old incarnation).
            (_, None) => return false,
            (_, Some(row)) => {
                row.phase = event.to;
                row.ready = event.ready;
                row.starts = event.generation;
                row.since = event.at;
                row.seq = event.seq;
                if event.failure.is_some() {
                    row.failures += 1;
                    row.last_error.clone_from(&event.error);
                }
                if let Some(reason) = &event.reason {
                    row.reason = Some(reason.clone());
                }
            }
        }
        true
    }

    fn print(&self) {
        let mut out = format!(
            "\n  {:<30} {:<12} {:<5} {:>4} {:>5} {:>8}   LAST ERROR / REASON\n",
            "SERVICE (* critical)", "PHASE", "READY", "RUN", "FAILS", "SINCE"
        );
        // In path order, a node's services right under it, indented.
        for (name, row) in &self.rows {
            let depth = name.matches('/').count();
            let critical = if CRITICAL.contains(&&**name) {
                " *"
            } else {
                ""
            };
            let name = format!("{:indent$}{name}{critical}", "", indent = 2 * depth);
            let detail = row
                .reason
                .as_ref()
                .map(ToString::to_string)
                .or_else(|| row.last_error.as_deref().map(str::to_owned))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {name:<30} {:<12} {:<5} {:>4} {:>5} {:>8.1}s   {}",
                row.phase.to_string(),
                if row.ready { "yes" } else { "no" },
                row.starts,
                row.failures,
                row.since.as_secs_f64(),
                truncate(&detail, 60),
            );
        }
        println!("{out}");
    }

    /// Where the table differs from the supervisor's `snapshots`.
    fn disagreements(&self, snapshots: &[ServiceLifecycleSnapshot]) -> Vec<String> {
        let mut found = Vec::new();
        for s in snapshots {
            let Some(row) = self.rows.get(s.service_name.as_str()) else {
                found.push(format!("{}: no row", s.service_name));
                continue;
            };
            let ours = (
                row.phase,
                row.ready,
                row.starts,
                row.failures,
                row.reason.as_ref(),
            );
            let theirs = (
                s.phase,
                s.ready,
                s.start_count,
                s.failures.total(),
                s.termination_reason.as_ref(),
            );
            if ours != theirs {
                found.push(format!(
                    "{}: events say {ours:?}, the snapshot {theirs:?}",
                    s.service_name
                ));
            }
        }
        for name in self.rows.keys() {
            if !snapshots.iter().any(|s| *s.service_name == **name) {
                found.push(format!("{name}: a row, but no such service"));
            }
        }
        found
    }
}

/// One event, in words: `running → backing off (error: …)`.
fn describe(event: &LifecycleEvent) -> String {
    match event.kind {
        EventKind::Transition => {
            let mut text = format!("{} → {}", event.from, event.to);
            let reason = event.reason.as_ref().map(ToString::to_string);
            if let (Some(kind), Some(error)) = (event.failure, &event.error) {
                // Said once where the reason quotes the error (a panic, an
                // abort, an unrecoverable error).
                if !reason
                    .as_ref()
                    .is_some_and(|reason| reason.contains(&**error))
                {
                    let _ = write!(text, " ({kind}: {error})");
                }
            }
            if event.to == ServicePhase::Running {
                let ready = if event.ready { ", ready" } else { "" };
                let _ = write!(text, " (run {}{ready})", event.generation);
            }
            if let Some(reason) = reason {
                let _ = write!(text, ": {reason}");
            }
            text
        }
        other => other.as_str().to_owned(),
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// How long a service the chaos task removed stays away.
const RESPAWN_AFTER: Duration = Duration::from_secs(3);

/// The chaos task: every 1 to 2 s, a control call on a service of the
/// fleet, picked from a fixed seed; spawns again what it removed, after
/// [`RESPAWN_AFTER`]. Its lines are notes for the view, each printed before
/// the task goes on: a call is announced before the events it causes, and
/// its result comes once the events of what it did are out. Returns once
/// shutdown has begun.
async fn chaos(supervisor: Supervisor, fleet: Fleet, clock: Clock, notes: UnboundedSender<Note>) {
    let supervisor = &supervisor;
    let note = |text: String| {
        let (printed, was_printed) = tokio::sync::oneshot::channel();
        let _ = notes.send((format!("{}  chaos: {text}", stamp(clock.now())), printed));
        async move {
            // An error means the view is gone: nothing will be printed.
            let _ = was_printed.await;
        }
    };
    // Its own subscription, to know when the events of a call are out.
    let mut events = supervisor.subscribe();
    let mut random = SplitMix64(0x00c0_ffee);
    let mut removed: Vec<(&str, Instant)> = Vec::new();
    loop {
        let pause = Duration::from_millis(1_000 + random.below(1_000));
        tokio::select! {
            () = supervisor.cancel_token().cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        let now = Instant::now();
        for &(name, _) in removed
            .iter()
            .filter(|(_, at)| now.duration_since(*at) >= RESPAWN_AFTER)
        {
            let (result, seq) = outcome(fleet.spawn(supervisor, name), |handle| {
                (String::new(), Some(handle.snapshot().seq))
            });
            caught_up(&mut events, name, seq).await;
            note(format!("spawn {name} again → {result}")).await;
        }
        removed.retain(|(_, at)| now.duration_since(*at) < RESPAWN_AFTER);

        let name = CHAOS_TARGETS[random.below(CHAOS_TARGETS.len() as u64) as usize];
        let action = ["stop", "restart", "remove"][random.below(3) as usize];
        note(format!("{action} {name}")).await;
        let (result, seq) = match action {
            "stop" => outcome(supervisor.stop_service(name).await, |last| {
                let text = format!(" (terminated: {})", reason_of(&last));
                (text, Some(last.seq))
            }),
            "restart" => outcome(supervisor.restart_service(name).await, |()| {
                let seq = supervisor.service_lifecycle(name).map(|now| now.seq);
                (String::new(), seq)
            }),
            _ => {
                let result = supervisor.remove_service(name).await;
                if result.is_ok() {
                    removed.push((name, Instant::now()));
                }
                outcome(result, |last| {
                    let text = format!(" (terminated: {}; forgotten)", reason_of(&last));
                    (text, Some(last.seq))
                })
            }
        };
        caught_up(&mut events, name, seq).await;
        note(format!("{action} {name} → {result}")).await;
    }
}

/// `Ok` and what `ok` says of the value, or the typed error; and the `seq`
/// of the change the call made, if `ok` knows it.
fn outcome<T, E: std::fmt::Debug>(
    result: Result<T, E>,
    ok: impl FnOnce(T) -> (String, Option<u64>),
) -> (String, Option<u64>) {
    match result {
        Ok(value) => {
            let (text, seq) = ok(value);
            (format!("Ok{text}"), seq)
        }
        Err(error) => (format!("Err({error:?})"), None),
    }
}

/// Waits until `events` has delivered the change `seq` of `service`, so the
/// view has it too; a second at the most.
async fn caught_up(events: &mut LifecycleEvents, service: &str, seq: Option<u64>) {
    let Some(seq) = seq else {
        return;
    };
    let delivered = async {
        loop {
            match events.recv().await {
                Ok(event) if *event.service == *service && event.seq >= seq => return,
                Err(RecvError::Closed) => return,
                // Older events, or a lag (the change is then among the ones
                // still to come).
                _ => {}
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), delivered).await;
}

/// Why a service's final snapshot says it terminated.
fn reason_of(last: &ServiceLifecycleSnapshot) -> String {
    last.termination_reason
        .as_ref()
        .map_or_else(|| last.phase.to_string(), ToString::to_string)
}

/// A small deterministic generator (SplitMix64): the chaos is the same on
/// every run, only its timing differs.
struct SplitMix64(u64);

impl SplitMix64 {
    /// A number in `0..bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % bound
    }
}
