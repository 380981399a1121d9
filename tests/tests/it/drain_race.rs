//! Races between a service's own task and the drain timeout, made
//! deterministic: a first sink holds the service's task inside one event (as
//! a slow sink would, on a multi-thread runtime) until a second sink has
//! recorded the service's termination by the drain, or for at most [`HOLD`].
//!
//! The services run on a runtime of their own, so the held task blocks none
//! of the threads that drive the drain's timer.
//!
//! The sinks must see each service's events in the order they happened, and
//! the counters must agree with the lifecycles, whichever side wins the race.
//! (Both failed while `service_started` and `circuit_opened` were emitted
//! after the slot's lock was released: the drain could terminate the service
//! in between. Now that every event of a transition is emitted under the
//! lock, the holder holds the lock too: the drain waits for it, and each test
//! takes [`HOLD`].)

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use supervisor_core::{
    DrainReport, FailureKind, MetricsSink, RestartPolicy, ServicePhase, SpawnOptions, Supervisor,
    TerminationReason,
};
use tokio::time::Instant;

use crate::support::{Event, Recorder, Scripted, Step, config, exact_backoff};

const MS: Duration = Duration::from_millis(1);

/// The longest a [`Holder`] holds a service's task (when the drain cannot
/// terminate the service meanwhile, as it should not).
const HOLD: Duration = Duration::from_secs(2);

#[test]
fn a_circuit_opening_as_the_drain_times_out_is_counted_only_if_it_terminates_the_service() {
    let raced = race_the_drain(Held::CircuitOpened, |sup| {
        // The first failure opens the circuit; its task is held in the event.
        let backoff = exact_backoff().with_circuit_breaker(0, Duration::from_secs(60));
        let doomed = Scripted::new("doomed", RestartPolicy::OnFailure, [Step::Fail(MS)]);
        sup.spawn_service_with_options(doomed, SpawnOptions::with_backoff(backoff))
            .unwrap();
    });

    let m = raced.supervisor.metrics().snapshot();
    let snap = raced.supervisor.service_lifecycle("doomed").unwrap();
    let events = raced.recorder.events();
    let tripped = u64::from(snap.termination_kind.as_deref() == Some("circuit_breaker_open"));
    assert_eq!(
        m.circuit_breaker_trips, tripped,
        "circuit_breaker_trips counts the services terminated with CircuitBreakerOpen: \
         {m:?}\n{snap:?}\n{:?}\n{events:?}",
        raced.report
    );
    assert_eq!((m.terminated_total, m.active_services), (1, 0));
    assert_no_event_after_termination(&events, "doomed");
}

#[test]
fn a_start_racing_the_drain_timeout_reaches_the_sinks_before_the_termination() {
    // The task is held between its transition to Running and the delivery
    // of `service_started` to the second sink.
    let raced = race_the_drain(Held::Started, |sup| {
        sup.spawn_service(Scripted::new("feed", RestartPolicy::OnFailure, []))
            .unwrap();
    });

    let events = raced.recorder.events();
    assert!(
        events.contains(&Event::Started("feed".into(), 1)),
        "{:?}\n{events:?}",
        raced.report
    );
    assert_no_event_after_termination(&events, "feed");
    assert_eq!(raced.supervisor.metrics().snapshot().active_services, 0);
}

/// A supervisor after the race.
struct Raced {
    supervisor: Supervisor,
    recorder: Arc<Recorder>,
    report: DrainReport,
}

/// Spawns the services on a runtime of their own (whose one worker the held
/// task blocks), then, from another runtime (whose timers keep running),
/// waits until a task is held and shuts the supervisor down with a 50 ms
/// timeout.
fn race_the_drain(held: Held, spawn: impl FnOnce(&Supervisor)) -> Raced {
    let (supervisor, hold, recorder) = held_supervisor(held);
    let services = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .expect("the services' runtime");
    {
        let _entered = services.enter();
        spawn(&supervisor);
    }
    let drainer = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("the drain's runtime");
    let report = drainer.block_on(async {
        hold.wait_until_holding().await;
        supervisor.trigger_shutdown();
        supervisor.wait_for_drain().await
    });
    drop(services);
    Raced {
        supervisor,
        recorder,
        report,
    }
}

