//! The [`Supervisor`]: registry, spawning, shutdown and drain.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher as _;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use backoff::{BackoffConfig, SplitMix64};
use lifecycle::{ServiceLifecycleSnapshot, ServicePhase, TerminationReason};
use supervisor_metrics::SupervisorMetrics;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::context::RunContexts;
use crate::panics::take_message;
use crate::runner::{LazyBackoff, Runner};
use crate::slot::ServiceSlot;
use crate::telemetry::Telemetry;
use crate::{Service, SpawnError, SpawnOptions, SupervisorConfig};

/// The longest a service's task gets past its stop timeout before the drain
/// aborts it from outside (a task that blocks its thread never reaches its own
/// timeout), and then to unwind before the drain reports anyway; see
/// [`abort_grace`].
const MAX_ABORT_GRACE: Duration = Duration::from_secs(1);

/// The shortest such grace: time for a task that is merely busy to be polled.
const MIN_ABORT_GRACE: Duration = Duration::from_millis(100);

/// The grace of a stop timeout: the timeout itself, within
/// [`MIN_ABORT_GRACE`]..=[`MAX_ABORT_GRACE`].
fn abort_grace(timeout: Duration) -> Duration {
    timeout.clamp(MIN_ABORT_GRACE, MAX_ABORT_GRACE)
}

/// Runs a fleet of [`Service`]s: restarts them by policy with backoff, trips
/// their circuit breakers, tracks their lifecycles, and shuts them all down.
///
/// Each service runs in one tokio task that owns it and its backoff state; the
/// tasks are tracked by a [`TaskTracker`]. Each run of a service gets its own
/// context and cancellation; only the supervisor cancels a run (at shutdown),
/// and a task releases everything it holds when its service terminates.
///
/// Cloning a `Supervisor` is cheap and gives another handle to the same one.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor_core::{service_fn, ServiceContext, ServicePhase, Supervisor, SupervisorConfig};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
/// let feed = supervisor.spawn_service(service_fn("feed", |ctx: ServiceContext| async move {
///     ctx.cancelled().await;
///     anyhow::Ok(())
/// }))?;
///
/// tokio::time::sleep(Duration::from_millis(10)).await;
/// assert_eq!(feed.snapshot().phase, ServicePhase::Running);
///
/// supervisor.trigger_shutdown();
/// let report = supervisor.wait_for_drain().await;
/// assert!(report.is_clean());
/// assert_eq!(feed.snapshot().phase, ServicePhase::Terminated);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Supervisor {
    shared: Arc<Shared>,
}

struct Shared {
    config: SupervisorConfig,
    tracker: TaskTracker,
    /// The public shutdown token: cancelling it starts the shutdown.
    cancel: CancellationToken,
    /// The default backoff, shared by every service that uses it.
    default_backoff: Arc<BackoffConfig>,
    telemetry: Arc<Telemetry>,
    /// Written only on spawn (and, later, removal); never by transitions.
    registry: Mutex<HashMap<Arc<str>, Arc<ServiceSlot>>>,
    /// The report of the shutdown, published once by the shutdown task, which
    /// the first spawn starts (under the registry lock).
    drain: OnceLock<watch::Receiver<Option<DrainReport>>>,
    jitter_seed: u64,
    spawn_counter: AtomicU64,
}

impl Supervisor {
    /// A supervisor with this configuration. No task is started until a
    /// service is spawned.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::{Supervisor, SupervisorConfig};
    ///
    /// let config = SupervisorConfig::default()
    ///     .without_signal_handler()
    ///     .with_shutdown_timeout(Duration::from_secs(5));
    /// let supervisor = Supervisor::new(config);
    /// assert_eq!(supervisor.config().shutdown_timeout(), Duration::from_secs(5));
    /// assert_eq!(supervisor.service_count(), 0);
    /// ```
    #[must_use]
    pub fn new(config: SupervisorConfig) -> Self {
        let jitter_seed = config
            .jitter_seed
            .unwrap_or_else(|| RandomState::new().hash_one(0x5eed_u64));
        let telemetry = Arc::new(Telemetry::new(
            config.sinks.clone(),
            config.clean_restart_delay,
        ));
        Self {
            shared: Arc::new(Shared {
                default_backoff: Arc::new(config.default_backoff),
                config,
                tracker: TaskTracker::new(),
                cancel: CancellationToken::new(),
                telemetry,
                registry: Mutex::new(HashMap::new()),
                drain: OnceLock::new(),
                jitter_seed,
                spawn_counter: AtomicU64::new(0),
            }),
        }
    }

