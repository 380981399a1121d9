//! `FacadeSink` against a hand-written local recorder (never the global one):
//! names, labels, values, descriptions and handle reuse.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use supervisor_metrics::{FailureKind, MetricsSink, ServicePhase, TerminationReason};
use supervisor_metrics_facade::{FacadeHandle, FacadeSink};

/// A metric's name and its labels, sorted by key.
type Series = (String, BTreeMap<String, String>);

/// What a `describe_*` call said: the kind of metric, its unit, its help text.
type Description = (&'static str, Option<Unit>, String);

#[derive(Debug, Default)]
struct CounterCell(AtomicU64);

impl CounterFn for CounterCell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, Ordering::Relaxed);
    }
}

/// An `f64` stored as bits.
#[derive(Debug, Default)]
struct GaugeCell(AtomicU64);

impl GaugeCell {
    fn update(&self, change: impl Fn(f64) -> f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some(change(f64::from_bits(bits)).to_bits())
            });
    }
}

impl GaugeFn for GaugeCell {
    fn increment(&self, value: f64) {
        self.update(|current| current + value);
    }

    fn decrement(&self, value: f64) {
        self.update(|current| current - value);
    }

    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct HistogramCell(Mutex<Vec<f64>>);

impl HistogramFn for HistogramCell {
    fn record(&self, value: f64) {
        self.0.lock().expect("no test thread panicked").push(value);
    }
}

/// Records everything in maps, and counts registrations.
#[derive(Debug, Default)]
struct TestRecorder {
    counters: Mutex<HashMap<Series, Arc<CounterCell>>>,
    gauges: Mutex<HashMap<Series, Arc<GaugeCell>>>,
    histograms: Mutex<HashMap<Series, Arc<HistogramCell>>>,
    descriptions: Mutex<HashMap<String, Description>>,
    registrations: AtomicUsize,
}

fn series_of(key: &Key) -> Series {
    let labels = key
        .labels()
        .map(|label| (label.key().to_owned(), label.value().to_owned()))
        .collect();
    (key.name().to_owned(), labels)
}

fn series(name: &str, labels: &[(&str, &str)]) -> Series {
    let labels = labels
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    (name.to_owned(), labels)
}

impl TestRecorder {
    fn describe(
        &self,
        kind: &'static str,
        key: &KeyName,
        unit: Option<Unit>,
        description: SharedString,
    ) {
        self.descriptions
            .lock()
            .expect("no test thread panicked")
            .insert(
                key.as_str().to_owned(),
                (kind, unit, description.into_owned()),
            );
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        let counters = self.counters.lock().expect("no test thread panicked");
        counters
            .get(&series(name, labels))
            .map(|cell| cell.0.load(Ordering::Relaxed))
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let gauges = self.gauges.lock().expect("no test thread panicked");
        gauges
            .get(&series(name, labels))
            .map(|cell| f64::from_bits(cell.0.load(Ordering::Relaxed)))
    }

    fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Option<Vec<f64>> {
        let histograms = self.histograms.lock().expect("no test thread panicked");
        histograms
            .get(&series(name, labels))
            .map(|cell| cell.0.lock().expect("no test thread panicked").clone())
    }

    /// Every series name registered, of any kind.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = (self
            .counters
            .lock()
            .expect("no test thread panicked")
            .keys())
        .chain(self.gauges.lock().expect("no test thread panicked").keys())
        .chain(
            self.histograms
                .lock()
                .expect("no test thread panicked")
                .keys(),
        )
        .map(|(name, _)| name.clone())
        .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe("counter", &key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe("gauge", &key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe("histogram", &key, unit, description);
    }

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        self.registrations.fetch_add(1, Ordering::Relaxed);
        let mut counters = self.counters.lock().expect("no test thread panicked");
        Counter::from_arc(Arc::clone(counters.entry(series_of(key)).or_default()))
    }

    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        self.registrations.fetch_add(1, Ordering::Relaxed);
        let mut gauges = self.gauges.lock().expect("no test thread panicked");
        Gauge::from_arc(Arc::clone(gauges.entry(series_of(key)).or_default()))
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        self.registrations.fetch_add(1, Ordering::Relaxed);
        let mut histograms = self.histograms.lock().expect("no test thread panicked");
        Histogram::from_arc(Arc::clone(histograms.entry(series_of(key)).or_default()))
    }
}

