//! OTP's restart strategies (`one_for_all`, `rest_for_one`) and the
//! supervisor's restart intensity, ported as behaviour (not code) from
//! `supervisor_SUITE`: each test named after the OTP case it mirrors, where
//! one exists. Every test runs under paused time and records what the
//! services themselves saw: their starts and stops in order, and how many
//! runs were live at each start.
//!
//! Where we depart from OTP on purpose (asserted as such): a cycle waits for
//! the failed service's own backoff before it starts the group again; the
//! intensity window is counted in exact durations, not whole seconds; a
//! terminated service (stopped by the host, or a transient one that
//! completed) is not started again by a cycle.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervisor_core::{
    BackoffConfig, ControlError, RestartIntensity, RestartPolicy, Service, ServiceContext,
    ServicePhase, ShutdownCause, ShutdownError, SpawnOptions, Strategy, Supervisor,
    SupervisorConfig, TerminationReason, service_fn,
};

use crate::support::{config, exact_backoff};

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

/// What one run of a [`child`] does.
#[derive(Debug, Clone, Copy)]
enum Run {
    /// Runs until asked to stop.
    Idle,
    /// Fails after this long (unless asked to stop first).
    FailAfter(Duration),
    /// Returns `Ok` after this long (unless asked to stop first).
    ExitAfter(Duration),
}

/// What the children saw, in order: `(name, "start" | "stop")`, and the
/// number of live runs (of every child) at each start.
#[derive(Debug, Clone, Default)]
struct Log {
    events: Arc<Mutex<Vec<(String, &'static str)>>>,
    live: Arc<Mutex<Vec<String>>>,
    live_at_start: Arc<Mutex<Vec<(String, usize)>>>,
}

/// Lives in a run: logs the stop when the run ends (or is dropped).
struct Live {
    name: String,
    log: Log,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.log
            .events
            .lock()
            .unwrap()
            .push((self.name.clone(), "stop"));
        let mut live = self.log.live.lock().unwrap();
        if let Some(at) = live.iter().position(|name| *name == self.name) {
            live.remove(at);
        }
    }
}

impl Log {
    fn start(&self, name: &str) -> Live {
        let mut live = self.live.lock().unwrap();
        self.live_at_start
            .lock()
            .unwrap()
            .push((name.to_owned(), live.len()));
        live.push(name.to_owned());
        self.events.lock().unwrap().push((name.to_owned(), "start"));
        Live {
            name: name.to_owned(),
            log: self.clone(),
        }
    }

    fn events(&self) -> Vec<(String, &'static str)> {
        self.events.lock().unwrap().clone()
    }

    /// The events from the `n`th on.
    fn events_from(&self, n: usize) -> Vec<String> {
        self.events()[n..]
            .iter()
            .map(|(name, what)| format!("{what} {name}"))
            .collect()
    }

    fn live_at_start(&self) -> Vec<(String, usize)> {
        self.live_at_start.lock().unwrap().clone()
    }
}

/// A child that logs its runs, running `script` one run at a time (then
/// idle).
fn child(name: &'static str, log: &Log, script: &[Run]) -> impl Service {
    let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
    let log = log.clone();
    service_fn(name, move |ctx: ServiceContext| {
        let run = script.lock().unwrap().pop_front().unwrap_or(Run::Idle);
        let live = log.start(name);
        async move {
            let _live = live;
            match run {
                Run::Idle => {
                    ctx.cancelled().await;
                    Ok(())
                }
                Run::FailAfter(after) => tokio::select! {
                    () = tokio::time::sleep(after) => anyhow::bail!("{name} failed"),
                    () = ctx.cancelled() => Ok(()),
                },
                Run::ExitAfter(after) => tokio::select! {
                    () = tokio::time::sleep(after) => Ok(()),
                    () = ctx.cancelled() => Ok(()),
                },
            }
        }
    })
}

fn with(policy: RestartPolicy) -> SpawnOptions {
    SpawnOptions::default().restart_policy(policy)
}

fn permanent() -> SpawnOptions {
    with(RestartPolicy::Always)
}

/// A supervisor with `strategy`, a fixed 100 ms backoff, and no breaker.
fn strategic(strategy: Strategy) -> Supervisor {
    Supervisor::new(
        config()
            .with_default_backoff(exact_backoff())
            .with_strategy(strategy),
    )
}

fn intense(strategy: Strategy, max_restarts: u32, period: Duration) -> SupervisorConfig {
    config()
        .with_default_backoff(exact_backoff())
        .with_strategy(strategy)
        .with_restart_intensity(RestartIntensity::new(max_restarts, period))
}

