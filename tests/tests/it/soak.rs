//! scratch
use std::time::Duration;
use supervisor_core::{BackoffConfig, RestartPolicy, ServiceContext, SpawnOptions, service_fn};

#[tokio::test(flavor = "current_thread")]
async fn scratch_rate() {
    let sup = crate::support::supervisor();
    sup.spawn_service_with_options(
        service_fn("instant", |_ctx: ServiceContext| async {
            Err::<(), _>(std::io::Error::other("x"))
        })
        .with_restart_policy(RestartPolicy::Always),
        SpawnOptions::with_backoff(BackoffConfig::zero().without_circuit_breaker()),
    )
    .unwrap();
    let t = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = sup.metrics().snapshot().restarts_total;
    eprintln!("restarts in {:?}: {r}", t.elapsed());
}
