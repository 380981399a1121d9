//! A real Prometheus server scrapes `/metrics` of a live supervisor (it asks
//! for OpenMetrics) while a service keeps failing and restarting, and its
//! query API returns the values, escaped label values included.

use std::sync::Arc;
use std::time::Duration;

use supervisor_core::{
    BackoffConfig, Jitter, RestartPolicy, ServiceContext, SpawnOptions, Supervisor, service_fn,
};
use supervisor_http::SupervisorRoutes;
use supervisor_prometheus::PrometheusSink;
use supervisor_prometheus::prometheus_client::registry::Registry;
use tests::prometheus::{PrometheusServer, ScrapeConfig, Tool};
use tests::sink::{WEIRD_SERVICE, WEIRD_SERVICE_ESCAPED};

use crate::{PATIENCE, Served, idle, quiet};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_and_queries_the_live_registry() -> anyhow::Result<()> {
    let Some(binary) = Tool::Prometheus.require()? else {
        return Ok(());
    };
    let mut registry = Registry::default();
    let sink = Arc::new(PrometheusSink::register(&mut registry));
    let supervisor = Supervisor::new(quiet().with_metrics_sink(sink));
    // Fails every 100 ms, restarted 100 ms later, until the shutdown.
    let flaky = service_fn("flaky", |_ctx: ServiceContext| async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        anyhow::bail!("lost the connection")
    })
    .with_restart_policy(RestartPolicy::Always);
    let backoff = BackoffConfig::new(Duration::from_millis(100), Duration::from_millis(100))
        .with_jitter(Jitter::None);
    supervisor.spawn_service_with_options(flaky, SpawnOptions::with_backoff(backoff))?;
    supervisor.spawn_service(idle(WEIRD_SERVICE))?;
    let routes = SupervisorRoutes::new(supervisor.clone()).with_prometheus(Arc::new(registry));
    let served = Served::until_drained(routes).await;

    let prometheus = PrometheusServer::start(&binary, &ScrapeConfig::new([served.addr])).await?;
    let outcome = check_queries(&prometheus).await;
    let log = prometheus.log();
    drop(prometheus);
    supervisor.trigger_shutdown();
    served.stopped().await;
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
            r#"supervisor_service_phase{{service="{WEIRD_SERVICE_ESCAPED}",phase="running"}}"#
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
