//! Lifecycle events: one per change, in order per service, joinable late
//! without a gap or a duplicate, lagging subscribers told what they missed,
//! and nothing built while nobody listens.

use std::collections::HashMap;
use std::time::Duration;

use futures::{FutureExt as _, StreamExt as _};
use supervisor_core::{
    EventKind, FailureKind, LifecycleEvent, LifecycleEvents, RecvError, RestartPolicy,
    ServiceContext, ServicePhase, SpawnOptions, StopTimeout, Supervisor, TerminationReason,
    service_fn,
};

use crate::support::{
    Event, Scripted, Step, advance, config, exact_backoff, recorded_supervisor, supervisor,
};

const SECOND: Duration = Duration::from_secs(1);

/// Every event received so far, without waiting. Unconstrained: the
/// channel's receive spends tokio's cooperative budget, and would say
/// "pending" after a hundred events otherwise.
fn drain_now(events: &mut LifecycleEvents) -> Vec<LifecycleEvent> {
    let mut received = Vec::new();
    while let Some(Some(event)) = tokio::task::unconstrained(events.next()).now_or_never() {
        received.push(event.expect("no lag here"));
    }
    received
}

/// The transitions of one service, as `(from, to)`.
fn transitions(events: &[LifecycleEvent], service: &str) -> Vec<(ServicePhase, ServicePhase)> {
    events
        .iter()
        .filter(|event| &*event.service == service && event.kind == EventKind::Transition)
        .map(|event| (event.from, event.to))
        .collect()
}

/// Each transition is one event, in the order the sinks see the phases, with
/// the run it belongs to, the failure that ended the run, and the reason on
/// termination.
#[tokio::test(start_paused = true)]
async fn every_transition_is_one_event_in_order_with_its_failure_and_reason() {
    let (supervisor, recorder) = recorded_supervisor(config());
    let mut events = supervisor.subscribe();
    let db = Scripted::new(
        "db",
        RestartPolicy::OnFailure,
        [
            Step::Fail(Duration::from_millis(10)),
            Step::Panic(Duration::from_millis(10)),
            Step::Succeed(Duration::from_millis(10)),
        ],
    );
    supervisor
        .spawn_service_with_options(db, SpawnOptions::with_backoff(exact_backoff()))
        .unwrap();
    supervisor.wait_for_drain().await;
    let received = drain_now(&mut events);

    // The same phases, in the same order, as the sinks saw.
    let mut phases = vec![ServicePhase::Starting];
    phases.extend(transitions(&received, "db").into_iter().map(|(_, to)| to));
    assert_eq!(phases, recorder.phases("db"));

    assert_eq!(received[0].kind, EventKind::Spawned);
    let failures: Vec<(Option<FailureKind>, Option<&str>, u64)> = received
        .iter()
        .filter(|event| event.failure.is_some())
        .map(|event| (event.failure, event.error.as_deref(), event.generation))
        .collect();
    assert_eq!(
        failures,
        [
            (Some(FailureKind::Error), Some("run 1 failed"), 1),
            (Some(FailureKind::Panic), Some("run 2 panicked"), 2)
        ],
        "the failure rides on the transition that ends its run"
    );
    let last = received.last().unwrap();
    assert_eq!(
        (last.from, last.to),
        (ServicePhase::Running, ServicePhase::Terminated)
    );
    assert_eq!(last.reason, Some(TerminationReason::Completed));
    assert_eq!(last.generation, 3);
    assert!(received.windows(2).all(|pair| pair[0].seq < pair[1].seq));
    assert!(received.windows(2).all(|pair| pair[0].at <= pair[1].at));
    let snapshot = supervisor.service_lifecycle("db").unwrap();
    assert_eq!(
        snapshot.seq, last.seq,
        "the snapshot carries the last change's number"
    );
}