    /// A supervisor with [`SupervisorConfig::default`].
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{DEFAULT_SHUTDOWN_TIMEOUT, Supervisor};
    ///
    /// let supervisor = Supervisor::with_defaults();
    /// assert_eq!(supervisor.config().shutdown_timeout(), DEFAULT_SHUTDOWN_TIMEOUT);
    /// assert!(supervisor.config().installs_signal_handler());
    /// ```
    #[must_use]
    pub fn with_defaults() -> Self {
        Self::new(SupervisorConfig::default())
    }

    /// The configuration this supervisor runs with.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::{Supervisor, SupervisorConfig};
    ///
    /// let config = SupervisorConfig::default().with_clean_restart_delay(Duration::from_secs(1));
    /// let supervisor = Supervisor::new(config);
    /// assert_eq!(supervisor.config().clean_restart_delay(), Duration::from_secs(1));
    /// ```
    #[must_use]
    pub fn config(&self) -> &SupervisorConfig {
        &self.shared.config
    }

    /// Spawns a service with default options.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{
    ///     service_fn, ServiceContext, ServicePhase, SpawnError, Supervisor, SupervisorConfig,
    /// };
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let feed = || service_fn("feed", |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// });
    /// let handle = supervisor.spawn_service(feed())?;
    /// assert_eq!(handle.phase(), ServicePhase::Starting); // Registered at once.
    ///
    /// supervisor.trigger_shutdown();
    /// let refused = supervisor.spawn_service(feed()).unwrap_err();
    /// assert_eq!(refused, SpawnError::ShuttingDown { name: "feed".into() });
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// See [`spawn_service_with_options`](Self::spawn_service_with_options).
    pub fn spawn_service<S: Service>(&self, service: S) -> Result<ServiceHandle, SpawnError> {
        self.spawn_service_with_options(service, SpawnOptions::default())
    }

    /// Spawns a service. Its name is registered before this returns, so a
    /// second live service with the same name is refused right away, and its
    /// lifecycle (phase `Starting`) is visible at once.
    ///
    /// Must be called from within a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::{
    ///     service_fn, BackoffConfig, Jitter, ServiceContext, SpawnOptions, Supervisor, SupervisorConfig,
    /// };
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let backoff = BackoffConfig::new(Duration::from_millis(200), Duration::from_secs(5))
    ///     .with_jitter(Jitter::None);
    /// let failing = service_fn("db", |_ctx: ServiceContext| async { anyhow::bail!("refused") });
    /// let handle = supervisor.spawn_service_with_options(failing, SpawnOptions::with_backoff(backoff))?;
    ///
    /// tokio::time::sleep(Duration::from_millis(1)).await;
    /// // The first failure waits this service's own base delay.
    /// assert_eq!(handle.snapshot().current_backoff, Some(Duration::from_millis(200)));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// Nothing is registered or started when one of these is returned:
    ///
    /// - [`SpawnError::Panicked`] if the service's `name` or `restart_policy`
    ///   panicked;
    /// - [`SpawnError::InvalidBackoff`] if the service's backoff is invalid;
    /// - [`SpawnError::DuplicateName`] if a live service has the same name (the
    ///   name of a terminated service can be reused: the new spawn replaces
    ///   its entry);
    /// - [`SpawnError::ShuttingDown`] once shutdown has been triggered;
    /// - [`SpawnError::NoRuntime`] outside a tokio runtime, and
    ///   [`SpawnError::NoTimeDriver`] on a runtime without its time driver
    ///   (backoff delays and stop timeouts need it).
    #[expect(
        clippy::needless_pass_by_value,
        reason = "options are owned: later ones (dependencies, readiness) will not be Copy"
    )]
    pub fn spawn_service_with_options<S: Service>(
        &self,
        service: S,
        options: SpawnOptions,
    ) -> Result<ServiceHandle, SpawnError> {
        let shared = &*self.shared;
        // `name` and `restart_policy` are user code.
        let described = panic::catch_unwind(AssertUnwindSafe(|| {
            (Arc::<str>::from(service.name()), service.restart_policy())
        }));
        let (name, policy) = described.map_err(|payload| SpawnError::Panicked {
            message: take_message(payload),
        })?;
        check_runtime(&name)?;
        let backoff_config = match options.backoff {
            Some(config) => Arc::new(config),
            None => Arc::clone(&shared.default_backoff),
        };
        let backoff = LazyBackoff::new(backoff_config, self.next_seed()).map_err(|source| {
            SpawnError::InvalidBackoff {
                name: name.to_string(),
                source,
            }
        })?;

        let telemetry = &shared.telemetry;
        let slot = Arc::new(ServiceSlot::new(
            Arc::clone(&name),
            policy,
            shared.config.shutdown_timeout,
            telemetry.now(),
            telemetry,
        ));
        let mut runner = Runner {
            service,
            slot: Arc::clone(&slot),
            backoff,
            contexts: RunContexts::new(Arc::clone(&name)),
            telemetry: Arc::clone(telemetry),
        };
        let span = tracing::info_span!("service", service = %name, policy = %policy);
        // An `async fn` taking `self` by value would keep the runner twice in
        // the task (the argument and its binding); borrowing it keeps it once.
        let task = async move { runner.run().await }.instrument(span);

        // One step as the drain sees it: the shutdown check, the registration
        // and the task's tracking happen under the registry lock, and the
        // drain takes that lock once after shutdown begins, so a spawn is
        // either refused or waited for.
        let (task, replaced) = {
            let mut registry = shared.lock_registry();
            if shared.cancel.is_cancelled() {
                return Err(SpawnError::ShuttingDown {
                    name: name.to_string(),
                });
            }
            let replaced = match registry.entry(Arc::clone(&name)) {
                Entry::Occupied(existing) if existing.get().is_alive() => {
                    return Err(SpawnError::DuplicateName {
                        name: name.to_string(),
                    });
                }
                Entry::Occupied(mut terminated) => Some(terminated.insert(Arc::clone(&slot))),
                Entry::Vacant(vacant) => {
                    vacant.insert(Arc::clone(&slot));
                    None
                }
            };
            slot.spawned(telemetry);
            self.start_shutdown_task();
            (shared.tracker.track_future(task), replaced)
        };
        // Outside every lock: sinks may call back into the supervisor.
        if let Some(replaced) = replaced {
            replaced.removed();
            replaced.flush(telemetry);
        }
        slot.flush(telemetry);
        let join = tokio::spawn(task);
        slot.set_abort_handle(join.abort_handle());
        Ok(ServiceHandle {
            slot,
            telemetry: Arc::clone(telemetry),
        })
    }

    /// Asks every service to stop: cancels the supervisor's token; the
    /// shutdown task then asks every service to stop (each run's own
    /// cancellation fires) and drains them. Idempotent.
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
    /// let feed = supervisor.spawn_service(service_fn("feed", |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// }))?;
    /// tokio::time::sleep(Duration::from_secs(1)).await;
    ///
    /// supervisor.trigger_shutdown();
    /// supervisor.trigger_shutdown(); // Idempotent.
    /// assert!(supervisor.wait_for_drain().await.is_clean());
    /// assert_eq!(feed.snapshot().termination_reason, Some(TerminationReason::Cancelled));
    /// # Ok(())
    /// # }
    /// ```
    pub fn trigger_shutdown(&self) {
        if !self.shared.cancel.is_cancelled() {
            tracing::info!("supervisor: shutdown triggered");
        }
        self.shared.cancel.cancel();
    }

    /// Whether shutdown has been triggered.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{Supervisor, SupervisorConfig};
    ///
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// assert!(!supervisor.is_shutting_down());
    /// supervisor.trigger_shutdown();
    /// assert!(supervisor.is_shutting_down());
    /// ```
    #[must_use]
    pub fn is_shutting_down(&self) -> bool {
        self.shared.cancel.is_cancelled()
    }

    /// The supervisor's shutdown token: cancelling it triggers shutdown (as
    /// [`trigger_shutdown`](Self::trigger_shutdown) does), and it is cancelled
    /// when shutdown begins, so the host's own tasks can derive child tokens
    /// from it. Services do not: each run has its own cancellation, which the
    /// supervisor fires when it stops that service.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{Supervisor, SupervisorConfig};
    ///
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let child = supervisor.cancel_token().child_token();
    /// supervisor.cancel_token().cancel();
    /// assert!(supervisor.is_shutting_down());
    /// assert!(child.is_cancelled());
    /// ```
    #[must_use]
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.shared.cancel
    }

    /// The built-in counters.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{service_fn, ServiceContext, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// supervisor.spawn_service(service_fn("once", |_ctx: ServiceContext| async { anyhow::Ok(()) }))?;
    /// supervisor.wait_for_drain().await;
    ///
    /// let snapshot = supervisor.metrics().snapshot();
    /// assert_eq!(snapshot.spawned_total, 1);
    /// assert_eq!(snapshot.terminated_total, 1);
    /// assert_eq!(snapshot.active_services, 0);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn metrics(&self) -> &Arc<SupervisorMetrics> {
        &self.shared.telemetry.counters
    }

    /// A snapshot of every registered service, sorted by name. Each service is
    /// read under its own short lock; running services are never paused.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{service_fn, ServiceContext, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// for name in ["ingest", "api"] {
    ///     supervisor.spawn_service(service_fn(name, |ctx: ServiceContext| async move {
    ///         ctx.cancelled().await;
    ///         anyhow::Ok(())
    ///     }))?;
    /// }
    /// let snapshots = supervisor.lifecycle_snapshots();
    /// let names: Vec<&str> = snapshots.iter().map(|s| s.service_name.as_str()).collect();
    /// assert_eq!(names, ["api", "ingest"]);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn lifecycle_snapshots(&self) -> Vec<ServiceLifecycleSnapshot> {
        let now = self.shared.telemetry.now();
        // Read in place under the registry lock: it only blocks spawns, never
        // the services, and saves two cache misses per service over cloning
        // the `Arc`s out first.
        let mut snapshots: Vec<ServiceLifecycleSnapshot> = self
            .shared
            .lock_registry()
            .values()
            .map(|slot| slot.snapshot(now))
            .collect();
        snapshots.sort_unstable_by(|a, b| a.service_name.cmp(&b.service_name));
        snapshots
    }

    /// A snapshot of one service, if one is registered under `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::{service_fn, ServiceContext, ServicePhase, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// supervisor.spawn_service(service_fn("feed", |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// }))?;
    /// tokio::time::sleep(Duration::from_secs(1)).await;
    ///
    /// let feed = supervisor.service_lifecycle("feed").unwrap();
    /// assert_eq!((feed.phase, feed.start_count), (ServicePhase::Running, 1));
    /// assert_eq!(supervisor.service_lifecycle("missing"), None);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn service_lifecycle(&self, name: &str) -> Option<ServiceLifecycleSnapshot> {
        let slot = self.shared.lock_registry().get(name).cloned()?;
        Some(slot.snapshot(self.shared.telemetry.now()))
    }

    /// Number of registered services, alive or terminated.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{service_fn, ServiceContext, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// assert_eq!(supervisor.service_count(), 0);
    /// supervisor.spawn_service(service_fn("once", |_ctx: ServiceContext| async { anyhow::Ok(()) }))?;
    /// supervisor.wait_for_drain().await;
    /// // Terminated services stay registered.
    /// assert_eq!(supervisor.service_count(), 1);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn service_count(&self) -> usize {
        self.shared.lock_registry().len()
    }

    /// Waits until every service has terminated, and says how the shutdown
    /// went.
    ///
    /// Before shutdown is triggered this waits for services to end on their
    /// own (and returns a clean report if they all do). Once shutdown is
    /// triggered, the supervisor asks every service to stop; a service still
    /// running its stop timeout (the shutdown timeout) after that is dropped,
    /// marked `Terminated` with [`TerminationReason::ShutdownTimeout`],
    /// counted as a [`Timeout`](supervisor_metrics::FailureKind::Timeout)
    /// failure, and listed in the report. A task that blocks its thread (in
    /// the service, or in a sink) cannot reach its own timeout: after a grace
    /// (the timeout again, between 100 ms and 1 s) the drain marks it and
    /// aborts it from outside, and gives it the grace once more to unwind.
    ///
    /// The drain happens once: every call, from any number of tasks, returns
    /// the same report.
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
    /// let config = SupervisorConfig::default().with_shutdown_timeout(Duration::from_secs(5));
    /// let supervisor = Supervisor::new(config.without_signal_handler());
    /// // A service that ignores cancellation.
    /// supervisor.spawn_service(service_fn("stuck", |_ctx: ServiceContext| {
    ///     std::future::pending::<anyhow::Result<()>>()
    /// }))?;
    /// tokio::time::sleep(Duration::from_secs(1)).await;
    ///
    /// supervisor.trigger_shutdown();
    /// let report = supervisor.wait_for_drain().await; // Returns after the 5 s timeout.
    /// assert_eq!(report.aborted, ["stuck"]);
    /// assert_eq!(supervisor.wait_for_drain().await, report); // The same report, every time.
    /// let stuck = supervisor.service_lifecycle("stuck").unwrap();
    /// assert_eq!(
    ///     stuck.termination_reason,
    ///     Some(TerminationReason::ShutdownTimeout { timeout: Duration::from_secs(5) })
    /// );
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future leaves every service as it was (the
    /// drain itself runs in its own task).
    pub async fn wait_for_drain(&self) -> DrainReport {
        let shared = &*self.shared;
        if !shared.cancel.is_cancelled() {
            shared.tracker.close();
            tokio::select! {
                biased;
                () = shared.cancel.cancelled() => {}
                () = shared.tracker.wait() => return DrainReport::default(),
            }
        }
        // A spawn that passed its shutdown check holds the registry lock until
        // its shutdown task exists: after this barrier, `drain` is final.
        drop(shared.lock_registry());
        let Some(report) = shared.drain.get() else {
            // Nothing was ever spawned: nothing to drain.
            return DrainReport::default();
        };
        let mut report = report.clone();
        match report.wait_for(Option::is_some).await {
            Ok(report) => report.clone().unwrap_or_default(),
            // The shutdown task is gone without a report: its runtime shut
            // down. Nothing can run any more; report what the slots say.
            Err(_closed) => shared.report(false),
        }
    }

    /// Waits for SIGTERM or Ctrl-C (unless the signal handler is disabled) or
    /// a programmatic shutdown, triggers shutdown, then drains.
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
    /// supervisor.spawn_service(service_fn("feed", |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// }))?;
    ///
    /// let host = supervisor.clone();
    /// tokio::spawn(async move {
    ///     tokio::time::sleep(Duration::from_secs(60)).await;
    ///     host.trigger_shutdown(); // No signal handler: the host decides when to stop.
    /// });
    /// assert!(supervisor.run_until_shutdown().await?.is_clean());
    /// assert_eq!(supervisor.metrics().snapshot().terminated_total, 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// Returns an error, and triggers nothing, if the signal handlers cannot
    /// be installed: among other causes, on a runtime built without its IO
    /// driver (`enable_io`), which signals need.
    pub async fn run_until_shutdown(&self) -> std::io::Result<DrainReport> {
        if self.shared.config.install_signal_handler {
            self.wait_for_signal().await?;
        }
        self.shared.cancel.cancelled().await;
        let report = self.wait_for_drain().await;
        let snapshot = self.metrics().snapshot();
        tracing::info!(
            restarts = snapshot.restarts_total,
            spawned = snapshot.spawned_total,
            terminated = snapshot.terminated_total,
            circuit_trips = snapshot.circuit_breaker_trips,
            aborted = report.aborted.len(),
            "supervisor shutdown complete"
        );
        Ok(report)
    }

    async fn wait_for_signal(&self) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut sigterm = listen(|| signal(SignalKind::terminate()))?;
            let mut sigint = listen(|| signal(SignalKind::interrupt()))?;
            tokio::select! {
                _ = sigterm.recv() => tracing::info!("received SIGTERM"),
                _ = sigint.recv() => tracing::info!("received SIGINT"),
                () = self.shared.cancel.cancelled() => return Ok(()),
            }
        }
        #[cfg(not(unix))]
        {
            let ctrl_c = listen(|| Ok(tokio::signal::ctrl_c()))?;
            tokio::select! {
                result = ctrl_c => {
                    result?;
                    tracing::info!("received Ctrl-C");
                }
                () = self.shared.cancel.cancelled() => return Ok(()),
            }
        }
        self.trigger_shutdown();
        Ok(())
    }

    fn next_seed(&self) -> u64 {
        let n = self.shared.spawn_counter.fetch_add(1, Ordering::Relaxed);
        // Each service gets its own seed: its spawn number, mixed, keyed by
        // the supervisor's seed and mixed again (SplitMix64's output function).
        let spread = SplitMix64::new(n).next_u64();
        SplitMix64::new(self.shared.jitter_seed ^ spread).next_u64()
    }

    /// Starts the task that drains the services once shutdown begins, unless
    /// it runs already. Called under the registry lock, from a runtime.
    fn start_shutdown_task(&self) {
        let shared = &*self.shared;
        shared.drain.get_or_init(|| {
            let (publish, report) = watch::channel(None);
            let weak = Arc::downgrade(&self.shared);
            let cancel = shared.cancel.clone();
            tokio::spawn(async move {
                cancel.cancelled().await;
                // The supervisor is gone without a shutdown: nothing to drain.
                let Some(shared) = Weak::upgrade(&weak) else {
                    return;
                };
                let report = shared.drain().await;
                publish.send_replace(Some(report));
            });
            report
        });
    }
}

