//! Control of one service: stop, restart and remove at every point of its
//! cycle, under paused time, and a property test that interleaves random
//! control calls with random failures.
//!
//! The service used here ([`Probe`]) records when each run starts and when it
//! ends, including when the supervisor drops it (a guard in the run's
//! future), so "a restart never overlaps the previous run" and "nothing
//! starts after a stop" are checked on what the runs saw.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use supervisor_core::{
    ControlError, FailureKind, RestartPolicy, Service, ServiceContext, ServiceHandle, ServicePhase,
    SpawnOptions, StopTimeout, Supervisor, TerminationReason,
};
use tokio::time::Instant;

use crate::support::{Event, ScriptError, advance, exact_backoff, recorded_supervisor, supervisor};

/// What one run of a [`Probe`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    /// Return `Err` after this long.
    Fail(Duration),
    /// Return `Ok` after this long.
    Finish(Duration),
    /// Wait for cancellation, then take this long to clean up.
    Serve(Duration),
    /// Ignore cancellation.
    Hang,
}

/// One run as the probe saw it.
#[derive(Debug, Clone, Copy)]
struct Run {
    started: Instant,
    ended: Option<Instant>,
    /// Dropped by the supervisor before it returned.
    dropped: bool,
}

#[derive(Debug, Default)]
struct Record {
    runs: Vec<Run>,
}

/// A service that plays one [`Act`] per run (then serves until cancelled) and
/// records its runs.
#[derive(Clone)]
struct Probe {
    name: String,
    policy: RestartPolicy,
    acts: Arc<Mutex<VecDeque<Act>>>,
    record: Arc<Mutex<Record>>,
}

impl Probe {
    fn new(name: &str, policy: RestartPolicy, acts: impl IntoIterator<Item = Act>) -> Self {
        Self {
            name: name.to_owned(),
            policy,
            acts: Arc::new(Mutex::new(acts.into_iter().collect())),
            record: Arc::default(),
        }
    }

    fn runs(&self) -> Vec<Run> {
        self.record.lock().unwrap().runs.clone()
    }

    fn starts(&self) -> usize {
        self.runs().len()
    }

    /// Every run ended before the next one started, and at most the last is
    /// still going.
    fn assert_no_overlap(&self) {
        let runs = self.runs();
        for pair in runs.windows(2) {
            let ended = pair[0].ended.unwrap_or_else(|| {
                panic!("{}: a run started while another ran: {runs:?}", self.name)
            });
            assert!(
                ended <= pair[1].started,
                "{}: runs overlap: {runs:?}",
                self.name
            );
        }
    }
}

/// Marks its run ended when dropped (returned or dropped by the supervisor).
struct Ending {
    record: Arc<Mutex<Record>>,
    index: usize,
    returned: bool,
}

impl Drop for Ending {
    fn drop(&mut self) {
        let mut record = self.record.lock().unwrap();
        let run = &mut record.runs[self.index];
        run.ended = Some(Instant::now());
        run.dropped = !self.returned;
    }
}

impl Service for Probe {
    type Error = ScriptError;

    fn name(&self) -> &str {
        &self.name
    }

    fn restart_policy(&self) -> RestartPolicy {
        self.policy
    }

    fn run(
        &self,
        ctx: ServiceContext,
    ) -> impl std::future::Future<Output = Result<(), ScriptError>> + Send {
        let act = self
            .acts
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Act::Serve(Duration::ZERO));
        let index = {
            let mut record = self.record.lock().unwrap();
            record.runs.push(Run {
                started: Instant::now(),
                ended: None,
                dropped: false,
            });
            record.runs.len() - 1
        };
        let ending = Ending {
            record: Arc::clone(&self.record),
            index,
            returned: false,
        };
        async move {
            // Moved whole into the future (a field assignment alone would
            // capture only the field, and drop the guard at once).
            let mut ending = ending;
            let result = match act {
                Act::Fail(after) => {
                    tokio::time::sleep(after).await;
                    Err(ScriptError(format!("run {} failed", index + 1)))
                }
                Act::Finish(after) => {
                    tokio::time::sleep(after).await;
                    Ok(())
                }
                Act::Serve(cleanup) => {
                    ctx.cancelled().await;
                    tokio::time::sleep(cleanup).await;
                    Ok(())
                }
                Act::Hang => loop {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                },
            };
            ending.returned = true;
            result
        }
    }
}