fn starts(sup: &Supervisor, name: &str) -> u64 {
    sup.service_lifecycle(name).unwrap().start_count
}

fn reason(sup: &Supervisor, name: &str) -> Option<TerminationReason> {
    sup.service_lifecycle(name)?.termination_reason
}

/// Shuts `sup` down and asserts that the drain was clean.
async fn drain_clean(sup: &Supervisor) {
    sup.trigger_shutdown();
    assert!(sup.wait_for_drain().await.is_clean());
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

async fn spawn_abc(sup: &Supervisor, log: &Log, b: &[Run]) {
    sup.spawn_service_with_options(child("a", log, &[]), permanent())
        .unwrap();
    sup.spawn_service_with_options(child("b", log, b), permanent())
        .unwrap();
    sup.spawn_service_with_options(child("c", log, &[]), permanent())
        .unwrap();
    tokio::time::sleep(MS).await;
}

// ---------------------------------------------------------------------------
// Strategies.

/// `one_for_all`: one child fails, the others stop newest first, then all
/// start again oldest first, after the failed child's backoff, with nothing
/// running in between.
#[tokio::test(start_paused = true)]
async fn one_for_all() {
    let sup = strategic(Strategy::OneForAll);
    let log = Log::default();
    spawn_abc(&sup, &log, &[Run::FailAfter(SEC)]).await;
    assert_eq!(log.events().len(), 3);

    tokio::time::sleep(SEC).await;
    // The siblings are stopped at once; the backoff (100 ms) is not over.
    assert_eq!(log.events_from(3), strings(&["stop b", "stop c", "stop a"]));
    assert_eq!(
        sup.service_lifecycle("a").unwrap().phase,
        ServicePhase::Restarting
    );
    assert_eq!(
        sup.service_lifecycle("b").unwrap().phase,
        ServicePhase::BackingOff
    );

    tokio::time::sleep(100 * MS).await;
    assert_eq!(
        log.events_from(6),
        strings(&["start a", "start b", "start c"])
    );
    // Nothing ran while the group restarted: each start saw only the ones
    // started before it in this cycle.
    let restarts: Vec<usize> = log.live_at_start()[3..].iter().map(|(_, n)| *n).collect();
    assert_eq!(restarts, [0, 1, 2]);
    assert_eq!(
        (starts(&sup, "a"), starts(&sup, "b"), starts(&sup, "c")),
        (2, 2, 2)
    );
    // The siblings' stops were not failures.
    assert_eq!(sup.service_lifecycle("a").unwrap().failures.total(), 0);
    assert_eq!(sup.service_lifecycle("b").unwrap().failures.total(), 1);

    drain_clean(&sup).await;
}

/// `rest_for_one`: the failed child and those started after it restart; the
/// ones started before it keep running.
#[tokio::test(start_paused = true)]
async fn rest_for_one() {
    let sup = strategic(Strategy::RestForOne);
    let log = Log::default();
    spawn_abc(&sup, &log, &[Run::FailAfter(SEC)]).await;

    tokio::time::sleep(SEC + 100 * MS).await;
    assert_eq!(
        log.events_from(3),
        strings(&["stop b", "stop c", "start b", "start c"])
    );
    assert_eq!(
        (starts(&sup, "a"), starts(&sup, "b"), starts(&sup, "c")),
        (1, 2, 2)
    );

    drain_clean(&sup).await;
}

/// The last child under `RestForOne` restarts alone; under `OneForOne` (the
/// default) any child does.
#[tokio::test(start_paused = true)]
async fn rest_for_one_of_the_last_child_and_one_for_one_restart_it_alone() {
    for strategy in [Strategy::RestForOne, Strategy::OneForOne] {
        let sup = strategic(strategy);
        let log = Log::default();
        sup.spawn_service_with_options(child("a", &log, &[]), permanent())
            .unwrap();
        sup.spawn_service_with_options(child("b", &log, &[Run::FailAfter(SEC)]), permanent())
            .unwrap();
        tokio::time::sleep(SEC + 100 * MS + MS).await;
        assert_eq!(
            log.events_from(2),
            strings(&["stop b", "start b"]),
            "{strategy:?}"
        );
        assert_eq!(starts(&sup, "a"), 1, "{strategy:?}");
        drain_clean(&sup).await;
    }
}

/// Restart types under `OneForAll`: a permanent child's clean exit and a
/// transient child's failure set the group off; a transient child's clean
/// exit (`Completed`) and a temporary child's exit (clean or not) do not.
#[tokio::test(start_paused = true)]
async fn restart_types_decide_whether_an_exit_sets_the_group_off() {
    let cases = [
        (RestartPolicy::Always, Run::ExitAfter(SEC), true, None),
        (RestartPolicy::Always, Run::FailAfter(SEC), true, None),
        (RestartPolicy::OnFailure, Run::FailAfter(SEC), true, None),
        (
            RestartPolicy::OnFailure,
            Run::ExitAfter(SEC),
            false,
            Some(TerminationReason::Completed),
        ),
        (
            RestartPolicy::Never,
            Run::ExitAfter(SEC),
            false,
            Some(TerminationReason::Completed),
        ),
        (
            RestartPolicy::Never,
            Run::FailAfter(SEC),
            false,
            Some(TerminationReason::Unrecoverable("x failed".into())),
        ),
    ];
    for (policy, run, cycles, ends) in cases {
        for strategy in [Strategy::OneForAll, Strategy::RestForOne] {
            let sup = strategic(strategy);
            let log = Log::default();
            sup.spawn_service_with_options(child("x", &log, &[run]), with(policy))
                .unwrap();
            sup.spawn_service_with_options(child("y", &log, &[]), permanent())
                .unwrap();
            tokio::time::sleep(SEC + 200 * MS).await;
            let case = format!("{strategy:?} {policy:?} {run:?}");
            assert_eq!(starts(&sup, "y"), if cycles { 2 } else { 1 }, "{case}");
            assert_eq!(reason(&sup, "x"), ends, "{case}");
            drain_clean(&sup).await;
        }
    }
}

/// `temporary_bystander`: a temporary (`Never`) sibling is stopped by the
/// cycle and not started again; spawned `temporary()`, it is forgotten.
#[tokio::test(start_paused = true)]
async fn temporary_bystander() {
    let sup = strategic(Strategy::OneForAll);
    let log = Log::default();
    sup.spawn_service_with_options(child("a", &log, &[Run::FailAfter(SEC)]), permanent())
        .unwrap();
    sup.spawn_service_with_options(child("kept", &log, &[]), with(RestartPolicy::Never))
        .unwrap();
    let job = with(RestartPolicy::Never).temporary();
    sup.spawn_service_with_options(child("job", &log, &[]), job)
        .unwrap();
    tokio::time::sleep(SEC + 100 * MS + MS).await;

    assert_eq!(
        log.events_from(3),
        strings(&["stop a", "stop job", "stop kept", "start a"])
    );
    assert_eq!(reason(&sup, "kept"), Some(TerminationReason::Cancelled));
    assert!(sup.service_lifecycle("job").is_none());
    assert_eq!(starts(&sup, "a"), 2);
    drain_clean(&sup).await;
}

/// `order_of_children`: start order is spawn order, stop order its reverse;
/// a name removed and spawned again goes to the end.
#[tokio::test(start_paused = true)]
async fn order_of_children() {
    let sup = strategic(Strategy::OneForAll);
    let log = Log::default();
    sup.spawn_service_with_options(child("a", &log, &[]), permanent())
        .unwrap();
    sup.spawn_service_with_options(child("b", &log, &[Run::FailAfter(SEC)]), permanent())
        .unwrap();
    sup.spawn_service_with_options(child("c", &log, &[]), permanent())
        .unwrap();
    tokio::time::sleep(MS).await;
    sup.remove_service("a").await.unwrap();
    sup.spawn_service_with_options(child("a", &log, &[]), permanent())
        .unwrap();
    tokio::time::sleep(MS).await;
    let before = log.events().len();

    tokio::time::sleep(SEC + 100 * MS).await;
    assert_eq!(
        log.events_from(before),
        strings(&[
            "stop b", "stop a", "stop c", "start b", "start c", "start a"
        ])
    );
    drain_clean(&sup).await;
}

/// Each start of a cycle waits for the previous child to be running, and
/// ready when it signals readiness itself.
#[tokio::test(start_paused = true)]
async fn a_cycle_starts_each_child_once_the_previous_one_is_ready() {
    let sup = strategic(Strategy::OneForAll);
    let log = Log::default();
    let slow = {
        let log = log.clone();
        service_fn("slow", move |ctx: ServiceContext| {
            let live = log.start("slow");
            async move {
                let _live = live;
                tokio::time::sleep(SEC).await;
                ctx.ready();
                ctx.cancelled().await;
                anyhow::Ok(())
            }
        })
    };
    sup.spawn_service_with_options(slow, permanent().signals_readiness())
        .unwrap();
    sup.spawn_service_with_options(child("b", &log, &[Run::FailAfter(2 * SEC)]), permanent())
        .unwrap();
    tokio::time::sleep(2 * SEC + 100 * MS + MS).await;
    // `slow` started again; `b` waits for it to be ready.
    assert_eq!(starts(&sup, "slow"), 2);
    assert_eq!(starts(&sup, "b"), 1);
    tokio::time::sleep(SEC).await;
    assert_eq!(starts(&sup, "b"), 2);
    drain_clean(&sup).await;
}

/// Two children that fail at once make one cycle: the second failure is
/// restarted by the first one's cycle.
#[tokio::test(start_paused = true)]
async fn failures_during_a_cycle_are_restarted_by_it() {
    let sup = Supervisor::new(intense(Strategy::OneForAll, 10, 10 * SEC));
    let log = Log::default();
    sup.spawn_service_with_options(child("a", &log, &[Run::FailAfter(SEC)]), permanent())
        .unwrap();
    sup.spawn_service_with_options(child("b", &log, &[Run::FailAfter(SEC)]), permanent())
        .unwrap();
    tokio::time::sleep(SEC + 100 * MS + MS).await;
    assert_eq!((starts(&sup, "a"), starts(&sup, "b")), (2, 2));
    tokio::time::sleep(SEC).await;
    assert_eq!((starts(&sup, "a"), starts(&sup, "b")), (2, 2));
    drain_clean(&sup).await;
}

/// A circuit breaker that opens ends that child alone, for good: no cycle.
#[tokio::test(start_paused = true)]
async fn an_open_circuit_breaker_does_not_set_the_group_off() {
    let backoff = exact_backoff().with_circuit_breaker(0, 60 * SEC);
    let sup = Supervisor::new(
        config()
            .with_default_backoff(backoff)
            .with_strategy(Strategy::OneForAll),
    );
    let log = Log::default();
    sup.spawn_service_with_options(child("a", &log, &[Run::FailAfter(SEC)]), permanent())
        .unwrap();
    sup.spawn_service_with_options(child("b", &log, &[]), permanent())
        .unwrap();
    tokio::time::sleep(2 * SEC).await;
    assert!(matches!(
        reason(&sup, "a"),
        Some(TerminationReason::CircuitBreakerOpen { .. })
    ));
    assert_eq!(starts(&sup, "b"), 1);
    drain_clean(&sup).await;
}

// ---------------------------------------------------------------------------
// Host control.

/// A host restart of one child restarts it alone, and is never charged.
#[tokio::test(start_paused = true)]
async fn a_host_restart_restarts_one_child_and_is_not_charged() {
    let sup = Supervisor::new(intense(Strategy::OneForAll, 0, 60 * SEC));
    let log = Log::default();
    spawn_abc(&sup, &log, &[]).await;
    for _ in 0..3 {
        sup.restart_service("b").await.unwrap();
    }
    assert_eq!(
        (starts(&sup, "a"), starts(&sup, "b"), starts(&sup, "c")),
        (1, 4, 1)
    );
    assert!(!sup.is_shutting_down());
    drain_clean(&sup).await;
}

/// A host stop during a cycle is final: the held child terminates `Stopped`
/// and the cycle starts the others.
#[tokio::test(start_paused = true)]
async fn a_host_stop_during_a_cycle_is_final() {
    let sup = Supervisor::new(
        config()
            .with_default_backoff(exact_backoff().with_jitter(supervisor_core::Jitter::None))
            .with_strategy(Strategy::OneForAll),
    );
    let log = Log::default();
    spawn_abc(&sup, &log, &[Run::FailAfter(SEC)]).await;
    tokio::time::sleep(SEC + 50 * MS).await;
    // Mid-cycle: `a` and `c` are held, the backoff runs.
    sup.stop_service("a").await.unwrap();
    tokio::time::sleep(100 * MS).await;
    assert_eq!(reason(&sup, "a"), Some(TerminationReason::Stopped));
    assert_eq!(
        (starts(&sup, "a"), starts(&sup, "b"), starts(&sup, "c")),
        (1, 2, 2)
    );

    // After the cycle: a stopped child stays stopped through the next one.
    sup.stop_service("c").await.unwrap();
    sup.restart_service("b").await.unwrap();
    assert!(matches!(
        sup.restart_service("c").await,
        Err(ControlError::Terminated { .. })
    ));
    drain_clean(&sup).await;
}

/// A shutdown during a cycle wins: the held children terminate `Cancelled`,
/// nothing starts again, and the drain is clean.
#[tokio::test(start_paused = true)]
async fn a_shutdown_during_a_cycle_drains_clean() {
    let sup = Supervisor::new(
        config()
            .with_default_backoff(
                BackoffConfig::new(SEC, SEC).with_jitter(supervisor_core::Jitter::None),
            )
            .with_strategy(Strategy::OneForAll),
    );
    let log = Log::default();
    spawn_abc(&sup, &log, &[Run::FailAfter(SEC)]).await;
    tokio::time::sleep(SEC + 100 * MS).await;
    let before = log.events().len();
    sup.trigger_shutdown();
    let report = sup.wait_for_drain().await;
    assert!(report.is_clean());
    assert_eq!(report.cause, Some(ShutdownCause::Requested));
    assert!(log.events_from(before).is_empty(), "nothing started again");
    for name in ["a", "b", "c"] {
        assert_eq!(
            reason(&sup, name),
            Some(TerminationReason::Cancelled),
            "{name}"
        );
        assert_eq!(starts(&sup, name), 1);
    }
}

// ---------------------------------------------------------------------------
// Restart intensity.

/// Runs `sup` until it shuts down; the error when the intensity tripped.
async fn tripped(sup: &Supervisor) -> (String, u32, Duration, supervisor_core::DrainReport) {
    match sup.run_until_shutdown().await {
        Err(ShutdownError::IntensityExceeded {
            service,
            max_restarts,
            period,
            report,
        }) => (service, max_restarts, period, report),
        other => panic!("expected the intensity to trip, got {other:?}"),
    }
}

/// `restart_intensity` edges: 0 trips on the first restart.
#[tokio::test(start_paused = true)]
async fn restart_intensity_zero_trips_on_the_first_restart() {
    for strategy in [
        Strategy::OneForOne,
        Strategy::OneForAll,
        Strategy::RestForOne,
    ] {
        let sup = Supervisor::new(intense(strategy, 0, 5 * SEC));
        let log = Log::default();
        sup.spawn_service_with_options(child("a", &log, &[Run::FailAfter(SEC)]), permanent())
            .unwrap();
        let (service, max, period, report) = tripped(&sup).await;
        assert_eq!(
            (service.as_str(), max, period),
            ("a", 0, 5 * SEC),
            "{strategy:?}"
        );
        assert!(report.is_clean());
        assert_eq!(
            report.cause,
            Some(ShutdownCause::IntensityExceeded {
                service: "a".into(),
                max_restarts: 0,
                period: 5 * SEC,
            })
        );
        assert_eq!(
            report.cause.unwrap().to_string(),
            "restart intensity exceeded: `a` called for a restart beyond 0 in 5s"
        );
        assert_eq!(starts(&sup, "a"), 1);
        assert_eq!(reason(&sup, "a"), Some(TerminationReason::Cancelled));
        assert_eq!(
            sup.service_lifecycle("a").unwrap().last_error.as_deref(),
            Some("a failed")
        );
    }
}

/// `one_for_one_escalation` / `multiple_restarts`: exactly `max_restarts`
/// restarts are tolerated, the next one trips; the others stop newest first.
#[tokio::test(start_paused = true)]
async fn one_for_one_escalation() {
    let sup = Supervisor::new(intense(Strategy::OneForOne, 3, 10 * SEC));
    let log = Log::default();
    sup.spawn_service_with_options(child("a", &log, &[]), permanent())
        .unwrap();
    let fails = [Run::FailAfter(SEC); 4];
    sup.spawn_service_with_options(child("b", &log, &fails), permanent())
        .unwrap();
    sup.spawn_service_with_options(child("c", &log, &[]), permanent())
        .unwrap();
    let (service, max, _, report) = tripped(&sup).await;
    assert_eq!((service.as_str(), max), ("b", 3));
    assert!(report.is_clean());
    assert_eq!(starts(&sup, "b"), 4);
    // The last events: `b`'s run ended, then `c`, then `a` were stopped.
    let events = log.events();
    assert_eq!(
        events[events.len() - 3..]
            .iter()
            .map(|(name, what)| format!("{what} {name}"))
            .collect::<Vec<_>>(),
        strings(&["stop b", "stop c", "stop a"])
    );
    assert_eq!(reason(&sup, "a"), Some(TerminationReason::Cancelled));
    assert_eq!(sup.metrics().snapshot().restarts_total, 3);
}

/// `one_for_all_escalation` and `rest_for_one_escalation`: a cycle is one
/// charge; the cycle that trips is not made.
#[tokio::test(start_paused = true)]
async fn one_for_all_and_rest_for_one_escalation() {
    for strategy in [Strategy::OneForAll, Strategy::RestForOne] {
        let sup = Supervisor::new(intense(strategy, 2, 60 * SEC));
        let log = Log::default();
        let fails = [Run::FailAfter(SEC); 3];
        spawn_abc(&sup, &log, &fails).await;
        let (service, max, _, report) = tripped(&sup).await;
        assert_eq!((service.as_str(), max), ("b", 2), "{strategy:?}");
        assert!(report.is_clean());
        // Two cycles, each restarting `b` and `c` once.
        assert_eq!(
            (starts(&sup, "b"), starts(&sup, "c")),
            (3, 3),
            "{strategy:?}"
        );
        let a = if strategy == Strategy::OneForAll {
            3
        } else {
            1
        };
        assert_eq!(starts(&sup, "a"), a, "{strategy:?}");
        // The tripping failure stopped nothing by itself: the drain stopped
        // `c`, then `a`, newest first (`b` was not running).
        let events = log.events();
        assert_eq!(
            events[events.len() - 3..]
                .iter()
                .map(|(name, what)| format!("{what} {name}"))
                .collect::<Vec<_>>(),
            strings(&["stop b", "stop c", "stop a"]),
            "{strategy:?}"
        );
    }
}

/// The window slides with an inclusive bound: a restart exactly `period`
/// ago still counts, one just beyond it does not.
#[tokio::test(start_paused = true)]
async fn restart_intensity_window_bound_is_inclusive() {
    // `b` fails at 1 s, then its restarts come 100 ms after each failure:
    // with runs of `gap`, the failures are at 1 s, 1.1 s + gap, … The first
    // two restarts are charged `gap + 100 ms` apart.
    for (gap, trips) in [(SEC - 100 * MS, true), (SEC - 100 * MS + MS, false)] {
        let sup = Supervisor::new(intense(Strategy::OneForOne, 1, SEC));
        let log = Log::default();
        let script = [Run::FailAfter(SEC), Run::FailAfter(gap), Run::Idle];
        sup.spawn_service_with_options(child("b", &log, &script), permanent())
            .unwrap();
        tokio::time::sleep(5 * SEC).await;
        assert_eq!(sup.is_shutting_down(), trips, "gap {gap:?}");
        if trips {
            assert!(matches!(
                sup.shutdown_cause(),
                Some(ShutdownCause::IntensityExceeded { .. })
            ));
        } else {
            sup.trigger_shutdown();
        }
        assert!(sup.wait_for_drain().await.is_clean());
    }
}

/// Clean exits of transient children and temporary exits are not charged.
#[tokio::test(start_paused = true)]
async fn exits_that_are_not_restarts_are_not_charged() {
    let sup = Supervisor::new(intense(Strategy::OneForAll, 0, 60 * SEC));
    let log = Log::default();
    sup.spawn_service_with_options(
        child("transient", &log, &[Run::ExitAfter(SEC)]),
        with(RestartPolicy::OnFailure),
    )
    .unwrap();
    sup.spawn_service_with_options(
        child("temporary", &log, &[Run::FailAfter(SEC)]),
        with(RestartPolicy::Never),
    )
    .unwrap();
    sup.spawn_service_with_options(child("c", &log, &[]), permanent())
        .unwrap();
    tokio::time::sleep(5 * SEC).await;
    assert!(!sup.is_shutting_down());
    assert_eq!(starts(&sup, "c"), 1);
    drain_clean(&sup).await;
}

/// `order_of_children`, at shutdown: under `OneForAll` (and `RestForOne`)
/// the services stop one at a time, newest first, each only once the one
/// after it stopped, however long that takes.
#[tokio::test(start_paused = true)]
async fn shutdown_stops_the_group_one_at_a_time_newest_first() {
    for strategy in [Strategy::OneForAll, Strategy::RestForOne] {
        let sup = strategic(strategy);
        let log = Log::default();
        // Each takes 1 s to stop once asked.
        let slow = |name: &'static str| {
            let log = log.clone();
            service_fn(name, move |ctx: ServiceContext| {
                let live = log.start(name);
                async move {
                    ctx.cancelled().await;
                    tokio::time::sleep(SEC).await;
                    drop(live);
                    anyhow::Ok(())
                }
            })
        };
        for name in ["a", "b", "c"] {
            sup.spawn_service_with_options(slow(name), permanent())
                .unwrap();
        }
        tokio::time::sleep(MS).await;
        let started = tokio::time::Instant::now();
        sup.trigger_shutdown();
        let report = sup.wait_for_drain().await;
        assert!(report.is_clean(), "{strategy:?}: {report:?}");
        assert_eq!(started.elapsed(), 3 * SEC, "{strategy:?}: one at a time");
        assert_eq!(
            log.events_from(3),
            strings(&["stop c", "stop b", "stop a"]),
            "{strategy:?}"
        );
    }
}

