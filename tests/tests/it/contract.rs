//! The core contract, item by item: every failure is seen, every event
//! delivered as the sink contract says, every report true. Each test here
//! failed on the core before the contract was fixed.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use supervisor_core::{
    BackoffConfig, MetricsSink, RestartPolicy, Service, ServiceContext, ServicePhase, SpawnError,
    SpawnOptions, Supervisor, TerminationReason, service_fn,
};

use crate::support::{
    Event, Recorder, Scripted, Step, advance, config, exact_backoff, recorded_supervisor,
    supervisor, wait_for_phase,
};

const MS: Duration = Duration::from_millis(1);

// ---------------------------------------------------------------------------
// 1. A panic before the run's future exists is a panic like any other.

/// A hand-written `run` that panics before it returns its future, as one
/// that reads its configuration first would.
struct EagerConfig {
    policy: RestartPolicy,
}

impl Service for EagerConfig {
    type Error = std::io::Error;

    fn name(&self) -> &str {
        "eager"
    }

    fn restart_policy(&self) -> RestartPolicy {
        self.policy
    }

    fn run(&self, _ctx: ServiceContext) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let url = std::env::var_os("SUPERVISOR_TEST_SURELY_UNSET_URL").expect("URL is not set");
        async move {
            let _ = url;
            Ok(())
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_that_panics_before_its_future_exists_terminates_panicked_under_never() {
    let sup = supervisor();
    let handle = sup
        .spawn_service(EagerConfig {
            policy: RestartPolicy::Never,
        })
        .unwrap();
    advance(MS).await;

    let snap = handle.snapshot();
    assert_eq!(snap.phase, ServicePhase::Terminated);
    assert_eq!(
        snap.termination_reason,
        Some(TerminationReason::Panicked("URL is not set".into()))
    );
    assert_eq!(snap.last_error.as_deref(), Some("URL is not set"));
    assert_eq!(snap.failures.panic, 1);
    assert_eq!(sup.metrics().snapshot().active_services, 0);
    // The name is free again, and the drain has nothing to wait for.
    sup.spawn_service(EagerConfig {
        policy: RestartPolicy::Never,
    })
    .unwrap();
    assert!(sup.wait_for_drain().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_service_fn_closure_that_panics_before_its_async_block_is_restarted_by_policy() {
    let sup = supervisor();
    let calls = Arc::new(AtomicU64::new(0));
    let counted = calls.clone();
    let svc = service_fn("closure", move |ctx: ServiceContext| {
        counted.fetch_add(1, Ordering::Relaxed);
        let url = std::env::var("SUPERVISOR_TEST_SURELY_UNSET_URL").unwrap();
        async move {
            let _ = url;
            ctx.cancelled().await;
            anyhow::Ok(())
        }
    });
    sup.spawn_service_with_options(svc, SpawnOptions::with_backoff(exact_backoff()))
        .unwrap();
    advance(Duration::from_secs(1)).await;

    // 100, 200, 400 ms of backoff fit in the first second: four runs.
    let snap = sup.service_lifecycle("closure").unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 4);
    assert_eq!((snap.start_count, snap.failures.panic), (4, 4));
    assert_eq!(snap.phase, ServicePhase::BackingOff);
    assert!(
        snap.last_error.as_deref().unwrap().contains("NotPresent"),
        "{snap:?}"
    );
    sup.trigger_shutdown();
    assert!(sup.wait_for_drain().await.is_clean());
    assert_eq!(sup.metrics().snapshot().active_services, 0);
}

/// An error whose `Display` (or `source`) panics.
#[derive(Debug)]
struct BadError {
    in_source: bool,
}

impl fmt::Display for BadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.in_source {
            panic!("Display is broken");
        }
        f.write_str("outer")
    }
}

impl std::error::Error for BadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        if self.in_source {
            panic!("source() is broken");
        }
        None
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_while_the_error_chain_is_formatted_is_a_panic_failure() {
    for (in_source, message) in [(false, "Display is broken"), (true, "source() is broken")] {
        let sup = supervisor();
        let svc = service_fn("formatting", move |_ctx: ServiceContext| async move {
            Err::<(), _>(BadError { in_source })
        })
        .with_restart_policy(RestartPolicy::Never);
        let handle = sup.spawn_service(svc).unwrap();
        advance(MS).await;
        let snap = handle.snapshot();
        assert_eq!(
            snap.termination_reason,
            Some(TerminationReason::Panicked(message.into()))
        );
        assert_eq!(snap.failures.panic, 1);
        assert!(sup.wait_for_drain().await.is_clean());
    }
}

// ---------------------------------------------------------------------------
// 2. A service cancelling its own token is not a shutdown.

#[tokio::test(start_paused = true)]
async fn a_service_that_cancels_its_own_token_is_restarted_by_policy() {
    let (sup, rec) = recorded_supervisor(config());
    let svc = service_fn("guarded", |ctx: ServiceContext| async move {
        // A drop guard for sub-tasks cancels the token when the run returns;
        // a library cancelling what it is handed does it earlier.
        let _guard = ctx.token().clone().drop_guard();
        ctx.token().cancel();
        ctx.cancelled().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        anyhow::bail!("lost the connection")
    });
    sup.spawn_service_with_options(svc, SpawnOptions::with_backoff(exact_backoff()))
        .unwrap();
    advance(Duration::from_millis(150)).await;

    // Runs fail at 10 ms and 120 ms (after 100 ms of backoff): both were
    // failures restarted by policy, not stops.
    let snap = sup.service_lifecycle("guarded").unwrap();
    assert_eq!(snap.start_count, 2, "restarted after its failure: {snap:?}");
    assert_eq!(snap.failures.error, 2);
    assert_eq!(snap.phase, ServicePhase::BackingOff);
    assert!(snap.phase.is_alive());
    assert!(
        !rec.phases("guarded").contains(&ServicePhase::Stopping),
        "never treated as a stop: {:?}",
        rec.phases("guarded")
    );
    sup.trigger_shutdown();
    assert!(sup.wait_for_drain().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn each_run_gets_a_fresh_context_cancelled_when_the_run_ends() {
    let sup = supervisor();
    let contexts: Arc<Mutex<Vec<ServiceContext>>> = Arc::default();
    let kept = contexts.clone();
    let svc = service_fn("keeper", move |ctx: ServiceContext| {
        let kept = kept.clone();
        async move {
            assert!(!ctx.is_cancelled(), "a run starts uncancelled");
            kept.lock().unwrap().push(ctx.clone());
            ctx.token().cancel();
            anyhow::Ok(())
        }
    })
    .with_restart_policy(RestartPolicy::Always);
    sup.spawn_service(svc).unwrap();
    advance(Duration::from_millis(250)).await;

    let contexts = contexts.lock().unwrap();
    assert_eq!(contexts.len(), 3, "clean exits restarted every 100 ms");
    // Every ended run's context is cancelled; none was reused.
    assert!(contexts.iter().all(ServiceContext::is_cancelled));
    assert_eq!(
        sup.service_lifecycle("keeper").unwrap().termination_reason,
        None
    );
}

// ---------------------------------------------------------------------------
// 3. Runtimes without the drivers the supervisor needs.

#[test]
fn spawning_on_a_runtime_without_the_time_driver_is_a_typed_error() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime without drivers");
    let sup = supervisor();
    let refused = runtime
        .block_on(async { sup.spawn_service(Scripted::new("feed", RestartPolicy::Always, [])) });
    assert_eq!(
        refused.unwrap_err(),
        SpawnError::NoTimeDriver {
            name: "feed".into()
        }
    );
    assert_eq!(sup.service_count(), 0, "nothing registered");
}

#[test]
fn run_until_shutdown_without_the_io_driver_returns_an_error() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime without the IO driver");
    // The signal handler needs the IO driver.
    let sup = Supervisor::new(
        supervisor_core::SupervisorConfig::default().with_shutdown_timeout(Duration::from_secs(1)),
    );
    let result = runtime.block_on(async {
        sup.spawn_service(Scripted::new("feed", RestartPolicy::Always, []))
            .unwrap();
        sup.run_until_shutdown().await
    });
    let error = result.unwrap_err();
    assert!(
        error.to_string().contains("enable_io"),
        "the error says what to do: {error}"
    );
    assert!(!sup.is_shutting_down(), "nothing was triggered");
}

// ---------------------------------------------------------------------------
// 4. One event per delivery: a panicking sink loses only that event.

/// Records every event, and panics on every phase change.
#[derive(Debug, Default)]
struct PhasePanics(Recorder);

impl MetricsSink for PhasePanics {
    type Handle = Arc<str>;

