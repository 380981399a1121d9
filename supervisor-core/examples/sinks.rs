//! The same supervisor with four metrics back-ends: swapping is one line.
//!
//! ```text
//! cargo run --example sinks -- none        # built-in counters only
//! cargo run --example sinks -- prometheus  # prometheus-client registry, printed as OpenMetrics
//! cargo run --example sinks -- facade      # the `metrics` facade (any recorder: StatsD, Datadog, …)
//! cargo run --example sinks -- custom      # a 25-line custom sink that logs every event
//! ```

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use supervisor_core::{
    BackoffConfig, FailureKind, MetricsSink, RestartPolicy, ServiceContext, ServicePhase,
    SpawnOptions, Supervisor, SupervisorConfig, TerminationReason, service_fn,
};
use supervisor_metrics_facade::FacadeSink;
use supervisor_prometheus::prometheus_client::registry::Registry;
use supervisor_prometheus::{PrometheusSink, render};

/// A complete custom sink: print every lifecycle event. Its per-service
/// handle, resolved once at spawn, is the service's name.
#[derive(Debug)]
struct PrintSink;

impl MetricsSink for PrintSink {
    type Handle = Arc<str>;

    fn resolve(&self, service: &str) -> Arc<str> {
        Arc::from(service)
    }
    fn service_started(&self, service: &Arc<str>, start_count: u64) {
        println!("[custom] {service} started (start #{start_count})");
    }
    fn phase_changed(&self, service: &Arc<str>, from: ServicePhase, to: ServicePhase) {
        println!("[custom] {service}: {from} -> {to}");
    }
    fn service_failed(&self, service: &Arc<str>, kind: FailureKind) {
        println!("[custom] {service} failed ({kind})");
    }
    fn backoff_scheduled(&self, service: &Arc<str>, delay: Duration) {
        println!("[custom] {service} restarts in {delay:?}");
    }
    fn service_terminated(&self, service: &Arc<str>, reason: &TerminationReason, uptime: Duration) {
        println!("[custom] {service} terminated after {uptime:?}: {reason}");
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let choice = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "custom".to_owned());
    let mut registry = Registry::default();

    let config = SupervisorConfig::default().without_signal_handler();
    // The one line that changes from one back-end to the next:
    let config = match choice.as_str() {
        "none" => config,
        "prometheus" => config.with_metrics_sink(Arc::new(PrometheusSink::register(&mut registry))),
        "facade" => config.with_metrics_sink(Arc::new(FacadeSink::new())),
        "custom" => config.with_metrics_sink(Arc::new(PrintSink)),
        other => bail!("unknown sink `{other}`: none | prometheus | facade | custom"),
    };

    let supervisor = Supervisor::new(config);
    run_small_fleet(&supervisor).await?;

    println!("built-in counters: {:?}", supervisor.metrics().snapshot());
    if choice == "prometheus" {
        println!("{}", render(&registry)?);
    }
    if choice == "facade" {
        println!(
            "(the facade reported to the installed `metrics` recorder; none is installed here)"
        );
    }
    Ok(())
}

async fn run_small_fleet(supervisor: &Supervisor) -> anyhow::Result<()> {
    let fails = Arc::new(std::sync::atomic::AtomicU32::new(0));
    supervisor.spawn_service_with_options(
        service_fn("flaky", move |ctx: ServiceContext| {
            let fails = Arc::clone(&fails);
            async move {
                if fails.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 2 {
                    bail!("connection refused");
                }
                ctx.cancelled().await;
                Ok(())
            }
        })
        .with_restart_policy(RestartPolicy::OnFailure),
        SpawnOptions::with_backoff(BackoffConfig::new(
            Duration::from_millis(10),
            Duration::from_millis(100),
        )),
    )?;
    supervisor.spawn_service(service_fn("job", |_ctx: ServiceContext| async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        anyhow::Ok(())
    }))?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    supervisor.trigger_shutdown();
    supervisor.wait_for_drain().await;
    Ok(())
}
