//! Per-service shared state: the lifecycle, the sinks' outbox, the host's
//! requests, readiness and the links to dependencies.
//!
//! # Invariants
//!
//! 1. A service's [`ServiceLifecycle`] lives in its own [`ServiceSlot`],
//!    behind a lock held only for the few instructions of one change: never
//!    across an `.await`, never while user code or a sink runs. The registry
//!    is not touched by changes.
//! 2. Every accepted change, under the slot's lock: feeds the built-in
//!    counters, queues its events for the sinks (in change order), numbers
//!    the change and sends its [`LifecycleEvent`] if anyone subscribes,
//!    updates the supervisor's readiness count, and wakes whoever waits on
//!    this service (control calls, dependants). [`ServiceSlot::flush`]
//!    delivers the sinks' queue outside the lock, by one deliverer at a time,
//!    so each service's events reach each sink in order, and a sink that
//!    calls back into the supervisor never deadlocks.
//! 3. `service_terminated` is queued by the one transition into `Terminated`
//!    that is accepted; `Terminated` is absorbing, so it happens once per
//!    spawn, whichever of the service's task and the drain gets there first.
//! 4. The host's requests live under the lock too, with a one-byte copy the
//!    runner reads without it: a stop is never withdrawn and keeps its first
//!    cause; a restart is consumed by the runner, under the lock, when it
//!    acts on it; a stop overrides a restart. Every decision of the runner
//!    (start, end of a run, end of a backoff) reads the request under the
//!    lock, so a request is never lost and a stopped service never starts
//!    again. A group restart's hold (`OneForAll`, `RestForOne`) is a request
//!    too: below a stop, above a restart; a held service starts only when
//!    the group's coordinator releases it, and a host restart of a held
//!    service is the release itself.
//! 5. Nothing in the slot refers to its task once the task is over: the
//!    abort handle is dropped at termination, and the runner's waker when the
//!    runner returns, so the finished task's memory is freed.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::Context;
use std::time::Duration;

use futures::task::AtomicWaker;
use lifecycle::{
    FailureKind, InvalidTransition, ServiceLifecycle, ServiceLifecycleSnapshot, ServicePhase,
    TerminationReason,
};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::events::{Change as EventChange, EventKind};
use crate::telemetry::{SinkEvent, SinkHandle, Standing, Telemetry};
use crate::{RestartPolicy, StopTimeout};

/// No request.
const NONE: u8 = 0;
/// A restart is requested.
const RESTART: u8 = 1;
/// A stop is requested.
const STOP: u8 = 2;
/// A group restart asks the service to stop its run and wait (see [`Hold`]).
const HOLD: u8 = 3;
/// A group restart lets the held service start again.
const RELEASE: u8 = 4;

/// The capacity the event buffers keep between deliveries: a few cycles'
/// worth (a crash loop between two yields grows them for a moment).
const KEPT_CAPACITY: usize = 16;

/// A service's settings, fixed at spawn.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    pub(crate) policy: RestartPolicy,
    pub(crate) stop_timeout: StopTimeout,
    pub(crate) signals_readiness: bool,
    pub(crate) temporary: bool,
    pub(crate) critical: bool,
    /// The heartbeat interval each run must meet, if any.
    pub(crate) heartbeat: Option<Duration>,
    /// The spawn's place in the supervisor's start order (spawn order).
    pub(crate) order: u64,
}

/// Where a service stands in a group restart (`OneForAll`, `RestForOne`).
/// Always [`Hold::None`] under `OneForOne`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    None,
    /// The group's coordinator asked the service to stop its run and wait.
    Asked,
    /// The runner waits, not running, until it is released (or stopped).
    Held,
    /// Released: the runner starts again at its next decision point.
    Released,
}

/// One supervised service's shared state: written by its own task, read by
/// snapshots, and written by the host's requests and the drain.
pub(crate) struct ServiceSlot {
    pub(crate) name: Arc<str>,
    pub(crate) spec: Spec,
    /// What this service depends on, resolved at spawn. Boxed twice (a thin
    /// pointer): most services have none.
    dependencies: Option<Box<Box<[Arc<ServiceSlot>]>>>,
    state: Mutex<ServiceState>,
    /// A copy of the request's kind ([`NONE`], [`RESTART`], [`STOP`]),
    /// written under the lock and read without it.
    pending: AtomicU8,
    /// The runner's task, woken by requests, by `ServiceContext::ready` and
    /// by the dependencies' changes.
    waker: AtomicWaker,
}

