//! [`ServiceContext`]: what one run of a service gets from its supervisor.
//!
//! # Invariants
//!
//! 1. Each run has its own context and its own cancellation: a fresh
//!    [`RunState`] (or the previous one, reset, when the service dropped every
//!    clone of its context, so the reuse is unobservable).
//! 2. Only the supervisor cancels a run (`RunContexts::cancel`), when it asks
//!    it to stop; a service that cancels its own [`ServiceContext::token`]
//!    cancels nothing the supervisor reads.
//! 3. Every run's cancellation fires when the run ends, whatever the reason,
//!    so sub-tasks tied to its token end with it and never leak into the next
//!    run.
//! 4. A run's cancellation is one atomic word: a "cancelled" bit, a "token
//!    made" bit and the number of [`ServiceContext::cancelled`] futures
//!    waiting. Cancelling, making the token and starting to wait are each one
//!    read-modify-write of that word, so whichever comes second sees the
//!    first: a token made after the cancellation is born cancelled, a waiter
//!    that arrives after it returns at once, and one that arrived before is
//!    woken.
//! 5. Nothing is paid for what a run does not use: the [`CancellationToken`]
//!    is made only if the service asks for [`ServiceContext::token`], and a
//!    cancellation wakes waiters only if some future waits.
//! 6. A heartbeat is one bit of the same word: [`ServiceContext::heartbeat`]
//!    sets it (a load, and a read-modify-write only if it was clear; no lock,
//!    no allocation, no wake-up), and the runner clears it when it checks a
//!    heartbeat deadline. A beat before the check is seen by it; a beat
//!    after it is seen by the next one.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::slot::ServiceSlot;

/// What a run of a service gets from its supervisor: its name, its
/// cancellation, and the way to say it is ready.
///
/// Each run gets its own context: [`cancelled`](Self::cancelled) completes
/// when the supervisor asks *this run* to stop (a stop, restart or removal of
/// the service, or the shutdown), and also when the
/// run has ended, so sub-tasks that watch [`token`](Self::token) stop with
/// their run. A service cancelling its own token is not a stop: the
/// supervisor keeps supervising the run until it returns. Cloning is cheap.
///
/// # Examples
///
/// ```
/// use supervisor_core::{service_fn, ServiceContext};
///
/// let svc = service_fn("ticker", |ctx: ServiceContext| async move {
///     while !ctx.is_cancelled() {
///         tokio::select! {
///             _ = ctx.cancelled() => break,
///             _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
///         }
///     }
///     Ok::<(), std::io::Error>(())
/// });
/// # let _ = svc;
/// ```
#[derive(Debug, Clone)]
pub struct ServiceContext {
    run: Arc<RunState>,
}

/// The state one run shares between its supervisor and its context.
pub(crate) struct RunState {
    slot: Arc<ServiceSlot>,
    /// [`CANCELLED`], [`TOKEN_MADE`], [`READY`], [`HEARTBEAT`], and the
    /// waiters in units of [`WAITER`].
    state: AtomicUsize,
    /// Wakes the waiting [`ServiceContext::cancelled`] futures.
    notify: Notify,
    /// Made on first use of [`ServiceContext::token`].
    token: OnceLock<CancellationToken>,
}

/// Set by the supervisor: the run is asked to stop, or has ended.
const CANCELLED: usize = 1;
/// Set once the token exists.
const TOKEN_MADE: usize = 2;
/// Set by [`ServiceContext::ready`].
const READY: usize = 4;
/// Set by [`ServiceContext::heartbeat`], cleared by the runner's check.
const HEARTBEAT: usize = 8;
/// One waiting [`ServiceContext::cancelled`] future.
const WAITER: usize = 16;

impl std::fmt::Debug for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunState")
            .field("service", &self.slot.name)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl RunState {
    fn new(slot: Arc<ServiceSlot>) -> Self {
        Self {
            slot,
            state: AtomicUsize::new(0),
            notify: Notify::new(),
            token: OnceLock::new(),
        }
    }

    fn is_cancelled(&self) -> bool {
        self.state.load(Ordering::Acquire) & CANCELLED != 0
    }

    fn token(&self) -> &CancellationToken {
        let token = self.token.get_or_init(CancellationToken::new);
        let before = self.state.fetch_or(TOKEN_MADE, Ordering::AcqRel);
        if before & CANCELLED != 0 {
            token.cancel();
        }
        if before & TOKEN_MADE == 0 && before >= WAITER {
            // Waiters switch to the token: it can now be cancelled by others.
            self.notify.notify_waiters();
        }
        token
    }

    /// Completes once the run is cancelled, or its token (once made) is.
    async fn cancelled(&self) {
        loop {
            // Registered with `notify` before counting in, so a cancellation
            // (or the token's making) that sees the count wakes this future.
            let notified = self.notify.notified();
            let before = self.state.fetch_add(WAITER, Ordering::AcqRel);
            let _counted = Waiting(&self.state);
            if before & CANCELLED != 0 {
                return;
            }
            if before & TOKEN_MADE != 0 {
                break;
            }
            notified.await;
        }
        // Out of the loop, so the token's future and `notified` never live
        // at the same time: the future stays as small as either.
        if let Some(token) = self.token.get() {
            token.cancelled().await;
        }
    }

    fn cancel(&self) {
        let before = self.state.fetch_or(CANCELLED, Ordering::AcqRel);
        if before & CANCELLED != 0 {
            return;
        }
        if before & TOKEN_MADE != 0 {
            if let Some(token) = self.token.get() {
                token.cancel();
            }
        }
        if before >= WAITER {
            self.notify.notify_waiters();
        }
    }
}