const SECOND: Duration = Duration::from_secs(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn spawn(supervisor: &Supervisor, probe: &Probe, options: SpawnOptions) -> ServiceHandle {
    supervisor
        .spawn_service_with_options(probe.clone(), options.backoff(exact_backoff()))
        .unwrap()
}

fn reason(handle: &ServiceHandle) -> Option<TerminationReason> {
    handle.snapshot().termination_reason
}

// ---------------------------------------------------------------------------
// Stop.

/// A stop before the first run: the service never runs.
#[tokio::test(start_paused = true)]
async fn a_stop_before_the_first_run_terminates_without_running() {
    let supervisor = supervisor();
    let probe = Probe::new("feed", RestartPolicy::Always, []);
    let handle = spawn(&supervisor, &probe, SpawnOptions::default());
    assert_eq!(handle.phase(), ServicePhase::Starting);

    let last = handle.stop().await.unwrap();
    assert_eq!(last.termination_reason, Some(TerminationReason::Stopped));
    assert_eq!(last.start_count, 0);
    advance(Duration::from_secs(60)).await;
    assert_eq!(probe.starts(), 0, "never ran");
}

/// A stop while running: the run's context is cancelled, its cleanup runs,
/// and the service is never restarted, whatever its policy.
#[tokio::test(start_paused = true)]
async fn a_stop_while_running_cancels_the_run_and_never_restarts() {
    let supervisor = supervisor();
    let probe = Probe::new("feed", RestartPolicy::Always, [Act::Serve(ms(300))]);
    let handle = spawn(&supervisor, &probe, SpawnOptions::default());
    advance(SECOND).await;

    let asked = Instant::now();
    let last = handle.stop().await.unwrap();
    assert_eq!(asked.elapsed(), ms(300), "waited for the cleanup");
    assert_eq!(last.termination_reason, Some(TerminationReason::Stopped));
    assert_eq!(last.failures.total(), 0);
    let runs = probe.runs();
    assert_eq!(runs.len(), 1);
    assert!(!runs[0].dropped, "the run returned by itself");

    advance(Duration::from_secs(3600)).await;
    assert_eq!(probe.starts(), 1, "never restarted");
    let metrics = supervisor.metrics().snapshot();
    assert_eq!((metrics.restarts_total, metrics.active_services), (0, 0));
    assert!(supervisor.service("feed").is_some(), "still registered");
}

/// A run that ignores the stop is dropped at its own stop timeout: a
/// `Timeout` failure, `StopTimeout`.
#[tokio::test(start_paused = true)]
async fn a_run_that_ignores_a_stop_is_dropped_at_its_own_stop_timeout() {
    let supervisor = supervisor(); // Shutdown timeout 5 s.
    let probe = Probe::new("stubborn", RestartPolicy::Always, [Act::Hang]);
    let handle = spawn(
        &supervisor,
        &probe,
        SpawnOptions::default().stop_timeout(ms(1500)),
    );
    advance(SECOND).await;

    let asked = Instant::now();
    let last = handle.stop().await.unwrap();
    assert_eq!(asked.elapsed(), ms(1500));
    assert_eq!(
        last.termination_reason,
        Some(TerminationReason::StopTimeout { timeout: ms(1500) })
    );
    assert_eq!(last.failures.timeout, 1);
    assert!(probe.runs()[0].dropped);
    assert_eq!(supervisor.metrics().snapshot().failures.timeout, 1);
}

/// `StopTimeout::Immediate` (OTP's `brutal_kill`): the run is dropped at
/// once, without being asked; configured, so not a failure.
#[tokio::test(start_paused = true)]
async fn an_immediate_stop_timeout_drops_the_run_at_once_and_is_not_a_failure() {
    let supervisor = supervisor();
    let probe = Probe::new("cache", RestartPolicy::Always, [Act::Serve(SECOND)]);
    let handle = spawn(
        &supervisor,
        &probe,
        SpawnOptions::default().stop_timeout(StopTimeout::Immediate),
    );
    advance(SECOND).await;

    let asked = Instant::now();
    let last = handle.stop().await.unwrap();
    assert_eq!(asked.elapsed(), Duration::ZERO);
    assert_eq!(last.termination_reason, Some(TerminationReason::Stopped));
    assert_eq!(last.failures.total(), 0);
    assert!(probe.runs()[0].dropped, "no cleanup ran");
}

/// `StopTimeout::Infinity`: the supervisor waits as long as the cleanup
/// takes, at a stop and at shutdown alike.
#[tokio::test(start_paused = true)]
async fn an_infinite_stop_timeout_waits_for_the_cleanup_however_long() {
    let supervisor = supervisor();
    let hour = Duration::from_secs(3600);
    let probe = Probe::new("ledger", RestartPolicy::Always, [Act::Serve(hour)]);
    let ledger = spawn(
        &supervisor,
        &probe,
        SpawnOptions::default().stop_timeout(StopTimeout::Infinity),
    );
    let other = Probe::new("flusher", RestartPolicy::Always, [Act::Serve(2 * hour)]);
    let flusher = spawn(
        &supervisor,
        &other,
        SpawnOptions::default().stop_timeout(StopTimeout::Infinity),
    );
    advance(SECOND).await;

    let asked = Instant::now();
    let last = ledger.stop().await.unwrap();
    assert_eq!(asked.elapsed(), hour);
    assert_eq!(last.termination_reason, Some(TerminationReason::Stopped));

    supervisor.trigger_shutdown();
    let report = supervisor.wait_for_drain().await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(reason(&flusher), Some(TerminationReason::Cancelled));
    assert!(!other.runs()[0].dropped);
}

/// A stop while backing off ends the service at once; the restart that was
/// scheduled never happens (no resurrection by a timer).
#[tokio::test(start_paused = true)]
async fn a_stop_while_backing_off_terminates_at_once_and_the_timer_never_restarts_it() {
    let supervisor = supervisor();
    let probe = Probe::new("db", RestartPolicy::Always, [Act::Fail(ms(10))]);
    let handle = spawn(&supervisor, &probe, SpawnOptions::default());
    let backing_off = handle
        .wait_for_phase(ServicePhase::BackingOff)
        .await
        .unwrap();
    assert_eq!(backing_off.current_backoff, Some(ms(100)));

    let asked = Instant::now();
    let last = handle.stop().await.unwrap();
    assert_eq!(asked.elapsed(), Duration::ZERO);
    assert_eq!(last.termination_reason, Some(TerminationReason::Stopped));
    assert_eq!(last.failures.error, 1);
    advance(SECOND).await;
    assert_eq!(probe.starts(), 1, "the scheduled restart was not made");
}

/// A stop that lands while the service is stopping for a restart wins: no
/// new run starts.
#[tokio::test(start_paused = true)]
async fn a_stop_during_a_restart_wins_and_no_new_run_starts() {
    let supervisor = supervisor();
    let probe = Probe::new("feed", RestartPolicy::Always, [Act::Serve(SECOND)]);
    let handle = spawn(&supervisor, &probe, SpawnOptions::default());
    advance(SECOND).await;

    let restart = handle.restart();
    advance(ms(500)).await;
    assert_eq!(handle.phase(), ServicePhase::Stopping);
    let stop = handle.stop();
    assert_eq!(
        restart.await,
        Err(ControlError::Terminated {
            name: "feed".into(),
            reason: TerminationReason::Stopped
        })
    );
    let last = stop.await.unwrap();
    assert_eq!(last.termination_reason, Some(TerminationReason::Stopped));
    advance(SECOND).await;
    assert_eq!(probe.starts(), 1);
}

/// Stopping twice is one stop; the first cause stays.
#[tokio::test(start_paused = true)]
async fn stopping_twice_is_one_stop() {
    let supervisor = supervisor();
    let probe = Probe::new("feed", RestartPolicy::Always, [Act::Serve(SECOND)]);
    let handle = spawn(&supervisor, &probe, SpawnOptions::default());
    advance(SECOND).await;

    let first = handle.stop();
    let second = supervisor.stop_service("feed");
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.unwrap(), second.unwrap());
    assert_eq!(supervisor.metrics().snapshot().terminated_total, 1);
}

