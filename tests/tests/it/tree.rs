//! Supervision trees: a supervisor nested in another through a
//! `SupervisorSpec`, ported as behaviour from OTP's `supervisor_SUITE` where
//! a case exists (`tree`, `nested_escalation`...). Every test runs under
//! paused time and records what the services themselves saw: their starts
//! and stops, in order, under their full paths.
//!
//! Where we depart from OTP on purpose (asserted as such): a node restarted
//! by its policy waits for its backoff first.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervisor_core::{
    ControlError, EventKind, NestedError, RestartIntensity, RestartPolicy, Service, ServiceContext,
    ServiceHandle, ServicePhase, ShutdownCause, ShutdownError, SpawnError, SpawnOptions, Strategy,
    Supervisor, SupervisorConfig, SupervisorSpec, TerminationReason, service_fn,
};
use supervisor_prometheus::PrometheusSink;
use supervisor_prometheus::prometheus_client::registry::Registry;

use crate::support::{config, exact_backoff};

const SEC: Duration = Duration::from_secs(1);

/// What one run of a [`child`] does.
#[derive(Debug, Clone, Copy)]
enum Run {
    /// Runs until asked to stop.
    Idle,
    /// Fails after this long (unless asked to stop first).
    FailAfter(Duration),
}

/// What the services saw, in order: `"start db/pool"`, `"stop db/pool"`.
#[derive(Debug, Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn from(&self, n: usize) -> Vec<String> {
        self.lines()[n..].to_vec()
    }
}

/// Logs the stop of a run when it ends (or is dropped).
struct Live(String, Log);

impl Drop for Live {
    fn drop(&mut self) {
        self.1.push(format!("stop {}", self.0));
    }
}

/// A child that logs its runs under its full path, playing `script` one run
/// at a time, then idle. The script is shared by every spawn of the child
/// (a node's restart spawns it again).
fn child(
    name: &'static str,
    log: &Log,
    script: &Arc<Mutex<VecDeque<Run>>>,
) -> impl Service + use<> {
    let script = Arc::clone(script);
    let log = log.clone();
    service_fn(name, move |ctx: ServiceContext| {
        let run = script.lock().unwrap().pop_front().unwrap_or(Run::Idle);
        log.push(format!("start {}", ctx.name()));
        let live = Live(ctx.name().to_owned(), log.clone());
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
            }
        }
    })
}

fn idle(name: &'static str, log: &Log) -> impl Service + use<> {
    child(name, log, &script([]))
}

fn script<const N: usize>(runs: [Run; N]) -> Arc<Mutex<VecDeque<Run>>> {
    Arc::new(Mutex::new(runs.into_iter().collect()))
}

fn permanent() -> SpawnOptions {
    SpawnOptions::default().restart_policy(RestartPolicy::Always)
}

/// The test configuration with an exact 100 ms backoff.
fn exact() -> SupervisorConfig {
    config().with_default_backoff(exact_backoff())
}

/// Handles the factories spawned, every run.
type Handles = Arc<Mutex<Vec<ServiceHandle>>>;

/// Lets the services run for `d` of virtual time.
async fn advance(d: Duration) {
    tokio::time::sleep(d).await;
}