/// `multiple_restarts`: one restart per second tolerated (OTP's intensity
/// 1, period 1 s); a child failing every 2 s or so is restarted every time
/// and the supervisor lives on, and the child can still be stopped and
/// removed.
#[tokio::test(start_paused = true)]
async fn multiple_restarts() {
    let sup = Supervisor::new(intense(Strategy::OneForOne, 1, SEC));
    let log = Log::default();
    let every_two_seconds = [
        Run::FailAfter(SEC),
        Run::FailAfter(2100 * MS),
        Run::FailAfter(2100 * MS),
        Run::FailAfter(2100 * MS),
    ];
    sup.spawn_service_with_options(child("c1", &log, &every_two_seconds), permanent())
        .unwrap();
    tokio::time::sleep(10 * SEC).await;
    assert!(!sup.is_shutting_down());
    assert_eq!(starts(&sup, "c1"), 5);
    assert_eq!(sup.service_lifecycle("c1").unwrap().failures.total(), 4);
    sup.stop_service("c1").await.unwrap();
    sup.remove_service("c1").await.unwrap();
    assert!(sup.service_lifecycle("c1").is_none());
    drain_clean(&sup).await;
}

/// `c1` fails after 1 s; `c2`'s second run fails at once (OTP's child that
/// fails to start); then 2 s pass.
async fn c1_fails_then_c2_fails_to_start(sup: &Supervisor, log: &Log) {
    sup.spawn_service_with_options(child("c1", log, &[Run::FailAfter(SEC)]), permanent())
        .unwrap();
    sup.spawn_service_with_options(
        child("c2", log, &[Run::Idle, Run::FailAfter(Duration::ZERO)]),
        permanent(),
    )
    .unwrap();
    tokio::time::sleep(2 * SEC).await;
}

