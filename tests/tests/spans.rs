//! Every service runs inside a tracing span carrying its name and policy.
//!
//! A test binary of its own: it installs a thread-local tracing subscriber,
//! and tracing caches each log site's interest process-wide, so a test on
//! another thread touching the same sites first (with no subscriber) could
//! switch them off for this one.

#![allow(missing_docs)]

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervisor_core::{
    BackoffConfig, Jitter, RestartPolicy, ServiceContext, SpawnOptions, Supervisor,
    SupervisorConfig, service_fn,
};

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(start_paused = true)]
async fn service_events_are_logged_inside_a_span_with_name_and_policy() {
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(buffer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sup = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    let runs = Arc::new(AtomicU32::new(0));
    let feed = service_fn("feed", move |ctx: ServiceContext| {
        let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if run == 1 {
                tokio::time::sleep(Duration::from_millis(1)).await;
                anyhow::bail!("run 1 failed");
            }
            ctx.cancelled().await;
            anyhow::Ok(())
        }
    })
    .with_restart_policy(RestartPolicy::Always);
    let backoff = BackoffConfig::new(Duration::from_millis(100), Duration::from_secs(1))
        .with_jitter(Jitter::None);
    sup.spawn_service_with_options(feed, SpawnOptions::with_backoff(backoff))
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    sup.trigger_shutdown();
    let _ = sup.wait_for_drain().await;

    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    for message in [
        "service running",
        "service failed",
        "restart scheduled",
        "service asked to stop",
        "service stopped",
    ] {
        let line = log
            .lines()
            .find(|line| line.contains(message))
            .unwrap_or_else(|| panic!("no `{message}` in:\n{log}"));
        assert!(
            line.contains("service{service=feed policy=always}"),
            "`{message}` logged outside the service's span: {line}"
        );
    }
    assert!(log.contains("run 1 failed"), "the error is logged:\n{log}");
}
