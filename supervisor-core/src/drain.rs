//! The shutdown: stops in dependency order, per-service stop timeouts, the
//! last resort for tasks that never reach theirs, and the report.
//!
//! # Invariants
//!
//! 1. A service is asked to stop once none of its dependants is alive: at
//!    the start of the drain for the services nobody depends on, then by the
//!    termination of the last dependant of each other one. Services that do
//!    not depend on each other stop concurrently.
//! 2. Each service enforces its own stop timeout. The drain only steps in for
//!    a task that never reaches it (one that blocks its thread): a grace
//!    after the timeout, it marks the service terminated and aborts the task
//!    from outside; a grace after that, it reports anyway.
//! 3. The report is built from what happened, not by scanning the registry:
//!    terminations during the drain are logged as they happen (so temporary
//!    services, forgotten at once, are in it too).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::sync::Arc;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lifecycle::TerminationReason;
use tokio::time::Instant;

use crate::shared::Shared;
use crate::slot::StopCause;

/// The longest a service's task gets past its stop timeout before the drain
/// aborts it from outside (a task that blocks its thread never reaches its own
/// timeout), and then to unwind before the drain reports anyway; see
/// [`abort_grace`]. Also the longest the drain sleeps between two checks.
const MAX_ABORT_GRACE: Duration = Duration::from_secs(1);

/// The shortest such grace: time for a task that is merely busy to be polled.
const MIN_ABORT_GRACE: Duration = Duration::from_millis(100);

/// How many of the slowest stops a [`DrainReport`] lists.
pub(crate) const SLOWEST_STOPS: usize = 10;

/// The grace of a stop timeout: the timeout itself, within
/// [`MIN_ABORT_GRACE`]..=[`MAX_ABORT_GRACE`].
fn abort_grace(timeout: Duration) -> Duration {
    timeout.clamp(MIN_ABORT_GRACE, MAX_ABORT_GRACE)
}

/// Why a supervisor shut down.
///
/// # Examples
///
/// ```
/// use supervisor_core::{ShutdownCause, Supervisor, SupervisorConfig};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
/// supervisor.spawn_service(supervisor_core::service_fn("feed", |ctx: supervisor_core::ServiceContext| async move {
///     ctx.cancelled().await;
///     anyhow::Ok(())
/// })).unwrap();
/// supervisor.trigger_shutdown();
/// let report = supervisor.wait_for_drain().await;
/// assert_eq!(report.cause, Some(ShutdownCause::Requested));
/// assert_eq!(ShutdownCause::Requested.to_string(), "requested by the host");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(tag = "kind", rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum ShutdownCause {
    /// [`Supervisor::trigger_shutdown`](crate::Supervisor::trigger_shutdown),
    /// or the supervisor's token was cancelled.
    Requested,
    /// A signal, received by
    /// [`run_until_shutdown`](crate::Supervisor::run_until_shutdown).
    Signal {
        /// `"SIGTERM"`, `"SIGINT"` or `"Ctrl-C"`.
        signal: &'static str,
    },
    /// A [critical](crate::SpawnOptions::critical) service failed for good.
    CriticalFailed {
        /// The critical service.
        service: String,
        /// Why it terminated.
        reason: TerminationReason,
    },
    /// A [critical](crate::SpawnOptions::critical) service completed.
    CriticalCompleted {
        /// The critical service.
        service: String,
    },
    /// More restarts were called for than the supervisor's
    /// [restart intensity](crate::SupervisorConfig::with_restart_intensity)
    /// tolerates.
    IntensityExceeded {
        /// The service whose restart (or, under `OneForAll` and `RestForOne`,
        /// whose group's restart) tripped it.
        service: String,
        /// The restarts tolerated within `period`.
        max_restarts: u32,
        /// The period.
        period: Duration,
    },
    /// A service's run failed with a [`TerminateTree`](crate::TerminateTree)
    /// error, which asks to stop the whole supervisor (unless
    /// [`SupervisorConfig::ignore_terminate_tree`](crate::SupervisorConfig::ignore_terminate_tree)
    /// is set).
    TreeTerminated {
        /// The service whose error asked for it.
        service: String,
        /// The error, with its `source()` chain (as its `last_error`).
        error: String,
    },
}

impl fmt::Display for ShutdownCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShutdownCause::Requested => f.write_str("requested by the host"),
            ShutdownCause::Signal { signal } => write!(f, "received {signal}"),
            ShutdownCause::CriticalFailed { service, reason } => {
                write!(f, "critical service `{service}` failed: {reason}")
            }
            ShutdownCause::CriticalCompleted { service } => {
                write!(f, "critical service `{service}` completed")
            }
            ShutdownCause::IntensityExceeded {
                service,
                max_restarts,
                period,
            } => write!(
                f,
                "restart intensity exceeded: `{service}` called for a restart beyond {max_restarts} in {period:?}"
            ),
            ShutdownCause::TreeTerminated { service, error } => {
                write!(
                    f,
                    "service `{service}` asked to terminate the supervisor: {error}"
                )
            }
        }
    }
}