/// Stopping a service that terminated, or one that is unknown, is a typed
/// error, and changes nothing.
#[tokio::test(start_paused = true)]
async fn stopping_a_terminated_or_unknown_service_is_a_typed_error() {
    let supervisor = supervisor();
    let probe = Probe::new("job", RestartPolicy::OnFailure, [Act::Finish(ms(10))]);
    let handle = spawn(&supervisor, &probe, SpawnOptions::default());
    handle.wait_terminated().await;

    let completed = ControlError::Terminated {
        name: "job".into(),
        reason: TerminationReason::Completed,
    };
    assert_eq!(handle.stop().await, Err(completed.clone()));
    assert_eq!(supervisor.restart_service("job").await, Err(completed));
    assert_eq!(
        supervisor.stop_service("ghost").await,
        Err(ControlError::NotFound {
            name: "ghost".into()
        })
    );
    assert_eq!(reason(&handle), Some(TerminationReason::Completed));
}

/// Stopping one service leaves the others alone.
#[tokio::test(start_paused = true)]
async fn stopping_one_service_leaves_the_others_running() {
    let supervisor = supervisor();
    let feed = Probe::new("feed", RestartPolicy::Always, []);
    let poller = Probe::new("poller", RestartPolicy::Always, []);
    let feed_handle = spawn(&supervisor, &feed, SpawnOptions::default());
    let poller_handle = spawn(&supervisor, &poller, SpawnOptions::default());
    advance(SECOND).await;

    feed_handle.stop().await.unwrap();
    advance(SECOND).await;
    assert_eq!(poller_handle.phase(), ServicePhase::Running);
    assert_eq!(poller.starts(), 1);
    assert_eq!(supervisor.metrics().snapshot().active_services, 1);
}