/// The transitions the supervisor makes itself are events too: a stop, the
/// drain's timeout, a removal.
#[tokio::test(start_paused = true)]
async fn the_supervisors_own_transitions_are_events() {
    let supervisor = supervisor();
    let mut events = supervisor.subscribe();
    let stubborn = Scripted::new("stubborn", RestartPolicy::Always, [Step::Hang]);
    let feed = Scripted::new("feed", RestartPolicy::Always, []);
    supervisor
        .spawn_service_with_options(stubborn, SpawnOptions::default().stop_timeout(SECOND))
        .unwrap();
    let feed = supervisor.spawn_service(feed).unwrap();
    advance(SECOND).await;
    feed.remove().await.unwrap();
    supervisor.trigger_shutdown();
    supervisor.wait_for_drain().await;
    let received = drain_now(&mut events);

    assert_eq!(
        transitions(&received, "feed"),
        [
            (ServicePhase::Starting, ServicePhase::Running),
            (ServicePhase::Running, ServicePhase::Stopping),
            (ServicePhase::Stopping, ServicePhase::Terminated),
        ]
    );
    let feed_last = received
        .iter()
        .rfind(|event| &*event.service == "feed")
        .unwrap();
    assert_eq!(feed_last.kind, EventKind::Removed);
    let stubborn_end = received
        .iter()
        .rfind(|event| &*event.service == "stubborn")
        .unwrap();
    assert_eq!(
        stubborn_end.reason,
        Some(TerminationReason::ShutdownTimeout { timeout: SECOND })
    );
}

/// Readiness is an event: automatic readiness rides on the start, a
/// signalled one is its own event.
#[tokio::test(start_paused = true)]
async fn readiness_is_reported_by_the_events() {
    let supervisor = supervisor();
    let mut events = supervisor.subscribe();
    supervisor
        .spawn_service(Scripted::new("auto", RestartPolicy::Always, []))
        .unwrap();
    let signalled = service_fn("signalled", |ctx: ServiceContext| async move {
        tokio::time::sleep(SECOND).await;
        ctx.ready();
        ctx.ready(); // Once is enough.
        ctx.cancelled().await;
        anyhow::Ok(())
    });
    supervisor
        .spawn_service_with_options(signalled, SpawnOptions::default().signals_readiness())
        .unwrap();
    advance(Duration::from_secs(2)).await;
    let received = drain_now(&mut events);

    let auto_start = received
        .iter()
        .find(|event| &*event.service == "auto" && event.to == ServicePhase::Running)
        .unwrap();
    assert!(auto_start.ready);
    let signalled: Vec<(EventKind, bool)> = received
        .iter()
        .filter(|event| &*event.service == "signalled")
        .map(|event| (event.kind, event.ready))
        .collect();
    assert_eq!(
        signalled,
        [
            (EventKind::Spawned, false),
            (EventKind::Transition, false),
            (EventKind::Ready, true)
        ]
    );
}

/// A subscriber that joins late reads the snapshots, then the stream: with
/// the `seq` rule it rebuilds exactly the final state, with no gap and no
/// duplicate, while a busy fleet changes on other threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_subscriber_rebuilds_the_exact_state_from_snapshots_and_events() {
    let supervisor = Supervisor::new(config().with_event_capacity(1 << 16));
    let quick =
        supervisor_core::BackoffConfig::new(Duration::from_micros(50), Duration::from_micros(200))
            .without_circuit_breaker();
    for index in 0..8 {
        let flappy = service_fn(format!("flappy-{index}"), |_ctx: ServiceContext| async {
            tokio::task::yield_now().await;
            anyhow::bail!("flap")
        });
        supervisor
            .spawn_service_with_options(flappy, SpawnOptions::with_backoff(quick))
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;

    let mut events = supervisor.subscribe();
    let mut table: HashMap<String, (ServicePhase, u64, u64)> = supervisor
        .lifecycle_snapshots()
        .into_iter()
        .map(|s| (s.service_name, (s.phase, s.seq, s.start_count)))
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    supervisor.trigger_shutdown();
    supervisor.wait_for_drain().await;

    let mut applied = 0;
    for event in drain_now(&mut events) {
        let entry = table.get_mut(&*event.service).unwrap();
        if event.seq <= entry.1 {
            continue; // In the snapshot already.
        }
        if event.kind == EventKind::Transition {
            assert_eq!(event.from, entry.0, "no gap: {event:?}");
            entry.0 = event.to;
        }
        entry.1 = event.seq;
        entry.2 = event.generation;
        applied += 1;
    }
    assert!(applied > 100, "the fleet kept changing: {applied} events");
    for snapshot in supervisor.lifecycle_snapshots() {
        let (phase, seq, generation) = table[&snapshot.service_name];
        assert_eq!(phase, snapshot.phase);
        assert_eq!(seq, snapshot.seq);
        assert_eq!(generation, snapshot.start_count);
    }
}