/// What the slot's lock protects.
struct ServiceState {
    lifecycle: ServiceLifecycle,
    /// What is queued for the sinks and the subscribers. `None` while
    /// nobody listens (made at spawn if a sink listens, at the first event
    /// heard otherwise), and once everything was delivered after the entry's
    /// removal.
    outbox: Option<Box<Outbox>>,
    /// The task's abort handle, until the service terminates.
    abort: Option<AbortHandle>,
    /// A stop asked for: never withdrawn, the first cause kept.
    stop: Option<Box<StopRequest>>,
    /// A restart asked for, until the runner acts on it (a stop wins).
    restart: bool,
    /// Where the service stands in a group restart.
    hold: Hold,
    /// The failure recorded since the last transition, reported with the
    /// next one.
    failure: Option<FailureKind>,
    /// How this service counts toward the supervisor's readiness.
    standing: Standing,
    /// Forget the service when it terminates.
    forget: bool,
    /// Forgotten: out of the registry, its sinks' series removed.
    removed: bool,
    /// Terminated by a failure for good (see [`fails_for_good`]).
    failed: bool,
    /// Made by the first waiter.
    watch: Option<Box<Watch>>,
    /// Made by the first dependant.
    dependants: Option<Box<Dependants>>,
}

/// What waiters on one service share; it exists only while someone waits.
struct Watch {
    notify: Arc<Notify>,
    /// Entries into each phase since the watch was made.
    entered: [u64; 6],
    waiters: usize,
}

/// The services that depend on this one.
#[derive(Default)]
struct Dependants {
    list: Vec<Weak<ServiceSlot>>,
}

/// Events queued for the sinks and for the subscribers, and the sinks'
/// handles for this service.
struct Outbox {
    events: Vec<SinkEvent>,
    lifecycle: Vec<EventChange>,
    /// Out of the slot (`None`) while a deliverer holds them: at most one
    /// deliverer at a time. Empty when no sink listens.
    handles: Option<Box<[SinkHandle]>>,
}

impl Outbox {
    fn new(handles: Box<[SinkHandle]>) -> Box<Self> {
        Box::new(Self {
            events: Vec::new(),
            lifecycle: Vec::new(),
            handles: Some(handles),
        })
    }

    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.lifecycle.is_empty()
    }
}

/// A stop, why, and since when.
struct StopRequest {
    cause: StopCause,
    at: Duration,
}

/// Who asked a service to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StopCause {
    /// The supervisor's shutdown.
    Shutdown,
    /// The host: a stop or a removal.
    Host,
    /// A dependency terminated; `failed` if it failed for good.
    Dependency { name: Arc<str>, failed: bool },
    /// A group restart set off by `name` stops this service for good (a
    /// `Never` child is not started again).
    Group { name: Arc<str> },
}

impl StopCause {
    /// The reason a service stopped for this cause terminates with: `aborted`
    /// holds the stop timeout if the run was dropped at it.
    pub(crate) fn reason(&self, aborted: Option<Duration>) -> TerminationReason {
        match (self, aborted) {
            (StopCause::Shutdown | StopCause::Group { .. }, None) => TerminationReason::Cancelled,
            (StopCause::Shutdown, Some(timeout)) => TerminationReason::ShutdownTimeout { timeout },
            (StopCause::Host, None) => TerminationReason::Stopped,
            (StopCause::Dependency { name, .. }, None) => TerminationReason::DependencyStopped {
                dependency: name.to_string(),
            },
            (
                StopCause::Host | StopCause::Dependency { .. } | StopCause::Group { .. },
                Some(timeout),
            ) => TerminationReason::StopTimeout { timeout },
        }
    }
}

/// What the runner is asked to do, as it reads it at a decision point.
pub(crate) enum Asked {
    Nothing,
    Restart,
    /// A group restart: stop the run (if any) and wait to be released.
    Hold,
    Stop(StopCause),
}

/// What a held runner is asked to do.
pub(crate) enum HeldAsked {
    /// Keep waiting.
    Wait,
    /// Start again.
    Released,
    Stop(StopCause),
}

/// Why a request was refused.
#[derive(Debug)]
pub(crate) enum Refusal {
    Terminated(TerminationReason),
    Stopping,
    Removed,
}

/// Where a removal stands.
pub(crate) enum Removal {
    /// The service is being stopped, and will be forgotten when it terminates.
    Stopping,
    /// The service had terminated: forget it now.
    Terminated,
}