/// The stop is asked for when `stop()` is called: dropping the future does
/// not undo it.
#[tokio::test(start_paused = true)]
async fn a_stop_whose_future_is_dropped_still_happens() {
    let supervisor = supervisor();
    let probe = Probe::new("feed", RestartPolicy::Always, []);
    let handle = spawn(&supervisor, &probe, SpawnOptions::default());
    advance(SECOND).await;

    drop(handle.stop());
    let last = handle.wait_terminated().await;
    assert_eq!(last.termination_reason, Some(TerminationReason::Stopped));
}

// ---------------------------------------------------------------------------
// Restart.

/// A restart by call: the old run is asked to stop and returns, then a new
/// one starts at once. A restart, not a failure; the runs never overlap.
#[tokio::test(start_paused = true)]
async fn a_restart_stops_the_run_then_starts_a_new_one_without_overlap() {
    let (supervisor, recorder) = recorded_supervisor(crate::support::config());
    let probe = Probe::new("feed", RestartPolicy::Always, [Act::Serve(ms(250))]);
    let handle = spawn(&supervisor, &probe, SpawnOptions::default());
    advance(SECOND).await;

    let asked = Instant::now();
    handle.restart().await.unwrap();
    assert_eq!(
        asked.elapsed(),
        ms(250),
        "the new run starts once the old one returned"
    );
    probe.assert_no_overlap();
    let snapshot = handle.snapshot();
    assert_eq!(
        (snapshot.phase, snapshot.start_count),
        (ServicePhase::Running, 2)
    );
    assert_eq!(snapshot.failures.total(), 0);
    let metrics = supervisor.metrics().snapshot();
    assert_eq!((metrics.restarts_total, metrics.failures.total()), (1, 0));
    assert_eq!(
        recorder.phases("feed"),
        [
            ServicePhase::Starting,
            ServicePhase::Running,
            ServicePhase::Stopping,
            ServicePhase::Restarting,
            ServicePhase::Running
        ]
    );
}

/// A restart leaves the backoff as it was: after two failures and a
/// restart by call, the next failure waits the third delay.
#[tokio::test(start_paused = true)]
async fn a_restart_leaves_the_backoff_untouched() {
    let supervisor = supervisor();
    let probe = Probe::new(
        "db",
        RestartPolicy::Always,
        [
            Act::Fail(ms(10)),
            Act::Fail(ms(10)),
            Act::Serve(Duration::ZERO),
            Act::Fail(ms(10)),
        ],
    );
    let handle = spawn(&supervisor, &probe, SpawnOptions::default());
    // Fails, 100 ms, fails, 200 ms, then serves.
    while handle.snapshot().start_count < 3 {
        advance(ms(10)).await;
    }
    handle.restart().await.unwrap();
    let backing_off = handle
        .wait_for_phase(ServicePhase::BackingOff)
        .await
        .unwrap();
    assert_eq!(
        backing_off.current_backoff,
        Some(ms(400)),
        "the third delay: the restart neither reset nor advanced the backoff"
    );
}

/// A restart while backing off cuts the delay short: the new run starts at
/// once.
#[tokio::test(start_paused = true)]
async fn a_restart_while_backing_off_starts_at_once() {
    let supervisor = supervisor();
    let probe = Probe::new("db", RestartPolicy::Always, [Act::Fail(ms(10))]);
    let handle = spawn(&supervisor, &probe, SpawnOptions::default());
    handle
        .wait_for_phase(ServicePhase::BackingOff)
        .await
        .unwrap();

    let asked = Instant::now();
    handle.restart().await.unwrap();
    assert_eq!(asked.elapsed(), Duration::ZERO);
    assert_eq!(probe.starts(), 2);
    assert_eq!(handle.snapshot().failures.error, 1, "only the real failure");
}