/// Sets up a signal listener; tokio panics instead of returning an error when
/// the runtime has no IO driver, so that panic becomes the error.
fn listen<T>(setup: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    panic::catch_unwind(AssertUnwindSafe(setup)).unwrap_or_else(|payload| {
        Err(std::io::Error::other(format!(
            "cannot listen for signals: {} (build the runtime with `enable_io`, or \
             use `SupervisorConfig::without_signal_handler`)",
            take_message(payload)
        )))
    })
}

/// Checks that the current runtime can run services: a runtime, with its time
/// driver (tokio panics at the first timer otherwise).
fn check_runtime(name: &str) -> Result<(), SpawnError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(SpawnError::NoRuntime {
            name: name.to_owned(),
        });
    }
    let timer = panic::catch_unwind(|| drop(tokio::time::sleep(Duration::ZERO)));
    timer.map_err(|payload| {
        crate::panics::drop_payload(payload);
        SpawnError::NoTimeDriver {
            name: name.to_owned(),
        }
    })
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("config", &self.shared.config)
            .field("services", &self.service_count())
            .field("shutting_down", &self.is_shutting_down())
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock_registry(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<ServiceSlot>>> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The registered slots, copied out so no lock is held while reading them.
    fn slots(&self) -> Vec<Arc<ServiceSlot>> {
        self.lock_registry().values().cloned().collect()
    }

    /// The shutdown, run once by the shutdown task: asks every service to
    /// stop, waits for them (each enforces its own stop timeout), and aborts
    /// from outside only a task that never reached its timeout.
    async fn drain(&self) -> DrainReport {
        let started = Instant::now();
        let timeout = self.config.shutdown_timeout;
        tracing::info!(timeout_ms = timeout.as_millis(), "draining services");
        // Taking the registry lock after the cancellation is the barrier
        // `spawn_service_with_options` relies on: every accepted spawn is in
        // the registry and tracked. The stop requests are sent in place (each
        // is an atomic store and a wake-up), without copying the registry.
        for slot in self.lock_registry().values() {
            slot.request_stop();
        }
        self.tracker.close();
        let grace = abort_grace(timeout);
        let last_resort = started + timeout + grace;
        if tokio::time::timeout_at(last_resort, self.tracker.wait())
            .await
            .is_ok()
        {
            tracing::info!("all services drained");
            return self.report(true);
        }
        let now = self.telemetry.now();
        for slot in self.slots() {
            if slot.terminate(
                &self.telemetry,
                now,
                TerminationReason::ShutdownTimeout { timeout },
            ) {
                slot.abort();
                slot.flush(&self.telemetry);
                tracing::error!(service = %slot.name, "service blocked past its stop timeout: task aborted");
            }
        }
        let unwound = tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok();
        if !unwound {
            tracing::error!("some aborted services did not unwind (blocking the executor?)");
        }
        self.report(unwound)
    }

    /// The report as the slots tell it: the services aborted at the shutdown
    /// timeout, sorted by name. The registry is read only if any was (the
    /// counters count them as they happen).
    fn report(&self, unwound: bool) -> DrainReport {
        if self.telemetry.counters.snapshot().failures.timeout == 0 {
            return DrainReport {
                aborted: Vec::new(),
                unwound,
            };
        }
        let mut aborted: Vec<String> = self
            .lock_registry()
            .values()
            .filter(|slot| slot.aborted_at_shutdown())
            .map(|slot| slot.name.to_string())
            .collect();
        aborted.sort_unstable();
        DrainReport { aborted, unwound }
    }
}

