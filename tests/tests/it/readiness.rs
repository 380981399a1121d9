//! Readiness, dependencies, ordered start and stop, and critical services.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervisor_core::{
    ReadyError, RestartPolicy, ServiceContext, ServicePhase, ShutdownCause, ShutdownError,
    SpawnError, SpawnOptions, TerminationReason, service_fn,
};
use tokio::time::Instant;

use crate::support::{Scripted, Step, advance, exact_backoff, supervisor};

const SECOND: Duration = Duration::from_secs(1);

/// What happened, when, in order: shared by the services of a test.
#[derive(Clone, Default)]
struct Timeline(Arc<Mutex<Vec<(Instant, String)>>>);

impl Timeline {
    fn note(&self, what: impl Into<String>) {
        self.0.lock().unwrap().push((Instant::now(), what.into()));
    }

    fn entries(&self) -> Vec<(Duration, String)> {
        let entries = self.0.lock().unwrap().clone();
        let origin = entries.first().map_or_else(Instant::now, |(at, _)| *at);
        entries
            .into_iter()
            .map(|(at, what)| (at - origin, what))
            .collect()
    }

    fn when(&self, what: &str) -> Duration {
        self.entries()
            .into_iter()
            .find(|(_, entry)| entry == what)
            .unwrap_or_else(|| panic!("no `{what}` in {:?}", self.entries()))
            .0
    }
}

/// A service that warms up for `warm_up`, says it is ready, serves until
/// cancelled, then takes `cleanup` to stop, noting each step.
fn warming(
    name: &'static str,
    warm_up: Duration,
    cleanup: Duration,
    timeline: &Timeline,
) -> impl supervisor_core::Service {
    let timeline = timeline.clone();
    service_fn(name, move |ctx: ServiceContext| {
        let timeline = timeline.clone();
        async move {
            timeline.note(format!("{name} started"));
            tokio::time::sleep(warm_up).await;
            ctx.ready();
            timeline.note(format!("{name} ready"));
            ctx.cancelled().await;
            timeline.note(format!("{name} asked to stop"));
            tokio::time::sleep(cleanup).await;
            timeline.note(format!("{name} stopped"));
            anyhow::Ok(())
        }
    })
}

fn readiness_signalled() -> SpawnOptions {
    SpawnOptions::default().signals_readiness()
}

// ---------------------------------------------------------------------------
// Readiness.

/// A service that does not signal readiness is ready as each run starts; one
/// that does is not ready until it says so, and each run starts unready.
#[tokio::test(start_paused = true)]
async fn each_run_starts_unready_and_is_ready_when_it_says_so() {
    let supervisor = supervisor();
    let timeline = Timeline::default();
    let db = supervisor
        .spawn_service_with_options(
            warming("db", SECOND, Duration::ZERO, &timeline),
            readiness_signalled(),
        )
        .unwrap();
    advance(ms(500)).await;
    let snapshot = db.snapshot();
    assert_eq!(
        (snapshot.phase, snapshot.ready),
        (ServicePhase::Running, false)
    );
    assert!(!supervisor.is_ready());
    assert_eq!(supervisor.readiness().waiting, ["db"]);

    advance(SECOND).await;
    assert!(db.snapshot().ready);
    assert!(supervisor.is_ready());

    // A restart: the new run starts unready, until it says so again.
    db.restart().await.unwrap();
    assert!(!db.snapshot().ready);
    advance(ms(1001)).await;
    assert!(db.snapshot().ready);
}