/// A run that ignores the restart is dropped at its stop timeout (a
/// `Timeout` failure), and only then does the new run start.
#[tokio::test(start_paused = true)]
async fn a_restart_of_a_run_that_ignores_it_waits_for_the_stop_timeout() {
    let supervisor = supervisor();
    let probe = Probe::new("stubborn", RestartPolicy::Always, [Act::Hang]);
    let handle = spawn(
        &supervisor,
        &probe,
        SpawnOptions::default().stop_timeout(SECOND),
    );
    advance(SECOND).await;

    let asked = Instant::now();
    handle.restart().await.unwrap();
    assert_eq!(asked.elapsed(), SECOND);
    probe.assert_no_overlap();
    let runs = probe.runs();
    assert!(runs[0].dropped);
    let snapshot = handle.snapshot();
    assert_eq!((snapshot.start_count, snapshot.failures.timeout), (2, 1));
    assert_eq!(
        snapshot.last_error.as_deref(),
        Some("did not stop within 1s when asked to restart")
    );
}

/// A restart before the first run, or of a service already restarting, is
/// the start on its way: one start, no error.
#[tokio::test(start_paused = true)]
async fn a_restart_of_a_service_about_to_start_is_that_start() {
    let supervisor = supervisor();
    let probe = Probe::new("feed", RestartPolicy::Always, []);
    let handle = spawn(&supervisor, &probe, SpawnOptions::default());
    let (first, second) = tokio::join!(handle.restart(), handle.restart());
    first.unwrap();
    second.unwrap();
    assert_eq!(probe.starts(), 1);
    assert_eq!(supervisor.metrics().snapshot().restarts_total, 0);
}

/// A restart is refused while a stop is under way and once shutdown began.
#[tokio::test(start_paused = true)]
async fn a_restart_is_refused_while_stopping_and_during_shutdown() {
    let supervisor = supervisor();
    let feed = Probe::new("feed", RestartPolicy::Always, [Act::Serve(SECOND)]);
    let poller = Probe::new("poller", RestartPolicy::Always, [Act::Serve(SECOND)]);
    let feed_handle = spawn(&supervisor, &feed, SpawnOptions::default());
    spawn(&supervisor, &poller, SpawnOptions::default());
    advance(SECOND).await;

    let stop = feed_handle.stop();
    assert_eq!(
        feed_handle.restart().await,
        Err(ControlError::Stopping {
            name: "feed".into()
        })
    );
    supervisor.trigger_shutdown();
    assert_eq!(
        supervisor.restart_service("poller").await,
        Err(ControlError::ShuttingDown {
            name: "poller".into()
        })
    );
    stop.await.unwrap();
    assert!(supervisor.wait_for_drain().await.is_clean());
    assert_eq!(feed.starts() + poller.starts(), 2);
}

/// A `Never` service restarted by call runs again: the policy decides what
/// follows a run's own end, not a restart asked for.
#[tokio::test(start_paused = true)]
async fn a_restart_by_call_runs_even_a_never_service_again() {
    let supervisor = supervisor();
    let probe = Probe::new(
        "migrate",
        RestartPolicy::Never,
        [Act::Serve(Duration::ZERO)],
    );
    let handle = spawn(&supervisor, &probe, SpawnOptions::default());
    advance(SECOND).await;
    handle.restart().await.unwrap();
    assert_eq!(probe.starts(), 2);
    assert_eq!(handle.phase(), ServicePhase::Running);
}

// ---------------------------------------------------------------------------
// Remove.

/// A removal stops the service, then forgets it: registry entry, sinks'
/// series (`service_removed`), and the name is free again.
#[tokio::test(start_paused = true)]
async fn a_removal_stops_then_forgets_the_service_and_frees_its_name() {
    let (supervisor, recorder) = recorded_supervisor(crate::support::config());
    let probe = Probe::new("feed", RestartPolicy::Always, [Act::Serve(ms(200))]);
    let handle = spawn(&supervisor, &probe, SpawnOptions::default());
    advance(SECOND).await;

    let last = supervisor.remove_service("feed").await.unwrap();
    assert_eq!(last.termination_reason, Some(TerminationReason::Stopped));
    assert!(handle.is_removed());
    assert_eq!(supervisor.service_count(), 0);
    assert!(supervisor.service_lifecycle("feed").is_none());
    assert_eq!(
        recorder.events().last(),
        Some(&Event::Removed("feed".into())),
        "the sinks drop the series last"
    );
    assert_eq!(
        handle.remove().await,
        Err(ControlError::Removed {
            name: "feed".into()
        })
    );
    assert_eq!(
        handle.stop().await,
        Err(ControlError::Removed {
            name: "feed".into()
        })
    );
    assert_eq!(
        supervisor.remove_service("feed").await,
        Err(ControlError::NotFound {
            name: "feed".into()
        })
    );

    let again = spawn(
        &supervisor,
        &Probe::new("feed", RestartPolicy::Always, []),
        SpawnOptions::default(),
    );
    advance(SECOND).await;
    assert_eq!(again.phase(), ServicePhase::Running);
    assert_eq!(again.snapshot().start_count, 1, "a fresh lifecycle");
}

