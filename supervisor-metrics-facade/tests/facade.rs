//! `FacadeSink` against `metrics-util`'s debugging recorder, installed as a
//! local recorder (never the global one): names, labels, values, descriptions
//! and handle reuse, after the same chaotic run as the Prometheus adapter's
//! tests.
//!
//! A snapshot of the debugging recorder resets the counters and gauges it
//! reads, so each recording is read once, at its end.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind};
use supervisor_metrics::{FailureKind, MetricsSink, ServicePhase, TerminationReason};
use supervisor_metrics_facade::{FacadeHandle, FacadeSink};
use tests::sink::{ByName, WEIRD_SERVICE, chaotic_run};

/// The debugging recorder, plus the two things it does not tell: how many
/// `register_*` calls it got, and every `describe_*` call (its snapshot only
/// shows the descriptions of series that were registered).
#[derive(Debug, Default)]
struct Counting {
    inner: DebuggingRecorder,
    registrations: AtomicUsize,
    described: Mutex<Vec<(MetricKind, String)>>,
}

impl Counting {
    fn registrations(&self) -> usize {
        self.registrations.load(Ordering::Relaxed)
    }

    fn described(&self) -> Vec<(MetricKind, String)> {
        self.described
            .lock()
            .expect("no test thread panicked")
            .clone()
    }

    fn record_description(&self, kind: MetricKind, key: &KeyName) {
        self.described
            .lock()
            .expect("no test thread panicked")
            .push((kind, key.as_str().to_owned()));
    }

    fn record_registration(&self) {
        self.registrations.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes the recording's one snapshot.
    fn snapshot(&self) -> Snapshot {
        Snapshot(self.inner.snapshotter().snapshot().into_vec())
    }
}

impl Recorder for Counting {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.record_description(MetricKind::Counter, &key);
        self.inner.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.record_description(MetricKind::Gauge, &key);
        self.inner.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.record_description(MetricKind::Histogram, &key);
        self.inner.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.record_registration();
        self.inner.register_counter(key, metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.record_registration();
        self.inner.register_gauge(key, metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.record_registration();
        self.inner.register_histogram(key, metadata)
    }
}

/// What the debugging recorder holds: each series with its unit, its
/// description and its value.
struct Snapshot(Vec<(CompositeKey, Option<Unit>, Option<SharedString>, DebugValue)>);

impl Snapshot {
    /// The value of the series `name` whose labels are exactly `labels`, in
    /// any order.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<&DebugValue> {
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        self.0
            .iter()
            .find(|(key, ..)| {
                let key = key.key();
                let key_labels: BTreeMap<&str, &str> = key
                    .labels()
                    .map(|label| (label.key(), label.value()))
                    .collect();
                key.name() == name && key_labels == labels
            })
            .map(|(.., value)| value)
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        match self.get(name, labels)? {
            DebugValue::Counter(value) => Some(*value),
            _ => None,
        }
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match self.get(name, labels)? {
            DebugValue::Gauge(value) => Some(value.into_inner()),
            _ => None,
        }
    }

    fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Option<Vec<f64>> {
        match self.get(name, labels)? {
            DebugValue::Histogram(values) => {
                Some(values.iter().map(|value| value.into_inner()).collect())
            }
            _ => None,
        }
    }