#[tokio::test(start_paused = true)]
async fn tree() {
    let log = Log::default();
    let handles: Handles = Arc::default();
    let root = Supervisor::new(exact());
    root.spawn_service_with_options(idle("a", &log), permanent())
        .unwrap();
    let (factory_log, spawned) = (log.clone(), Arc::clone(&handles));
    let db = SupervisorSpec::new("db", exact(), move |db: &Supervisor| {
        let pool1 = db.spawn_service_with_options(idle("pool1", &factory_log), permanent())?;
        let pool2 = db.spawn_service_with_options(
            idle("pool2", &factory_log),
            permanent().after(["pool1"]),
        )?;
        spawned.lock().unwrap().extend([pool1, pool2]);
        Ok(())
    });
    root.spawn_supervisor_with_options(db, SpawnOptions::default().after(["a"]))
        .unwrap();
    root.spawn_service_with_options(idle("b", &log), permanent().after(["db"]))
        .unwrap();

    root.wait_ready().await.unwrap();
    assert_eq!(
        log.lines(),
        ["start a", "start db/pool1", "start db/pool2", "start b"]
    );
    let status = root.status();
    let rows: Vec<(&str, Option<&str>)> = status
        .iter()
        .map(|s| (s.snapshot.service_name.as_str(), s.supervisor.as_deref()))
        .collect();
    assert_eq!(
        rows,
        [
            ("a", None),
            ("b", None),
            ("db", None),
            ("db/pool1", Some("db")),
            ("db/pool2", Some("db")),
        ]
    );
    assert_eq!(status[4].dependencies, ["db/pool1"]);
    let names: Vec<String> = root
        .lifecycle_snapshots()
        .into_iter()
        .map(|s| s.service_name)
        .collect();
    assert_eq!(names, ["a", "b", "db", "db/pool1", "db/pool2"]);
    // The node waits for its child's drain, whatever it takes.
    assert_eq!(
        status[2].stop_timeout,
        supervisor_core::StopTimeout::Infinity
    );

    root.trigger_shutdown();
    let report = root.wait_for_drain().await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        log.from(4),
        ["stop b", "stop db/pool2", "stop db/pool1", "stop a"]
    );
    for snapshot in root.lifecycle_snapshots() {
        assert_eq!(snapshot.phase, ServicePhase::Terminated, "{snapshot:?}");
    }
    for handle in handles.lock().unwrap().iter() {
        let snapshot = handle.snapshot();
        assert_eq!(snapshot.phase, ServicePhase::Terminated, "{snapshot:?}");
        assert_eq!(
            snapshot.termination_reason,
            Some(TerminationReason::Cancelled)
        );
    }
    let metrics = root.metrics().snapshot();
    assert_eq!(metrics.spawned_total, 5);
    assert_eq!(metrics.active_services, 0);
}

/// A node `db` over `w1`, `w2` and `crash`, whose child tolerates
/// `max_restarts` in 10 s; `crash` plays `crashes`, then idles.
fn crashing_db<const N: usize>(
    log: &Log,
    handles: &Handles,
    max_restarts: u32,
    crashes: [Run; N],
) -> SupervisorSpec {
    let crashes = script(crashes);
    let (log, handles) = (log.clone(), Arc::clone(handles));
    let config = exact().with_restart_intensity(RestartIntensity::new(max_restarts, 10 * SEC));
    SupervisorSpec::new("db", config, move |db: &Supervisor| {
        let w1 = db.spawn_service_with_options(idle("w1", &log), permanent())?;
        let w2 = db.spawn_service_with_options(idle("w2", &log), permanent())?;
        let crash = db.spawn_service_with_options(child("crash", &log, &crashes), permanent())?;
        handles.lock().unwrap().extend([w1, w2, crash]);
        Ok(())
    })
}

#[tokio::test(start_paused = true)]
async fn nested_escalation() {
    let log = Log::default();
    let handles: Handles = Arc::default();
    let root = Supervisor::new(exact());
    let db = crashing_db(&log, &handles, 2, [Run::FailAfter(SEC); 3]);
    let node = root.spawn_supervisor(db).unwrap();
    let mut events = root.subscribe();

    // Three failures: two restarts, the third trips `db`'s intensity.
    // Failures at 1 s, 2.1 s and 3.3 s; the node restarts 100 ms later.
    advance(5 * SEC).await;
    let lines = log.lines();
    let tripped = lines
        .iter()
        .rposition(|line| line == "stop db/crash")
        .unwrap();
    assert_eq!(
        lines[tripped..],
        [
            "stop db/crash",
            "stop db/w2",
            "stop db/w1",
            "start db/w1",
            "start db/w2",
            "start db/crash",
        ],
        "{lines:?}"
    );

    // The node failed with the escalation, and was restarted by its policy.
    let snapshot = node.snapshot();
    assert_eq!(snapshot.start_count, 2);
    assert_eq!(snapshot.failures.error, 1);
    assert_eq!(
        snapshot.last_error.as_deref(),
        Some(
            "supervisor `db` escalated: restart intensity exceeded: `db/crash` called for a restart beyond 2 in 10s"
        )
    );
    // Fresh children: a first run each, in a fresh intensity window.
    let first = handles.lock().unwrap()[..3].to_vec();
    assert_eq!(first[2].snapshot().start_count, 3);
    for (old, name) in first.iter().zip(["db/w1", "db/w2", "db/crash"]) {
        assert!(old.is_removed(), "{name}");
        let fresh = root.service(name).unwrap();
        assert_eq!(fresh.snapshot().start_count, 1, "{name}");
        assert_eq!(fresh.phase(), ServicePhase::Running, "{name}");
    }
    // The tree's counters: two restarts of `crash`, one of `db`.
    assert_eq!(root.metrics().snapshot().restarts_total, 3);

    // The subscriber saw the node's failure after its child's services
    // terminated.
    let mut seen = Vec::new();
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(1), events.recv()).await {
        seen.push(event);
    }
    let node_failed = seen
        .iter()
        .position(|e| &*e.service == "db" && e.to == ServicePhase::BackingOff)
        .unwrap();
    let w1_terminated = seen
        .iter()
        .position(|e| &*e.service == "db/w1" && e.to == ServicePhase::Terminated)
        .unwrap();
    assert!(w1_terminated < node_failed);

    root.trigger_shutdown();
    assert!(root.wait_for_drain().await.is_clean());
    assert_eq!(root.metrics().snapshot().active_services, 0);
}