const WEIRD_SERVICE: &str = "we\"ird\\name\nx";

/// Restarts, a panic, a circuit trip, a shutdown-timeout abort and a removed
/// service, interleaved.
fn chaotic_run(sink: &FacadeSink) {
    use ServicePhase::{BackingOff, Restarting, Running, Starting, Stopping, Terminated};

    let [flaky, stuck, ephemeral, weird] =
        ["flaky", "stuck", "ephemeral", WEIRD_SERVICE].map(|service| sink.resolve(service));
    for service in [&flaky, &stuck, &ephemeral, &weird] {
        sink.service_spawned(service);
    }
    sink.service_started(&flaky, 1);
    sink.phase_changed(&flaky, Starting, Running);
    sink.service_started(&stuck, 1);
    sink.phase_changed(&stuck, Starting, Running);
    sink.service_started(&weird, 1);
    sink.phase_changed(&weird, Starting, Running);
    sink.service_failed(&flaky, FailureKind::Panic);
    sink.phase_changed(&flaky, Running, BackingOff);
    sink.backoff_scheduled(&flaky, Duration::from_millis(250));
    sink.phase_changed(&ephemeral, Starting, Terminated);
    sink.service_terminated(&ephemeral, &TerminationReason::Completed, Duration::ZERO);
    sink.service_removed(ephemeral);
    sink.phase_changed(&flaky, BackingOff, Restarting);
    sink.service_started(&flaky, 2);
    sink.phase_changed(&flaky, Restarting, Running);
    sink.service_failed(&flaky, FailureKind::Error);
    sink.circuit_opened(&flaky, 2, 1);
    sink.phase_changed(&flaky, Running, Terminated);
    sink.service_terminated(
        &flaky,
        &TerminationReason::CircuitBreakerOpen {
            failures: 2,
            max_retries: 1,
        },
        Duration::from_secs(90),
    );
    sink.phase_changed(&stuck, Running, Stopping);
    sink.service_failed(&stuck, FailureKind::Timeout);
    sink.phase_changed(&stuck, Stopping, Terminated);
    sink.service_terminated(
        &stuck,
        &TerminationReason::ShutdownTimeout {
            timeout: Duration::from_secs(5),
        },
        Duration::from_secs(7_200),
    );
}

