//! The restart loop of one service: the policy table, in one task per service.
//!
//! The task owns the service and its `BackoffState`; it shares only the
//! lifecycle, the host's requests and readiness (through its
//! [`ServiceSlot`]) with the rest of the supervisor.
//!
//! # Invariants
//!
//! 1. User code never unwinds out of the runner: `Service::run` is called, its
//!    future polled and dropped, and its error converted, formatted and
//!    searched for a [`DoNotRestart`](crate::DoNotRestart) or
//!    [`TerminateTree`](crate::TerminateTree), each under `catch_unwind`; a
//!    panic in any of them is a failed run of kind [`FailureKind::Panic`],
//!    never mistaken for either.
//! 2. A run is dropped before it returns only when the host or the shutdown
//!    asked it to stop (or restart), or it missed a heartbeat, and its stop
//!    timeout passed; the supervisor never races a run against its own
//!    cancellation. A new run starts only after the previous one returned or
//!    was dropped.
//! 3. Only a request of the supervisor makes a run's end a stop or a restart;
//!    a service that cancels its own context's token ends its run by policy,
//!    and so does a hung run (a missed heartbeat is a failure, of kind
//!    [`FailureKind::Hung`]). A request that arrives while a hung run is
//!    being stopped is read when it ends, as for any run (invariant 4).
//! 4. The request is read under the slot's lock at every decision point: at
//!    each start (before waiting for dependencies and after), when a run
//!    ends, when a backoff ends, and while held by a group restart. A stop
//!    read there is final; a restart is consumed there. So no timer, backoff
//!    or run that ends later can undo a stop (no resurrection).
//! 6. Under `OneForAll` and `RestForOne`, a restart the policy decides is
//!    never made by the runner alone: it holds itself and asks the group's
//!    coordinator (see `group.rs`), which releases it.
//! 5. Events are delivered to the sinks and subscribers (`flush`) before
//!    every `.await` that waits (a run that is pending, a backoff delay, a
//!    stop timeout, dependencies, a yield to the scheduler) and before the
//!    task ends, so a service's events are never held back while it waits.
//!    A service that runs without waiting (a crash loop of runs that fail at
//!    once) delivers the events of all its cycles up to its next yield in one
//!    batch.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use backoff::{BackoffAction, BackoffConfig, BackoffState, InvalidBackoff};
use futures::FutureExt as _;
use lifecycle::{FailureKind, TerminationReason};

use crate::context::RunContexts;
use crate::escalation::Escalation;
use crate::panics::take_message;
use crate::service::{BoxError, error_chain};
use crate::shared::Shared;
use crate::slot::{
    Asked, DependencyState, Failure, HeldAsked, ServiceSlot, StopCause, fails_for_good,
};
use crate::telemetry::{SinkEvent, Telemetry};
use crate::{RestartPolicy, Service, StopTimeout};

/// Everything one service's task owns.
pub(crate) struct Runner<S> {
    pub(crate) service: S,
    pub(crate) slot: Arc<ServiceSlot>,
    pub(crate) backoff: LazyBackoff,
    pub(crate) contexts: RunContexts,
    pub(crate) shared: Arc<Shared>,
}

/// A service's backoff state, made at its first failure: until then (for
/// most services, for ever) the task carries only the validated config and
/// the seed, not the whole state.
///
/// Equivalent to a state made at spawn: before its first failure, a state
/// only learns when each run started, which matters only to a reset on
/// cooldown, a no-op on a fresh state.
pub(crate) struct LazyBackoff {
    /// Shared: most services use the supervisor's default.
    config: Arc<BackoffConfig>,
    seed: u64,
    state: Option<Box<BackoffState>>,
}

impl LazyBackoff {
    /// Validates `config` now, so that a spawn with an invalid one fails.
    pub(crate) fn new(config: Arc<BackoffConfig>, seed: u64) -> Result<Self, InvalidBackoff> {
        config.validate()?;
        Ok(Self {
            config,
            seed,
            state: None,
        })
    }

    fn record_start(&mut self, now: Duration) {
        if let Some(state) = &mut self.state {
            state.record_start(now);
        }
    }

    fn reset(&mut self) {
        if let Some(state) = &mut self.state {
            state.reset();
        }
    }