/// Removing a terminated service forgets it at once.
#[tokio::test(start_paused = true)]
async fn removing_a_terminated_service_forgets_it_at_once() {
    let (supervisor, recorder) = recorded_supervisor(crate::support::config());
    let probe = Probe::new("db", RestartPolicy::Never, [Act::Fail(ms(10))]);
    let handle = spawn(&supervisor, &probe, SpawnOptions::default());
    handle.wait_terminated().await;
    assert_eq!(supervisor.readiness().failed, ["db"]);

    let last = handle.remove().await.unwrap();
    assert_eq!(
        last.termination_reason,
        Some(TerminationReason::Unrecoverable("run 1 failed".into()))
    );
    assert_eq!(supervisor.service_count(), 0);
    assert!(supervisor.is_ready(), "a removed failure no longer counts");
    assert_eq!(recorder.events().last(), Some(&Event::Removed("db".into())));
}

/// A removal while backing off ends the service at once and forgets it.
#[tokio::test(start_paused = true)]
async fn a_removal_while_backing_off_forgets_the_service_at_once() {
    let supervisor = supervisor();
    let probe = Probe::new("db", RestartPolicy::Always, [Act::Fail(ms(10))]);
    let handle = spawn(&supervisor, &probe, SpawnOptions::default());
    handle
        .wait_for_phase(ServicePhase::BackingOff)
        .await
        .unwrap();
    let asked = Instant::now();
    handle.remove().await.unwrap();
    assert_eq!(asked.elapsed(), Duration::ZERO);
    advance(SECOND).await;
    assert_eq!(probe.starts(), 1);
    assert_eq!(supervisor.service_count(), 0);
}

// ---------------------------------------------------------------------------
// Waiting.

/// `wait_for_phase` sees a phase however briefly it lasted, and says when the
/// service terminated without entering it.
#[tokio::test(start_paused = true)]
async fn waiting_for_a_phase_sees_brief_phases_and_fails_on_termination() {
    let supervisor = supervisor();
    let probe = Probe::new("db", RestartPolicy::Always, [Act::Fail(ms(10))]);
    let handle = spawn(&supervisor, &probe, SpawnOptions::default());
    // `Restarting` lasts no time at all: the restart is made in the same step.
    let restarting = handle
        .wait_for_phase(ServicePhase::Restarting)
        .await
        .unwrap();
    assert_eq!(restarting.start_count, 2, "by now it runs again");

    let other = Probe::new("job", RestartPolicy::OnFailure, [Act::Finish(ms(10))]);
    let job = spawn(&supervisor, &other, SpawnOptions::default());
    assert_eq!(
        job.wait_for_phase(ServicePhase::BackingOff).await,
        Err(ControlError::Terminated {
            name: "job".into(),
            reason: TerminationReason::Completed
        })
    );
}

/// Waiting is cancel safe: a wait dropped midway leaves nothing behind, and
/// a new one still sees the termination.
#[tokio::test(start_paused = true)]
async fn waits_are_cancel_safe() {
    let supervisor = supervisor();
    let probe = Probe::new("feed", RestartPolicy::Always, [Act::Serve(SECOND)]);
    let handle = spawn(&supervisor, &probe, SpawnOptions::default());
    let timed_out = tokio::time::timeout(SECOND, handle.wait_terminated()).await;
    assert!(timed_out.is_err());
    drop(handle.stop());
    let last = handle.wait_terminated().await;
    assert_eq!(last.termination_reason, Some(TerminationReason::Stopped));
}

// ---------------------------------------------------------------------------
// Temporary services.