/// How long one service took to stop during a shutdown.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor_core::{service_fn, ServiceContext, Supervisor, SupervisorConfig};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
/// supervisor.spawn_service(service_fn("flush", |ctx: ServiceContext| async move {
///     ctx.cancelled().await;
///     tokio::time::sleep(Duration::from_secs(2)).await; // Flushing a buffer.
///     anyhow::Ok(())
/// }))?;
/// tokio::time::sleep(Duration::from_secs(1)).await;
/// supervisor.trigger_shutdown();
/// let report = supervisor.wait_for_drain().await;
/// assert_eq!(report.slowest[0].service, "flush");
/// assert_eq!(report.slowest[0].took, Duration::from_secs(2));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceStop {
    /// The service.
    pub service: String,
    /// From the request to stop to its termination.
    pub took: Duration,
    /// Whether it was aborted at its stop timeout.
    pub aborted: bool,
}

/// What [`Supervisor::wait_for_drain`](crate::Supervisor::wait_for_drain)
/// observed.
///
/// # Examples
///
/// ```
/// use supervisor_core::DrainReport;
///
/// let report = DrainReport::default();
/// assert!(report.is_clean());
/// assert!(report.aborted.is_empty());
/// assert_eq!(report.cause, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Services aborted because they were still running at their stop
    /// timeout, sorted by name.
    pub aborted: Vec<String>,
    /// Whether every task had finished when `wait_for_drain` returned (false
    /// only if an aborted service blocks its thread and cannot be unwound).
    pub unwound: bool,
    /// Why the shutdown happened; `None` if every service ended on its own
    /// before any shutdown.
    pub cause: Option<ShutdownCause>,
    /// From the start of the drain to its end.
    pub took: Duration,
    /// The slowest stops, slowest first (at most ten): where the time went.
    pub slowest: Vec<ServiceStop>,
}

impl Default for DrainReport {
    fn default() -> Self {
        Self {
            aborted: Vec::new(),
            unwound: true,
            cause: None,
            took: Duration::ZERO,
            slowest: Vec::new(),
        }
    }
}

impl DrainReport {
    /// Whether every service stopped by itself within its timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::DrainReport;
    ///
    /// let mut report = DrainReport::default();
    /// assert!(report.is_clean());
    /// report.aborted.push("stuck".to_owned());
    /// assert!(!report.is_clean());
    /// ```
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.aborted.is_empty() && self.unwound
    }
}

/// What the drain logs as services terminate.
#[derive(Debug, Default)]
pub(crate) struct DrainLog {
    aborted: Vec<String>,
    /// The slowest stops, as a min-heap of at most [`SLOWEST_STOPS`] (the
    /// quickest of them on top): in a drain the stops come in growing order,
    /// so most of them enter it.
    slowest: BinaryHeap<Reverse<Logged>>,
}

impl DrainLog {
    /// Whether a termination during the drain belongs in the log: an abort,
    /// or a stop slower than the slowest ones logged so far (while fewer
    /// than [`SLOWEST_STOPS`] are logged, the floor is zero).
    pub(crate) fn worth_recording(
        floor: &AtomicU64,
        aborted: bool,
        took: Option<Duration>,
    ) -> bool {
        aborted || took.is_some_and(|took| nanos(took) >= floor.load(Ordering::Relaxed))
    }

    pub(crate) fn record(
        &mut self,
        service: &Arc<str>,
        aborted: bool,
        took: Option<Duration>,
        floor: &AtomicU64,
    ) {
        if aborted {
            self.aborted.push(service.to_string());
        }
        let Some(took) = took else {
            return;
        };
        if self.slowest.len() == SLOWEST_STOPS {
            match self.slowest.peek() {
                Some(Reverse(quickest)) if quickest.took < took => {
                    self.slowest.pop();
                }
                _ => return,
            }
        }
        self.slowest.push(Reverse(Logged {
            took,
            service: Arc::clone(service),
            aborted,
        }));
        if self.slowest.len() == SLOWEST_STOPS {
            if let Some(Reverse(quickest)) = self.slowest.peek() {
                floor.store(nanos(quickest.took), Ordering::Relaxed);
            }
        }
    }

    /// The slowest stops, slowest first.
    fn slowest(self) -> Vec<ServiceStop> {
        let mut slowest: Vec<ServiceStop> = self
            .slowest
            .into_iter()
            .map(|Reverse(logged)| ServiceStop {
                service: logged.service.to_string(),
                took: logged.took,
                aborted: logged.aborted,
            })
            .collect();
        slowest.sort_by(|a, b| b.took.cmp(&a.took).then_with(|| a.service.cmp(&b.service)));
        slowest
    }
}

/// One stop in the log (ordered by its duration).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Logged {
    took: Duration,
    service: Arc<str>,
    aborted: bool,
}

