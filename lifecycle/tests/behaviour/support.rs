//! Shared test support: a reference model of the lifecycle, written
//! independently of the crate, and proptest strategies for its inputs.

use core::time::Duration;

use proptest::prelude::*;
use supervisor_lifecycle::{
    FailureCounts, FailureKind, ServiceLifecycle, ServiceLifecycleSnapshot, ServicePhase,
    TerminationReason,
};

/// The model's own phases, mapped onto the crate's by [`real`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Starting,
    Running,
    BackingOff,
    Restarting,
    Stopping,
    Terminated,
}

/// Every model phase.
pub(crate) const PHASES: [Phase; 6] = [
    Phase::Starting,
    Phase::Running,
    Phase::BackingOff,
    Phase::Restarting,
    Phase::Stopping,
    Phase::Terminated,
];

/// The legal moves, written as a set of pairs, independently of the crate's `match`.
pub(crate) const ALLOWED: [(Phase, Phase); 15] = [
    (Phase::Starting, Phase::Running),
    (Phase::Starting, Phase::Stopping),
    (Phase::Starting, Phase::Terminated),
    (Phase::Running, Phase::BackingOff),
    (Phase::Running, Phase::Stopping),
    (Phase::Running, Phase::Terminated),
    (Phase::BackingOff, Phase::Restarting),
    (Phase::BackingOff, Phase::Stopping),
    (Phase::BackingOff, Phase::Terminated),
    (Phase::Restarting, Phase::Running),
    (Phase::Restarting, Phase::Stopping),
    (Phase::Restarting, Phase::Terminated),
    (Phase::Stopping, Phase::BackingOff),
    (Phase::Stopping, Phase::Restarting),
    (Phase::Stopping, Phase::Terminated),
];

/// Whether the model allows `from` → `to`.
pub(crate) fn allowed(from: Phase, to: Phase) -> bool {
    ALLOWED.contains(&(from, to))
}

/// The crate's phase for a model phase.
pub(crate) fn real(phase: Phase) -> ServicePhase {
    match phase {
        Phase::Starting => ServicePhase::Starting,
        Phase::Running => ServicePhase::Running,
        Phase::BackingOff => ServicePhase::BackingOff,
        Phase::Restarting => ServicePhase::Restarting,
        Phase::Stopping => ServicePhase::Stopping,
        Phase::Terminated => ServicePhase::Terminated,
    }
}

/// One attempted operation on a lifecycle.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Running(Duration),
    BackingOff(Duration, Duration),
    Restarting(Duration),
    Stopping(Duration),
    Terminated(Duration, TerminationReason),
    Failure(FailureKind, String),
    Ready,
}

impl Op {
    /// Applies the operation to the real lifecycle; `Ok(())` or the error's
    /// `(from, to)` (for a failure record: `(phase, phase)`).
    pub(crate) fn apply(
        &self,
        lifecycle: &mut ServiceLifecycle,
    ) -> Result<(), (ServicePhase, ServicePhase)> {
        let transition = match self {
            Op::Running(now) => lifecycle.transition_to_running(*now),
            Op::BackingOff(now, delay) => lifecycle.transition_to_backing_off(*now, *delay),
            Op::Restarting(now) => lifecycle.transition_to_restarting(*now),
            Op::Stopping(now) => lifecycle.transition_to_stopping(*now),
            Op::Terminated(now, reason) => lifecycle.transition_to_terminated(*now, reason.clone()),
            Op::Failure(kind, message) => {
                return lifecycle
                    .record_failure(*kind, message.as_str())
                    .map_err(|error| (error.phase(), error.phase()));
            }
            Op::Ready => {
                return lifecycle
                    .mark_ready()
                    .map(|_| ())
                    .map_err(|error| (error.phase(), error.phase()));
            }
        };
        transition.map_err(|error| (error.from(), error.to()))
    }
}

/// The reference model: what the lifecycle should look like.
#[derive(Debug, Clone)]
pub(crate) struct Model {
    name: String,
    phase: Phase,
    starts: u64,
    /// Failures by kind, in the order error, panic, timeout.
    failures: [u64; 4],
    last_error: Option<String>,
    backoff: Option<Duration>,
    reason: Option<TerminationReason>,
    last_at: Duration,
    running_since: Option<Duration>,
    closed_running: Duration,
    ready: bool,
    seq: u64,
}

impl Model {
    pub(crate) fn new(name: &str, now: Duration) -> Self {
        Model {
            name: name.to_owned(),
            phase: Phase::Starting,
            starts: 0,
            failures: [0; 4],
            last_error: None,
            backoff: None,
            reason: None,
            last_at: now,
            running_since: None,
            closed_running: Duration::ZERO,
            ready: false,
            seq: 0,
        }
    }