/// A temporary service is forgotten as soon as it terminates, by any reason.
#[tokio::test(start_paused = true)]
async fn a_temporary_service_is_forgotten_when_it_terminates() {
    let (supervisor, recorder) = recorded_supervisor(crate::support::config());
    let done = Probe::new("job-1", RestartPolicy::Never, [Act::Finish(ms(10))]);
    let failed = Probe::new("job-2", RestartPolicy::Never, [Act::Fail(ms(20))]);
    let retried = Probe::new(
        "job-3",
        RestartPolicy::OnFailure,
        [Act::Fail(ms(10)), Act::Finish(ms(10))],
    );
    let temporary = || SpawnOptions::default().temporary();
    let handles = [
        spawn(&supervisor, &done, temporary()),
        spawn(&supervisor, &failed, temporary()),
        spawn(&supervisor, &retried, temporary()),
    ];
    assert_eq!(supervisor.service_count(), 3);
    for handle in &handles {
        handle.wait_terminated().await;
    }
    tokio::task::yield_now().await;
    assert_eq!(supervisor.service_count(), 0);
    assert!(handles.iter().all(ServiceHandle::is_removed));
    assert_eq!(
        retried.starts(),
        2,
        "restarted by policy until it terminated"
    );
    assert!(
        supervisor.is_ready(),
        "a forgotten failure holds nothing back"
    );
    let removed = recorder
        .events()
        .into_iter()
        .filter(|event| matches!(event, Event::Removed(_)))
        .count();
    assert_eq!(removed, 3);
    let metrics = supervisor.metrics().snapshot();
    assert_eq!((metrics.spawned_total, metrics.terminated_total), (3, 3));
}

/// Temporary services at shutdown are drained, reported and forgotten.
#[tokio::test(start_paused = true)]
async fn temporary_services_are_drained_and_reported_at_shutdown() {
    let supervisor = supervisor();
    let worker = Probe::new("job-1", RestartPolicy::Never, [Act::Hang]);
    spawn(
        &supervisor,
        &worker,
        SpawnOptions::default().temporary().stop_timeout(SECOND),
    );
    advance(SECOND).await;
    supervisor.trigger_shutdown();
    let report = supervisor.wait_for_drain().await;
    assert_eq!(report.aborted, ["job-1"]);
    assert_eq!(supervisor.service_count(), 0);
}

// ---------------------------------------------------------------------------
// From a sink.

/// A sink that calls the control API from inside its callbacks: a failure
/// of one service stops another. Nothing deadlocks, and the stop happens.
#[tokio::test(start_paused = true)]
async fn control_calls_from_inside_a_sink_do_not_deadlock() {
    #[derive(Default)]
    struct Stopper {
        supervisor: std::sync::OnceLock<Supervisor>,
    }
    impl supervisor_core::MetricsSink for Stopper {
        type Handle = Arc<str>;
        fn resolve(&self, service: &str) -> Arc<str> {
            Arc::from(service)
        }
        fn service_failed(&self, service: &Arc<str>, _kind: FailureKind) {
            if &**service == "db" {
                if let Some(supervisor) = self.supervisor.get() {
                    drop(supervisor.stop_service("api"));
                    let _ = supervisor.service("api").map(|api| api.snapshot());
                }
            }
        }
    }
    let stopper = Arc::new(Stopper::default());
    let supervisor = Supervisor::new(crate::support::config().with_metrics_sink(stopper.clone()));
    let _ = stopper.supervisor.set(supervisor.clone());
    let db = Probe::new(
        "db",
        RestartPolicy::Always,
        [Act::Serve(Duration::ZERO), Act::Fail(ms(10))],
    );
    let api = Probe::new("api", RestartPolicy::Always, []);
    let db_handle = spawn(&supervisor, &db, SpawnOptions::default());
    let api_handle = spawn(&supervisor, &api, SpawnOptions::default());
    advance(SECOND).await;
    db_handle.restart().await.unwrap();

    let last = api_handle.wait_terminated().await;
    assert_eq!(last.termination_reason, Some(TerminationReason::Stopped));
    assert_eq!(db_handle.phase(), ServicePhase::BackingOff);
}

// ---------------------------------------------------------------------------
// Races: random control calls against random runs.

/// One step of a race script.
#[derive(Debug, Clone)]
enum Op {
    Wait(u64),
    Stop(usize),
    Restart(usize),
    Remove(usize),
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        (0..300_u64).prop_map(|ms| Act::Fail(Duration::from_millis(ms))),
        (0..300_u64).prop_map(|ms| Act::Finish(Duration::from_millis(ms))),
        (0..300_u64).prop_map(|ms| Act::Serve(Duration::from_millis(ms))),
        Just(Act::Hang),
    ]
}

fn policy() -> impl Strategy<Value = RestartPolicy> {
    prop_oneof![
        Just(RestartPolicy::Always),
        Just(RestartPolicy::OnFailure),
        Just(RestartPolicy::Never)
    ]
}

fn op(services: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..400_u64).prop_map(Op::Wait),
        2 => (0..services).prop_map(Op::Stop),
        2 => (0..services).prop_map(Op::Restart),
        1 => (0..services).prop_map(Op::Remove),
    ]
}

