//! The restart loop of one service: the policy table, in one task per service.
//!
//! The task owns the service and its `BackoffState`; it shares only the
//! lifecycle (through its [`ServiceSlot`]) with the rest of the supervisor.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use backoff::{BackoffAction, BackoffConfig, BackoffState, InvalidBackoff};
use futures::FutureExt as _;
use lifecycle::TerminationReason;
use supervisor_metrics::FailureKind;
use tokio_util::sync::CancellationToken;

use crate::service::{BoxError, error_chain};
use crate::slot::{ServiceSlot, Telemetry};
use crate::{RestartPolicy, Service, ServiceContext};

/// Everything one service's task owns.
pub(crate) struct Runner<S> {
    pub(crate) service: S,
    pub(crate) slot: Arc<ServiceSlot>,
    pub(crate) backoff: LazyBackoff,
    pub(crate) token: CancellationToken,
    pub(crate) telemetry: Arc<Telemetry>,
}

/// A service's backoff state, made at its first failure: until then (for
/// most services, for ever) the task carries only the validated config and
/// the seed, not the whole state.
///
/// Equivalent to a state made at spawn: nothing but the start of the current
/// run changes a fresh state before its first failure.
pub(crate) struct LazyBackoff {
    config: BackoffConfig,
    seed: u64,
    run_started: Duration,
    state: Option<Box<BackoffState>>,
}

impl LazyBackoff {
    /// Validates `config` now, so that a spawn with an invalid one fails.
    pub(crate) fn new(config: BackoffConfig, seed: u64) -> Result<Self, InvalidBackoff> {
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
                let mut state = Box::new(BackoffState::new(self.config, self.seed)?);
                state.record_start(self.run_started);
                state
            }
        };
        Ok(self.state.insert(state))
    }
}

/// How one run ended.
enum Exit {
    Clean,
    Failed { kind: FailureKind, message: String },
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
    /// Supervises the service until it terminates. Any transition refused by
    /// the lifecycle means the supervisor already terminated the service (the
    /// drain timeout): the task then simply ends.
    ///
    /// The clock is read once per step, and that time is used by every
    /// transition of the step (a zero-delay restart reads it once per cycle).
    pub(crate) async fn run(&mut self) {
        let mut now = self.telemetry.now();
        loop {
            if self.token.is_cancelled() {
                self.stop();
                return;
            }
            if self.start(now).is_err() {
                return;
            }

            let exit = self.run_once().await;
            now = self.telemetry.now();

            if self.token.is_cancelled() {
                if let Exit::Failed { kind, message } = exit {
                    self.record_failure(kind, message);
                }
                self.stop();
                return;
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
                        |_, _| {},
                    );
                    if restarting.is_err() {
                        return;
                    }
                }
                Next::Stop => return,
            }
        }
    }

    /// `Starting | Restarting → Running`.
    fn start(&mut self, now: Duration) -> Result<(), lifecycle::InvalidTransition> {
        let name = &*self.slot.name;
        self.slot.transition_at(
            &self.telemetry,
            now,
            |lc, now| lc.transition_to_running(now),
            |sink, lc| sink.service_started(name, lc.start_count()),
        )?;
        self.backoff.record_start(now);
        tracing::info!("service running");
        Ok(())
    }

    /// One call of `Service::run`, with panics caught.
    async fn run_once(&self) -> Exit {
        let ctx = ServiceContext::new(Arc::clone(&self.slot.name), self.token.clone());
        match AssertUnwindSafe(self.service.run(ctx)).catch_unwind().await {
            Ok(Ok(())) => Exit::Clean,
            Ok(Err(error)) => {
                let error: BoxError = error.into();
                Exit::Failed {
                    kind: FailureKind::Error,
                    message: error_chain(&*error),
                }
            }
            Err(payload) => Exit::Failed {
                kind: FailureKind::Panic,
                message: panic_message(&*payload),
            },
        }
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
                self.slot
                    .terminate(&self.telemetry, TerminationReason::Completed);
                Next::Stop
            }
        }
    }

    async fn after_failure(&mut self, kind: FailureKind, message: String, now: Duration) -> Next {
        tracing::warn!(kind = %kind, error = %message, "service failed");
        self.record_failure(kind, message.clone());
        let backoff = match self.backoff.state() {
            Ok(backoff) => backoff,
            // Validated at spawn: unreachable, but never a panic.
            Err(invalid) => {
                self.slot.terminate(
                    &self.telemetry,
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
            self.slot.terminate(&self.telemetry, reason);
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
                self.slot.terminate(
                    &self.telemetry,
                    TerminationReason::CircuitBreakerOpen {
                        failures,
                        max_retries,
                    },
                );
                Next::Stop
            }
        }
    }

    /// `Running → BackingOff` at `now`, then waits `delay` unless cancelled
    /// first.
    async fn back_off(&mut self, delay: Duration, now: Duration) -> Next {
        let name = &*self.slot.name;
        let backing_off = self.slot.transition_at(
            &self.telemetry,
            now,
            |lc, now| lc.transition_to_backing_off(now, delay),
            |sink, _| sink.backoff_scheduled(name, delay),
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
            // each restart.
            tokio::task::coop::consume_budget().await;
            if self.token.is_cancelled() {
                self.stop();
                return Next::Stop;
            }
            return Next::Restart { at: now };
        }
        // Boxed: the timer is only alive while backing off, and keeping it
        // out of the task's state machine keeps every idle service smaller.
        let sleep = Box::pin(tokio::time::sleep(delay));
        tokio::select! {
            biased;
            () = self.token.cancelled() => {
                tracing::info!("cancelled while backing off");
                self.stop();
                Next::Stop
            }
            () = sleep => Next::Restart { at: self.telemetry.now() },
        }
    }

    fn record_failure(&self, kind: FailureKind, message: String) {
        self.slot.record_failure(&self.telemetry, kind, message);
    }

    /// `… → Stopping → Terminated(Cancelled)`.
    fn stop(&self) {
        tracing::info!("service stopped by cancellation");
        let _ = self.slot.transition(
            &self.telemetry,
            |lc, now| lc.transition_to_stopping(now),
            |_, _| {},
        );
        self.slot
            .terminate(&self.telemetry, TerminationReason::Cancelled);
    }
}

/// The message of a panic payload (`&str` or `String`, as `panic!` makes).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        return (*message).to_owned();
    }
    if let Some(message) = payload.downcast_ref::<String>() {
        return message.clone();
    }
    "panic with a non-string payload".to_owned()
}