#[test]
fn a_chaotic_run_records_the_expected_values_and_labels() {
    let recorder = TestRecorder::default();
    let sink = FacadeSink::new();
    metrics::with_local_recorder(&recorder, || chaotic_run(&sink));

    assert_eq!(recorder.counter("supervisor_spawned_total", &[]), Some(4));
    assert_eq!(recorder.gauge("supervisor_active_services", &[]), Some(1.0));
    assert_eq!(
        recorder.counter("supervisor_restarts_total", &[("service", "flaky")]),
        Some(1)
    );
    assert_eq!(
        recorder.counter("supervisor_restarts_total", &[("service", "stuck")]),
        Some(0)
    );
    for (service, kind, expected) in [
        ("flaky", "panic", 1),
        ("flaky", "error", 1),
        ("flaky", "timeout", 0),
        ("stuck", "timeout", 1),
        ("stuck", "error", 0),
    ] {
        let labels = [("service", service), ("kind", kind)];
        assert_eq!(
            recorder.counter("supervisor_failures_total", &labels),
            Some(expected),
            "{labels:?}"
        );
    }
    assert_eq!(
        recorder.counter(
            "supervisor_circuit_breaker_trips_total",
            &[("service", "flaky")]
        ),
        Some(1)
    );
    assert_eq!(
        recorder.counter(
            "supervisor_terminated_total",
            &[("service", "flaky"), ("reason", "circuit_breaker_open")]
        ),
        Some(1)
    );
    assert_eq!(
        recorder.counter(
            "supervisor_terminated_total",
            &[("service", "stuck"), ("reason", "shutdown_timeout")]
        ),
        Some(1)
    );
    assert_eq!(
        recorder.counter(
            "supervisor_terminated_total",
            &[("service", "ephemeral"), ("reason", "completed")]
        ),
        Some(1)
    );
    assert_eq!(
        recorder.histogram("supervisor_service_uptime_seconds", &[("service", "flaky")]),
        Some(vec![90.0])
    );
    assert_eq!(
        recorder.histogram("supervisor_service_uptime_seconds", &[("service", "stuck")]),
        Some(vec![7_200.0])
    );
    assert_eq!(
        recorder.gauge("supervisor_backoff_delay_seconds", &[("service", "flaky")]),
        Some(0.25)
    );

    // The phase gauge is one-hot for every service.
    for (service, current) in [
        ("flaky", ServicePhase::Terminated),
        ("stuck", ServicePhase::Terminated),
        (WEIRD_SERVICE, ServicePhase::Running),
    ] {
        for phase in ServicePhase::ALL {
            let labels = [("service", service), ("phase", phase.as_str())];
            let expected = if phase == current { 1.0 } else { 0.0 };
            assert_eq!(
                recorder.gauge("supervisor_service_phase", &labels),
                Some(expected),
                "{labels:?}"
            );
        }
    }
    // Label values reach the recorder verbatim; escaping is the exporter's job.
    assert_eq!(
        recorder.counter("supervisor_restarts_total", &[("service", WEIRD_SERVICE)]),
        Some(0)
    );
    // The removed service's handles are gone from the sink.
    assert_eq!(sink.tracked_services(), 3);
}

#[test]
fn every_series_is_described_with_the_same_names_as_recorded() {
    let recorder = TestRecorder::default();
    let sink = FacadeSink::new();
    metrics::with_local_recorder(&recorder, || {
        sink.describe();
        chaotic_run(&sink);
    });

    let expected = [
        ("supervisor_active_services", "gauge", None),
        (
            "supervisor_backoff_delay_seconds",
            "gauge",
            Some(Unit::Seconds),
        ),
        ("supervisor_circuit_breaker_trips_total", "counter", None),
        ("supervisor_failures_total", "counter", None),
        ("supervisor_restarts_total", "counter", None),
        ("supervisor_service_phase", "gauge", None),
        (
            "supervisor_service_uptime_seconds",
            "histogram",
            Some(Unit::Seconds),
        ),
        ("supervisor_spawned_total", "counter", None),
        ("supervisor_terminated_total", "counter", None),
    ];
    let descriptions = recorder
        .descriptions
        .lock()
        .expect("no test thread panicked");
    assert_eq!(descriptions.len(), expected.len());
    for (name, kind, unit) in expected {
        let (described_kind, described_unit, help) = descriptions
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not described"));
        assert_eq!((*described_kind, *described_unit), (kind, unit), "{name}");
        assert!(help.len() > 10, "{name}: {help:?}");
    }
    drop(descriptions);
    let recorded = recorder.names();
    let described: Vec<String> = expected
        .iter()
        .map(|(name, _, _)| (*name).to_owned())
        .collect();
    assert_eq!(recorded, described);
}

