//! Per-service shared state: the lifecycle, the sinks' outbox and the stop
//! request.
//!
//! # Invariants
//!
//! 1. A service's [`ServiceLifecycle`] lives in its own [`ServiceSlot`],
//!    behind a lock held only for the few instructions of one transition:
//!    never across an `.await`, never while a sink runs. The registry is not
//!    touched by transitions.
//! 2. Every accepted transition feeds the built-in counters and queues its
//!    events for the sinks under the slot's lock, in transition order.
//!    [`ServiceSlot::flush`] delivers the queue outside the lock, by one
//!    deliverer at a time (whoever takes the sinks' handles out of the slot),
//!    so each service's events reach each sink in order, and a sink that calls
//!    back into the supervisor never deadlocks: the events its call causes are
//!    queued and delivered by the running deliverer, after the current one.
//! 3. `service_terminated` is queued by the one transition into `Terminated`
//!    that is accepted; `Terminated` is absorbing, so it happens once per
//!    spawn, whichever of the service's task and the drain gets there first.
//! 4. Nothing in the slot refers to its task once the task is over: the abort
//!    handle is dropped at termination, and the waker the runner registers
//!    for stop requests when the runner returns (a waker holds a reference to
//!    its task), so the finished task's memory is freed. Once its last events
//!    are delivered, the slot drops its event buffer too.
//! 5. A stop request is a flag set once and never cleared; the runner reads it
//!    at every poll of the service and is woken when it is set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Context;
use std::time::Duration;

use futures::task::AtomicWaker;
use lifecycle::{
    FailureKind, InvalidTransition, ServiceLifecycle, ServiceLifecycleSnapshot, ServicePhase,
    TerminationReason,
};
use tokio::task::AbortHandle;

use crate::RestartPolicy;
use crate::telemetry::{SinkEvent, SinkHandle, Telemetry};

/// One supervised service's shared state: written by its own task, read by
/// snapshots and, at shutdown, by the supervisor.
pub(crate) struct ServiceSlot {
    pub(crate) name: Arc<str>,
    pub(crate) policy: RestartPolicy,
    /// How long a run asked to stop may take before it is dropped.
    pub(crate) stop_timeout: Duration,
    state: Mutex<ServiceState>,
    stop_requested: AtomicBool,
    stop_waker: AtomicWaker,
}

/// What the slot's lock protects.
struct ServiceState {
    lifecycle: ServiceLifecycle,
    /// `None` when no sink listens, and once everything was delivered after
    /// the entry's removal.
    outbox: Option<Box<Outbox>>,
    /// The task's abort handle, until the service terminates.
    abort: Option<AbortHandle>,
}

/// Events queued for the sinks, and the sinks' handles for this service.
struct Outbox {
    events: Vec<SinkEvent>,
    /// Out of the slot (`None`) while a deliverer holds them: at most one
    /// deliverer at a time.
    handles: Option<Box<[SinkHandle]>>,
}

impl ServiceState {
    /// Counts `event` and queues it for the sinks.
    fn emit(&mut self, telemetry: &Telemetry, event: SinkEvent) {
        telemetry.count(&event);
        if let Some(outbox) = &mut self.outbox {
            outbox.events.push(event);
        }
    }
}