    fn resolve(&self, service: &str) -> Arc<str> {
        self.0.resolve(service)
    }
    fn service_spawned(&self, service: &Arc<str>) {
        self.0.service_spawned(service);
    }
    fn service_started(&self, service: &Arc<str>, start_count: u64) {
        self.0.service_started(service, start_count);
    }
    fn phase_changed(&self, service: &Arc<str>, from: ServicePhase, to: ServicePhase) {
        self.0.phase_changed(service, from, to);
        panic!("sink bug while {service} entered {to}");
    }
    fn service_failed(&self, service: &Arc<str>, kind: supervisor_core::FailureKind) {
        self.0.service_failed(service, kind);
    }
    fn backoff_scheduled(&self, service: &Arc<str>, delay: Duration) {
        self.0.backoff_scheduled(service, delay);
    }
    fn circuit_opened(&self, service: &Arc<str>, failures: u32, max_retries: u32) {
        self.0.circuit_opened(service, failures, max_retries);
    }
    fn service_terminated(&self, service: &Arc<str>, reason: &TerminationReason, uptime: Duration) {
        self.0.service_terminated(service, reason, uptime);
    }
}

#[tokio::test(start_paused = true)]
async fn a_sink_that_panics_on_phase_changes_still_gets_every_other_event() {
    let panicky = Arc::new(PhasePanics::default());
    let (sup, rec) = recorded_supervisor(config().with_metrics_sink(panicky.clone()));
    let backoff = exact_backoff().with_circuit_breaker(1, Duration::from_secs(60));
    let svc = Scripted::new("doomed", RestartPolicy::OnFailure, vec![Step::Fail(MS); 5]);
    sup.spawn_service_with_options(svc, SpawnOptions::with_backoff(backoff))
        .unwrap();
    advance(Duration::from_secs(1)).await;

    let seen = panicky.0.events();
    assert_eq!(seen, rec.events(), "it was given every event, in order");
    for expected in [
        Event::Started("doomed".into(), 1),
        Event::Started("doomed".into(), 2),
        Event::CircuitOpened("doomed".into(), 2, 1),
    ] {
        assert!(seen.contains(&expected), "{expected:?} in {seen:?}");
    }
    assert!(matches!(
        seen.last(),
        Some(Event::Terminated(
            _,
            TerminationReason::CircuitBreakerOpen { .. }
        ))
    ));
    assert_eq!(sup.metrics().snapshot().active_services, 0);
}

// ---------------------------------------------------------------------------
// 5. Sinks may call back into the supervisor.

/// Reads the supervisor on every event: one service's snapshot, all of them,
/// its `Debug` form, its count.
#[derive(Debug, Default)]
struct Reader {
    supervisor: OnceLock<Supervisor>,
    reads: AtomicU64,
    terminated_seen_terminated: AtomicU64,
}

impl Reader {
    fn read(&self, service: &str) {
        let Some(sup) = self.supervisor.get() else {
            return;
        };
        assert!(sup.service_lifecycle(service).is_some(), "{service}");
        assert!(!sup.lifecycle_snapshots().is_empty());
        assert!(format!("{sup:?}").starts_with("Supervisor"));
        assert!(sup.service_count() > 0);
        self.reads.fetch_add(1, Ordering::Relaxed);
    }
}

impl MetricsSink for Reader {
    type Handle = Arc<str>;