    /// The state, made on first use (the config was validated by `new`).
    fn state(&mut self) -> Result<&mut BackoffState, InvalidBackoff> {
        let state = match self.state.take() {
            Some(state) => state,
            None => Box::new(BackoffState::new(*self.config, self.seed)?),
        };
        Ok(self.state.insert(state))
    }
}

/// How one run ended, as far as the service is concerned.
enum Exit {
    Clean,
    Failed {
        kind: FailureKind,
        message: String,
        /// What the error asked for besides ([`DoNotRestart`](crate::DoNotRestart),
        /// [`TerminateTree`](crate::TerminateTree)).
        escalation: Escalation,
    },
}

/// How one run ended, as far as the supervisor is concerned.
enum RunEnd {
    /// The run returned (or panicked) on its own.
    Returned(Exit),
    /// The run was asked to stop, and returned within its timeout.
    Stopped(Exit),
    /// The run was asked to stop, and dropped at its timeout.
    Aborted(Duration),
    /// The run was asked to stop and dropped at once, as configured
    /// ([`StopTimeout::Immediate`]).
    Dropped,
    /// The run missed a heartbeat of `interval` and was asked to stop for it;
    /// `how` is how it stopped (`Stopped`, `Aborted` or `Dropped`). Boxed:
    /// rare, and it keeps every other end small.
    Hung {
        interval: Duration,
        how: Box<RunEnd>,
    },
}

/// Why the run in progress is being stopped, if it is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stopping {
    /// It is not: it runs.
    No,
    /// The supervisor asked (a stop, a restart, the shutdown).
    Asked,
    /// It missed a heartbeat.
    Hung,
}

/// What a run's end comes to, before the policy.
enum Settled {
    /// The run ended on its own: the policy decides.
    ByPolicy(Exit),
    /// A restart was asked for, and is made.
    Restarted,
    /// A group restart holds the service.
    Held,
    /// The service terminated.
    Over,
}

/// What to do after the restart delay is decided.
enum Next {
    /// Start again; the restart happens at this time.
    Restart {
        at: Duration,
    },
    Stop,
}

/// What waiting for the dependencies ended with.
enum Awaited {
    Ready,
    Asked,
    Gone { name: Arc<str>, failed: bool },
}

impl<S: Service> Runner<S> {
    /// Supervises the service until it terminates. A transition refused by
    /// the lifecycle means the supervisor already terminated the service (the
    /// drain's last resort): the task then simply ends.
    ///
    /// The clock is read once per step, and that time is used by every
    /// transition of the step (a zero-delay restart reads it once per cycle).
    pub(crate) async fn run(&mut self) {
        let mut now = self.telemetry().now();
        loop {
            match self.before_start(now).await {
                Some(at) => now = at,
                None => break,
            }
            if self.start(now).is_err() {
                break;
            }

            let end = self.run_once().await;
            now = self.telemetry().now();
            let exit = match self.settle(end, now) {
                Settled::ByPolicy(exit) => exit,
                Settled::Restarted => continue,
                Settled::Held => match self.wait_released().await {
                    Some(at) => {
                        now = at;
                        continue;
                    }
                    None => break,
                },
                Settled::Over => break,
            };

            match self.after_run(exit, now).await {
                Next::Restart { at } => {
                    now = at;
                    let restarting = self.slot.transition_at(
                        self.telemetry(),
                        now,
                        None,
                        |lc, now| lc.transition_to_restarting(now),
                        |_| None,
                    );
                    if restarting.is_err() {
                        break;
                    }
                }
                Next::Stop => break,
            }
        }
        self.flush();
        self.slot.release_task();
    }

    fn telemetry(&self) -> &Telemetry {
        &self.shared.telemetry
    }

    /// Invariant 4: what was asked while the run ran, or as it ended, decides
    /// first. (Not async, so that nothing of it lives in the task's state.)
    fn settle(&mut self, end: RunEnd, now: Duration) -> Settled {
        match (end, self.slot.take_request()) {
            (RunEnd::Returned(exit), Asked::Nothing) => Settled::ByPolicy(exit),
            (RunEnd::Hung { interval, how }, Asked::Nothing) => {
                Settled::ByPolicy(Exit::hung(interval, *how))
            }
            // An error that asks not to be restarted wins over a restart
            // asked for by the host (a stop, asked for or not, is final).
            (RunEnd::Returned(exit) | RunEnd::Stopped(exit), Asked::Restart)
                if exit.escalation() != Escalation::None =>
            {
                Settled::ByPolicy(exit)
            }
            (end, Asked::Stop(cause)) => {
                self.stopped(now, end, &cause);
                Settled::Over
            }
            (end, Asked::Hold) => match self.restarted(now, end) {
                Ok(()) => {
                    self.slot.mark_held();
                    Settled::Held
                }
                Err(_) => Settled::Over,
            },
            (end, Asked::Restart | Asked::Nothing) => match self.restarted(now, end) {
                Ok(()) => Settled::Restarted,
                Err(_) => Settled::Over,
            },
        }
    }