/// `one_for_all_other_child_fails_restart`: during a `OneForAll` restart
/// set off by `c1`, `c2`'s new run fails at once; `c1`'s new run is then
/// stopped (not failed) and the whole group restarts again, one more
/// charge, and both run.
#[tokio::test(start_paused = true)]
async fn one_for_all_other_child_fails_restart() {
    let sup = Supervisor::new(intense(Strategy::OneForAll, 3, 3600 * SEC));
    let log = Log::default();
    c1_fails_then_c2_fails_to_start(&sup, &log).await;
    assert_eq!(
        log.events_from(2),
        strings(&[
            "stop c1", // c1 fails,
            "stop c2", // the group stops,
            "start c1", "start c2", "stop c2", // c2 fails to start:
            "stop c1", // the group stops again,
            "start c1", "start c2",
        ])
    );
    assert!(!sup.is_shutting_down());
    // c1's second run was stopped by the group, not failed.
    assert_eq!(sup.service_lifecycle("c1").unwrap().failures.total(), 1);
    assert_eq!(sup.service_lifecycle("c2").unwrap().failures.total(), 1);
    for name in ["c1", "c2"] {
        assert_eq!(starts(&sup, name), 3, "{name}");
        assert_eq!(
            sup.service_lifecycle(name).unwrap().phase,
            ServicePhase::Running
        );
    }
    drain_clean(&sup).await;
}

