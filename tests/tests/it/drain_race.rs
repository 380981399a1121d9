//! A slow sink against the drain, on a multi-thread runtime: a first sink
//! blocks the service's task inside one event (as a slow sink would) while the
//! drain runs on another worker.
//!
//! Sinks run outside every supervisor lock, so the drain never waits for a
//! sink: it terminates the service (or finds it terminated), reports, and the
//! events it caused stay queued behind the held one. Each test waits for
//! events (the held event, the drain's report, the termination reaching the
//! second sink), never for a fixed time.
//!
//! The sinks must see each service's events in the order they happened, and
//! the counters must agree with the lifecycles, whichever side wins the race.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use supervisor_core::{
    DrainReport, FailureKind, MetricsSink, RestartPolicy, ServicePhase, SpawnOptions, Supervisor,
    TerminationReason,
};

use crate::support::{Event, Recorder, Scripted, Step, config, exact_backoff};

const MS: Duration = Duration::from_millis(1);

/// The longest any one wait of these tests may take before it fails.
const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn a_circuit_opening_while_a_sink_is_slow_is_counted_once_and_the_drain_does_not_wait() {
    let raced = race_the_drain(Held::CircuitOpened, |sup| {
        // The first failure opens the circuit; its task is held in the event.
        let backoff = exact_backoff().with_circuit_breaker(0, Duration::from_secs(60));
        let doomed = Scripted::new("doomed", RestartPolicy::OnFailure, [Step::Fail(MS)]);
        sup.spawn_service_with_options(doomed, SpawnOptions::with_backoff(backoff))
            .unwrap();
    });

    // The circuit opened before the shutdown: nothing was aborted, but the
    // task blocked in the sink had not finished when the drain reported.
    assert_eq!(raced.report.aborted, Vec::<String>::new());
    assert!(!raced.report.unwound, "{:?}", raced.report);
    let m = raced.supervisor.metrics().snapshot();
    let snap = raced.supervisor.service_lifecycle("doomed").unwrap();
    assert!(matches!(
        snap.termination_reason,
        Some(TerminationReason::CircuitBreakerOpen { .. })
    ));
    assert_eq!(m.circuit_breaker_trips, 1);
    assert_eq!((m.terminated_total, m.active_services), (1, 0));
    let events = raced.recorder.events();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::CircuitOpened(..)))
            .count(),
        1,
        "{events:?}"
    );
    assert_no_event_after_termination(&events, "doomed");
}

#[test]
fn a_termination_by_the_drain_while_a_sink_holds_the_start_is_delivered_after_it() {
    // The task is held delivering `service_started`; the drain times the
    // service out meanwhile.
    let raced = race_the_drain(Held::Started, |sup| {
        sup.spawn_service(Scripted::new("feed", RestartPolicy::OnFailure, []))
            .unwrap();
    });

    assert_eq!(raced.report.aborted, ["feed"]);
    let events = raced.recorder.events();
    let started = events
        .iter()
        .position(|e| *e == Event::Started("feed".into(), 1));
    let timed_out = events
        .iter()
        .position(|e| *e == Event::Failed("feed".into(), FailureKind::Timeout));
    let terminated = events
        .iter()
        .position(|e| matches!(e, Event::Terminated(..)));
    assert!(
        started < timed_out && timed_out < terminated && started.is_some(),
        "{:?}\n{events:?}",
        raced.report
    );
    assert_no_event_after_termination(&events, "feed");
    let m = raced.supervisor.metrics().snapshot();
    assert_eq!((m.active_services, m.failures.timeout), (0, 1));
}

/// A supervisor after the race.
struct Raced {
    supervisor: Supervisor,
    recorder: Arc<Recorder>,
    report: DrainReport,
}

/// Spawns the services on a two-worker runtime, waits until a task is held
/// in its sink, shuts the supervisor down with a 50 ms timeout and waits for
/// the drain's report; then releases the held task and waits until the
/// second sink has seen the service terminate.
fn race_the_drain(held: Held, spawn: impl FnOnce(&Supervisor)) -> Raced {
    let (supervisor, hold, recorder) = held_supervisor(held);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("the services' runtime");
    let report = runtime.block_on(async {
        spawn(&supervisor);
        hold.wait_for(|state| state.holding);
        supervisor.trigger_shutdown();
        supervisor.wait_for_drain().await
    });
    hold.release();
    hold.wait_for(|state| state.terminated);
    drop(runtime);
    Raced {
        supervisor,
        recorder,
        report,
    }
}