impl ServiceSlot {
    pub(crate) fn new(
        name: Arc<str>,
        policy: RestartPolicy,
        stop_timeout: Duration,
        now: Duration,
        telemetry: &Telemetry,
    ) -> Self {
        let outbox = telemetry.has_sinks().then(|| {
            Box::new(Outbox {
                events: Vec::new(),
                handles: Some(telemetry.new_handles()),
            })
        });
        Self {
            state: Mutex::new(ServiceState {
                lifecycle: ServiceLifecycle::new(Arc::clone(&name), now),
                outbox,
                abort: None,
            }),
            name,
            policy,
            stop_timeout,
            stop_requested: AtomicBool::new(false),
            stop_waker: AtomicWaker::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ServiceState> {
        // No user code runs under this lock, so nothing panics while it is
        // held; if something ever did, the lifecycle is still consistent (a
        // transition happens whole or not at all), so a poisoned lock is used
        // as is.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `service_spawned` (the registry just accepted the service).
    pub(crate) fn spawned(&self, telemetry: &Telemetry) {
        self.lock().emit(telemetry, SinkEvent::Spawned);
    }

    /// Queues `service_removed` (a new spawn replaced this terminated entry).
    pub(crate) fn removed(&self) {
        let mut state = self.lock();
        if let Some(outbox) = &mut state.outbox {
            outbox.events.push(SinkEvent::Removed);
        }
    }

    /// Keeps the task's abort handle, unless the service already terminated.
    pub(crate) fn set_abort_handle(&self, handle: AbortHandle) {
        let mut state = self.lock();
        if state.lifecycle.phase().is_alive() {
            state.abort = Some(handle);
        }
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.lock().lifecycle.phase().is_alive()
    }

    pub(crate) fn snapshot(&self, now: Duration) -> ServiceLifecycleSnapshot {
        self.lock().lifecycle.snapshot(now)
    }

    /// Whether the service was aborted at the shutdown timeout.
    pub(crate) fn aborted_at_shutdown(&self) -> bool {
        matches!(
            self.lock().lifecycle.termination_reason(),
            Some(TerminationReason::ShutdownTimeout { .. })
        )
    }

    /// Runs one lifecycle transition at `now` and queues its events: the
    /// phase change, then whatever `also` makes of the new state.
    pub(crate) fn transition_at(
        &self,
        telemetry: &Telemetry,
        now: Duration,
        apply: impl FnOnce(&mut ServiceLifecycle, Duration) -> Result<(), InvalidTransition>,
        also: impl FnOnce(&ServiceLifecycle) -> Option<SinkEvent>,
    ) -> Result<(), InvalidTransition> {
        let mut state = self.lock();
        let from = state.lifecycle.phase();
        apply(&mut state.lifecycle, now)?;
        let to = state.lifecycle.phase();
        state.emit(telemetry, SinkEvent::Phase { from, to });
        if let Some(event) = also(&state.lifecycle) {
            state.emit(telemetry, event);
        }
        Ok(())
    }

    /// Records a failed run. Refused (and not reported) when the run is
    /// already over for the lifecycle (the drain terminated the service).
    pub(crate) fn record_failure(&self, telemetry: &Telemetry, kind: FailureKind, message: String) {
        let mut state = self.lock();
        if state.lifecycle.record_failure(kind, message).is_ok() {
            state.emit(telemetry, SinkEvent::Failed { kind });
        }
    }

    /// Moves the service to `Terminated` at `now` and queues the events.
    /// Returns `false`, and changes nothing, if it already was.
    ///
    /// The events that belong to the reason are queued here, under the same
    /// lock, so they are counted only for the termination that happened:
    /// `circuit_opened` for [`TerminationReason::CircuitBreakerOpen`],
    /// `service_failed(Timeout)` for [`TerminationReason::ShutdownTimeout`].
    pub(crate) fn terminate(
        &self,
        telemetry: &Telemetry,
        now: Duration,
        reason: TerminationReason,
    ) -> bool {
        let mut state = self.lock();
        let from = state.lifecycle.phase();
        if state
            .lifecycle
            .transition_to_terminated(now, reason)
            .is_err()
        {
            return false;
        }
        state.abort = None;
        let uptime = state.lifecycle.cumulative_running_time(now);
        let Some(reason) = state.lifecycle.termination_reason().cloned() else {
            return true;
        };
        match reason {
            TerminationReason::CircuitBreakerOpen {
                failures,
                max_retries,
            } => state.emit(
                telemetry,
                SinkEvent::CircuitOpened {
                    failures,
                    max_retries,
                },
            ),
            TerminationReason::ShutdownTimeout { .. } => state.emit(
                telemetry,
                SinkEvent::Failed {
                    kind: FailureKind::Timeout,
                },
            ),
            _ => {}
        }
        state.emit(
            telemetry,
            SinkEvent::Phase {
                from,
                to: ServicePhase::Terminated,
            },
        );
        state.emit(telemetry, SinkEvent::Terminated(Box::new((reason, uptime))));
        true
    }

    /// Aborts the service's task, if it has not terminated (the last resort
    /// of the drain, for a task that blocks its thread).
    pub(crate) fn abort(&self) {
        if let Some(handle) = self.lock().abort.take() {
            handle.abort();
        }
    }

    /// Drops the waker the runner registered (the runner is returning, and
    /// will never be woken again). The abort handle went at termination,
    /// which every runner reaches before it returns.
    pub(crate) fn release_task(&self) {
        drop(self.stop_waker.take());
    }

    /// Asks the service to stop: its current run is cancelled, a pending
    /// restart is not made. Idempotent.
    pub(crate) fn request_stop(&self) {
        self.stop_requested.store(true, Ordering::Release);
        self.stop_waker.wake();
    }

    /// Whether a stop was requested.
    pub(crate) fn stop_requested(&self) -> bool {
        self.stop_requested.load(Ordering::Acquire)
    }

    /// [`stop_requested`](Self::stop_requested), registering the task to be
    /// woken when it becomes true.
    pub(crate) fn poll_stop_requested(&self, cx: &mut Context<'_>) -> bool {
        if self.stop_requested() {
            return true;
        }
        self.stop_waker.register(cx.waker());
        self.stop_requested()
    }

    /// Delivers the queued events to the sinks, outside the lock.
    ///
    /// If another thread is delivering this service's events (or this thread
    /// is, further up the stack: a sink called back into the supervisor), the
    /// events stay queued and that deliverer delivers them after its current
    /// one: this call returns at once.
    pub(crate) fn flush(&self, telemetry: &Telemetry) {
        if !telemetry.has_sinks() {
            return;
        }
        let mut batch = Vec::new();
        let mut handles = {
            let mut state = self.lock();
            let Some(outbox) = &mut state.outbox else {
                return;
            };
            if outbox.events.is_empty() {
                return;
            }
            let Some(handles) = outbox.handles.take() else {
                return;
            };
            std::mem::swap(&mut batch, &mut outbox.events);
            handles
        };
        loop {
            for event in batch.drain(..) {
                telemetry.deliver(&self.name, &mut handles, &event);
            }
            let mut state = self.lock();
            let terminated = !state.lifecycle.phase().is_alive();
            let Some(outbox) = &mut state.outbox else {
                return;
            };
            if !outbox.events.is_empty() {
                std::mem::swap(&mut batch, &mut outbox.events);
                continue;
            }
            if handles
                .iter()
                .all(|handle| matches!(handle, SinkHandle::Released))
            {
                // Nothing more will ever be delivered for this entry.
                state.outbox = None;
                return;
            }
            // Keep the (empty) buffer with its capacity for the next events,
            // unless the service is over: then free it.
            if !terminated {
                outbox.events = batch;
            }
            outbox.handles = Some(handles);
            return;
        }
    }
}