/// `rest_for_one_other_child_fails_restart`: during a `RestForOne` restart
/// set off by `c1`, `c2`'s new run fails at once; only `c2` (and what
/// comes after it) restarts again: `c1`, already started, is left running.
#[tokio::test(start_paused = true)]
async fn rest_for_one_other_child_fails_restart() {
    let sup = Supervisor::new(intense(Strategy::RestForOne, 3, 3600 * SEC));
    let log = Log::default();
    c1_fails_then_c2_fails_to_start(&sup, &log).await;
    assert_eq!(
        log.events_from(2),
        strings(&[
            "stop c1", "stop c2", "start c1", "start c2", "stop c2", "start c2",
        ])
    );
    assert!(!sup.is_shutting_down());
    assert_eq!(starts(&sup, "c1"), 2);
    assert_eq!(starts(&sup, "c2"), 3);
    drain_clean(&sup).await;
}

/// `hanging_restart_loop`: a child stuck in a restart loop (every new run
/// fails at once, `brutal_kill`) can be stopped by the host at once, spawned
/// again into the same loop, and the supervisor's shutdown during the loop
/// does not hang.
#[tokio::test(start_paused = true)]
async fn hanging_restart_loop() {
    let sup = Supervisor::new(intense(Strategy::OneForOne, 8, 10 * SEC));
    let log = Log::default();
    let brutal_kill = permanent().stop_timeout(supervisor_core::StopTimeout::Immediate);
    let looping = [Run::FailAfter(Duration::ZERO); 32];
    let mut first = vec![Run::Idle];
    first.extend_from_slice(&looping);
    sup.spawn_service_with_options(child("child1", &log, &first), brutal_kill.clone())
        .unwrap();
    tokio::time::sleep(MS).await;
    // The loop begins: a host restart, then every run fails at once.
    sup.restart_service("child1").await.unwrap();
    tokio::time::sleep(SEC).await;
    let looped = starts(&sup, "child1");
    assert!(looped >= 4, "{looped} starts");
    assert!(!sup.is_shutting_down());

    let stopped = tokio::time::timeout(MS, sup.stop_service("child1"))
        .await
        .expect("a stop ends the loop at once")
        .unwrap();
    assert_eq!(stopped.termination_reason, Some(TerminationReason::Stopped));

    // Into the loop again, then the shutdown.
    sup.spawn_service_with_options(child("child1", &log, &looping), brutal_kill)
        .unwrap();
    tokio::time::sleep(SEC).await;
    assert!(starts(&sup, "child1") >= 4);
    sup.trigger_shutdown();
    let report = tokio::time::timeout(MS, sup.wait_for_drain())
        .await
        .expect("the shutdown does not hang in the loop");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(reason(&sup, "child1"), Some(TerminationReason::Cancelled));
}