/// A dependency as its dependants see it.
pub(crate) enum DependencyState {
    Ready,
    NotReady,
    Terminated { failed: bool },
}

/// A terminated service, as what follows its termination sees it.
pub(crate) struct Ended {
    /// It failed for good.
    pub(crate) failed: bool,
    /// It was dropped at a stop or shutdown timeout.
    pub(crate) aborted: bool,
    /// It is to be forgotten (removed, or temporary), and was not yet.
    pub(crate) forget: bool,
    /// When it was asked to stop, if it was.
    pub(crate) stop_asked_at: Option<Duration>,
    /// Some service depends on it.
    pub(crate) has_dependants: bool,
}

/// How a run failed, recorded with the transition that follows it.
pub(crate) struct Failure {
    pub(crate) kind: FailureKind,
    pub(crate) message: String,
}

/// Whether a service that terminated for `reason` failed for good (the
/// failures that count against readiness and trip a critical service).
pub(crate) fn fails_for_good(reason: &TerminationReason) -> bool {
    matches!(
        reason,
        TerminationReason::Unrecoverable(_)
            | TerminationReason::CircuitBreakerOpen { .. }
            | TerminationReason::Panicked(_)
            | TerminationReason::DoNotRestart(_)
            | TerminationReason::TerminateTree(_)
    )
}

impl ServiceState {
    /// Counts `event` and queues it for the sinks.
    fn emit(&mut self, telemetry: &Telemetry, event: SinkEvent) {
        telemetry.count(&event);
        if let Some(outbox) = &mut self.outbox {
            outbox.events.push(event);
        }
    }

    /// Everything an accepted change entails besides the sinks (invariant
    /// 2): its number, its event, readiness, waiters and dependants.
    fn changed(&mut self, telemetry: &Telemetry, change: Change, now: Duration) {
        let lifecycle = &mut self.lifecycle;
        let to = lifecycle.phase();
        let heard = telemetry.events.is_heard();
        let seq = telemetry.events.number(heard);
        lifecycle.renumber(seq);
        let failure = match change.kind {
            EventKind::Transition => self.failure.take(),
            _ => None,
        };
        if heard {
            let reason = match (change.kind, to) {
                (EventKind::Transition, ServicePhase::Terminated) => {
                    lifecycle.termination_reason().cloned().map(Box::new)
                }
                _ => None,
            };
            let event = EventChange {
                seq,
                generation: lifecycle.start_count(),
                kind: change.kind,
                from: change.from,
                to,
                ready: lifecycle.is_ready(),
                reason,
                failure,
                error: failure.and(lifecycle.last_error_shared().cloned()),
                at: now,
            };
            self.outbox
                .get_or_insert_with(|| Outbox::new(Box::default()))
                .lifecycle
                .push(event);
        }
        let standing = if self.removed {
            Standing::Clear
        } else {
            match to {
                ServicePhase::Terminated if self.failed => Standing::Failed,
                ServicePhase::Terminated => Standing::Clear,
                ServicePhase::Running if lifecycle.is_ready() => Standing::Clear,
                _ => Standing::Waiting,
            }
        };
        telemetry.restand(self.standing, standing);
        self.standing = standing;
        if let Some(watch) = &mut self.watch {
            if change.kind == EventKind::Transition {
                watch.entered[to.index()] += 1;
            }
            watch.notify.notify_waiters();
        }
        let readiness_moved =
            change.was_ready != lifecycle.is_ready() || to == ServicePhase::Terminated;
        if readiness_moved {
            if let Some(dependants) = &self.dependants {
                for dependant in dependants.list.iter().filter_map(Weak::upgrade) {
                    dependant.waker.wake();
                }
            }
        }
    }

    /// Records the run's failure, just before the transition that reports
    /// it (under the same lock): refused, and not reported, when the run is
    /// already over for the lifecycle.
    fn record(&mut self, telemetry: &Telemetry, failure: Option<Failure>) {
        let Some(Failure { kind, message }) = failure else {
            return;
        };
        if self.lifecycle.record_failure(kind, message).is_ok() {
            self.failure = Some(kind);
            self.emit(telemetry, SinkEvent::Failed { kind });
        }
    }

    /// What is about to change, taken before the change.
    fn before(&self, kind: EventKind) -> Change {
        Change {
            kind,
            from: self.lifecycle.phase(),
            was_ready: self.lifecycle.is_ready(),
        }
    }
}