/// A context kept from an earlier run cannot mark the current run ready.
#[tokio::test(start_paused = true)]
async fn a_stale_context_cannot_mark_a_later_run_ready() {
    let supervisor = supervisor();
    let kept: Arc<Mutex<Option<ServiceContext>>> = Arc::default();
    let keeper = Arc::clone(&kept);
    let service = service_fn("db", move |ctx: ServiceContext| {
        let keeper = Arc::clone(&keeper);
        async move {
            let first = keeper.lock().unwrap().is_none();
            if first {
                *keeper.lock().unwrap() = Some(ctx.clone());
                anyhow::bail!("first run fails before it is ready");
            }
            ctx.cancelled().await;
            anyhow::Ok(())
        }
    });
    let db = supervisor
        .spawn_service_with_options(service, readiness_signalled().backoff(exact_backoff()))
        .unwrap();
    advance(SECOND).await;
    assert_eq!(
        (db.phase(), db.snapshot().start_count),
        (ServicePhase::Running, 2)
    );

    kept.lock().unwrap().as_ref().unwrap().ready();
    advance(SECOND).await;
    assert!(
        !db.snapshot().ready,
        "the first run's context is not the second run's"
    );
}

/// `wait_ready` returns when everything is up, fails when shutdown begins
/// first, and fails when a service fails for good.
#[tokio::test(start_paused = true)]
async fn wait_ready_returns_when_all_are_up_and_fails_on_shutdown_or_a_failure() {
    let supervisor = supervisor();
    let timeline = Timeline::default();
    for (name, warm_up) in [("db", 3), ("cache", 1)] {
        supervisor
            .spawn_service_with_options(
                warming(
                    name,
                    Duration::from_secs(warm_up),
                    Duration::ZERO,
                    &timeline,
                ),
                readiness_signalled(),
            )
            .unwrap();
    }
    let started = Instant::now();
    supervisor.wait_ready().await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(3));

    let failing = Scripted::new("migrate", RestartPolicy::Never, [Step::Fail(SECOND)]);
    let migrate = supervisor.spawn_service(failing).unwrap();
    migrate.wait_terminated().await;
    assert_eq!(
        supervisor.wait_ready().await,
        Err(ReadyError::Failed {
            service: "migrate".into(),
            reason: TerminationReason::Unrecoverable("run 1 failed".into())
        })
    );
    assert_eq!(supervisor.readiness().failed, ["migrate"]);
    supervisor.remove_service("migrate").await.unwrap();
    supervisor.wait_ready().await.unwrap();

    let other = crate::support::supervisor();
    other
        .spawn_service_with_options(
            warming("slow", Duration::from_secs(60), Duration::ZERO, &timeline),
            readiness_signalled(),
        )
        .unwrap();
    let waiting = tokio::spawn({
        let other = other.clone();
        async move { other.wait_ready().await }
    });
    advance(SECOND).await;
    other.trigger_shutdown();
    assert_eq!(waiting.await.unwrap(), Err(ReadyError::ShuttingDown));
}

/// Readiness turns false the moment shutdown begins, before anything stops.
#[tokio::test(start_paused = true)]
async fn readiness_turns_false_the_moment_shutdown_begins() {
    let supervisor = supervisor();
    supervisor
        .spawn_service(Scripted::new(
            "feed",
            RestartPolicy::Always,
            [Step::UntilCancelled(SECOND)],
        ))
        .unwrap();
    supervisor.wait_ready().await.unwrap();
    supervisor.trigger_shutdown();
    let readiness = supervisor.readiness();
    assert!(!readiness.ready && readiness.shutting_down);
    assert!(!supervisor.is_ready());
    assert_eq!(
        supervisor.service_lifecycle("feed").unwrap().phase,
        ServicePhase::Running
    );
}

/// Completed and stopped services do not hold readiness back; a service
/// backing off does.
#[tokio::test(start_paused = true)]
async fn only_live_unready_and_failed_services_hold_readiness_back() {
    let supervisor = supervisor();
    supervisor
        .spawn_service(Scripted::new(
            "job",
            RestartPolicy::OnFailure,
            [Step::Succeed(ms(10))],
        ))
        .unwrap();
    let feed = supervisor
        .spawn_service(Scripted::new("feed", RestartPolicy::Always, []))
        .unwrap();
    let flaky = supervisor
        .spawn_service_with_options(
            Scripted::new("flaky", RestartPolicy::Always, [Step::Fail(SECOND)]),
            SpawnOptions::with_backoff(exact_backoff()),
        )
        .unwrap();
    advance(ms(500)).await;
    assert!(supervisor.is_ready(), "{:?}", supervisor.readiness());
    flaky
        .wait_for_phase(ServicePhase::BackingOff)
        .await
        .unwrap();
    assert_eq!(supervisor.readiness().waiting, ["flaky"]);
    flaky.wait_for_phase(ServicePhase::Running).await.unwrap();
    assert!(supervisor.is_ready());
    feed.stop().await.unwrap();
    assert!(
        supervisor.is_ready(),
        "a stopped service is out of the count"
    );
}

