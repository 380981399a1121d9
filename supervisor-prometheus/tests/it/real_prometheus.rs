//! A real Prometheus server scrapes the `/metrics` server while a sink
//! updates the registry, and its query API returns the values.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use supervisor_metrics::{FailureKind, MetricsSink, ServicePhase};
use supervisor_prometheus::{MetricsServer, PrometheusSink};
use tests::prometheus::{PrometheusServer, ScrapeConfig, Tool};
use tests::sink::{ByName, WEIRD_SERVICE, WEIRD_SERVICE_ESCAPED};
use tokio::sync::oneshot;

/// The longest the test waits for a value to show up in Prometheus.
const PATIENCE: Duration = Duration::from_secs(30);

/// A service that keeps failing and restarting, every 100 ms, for at most a
/// minute.
async fn flaky_service(sink: Arc<PrometheusSink>) {
    let sink = ByName::new(&*sink);
    sink.service_spawned("flaky");
    sink.service_started("flaky", 1);
    sink.phase_changed("flaky", ServicePhase::Starting, ServicePhase::Running);
    for start in 2..=600 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        sink.service_failed("flaky", FailureKind::Error);
        sink.phase_changed("flaky", ServicePhase::Running, ServicePhase::BackingOff);
        sink.backoff_scheduled("flaky", Duration::from_millis(100));
        sink.phase_changed("flaky", ServicePhase::BackingOff, ServicePhase::Restarting);
        sink.service_started("flaky", start);
        sink.phase_changed("flaky", ServicePhase::Restarting, ServicePhase::Running);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_and_queries_the_live_registry() -> anyhow::Result<()> {
    let Some(binary) = Tool::Prometheus.require()? else {
        return Ok(());
    };
    let mut registry = Registry::default();
    let sink = Arc::new(PrometheusSink::register(&mut registry));
    let weird = sink.resolve(WEIRD_SERVICE);
    sink.service_spawned(&weird);
    let server =
        MetricsServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), Arc::new(registry)).await?;
    let target = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let feeding = tokio::spawn(flaky_service(Arc::clone(&sink)));

    let prometheus = PrometheusServer::start(&binary, &ScrapeConfig::new([target])).await?;
    let outcome = check_queries(&prometheus).await;
    let log = prometheus.log();
    drop(prometheus);
    feeding.abort();
    let _ = stop.send(());
    serving.await?;
    outcome.map_err(|error| error.context(format!("prometheus log:\n{log}")))
}

async fn check_queries(prometheus: &PrometheusServer) -> anyhow::Result<()> {
    let restarts = prometheus
        .wait_for(
            r#"supervisor_restarts_total{service="flaky"}"#,
            PATIENCE,
            |samples| samples.iter().any(|sample| sample.value > 0.0),
        )
        .await?;
    assert_eq!(restarts.len(), 1, "{restarts:?}");
    assert_eq!(
        restarts[0].labels.get("job").map(String::as_str),
        Some("supervisor")
    );

    // The OpenMetrics exposition parsed: the target is up.
    let up = prometheus.query(r#"up{job="supervisor"}"#).await?;
    assert_eq!(
        up.iter().map(|sample| sample.value).collect::<Vec<_>>(),
        [1.0]
    );

    // Exactly one phase of `flaky` is current in the scraped data.
    let phases = prometheus
        .query(r#"sum(supervisor_service_phase{service="flaky"})"#)
        .await?;
    assert_eq!(
        phases.iter().map(|sample| sample.value).collect::<Vec<_>>(),
        [1.0]
    );

    // An escaped label value round-trips: PromQL strings use the same escapes.
    let weird = prometheus
        .query(&format!(
            r#"supervisor_service_phase{{service="{WEIRD_SERVICE_ESCAPED}",phase="starting"}}"#
        ))
        .await?;
    assert_eq!(weird.len(), 1, "{weird:?}");
    assert_eq!(
        weird[0].labels.get("service").map(String::as_str),
        Some(WEIRD_SERVICE)
    );
    assert_eq!(weird[0].value, 1.0);
    Ok(())
}
