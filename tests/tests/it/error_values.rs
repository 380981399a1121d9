//! Errors that say more than "I failed" (suture's `ErrDoNotRestart` and
//! `ErrTerminateSupervisorTree`): `DoNotRestart` stops a service's restarts
//! under every policy, wherever it is in the error's chain; `TerminateTree`
//! shuts the whole supervisor down, in order, unless the host ignores it; a
//! panic is never mistaken for either. Paused time throughout.

use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use supervisor_core::{
    ControlError, DoNotRestart, RestartPolicy, ServiceContext, ServicePhase, ShutdownCause,
    ShutdownError, SpawnOptions, Supervisor, TerminateTree, TerminationReason, service_fn,
};

use crate::support::{config, exact_backoff, supervisor};

/// A service that runs `idle` until cancelled, then records its name in
/// `order` after `cleanup`.
fn idle(
    name: &'static str,
    order: &Arc<Mutex<Vec<&'static str>>>,
    cleanup: Duration,
) -> impl supervisor_core::Service {
    let order = Arc::clone(order);
    service_fn(name, move |ctx: ServiceContext| {
        let order = Arc::clone(&order);
        async move {
            ctx.cancelled().await;
            tokio::time::sleep(cleanup).await;
            order.lock().unwrap().push(name);
            anyhow::Ok(())
        }
    })
}

/// A service that runs for `after`, then fails with what `error` makes;
/// `starts` counts its runs.
fn failing_after<E, F>(
    name: &'static str,
    after: Duration,
    starts: &Arc<AtomicU32>,
    error: F,
) -> impl supervisor_core::Service
where
    F: Fn() -> E + Send + Sync + 'static,
    E: Into<supervisor_core::BoxError> + Send + 'static,
{
    let starts = Arc::clone(starts);
    let error = Arc::new(error);
    service_fn(name, move |_ctx: ServiceContext| {
        let error = Arc::clone(&error);
        starts.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(after).await;
            Err::<(), E>(error())
        }
    })
}

fn bad_credentials() -> DoNotRestart {
    DoNotRestart::new(std::io::Error::other("bad credentials"))
}

#[tokio::test(start_paused = true)]
async fn do_not_restart_ends_the_service_under_every_policy() {
    for policy in [
        RestartPolicy::Always,
        RestartPolicy::OnFailure,
        RestartPolicy::Never,
    ] {
        let supervisor = supervisor();
        let starts = Arc::new(AtomicU32::new(0));
        let login = failing_after("login", Duration::from_millis(10), &starts, bad_credentials);
        let options = SpawnOptions::with_backoff(exact_backoff()).restart_policy(policy);
        let handle = supervisor
            .spawn_service_with_options(login, options)
            .unwrap();

        let snapshot = handle.wait_terminated().await;
        assert_eq!(
            snapshot.termination_reason,
            Some(TerminationReason::DoNotRestart("bad credentials".into())),
            "{policy}"
        );
        assert_eq!(snapshot.start_count, 1, "{policy}");
        assert_eq!(snapshot.failures.error, 1, "{policy}");
        assert_eq!(snapshot.failures.total(), 1, "{policy}");
        assert_eq!(snapshot.last_error.as_deref(), Some("bad credentials"));
        let metrics = supervisor.metrics().snapshot();
        assert_eq!(metrics.restarts_total, 0, "{policy}");
        assert_eq!(metrics.terminated_total, 1, "{policy}");

        // Nothing starts it again, however long we wait; the supervisor
        // itself goes on, with the service failed for good.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 1, "{policy}");
        assert!(!supervisor.is_shutting_down());
        let readiness = supervisor.readiness();
        assert_eq!(readiness.failed, ["login"], "{policy}");
        assert!(!readiness.ready);
    }
}

/// An error enum whose `source` is the marker: found through it.
#[derive(Debug)]
enum LoginError {
    Rejected(DoNotRestart),
}

impl fmt::Display for LoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("login rejected")
    }
}