/// A change as [`ServiceState::changed`] reports it.
#[derive(Clone, Copy)]
struct Change {
    kind: EventKind,
    from: ServicePhase,
    was_ready: bool,
}

impl ServiceSlot {
    pub(crate) fn new(
        name: Arc<str>,
        spec: Spec,
        dependencies: Box<[Arc<ServiceSlot>]>,
        now: Duration,
        telemetry: &Telemetry,
    ) -> Self {
        let outbox = telemetry
            .has_sinks()
            .then(|| Outbox::new(telemetry.new_handles()));
        let dependencies = (!dependencies.is_empty()).then(|| Box::new(dependencies));
        Self {
            state: Mutex::new(ServiceState {
                lifecycle: ServiceLifecycle::new(Arc::clone(&name), now),
                outbox,
                abort: None,
                stop: None,
                restart: false,
                hold: Hold::None,
                failure: None,
                standing: Standing::Clear,
                forget: spec.temporary,
                removed: false,
                failed: false,
                watch: None,
                dependants: None,
            }),
            name,
            spec,
            dependencies,
            pending: AtomicU8::new(NONE),
            waker: AtomicWaker::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ServiceState> {
        // No user code runs under this lock, so nothing panics while it is
        // held; if something ever did, the lifecycle is still consistent (a
        // change happens whole or not at all), so a poisoned lock is used as
        // is.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The registry just accepted the service: queues `service_spawned`,
    /// sends the `Spawned` event, and counts it as not ready yet.
    pub(crate) fn spawned(&self, telemetry: &Telemetry, now: Duration) {
        let mut state = self.lock();
        state.emit(telemetry, SinkEvent::Spawned);
        let change = state.before(EventKind::Spawned);
        state.changed(telemetry, change, now);
    }

    /// Forgets the service (it is out of the registry): queues
    /// `service_removed`, sends the `Removed` event, and takes it out of the
    /// readiness count. Returns `false`, and does nothing, if it already was.
    pub(crate) fn removed(&self, telemetry: &Telemetry, now: Duration) -> bool {
        let mut state = self.lock();
        if state.removed {
            return false;
        }
        state.removed = true;
        if let Some(outbox) = &mut state.outbox {
            outbox.events.push(SinkEvent::Removed);
        }
        let change = state.before(EventKind::Removed);
        state.changed(telemetry, change, now);
        true
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

    pub(crate) fn is_removed(&self) -> bool {
        self.lock().removed
    }

    pub(crate) fn snapshot(&self, now: Duration) -> ServiceLifecycleSnapshot {
        self.lock().lifecycle.snapshot(now)
    }

    /// Whether the service terminated by a failure for good, and why.
    pub(crate) fn failure_for_good(&self) -> Option<TerminationReason> {
        let state = self.lock();
        if !state.failed || state.removed {
            return None;
        }
        state.lifecycle.termination_reason().cloned()
    }

    /// Whether the service holds the supervisor's readiness back (alive and
    /// not ready), and whether it failed for good.
    pub(crate) fn standing(&self) -> Standing {
        self.lock().standing
    }

    /// Runs one lifecycle transition at `now` and queues its events: the
    /// run's failure if it had one, the phase change, then whatever `also`
    /// makes of the new state.
    pub(crate) fn transition_at(
        &self,
        telemetry: &Telemetry,
        now: Duration,
        failure: Option<Failure>,
        apply: impl FnOnce(&mut ServiceLifecycle, Duration) -> Result<(), InvalidTransition>,
        also: impl FnOnce(&ServiceLifecycle) -> Option<SinkEvent>,
    ) -> Result<(), InvalidTransition> {
        let mut state = self.lock();
        let change = state.before(EventKind::Transition);
        state.record(telemetry, failure);
        apply(&mut state.lifecycle, now)?;
        let to = state.lifecycle.phase();
        state.emit(
            telemetry,
            SinkEvent::Phase {
                from: change.from,
                to,
            },
        );
        if let Some(event) = also(&state.lifecycle) {
            state.emit(telemetry, event);
        }
        state.changed(telemetry, change, now);
        Ok(())
    }

    /// Marks the current run ready, if it is running and was not.
    pub(crate) fn mark_ready(&self, telemetry: &Telemetry, now: Duration) {
        let mut state = self.lock();
        let change = state.before(EventKind::Ready);
        if let Ok(true) = state.lifecycle.mark_ready() {
            state.changed(telemetry, change, now);
        }
    }

    /// Moves the service to `Terminated` at `now` and queues the events;
    /// `failed` says whether it failed for good. Returns `false`, and changes
    /// nothing, if it already was.
    ///
    /// The events that belong to the reason are queued here, under the same
    /// lock, so they are counted only for the termination that happened:
    /// `circuit_opened` for [`TerminationReason::CircuitBreakerOpen`],
    /// `service_failed(Timeout)` for the aborts.
    pub(crate) fn terminate(
        &self,
        telemetry: &Telemetry,
        now: Duration,
        reason: TerminationReason,
        failed: bool,
        failure: Option<Failure>,
    ) -> bool {
        self.terminate_inner(telemetry, now, reason, failed, failure)
            .is_some()
    }

    /// [`terminate`](Self::terminate) from outside the task, and abort the
    /// task (the drain's last resort).
    pub(crate) fn terminate_and_abort(
        &self,
        telemetry: &Telemetry,
        now: Duration,
        reason: TerminationReason,
    ) -> bool {
        match self.terminate_inner(telemetry, now, reason, false, None) {
            Some(handle) => {
                if let Some(handle) = handle {
                    handle.abort();
                }
                true
            }
            None => false,
        }
    }

    /// Terminates; on success, returns the task's abort handle, if it was
    /// still kept.
    fn terminate_inner(
        &self,
        telemetry: &Telemetry,
        now: Duration,
        reason: TerminationReason,
        failed: bool,
        failure: Option<Failure>,
    ) -> Option<Option<AbortHandle>> {
        let mut state = self.lock();
        let change = state.before(EventKind::Transition);
        if !change.from.is_alive() {
            return None;
        }
        state.record(telemetry, failure);
        let aborted = reason.is_abort();
        if state
            .lifecycle
            .transition_to_terminated(now, reason)
            .is_err()
        {
            return None;
        }
        if aborted {
            // The lifecycle counted the abort as a `Timeout` failure, with
            // the reason as its message: the event reports it.
            state.failure = Some(FailureKind::Timeout);
        }
        let handle = state.abort.take();
        state.failed = failed;
        let uptime = state.lifecycle.cumulative_running_time(now);
        if let Some(reason) = state.lifecycle.termination_reason().cloned() {
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
                ref aborted if aborted.is_abort() => state.emit(
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
                    from: change.from,
                    to: ServicePhase::Terminated,
                },
            );
            state.emit(telemetry, SinkEvent::Terminated(Box::new((reason, uptime))));
        }
        state.changed(telemetry, change, now);
        Some(handle)
    }

    /// The termination reason, once terminated.
    pub(crate) fn termination_reason(&self) -> Option<TerminationReason> {
        self.lock().lifecycle.termination_reason().cloned()
    }

    /// Drops the waker the runner registered (the runner is returning, and
    /// will never be woken again). The abort handle went at termination,
    /// which every runner reaches before it returns.
    pub(crate) fn release_task(&self) {
        drop(self.waker.take());
    }

    /// Wakes the runner (a request, readiness, or a dependency's change).
    pub(crate) fn wake_runner(&self) {
        self.waker.wake();
    }

    /// Asks the service to stop for `cause`: its current run is asked to
    /// stop, a pending start or restart is not made. A stop already asked
    /// for keeps its first cause.
    ///
    /// # Errors
    ///
    /// [`Refusal::Terminated`] if the service has terminated.
    pub(crate) fn request_stop(&self, cause: StopCause, now: Duration) -> Result<(), Refusal> {
        let mut state = self.lock();
        if let Some(reason) = state.lifecycle.termination_reason() {
            return Err(Refusal::Terminated(reason.clone()));
        }
        if state.stop.is_none() {
            state.stop = Some(Box::new(StopRequest { cause, at: now }));
            self.pending.store(STOP, Ordering::Release);
        }
        drop(state);
        self.waker.wake();
        Ok(())
    }

    /// Asks the service to be forgotten: stopped (by the host) if it is
    /// alive, then removed when it terminates.
    ///
    /// # Errors
    ///
    /// [`Refusal::Removed`] if it was removed already.
    pub(crate) fn request_removal(&self, now: Duration) -> Result<Removal, Refusal> {
        let mut state = self.lock();
        if state.removed {
            return Err(Refusal::Removed);
        }
        state.forget = true;
        if !state.lifecycle.phase().is_alive() {
            return Ok(Removal::Terminated);
        }
        if state.stop.is_none() {
            state.stop = Some(Box::new(StopRequest {
                cause: StopCause::Host,
                at: now,
            }));
            self.pending.store(STOP, Ordering::Release);
        }
        drop(state);
        self.waker.wake();
        Ok(Removal::Stopping)
    }

    /// Asks for a restart: the current run is asked to stop and a new one
    /// starts at once; a backoff delay is cut short. Returns the start count
    /// the restart will move past (a start already on its way counts).
    ///
    /// # Errors
    ///
    /// [`Refusal::Terminated`] once terminated, [`Refusal::Stopping`] if a stop
    /// was asked for.
    pub(crate) fn request_restart(&self) -> Result<u64, Refusal> {
        let mut state = self.lock();
        if let Some(reason) = state.lifecycle.termination_reason() {
            return Err(Refusal::Terminated(reason.clone()));
        }
        if state.stop.is_some() {
            return Err(Refusal::Stopping);
        }
        let start_count = state.lifecycle.start_count();
        if state.hold != Hold::None {
            // A group restart holds the service: its release is the restart.
            return Ok(start_count);
        }
        match state.lifecycle.phase() {
            ServicePhase::Running | ServicePhase::BackingOff => {
                state.restart = true;
                self.pending.store(RESTART, Ordering::Release);
                drop(state);
                self.waker.wake();
            }
            // About to start, or already stopping for a restart.
            _ => {}
        }
        Ok(start_count)
    }

    /// Whether anything is requested (read without the lock).
    pub(crate) fn is_asked(&self) -> bool {
        self.pending.load(Ordering::Acquire) != NONE
    }

    /// [`is_asked`](Self::is_asked), registering the task to be woken when
    /// it becomes true.
    pub(crate) fn poll_asked(&self, cx: &mut Context<'_>) -> bool {
        if self.is_asked() {
            return true;
        }
        self.waker.register(cx.waker());
        self.is_asked()
    }

    /// Registers the task to be woken by the next request or dependency
    /// change.
    pub(crate) fn register_runner(&self, cx: &mut Context<'_>) {
        self.waker.register(cx.waker());
    }

    /// The request, at a decision point of the runner: a restart is consumed
    /// (the runner acts on it now), a stop stays.
    pub(crate) fn take_request(&self) -> Asked {
        if !self.is_asked() {
            return Asked::Nothing;
        }
        let mut state = self.lock();
        match (&state.stop, state.hold) {
            (Some(stop), _) => Asked::Stop(stop.cause.clone()),
            (None, Hold::Asked | Hold::Held) => Asked::Hold,
            (None, _) if !state.restart => Asked::Nothing,
            (None, _) => {
                state.restart = false;
                self.repend(&state);
                Asked::Restart
            }
        }
    }

    /// Stores the kind of the most pressing request (a stop, a hold, a
    /// release, a restart) in the one-byte copy. Under the lock.
    fn repend(&self, state: &ServiceState) {
        let kind = match (&state.stop, state.hold) {
            (Some(_), _) => STOP,
            (None, Hold::Asked) => HOLD,
            (None, Hold::Released) => RELEASE,
            (None, _) if state.restart => RESTART,
            (None, _) => NONE,
        };
        self.pending.store(kind, Ordering::Release);
    }

    /// The group's coordinator asks the service to stop its run and wait to
    /// be released. Returns `false` if it terminated or is being stopped
    /// (nothing to hold: it will not start again).
    pub(crate) fn request_hold(&self) -> bool {
        let mut state = self.lock();
        if !state.lifecycle.phase().is_alive() || state.stop.is_some() {
            return false;
        }
        if state.hold != Hold::Held {
            state.hold = Hold::Asked;
            self.repend(&state);
        }
        drop(state);
        self.waker.wake();
        true
    }

    /// The runner waits, not running: it is held (it stopped for a group
    /// restart, or waits for the one its own exit set off). Returns the start
    /// count of its last run.
    pub(crate) fn mark_held(&self) -> u64 {
        let mut state = self.lock();
        state.hold = Hold::Held;
        self.repend(&state);
        if let Some(watch) = &state.watch {
            watch.notify.notify_waiters();
        }
        state.lifecycle.start_count()
    }

    /// What a held runner reads at its decision point: a stop ends it, a
    /// release starts it; a restart asked by the host meanwhile is dropped
    /// (the release is the restart).
    pub(crate) fn take_held_request(&self) -> HeldAsked {
        let mut state = self.lock();
        if let Some(stop) = &state.stop {
            return HeldAsked::Stop(stop.cause.clone());
        }
        state.restart = false;
        let asked = match state.hold {
            Hold::Released | Hold::None => {
                state.hold = Hold::None;
                HeldAsked::Released
            }
            Hold::Held => HeldAsked::Wait,
            // Released, then asked again before it read the release.
            Hold::Asked => {
                state.hold = Hold::Held;
                if let Some(watch) = &state.watch {
                    watch.notify.notify_waiters();
                }
                HeldAsked::Wait
            }
        };
        self.repend(&state);
        asked
    }

    /// The group's coordinator lets a held service start again. Returns its
    /// start count before the release, or `None` if it is not held (it
    /// terminated, or is being stopped).
    pub(crate) fn release(&self) -> Option<u64> {
        let mut state = self.lock();
        if state.hold != Hold::Held || state.stop.is_some() {
            return None;
        }
        state.hold = Hold::Released;
        self.repend(&state);
        let start_count = state.lifecycle.start_count();
        drop(state);
        self.waker.wake();
        Some(start_count)
    }

    /// Whether the service is held since its run number `start_count` ended
    /// (its request for a group restart is still current).
    pub(crate) fn is_held_after(&self, start_count: u64) -> bool {
        let state = self.lock();
        state.hold == Hold::Held
            && state.stop.is_none()
            && state.lifecycle.start_count() == start_count
    }

    /// Waits until `check` holds of the lifecycle and the hold (for the
    /// group's coordinator).
    pub(crate) async fn wait_until(&self, mut check: impl FnMut(&ServiceLifecycle, Hold) -> bool) {
        /// Counts the waiter out however the wait ends.
        struct Out<'a>(&'a ServiceSlot);
        impl Drop for Out<'_> {
            fn drop(&mut self) {
                self.0.watch_out();
            }
        }
        let notify = self.watch_in();
        let _out = Out(self);
        loop {
            let changed = notify.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            {
                let state = self.lock();
                if check(&state.lifecycle, state.hold) {
                    return;
                }
            }
            changed.await;
        }
    }

    /// When a stop was asked for, if one was and the service is alive (for
    /// the drain's last resort).
    pub(crate) fn stop_asked_at(&self) -> Option<(Duration, StopCause)> {
        let state = self.lock();
        match &state.stop {
            Some(stop) if state.lifecycle.phase().is_alive() => Some((stop.at, stop.cause.clone())),
            _ => None,
        }
    }

    /// What follows a termination needs to know, in one read; `None` if the
    /// service has not terminated.
    pub(crate) fn ended(&self) -> Option<Ended> {
        let state = self.lock();
        let reason = state.lifecycle.termination_reason()?;
        Some(Ended {
            failed: state.failed,
            aborted: reason.is_abort(),
            forget: state.forget && !state.removed,
            stop_asked_at: state.stop.as_ref().map(|stop| stop.at),
            has_dependants: state
                .dependants
                .as_ref()
                .is_some_and(|dependants| !dependants.list.is_empty()),
        })
    }

    /// What this service depends on.
    pub(crate) fn dependencies(&self) -> &[Arc<ServiceSlot>] {
        self.dependencies
            .as_deref()
            .map_or(&[], |dependencies| dependencies)
    }

    /// A new dependant of this service.
    pub(crate) fn add_dependant(&self, dependant: Weak<ServiceSlot>) {
        self.lock()
            .dependants
            .get_or_insert_with(Box::default)
            .list
            .push(dependant);
    }

    /// A dependant terminated: it is dropped from the list. Returns whether
    /// no live dependant is left.
    pub(crate) fn dependant_terminated(&self, dependant: &ServiceSlot) -> bool {
        let mut state = self.lock();
        let Some(dependants) = &mut state.dependants else {
            return true;
        };
        dependants
            .list
            .retain(|weak| !std::ptr::eq(weak.as_ptr(), dependant));
        !dependants.has_live()
    }

    /// Whether a live service depends on this one.
    pub(crate) fn has_live_dependants(&self) -> bool {
        self.lock()
            .dependants
            .as_ref()
            .is_some_and(|dependants| dependants.has_live())
    }

    /// The live services that depend on this one.
    pub(crate) fn live_dependants(&self) -> Vec<Arc<ServiceSlot>> {
        let state = self.lock();
        let Some(dependants) = &state.dependants else {
            return Vec::new();
        };
        dependants
            .list
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|dependant| dependant.is_alive())
            .collect()
    }