/// A handle to one spawned service.
///
/// # Examples
///
/// ```
/// use supervisor_core::{
///     service_fn, ServiceContext, ServicePhase, Supervisor, SupervisorConfig, TerminationReason,
/// };
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
/// let handle = supervisor.spawn_service(service_fn("once", |_ctx: ServiceContext| async {
///     anyhow::Ok(())
/// }))?;
/// assert_eq!(handle.name(), "once");
/// supervisor.wait_for_drain().await;
/// assert_eq!(handle.phase(), ServicePhase::Terminated);
/// assert_eq!(handle.snapshot().termination_reason, Some(TerminationReason::Completed));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ServiceHandle {
    slot: Arc<ServiceSlot>,
    telemetry: Arc<Telemetry>,
}

impl ServiceHandle {
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
    /// let handle = supervisor.spawn_service(service_fn("feed", |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// }))?;
    /// assert_eq!(handle.name(), "feed");
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.slot.name
    }

    /// The service's current phase.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::{service_fn, ServiceContext, ServicePhase, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let handle = supervisor.spawn_service(service_fn("feed", |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// }))?;
    /// tokio::time::sleep(Duration::from_secs(1)).await;
    /// assert_eq!(handle.phase(), ServicePhase::Running);
    ///
    /// supervisor.trigger_shutdown();
    /// supervisor.wait_for_drain().await;
    /// assert_eq!(handle.phase(), ServicePhase::Terminated);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn phase(&self) -> ServicePhase {
        self.snapshot().phase
    }

    /// A snapshot of the service's lifecycle.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{service_fn, RestartPolicy, ServiceContext, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let db = service_fn("db", |_ctx: ServiceContext| async { anyhow::bail!("connection refused") })
    ///     .with_restart_policy(RestartPolicy::Never);
    /// let handle = supervisor.spawn_service(db)?;
    /// supervisor.wait_for_drain().await;
    ///
    /// let snapshot = handle.snapshot();
    /// assert_eq!(snapshot.failures.error, 1);
    /// assert_eq!(snapshot.last_error.as_deref(), Some("connection refused"));
    /// assert_eq!(snapshot.termination_reason.map(|reason| reason.kind()), Some("unrecoverable"));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn snapshot(&self) -> ServiceLifecycleSnapshot {
        self.slot.snapshot(self.telemetry.now())
    }
}

impl fmt::Debug for ServiceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceHandle")
            .field("name", &self.slot.name)
            .field("policy", &self.slot.policy)
            .finish_non_exhaustive()
    }
}

/// What [`Supervisor::wait_for_drain`] observed.
///
/// # Examples
///
/// ```
/// use supervisor_core::DrainReport;
///
/// let report = DrainReport::default();
/// assert!(report.is_clean());
/// assert!(report.aborted.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Services aborted because they were still running at the shutdown
    /// timeout, sorted by name.
    pub aborted: Vec<String>,
    /// Whether every task had finished when `wait_for_drain` returned (false
    /// only if an aborted service blocks its thread and cannot be unwound).
    pub unwound: bool,
}

impl Default for DrainReport {
    fn default() -> Self {
        Self {
            aborted: Vec::new(),
            unwound: true,
        }
    }
}

impl DrainReport {
    /// Whether every service stopped by itself within the timeout.
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