/// After its `Terminated` event, a service has no event.
fn assert_no_event_after_termination(events: &[Event], service: &str) {
    let events: Vec<&Event> = events.iter().filter(|e| e.service() == service).collect();
    let terminated = events
        .iter()
        .position(|e| matches!(e, Event::Terminated(..)))
        .unwrap_or_else(|| panic!("{service} terminated: {events:?}"));
    assert_eq!(
        terminated + 1,
        events.len(),
        "{service}: events after its termination: {events:?}"
    );
}

/// A supervisor with a 50 ms shutdown timeout whose first sink is a
/// [`Holder`] and second an [`Observer`], and the observer's recorder.
fn held_supervisor(held: Held) -> (Supervisor, Arc<Hold>, Arc<Recorder>) {
    let hold = Arc::new(Hold::new(held));
    let recorder = Arc::new(Recorder::default());
    let sup = Supervisor::new(
        config()
            .with_shutdown_timeout(50 * MS)
            .with_metrics_sink(Arc::new(Holder(hold.clone())))
            .with_metrics_sink(Arc::new(Observer {
                hold: hold.clone(),
                recorder: recorder.clone(),
            })),
    );
    (sup, hold, recorder)
}

/// The event a [`Holder`] holds the service's task in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Held {
    Started,
    CircuitOpened,
}

/// What a [`Holder`], its [`Observer`] and the test share.
#[derive(Debug)]
struct Hold {
    held: Held,
    state: Mutex<HoldState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct HoldState {
    holding: bool,
    released: bool,
    terminated: bool,
}

impl Hold {
    fn new(held: Held) -> Self {
        Self {
            held,
            state: Mutex::default(),
            changed: Condvar::new(),
        }
    }

    /// The first time `event` is the held event, blocks until the test
    /// releases it.
    fn hold(&self, event: Held) {
        if event != self.held {
            return;
        }
        let mut state = self.update(|state| state.holding = true);
        while !state.released {
            state = self.changed.wait(state).unwrap();
        }
    }

    fn release(&self) {
        drop(self.update(|state| state.released = true));
    }

    fn terminated(&self) {
        drop(self.update(|state| state.terminated = true));
    }

    fn update(&self, change: impl FnOnce(&mut HoldState)) -> MutexGuard<'_, HoldState> {
        let mut state = self.state.lock().unwrap();
        change(&mut state);
        self.changed.notify_all();
        state
    }

    /// Blocks the thread until `condition` holds; fails the test after
    /// [`LIMIT`].
    fn wait_for(&self, condition: impl Fn(&HoldState) -> bool) {
        let state = self.state.lock().unwrap();
        let (state, timeout) = self
            .changed
            .wait_timeout_while(state, LIMIT, |state| !condition(state))
            .unwrap();
        assert!(!timeout.timed_out(), "never happened: {state:?}");
    }
}

/// The first sink: blocks the calling thread in its held event, as a slow
/// sink would.
#[derive(Debug)]
struct Holder(Arc<Hold>);

impl MetricsSink for Holder {
    type Handle = ();

    fn resolve(&self, _service: &str) {}

    fn service_started(&self, _service: &(), _start_count: u64) {
        self.0.hold(Held::Started);
    }

    fn circuit_opened(&self, _service: &(), _failures: u32, _max_retries: u32) {
        self.0.hold(Held::CircuitOpened);
    }
}

/// The second sink: records every event, and tells the test once it has
/// recorded a termination.
#[derive(Debug)]
struct Observer {
    hold: Arc<Hold>,
    recorder: Arc<Recorder>,
}

impl MetricsSink for Observer {
    type Handle = Arc<str>;

    fn resolve(&self, service: &str) -> Arc<str> {
        self.recorder.resolve(service)
    }
    fn service_spawned(&self, service: &Arc<str>) {
        self.recorder.service_spawned(service);
    }
    fn service_started(&self, service: &Arc<str>, start_count: u64) {
        self.recorder.service_started(service, start_count);
    }
    fn phase_changed(&self, service: &Arc<str>, from: ServicePhase, to: ServicePhase) {
        self.recorder.phase_changed(service, from, to);
    }
    fn service_failed(&self, service: &Arc<str>, kind: FailureKind) {
        self.recorder.service_failed(service, kind);
    }
    fn backoff_scheduled(&self, service: &Arc<str>, delay: Duration) {
        self.recorder.backoff_scheduled(service, delay);
    }
    fn circuit_opened(&self, service: &Arc<str>, failures: u32, max_retries: u32) {
        self.recorder.circuit_opened(service, failures, max_retries);
    }
    fn service_terminated(&self, service: &Arc<str>, reason: &TerminationReason, uptime: Duration) {
        self.recorder.service_terminated(service, reason, uptime);
        self.hold.terminated();
    }
}
