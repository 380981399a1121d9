//! Every service runs inside a tracing span carrying its name and policy.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervisor_core::{RestartPolicy, SpawnOptions};

use crate::support::{Scripted, Step, advance, exact_backoff, supervisor};

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

    let sup = supervisor();
    sup.spawn_service_with_options(
        Scripted::new(
            "feed",
            RestartPolicy::Always,
            [Step::Fail(Duration::from_millis(1))],
        ),
        SpawnOptions::with_backoff(exact_backoff()),
    )
    .unwrap();
    advance(Duration::from_secs(1)).await;
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