    fn resolve(&self, service: &str) -> Arc<str> {
        Arc::from(service)
    }
    fn service_spawned(&self, service: &Arc<str>) {
        self.read(service);
    }
    fn service_started(&self, service: &Arc<str>, _start_count: u64) {
        self.read(service);
    }
    fn phase_changed(&self, service: &Arc<str>, _from: ServicePhase, _to: ServicePhase) {
        self.read(service);
    }
    fn service_failed(&self, service: &Arc<str>, _kind: supervisor_core::FailureKind) {
        self.read(service);
    }
    fn backoff_scheduled(&self, service: &Arc<str>, _delay: Duration) {
        self.read(service);
    }
    fn service_terminated(
        &self,
        service: &Arc<str>,
        _reason: &TerminationReason,
        _uptime: Duration,
    ) {
        self.read(service);
        // Delivered after the transition: the service is terminated already.
        if let Some(sup) = self.supervisor.get() {
            let phase = sup.service_lifecycle(service).map(|snap| snap.phase);
            if phase == Some(ServicePhase::Terminated) {
                self.terminated_seen_terminated
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Spawns `fallback` when the circuit of `primary` opens.
#[derive(Debug, Default)]
struct Failover {
    supervisor: OnceLock<Supervisor>,
    spawned: AtomicBool,
}

impl MetricsSink for Failover {
    type Handle = Arc<str>;

    fn resolve(&self, service: &str) -> Arc<str> {
        Arc::from(service)
    }
    fn circuit_opened(&self, service: &Arc<str>, _failures: u32, _max_retries: u32) {
        if &**service != "primary" {
            return;
        }
        let sup = self.supervisor.get().expect("set before any spawn");
        let fallback = service_fn("fallback", |ctx: ServiceContext| async move {
            ctx.cancelled().await;
            anyhow::Ok(())
        });
        sup.spawn_service(fallback).expect("the fallback spawns");
        self.spawned.store(true, Ordering::Relaxed);
    }
}

/// The multi-thread tests' guard against a deadlock: a real-time limit.
const DEADLOCK_LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_reads_the_supervisor_on_every_event_never_deadlocks() {
    let reader = Arc::new(Reader::default());
    let sup = Supervisor::new(
        config()
            .with_shutdown_timeout(Duration::from_millis(200))
            .with_metrics_sink(reader.clone()),
    );
    reader.supervisor.set(sup.clone()).unwrap();
    let zero = BackoffConfig::zero().with_circuit_breaker(50, Duration::from_secs(60));
    for i in 0..20 {
        let svc = Scripted::new(
            &format!("svc-{i}"),
            RestartPolicy::OnFailure,
            vec![Step::Fail(Duration::ZERO); 10],
        );
        sup.spawn_service_with_options(svc, SpawnOptions::with_backoff(zero))
            .unwrap();
    }
    let drained = tokio::time::timeout(DEADLOCK_LIMIT, async {
        // Every service fails ten times, then runs until shutdown.
        while sup.metrics().snapshot().restarts_total < 200 {
            tokio::time::sleep(MS).await;
        }
        sup.trigger_shutdown();
        sup.wait_for_drain().await
    })
    .await
    .expect("no deadlock");
    assert!(drained.is_clean(), "{drained:?}");
    assert!(reader.reads.load(Ordering::Relaxed) > 20 * 10 * 4);
    assert_eq!(
        reader.terminated_seen_terminated.load(Ordering::Relaxed),
        20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_spawns_a_fallback_when_a_circuit_opens_never_deadlocks() {
    let failover = Arc::new(Failover::default());
    let sup = Supervisor::new(config().with_metrics_sink(failover.clone()));
    failover.supervisor.set(sup.clone()).unwrap();
    let backoff = BackoffConfig::zero().with_circuit_breaker(2, Duration::from_secs(60));
    let primary = Scripted::new("primary", RestartPolicy::Always, vec![Step::Fail(MS); 10]);
    sup.spawn_service_with_options(primary, SpawnOptions::with_backoff(backoff))
        .unwrap();

    tokio::time::timeout(DEADLOCK_LIMIT, async {
        while sup
            .service_lifecycle("fallback")
            .is_none_or(|snap| snap.phase != ServicePhase::Running)
        {
            tokio::time::sleep(MS).await;
        }
    })
    .await
    .expect("the fallback runs, no deadlock");
    assert!(failover.spawned.load(Ordering::Relaxed));
    let primary = sup.service_lifecycle("primary").unwrap();
    assert!(matches!(
        primary.termination_reason,
        Some(TerminationReason::CircuitBreakerOpen { .. })
    ));
    sup.trigger_shutdown();
    let report = tokio::time::timeout(DEADLOCK_LIMIT, sup.wait_for_drain())
        .await
        .expect("no deadlock");
    assert!(report.is_clean());
}

// ---------------------------------------------------------------------------
// 6. Every wait for the drain gets the same, true report.

/// A supervisor with a 2 s shutdown timeout, running `hung` (which ignores
/// cancellation) and `polite`.
async fn with_a_hung_service() -> Supervisor {
    let sup = Supervisor::new(config().with_shutdown_timeout(Duration::from_secs(2)));
    sup.spawn_service(Scripted::new(
        "hung",
        RestartPolicy::OnFailure,
        [Step::Hang],
    ))
    .unwrap();
    sup.spawn_service(Scripted::new(
        "polite",
        RestartPolicy::OnFailure,
        [Step::UntilCancelled(MS)],
    ))
    .unwrap();
    wait_for_phase(&sup, "hung", ServicePhase::Running).await;
    sup
}

#[tokio::test(start_paused = true)]
async fn concurrent_waits_for_the_drain_all_get_the_same_true_report() {
    let sup = with_a_hung_service().await;

    // `run_until_shutdown` in one task, a harness waiting in another.
    let host = sup.clone();
    let running = tokio::spawn(async move { host.run_until_shutdown().await });
    let harness = sup.clone();
    let waiting = tokio::spawn(async move { harness.wait_for_drain().await });
    advance(MS).await;
    sup.trigger_shutdown();

    let from_host = running.await.unwrap().unwrap();
    let from_harness = waiting.await.unwrap();
    assert_eq!(from_host.aborted, ["hung"]);
    assert!(!from_host.is_clean());
    assert_eq!(from_harness, from_host);
    // And any later call.
    assert_eq!(sup.wait_for_drain().await, from_host);
}

#[tokio::test(start_paused = true)]
async fn a_wait_for_the_drain_that_is_dropped_changes_nothing() {
    let sup = with_a_hung_service().await;
    sup.trigger_shutdown();
    // Give up on the first wait after one second: the drain goes on.
    let gave_up = tokio::time::timeout(Duration::from_secs(1), sup.wait_for_drain()).await;
    assert!(gave_up.is_err());
    let report = sup.wait_for_drain().await;
    assert_eq!(report.aborted, ["hung"]);
}

// ---------------------------------------------------------------------------
// 7. A spawn racing the shutdown is either refused or drained.

#[test]
fn spawns_racing_the_shutdown_are_refused_or_drained_never_left_running() {
    const ROUNDS: usize = 200;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a multi-thread runtime");
    for round in 0..ROUNDS {
        runtime.block_on(async {
            let sup = Supervisor::new(config().with_shutdown_timeout(Duration::from_secs(10)));
            let spawner = sup.clone();
            let spawning = tokio::spawn(async move {
                let mut accepted = 0_u64;
                for i in 0.. {
                    let svc = Scripted::new(
                        &format!("svc-{i}"),
                        RestartPolicy::Always,
                        [Step::UntilCancelled(Duration::ZERO)],
                    );
                    match spawner.spawn_service(svc) {
                        Ok(_) => accepted += 1,
                        Err(SpawnError::ShuttingDown { .. }) => return accepted,
                        Err(other) => panic!("round {round}: {other}"),
                    }
                    if i % 8 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                unreachable!()
            });
            // Let a few spawns through, then shut down from this task.
            tokio::task::yield_now().await;
            sup.trigger_shutdown();
            let report = sup.wait_for_drain().await;
            let accepted = spawning.await.unwrap();

            assert!(report.is_clean(), "round {round}: {report:?}");
            let m = sup.metrics().snapshot();
            assert_eq!(m.spawned_total, accepted, "round {round}");
            assert_eq!(
                (m.active_services, m.terminated_total),
                (0, accepted),
                "round {round}: every accepted spawn was drained: {m:?}"
            );
            assert!(
                sup.lifecycle_snapshots()
                    .iter()
                    .all(|snap| snap.phase == ServicePhase::Terminated),
                "round {round}"
            );
        });
    }
}

/// A door the test opens: the thread that reaches it first waits there.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<(bool, bool)>,
    changed: std::sync::Condvar,
}

impl Gate {
    /// Waits at the gate (the first caller only) until it opens.
    fn pass(&self) {
        let mut state = self.state.lock().unwrap();
        if state.0 {
            return;
        }
        state.0 = true;
        self.changed.notify_all();
        while !state.1 {
            state = self.changed.wait(state).unwrap();
        }
    }

    fn wait_until_someone_waits(&self) {
        let state = self.state.lock().unwrap();
        let (_state, timeout) = self
            .changed
            .wait_timeout_while(state, DEADLOCK_LIMIT, |state| !state.0)
            .unwrap();
        assert!(!timeout.timed_out(), "the spawn never reached the gate");
    }

    fn open(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }
}

/// A tracing subscriber that waits at the gate when a service's span is made.
struct GateSubscriber(Arc<Gate>);

impl tracing::Subscriber for GateSubscriber {
    fn enabled(&self, _metadata: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        if span.metadata().name() == "service" {
            self.0.pass();
        }
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _span: &tracing::span::Id, _values: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _span: &tracing::span::Id, _follows: &tracing::span::Id) {}
    fn event(&self, _event: &tracing::Event<'_>) {}
    fn enter(&self, _span: &tracing::span::Id) {}
    fn exit(&self, _span: &tracing::span::Id) {}
}

/// A sink that waits at the gate when a service is spawned.
#[derive(Debug)]
struct GateSink(Arc<Gate>);

impl MetricsSink for GateSink {
    type Handle = ();

    fn resolve(&self, _service: &str) {}
    fn service_spawned(&self, _service: &()) {
        self.0.pass();
    }
}

/// Where a spawn is paused while the supervisor shuts down.
#[derive(Debug, Clone, Copy)]
enum Pause {
    /// In the tracing span the spawn makes for its service.
    Span,
    /// In the sinks' `service_spawned`.
    Sink,
}

/// Pauses a spawn at `pause` (on a thread of its own), shuts the supervisor
/// down, waits for the drain's report, and only then lets the spawn go on:
/// the spawn must be refused, or its service terminated by the time the drain
/// reported (if the paused spawn held its service past the stop timeout, the
/// report says it was aborted).
fn pause_a_spawn_during_the_shutdown(pause: Pause) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a multi-thread runtime");
    let gate = Arc::new(Gate::default());
    let config = config().with_shutdown_timeout(Duration::from_millis(300));
    let sup = Supervisor::new(match pause {
        Pause::Span => config,
        Pause::Sink => config.with_metrics_sink(Arc::new(GateSink(gate.clone()))),
    });
    let spawner = {
        let (sup, gate, handle) = (sup.clone(), gate.clone(), runtime.handle().clone());
        std::thread::spawn(move || {
            let _runtime = handle.enter();
            let spawn = || {
                sup.spawn_service(Scripted::new(
                    "late",
                    RestartPolicy::Always,
                    [Step::UntilCancelled(Duration::ZERO)],
                ))
                .map(|_| ())
            };
            match pause {
                Pause::Span => tracing::subscriber::with_default(GateSubscriber(gate), spawn),
                Pause::Sink => spawn(),
            }
        })
    };
    gate.wait_until_someone_waits();
    let (report, late) = runtime.block_on(async {
        sup.trigger_shutdown();
        let report = sup.wait_for_drain().await;
        (report, sup.service_lifecycle("late"))
    });
    gate.open();
    let spawned = spawner.join().unwrap();

    match spawned {
        Err(SpawnError::ShuttingDown { .. }) => assert_eq!(late, None, "{pause:?}"),
        Ok(()) => {
            let late = late.expect("registered when the drain reported");
            assert_eq!(
                late.phase,
                ServicePhase::Terminated,
                "{pause:?}: the drain reported {report:?} while `late` was {late:?}"
            );
            assert_eq!(report.aborted, ["late"], "{pause:?}: held past its timeout");
            assert_eq!(sup.metrics().snapshot().active_services, 0);
        }
        Err(other) => panic!("{pause:?}: {other}"),
    }
}

#[test]
fn a_spawn_paused_in_its_span_during_the_shutdown_is_refused_or_drained() {
    pause_a_spawn_during_the_shutdown(Pause::Span);
}

#[test]
fn a_spawn_paused_in_a_sink_during_the_shutdown_is_refused_or_drained() {
    pause_a_spawn_during_the_shutdown(Pause::Sink);
}
