//! The demo fleet: five services with different temperaments, supervised for
//! real until Ctrl-C, SIGTERM or `--duration SECS`.
//!
//! ```text
//! cargo run --example fleet                 # until Ctrl-C / SIGTERM
//! cargo run --example fleet -- --duration 8 # stops by itself after 8 s
//! cargo run --example fleet -- --metrics-addr 127.0.0.1:0   # any free port
//! ```
//!
//! It serves Prometheus metrics on `http://127.0.0.1:9898/metrics` by default
//! and prints the address it bound.
//!
//! - `market-feed`: healthy, runs until shutdown;
//! - `order-consumer`: fails three times ("broker unavailable"), then recovers;
//! - `price-poller`: always fails: its circuit breaker trips;
//! - `risk-engine`: panics now and then, restarted each time;
//! - `stubborn-worker`: ignores cancellation, aborted at the shutdown timeout.
//!
//! Lifecycle transitions are logged as they happen; a status table of every
//! service is printed each second; the final metrics are printed at the end.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use supervisor_core::{
    BackoffConfig, RestartPolicy, ServiceContext, SpawnOptions, Supervisor, SupervisorConfig,
    service_fn,
};
use supervisor_prometheus::prometheus_client::registry::Registry;
use supervisor_prometheus::{MetricsServer, PrometheusSink};

const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .init();

    // One log line per panic instead of the default hook's backtrace: the
    // supervisor catches the panic and logs its message with the failure.
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(ToString::to_string).unwrap_or_default();
        tracing::error!(%location, "a service panicked");
    }));

    let args = parse_args()?;

    // Metrics: a Prometheus registry fed by the supervisor's events, served on
    // `/metrics`. Swapping the back-end is the one `with_metrics_sink` line.
    let mut registry = Registry::default();
    let sink = Arc::new(PrometheusSink::register(&mut registry));
    let server = MetricsServer::bind(args.metrics_addr, Arc::new(registry))
        .await
        .with_context(|| format!("cannot serve metrics on {}", args.metrics_addr))?;
    println!("serving metrics on http://{}/metrics", server.local_addr());
    let (stop_metrics, metrics_stopped) = stop_signal();
    let metrics_task = tokio::spawn(server.run(metrics_stopped));

    let supervisor = Supervisor::new(
        SupervisorConfig::default()
            .with_shutdown_timeout(SHUTDOWN_TIMEOUT)
            .with_metrics_sink(sink),
    );
    spawn_fleet(&supervisor)?;
    let duration = args.duration;

    let status = tokio::spawn(print_status_every_second(supervisor.clone()));
    if let Some(duration) = duration {
        let supervisor = supervisor.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            tracing::info!(?duration, "demo duration elapsed");
            supervisor.trigger_shutdown();
        });
    }

    let report = supervisor
        .run_until_shutdown()
        .await
        .context("cannot install the signal handlers")?;
    status.abort();
    let _ = stop_metrics.send(());
    let _ = metrics_task.await;

    print_table(&supervisor);
    let m = supervisor.metrics().snapshot();
    println!(
        "final metrics: spawned_total={} terminated_total={} active_services={} restarts_total={} circuit_breaker_trips={} failures_error={} failures_panic={} failures_timeout={}",
        m.spawned_total,
        m.terminated_total,
        m.active_services,
        m.restarts_total,
        m.circuit_breaker_trips,
        m.failures.error,
        m.failures.panic,
        m.failures.timeout,
    );
    println!("aborted at the shutdown timeout: {:?}", report.aborted);
    if m.active_services != 0 {
        bail!("{} services still active after drain", m.active_services);
    }
    Ok(())
}

struct Args {
    duration: Option<Duration>,
    metrics_addr: SocketAddr,
}

const USAGE: &str = "usage: fleet [--duration SECS] [--metrics-addr ADDR]";

