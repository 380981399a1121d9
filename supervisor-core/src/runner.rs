//! The restart loop of one service: the policy table, in one task per service.
//!
//! The task owns the service and its `BackoffState`; it shares only the
//! lifecycle and the stop request (through its [`ServiceSlot`]) with the rest
//! of the supervisor.
//!
//! # Invariants
//!
//! 1. User code never unwinds out of the runner: `Service::run` is called, its
//!    future polled and dropped, and its error converted and formatted, each
//!    under `catch_unwind`; a panic in any of them is a failed run of kind
//!    [`FailureKind::Panic`].
//! 2. A run is dropped before it returns only when a stop was requested and
//!    its stop timeout passed; the supervisor never races a run against its
//!    own cancellation.
//! 3. Only a stop request of the supervisor makes a run's end a stop; a
//!    service that cancels its own context's token ends its run by policy.
//! 4. Events are delivered to the sinks (`flush`) before every `.await` that
//!    waits (a run, a backoff delay, a stop timeout) and before the task
//!    ends, so a service's events are never held back while it waits; a
//!    zero-delay restart delivers its cycle's events in one batch.

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
use crate::panics::take_message;
use crate::service::{BoxError, error_chain};
use crate::slot::ServiceSlot;
use crate::telemetry::{SinkEvent, Telemetry};
use crate::{RestartPolicy, Service};

/// Everything one service's task owns.
pub(crate) struct Runner<S> {
    pub(crate) service: S,
    pub(crate) slot: Arc<ServiceSlot>,
    pub(crate) backoff: LazyBackoff,
    pub(crate) contexts: RunContexts,
    pub(crate) telemetry: Arc<Telemetry>,
}

/// A service's backoff state, made at its first failure: until then (for
/// most services, for ever) the task carries only the validated config and
/// the seed, not the whole state.
///
/// Equivalent to a state made at spawn: nothing but the start of the current
/// run changes a fresh state before its first failure.
pub(crate) struct LazyBackoff {
    /// Shared: most services use the supervisor's default.
    config: Arc<BackoffConfig>,
    seed: u64,
    run_started: Duration,
    state: Option<Box<BackoffState>>,
}

impl LazyBackoff {
    /// Validates `config` now, so that a spawn with an invalid one fails.
    pub(crate) fn new(config: Arc<BackoffConfig>, seed: u64) -> Result<Self, InvalidBackoff> {
        config.validate()?;
        Ok(Self {
            config,
            seed,
            run_started: Duration::ZERO,
            state: None,
        })
    }

    fn record_start(&mut self, now: Duration) {
        self.run_started = now;
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
            None => {
                let mut state = Box::new(BackoffState::new(*self.config, self.seed)?);
                state.record_start(self.run_started);
                state
            }
        };
        Ok(self.state.insert(state))
    }
}

/// How one run ended, as far as the service is concerned.
enum Exit {
    Clean,
    Failed { kind: FailureKind, message: String },
}

/// How one run ended, as far as the supervisor is concerned.
enum RunEnd {
    /// The run returned (or panicked) on its own.
    Returned(Exit),
    /// A stop was requested, and the run then returned within its timeout.
    Stopped(Exit),
    /// A stop was requested, and the run was dropped at its timeout.
    Aborted,
}

/// What to do after the restart delay is decided.
enum Next {
    /// Start again; the restart happens at this time.
    Restart {
        at: Duration,
    },
    Stop,
}