    /// Applies `op`: `Ok(())` if the model accepts it, else the rejected
    /// `(from, to)` (for a failure record: `(phase, phase)`).
    pub(crate) fn apply(&mut self, op: &Op) -> Result<(), (ServicePhase, ServicePhase)> {
        let (to, now) = match op {
            Op::Failure(kind, message) => return self.record_failure(*kind, message),
            Op::Ready => {
                if self.phase != Phase::Running {
                    return Err((real(self.phase), real(self.phase)));
                }
                if !self.ready {
                    self.ready = true;
                    self.seq += 1;
                }
                return Ok(());
            }
            Op::Running(now) => (Phase::Running, *now),
            Op::BackingOff(now, _) => (Phase::BackingOff, *now),
            Op::Restarting(now) => (Phase::Restarting, *now),
            Op::Stopping(now) => (Phase::Stopping, *now),
            Op::Terminated(now, _) => (Phase::Terminated, *now),
        };
        if !allowed(self.phase, to) {
            return Err((real(self.phase), real(to)));
        }
        if let Some(since) = self.running_since.take() {
            let interval = now.checked_sub(since).unwrap_or(Duration::ZERO);
            self.closed_running = self
                .closed_running
                .checked_add(interval)
                .unwrap_or(Duration::MAX);
        }
        self.phase = to;
        self.last_at = now;
        self.backoff = None;
        self.ready = false;
        self.seq += 1;
        match op {
            Op::Running(_) => {
                self.starts += 1;
                self.running_since = Some(now);
            }
            Op::BackingOff(_, delay) => self.backoff = Some(*delay),
            Op::Terminated(_, reason) => {
                // An abort at a stop or shutdown timeout is a timeout failure.
                if let TerminationReason::ShutdownTimeout { .. }
                | TerminationReason::StopTimeout { .. } = reason
                {
                    self.failures[2] += 1;
                    self.last_error = Some(reason.to_string());
                }
                self.reason = Some(reason.clone());
            }
            Op::Restarting(_) | Op::Stopping(_) | Op::Failure(..) | Op::Ready => {}
        }
        Ok(())
    }

    fn record_failure(
        &mut self,
        kind: FailureKind,
        message: &str,
    ) -> Result<(), (ServicePhase, ServicePhase)> {
        if self.phase != Phase::Running && self.phase != Phase::Stopping {
            return Err((real(self.phase), real(self.phase)));
        }
        let index = match kind {
            FailureKind::Error => 0,
            FailureKind::Panic => 1,
            FailureKind::Timeout => 2,
            FailureKind::Hung => 3,
            _ => unreachable!("a kind added to the crate must be added to the tests"),
        };
        self.failures[index] += 1;
        self.seq += 1;
        self.last_error = Some(message.to_owned());
        Ok(())
    }

    /// Running time up to `now`.
    pub(crate) fn running_time(&self, now: Duration) -> Duration {
        let open = match self.running_since {
            Some(since) => now.checked_sub(since).unwrap_or(Duration::ZERO),
            None => Duration::ZERO,
        };
        self.closed_running
            .checked_add(open)
            .unwrap_or(Duration::MAX)
    }

    /// The snapshot the crate should produce at `now`.
    pub(crate) fn snapshot(&self, now: Duration) -> ServiceLifecycleSnapshot {
        ServiceLifecycleSnapshot {
            service_name: self.name.clone(),
            phase: real(self.phase),
            start_count: self.starts,
            failures: self.failure_counts(),
            last_error: self.last_error.clone(),
            termination_reason: self.reason.clone(),
            cumulative_running_time: self.running_time(now),
            current_backoff: self.backoff,
            last_transition_at: self.last_at,
            ready: self.ready,
            seq: self.seq,
        }
    }

    fn failure_counts(&self) -> FailureCounts {
        FailureCounts {
            error: self.failures[0],
            panic: self.failures[1],
            timeout: self.failures[2],
            hung: self.failures[3],
        }
    }