/// A child the host is stopping when a cycle comes is not held (it will
/// not start again), but the group starts again only once its run is over:
/// nothing runs beside a group that restarts. (Found by the property test
/// over random trees.)
#[tokio::test(start_paused = true)]
async fn a_cycle_waits_for_a_child_the_host_is_stopping() {
    let sup = strategic(Strategy::OneForAll);
    let log = Log::default();
    sup.spawn_service_with_options(child("c0", &log, &[Run::FailAfter(SEC)]), permanent())
        .unwrap();
    // Takes 500 ms to stop once asked.
    let slow_log = log.clone();
    let slow = service_fn("c1", move |ctx: ServiceContext| {
        let live = slow_log.start("c1");
        async move {
            ctx.cancelled().await;
            tokio::time::sleep(500 * MS).await;
            drop(live);
            anyhow::Ok(())
        }
    });
    sup.spawn_service_with_options(slow, permanent()).unwrap();
    tokio::time::sleep(SEC - MS).await;
    let stopping = sup.stop_service("c1");

    // c0 fails at 1 s; its backoff ends at 1.1 s, c1's run at 1.499 s.
    tokio::time::sleep(2 * SEC).await;
    assert_eq!(
        log.events_from(2),
        strings(&["stop c0", "stop c1", "start c0"])
    );
    let stopped = stopping.await.unwrap();
    assert_eq!(stopped.termination_reason, Some(TerminationReason::Stopped));
    let c0 = sup.service_lifecycle("c0").unwrap();
    assert_eq!(c0.start_count, 2);
    // Started when c1's run was over, not at the end of its own backoff.
    assert_eq!(c0.last_transition_at, 1499 * MS);
    drain_clean(&sup).await;
}

/// Dependencies work under every strategy: when a dependency fails for
/// good (outside a shutdown), its dependants are stopped, as under
/// `OneForOne`.
#[tokio::test(start_paused = true)]
async fn a_dependency_that_fails_for_good_stops_its_dependants_under_every_strategy() {
    for strategy in [
        Strategy::OneForOne,
        Strategy::OneForAll,
        Strategy::RestForOne,
    ] {
        let sup = strategic(strategy);
        let log = Log::default();
        let db = child("db", &log, &[Run::FailAfter(SEC)]);
        sup.spawn_service_with_options(db, with(RestartPolicy::Never))
            .unwrap();
        let api = child("api", &log, &[]);
        sup.spawn_service_with_options(api, permanent().after(["db"]))
            .unwrap();
        tokio::time::sleep(2 * SEC).await;
        assert!(
            matches!(
                reason(&sup, "db"),
                Some(TerminationReason::Unrecoverable(_))
            ),
            "{strategy:?}"
        );
        assert_eq!(
            reason(&sup, "api"),
            Some(TerminationReason::DependencyStopped {
                dependency: "db".into()
            }),
            "{strategy:?}"
        );
        assert!(!sup.is_shutting_down(), "{strategy:?}");
        drain_clean(&sup).await;
    }
}