// ---------------------------------------------------------------------------
// Dependencies.

/// A dependant starts only once its dependency is ready.
#[tokio::test(start_paused = true)]
async fn a_dependant_starts_once_its_dependencies_are_ready() {
    let supervisor = supervisor();
    let timeline = Timeline::default();
    supervisor
        .spawn_service_with_options(
            warming("db", Duration::from_secs(2), Duration::ZERO, &timeline),
            readiness_signalled(),
        )
        .unwrap();
    supervisor
        .spawn_service_with_options(
            warming("cache", SECOND, Duration::ZERO, &timeline),
            readiness_signalled(),
        )
        .unwrap();
    let api = supervisor
        .spawn_service_with_options(
            warming("api", Duration::ZERO, Duration::ZERO, &timeline),
            readiness_signalled().after(["db", "cache"]),
        )
        .unwrap();
    advance(ms(1500)).await;
    assert_eq!(api.phase(), ServicePhase::Starting, "waits for db");

    supervisor.wait_ready().await.unwrap();
    assert_eq!(timeline.when("api started"), timeline.when("db ready"));
    assert!(timeline.when("cache ready") < timeline.when("api started"));
}

/// When a dependency restarts, its dependants keep running (they are not
/// restarted with it), and a dependant's own restart waits for the
/// dependency to be ready again.
#[tokio::test(start_paused = true)]
async fn a_dependants_restart_waits_for_its_dependency_to_be_ready_again() {
    let supervisor = supervisor();
    let timeline = Timeline::default();
    let db = supervisor
        .spawn_service_with_options(
            warming("db", Duration::from_secs(2), Duration::ZERO, &timeline),
            readiness_signalled(),
        )
        .unwrap();
    let api = supervisor
        .spawn_service_with_options(
            Scripted::new("api", RestartPolicy::Always, []),
            SpawnOptions::default().after(["db"]),
        )
        .unwrap();
    supervisor.wait_ready().await.unwrap();

    db.restart().await.unwrap();
    assert_eq!(
        (api.phase(), api.snapshot().start_count),
        (ServicePhase::Running, 1)
    );
    let asked = Instant::now();
    api.restart().await.unwrap();
    assert_eq!(
        asked.elapsed(),
        Duration::from_secs(2),
        "waited for db's warm-up"
    );
    assert_eq!(api.snapshot().start_count, 2);
}

/// A dependency that stops for good stops its dependants, with a reason that
/// names it; their stops are not failures.
#[tokio::test(start_paused = true)]
async fn a_dependency_that_stops_for_good_stops_its_dependants() {
    let supervisor = supervisor();
    let db = supervisor
        .spawn_service(Scripted::new("db", RestartPolicy::Always, []))
        .unwrap();
    let api = supervisor
        .spawn_service_with_options(
            Scripted::new("api", RestartPolicy::Always, []),
            SpawnOptions::default().after(["db"]),
        )
        .unwrap();
    let web = supervisor
        .spawn_service_with_options(
            Scripted::new("web", RestartPolicy::Always, []),
            SpawnOptions::default().after(["api"]),
        )
        .unwrap();
    supervisor.wait_ready().await.unwrap();

    db.stop().await.unwrap();
    let api_end = api.wait_terminated().await;
    assert_eq!(
        api_end.termination_reason,
        Some(TerminationReason::DependencyStopped {
            dependency: "db".into()
        })
    );
    let web_end = web.wait_terminated().await;
    assert_eq!(
        web_end.termination_reason,
        Some(TerminationReason::DependencyStopped {
            dependency: "api".into()
        })
    );
    assert_eq!(supervisor.metrics().snapshot().failures.total(), 0);
}