    /// This service as a dependency of another.
    pub(crate) fn dependency_state(&self) -> DependencyState {
        let state = self.lock();
        match state.lifecycle.phase() {
            ServicePhase::Terminated => DependencyState::Terminated {
                failed: state.failed,
            },
            _ if state.lifecycle.is_ready() => DependencyState::Ready,
            _ => DependencyState::NotReady,
        }
    }

    /// Counts a waiter in, making the watch if it is the first, and returns
    /// the notifier of this service's changes.
    pub(crate) fn watch_in(&self) -> Arc<Notify> {
        let mut state = self.lock();
        let watch = state.watch.get_or_insert_with(|| {
            Box::new(Watch {
                notify: Arc::new(Notify::new()),
                entered: [0; 6],
                waiters: 0,
            })
        });
        watch.waiters += 1;
        Arc::clone(&watch.notify)
    }

    /// Counts a waiter out; the last one drops the watch.
    pub(crate) fn watch_out(&self) {
        let mut state = self.lock();
        if let Some(watch) = &mut state.watch {
            watch.waiters = watch.waiters.saturating_sub(1);
            if watch.waiters == 0 {
                state.watch = None;
            }
        }
    }

    /// What `check` reads of the state now (the lifecycle, the phase entries
    /// since the watch was made, whether the service was removed). Call it
    /// with a waiter counted in, after enabling a `notified()` future of the
    /// watch's notifier, so that no change is missed.
    pub(crate) fn observe<R>(
        &self,
        check: impl FnOnce(&ServiceLifecycle, &[u64; 6], bool) -> R,
    ) -> R {
        let state = self.lock();
        let entered = state.watch.as_ref().map_or([0; 6], |watch| watch.entered);
        check(&state.lifecycle, &entered, state.removed)
    }