/// A duration in nanoseconds, saturating.
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl Shared {
    /// The shutdown, run once by the shutdown task (see the invariants).
    pub(crate) async fn drain(self: &Arc<Self>) -> DrainReport {
        let started = Instant::now();
        let now = self.telemetry.now();
        tracing::info!(
            timeout_ms = self.config.shutdown_timeout.as_millis(),
            "draining services"
        );
        self.start_draining();
        if self.stops_in_start_order() {
            self.stop_newest_first().await;
        }
        let ordered = self
            .has_dependencies
            .load(std::sync::atomic::Ordering::SeqCst);
        // Taking the registry lock after the cancellation is the barrier
        // `spawn` relies on: every accepted spawn is in the registry and
        // tracked. The stop requests are sent in place, without copying the
        // registry.
        let mut first_check = started + MAX_ABORT_GRACE;
        for slot in self.lock_registry().values() {
            if ordered && slot.has_live_dependants() {
                continue;
            }
            if slot.request_stop(StopCause::Shutdown, now).is_ok() {
                if let Some(timeout) = slot.spec.stop_timeout.duration() {
                    first_check = first_check.min(started + timeout + abort_grace(timeout));
                }
            }
        }
        self.tracker.close();

        let mut next_check = first_check;
        let mut unwinding_since: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                () = self.tracker.wait() => {
                    tracing::info!("all services drained");
                    return self.report(started, true);
                }
                () = tokio::time::sleep_until(next_check) => {}
            }
            let checked = Instant::now();
            let (alive, due) = self.enforce_stop_timeouts();
            next_check = due.map_or(checked + MAX_ABORT_GRACE, |due| {
                self.telemetry.instant(due).min(checked + MAX_ABORT_GRACE)
            });
            if alive {
                unwinding_since = None;
                continue;
            }
            // Every service terminated, but some task has not finished: one
            // that was aborted while blocking its thread.
            let since = *unwinding_since.get_or_insert(checked);
            let give_up = since + MAX_ABORT_GRACE;
            if checked >= give_up {
                tracing::error!("some aborted services did not unwind (blocking the executor?)");
                return self.report(started, false);
            }
            next_check = next_check.min(give_up);
        }
    }

    /// Stops every service one at a time in reverse start order (after the
    /// restart intensity tripped): each is asked, and waited for up to its
    /// stop timeout and grace, then terminated and aborted as the last
    /// resort does.
    async fn stop_newest_first(&self) {
        let mut slots = self.slots();
        slots.sort_unstable_by_key(|slot| Reverse(slot.spec.order));
        for slot in slots {
            if slot
                .request_stop(StopCause::Shutdown, self.telemetry.now())
                .is_err()
            {
                continue;
            }
            let stopped = slot.wait_until(|lc, _| !lc.phase().is_alive());
            let Some(timeout) = slot.spec.stop_timeout.duration() else {
                stopped.await;
                continue;
            };
            if tokio::time::timeout(timeout + abort_grace(timeout), stopped)
                .await
                .is_ok()
            {
                continue;
            }
            let now = self.telemetry.now();
            let reason = StopCause::Shutdown.reason(Some(timeout));
            if slot.terminate_and_abort(&self.telemetry, now, reason) {
                tracing::error!(service = %slot.name, "service blocked past its stop timeout: task aborted");
                self.after_termination(&slot, now);
                slot.flush(&self.telemetry);
            }
        }
    }

    /// The drain's last resort (invariant 2): terminates and aborts every
    /// service past its stop timeout and grace. Returns whether any service
    /// is still alive, and the soonest deadline still to come.
    fn enforce_stop_timeouts(&self) -> (bool, Option<Duration>) {
        let now = self.telemetry.now();
        let mut alive = false;
        let mut due: Option<Duration> = None;
        for slot in self.slots() {
            if !slot.is_alive() {
                continue;
            }
            alive = true;
            let Some((asked, cause)) = slot.stop_asked_at() else {
                continue;
            };
            let Some(timeout) = slot.spec.stop_timeout.duration() else {
                continue;
            };
            let deadline = asked + timeout + abort_grace(timeout);
            if now < deadline {
                due = Some(due.map_or(deadline, |due| due.min(deadline)));
                continue;
            }
            if slot.terminate_and_abort(&self.telemetry, now, cause.reason(Some(timeout))) {
                tracing::error!(service = %slot.name, "service blocked past its stop timeout: task aborted");
                self.after_termination(&slot, now);
                slot.flush(&self.telemetry);
            }
        }
        (alive, due)
    }

    /// The report, from the drain's log.
    pub(crate) fn report(&self, started: Instant, unwound: bool) -> DrainReport {
        let mut log = std::mem::take(
            &mut *self
                .drain_log
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let mut aborted = std::mem::take(&mut log.aborted);
        aborted.sort_unstable();
        DrainReport {
            aborted,
            unwound,
            cause: Some(
                self.cause
                    .get()
                    .cloned()
                    .unwrap_or(ShutdownCause::Requested),
            ),
            took: started.elapsed(),
            slowest: log.slowest(),
        }
    }
}