/// A dependant waiting for a dependency that terminates never starts.
#[tokio::test(start_paused = true)]
async fn a_dependant_waiting_for_a_dependency_that_terminates_never_starts() {
    let supervisor = supervisor();
    let timeline = Timeline::default();
    supervisor
        .spawn_service_with_options(
            Scripted::new("migrate", RestartPolicy::Never, [Step::Fail(SECOND)]),
            readiness_signalled(),
        )
        .unwrap();
    let api = supervisor
        .spawn_service_with_options(
            warming("api", Duration::ZERO, Duration::ZERO, &timeline),
            SpawnOptions::default().after(["migrate"]),
        )
        .unwrap();
    let last = api.wait_terminated().await;
    assert_eq!(last.start_count, 0);
    assert_eq!(
        last.termination_reason,
        Some(TerminationReason::DependencyStopped {
            dependency: "migrate".into()
        })
    );
    assert!(timeline.entries().is_empty());
}

/// Unknown dependencies, a service that depends on itself, and terminated
/// dependencies are refused at spawn, and nothing is registered.
#[tokio::test(start_paused = true)]
async fn bad_dependencies_are_typed_errors_at_spawn() {
    let supervisor = supervisor();
    let feed = || Scripted::new("feed", RestartPolicy::Always, []);
    assert_eq!(
        supervisor
            .spawn_service_with_options(feed(), SpawnOptions::default().after(["db"]))
            .unwrap_err(),
        SpawnError::UnknownDependency {
            name: "feed".into(),
            dependency: "db".into()
        }
    );
    assert_eq!(
        supervisor
            .spawn_service_with_options(feed(), SpawnOptions::default().after(["feed"]))
            .unwrap_err(),
        SpawnError::DependencyCycle {
            name: "feed".into(),
            cycle: vec!["feed".into(), "feed".into()]
        }
    );
    let db = supervisor
        .spawn_service(Scripted::new("db", RestartPolicy::Always, []))
        .unwrap();
    db.stop().await.unwrap();
    let refused = supervisor
        .spawn_service_with_options(feed(), SpawnOptions::default().after(["db"]))
        .unwrap_err();
    assert_eq!(
        refused,
        SpawnError::DependencyTerminated {
            name: "feed".into(),
            dependency: "db".into()
        }
    );
    assert_eq!(
        refused.to_string(),
        "cannot spawn `feed`: its dependency `db` has terminated"
    );
    assert_eq!(supervisor.service_count(), 1);
}

// ---------------------------------------------------------------------------
// Ordered shutdown.

/// Shutdown stops dependants before what they depend on (reverse order of
/// start), each with its own stop timeout; independent services stop
/// concurrently; the report says where the time went.
#[tokio::test(start_paused = true)]
async fn shutdown_stops_dependants_first_and_independent_services_concurrently() {
    let supervisor = supervisor();
    let timeline = Timeline::default();
    let spawn = |name: &'static str, cleanup: u64, after: &[&'static str]| {
        supervisor
            .spawn_service_with_options(
                warming(name, Duration::ZERO, ms(cleanup), &timeline),
                readiness_signalled().after(after.iter().copied()),
            )
            .unwrap()
    };
    spawn("db", 300, &[]);
    spawn("cache", 200, &[]);
    spawn("api", 500, &["db", "cache"]);
    spawn("web", 100, &["api"]);
    spawn("metrics", 700, &[]);
    supervisor.wait_ready().await.unwrap();
    supervisor.trigger_shutdown();
    let report = supervisor.wait_for_drain().await;
    assert!(report.is_clean(), "{report:?}");

    let asked = |name: &str| timeline.when(&format!("{name} asked to stop"));
    let stopped = |name: &str| timeline.when(&format!("{name} stopped"));
    assert_eq!(
        asked("web"),
        asked("metrics"),
        "independent ones start stopping together"
    );
    assert_eq!(asked("api"), stopped("web"));
    assert_eq!(asked("db"), stopped("api"));
    assert_eq!(asked("cache"), stopped("api"));
    assert_eq!(stopped("db") - asked("web"), ms(100 + 500 + 300));
    assert_eq!(report.took, ms(900));
    assert_eq!(report.slowest[0].service, "metrics");
    assert_eq!(report.slowest[0].took, ms(700));
    assert_eq!(report.cause, Some(ShutdownCause::Requested));
}