    /// Delivers the queued events to the sinks and the subscribers, outside
    /// the lock.
    ///
    /// If another thread is delivering this service's events (or this thread
    /// is, further up the stack: a sink called back into the supervisor), the
    /// events stay queued and that deliverer delivers them after its current
    /// ones: this call returns at once.
    pub(crate) fn flush(&self, telemetry: &Telemetry) {
        if !telemetry.has_sinks() && !telemetry.events.is_heard() {
            return;
        }
        let mut batch = Vec::new();
        let mut heard = Vec::new();
        let mut handles = {
            let mut state = self.lock();
            let Some(outbox) = &mut state.outbox else {
                return;
            };
            if outbox.is_empty() {
                return;
            }
            let Some(handles) = outbox.handles.take() else {
                return;
            };
            std::mem::swap(&mut batch, &mut outbox.events);
            std::mem::swap(&mut heard, &mut outbox.lifecycle);
            handles
        };
        loop {
            for event in batch.drain(..) {
                telemetry.deliver(&self.name, &mut handles, &event);
            }
            if !heard.is_empty() {
                telemetry.events.send(&self.name, &mut heard);
            }
            let mut state = self.lock();
            let terminated = !state.lifecycle.phase().is_alive();
            let Some(outbox) = &mut state.outbox else {
                return;
            };
            if !outbox.is_empty() {
                std::mem::swap(&mut batch, &mut outbox.events);
                std::mem::swap(&mut heard, &mut outbox.lifecycle);
                continue;
            }
            let released = handles
                .iter()
                .all(|handle| matches!(handle, SinkHandle::Released));
            if terminated && released {
                // Nothing more will be delivered to a sink for this entry:
                // its removal's event, if anyone listens, makes a new outbox.
                state.outbox = None;
                return;
            }
            if terminated {
                // Only the removal is left to deliver: keep the handles, free
                // the buffers.
                outbox.handles = Some(handles);
                return;
            }
            // Keep the (empty) buffers with their capacity for the next
            // events, unless a burst (a crash loop between two yields) grew
            // them.
            batch.shrink_to(KEPT_CAPACITY);
            heard.shrink_to(KEPT_CAPACITY);
            outbox.events = batch;
            outbox.lifecycle = heard;
            outbox.handles = Some(handles);
            return;
        }
    }
}

impl Dependants {
    fn has_live(&self) -> bool {
        self.list
            .iter()
            .filter_map(Weak::upgrade)
            .any(|dependant| dependant.is_alive())
    }
}