fn parse_args() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        duration: None,
        metrics_addr: supervisor_prometheus::DEFAULT_ADDR,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--duration" => {
                let secs: f64 = args
                    .next()
                    .context("--duration needs a number of seconds")?
                    .parse()
                    .context("--duration takes a number of seconds")?;
                parsed.duration = Some(
                    Duration::try_from_secs_f64(secs)
                        .context("--duration must be a non-negative number of seconds")?,
                );
            }
            "--metrics-addr" => {
                parsed.metrics_addr = args
                    .next()
                    .context("--metrics-addr needs an address such as 127.0.0.1:9898")?
                    .parse()
                    .context("--metrics-addr takes an address such as 127.0.0.1:9898")?;
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

/// A one-shot stop signal for the metrics server.
fn stop_signal() -> (tokio::sync::oneshot::Sender<()>, impl Future<Output = ()>) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

fn spawn_fleet(supervisor: &Supervisor) -> anyhow::Result<()> {
    let quick = |base_ms: u64, max_ms: u64| {
        BackoffConfig::new(
            Duration::from_millis(base_ms),
            Duration::from_millis(max_ms),
        )
    };

    supervisor.spawn_service(
        service_fn("market-feed", |ctx: ServiceContext| async move {
            let mut ticks = 0_u64;
            loop {
                tokio::select! {
                    () = ctx.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(250)) => ticks += 1,
                }
            }
            tracing::info!(ticks, "market-feed closed its connection");
            anyhow::Ok(())
        })
        .with_restart_policy(RestartPolicy::Always),
    )?;

    let attempts = Arc::new(AtomicU32::new(0));
    supervisor.spawn_service_with_options(
        service_fn("order-consumer", move |ctx: ServiceContext| {
            let attempts = Arc::clone(&attempts);
            async move {
                let attempt = attempts.fetch_add(1, Ordering::Relaxed);
                if attempt < 3 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    bail!("broker unavailable (attempt {})", attempt + 1);
                }
                ctx.cancelled().await;
                Ok(())
            }
        }),
        SpawnOptions::with_backoff(quick(200, 2_000)),
    )?;

    supervisor.spawn_service_with_options(
        service_fn("price-poller", |_ctx: ServiceContext| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err::<(), _>(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "upstream refused the connection",
            ))
        }),
        SpawnOptions::with_backoff(
            quick(100, 400).with_circuit_breaker(4, Duration::from_secs(30)),
        ),
    )?;

    let runs = Arc::new(AtomicU32::new(0));
    supervisor.spawn_service_with_options(
        service_fn("risk-engine", move |ctx: ServiceContext| {
            let runs = Arc::clone(&runs);
            async move {
                let run = runs.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    () = ctx.cancelled() => return anyhow::Ok(()),
                    () = tokio::time::sleep(Duration::from_millis(1_500)) => {}
                }
                if run % 2 == 0 {
                    panic!("risk limits table corrupted (run {run})");
                }
                ctx.cancelled().await;
                Ok(())
            }
        })
        .with_restart_policy(RestartPolicy::OnFailure),
        SpawnOptions::with_backoff(quick(300, 3_000)),
    )?;

    supervisor.spawn_service(service_fn(
        "stubborn-worker",
        |_ctx: ServiceContext| async move {
            // Ignores its cancellation token on purpose.
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            #[allow(unreachable_code)]
            anyhow::Ok(())
        },
    ))?;
    Ok(())
}

async fn print_status_every_second(supervisor: Supervisor) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        print_table(&supervisor);
    }
}

fn print_table(supervisor: &Supervisor) {
    let mut out = String::from(
        "\n  SERVICE          PHASE        STARTS  FAILS  UPTIME    LAST ERROR / REASON\n",
    );
    for s in supervisor.lifecycle_snapshots() {
        let detail = s
            .termination_reason
            .as_ref()
            .map(ToString::to_string)
            .or_else(|| s.last_error.clone())
            .unwrap_or_default();
        out.push_str(&format!(
            "  {:<16} {:<12} {:>6}  {:>5}  {:>6.1}s   {}\n",
            s.service_name,
            s.phase.to_string(),
            s.start_count,
            s.failures.total(),
            s.cumulative_running_time.as_secs_f64(),
            truncate(&detail, 60),
        ));
    }
    println!("{out}");
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