impl<S: Service> Runner<S> {
    /// Supervises the service until it terminates. A transition refused by
    /// the lifecycle means the supervisor already terminated the service (the
    /// drain's last resort): the task then simply ends.
    ///
    /// The clock is read once per step, and that time is used by every
    /// transition of the step (a zero-delay restart reads it once per cycle).
    pub(crate) async fn run(&mut self) {
        let mut now = self.telemetry.now();
        loop {
            if self.slot.stop_requested() {
                self.stop(now, None);
                break;
            }
            if self.start(now).is_err() {
                break;
            }
            self.flush();

            let end = self.run_once().await;
            now = self.telemetry.now();
            let exit = match end {
                RunEnd::Aborted => {
                    self.terminate(
                        now,
                        TerminationReason::ShutdownTimeout {
                            timeout: self.slot.stop_timeout,
                        },
                    );
                    break;
                }
                RunEnd::Stopped(exit) => {
                    self.terminate_stopped(now, exit);
                    break;
                }
                RunEnd::Returned(exit) => exit,
            };
            if self.slot.stop_requested() {
                // The stop request and the run's end crossed: it was a stop.
                self.stop(now, Some(exit));
                break;
            }

            let next = match exit {
                Exit::Clean => self.after_clean_exit(now).await,
                Exit::Failed { kind, message } => self.after_failure(kind, message, now).await,
            };
            match next {
                Next::Restart { at } => {
                    now = at;
                    let restarting = self.slot.transition_at(
                        &self.telemetry,
                        now,
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

    /// `Starting | Restarting → Running`.
    fn start(&mut self, now: Duration) -> Result<(), lifecycle::InvalidTransition> {
        self.slot.transition_at(
            &self.telemetry,
            now,
            |lc, now| lc.transition_to_running(now),
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
        let ctx = self.contexts.next();
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
        // machine keeps only the run and a pointer to the stop timer. The
        // outcome becomes an `Exit` at once: the service's error type need
        // not be `Send`, so it must not live across an `.await`.
        let mut stopping: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let end = std::future::poll_fn(|cx| {
            if let Poll::Ready(outcome) = poll_run(run.as_mut(), cx) {
                let exit = Exit::from_outcome(outcome);
                return Poll::Ready(match stopping {
                    None => RunEnd::Returned(exit),
                    Some(_) => RunEnd::Stopped(exit),
                });
            }
            let timer = match &mut stopping {
                Some(timer) => timer,
                None if self.slot.poll_stop_requested(cx) => {
                    self.ask_to_stop();
                    // The cancellation may let the run return at once.
                    if let Poll::Ready(outcome) = poll_run(run.as_mut(), cx) {
                        return Poll::Ready(RunEnd::Stopped(Exit::from_outcome(outcome)));
                    }
                    // Boxed: the timer exists only while a run is asked to
                    // stop, and keeping it out of the task's state machine
                    // keeps every service smaller.
                    stopping.insert(Box::pin(tokio::time::sleep(self.slot.stop_timeout)))
                }
                None => return Poll::Pending,
            };
            match timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    tracing::warn!("service did not stop in time: aborted");
                    Poll::Ready(RunEnd::Aborted)
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

    /// Asked to stop while running: `Running → Stopping`, and the run's
    /// context is cancelled (cooperative); the stop timeout starts.
    fn ask_to_stop(&self) {
        let _ = self.slot.transition_at(
            &self.telemetry,
            self.telemetry.now(),
            |lc, now| lc.transition_to_stopping(now),
            |_| None,
        );
        self.flush();
        self.contexts.cancel();
        tracing::info!(
            timeout_ms = self.slot.stop_timeout.as_millis(),
            "service asked to stop"
        );
    }

    async fn after_clean_exit(&mut self, now: Duration) -> Next {
        tracing::info!("service exited cleanly");
        match self.slot.policy {
            RestartPolicy::Always => {
                // A clean exit is not a failure: the next failure backs off
                // from the base again.
                self.backoff.reset();
                self.back_off(self.telemetry.clean_restart_delay, now).await
            }
            RestartPolicy::OnFailure | RestartPolicy::Never => {
                self.terminate(now, TerminationReason::Completed);
                Next::Stop
            }
        }
    }

    async fn after_failure(&mut self, kind: FailureKind, message: String, now: Duration) -> Next {
        tracing::warn!(kind = %kind, error = %message, "service failed");
        self.slot
            .record_failure(&self.telemetry, kind, message.clone());
        let backoff = match self.backoff.state() {
            Ok(backoff) => backoff,
            // Validated at spawn: unreachable, but never a panic.
            Err(invalid) => {
                self.terminate(
                    now,
                    TerminationReason::Unrecoverable(format!("invalid backoff: {invalid}")),
                );
                return Next::Stop;
            }
        };
        backoff.maybe_reset_on_cooldown(now);

        if self.slot.policy == RestartPolicy::Never {
            let reason = match kind {
                FailureKind::Panic => TerminationReason::Panicked(message),
                _ => TerminationReason::Unrecoverable(message),
            };
            self.terminate(now, reason);
            return Next::Stop;
        }

        match backoff.next_backoff(now) {
            BackoffAction::Retry(delay) => self.back_off(delay, now).await,
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
                );
                Next::Stop
            }
        }
    }

    /// `Running → BackingOff` at `now`, then waits `delay` unless a stop is
    /// requested first.
    async fn back_off(&mut self, delay: Duration, now: Duration) -> Next {
        let backing_off = self.slot.transition_at(
            &self.telemetry,
            now,
            |lc, now| lc.transition_to_backing_off(now, delay),
            |_| Some(SinkEvent::Backoff { delay }),
        );
        if backing_off.is_err() {
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
            tokio::task::coop::consume_budget().await;
            if self.slot.stop_requested() {
                self.stop(self.telemetry.now(), None);
                return Next::Stop;
            }
            return Next::Restart { at: now };
        }
        self.flush();
        // Boxed: the timer is only alive while backing off, and keeping it
        // out of the task's state machine keeps every idle service smaller.
        let sleep = Box::pin(tokio::time::sleep(delay));
        let stop = std::future::poll_fn(|cx| {
            if self.slot.poll_stop_requested(cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        tokio::select! {
            biased;
            () = stop => {
                tracing::info!("asked to stop while backing off");
                self.stop(self.telemetry.now(), None);
                Next::Stop
            }
            () = sleep => Next::Restart { at: self.telemetry.now() },
        }
    }

    /// A stop requested outside a run (or crossing the run's end):
    /// `… → Stopping → Terminated(Cancelled)`, recording the run's failure if
    /// it had one.
    fn stop(&self, now: Duration, exit: Option<Exit>) {
        let _ = self.slot.transition_at(
            &self.telemetry,
            now,
            |lc, now| lc.transition_to_stopping(now),
            |_| None,
        );
        self.terminate_stopped(now, exit.unwrap_or(Exit::Clean));
    }

    /// The run ended after a stop request: `Terminated(Cancelled)`, with its
    /// failure recorded if it failed on the way out.
    fn terminate_stopped(&self, now: Duration, exit: Exit) {
        tracing::info!("service stopped");
        if let Exit::Failed { kind, message } = exit {
            self.slot.record_failure(&self.telemetry, kind, message);
        }
        self.terminate(now, TerminationReason::Cancelled);
    }

    fn terminate(&self, now: Duration, reason: TerminationReason) {
        self.slot.terminate(&self.telemetry, now, reason);
    }

    fn flush(&self) {
        self.slot.flush(&self.telemetry);
    }
}

/// Polls the run if it is still there.
fn poll_run<F: Future>(run: Pin<&mut Option<F>>, cx: &mut Context<'_>) -> Poll<F::Output> {
    match run.as_pin_mut() {
        Some(future) => future.poll(cx),
        None => Poll::Pending,
    }
}

impl Exit {
    /// The exit of a run whose future returned (or panicked while polled).
    fn from_outcome<E: Into<BoxError>>(outcome: std::thread::Result<Result<(), E>>) -> Self {
        match outcome {
            Ok(Ok(())) => Exit::Clean,
            Ok(Err(error)) => {
                // Invariant 1: the conversion, `Display`, `source` and drop of
                // the error are user code.
                let described = panic::catch_unwind(AssertUnwindSafe(move || {
                    let error: BoxError = error.into();
                    error_chain(&*error)
                }));
                match described {
                    Ok(message) => Exit::Failed {
                        kind: FailureKind::Error,
                        message,
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
        }
    }
}