#[test]
fn per_service_handles_are_registered_once() {
    let recorder = TestRecorder::default();
    let sink = FacadeSink::new();
    metrics::with_local_recorder(&recorder, || {
        let feed = sink.resolve("feed");
        sink.service_spawned(&feed);
        let after_spawn = recorder.registrations.load(Ordering::Relaxed);
        for start in 2..=100 {
            sink.service_started(&feed, start);
            sink.phase_changed(&feed, ServicePhase::Restarting, ServicePhase::Running);
            sink.service_failed(&feed, FailureKind::Error);
            sink.backoff_scheduled(&feed, Duration::from_millis(start));
            sink.phase_changed(&feed, ServicePhase::Running, ServicePhase::BackingOff);
        }
        assert_eq!(recorder.registrations.load(Ordering::Relaxed), after_spawn);
    });
    assert_eq!(
        recorder.counter("supervisor_restarts_total", &[("service", "feed")]),
        Some(99)
    );
    assert_eq!(
        recorder.counter(
            "supervisor_failures_total",
            &[("service", "feed"), ("kind", "error")]
        ),
        Some(99)
    );
    assert_eq!(
        recorder.gauge("supervisor_backoff_delay_seconds", &[("service", "feed")]),
        Some(0.1)
    );
}

#[test]
fn a_prefix_renames_every_series() -> Result<(), supervisor_metrics_facade::InvalidPrefix> {
    let recorder = TestRecorder::default();
    let sink = FacadeSink::with_prefix("ingest")?;
    metrics::with_local_recorder(&recorder, || {
        sink.describe();
        let feed = sink.resolve("feed");
        sink.service_spawned(&feed);
        sink.service_terminated(&feed, &TerminationReason::Cancelled, Duration::from_secs(1));
    });
    let names = recorder.names();
    assert!(!names.is_empty());
    assert!(
        names.iter().all(|name| name.starts_with("ingest_")),
        "{names:?}"
    );
    assert_eq!(recorder.counter("ingest_spawned_total", &[]), Some(1));
    assert_eq!(recorder.gauge("ingest_active_services", &[]), Some(0.0));

    for invalid in ["", "9lives", "__reserved", "with-dash"] {
        let error = FacadeSink::with_prefix(invalid).err();
        assert_eq!(
            error.map(|error| error.prefix().to_owned()),
            Some(invalid.to_owned())
        );
    }
    Ok(())
}

#[test]
fn removal_and_odd_orders_keep_active_services_consistent() {
    let recorder = TestRecorder::default();
    let sink = FacadeSink::new();
    metrics::with_local_recorder(&recorder, || {
        let a: FacadeHandle = sink.resolve("a");
        let b = sink.resolve("b");
        sink.service_spawned(&a);
        sink.service_spawned(&a);
        sink.service_spawned(&b);
        assert_eq!(recorder.gauge("supervisor_active_services", &[]), Some(2.0));
        // Removed while running (contract breach): no longer active.
        sink.service_removed(b);
        assert_eq!(recorder.gauge("supervisor_active_services", &[]), Some(1.0));
        // Terminated twice: counted once in the gauge.
        let reason = TerminationReason::Unrecoverable("disk full".to_owned());
        sink.service_terminated(&a, &reason, Duration::from_secs(1));
        sink.service_terminated(&a, &reason, Duration::from_secs(1));
        assert_eq!(recorder.gauge("supervisor_active_services", &[]), Some(0.0));
        // A second live handle of the same name shares the series.
        let respawned = sink.resolve("a");
        sink.service_started(&respawned, 3);
        assert_eq!(recorder.gauge("supervisor_active_services", &[]), Some(0.0));
        sink.service_removed(a);
        assert_eq!(sink.tracked_services(), 1);
        sink.service_removed(respawned);
    });
    assert_eq!(recorder.counter("supervisor_spawned_total", &[]), Some(3));
    assert_eq!(
        recorder.counter("supervisor_restarts_total", &[("service", "a")]),
        Some(1)
    );
    assert_eq!(
        recorder.counter(
            "supervisor_terminated_total",
            &[("service", "a"), ("reason", "unrecoverable")]
        ),
        Some(2)
    );
    assert_eq!(sink.tracked_services(), 0);
}