/// A subscriber that falls behind is told how many events it missed, then
/// reads on from the oldest kept; the services never wait for it.
#[tokio::test(start_paused = true)]
async fn a_lagging_subscriber_is_told_what_it_missed_and_never_slows_a_service() {
    let supervisor = Supervisor::new(config().with_event_capacity(4));
    let mut events = supervisor.subscribe();
    let flaky = Scripted::new(
        "flaky",
        RestartPolicy::Always,
        (0..10).map(|_| Step::Fail(Duration::ZERO)),
    );
    let handle = supervisor
        .spawn_service_with_options(flaky, SpawnOptions::with_backoff(exact_backoff()))
        .unwrap();
    advance(Duration::from_secs(30)).await;
    assert_eq!(
        handle.snapshot().start_count,
        11,
        "not slowed by the subscriber"
    );

    let missed = match events.recv().await {
        Err(RecvError::Lagged { missed }) => missed,
        other => panic!("expected a lag, got {other:?}"),
    };
    let kept = drain_now(&mut events);
    // Four deliveries kept (a restart cycle's events travel together).
    assert!(kept.len() >= 4, "{kept:?}");
    let last = handle.snapshot().seq;
    assert_eq!(kept.last().unwrap().seq, last);
    // Every change since the subscription was numbered: the lag says exactly
    // how many of them this subscriber lost.
    assert_eq!(missed + kept.len() as u64, last);
    assert_eq!(kept.first().unwrap().seq, missed + 1);
}

/// Without a subscriber nothing is numbered or sent; once the last
/// subscriber is gone, numbering stops again.
#[tokio::test(start_paused = true)]
async fn nothing_is_numbered_or_sent_without_a_subscriber() {
    let supervisor = supervisor();
    let feed = supervisor
        .spawn_service(Scripted::new("feed", RestartPolicy::Always, []))
        .unwrap();
    advance(SECOND).await;
    assert_eq!(feed.snapshot().seq, 0, "no change was numbered");

    let events = supervisor.subscribe();
    feed.restart().await.unwrap();
    let numbered = feed.snapshot().seq;
    assert!(numbered > 0);
    drop(events);
    feed.restart().await.unwrap();
    assert_eq!(
        feed.snapshot().seq,
        numbered,
        "numbering stopped with the last subscriber"
    );
}

/// The stream ends once the supervisor and every service are gone.
#[tokio::test(start_paused = true)]
async fn the_stream_ends_when_the_supervisor_is_gone() {
    let supervisor = supervisor();
    let events = supervisor.subscribe();
    supervisor
        .spawn_service_with_options(
            Scripted::new(
                "once",
                RestartPolicy::Never,
                [Step::Succeed(Duration::ZERO)],
            ),
            SpawnOptions::default().stop_timeout(StopTimeout::Immediate),
        )
        .unwrap();
    supervisor.wait_for_drain().await;
    drop(supervisor);
    // Ends (instead of waiting for ever) once the last task let go.
    let all: Vec<_> = events.collect().await;
    assert_eq!(all.len(), 3, "spawned, running, terminated: {all:?}");
}

/// Events and sinks agree: the sink's `service_removed` and the `Removed`
/// event come last for the service, in both.
#[tokio::test(start_paused = true)]
async fn the_removed_event_is_the_last_of_a_service() {
    let (supervisor, recorder) = recorded_supervisor(config());
    let mut events = supervisor.subscribe();
    let job = Scripted::new(
        "job",
        RestartPolicy::Never,
        [Step::Succeed(Duration::from_millis(5))],
    );
    let handle = supervisor
        .spawn_service_with_options(job, SpawnOptions::default().temporary())
        .unwrap();
    handle.wait_terminated().await;
    tokio::task::yield_now().await;
    let received = drain_now(&mut events);
    assert_eq!(received.last().unwrap().kind, EventKind::Removed);
    assert_eq!(
        recorder.events().last(),
        Some(&Event::Removed("job".into()))
    );
}
