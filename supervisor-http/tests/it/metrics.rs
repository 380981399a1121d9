//! `GET /metrics`: OpenMetrics for a client that asks for it (Prometheus),
//! the text format 0.0.4 for the others, which `promtool check metrics`
//! accepts on a registry with services in it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use supervisor_core::{
    BackoffConfig, Jitter, RestartPolicy, ServiceContext, SpawnOptions, Supervisor, service_fn,
};
use supervisor_http::SupervisorRoutes;
use supervisor_prometheus::prometheus_client::registry::Registry;
use supervisor_prometheus::{
    OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE, PrometheusSink,
};
use tests::prometheus::{Tool, http_request, promtool_check_metrics};
use tests::sink::WEIRD_SERVICE;

use crate::{PATIENCE, Served, idle, quiet};

/// What Prometheus (2.x) sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A fleet that went through restarts, a completion and a failure for good,
/// with a service whose name needs escaping, served with its registry.
async fn served_fleet() -> (Supervisor, Served) {
    let mut registry = Registry::default();
    let sink = Arc::new(PrometheusSink::register(&mut registry));
    let supervisor = Supervisor::new(quiet().with_metrics_sink(sink));
    let backoff = BackoffConfig::new(Duration::from_millis(5), Duration::from_millis(20))
        .with_jitter(Jitter::None);
    // Fails twice, then completes.
    let attempts = AtomicU32::new(0);
    let flaky = service_fn("flaky", move |_ctx: ServiceContext| {
        let attempt = attempts.fetch_add(1, Ordering::SeqCst);
        async move {
            if attempt < 2 {
                anyhow::bail!("refused (attempt {attempt})");
            }
            anyhow::Ok(())
        }
    })
    .with_restart_policy(RestartPolicy::OnFailure);
    let flaky = supervisor
        .spawn_service_with_options(flaky, SpawnOptions::with_backoff(backoff))
        .unwrap();
    let doomed = service_fn("doomed", |_ctx: ServiceContext| async {
        anyhow::bail!("gone")
    })
    .with_restart_policy(RestartPolicy::Never);
    let doomed = supervisor.spawn_service(doomed).unwrap();
    supervisor.spawn_service(idle(WEIRD_SERVICE)).unwrap();
    for handle in [flaky, doomed] {
        tokio::time::timeout(PATIENCE, handle.wait_terminated())
            .await
            .expect("terminated in time");
    }
    let routes = SupervisorRoutes::new(supervisor.clone()).with_prometheus(Arc::new(registry));
    let served = Served::until_drained(routes).await;
    (supervisor, served)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_format_follows_the_accept_header_as_the_official_clients_choose_it() {
    let (supervisor, served) = served_fleet().await;
    let scrape = |accept: Option<&'static str>| {
        let headers: Vec<(&str, &str)> =
            accept.map(|value| ("accept", value)).into_iter().collect();
        let addr = served.addr;
        async move {
            http_request(addr, "GET", "/metrics", &headers, None)
                .await
                .unwrap()
        }
    };

    for accept in [
        Some(PROMETHEUS_ACCEPT),
        Some("application/openmetrics-text; version=1.0.0"),
    ] {
        let response = scrape(accept).await;
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("content-type"),
            Some(OPENMETRICS_CONTENT_TYPE)
        );
        assert_eq!(response.header("vary"), Some("accept"));
        assert!(response.body.ends_with("# EOF\n"), "{}", response.body);
        assert!(
            response
                .body
                .contains("supervisor_restarts_total{service=\"flaky\"} 2\n")
        );
    }
    for accept in [
        None,
        Some("text/plain"),
        Some("*/*"),
        Some("text/plain;version=0.0.4"),
    ] {
        let response = scrape(accept).await;
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("content-type"),
            Some(PROMETHEUS_TEXT_CONTENT_TYPE),
            "{accept:?}"
        );
        assert_eq!(
            PROMETHEUS_TEXT_CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert!(!response.body.contains("# EOF"), "{accept:?}");
        assert!(
            response
                .body
                .contains("# TYPE supervisor_restarts_total counter\n")
        );
        assert!(
            response
                .body
                .contains("supervisor_restarts_total{service=\"flaky\"} 2\n")
        );
    }

    supervisor.trigger_shutdown();
    served.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_what_curl_gets() {
    let Some(promtool) = Tool::Promtool.require().unwrap() else {
        return;
    };
    let (supervisor, served) = served_fleet().await;
    let response = http_request(served.addr, "GET", "/metrics", &[], None)
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    let output = promtool_check_metrics(&promtool, &response.body).unwrap();
    assert!(
        output.is_clean(),
        "`promtool check metrics` complained: {output:?}\n{}",
        response.body
    );

    supervisor.trigger_shutdown();
    served.stopped().await;
}