/// Counts one [`RunState::cancelled`] future out when it completes or is
/// dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(WAITER, Ordering::AcqRel);
    }
}

impl ServiceContext {
    /// The service's registered name.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{service_fn, ServiceContext, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let (names, mut received) = tokio::sync::mpsc::unbounded_channel();
    /// supervisor.spawn_service(service_fn("echo", move |ctx: ServiceContext| {
    ///     let names = names.clone();
    ///     async move {
    ///         names.send(ctx.name().to_owned())?;
    ///         ctx.cancelled().await;
    ///         anyhow::Ok(())
    ///     }
    /// }))?;
    /// assert_eq!(received.recv().await.as_deref(), Some("echo"));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.run.slot.name
    }

    /// Says this run is ready (systemd's `READY=1`): its dependants may
    /// start, and it counts as up in
    /// [`Supervisor::readiness`](crate::Supervisor::readiness). Only for
    /// services spawned with
    /// [`SpawnOptions::signals_readiness`](crate::SpawnOptions::signals_readiness);
    /// the others are ready as soon as each run starts. Each run starts
    /// unready; calling this again, or after the run was asked to stop, does
    /// nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::{service_fn, ServiceContext, SpawnOptions, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let cache = service_fn("cache", |ctx: ServiceContext| async move {
    ///     tokio::time::sleep(Duration::from_secs(2)).await; // Loading.
    ///     ctx.ready();
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// });
    /// let handle = supervisor.spawn_service_with_options(cache, SpawnOptions::default().signals_readiness())?;
    /// tokio::time::sleep(Duration::from_secs(1)).await;
    /// assert!(!supervisor.is_ready());
    /// tokio::time::sleep(Duration::from_secs(2)).await;
    /// assert!(handle.snapshot().ready);
    /// assert!(supervisor.is_ready());
    /// # Ok(())
    /// # }
    /// ```
    pub fn ready(&self) {
        let before = self.run.state.fetch_or(READY, Ordering::AcqRel);
        if before & (READY | CANCELLED) == 0 {
            self.run.slot.wake_runner();
        }
    }

    /// Says this run is alive, for a service spawned with
    /// [`SpawnOptions::heartbeat`](crate::SpawnOptions::heartbeat) (systemd's
    /// `WATCHDOG=1`): a run that does not call it at least once per interval
    /// is taken as hung, stopped, and restarted by its policy. Cheap enough
    /// for a hot loop: one atomic load, and one atomic write if this is the
    /// run's first beat since the supervisor last checked; no lock, no
    /// allocation. Does nothing for a service spawned without a heartbeat
    /// interval.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::{service_fn, ServiceContext, SpawnOptions, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let pump = service_fn("pump", |ctx: ServiceContext| async move {
    ///     while !ctx.is_cancelled() {
    ///         tokio::time::sleep(Duration::from_millis(300)).await; // One batch.
    ///         ctx.heartbeat();
    ///     }
    ///     anyhow::Ok(())
    /// });
    /// let options = SpawnOptions::default().heartbeat(Duration::from_secs(1));
    /// let handle = supervisor.spawn_service_with_options(pump, options)?;
    /// tokio::time::sleep(Duration::from_secs(60)).await;
    /// assert_eq!(handle.snapshot().start_count, 1); // Never taken as hung.
    /// # Ok(())
    /// # }
    /// ```
    pub fn heartbeat(&self) {
        let state = &self.run.state;
        if state.load(Ordering::Relaxed) & HEARTBEAT == 0 {
            state.fetch_or(HEARTBEAT, Ordering::Release);
        }
    }

    /// Completes when the supervisor asks this run to stop (a stop, restart
    /// or removal of the service, or the shutdown), once
    /// the run has ended, or when its [`token`](Self::token) is cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::{
    ///     service_fn, ServiceContext, Supervisor, SupervisorConfig, TerminationReason,
    /// };
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let handle = supervisor.spawn_service(service_fn("feed", |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await; // Completes at shutdown.
    ///     anyhow::Ok(())
    /// }))?;
    /// tokio::time::sleep(Duration::from_secs(1)).await;
    ///
    /// supervisor.trigger_shutdown();
    /// assert!(supervisor.wait_for_drain().await.is_clean());
    /// assert_eq!(handle.snapshot().termination_reason, Some(TerminationReason::Cancelled));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: use it in `tokio::select!` freely. Futures do nothing
    /// unless polled: one that is made and never polled costs nothing.
    pub fn cancelled(&self) -> impl Future<Output = ()> + Send + '_ {
        self.run.cancelled()
    }

    /// Whether this run has been asked to stop (or its token was cancelled).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::{
    ///     service_fn, ServiceContext, Supervisor, SupervisorConfig, TerminationReason,
    /// };
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let poller = supervisor.spawn_service(service_fn("poller", |ctx: ServiceContext| async move {
    ///     while !ctx.is_cancelled() {
    ///         tokio::time::sleep(Duration::from_secs(1)).await; // One unit of work.
    ///     }
    ///     anyhow::Ok(())
    /// }))?;
    /// tokio::time::sleep(Duration::from_millis(2500)).await;
    ///
    /// supervisor.trigger_shutdown();
    /// assert!(supervisor.wait_for_drain().await.is_clean());
    /// assert_eq!(poller.snapshot().termination_reason, Some(TerminationReason::Cancelled));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.run.is_cancelled()
            || self
                .run
                .token
                .get()
                .is_some_and(CancellationToken::is_cancelled)
    }

    /// This run's token, to hand to libraries that take a
    /// `CancellationToken` (derive child tokens from it for sub-tasks: they
    /// are cancelled when the run is asked to stop, or when it ends). Made on
    /// first use.
    ///
    /// Cancelling it yourself (a drop guard, a library that cancels what it is
    /// handed) only cancels this token: the supervisor does not take it as a
    /// request to stop, and treats the run's outcome by its restart policy.
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
    /// let (done, mut received) = tokio::sync::mpsc::unbounded_channel();
    /// supervisor.spawn_service(service_fn("server", move |ctx: ServiceContext| {
    ///     let (child, done) = (ctx.token().child_token(), done.clone());
    ///     tokio::spawn(async move { child.cancelled().await; done.send("sub-task stopped") });
    ///     async move { ctx.cancelled().await; anyhow::Ok(()) }
    /// }))?;
    /// tokio::time::sleep(Duration::from_secs(1)).await;
    /// supervisor.trigger_shutdown();
    /// assert_eq!(received.recv().await, Some("sub-task stopped"));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn token(&self) -> &CancellationToken {
        self.run.token()
    }
}

/// The supervisor's side of a service's run contexts: makes one per run and
/// cancels it.
#[derive(Debug)]
pub(crate) struct RunContexts {
    /// Made by the first run, in the service's task (not by the spawn).
    current: Option<Arc<RunState>>,
}

impl RunContexts {
    pub(crate) fn new() -> Self {
        Self { current: None }
    }

    /// Whether the current run said it is ready (and has not been asked to
    /// stop); clears the bit so it is read once.
    pub(crate) fn take_ready(&self) -> bool {
        let Some(current) = &self.current else {
            return false;
        };
        let state = current.state.load(Ordering::Acquire);
        if state & READY == 0 || state & CANCELLED != 0 {
            return false;
        }
        current.state.fetch_and(!READY, Ordering::AcqRel) & READY != 0
    }

    /// Whether the current run beat since the last call; clears the bit, so
    /// each beat is read once.
    pub(crate) fn take_heartbeat(&self) -> bool {
        let Some(current) = &self.current else {
            return false;
        };
        current.state.load(Ordering::Acquire) & HEARTBEAT != 0
            && current.state.fetch_and(!HEARTBEAT, Ordering::AcqRel) & HEARTBEAT != 0
    }

    /// The context of `slot`'s next run: the previous state reset in place
    /// if the service kept no clone of its context, a new one otherwise.
    pub(crate) fn next(&mut self, slot: &Arc<ServiceSlot>) -> ServiceContext {
        let reused = match self.current.as_mut().map(Arc::get_mut) {
            Some(Some(state)) => {
                *state.state.get_mut() = 0;
                state.token = OnceLock::new();
                true
            }
            Some(None) | None => false,
        };
        let current = match &self.current {
            Some(current) if reused => current,
            _ => self
                .current
                .insert(Arc::new(RunState::new(Arc::clone(slot)))),
        };
        ServiceContext {
            run: Arc::clone(current),
        }
    }

    /// Cancels the current run's context (idempotent): it is asked to stop.
    pub(crate) fn cancel(&self) {
        if let Some(current) = &self.current {
            current.cancel();
        }
    }

    /// Cancels the context of the run that just ended. Nothing to wake when
    /// nobody could tell: the service kept no clone of its context and made
    /// no token (the next run resets the state anyway).
    pub(crate) fn end_run(&mut self) {
        let Some(current) = &mut self.current else {
            return;
        };
        match Arc::get_mut(current) {
            Some(state) if state.token.get().is_none() => *state.state.get_mut() |= CANCELLED,
            _ => current.cancel(),
        }
    }
}
