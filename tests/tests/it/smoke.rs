//! Smoke tests in real time on a multi-thread runtime: restarts, concurrent
//! spawns and the duplicate-name race, each well under a second.
//!
//! Real time can only be bounded from one side: a timer never fires early, so
//! the tests assert that restarts waited at least their backoff, never that
//! anything happened within a given time (the waits below fail only after
//! seconds, far beyond what any of it takes).

use std::time::Duration;

use supervisor_core::{
    BackoffConfig, Jitter, RestartPolicy, ServicePhase, SpawnError, SpawnOptions, Supervisor,
    TerminationReason,
};
use tokio::sync::Barrier;
use tokio::time::Instant;

use crate::support::{Scripted, Step, supervisor};

const MS: Duration = Duration::from_millis(1);

/// How long the waits below give the services before failing the test.
const PATIENCE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_service_restarts_with_a_10ms_backoff_then_drains() {
    let sup = supervisor();
    let backoff = BackoffConfig::new(10 * MS, 100 * MS)
        .with_jitter(Jitter::None)
        .without_circuit_breaker();
    let flaky = Scripted::new(
        "flaky",
        RestartPolicy::OnFailure,
        [Step::Fail(MS), Step::Panic(MS), Step::Fail(Duration::ZERO)],
    );
    sup.spawn_service_with_options(flaky.clone(), SpawnOptions::with_backoff(backoff))
        .unwrap();

    wait_until(&sup, |sup| {
        sup.service_lifecycle("flaky")
            .is_some_and(|s| s.phase == ServicePhase::Running && s.start_count == 4)
    })
    .await;
    let (starts, ends) = (flaky.starts(), flaky.ends());
    // The panicking run records no end; it lasted at least its millisecond.
    assert!(starts[1] - ends[0] >= 10 * MS, "{starts:?} {ends:?}");
    assert!(starts[2] - starts[1] >= MS + 20 * MS, "{starts:?}");
    assert!(starts[3] - ends[1] >= 40 * MS, "{starts:?} {ends:?}");
    let snap = sup.service_lifecycle("flaky").unwrap();
    assert_eq!((snap.failures.total(), snap.restart_count()), (3, 3));
    assert_eq!(snap.last_error.as_deref(), Some("run 3 failed"));

    sup.trigger_shutdown();
    let report = sup.wait_for_drain().await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(flaky.cleanups_done(), 1);
    let snap = sup.service_lifecycle("flaky").unwrap();
    assert_eq!(
        snap.termination_reason
            .as_ref()
            .map(TerminationReason::kind),
        Some("cancelled")
    );
    let m = sup.metrics().snapshot();
    assert_eq!(
        (m.spawned_total, m.terminated_total, m.active_services),
        (1, 1, 0)
    );
    assert_eq!(
        (m.restarts_total, m.failures.error, m.failures.panic),
        (3, 2, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_services_spawned_from_eight_tasks_all_run_and_drain() {
    const TASKS: usize = 8;
    const PER_TASK: usize = 25;
    let sup = supervisor();
    let barrier = std::sync::Arc::new(Barrier::new(TASKS));
    let spawners: Vec<_> = (0..TASKS)
        .map(|task| {
            let sup = sup.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                for i in 0..PER_TASK {
                    let name = format!("svc-{task}-{i}");
                    let svc =
                        Scripted::new(&name, RestartPolicy::Always, [Step::UntilCancelled(MS)]);
                    sup.spawn_service(svc).unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for spawner in spawners {
        spawner.await.unwrap();
    }
    assert_eq!(sup.service_count(), TASKS * PER_TASK);
    assert_eq!(
        sup.metrics().snapshot().spawned_total,
        (TASKS * PER_TASK) as u64
    );
    wait_until(&sup, |sup| {
        sup.lifecycle_snapshots()
            .iter()
            .all(|s| s.phase == ServicePhase::Running)
    })
    .await;

    sup.trigger_shutdown();
    let report = sup.wait_for_drain().await;
    assert!(report.is_clean(), "{report:?}");
    let snapshots = sup.lifecycle_snapshots();
    assert_eq!(snapshots.len(), TASKS * PER_TASK);
    for snap in &snapshots {
        assert_eq!(
            snap.termination_reason
                .as_ref()
                .map(TerminationReason::kind),
            Some("cancelled"),
            "{snap:?}"
        );
        assert_eq!(snap.start_count, 1, "{snap:?}");
    }
    let m = sup.metrics().snapshot();
    assert_eq!(m.terminated_total, (TASKS * PER_TASK) as u64);
    assert_eq!((m.active_services, m.restarts_total), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_eight_tasks_spawning_the_same_name_at_once_exactly_one_wins() {
    const TASKS: usize = 8;
    const ROUNDS: usize = 50;
    let sup = supervisor();
    for round in 0..ROUNDS {
        let name = format!("contested-{round}");
        let barrier = std::sync::Arc::new(Barrier::new(TASKS));
        let contenders: Vec<_> = (0..TASKS)
            .map(|_| {
                let sup = sup.clone();
                let barrier = barrier.clone();
                let svc = Scripted::new(&name, RestartPolicy::OnFailure, []);
                tokio::spawn(async move {
                    barrier.wait().await;
                    sup.spawn_service(svc.clone()).map(|_| svc)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for contender in contenders {
            match contender.await.unwrap() {
                Ok(svc) => winners.push(svc),
                Err(err) => assert_eq!(err, SpawnError::DuplicateName { name: name.clone() }),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one spawn wins");
        let winner = winners.pop().unwrap();
        let name = name.clone();
        wait_until(&sup, move |sup| {
            sup.service_lifecycle(&name)
                .is_some_and(|s| s.phase == ServicePhase::Running)
        })
        .await;
        assert_eq!(winner.starts().len(), 1, "round {round}: the winner runs");
    }
    assert_eq!(sup.service_count(), ROUNDS);
    assert_eq!(sup.metrics().snapshot().spawned_total, ROUNDS as u64);
    sup.trigger_shutdown();
    assert!(sup.wait_for_drain().await.is_clean());
    assert_eq!(sup.metrics().snapshot().active_services, 0);
}

/// Polls `condition` every millisecond; fails the test after [`PATIENCE`].
async fn wait_until(sup: &Supervisor, condition: impl Fn(&Supervisor) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition(sup) {
        assert!(
            Instant::now() < deadline,
            "not reached within {PATIENCE:?}: {:?}",
            sup.lifecycle_snapshots()
        );
        tokio::time::sleep(MS).await;
    }
}