/// After its `Terminated` event, a service's only event is the timeout
/// failure that the drain reports for an aborted service.
fn assert_no_event_after_termination(events: &[Event], service: &str) {
    let events: Vec<&Event> = events.iter().filter(|e| e.service() == service).collect();
    let terminated = events
        .iter()
        .position(|e| matches!(e, Event::Terminated(..)))
        .unwrap_or_else(|| panic!("{service} terminated: {events:?}"));
    let timed_out = matches!(
        events[terminated],
        Event::Terminated(_, TerminationReason::ShutdownTimeout { .. })
    );
    let after: Vec<&&Event> = events[terminated + 1..]
        .iter()
        .filter(|e| !(timed_out && matches!(e, Event::Failed(_, FailureKind::Timeout))))
        .collect();
    assert!(
        after.is_empty(),
        "{service}: events after its termination: {after:?}\nall: {events:?}"
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

/// What a [`Holder`] and its [`Observer`] share.
#[derive(Debug)]
struct Hold {
    held: Held,
    state: Mutex<HoldState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct HoldState {
    holding: bool,
    held_once: bool,
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

    /// The first time `event` is the held event, blocks until the observer
    /// has recorded a termination, or for at most [`HOLD`].
    fn hold(&self, event: Held) {
        if event != self.held {
            return;
        }
        let mut state = self.state.lock().unwrap();
        if state.held_once {
            return;
        }
        state.held_once = true;
        state.holding = true;
        let (mut state, _) = self
            .changed
            .wait_timeout_while(state, HOLD, |state| !state.terminated)
            .unwrap();
        state.holding = false;
    }

    fn terminated(&self) {
        self.state.lock().unwrap().terminated = true;
        self.changed.notify_all();
    }

    /// Waits until a service's task is held; fails the test after 10 s.
    async fn wait_until_holding(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.state.lock().unwrap().holding {
            assert!(Instant::now() < deadline, "the held event never came");
            tokio::time::sleep(MS).await;
        }
    }
}

/// The first sink: blocks the calling thread in its held event, as a slow
/// sink would.
#[derive(Debug)]
struct Holder(Arc<Hold>);

impl MetricsSink for Holder {
    fn service_started(&self, _service: &str, _start_count: u64) {
        self.0.hold(Held::Started);
    }

    fn circuit_opened(&self, _service: &str, _failures: u32, _max_retries: u32) {
        self.0.hold(Held::CircuitOpened);
    }
}

/// The second sink: records every event, and releases the holder once it
/// has recorded a termination.
#[derive(Debug)]
struct Observer {
    hold: Arc<Hold>,
    recorder: Arc<Recorder>,
}

impl MetricsSink for Observer {
    fn service_spawned(&self, service: &str) {
        self.recorder.service_spawned(service);
    }
    fn service_started(&self, service: &str, start_count: u64) {
        self.recorder.service_started(service, start_count);
    }
    fn phase_changed(&self, service: &str, from: ServicePhase, to: ServicePhase) {
        self.recorder.phase_changed(service, from, to);
    }
    fn service_failed(&self, service: &str, kind: FailureKind) {
        self.recorder.service_failed(service, kind);
    }
    fn backoff_scheduled(&self, service: &str, delay: Duration) {
        self.recorder.backoff_scheduled(service, delay);
    }
    fn circuit_opened(&self, service: &str, failures: u32, max_retries: u32) {
        self.recorder.circuit_opened(service, failures, max_retries);
    }
    fn service_terminated(&self, service: &str, reason: &TerminationReason, uptime: Duration) {
        self.recorder.service_terminated(service, reason, uptime);
        self.hold.terminated();
    }
}