/// In an ordered shutdown each service gets its own stop timeout from when
/// it is asked to stop, and one that ignores it is aborted and reported.
#[tokio::test(start_paused = true)]
async fn an_ordered_shutdown_gives_each_service_its_own_stop_timeout() {
    let supervisor = supervisor(); // Default stop timeout 5 s.
    let db = supervisor
        .spawn_service_with_options(
            Scripted::new("db", RestartPolicy::Always, [Step::Hang]),
            SpawnOptions::default().stop_timeout(Duration::from_secs(2)),
        )
        .unwrap();
    supervisor
        .spawn_service_with_options(
            Scripted::new("api", RestartPolicy::Always, [Step::UntilCancelled(SECOND)]),
            SpawnOptions::default().after(["db"]),
        )
        .unwrap();
    supervisor.wait_ready().await.unwrap();
    let origin = Instant::now();
    supervisor.trigger_shutdown();
    let report = supervisor.wait_for_drain().await;
    assert_eq!(
        origin.elapsed(),
        Duration::from_secs(3),
        "1 s for api, then 2 s for db"
    );
    assert_eq!(report.aborted, ["db"]);
    assert_eq!(
        db.snapshot().termination_reason,
        Some(TerminationReason::ShutdownTimeout {
            timeout: Duration::from_secs(2)
        })
    );
    assert!(
        report
            .slowest
            .iter()
            .any(|stop| stop.service == "db" && stop.aborted)
    );
}

// ---------------------------------------------------------------------------
// Critical services.

fn critical() -> SpawnOptions {
    SpawnOptions::default().critical().backoff(exact_backoff())
}

/// A critical service that fails for good shuts everything down, and
/// `run_until_shutdown` names it.
#[tokio::test(start_paused = true)]
async fn a_critical_failure_shuts_everything_down_and_run_until_shutdown_names_it() {
    let supervisor = supervisor();
    let feed = supervisor
        .spawn_service(Scripted::new(
            "feed",
            RestartPolicy::Always,
            [Step::UntilCancelled(SECOND)],
        ))
        .unwrap();
    supervisor
        .spawn_service_with_options(
            Scripted::new(
                "ledger",
                RestartPolicy::Never,
                [Step::Panic(Duration::from_secs(10))],
            ),
            critical(),
        )
        .unwrap();
    let started = Instant::now();
    match supervisor.run_until_shutdown().await {
        Err(ShutdownError::CriticalFailed {
            service,
            reason,
            report,
        }) => {
            assert_eq!(service, "ledger");
            assert_eq!(reason, TerminationReason::Panicked("run 1 panicked".into()));
            assert!(report.is_clean());
            assert_eq!(
                report.cause,
                Some(ShutdownCause::CriticalFailed {
                    service: "ledger".into(),
                    reason
                })
            );
        }
        other => panic!("expected a critical failure, got {other:?}"),
    }
    assert_eq!(started.elapsed(), Duration::from_secs(11));
    assert_eq!(
        feed.snapshot().termination_reason,
        Some(TerminationReason::Cancelled)
    );
}