#[tokio::test(start_paused = true)]
async fn nested_escalation_one_for_all() {
    let log = Log::default();
    let handles: Handles = Arc::default();
    let root = Supervisor::new(exact().with_strategy(Strategy::OneForAll));
    let node = root
        .spawn_supervisor(crashing_db(&log, &handles, 0, [Run::FailAfter(SEC)]))
        .unwrap();
    let sibling = root
        .spawn_service_with_options(idle("sibling", &log), permanent())
        .unwrap();

    advance(2 * SEC).await;
    // The escalation of `db` is a failure of a child of a `one_for_all`
    // root: `sibling` cycles with it, and starts after it.
    assert_eq!(node.snapshot().start_count, 2);
    assert_eq!(sibling.snapshot().start_count, 2);
    let lines = log.lines();
    let escalated = lines.iter().position(|l| l == "stop db/crash").unwrap();
    assert_eq!(
        lines[escalated..],
        [
            "stop db/crash",
            "stop db/w2",
            "stop db/w1",
            "stop sibling",
            "start db/w1",
            "start db/w2",
            "start db/crash",
            "start sibling",
        ]
    );
    root.trigger_shutdown();
    assert!(root.wait_for_drain().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn nested_intensity_exceeded() {
    let log = Log::default();
    let handles: Handles = Arc::default();
    let root = Supervisor::new(exact().with_restart_intensity(RestartIntensity::new(1, 60 * SEC)));
    // `db` tolerates no restart: each failure of `crash` escalates.
    root.spawn_supervisor(crashing_db(&log, &handles, 0, [Run::FailAfter(SEC); 10]))
        .unwrap();
    root.spawn_service_with_options(idle("sibling", &log), permanent())
        .unwrap();

    match root.run_until_shutdown().await {
        Err(ShutdownError::IntensityExceeded {
            service,
            max_restarts,
            report,
            ..
        }) => {
            assert_eq!(service, "db");
            assert_eq!(max_restarts, 1);
            assert!(report.is_clean(), "{report:?}");
        }
        other => panic!("unexpected: {other:?}"),
    }
    // Two escalations: the first restarted `db`, the second tripped the root.
    let escalations = log.lines().iter().filter(|l| *l == "stop db/crash").count();
    assert_eq!(escalations, 2);
    let db = root.service_lifecycle("db").unwrap();
    assert_eq!(db.start_count, 2);
    assert!(
        db.last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("supervisor `db` escalated")),
        "{db:?}"
    );
    assert_eq!(root.metrics().snapshot().active_services, 0);
}

#[tokio::test(start_paused = true)]
async fn nested_paths() {
    let log = Log::default();
    let mut registry = Registry::default();
    let sink = Arc::new(PrometheusSink::register(&mut registry));
    let root = Supervisor::new(exact().with_metrics_sink(sink));
    let children: Arc<Mutex<Vec<Supervisor>>> = Arc::default();
    for node in ["db", "cache"] {
        let (log, children) = (log.clone(), Arc::clone(&children));
        let spec = SupervisorSpec::new(node, exact(), move |child: &Supervisor| {
            // The same leaf name under two nodes.
            child.spawn_service_with_options(idle("pool", &log), permanent())?;
            child.spawn_service_with_options(idle("other", &log), permanent())?;
            children.lock().unwrap().push(child.clone());
            Ok(())
        });
        root.spawn_supervisor(spec).unwrap();
    }
    let mut events = root.subscribe();
    root.wait_ready().await.unwrap();

    // A `/` in a name is refused, at the root and in a child.
    let refused = root.spawn_service(idle("db/pool", &log)).unwrap_err();
    assert_eq!(
        refused,
        SpawnError::InvalidName {
            name: "db/pool".into()
        }
    );
    let db = children.lock().unwrap()[0].clone();
    assert!(matches!(
        db.spawn_service(idle("a/b", &log)),
        Err(SpawnError::InvalidName { .. })
    ));
    // A duplicate within one supervisor is refused, under its path.
    assert_eq!(
        db.spawn_service(idle("pool", &log)).unwrap_err(),
        SpawnError::DuplicateName {
            name: "db/pool".into()
        }
    );
    // The child takes names relative to itself.
    assert_eq!(db.service("pool").unwrap().name(), "db/pool");
    assert_eq!(
        db.service_lifecycle("pool").unwrap().service_name,
        "db/pool"
    );

    // The root takes whole paths.
    let pool = root.service("db/pool").unwrap();
    assert_eq!(pool.name(), "db/pool");
    assert_eq!(
        root.service_lifecycle("cache/pool").unwrap().service_name,
        "cache/pool"
    );
    assert!(root.service("db/missing").is_none());
    assert!(root.service("nowhere/pool").is_none());
    assert!(matches!(
        root.stop_service("db/missing").await,
        Err(ControlError::NotFound { .. })
    ));
    root.restart_service("db/other").await.unwrap();
    assert_eq!(root.service_lifecycle("db/other").unwrap().start_count, 2);
    let stopped = root.stop_service("db/pool").await.unwrap();
    assert_eq!(stopped.termination_reason, Some(TerminationReason::Stopped));
    // Only `db/pool` stopped.
    assert_eq!(
        root.service_lifecycle("cache/pool").unwrap().phase,
        ServicePhase::Running
    );

    // Events carry the path.
    let mut seen = Vec::new();
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(1), events.recv()).await {
        seen.push(event);
    }
    assert!(seen.iter().any(|e| &*e.service == "db/pool"
        && e.kind == EventKind::Transition
        && e.to == ServicePhase::Terminated));
    assert!(seen.iter().any(|e| &*e.service == "cache/pool"));

    // Metric labels carry the path.
    let text = supervisor_prometheus::render(&registry).unwrap();
    for path in ["db/pool", "cache/pool", "db"] {
        let label = format!("service=\"{path}\"");
        assert!(text.contains(&label), "{label} in {text}");
    }

    root.trigger_shutdown();
    assert!(root.wait_for_drain().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn nested_readiness() {
    let root = Supervisor::new(exact());
    let spec = SupervisorSpec::new("db", exact(), |db: &Supervisor| {
        let warming = service_fn("warm", |ctx: ServiceContext| async move {
            tokio::time::sleep(5 * SEC).await;
            ctx.ready();
            ctx.cancelled().await;
            anyhow::Ok(())
        });
        db.spawn_service_with_options(warming, SpawnOptions::default().signals_readiness())?;
        Ok(())
    });
    root.spawn_supervisor(spec).unwrap();

    advance(SEC).await;
    assert!(!root.is_ready());
    assert_eq!(root.readiness().waiting, ["db"]);
    let db = root.service("db").unwrap();
    assert!(!db.snapshot().ready);
    assert!(!root.service("db/warm").unwrap().snapshot().ready);

    let started = tokio::time::Instant::now();
    root.wait_ready().await.unwrap();
    assert_eq!(started.elapsed(), 4 * SEC);
    assert!(db.snapshot().ready);
    assert!(root.service("db/warm").unwrap().snapshot().ready);

    root.trigger_shutdown();
    assert!(root.wait_for_drain().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn nested_start_failure() {
    let root = Supervisor::new(exact().with_restart_intensity(RestartIntensity::new(2, 60 * SEC)));
    let spec = SupervisorSpec::new("db", exact(), |db: &Supervisor| {
        db.spawn_service(service_fn("x/y", |_ctx: ServiceContext| async {
            anyhow::Ok(())
        }))?;
        Ok(())
    });
    root.spawn_supervisor(spec).unwrap();
    match root.run_until_shutdown().await {
        Err(ShutdownError::IntensityExceeded { service, .. }) => assert_eq!(service, "db"),
        other => panic!("unexpected: {other:?}"),
    }
    let db = root.service_lifecycle("db").unwrap();
    assert_eq!(db.start_count, 3);
    assert_eq!(
        db.last_error.as_deref(),
        Some(
            "supervisor `db` could not start its children: cannot spawn `x/y`: a name must not contain `/`, the separator of nested paths"
        )
    );
}

#[tokio::test(start_paused = true)]
async fn nested_factory_panics() {
    let root = Supervisor::new(exact());
    let spec = SupervisorSpec::new("boom", exact(), |_: &Supervisor| {
        panic!("no children today")
    });
    let options = SpawnOptions::default().restart_policy(RestartPolicy::Never);
    let node = root.spawn_supervisor_with_options(spec, options).unwrap();
    let snapshot = node.wait_terminated().await;
    let error = NestedError::Panicked {
        supervisor: "boom".into(),
        message: "no children today".into(),
    };
    assert_eq!(
        snapshot.termination_reason,
        Some(TerminationReason::Unrecoverable(error.to_string()))
    );
    // A node that never started its children leaves nothing behind.
    assert_eq!(root.status().len(), 1);
    root.trigger_shutdown();
    assert!(root.wait_for_drain().await.is_clean());
    assert_eq!(root.metrics().snapshot().active_services, 0);
}

#[tokio::test(start_paused = true)]
async fn nested_host_shutdown_is_clean() {
    // A child whose host shuts it down (here its factory's handle) ends the
    // node's run cleanly: a permanent node starts a fresh child.
    let children: Arc<Mutex<Vec<Supervisor>>> = Arc::default();
    let kept = Arc::clone(&children);
    let log = Log::default();
    let factory_log = log.clone();
    let root = Supervisor::new(exact());
    let spec = SupervisorSpec::new("db", exact(), move |db: &Supervisor| {
        db.spawn_service(idle("pool", &factory_log))?;
        kept.lock().unwrap().push(db.clone());
        Ok(())
    });
    let node = root.spawn_supervisor(spec).unwrap();
    root.wait_ready().await.unwrap();
    let first = children.lock().unwrap()[0].clone();
    first.trigger_shutdown();
    first.wait_for_drain().await;
    advance(SEC).await;
    let snapshot = node.snapshot();
    assert_eq!(snapshot.start_count, 2);
    assert_eq!(snapshot.failures.total(), 0);
    assert_eq!(first.shutdown_cause(), Some(ShutdownCause::Requested));
    assert_eq!(
        log.lines(),
        ["start db/pool", "stop db/pool", "start db/pool"]
    );
    root.trigger_shutdown();
    assert!(root.wait_for_drain().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn nested_three_levels() {
    let log = Log::default();
    let root = Supervisor::new(exact());
    let leaf_log = log.clone();
    let db = SupervisorSpec::new("db", exact(), move |db: &Supervisor| {
        let log = leaf_log.clone();
        let replica = SupervisorSpec::new("replica", exact(), move |replica: &Supervisor| {
            replica.spawn_service(idle("pool", &log))?;
            Ok(())
        });
        db.spawn_supervisor(replica)?;
        Ok(())
    });
    root.spawn_supervisor(db).unwrap();
    root.wait_ready().await.unwrap();

    assert_eq!(log.lines(), ["start db/replica/pool"]);
    let pool = root.service("db/replica/pool").unwrap();
    assert_eq!(pool.name(), "db/replica/pool");
    let rows: Vec<(String, Option<String>)> = root
        .status()
        .into_iter()
        .map(|s| (s.snapshot.service_name, s.supervisor))
        .collect();
    assert_eq!(
        rows,
        [
            ("db".to_owned(), None),
            ("db/replica".to_owned(), Some("db".to_owned())),
            ("db/replica/pool".to_owned(), Some("db/replica".to_owned())),
        ]
    );
    root.restart_service("db/replica/pool").await.unwrap();
    assert_eq!(pool.snapshot().start_count, 2);

    root.trigger_shutdown();
    assert!(root.wait_for_drain().await.is_clean());
    assert_eq!(
        log.lines(),
        [
            "start db/replica/pool",
            "stop db/replica/pool",
            "start db/replica/pool",
            "stop db/replica/pool",
        ]
    );
    assert_eq!(root.metrics().snapshot().active_services, 0);
}

/// A nested supervisor whose `db/quitter` fails after 1 s with a
/// [`supervisor_core::TerminateTree`] error, next to an idle `db/w1`.
fn quitting_db(log: &Log, config: SupervisorConfig) -> SupervisorSpec {
    let log = log.clone();
    SupervisorSpec::new("db", config, move |db: &Supervisor| {
        db.spawn_service_with_options(idle("w1", &log), permanent())?;
        let quitter = service_fn("quitter", |_ctx: ServiceContext| async {
            tokio::time::sleep(SEC).await;
            Err::<(), _>(supervisor_core::TerminateTree::new(std::io::Error::other(
                "the schema is corrupt",
            )))
        });
        db.spawn_service_with_options(quitter, permanent())?;
        Ok(())
    })
}

/// suture's `ErrTerminateSupervisorTree` in a nested supervisor: the nested
/// supervisor shuts down, its node fails with the escalation inside a
/// `TerminateTree` of its own, and the root shuts down in turn: the whole
/// tree terminates, and `run_until_shutdown` names the node.
#[tokio::test(start_paused = true)]
async fn terminate_tree_goes_up_the_whole_tree() {
    let log = Log::default();
    let root = Supervisor::new(exact());
    root.spawn_supervisor(quitting_db(&log, exact())).unwrap();
    root.spawn_service_with_options(idle("api", &log), permanent())
        .unwrap();

    let error = tokio::time::timeout(60 * SEC, root.run_until_shutdown())
        .await
        .expect("the root shuts down")
        .unwrap_err();
    let ShutdownError::TreeTerminated {
        service,
        error,
        report,
    } = error
    else {
        panic!("{error:?}");
    };
    assert_eq!(service, "db");
    assert_eq!(
        error,
        "supervisor `db` escalated: service `db/quitter` asked to terminate the supervisor: the schema is corrupt"
    );
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        root.service_lifecycle("db").unwrap().termination_reason,
        Some(TerminationReason::TerminateTree(error))
    );
    assert_eq!(root.metrics().snapshot().active_services, 0);
    let lines = log.lines();
    assert!(lines.contains(&"stop db/w1".to_owned()), "{lines:?}");
    assert!(lines.contains(&"stop api".to_owned()), "{lines:?}");
}

/// A parent may choose not to propagate it: with
/// `ignore_terminate_tree`, the node terminates `DoNotRestart` (its tree
/// stays down) and the root runs on.
#[tokio::test(start_paused = true)]
async fn a_parent_may_refuse_to_propagate_terminate_tree() {
    let log = Log::default();
    let root = Supervisor::new(exact().ignore_terminate_tree());
    let node = root.spawn_supervisor(quitting_db(&log, exact())).unwrap();
    root.spawn_service_with_options(idle("api", &log), permanent())
        .unwrap();

    let ended = tokio::time::timeout(60 * SEC, node.wait_terminated())
        .await
        .expect("the node terminates");
    assert!(
        matches!(
            ended.termination_reason,
            Some(TerminationReason::DoNotRestart(_))
        ),
        "{ended:?}"
    );
    assert_eq!(ended.start_count, 1);
    assert!(!root.is_shutting_down());
    assert_eq!(
        root.service_lifecycle("api").unwrap().phase,
        ServicePhase::Running
    );
    assert!(
        root.service("db/w1").is_none(),
        "the nested services are gone"
    );
    root.trigger_shutdown();
    assert!(root.wait_for_drain().await.is_clean());
}

/// `sup_stop_timeout` through a tree: a nested service that ignores its
/// stop is aborted at its own stop timeout, and the root's `DrainReport`
/// says so (under its path, with its stop among the slowest), as it does
/// for its own services; a node stopped outside a drain adds nothing.
#[tokio::test(start_paused = true)]
async fn the_root_drain_report_covers_nested_services() {
    let root = Supervisor::new(exact());
    let spec = SupervisorSpec::new("db", exact(), |db: &Supervisor| {
        let deaf = service_fn("deaf", |_ctx: ServiceContext| async {
            std::future::pending::<()>().await;
            anyhow::Ok(())
        });
        db.spawn_service_with_options(deaf, SpawnOptions::default().stop_timeout(SEC))?;
        Ok(())
    });
    let node = root.spawn_supervisor(spec).unwrap();
    root.wait_ready().await.unwrap();

    // A host restart of the node (not a drain): the child's abort is its own.
    node.restart().await.unwrap();
    root.wait_ready().await.unwrap();

    let started = tokio::time::Instant::now();
    root.trigger_shutdown();
    let report = root.wait_for_drain().await;
    assert_eq!(started.elapsed(), SEC);
    assert_eq!(report.aborted, ["db/deaf"]);
    assert!(!report.is_clean());
    let stop = report
        .slowest
        .iter()
        .find(|stop| stop.service == "db/deaf")
        .unwrap_or_else(|| panic!("{report:?}"));
    assert!(stop.aborted);
    assert_eq!(stop.took, SEC);
    assert_eq!(root.metrics().snapshot().active_services, 0);
}