impl StdError for LoginError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            LoginError::Rejected(inner) => Some(inner),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn do_not_restart_is_found_deep_in_the_source_chain() {
    let supervisor = supervisor();
    let starts = Arc::new(AtomicU32::new(0));
    // anyhow context (two layers) around the marker.
    let with_context = failing_after("anyhow", Duration::from_millis(10), &starts, || {
        Err::<(), _>(bad_credentials())
            .context("logging in")
            .context("connecting to the broker")
            .unwrap_err()
    });
    // A hand-written error whose source is the marker.
    let in_enum = failing_after("enum", Duration::from_millis(10), &starts, || {
        LoginError::Rejected(bad_credentials())
    });
    // The marker around an anyhow error with its own context.
    let around_anyhow = failing_after("around", Duration::from_millis(10), &starts, || {
        DoNotRestart::new(anyhow::anyhow!("bad credentials").context("logging in"))
    });
    // The marker in an `anyhow::Error` (as `?` puts it), no context: boxed,
    // anyhow hides the marker's own type, not what its `source` returns.
    let in_anyhow = failing_after("in_anyhow", Duration::from_millis(10), &starts, || {
        let asked: anyhow::Result<()> = (|| Err(bad_credentials())?)();
        asked.unwrap_err()
    });
    let handles = [
        supervisor.spawn_service(with_context).unwrap(),
        supervisor.spawn_service(in_enum).unwrap(),
        supervisor.spawn_service(around_anyhow).unwrap(),
        supervisor.spawn_service(in_anyhow).unwrap(),
    ];