    /// Every series name recorded, of any kind, sorted.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .0
            .iter()
            .map(|(key, ..)| key.key().name().to_owned())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The kind, unit and description of every series named `name`.
    fn metadata(&self, name: &str) -> Vec<(MetricKind, Option<Unit>, Option<&str>)> {
        self.0
            .iter()
            .filter(|(key, ..)| key.key().name() == name)
            .map(|(key, unit, description, _)| (key.kind(), *unit, description.as_deref()))
            .collect()
    }
}

#[test]
fn a_chaotic_run_records_the_expected_values_and_labels() {
    let recorder = Counting::default();
    let sink = FacadeSink::new();
    let by_name = ByName::new(&sink);
    metrics::with_local_recorder(&recorder, || chaotic_run(&by_name));
    let recorded = recorder.snapshot();

    assert_eq!(recorded.counter("supervisor_spawned_total", &[]), Some(5));
    assert_eq!(recorded.gauge("supervisor_active_services", &[]), Some(2.0));
    assert_eq!(
        recorded.counter("supervisor_restarts_total", &[("service", "flaky")]),
        Some(2)
    );
    assert_eq!(
        recorded.counter("supervisor_restarts_total", &[("service", "stuck")]),
        Some(0)
    );
    for (service, kind, expected) in [
        ("flaky", "panic", 1),
        ("flaky", "error", 2),
        ("flaky", "timeout", 0),
        ("stuck", "timeout", 1),
        ("stuck", "error", 0),
    ] {
        let labels = [("service", service), ("kind", kind)];
        assert_eq!(
            recorded.counter("supervisor_failures_total", &labels),
            Some(expected),
            "{labels:?}"
        );
    }
    assert_eq!(
        recorded.counter(
            "supervisor_circuit_breaker_trips_total",
            &[("service", "flaky")]
        ),
        Some(1)
    );
    assert_eq!(
        recorded.counter(
            "supervisor_terminated_total",
            &[("service", "flaky"), ("reason", "circuit_breaker_open")]
        ),
        Some(1)
    );
    assert_eq!(
        recorded.counter(
            "supervisor_terminated_total",
            &[("service", "stuck"), ("reason", "shutdown_timeout")]
        ),
        Some(1)
    );
    assert_eq!(
        recorded.counter(
            "supervisor_terminated_total",
            &[("service", "ephemeral"), ("reason", "completed")]
        ),
        Some(1)
    );
    assert_eq!(
        recorded.histogram("supervisor_service_uptime_seconds", &[("service", "flaky")]),
        Some(vec![12.5])
    );
    assert_eq!(
        recorded.histogram("supervisor_service_uptime_seconds", &[("service", "stuck")]),
        Some(vec![3_600.0])
    );
    assert_eq!(
        recorded.gauge("supervisor_backoff_delay_seconds", &[("service", "flaky")]),
        Some(1.0)
    );

    // The phase gauge is one-hot for every service.
    for (service, current) in [
        ("flaky", ServicePhase::Terminated),
        ("stuck", ServicePhase::Terminated),
        ("steady", ServicePhase::Running),
        (WEIRD_SERVICE, ServicePhase::Running),
    ] {
        for phase in ServicePhase::ALL {
            let labels = [("service", service), ("phase", phase.as_str())];
            let expected = if phase == current { 1.0 } else { 0.0 };
            assert_eq!(
                recorded.gauge("supervisor_service_phase", &labels),
                Some(expected),
                "{labels:?}"
            );
        }
    }
    // Label values reach the recorder verbatim; escaping is the exporter's job.
    assert_eq!(
        recorded.counter("supervisor_restarts_total", &[("service", WEIRD_SERVICE)]),
        Some(0)
    );
    // The removed service's handles are gone from the sink.
    assert_eq!(sink.tracked_services(), 4);
}

#[test]
fn every_series_is_described_with_the_same_names_as_recorded() {
    let recorder = Counting::default();
    let sink = FacadeSink::new();
    let by_name = ByName::new(&sink);
    metrics::with_local_recorder(&recorder, || {
        sink.describe();
        chaotic_run(&by_name);
    });
    let recorded = recorder.snapshot();

    let expected = [
        ("supervisor_active_services", MetricKind::Gauge, None),
        (
            "supervisor_backoff_delay_seconds",
            MetricKind::Gauge,
            Some(Unit::Seconds),
        ),
        (
            "supervisor_circuit_breaker_trips_total",
            MetricKind::Counter,
            None,
        ),
        ("supervisor_failures_total", MetricKind::Counter, None),
        ("supervisor_restarts_total", MetricKind::Counter, None),
        ("supervisor_service_phase", MetricKind::Gauge, None),
        (
            "supervisor_service_uptime_seconds",
            MetricKind::Histogram,
            Some(Unit::Seconds),
        ),
        ("supervisor_spawned_total", MetricKind::Counter, None),
        ("supervisor_terminated_total", MetricKind::Counter, None),
    ];
    let described = recorder.described();
    assert_eq!(described.len(), expected.len(), "{described:?}");
    for (name, kind, unit) in expected {
        assert!(
            described.contains(&(kind, name.to_owned())),
            "{name} is not described as a {kind:?}: {described:?}"
        );
        // The recorder matches descriptions to series by kind and name.
        let metadata = recorded.metadata(name);
        assert!(!metadata.is_empty(), "{name} is not recorded");
        for (recorded_kind, recorded_unit, help) in metadata {
            assert_eq!((recorded_kind, recorded_unit), (kind, unit), "{name}");
            assert!(help.is_some_and(|help| help.len() > 10), "{name}: {help:?}");
        }
    }
    let described: Vec<String> = expected
        .iter()
        .map(|(name, _, _)| (*name).to_owned())
        .collect();
    assert_eq!(recorded.names(), described);
}

#[test]
fn per_service_handles_are_registered_once() {
    let recorder = Counting::default();
    let sink = FacadeSink::new();
    metrics::with_local_recorder(&recorder, || {
        let feed = sink.resolve("feed");
        sink.service_spawned(&feed);
        let after_spawn = recorder.registrations();
        for start in 2..=100 {
            sink.service_started(&feed, start);
            sink.phase_changed(&feed, ServicePhase::Restarting, ServicePhase::Running);
            sink.service_failed(&feed, FailureKind::Error);
            sink.backoff_scheduled(&feed, Duration::from_millis(start));
            sink.phase_changed(&feed, ServicePhase::Running, ServicePhase::BackingOff);
        }
        assert_eq!(recorder.registrations(), after_spawn);
    });
    let recorded = recorder.snapshot();
    assert_eq!(
        recorded.counter("supervisor_restarts_total", &[("service", "feed")]),
        Some(99)
    );
    assert_eq!(
        recorded.counter(
            "supervisor_failures_total",
            &[("service", "feed"), ("kind", "error")]
        ),
        Some(99)
    );
    assert_eq!(
        recorded.gauge("supervisor_backoff_delay_seconds", &[("service", "feed")]),
        Some(0.1)
    );
}

#[test]
fn a_prefix_renames_every_series() -> Result<(), supervisor_metrics_facade::InvalidPrefix> {
    let recorder = Counting::default();
    let sink = FacadeSink::with_prefix("ingest")?;
    metrics::with_local_recorder(&recorder, || {
        sink.describe();
        let feed = sink.resolve("feed");
        sink.service_spawned(&feed);
        sink.service_terminated(&feed, &TerminationReason::Cancelled, Duration::from_secs(1));
    });
    let recorded = recorder.snapshot();
    let names = recorded.names();
    assert!(!names.is_empty());
    assert!(
        names.iter().all(|name| name.starts_with("ingest_")),
        "{names:?}"
    );
    assert_eq!(recorded.counter("ingest_spawned_total", &[]), Some(1));
    assert_eq!(recorded.gauge("ingest_active_services", &[]), Some(0.0));

    for invalid in ["", "9lives", "__reserved", "with-dash"] {
        let error = FacadeSink::with_prefix(invalid).err();
        assert_eq!(
            error.map(|error| error.prefix().to_owned()),
            Some(invalid.to_owned())
        );
    }
    Ok(())
}

/// An odd history of two services, `a` and `b`, cut after `stages` of its
/// five stages (each recording is read once, so each checkpoint replays it).
fn odd_history(sink: &FacadeSink, stages: usize) {
    let a: FacadeHandle = sink.resolve("a");
    let b = sink.resolve("b");
    sink.service_spawned(&a);
    sink.service_spawned(&a);
    sink.service_spawned(&b);
    if stages == 1 {
        return;
    }
    // Removed while running (contract breach): no longer active.
    sink.service_removed(b);
    if stages == 2 {
        return;
    }
    // Terminated twice: counted once in the gauge.
    let reason = TerminationReason::Unrecoverable("disk full".to_owned());
    sink.service_terminated(&a, &reason, Duration::from_secs(1));
    sink.service_terminated(&a, &reason, Duration::from_secs(1));
    if stages == 3 {
        return;
    }
    // A second live handle of the same name shares the series.
    let respawned = sink.resolve("a");
    sink.service_started(&respawned, 3);
    if stages == 4 {
        return;
    }
    sink.service_removed(a);
    assert_eq!(sink.tracked_services(), 1);
    sink.service_removed(respawned);
}

#[test]
fn removal_and_odd_orders_keep_active_services_consistent() {
    for (stages, active) in [(1, 2.0), (2, 1.0), (3, 0.0), (4, 0.0), (5, 0.0)] {
        let recorder = Counting::default();
        let sink = FacadeSink::new();
        metrics::with_local_recorder(&recorder, || odd_history(&sink, stages));
        let recorded = recorder.snapshot();
        assert_eq!(
            recorded.gauge("supervisor_active_services", &[]),
            Some(active),
            "after {stages} stages"
        );
        if stages < 5 {
            continue;
        }
        assert_eq!(recorded.counter("supervisor_spawned_total", &[]), Some(3));
        assert_eq!(
            recorded.counter("supervisor_restarts_total", &[("service", "a")]),
            Some(1)
        );
        assert_eq!(
            recorded.counter(
                "supervisor_terminated_total",
                &[("service", "a"), ("reason", "unrecoverable")]
            ),
            Some(2)
        );
        assert_eq!(sink.tracked_services(), 0);
    }
}