    /// Asserts that every getter of `lifecycle` agrees with the model at `now`.
    pub(crate) fn assert_matches(&self, lifecycle: &ServiceLifecycle, now: Duration) {
        assert_eq!(lifecycle.name(), self.name);
        assert_eq!(&**lifecycle.name_arc(), self.name);
        assert_eq!(lifecycle.phase(), real(self.phase));
        assert_eq!(lifecycle.start_count(), self.starts);
        assert_eq!(
            lifecycle.restart_count(),
            if self.starts == 0 { 0 } else { self.starts - 1 }
        );
        assert_eq!(lifecycle.failures(), self.failure_counts());
        assert_eq!(
            lifecycle.failures().total(),
            self.failures.iter().sum::<u64>()
        );
        assert_eq!(lifecycle.last_error(), self.last_error.as_deref());
        assert_eq!(lifecycle.current_backoff(), self.backoff);
        assert_eq!(lifecycle.termination_reason(), self.reason.as_ref());
        assert_eq!(lifecycle.last_transition_at(), self.last_at);
        assert_eq!(lifecycle.is_ready(), self.ready);
        assert_eq!(lifecycle.seq(), self.seq);
        assert_eq!(
            lifecycle.time_in_phase(now),
            now.checked_sub(self.last_at).unwrap_or(Duration::ZERO)
        );
        assert_eq!(
            lifecycle.cumulative_running_time(now),
            self.running_time(now)
        );
        let snapshot = lifecycle.snapshot(now);
        assert_eq!(snapshot, self.snapshot(now));
        assert_eq!(
            snapshot.restart_count(),
            if self.starts == 0 { 0 } else { self.starts - 1 }
        );
        if let Some(reason) = &snapshot.termination_reason {
            assert_eq!(reason.kind(), expected_kind(reason));
        }
    }
}

/// The kind label each reason must have, written out again in the test.
pub(crate) fn expected_kind(reason: &TerminationReason) -> &'static str {
    match reason {
        TerminationReason::Completed => "completed",
        TerminationReason::Cancelled => "cancelled",
        TerminationReason::Unrecoverable(_) => "unrecoverable",
        TerminationReason::CircuitBreakerOpen { .. } => "circuit_breaker_open",
        TerminationReason::Panicked(_) => "panicked",
        TerminationReason::ShutdownTimeout { .. } => "shutdown_timeout",
        TerminationReason::Stopped => "stopped",
        TerminationReason::StopTimeout { .. } => "stop_timeout",
        TerminationReason::DependencyStopped { .. } => "dependency_stopped",
        TerminationReason::DoNotRestart(_) => "do_not_restart",
        TerminationReason::TerminateTree(_) => "terminate_tree",
        _ => unreachable!("a reason added to the crate must be added to the tests"),
    }
}

/// Times: mostly small (so time often goes backwards between operations),
/// sometimes anywhere up to `Duration::MAX` (so sums saturate).
pub(crate) fn time() -> impl Strategy<Value = Duration> {
    prop_oneof![
        6 => (0u64..1_000).prop_map(Duration::from_millis),
        1 => (any::<u64>(), 0u32..1_000_000_000).prop_map(|(secs, nanos)| Duration::new(secs, nanos)),
        1 => Just(Duration::MAX),
        1 => Just(Duration::ZERO),
    ]
}

/// Any termination reason.
pub(crate) fn reason() -> impl Strategy<Value = TerminationReason> {
    prop_oneof![
        Just(TerminationReason::Completed),
        Just(TerminationReason::Cancelled),
        any::<String>().prop_map(TerminationReason::Unrecoverable),
        (any::<u32>(), any::<u32>()).prop_map(|(failures, max_retries)| {
            TerminationReason::CircuitBreakerOpen {
                failures,
                max_retries,
            }
        }),
        any::<String>().prop_map(TerminationReason::Panicked),
        time().prop_map(|timeout| TerminationReason::ShutdownTimeout { timeout }),
        Just(TerminationReason::Stopped),
        time().prop_map(|timeout| TerminationReason::StopTimeout { timeout }),
        any::<String>().prop_map(|dependency| TerminationReason::DependencyStopped { dependency }),
        any::<String>().prop_map(TerminationReason::DoNotRestart),
        any::<String>().prop_map(TerminationReason::TerminateTree),
    ]
}

/// Any failure kind.
pub(crate) fn kind() -> impl Strategy<Value = FailureKind> {
    prop_oneof![
        Just(FailureKind::Error),
        Just(FailureKind::Panic),
        Just(FailureKind::Timeout),
        Just(FailureKind::Hung),
    ]
}

/// Any operation; transitions along the restart loop are weighted up so long
/// runs of legal moves happen often.
pub(crate) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => time().prop_map(Op::Running),
        3 => (time(), time()).prop_map(|(now, delay)| Op::BackingOff(now, delay)),
        3 => time().prop_map(Op::Restarting),
        1 => time().prop_map(Op::Stopping),
        1 => (time(), reason()).prop_map(|(now, reason)| Op::Terminated(now, reason)),
        3 => (kind(), any::<String>()).prop_map(|(kind, message)| Op::Failure(kind, message)),
        2 => Just(Op::Ready),
    ]
}