/// What the host asked of one service, and was granted.
#[derive(Debug, Default, Clone)]
struct Asked {
    /// A stop or removal was accepted while the service was alive: it must
    /// end by it.
    stopped: bool,
    /// A removal was accepted: it must be forgotten.
    removed: bool,
}

proptest! {
    /// Random control calls at random times against services whose runs fail,
    /// finish, serve or hang at random: runs never overlap, nothing starts
    /// after an accepted stop, every accepted stop or removal ends with the
    /// host's reason, removals are forgotten, and the shutdown drains the
    /// rest.
    #[test]
    fn control_calls_never_resurrect_a_service_nor_overlap_its_runs(
        services in proptest::collection::vec((policy(), proptest::collection::vec(act(), 0..6), 0..3_u8), 1..4),
        ops in proptest::collection::vec(op(3), 0..24),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async move {
            let supervisor = supervisor();
            let mut probes = Vec::new();
            let mut handles = Vec::new();
            for (index, (policy, acts, timeout)) in services.iter().enumerate() {
                let probe = Probe::new(&format!("svc-{index}"), *policy, acts.iter().copied());
                let stop_timeout = match timeout {
                    0 => StopTimeout::Immediate,
                    1 => StopTimeout::After(ms(150)),
                    _ => StopTimeout::After(SECOND),
                };
                handles.push(spawn(&supervisor, &probe, SpawnOptions::default().stop_timeout(stop_timeout)));
                probes.push(probe);
            }
            let mut asked = vec![Asked::default(); probes.len()];
            let mut pending = Vec::new();
            for op in ops {
                match op {
                    Op::Wait(ms) => advance(Duration::from_millis(ms)).await,
                    Op::Stop(index) | Op::Restart(index) | Op::Remove(index) if index >= handles.len() => {}
                    Op::Stop(index) => {
                        let handle = &handles[index];
                        let alive_before = handle.phase() != ServicePhase::Terminated;
                        let stop = handle.stop();
                        if alive_before && !handle.is_removed() {
                            asked[index].stopped = true;
                        }
                        pending.push(tokio::spawn(async move { drop(stop.await) }));
                    }
                    Op::Restart(index) => {
                        let restart = handles[index].restart();
                        pending.push(tokio::spawn(async move { drop(restart.await) }));
                    }
                    Op::Remove(index) => {
                        let handle = &handles[index];
                        if !handle.is_removed() {
                            if handle.phase() != ServicePhase::Terminated {
                                asked[index].stopped = true;
                            }
                            asked[index].removed = true;
                        }
                        let remove = handle.remove();
                        pending.push(tokio::spawn(async move { drop(remove.await) }));
                    }
                }
            }
            // Let every accepted stop play out (stop timeouts are at most 1 s).
            advance(Duration::from_secs(5)).await;
            for (index, probe) in probes.iter().enumerate() {
                probe.assert_no_overlap();
                let snapshot = handles[index].snapshot();
                if asked[index].stopped {
                    assert_eq!(snapshot.phase, ServicePhase::Terminated, "{}: {snapshot:?}", probe.name);
                    let starts = probe.starts();
                    advance(Duration::from_secs(10)).await;
                    assert_eq!(probe.starts(), starts, "{}: started after a stop", probe.name);
                }
                if asked[index].removed {
                    assert!(handles[index].is_removed(), "{}", probe.name);
                    assert!(supervisor.service(&probe.name).is_none());
                }
                if asked[index].stopped {
                    // Asked while alive: the stop stands, whatever the run
                    // did next (one thread: nothing runs between the phase
                    // read and the request).
                    assert!(
                        matches!(
                            snapshot.termination_reason,
                            Some(TerminationReason::Stopped | TerminationReason::StopTimeout { .. })
                        ),
                        "{}: {snapshot:?}",
                        probe.name
                    );
                }
            }
            supervisor.trigger_shutdown();
            let report = supervisor.wait_for_drain().await;
            assert!(report.unwound);
            for pending in pending {
                pending.await.unwrap();
            }
            for (probe, handle) in probes.iter().zip(&handles) {
                probe.assert_no_overlap();
                assert_eq!(handle.phase(), ServicePhase::Terminated);
                assert!(probe.runs().iter().all(|run| run.ended.is_some()), "{}: a run outlived the drain", probe.name);
            }
            let metrics = supervisor.metrics().snapshot();
            assert_eq!(metrics.active_services, 0);
            assert_eq!(metrics.spawned_total, metrics.terminated_total);
            let starts: usize = probes.iter().map(Probe::starts).sum();
            assert_eq!(metrics.restarts_total + probes.iter().filter(|p| p.starts() > 0).count() as u64, starts as u64);
        });
    }
}