    let expected = [
        "connecting to the broker: logging in: bad credentials",
        "login rejected: bad credentials",
        "logging in: bad credentials",
        "bad credentials",
    ];
    for (handle, message) in handles.iter().zip(expected) {
        let snapshot = handle.wait_terminated().await;
        assert_eq!(
            snapshot.termination_reason,
            Some(TerminationReason::DoNotRestart(message.into()))
        );
        assert_eq!(snapshot.last_error.as_deref(), Some(message));
        assert_eq!(snapshot.start_count, 1);
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(starts.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn a_critical_service_that_asks_not_to_be_restarted_shuts_down_as_critical_failed() {
    let supervisor = supervisor();
    let order = Arc::new(Mutex::new(Vec::new()));
    supervisor
        .spawn_service(idle("cache", &order, Duration::ZERO))
        .unwrap();
    let starts = Arc::new(AtomicU32::new(0));
    let ledger = failing_after("ledger", Duration::from_secs(1), &starts, bad_credentials);
    let options = SpawnOptions::with_backoff(exact_backoff())
        .restart_policy(RestartPolicy::Always)
        .critical();
    supervisor
        .spawn_service_with_options(ledger, options)
        .unwrap();

    let reason = TerminationReason::DoNotRestart("bad credentials".into());
    match supervisor.run_until_shutdown().await {
        Err(ShutdownError::CriticalFailed {
            service,
            reason: got,
            report,
        }) => {
            assert_eq!(service, "ledger");
            assert_eq!(got, reason);
            assert!(report.is_clean());
            assert_eq!(
                report.cause,
                Some(ShutdownCause::CriticalFailed {
                    service: "ledger".into(),
                    reason: reason.clone(),
                })
            );
        }
        other => panic!("unexpected: {other:?}"),
    }
    assert_eq!(starts.load(Ordering::SeqCst), 1);
    assert_eq!(*order.lock().unwrap(), ["cache"]);
    assert_eq!(
        supervisor
            .service_lifecycle("cache")
            .unwrap()
            .termination_reason,
        Some(TerminationReason::Cancelled)
    );
}

#[tokio::test(start_paused = true)]
async fn the_dependants_of_a_service_that_asks_not_to_be_restarted_stop() {
    let supervisor = supervisor();
    let order = Arc::new(Mutex::new(Vec::new()));
    let starts = Arc::new(AtomicU32::new(0));
    let db = failing_after("db", Duration::from_secs(1), &starts, bad_credentials);
    supervisor
        .spawn_service_with_options(
            db,
            SpawnOptions::default().restart_policy(RestartPolicy::Always),
        )
        .unwrap();
    let api = supervisor
        .spawn_service_with_options(
            idle("api", &order, Duration::ZERO),
            SpawnOptions::default().after(["db"]),
        )
        .unwrap();
    supervisor
        .spawn_service(idle("unrelated", &order, Duration::ZERO))
        .unwrap();

    let snapshot = api.wait_terminated().await;
    assert_eq!(
        snapshot.termination_reason,
        Some(TerminationReason::DependencyStopped {
            dependency: "db".into()
        })
    );
    assert_eq!(snapshot.failures.total(), 0);
    assert_eq!(*order.lock().unwrap(), ["api"]);
    // The rest of the supervisor goes on.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!supervisor.is_shutting_down());
    assert_eq!(
        supervisor.service_lifecycle("unrelated").unwrap().phase,
        ServicePhase::Running
    );
    assert_eq!(starts.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn terminate_tree_drains_every_service_in_order() {
    let supervisor = supervisor();
    let order = Arc::new(Mutex::new(Vec::new()));
    // `api` depends on `db`: it must stop first, even though it takes longer.
    supervisor
        .spawn_service(idle("db", &order, Duration::ZERO))
        .unwrap();
    supervisor
        .spawn_service_with_options(
            idle("api", &order, Duration::from_millis(300)),
            SpawnOptions::default().after(["db"]),
        )
        .unwrap();
    let starts = Arc::new(AtomicU32::new(0));
    let migrate = failing_after("migrate", Duration::from_secs(1), &starts, || {
        anyhow::Error::new(TerminateTree::new(std::io::Error::other(
            "schema is newer than this binary",
        )))
        .context("migrating")
    });
    let options = SpawnOptions::with_backoff(exact_backoff()).restart_policy(RestartPolicy::Always);
    supervisor
        .spawn_service_with_options(migrate, options)
        .unwrap();
    // A dependant of the service that terminates the tree stops for the
    // shutdown, not for its dependency.
    supervisor
        .spawn_service_with_options(
            idle("report", &order, Duration::from_millis(100)),
            SpawnOptions::default().after(["migrate"]),
        )
        .unwrap();

    let error = "migrating: schema is newer than this binary";
    let started = tokio::time::Instant::now();
    match supervisor.run_until_shutdown().await {
        Err(ShutdownError::TreeTerminated {
            service,
            error: got,
            report,
        }) => {
            assert_eq!(service, "migrate");
            assert_eq!(got, error);
            assert!(report.is_clean());
            assert_eq!(
                report.cause,
                Some(ShutdownCause::TreeTerminated {
                    service: "migrate".into(),
                    error: error.into(),
                })
            );
        }
        other => panic!("unexpected: {other:?}"),
    }
    // The drain: `api` (300 ms of cleanup) before `db`; `report` meanwhile.
    assert_eq!(*order.lock().unwrap(), ["report", "api", "db"]);
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(1_300),
        "one second of running, then the slowest stop"
    );
    assert_eq!(starts.load(Ordering::SeqCst), 1);

    let migrate = supervisor.service_lifecycle("migrate").unwrap();
    assert_eq!(
        migrate.termination_reason,
        Some(TerminationReason::TerminateTree(error.into()))
    );
    assert_eq!(migrate.failures.error, 1);
    assert_eq!(migrate.last_error.as_deref(), Some(error));
    for name in ["db", "api", "report"] {
        let snapshot = supervisor.service_lifecycle(name).unwrap();
        assert_eq!(
            snapshot.termination_reason,
            Some(TerminationReason::Cancelled),
            "{name}"
        );
    }
    assert_eq!(
        ShutdownError::TreeTerminated {
            service: "migrate".into(),
            error: error.into(),
            report: Default::default(),
        }
        .to_string(),
        "service `migrate` asked to terminate the supervisor: migrating: schema is newer than this binary"
    );
}

#[tokio::test(start_paused = true)]
async fn a_critical_service_that_terminates_the_tree_is_the_tree_termination() {
    let supervisor = supervisor();
    let starts = Arc::new(AtomicU32::new(0));
    let ledger = failing_after("ledger", Duration::from_secs(1), &starts, || {
        TerminateTree::new("corrupt journal")
    });
    supervisor
        .spawn_service_with_options(ledger, SpawnOptions::default().critical())
        .unwrap();
    match supervisor.run_until_shutdown().await {
        Err(ShutdownError::TreeTerminated { service, error, .. }) => {
            assert_eq!(service, "ledger");
            assert_eq!(error, "corrupt journal");
        }
        other => panic!("unexpected: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn an_ignored_terminate_tree_ends_only_its_service() {
    let supervisor = Supervisor::new(config().ignore_terminate_tree());
    let order = Arc::new(Mutex::new(Vec::new()));
    supervisor
        .spawn_service(idle("api", &order, Duration::ZERO))
        .unwrap();
    let starts = Arc::new(AtomicU32::new(0));
    let plugin = failing_after("plugin", Duration::from_secs(1), &starts, || {
        TerminateTree::new("stop everything")
    });
    let plugin = supervisor
        .spawn_service_with_options(
            plugin,
            SpawnOptions::with_backoff(exact_backoff()).restart_policy(RestartPolicy::Always),
        )
        .unwrap();

    let snapshot = plugin.wait_terminated().await;
    assert_eq!(
        snapshot.termination_reason,
        Some(TerminationReason::DoNotRestart("stop everything".into()))
    );
    assert_eq!(snapshot.failures.error, 1);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(starts.load(Ordering::SeqCst), 1);
    assert!(!supervisor.is_shutting_down());
    assert_eq!(
        supervisor.service_lifecycle("api").unwrap().phase,
        ServicePhase::Running
    );
    assert!(order.lock().unwrap().is_empty());

    supervisor.trigger_shutdown();
    let report = supervisor.run_until_shutdown().await.unwrap();
    assert_eq!(report.cause, Some(ShutdownCause::Requested));
}

/// An error whose `Display` panics.
#[derive(Debug)]
struct PanicsWhenShown;

impl fmt::Display for PanicsWhenShown {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("cannot show this error")
    }
}

impl StdError for PanicsWhenShown {}

/// An error whose `source` panics, with the marker behind it.
#[derive(Debug)]
struct PanicsWhenWalked;

impl fmt::Display for PanicsWhenWalked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("walk me")
    }
}

impl StdError for PanicsWhenWalked {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        panic!("cannot walk this error")
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_never_mistaken_for_either() {
    let supervisor = supervisor();
    let starts = Arc::new(AtomicU32::new(0));
    // A panic whose payload is a marker.
    let counted = Arc::clone(&starts);
    let payload = service_fn("payload", move |_ctx: ServiceContext| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            std::panic::panic_any(TerminateTree::new("not an error value"));
            #[allow(unreachable_code)]
            anyhow::Ok(())
        }
    });
    let restarted = SpawnOptions::with_backoff(exact_backoff());
    let payload = supervisor
        .spawn_service_with_options(payload, restarted.clone())
        .unwrap();
    // A marker around an error whose `Display` panics.
    let shown = Arc::new(AtomicU32::new(0));
    let shown_service = failing_after("shown", Duration::from_millis(10), &shown, || {
        DoNotRestart::new(PanicsWhenShown)
    });
    let shown_handle = supervisor
        .spawn_service_with_options(shown_service, restarted.clone())
        .unwrap();
    // An error whose `source` panics before the walk reaches anything.
    let walked = Arc::new(AtomicU32::new(0));
    let walked_service = failing_after("walked", Duration::from_millis(10), &walked, || {
        PanicsWhenWalked
    });
    let walked_handle = supervisor
        .spawn_service_with_options(
            walked_service,
            SpawnOptions::default().restart_policy(RestartPolicy::Never),
        )
        .unwrap();

    tokio::time::sleep(Duration::from_secs(2)).await;
    // Restarted by policy, as panics: no escalation, no shutdown.
    assert!(!supervisor.is_shutting_down());
    for (handle, starts) in [(&payload, &starts), (&shown_handle, &shown)] {
        let snapshot = handle.snapshot();
        assert!(snapshot.phase.is_alive(), "{snapshot:?}");
        assert!(snapshot.start_count >= 3, "{snapshot:?}");
        assert_eq!(snapshot.failures.panic, snapshot.failures.total());
        assert!(starts.load(Ordering::SeqCst) >= 3);
    }
    assert!(
        shown_handle
            .snapshot()
            .last_error
            .unwrap()
            .contains("cannot show this error")
    );
    let walked = walked_handle.wait_terminated().await;
    assert_eq!(
        walked.termination_reason,
        Some(TerminationReason::Panicked("cannot walk this error".into()))
    );
    assert_eq!(walked.failures.panic, 1);
}

#[tokio::test(start_paused = true)]
async fn a_host_restart_does_not_restart_a_run_that_asks_not_to_be() {
    let supervisor = supervisor();
    let starts = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&starts);
    // Asked to stop, it says it must not be restarted.
    let session = service_fn("session", move |ctx: ServiceContext| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            ctx.cancelled().await;
            Err::<(), _>(DoNotRestart::new("session revoked"))
        }
    });
    let handle = supervisor.spawn_service(session).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let reason = TerminationReason::DoNotRestart("session revoked".into());
    assert_eq!(
        handle.restart().await,
        Err(ControlError::Terminated {
            name: "session".into(),
            reason: reason.clone(),
        })
    );
    let snapshot = handle.snapshot();
    assert_eq!(snapshot.termination_reason, Some(reason));
    assert_eq!(snapshot.failures.error, 1);
    assert_eq!(starts.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_stop_decides_over_either_the_failure_still_recorded() {
    let supervisor = supervisor();
    let session = service_fn("session", |ctx: ServiceContext| async move {
        ctx.cancelled().await;
        Err::<(), _>(TerminateTree::new("on the way out"))
    });
    let handle = supervisor.spawn_service(session).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;

    handle.stop().await.unwrap();
    let snapshot = handle.snapshot();
    assert_eq!(
        snapshot.termination_reason,
        Some(TerminationReason::Stopped)
    );
    assert_eq!(snapshot.failures.error, 1);
    assert_eq!(snapshot.last_error.as_deref(), Some("on the way out"));
    assert!(!supervisor.is_shutting_down());
}