/// An open circuit on a critical service is a failure for good too.
#[tokio::test(start_paused = true)]
async fn a_critical_service_whose_circuit_opens_shuts_everything_down() {
    let supervisor = supervisor();
    let breaker = supervisor_core::BackoffConfig::new(ms(10), ms(10))
        .with_jitter(supervisor_core::Jitter::None)
        .with_circuit_breaker(2, Duration::from_secs(60));
    supervisor
        .spawn_service_with_options(
            Scripted::new(
                "feed",
                RestartPolicy::Always,
                (0..5).map(|_| Step::Fail(ms(1))),
            ),
            SpawnOptions::default().critical().backoff(breaker),
        )
        .unwrap();
    let error = supervisor.run_until_shutdown().await.unwrap_err();
    assert!(
        matches!(
            error,
            ShutdownError::CriticalFailed {
                reason: TerminationReason::CircuitBreakerOpen { .. },
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("critical service `feed` failed: circuit breaker open")
    );
}

/// A critical service that completes shuts down cleanly: `Ok`, with a
/// report naming it.
#[tokio::test(start_paused = true)]
async fn a_critical_completion_shuts_down_cleanly_with_a_report_naming_it() {
    let supervisor = supervisor();
    supervisor
        .spawn_service(Scripted::new("feed", RestartPolicy::Always, []))
        .unwrap();
    supervisor
        .spawn_service_with_options(
            Scripted::new(
                "backfill",
                RestartPolicy::OnFailure,
                [Step::Fail(ms(10)), Step::Succeed(SECOND)],
            ),
            critical(),
        )
        .unwrap();
    let report = supervisor.run_until_shutdown().await.unwrap();
    assert_eq!(
        report.cause,
        Some(ShutdownCause::CriticalCompleted {
            service: "backfill".into()
        })
    );
}

/// A stop or a removal asked for by the host never triggers the critical
/// shutdown.
#[tokio::test(start_paused = true)]
async fn stopping_or_removing_a_critical_service_does_not_shut_down() {
    let supervisor = supervisor();
    let ledger = supervisor
        .spawn_service_with_options(
            Scripted::new("ledger", RestartPolicy::Always, [Step::Hang]),
            critical().stop_timeout(SECOND),
        )
        .unwrap();
    let audit = supervisor
        .spawn_service_with_options(
            Scripted::new("audit", RestartPolicy::Always, []),
            critical(),
        )
        .unwrap();
    advance(SECOND).await;
    let stopped = ledger.stop().await.unwrap();
    assert_eq!(
        stopped.termination_reason,
        Some(TerminationReason::StopTimeout { timeout: SECOND })
    );
    audit.remove().await.unwrap();
    advance(SECOND).await;
    assert!(!supervisor.is_shutting_down());
}

/// A critical dependant stopped because its dependency failed for good is a
/// critical failure; one stopped because the host stopped its dependency is
/// not.
#[tokio::test(start_paused = true)]
async fn a_critical_dependant_fails_with_a_dependency_that_failed_for_good() {
    let supervisor = supervisor();
    supervisor
        .spawn_service(Scripted::new(
            "db",
            RestartPolicy::Never,
            [Step::Fail(Duration::from_secs(5))],
        ))
        .unwrap();
    supervisor
        .spawn_service_with_options(
            Scripted::new("api", RestartPolicy::Always, []),
            critical().after(["db"]),
        )
        .unwrap();
    let error = supervisor.run_until_shutdown().await.unwrap_err();
    let ShutdownError::CriticalFailed {
        service, reason, ..
    } = error
    else {
        panic!("expected a critical failure");
    };
    assert_eq!(service, "api");
    assert_eq!(
        reason,
        TerminationReason::DependencyStopped {
            dependency: "db".into()
        }
    );

    let host = crate::support::supervisor();
    let db = host
        .spawn_service(Scripted::new("db", RestartPolicy::Always, []))
        .unwrap();
    let api = host
        .spawn_service_with_options(
            Scripted::new("api", RestartPolicy::Always, []),
            critical().after(["db"]),
        )
        .unwrap();
    host.wait_ready().await.unwrap();
    db.stop().await.unwrap();
    api.wait_terminated().await;
    advance(SECOND).await;
    assert!(!host.is_shutting_down());
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