    /// Waits, held by a group restart, until the group's coordinator releases
    /// the service (or it is asked to stop). Returns the time of the release,
    /// or `None` if the service terminated instead. Nothing restarts once the
    /// supervisor drains.
    async fn wait_released(&mut self) -> Option<Duration> {
        loop {
            match self.slot.take_held_request() {
                HeldAsked::Released if self.shared.is_draining() => {
                    self.stop_idle(self.telemetry().now(), &StopCause::Shutdown);
                    return None;
                }
                HeldAsked::Released => return Some(self.telemetry().now()),
                HeldAsked::Stop(cause) => {
                    tracing::info!("asked to stop while held by a group restart");
                    self.stop_idle(self.telemetry().now(), &cause);
                    return None;
                }
                HeldAsked::Wait => {}
            }
            // Invariant 5.
            self.flush();
            let slot = &*self.slot;
            std::future::poll_fn(|cx| {
                if slot.poll_asked(cx) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
        }
    }

    /// Before each start: a stop asked for ends the service here; then the
    /// dependencies must be ready. Returns the time of the start, or `None`
    /// if the service terminated instead.
    async fn before_start(&mut self, mut now: Duration) -> Option<Duration> {
        loop {
            match self.slot.take_request() {
                Asked::Stop(cause) => {
                    self.stop_idle(now, &cause);
                    return None;
                }
                Asked::Hold => {
                    self.slot.mark_held();
                    now = self.wait_released().await?;
                    continue;
                }
                // About to start anyway.
                Asked::Restart | Asked::Nothing => {}
            }
            if self.slot.dependencies().is_empty() {
                return Some(now);
            }
            self.flush();
            let slot = &*self.slot;
            let awaited = std::future::poll_fn(|cx| poll_dependencies(slot, cx)).await;
            now = self.telemetry().now();
            match awaited {
                Awaited::Ready => return Some(now),
                Awaited::Asked => {}
                // Its termination asked this service to stop, unless this
                // service was spawned as it terminated: ask here.
                Awaited::Gone { name, failed } => {
                    let _ = self
                        .slot
                        .request_stop(StopCause::Dependency { name, failed }, now);
                }
            }
        }
    }

    /// `Starting | Restarting → Running`, ready at once unless the service
    /// signals readiness itself.
    fn start(&mut self, now: Duration) -> Result<(), lifecycle::InvalidTransition> {
        let ready_at_start = !self.slot.spec.signals_readiness;
        self.slot.transition_at(
            self.telemetry(),
            now,
            None,
            |lc, now| {
                lc.transition_to_running(now)?;
                if ready_at_start {
                    let _ = lc.mark_ready();
                }
                Ok(())
            },
            |lc| {
                Some(SinkEvent::Started {
                    start_count: lc.start_count(),
                })
            },
        )?;
        self.backoff.record_start(now);
        tracing::info!("service running");
        Ok(())
    }

    /// One run of the service, in its own context, cancelled once it is over.
    async fn run_once(&mut self) -> RunEnd {
        let ctx = self.contexts.next(&self.slot);
        // Invariant 1: a panic before the future exists is a failed run.
        let service = &self.service;
        let future = match panic::catch_unwind(AssertUnwindSafe(|| service.run(ctx))) {
            Ok(future) => future,
            Err(payload) => {
                self.contexts.end_run();
                return RunEnd::Returned(Exit::panicked(payload));
            }
        };
        let mut run = pin!(Some(AssertUnwindSafe(future).catch_unwind()));
        // The whole run in one `poll_fn`, not nested futures: the task's state
        // machine keeps only the run and a pointer to one timer. The
        // outcome becomes an `Exit` at once: the service's error type need
        // not be `Send`, so it must not live across an `.await`.
        // Whether the events were delivered, why the run is being stopped,
        // and then the one timer: the heartbeat deadline while the run runs
        // (only for a service with a heartbeat interval, from the run's
        // start), the stop timer once it is asked to stop, if the timeout is
        // finite (the same allocation, reset). One variable, so the closure
        // below keeps one pointer to them.
        // (The interval is read from the slot, not kept in a local: a local
        // would live in the task's state for the whole run.)
        let deadline = self
            .slot
            .spec
            .heartbeat
            .map(|interval| Box::pin(tokio::time::sleep(interval)));
        let mut stop: (bool, Stopping, Option<Pin<Box<tokio::time::Sleep>>>) =
            (false, Stopping::No, deadline);
        let end = std::future::poll_fn(|cx| {
            let (delivered, stopping, timer) = &mut stop;
            let heartbeat = self.slot.spec.heartbeat;
            if let Poll::Ready(outcome) = poll_run(run.as_mut(), cx) {
                let exit = Exit::from_outcome(outcome);
                return Poll::Ready(match *stopping {
                    Stopping::No => RunEnd::Returned(exit),
                    Stopping::Asked | Stopping::Hung => {
                        stopping.end(heartbeat, RunEnd::Stopped(exit))
                    }
                });
            }
            // Invariant 5: the run is about to wait.
            if !*delivered {
                *delivered = true;
                self.flush();
            }
            if self.contexts.take_ready() {
                self.slot
                    .mark_ready(self.telemetry(), self.telemetry().now());
                self.flush();
            }
            if *stopping == Stopping::No {
                if self.slot.poll_asked(cx) {
                    *stopping = Stopping::Asked;
                    self.enter_stopping();
                } else if self.missed_heartbeat(heartbeat, timer, cx) {
                    *stopping = Stopping::Hung;
                    tracing::warn!(interval = ?heartbeat, "service missed its heartbeat: hung");
                    self.enter_stopping();
                } else {
                    return Poll::Pending;
                }
                let timeout = match self.slot.spec.stop_timeout {
                    StopTimeout::Immediate => {
                        return Poll::Ready(stopping.end(heartbeat, RunEnd::Dropped));
                    }
                    StopTimeout::After(timeout) => Some(timeout),
                    StopTimeout::Infinity => None,
                };
                self.contexts.cancel();
                // The cancellation may let the run return at once.
                if let Poll::Ready(outcome) = poll_run(run.as_mut(), cx) {
                    let exit = Exit::from_outcome(outcome);
                    return Poll::Ready(stopping.end(heartbeat, RunEnd::Stopped(exit)));
                }
                // Boxed: the timer exists only while a run is asked to stop
                // (or has a heartbeat deadline, whose allocation it reuses),
                // and keeping it out of the task's state machine keeps every
                // service smaller.
                *timer = match (timer.take(), timeout) {
                    (Some(mut reused), Some(timeout)) => {
                        reused.as_mut().reset(tokio::time::Instant::now() + timeout);
                        Some(reused)
                    }
                    (None, Some(timeout)) => Some(Box::pin(tokio::time::sleep(timeout))),
                    (_, None) => None,
                };
            }
            let Some(stop_timer) = timer else {
                return Poll::Pending; // No timeout: wait as long as it takes.
            };
            match stop_timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    tracing::warn!("service did not stop in time: aborted");
                    let timeout = self.slot.spec.stop_timeout.duration().unwrap_or_default();
                    Poll::Ready(stopping.end(heartbeat, RunEnd::Aborted(timeout)))
                }
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        // Invariant 1: dropping the run is user code too.
        let dropped = panic::catch_unwind(AssertUnwindSafe(|| run.set(None)));
        self.contexts.end_run();
        match (end, dropped) {
            (RunEnd::Returned(Exit::Clean), Err(payload)) => {
                RunEnd::Returned(Exit::panicked(payload))
            }
            (RunEnd::Stopped(Exit::Clean), Err(payload)) => {
                RunEnd::Stopped(Exit::panicked(payload))
            }
            (end, Err(payload)) => {
                crate::panics::drop_payload(payload);
                end
            }
            (end, Ok(())) => end,
        }
    }

    /// Whether the run missed its heartbeat: its deadline passed and it did
    /// not beat since the previous check. When it did beat, the next deadline
    /// is one interval after this check. `false` without a heartbeat
    /// interval.
    fn missed_heartbeat(
        &self,
        interval: Option<Duration>,
        deadline: &mut Option<Pin<Box<tokio::time::Sleep>>>,
        cx: &mut Context<'_>,
    ) -> bool {
        let (Some(interval), Some(deadline)) = (interval, deadline) else {
            return false;
        };
        while deadline.as_mut().poll(cx).is_ready() {
            if !self.contexts.take_heartbeat() {
                return true;
            }
            // A zero interval is refused at spawn: this deadline is ahead.
            deadline
                .as_mut()
                .reset(tokio::time::Instant::now() + interval);
        }
        false
    }

    /// Asked to stop (or restart), or hung, while running: `Running → Stopping`.
    fn enter_stopping(&self) {
        let _ = self.slot.transition_at(
            self.telemetry(),
            self.telemetry().now(),
            None,
            |lc, now| lc.transition_to_stopping(now),
            |_| None,
        );
        self.flush();
        tracing::info!(timeout = ?self.slot.spec.stop_timeout, "service asked to stop");
    }

    /// The run ended after a stop was asked for: the service terminates for
    /// the stop's cause, with the run's failure recorded if it failed on the
    /// way out.
    fn stopped(&self, now: Duration, end: RunEnd, cause: &StopCause) {
        tracing::info!("service stopped");
        let (aborted, failure) = match end {
            RunEnd::Returned(exit) => {
                // The request and the run's end crossed: it was a stop.
                self.to_stopping(now);
                (None, exit.into_failure())
            }
            RunEnd::Stopped(exit) => (None, exit.into_failure()),
            RunEnd::Aborted(timeout) => (Some(timeout), None),
            RunEnd::Dropped => (None, None),
            RunEnd::Hung { interval, how } => {
                let aborted = match *how {
                    RunEnd::Aborted(timeout) => Some(timeout),
                    _ => None,
                };
                (aborted, Some(Failure::hung(interval, *how)))
            }
        };
        let failed = matches!(cause, StopCause::Dependency { failed: true, .. });
        self.terminate_as(now, cause.reason(aborted), failed, failure);
    }

    /// The run ended after a restart was asked for: `Stopping → Restarting`
    /// at once, not a failure (unless the run failed on its own way out, or
    /// had to be dropped at its timeout), the backoff untouched.
    fn restarted(&self, now: Duration, end: RunEnd) -> Result<(), lifecycle::InvalidTransition> {
        tracing::info!("service restarting, as asked");
        let failure = match end {
            RunEnd::Returned(exit) => {
                self.to_stopping(now);
                exit.into_failure()
            }
            RunEnd::Stopped(exit) => exit.into_failure(),
            RunEnd::Aborted(timeout) => Some(Failure {
                kind: FailureKind::Timeout,
                message: format!("did not stop within {timeout:?} when asked to restart"),
            }),
            RunEnd::Dropped => None,
            RunEnd::Hung { interval, how } => Some(Failure::hung(interval, *how)),
        };
        self.slot.transition_at(
            self.telemetry(),
            now,
            failure,
            |lc, now| lc.transition_to_restarting(now),
            |_| None,
        )
    }

    fn to_stopping(&self, now: Duration) {
        let _ = self.slot.transition_at(
            self.telemetry(),
            now,
            None,
            |lc, now| lc.transition_to_stopping(now),
            |_| None,
        );
    }

    /// Whether the policy restarts the service after a run that ended so.
    fn would_restart(&self, exit: &Exit) -> bool {
        if exit.escalation() != Escalation::None {
            return false;
        }
        match (self.slot.spec.policy, exit) {
            (RestartPolicy::Always, _) | (RestartPolicy::OnFailure, Exit::Failed { .. }) => true,
            (RestartPolicy::OnFailure, Exit::Clean) | (RestartPolicy::Never, _) => false,
        }
    }

    /// What the policy makes of a run that returned on its own. The exit is
    /// moved in here, so that it does not live in the task's state machine
    /// next to the run.
    async fn after_run(&mut self, exit: Exit, now: Duration) -> Next {
        // Once the supervisor drains, nothing is restarted: a service that
        // ends on its own while the drain has not asked it to stop yet (it
        // waits for its dependants) stops for the shutdown. (The drain's
        // flag, not the token: reading a token takes its lock.)
        if self.shared.is_draining() && self.would_restart(&exit) {
            self.stopped(now, RunEnd::Returned(exit), &StopCause::Shutdown);
            return Next::Stop;
        }
        match exit {
            Exit::Clean => self.after_clean_exit(now).await,
            Exit::Failed {
                kind,
                message,
                escalation,
            } => self.after_failure(kind, message, escalation, now).await,
        }
    }

    async fn after_clean_exit(&mut self, now: Duration) -> Next {
        tracing::info!("service exited cleanly");
        match self.slot.spec.policy {
            RestartPolicy::Always => {
                // A clean exit is not a failure: the next failure backs off
                // from the base again.
                self.backoff.reset();
                let delay = self.telemetry().clean_restart_delay;
                self.restart_after(delay, now, None).await
            }
            RestartPolicy::OnFailure | RestartPolicy::Never => {
                self.terminate(now, TerminationReason::Completed, None);
                Next::Stop
            }
        }
    }

    async fn after_failure(
        &mut self,
        kind: FailureKind,
        message: String,
        escalation: Escalation,
        now: Duration,
    ) -> Next {
        tracing::warn!(kind = %kind, error = %message, "service failed");
        // Recorded with the transition that follows, under the same lock, so
        // a snapshot never holds a failure its next event reports again.
        let failure = Some(Failure {
            kind,
            message: message.clone(),
        });
        if let Some(reason) = self.given_up(escalation, &message) {
            tracing::warn!(reason = %reason.kind(), "service not restarted: its error asked so");
            self.terminate(now, reason, failure);
            return Next::Stop;
        }
        let backoff = match self.backoff.state() {
            Ok(backoff) => backoff,
            // Validated at spawn: unreachable, but never a panic.
            Err(invalid) => {
                self.terminate(
                    now,
                    TerminationReason::Unrecoverable(format!("invalid backoff: {invalid}")),
                    failure,
                );
                return Next::Stop;
            }
        };
        backoff.maybe_reset_on_cooldown(now);

        if self.slot.spec.policy == RestartPolicy::Never {
            let reason = match kind {
                FailureKind::Panic => TerminationReason::Panicked(message),
                _ => TerminationReason::Unrecoverable(message),
            };
            self.terminate(now, reason, failure);
            return Next::Stop;
        }

        match backoff.next_backoff(now) {
            BackoffAction::Retry(delay) => self.restart_after(delay, now, failure).await,
            BackoffAction::CircuitOpen {
                failures,
                max_retries,
            } => {
                tracing::error!(
                    failures,
                    max_retries,
                    "circuit breaker open: too many failures, giving up"
                );
                self.terminate(
                    now,
                    TerminationReason::CircuitBreakerOpen {
                        failures,
                        max_retries,
                    },
                    failure,
                );
                Next::Stop
            }
        }
    }

    /// A restart the policy decided, after `delay`: alone under `OneForOne`,
    /// by the group's coordinator under the other strategies.
    async fn restart_after(
        &mut self,
        delay: Duration,
        now: Duration,
        failure: Option<Failure>,
    ) -> Next {
        match &self.shared.group {
            None => self.back_off(delay, now, failure).await,
            Some(group) if group.cycles() => self.set_off(delay, now, failure).await,
            Some(_) => {
                if self.shared.charge_restart(&self.slot, now).is_err() {
                    // Tripped: the restart is not made, the supervisor shuts
                    // down.
                    self.to_stopping(now);
                    self.terminate_as(now, TerminationReason::Cancelled, false, failure);
                    return Next::Stop;
                }
                self.back_off(delay, now, failure).await
            }
        }
    }

    /// The termination an error's escalation asks for, if it asks for one: a
    /// [`TerminateTree`](crate::TerminateTree) the host chose to ignore is a
    /// do-not-restart.
    fn given_up(&self, escalation: Escalation, message: &str) -> Option<TerminationReason> {
        // The message is copied only when the error escalates: the common
        // failure pays nothing here.
        match escalation {
            Escalation::None => None,
            Escalation::DoNotRestart => Some(TerminationReason::DoNotRestart(message.to_owned())),
            Escalation::TerminateTree if self.shared.config.ignore_terminate_tree => {
                Some(TerminationReason::DoNotRestart(message.to_owned()))
            }
            Escalation::TerminateTree => Some(TerminationReason::TerminateTree(message.to_owned())),
        }
    }

    /// `Running → BackingOff` at `now`, recording the run's failure.
    fn enter_backing_off(&self, delay: Duration, now: Duration, failure: Option<Failure>) -> bool {
        let backing_off = self.slot.transition_at(
            self.telemetry(),
            now,
            failure,
            |lc, now| lc.transition_to_backing_off(now, delay),
            |_| Some(SinkEvent::Backoff { delay }),
        );
        backing_off.is_ok()
    }

    /// Under `OneForAll` or `RestForOne`: `Running → BackingOff`, then the
    /// service waits, held, while the group's coordinator restarts its group
    /// (the others stopped, `delay` after `now`, all started again in order).
    async fn set_off(&mut self, delay: Duration, now: Duration, failure: Option<Failure>) -> Next {
        if !self.enter_backing_off(delay, now, failure) {
            return Next::Stop;
        }
        tracing::info!(delay_ms = delay.as_millis(), "group restart requested");
        let start_count = self.slot.mark_held();
        self.shared
            .request_cycle(&self.slot, start_count, now.saturating_add(delay));
        match self.wait_released().await {
            Some(at) => Next::Restart { at },
            None => Next::Stop,
        }
    }

    /// `Running → BackingOff` at `now` (recording the run's failure), then
    /// waits `delay` unless a stop or restart is asked for first (a restart
    /// cuts the delay short).
    async fn back_off(&mut self, delay: Duration, now: Duration, failure: Option<Failure>) -> Next {
        if !self.enter_backing_off(delay, now, failure) {
            return Next::Stop;
        }
        tracing::info!(delay_ms = delay.as_millis(), "restart scheduled");

        if delay.is_zero() {
            // No timer for a zero delay (it would wait for the next timer
            // tick). Spend a unit of the task's cooperative budget instead:
            // a crash loop yields to the scheduler every 128 restarts, so it
            // cannot starve the worker, without paying a context switch on
            // each restart. The events are flushed once the restart is made
            // (before the next run), one batch per cycle.
            if !tokio::task::coop::has_budget_remaining() {
                // Invariant 5: this await yields to the scheduler. (At most
                // a budget's worth of cycles, 128, is queued.)
                self.flush();
            }
            tokio::task::coop::consume_budget().await;
            return self.after_delay(now);
        }
        self.flush();
        // Boxed: the timer is only alive while backing off, and keeping it
        // out of the task's state machine keeps every idle service smaller.
        let sleep = Box::pin(tokio::time::sleep(delay));
        let slot = &*self.slot;
        let asked = std::future::poll_fn(|cx| {
            if slot.poll_asked(cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        tokio::select! {
            biased;
            () = asked => {}
            () = sleep => {}
        }
        self.after_delay(self.telemetry().now())
    }

    /// The end of a backoff (its delay over, or cut short by a request).
    /// Nothing restarts once the supervisor shuts down.
    fn after_delay(&mut self, now: Duration) -> Next {
        match self.slot.take_request() {
            Asked::Stop(cause) => {
                tracing::info!("asked to stop while backing off");
                self.stop_idle(now, &cause);
                Next::Stop
            }
            Asked::Restart | Asked::Hold | Asked::Nothing if self.shared.is_draining() => {
                self.stop_idle(now, &StopCause::Shutdown);
                Next::Stop
            }
            // A hold is taken at the next start.
            Asked::Restart | Asked::Hold | Asked::Nothing => Next::Restart { at: now },
        }
    }

    /// A stop asked for outside a run: `… → Stopping → Terminated`.
    fn stop_idle(&self, now: Duration, cause: &StopCause) {
        self.to_stopping(now);
        self.stopped(now, RunEnd::Dropped, cause);
    }

    /// Terminates for `reason`, with the run's failure recorded first.
    fn terminate(&self, now: Duration, reason: TerminationReason, failure: Option<Failure>) {
        let failed = fails_for_good(&reason);
        self.terminate_as(now, reason, failed, failure);
    }

    fn terminate_as(
        &self,
        now: Duration,
        reason: TerminationReason,
        failed: bool,
        failure: Option<Failure>,
    ) {
        if self
            .slot
            .terminate(self.telemetry(), now, reason, failed, failure)
        {
            self.shared.after_termination(&self.slot, now);
        }
    }

    fn flush(&self) {
        self.slot.flush(self.telemetry());
    }
}

/// Polls the dependencies of `slot`: ready once all are ready; a request, or
/// a terminated dependency, ends the wait. Every dependency wakes its
/// dependants when its readiness changes or it terminates.
fn poll_dependencies(slot: &ServiceSlot, cx: &mut Context<'_>) -> Poll<Awaited> {
    slot.register_runner(cx);
    if slot.is_asked() {
        return Poll::Ready(Awaited::Asked);
    }
    let mut ready = true;
    for dependency in slot.dependencies() {
        match dependency.dependency_state() {
            DependencyState::Ready => {}
            DependencyState::NotReady => ready = false,
            DependencyState::Terminated { failed } => {
                return Poll::Ready(Awaited::Gone {
                    name: Arc::clone(&dependency.name),
                    failed,
                });
            }
        }
    }
    if ready {
        Poll::Ready(Awaited::Ready)
    } else {
        Poll::Pending
    }
}

/// Polls the run if it is still there.
fn poll_run<F: Future>(run: Pin<&mut Option<F>>, cx: &mut Context<'_>) -> Poll<F::Output> {
    match run.as_pin_mut() {
        Some(future) => future.poll(cx),
        None => Poll::Pending,
    }
}

impl Stopping {
    /// How a run being stopped for this reason ended, given how it stopped.
    fn end(self, heartbeat: Option<Duration>, how: RunEnd) -> RunEnd {
        match self {
            Stopping::No | Stopping::Asked => how,
            Stopping::Hung => RunEnd::Hung {
                interval: heartbeat.unwrap_or_default(),
                how: Box::new(how),
            },
        }
    }
}

impl Failure {
    /// The failure of a run that missed a heartbeat of `interval`, then
    /// stopped as `how` says.
    fn hung(interval: Duration, how: RunEnd) -> Self {
        let missed = format!("no heartbeat within {interval:?}");
        let message = match how {
            RunEnd::Stopped(Exit::Failed { message, .. }) => {
                format!("{missed}, then failed: {message}")
            }
            RunEnd::Aborted(timeout) => {
                format!("{missed}, and did not stop within {timeout:?}: dropped")
            }
            _ => missed,
        };
        Failure {
            kind: FailureKind::Hung,
            message,
        }
    }
}

impl Exit {
    /// The failure to record for this exit, if it failed.
    fn into_failure(self) -> Option<Failure> {
        match self {
            Exit::Clean => None,
            Exit::Failed { kind, message, .. } => Some(Failure { kind, message }),
        }
    }

    /// What the run's error asked for besides failing.
    fn escalation(&self) -> Escalation {
        match self {
            Exit::Clean => Escalation::None,
            Exit::Failed { escalation, .. } => *escalation,
        }
    }

    /// The exit of a run that missed a heartbeat of `interval`, then stopped
    /// as `how` says: a [`Hung`](FailureKind::Hung) failure, which keeps what
    /// the run's own error asked for, if it returned one.
    fn hung(interval: Duration, how: RunEnd) -> Self {
        let escalation = match &how {
            RunEnd::Stopped(exit) => exit.escalation(),
            _ => Escalation::None,
        };
        let Failure { kind, message } = Failure::hung(interval, how);
        Exit::Failed {
            kind,
            message,
            escalation,
        }
    }

    /// The exit of a run whose future returned (or panicked while polled).
    fn from_outcome<E: Into<BoxError>>(outcome: std::thread::Result<Result<(), E>>) -> Self {
        match outcome {
            Ok(Ok(())) => Exit::Clean,
            Ok(Err(error)) => {
                // Invariant 1: the conversion, `Display`, `source` and drop of
                // the error are user code.
                // So is finding what it asks for (`source`), under the same
                // protection: a panic there is a panic, never an escalation.
                let described = panic::catch_unwind(AssertUnwindSafe(move || {
                    let error: BoxError = error.into();
                    (error_chain(&*error), Escalation::of(&*error))
                }));
                match described {
                    Ok((message, escalation)) => Exit::Failed {
                        kind: FailureKind::Error,
                        message,
                        escalation,
                    },
                    Err(payload) => Exit::panicked(payload),
                }
            }
            Err(payload) => Exit::panicked(payload),
        }
    }

    fn panicked(payload: Box<dyn std::any::Any + Send>) -> Self {
        Exit::Failed {
            kind: FailureKind::Panic,
            message: take_message(payload),
            escalation: Escalation::None,
        }
    }
}
