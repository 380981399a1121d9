//! The [`Supervisor`]: the public API over the registry, spawning, control
//! of single services, events, readiness and shutdown.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::BuildHasher as _;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use lifecycle::{ServiceLifecycleSnapshot, ServicePhase};
use supervisor_metrics::SupervisorMetrics;
use tokio_util::sync::CancellationToken;

use crate::drain::{DrainReport, ShutdownCause};
use crate::events::{EventBus, LifecycleEvents};
use crate::panics::take_message;
use crate::shared::Shared;
use crate::slot::ServiceSlot;
use crate::telemetry::Standing;
use crate::{
    ControlError, ReadyError, RestartPolicy, Service, ShutdownError, SpawnError, SpawnOptions,
    StopTimeout, SupervisorConfig,
};

/// Runs a fleet of [`Service`]s: restarts them by policy with backoff, trips
/// their circuit breakers, tracks their lifecycles, and shuts them all down.
///
/// Each service runs in one tokio task that owns it and its backoff state; the
/// tasks are tracked by a [`TaskTracker`](tokio_util::task::TaskTracker). Each
/// run of a service gets its own context and cancellation; only the
/// supervisor cancels a run (a stop, restart or removal of that service, or
/// the shutdown), and a task releases everything it holds when its service
/// terminates. Services can be controlled one at a time
/// ([`ServiceHandle`]), observed as a stream ([`subscribe`](Self::subscribe)),
/// and waited for ([`wait_ready`](Self::wait_ready)).
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
        Self {
            shared: Arc::new(Shared::new(config, jitter_seed)),
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
    /// - [`SpawnError::InvalidBackoff`] if the service's backoff is invalid,
    ///   and [`SpawnError::InvalidHeartbeat`] if its heartbeat interval is
    ///   zero;
    /// - [`SpawnError::InvalidName`] if the name contains a `/` (the
    ///   separator of nested paths);
    /// - [`SpawnError::DuplicateName`] if a live service has the same name (the
    ///   name of a terminated service can be reused: the new spawn replaces
    ///   its entry);
    /// - [`SpawnError::ShuttingDown`] once shutdown has been triggered;
    /// - [`SpawnError::NoRuntime`] outside a tokio runtime, and
    ///   [`SpawnError::NoTimeDriver`] on a runtime without its time driver
    ///   (backoff delays and stop timeouts need it).
    pub fn spawn_service_with_options<S: Service>(
        &self,
        service: S,
        options: SpawnOptions,
    ) -> Result<ServiceHandle, SpawnError> {
        let slot = self.shared.spawn(service, options)?;
        Ok(self.handle(slot))
    }

    /// The supervisor over `shared` (a nested one's, for its factory).
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn handle(&self, slot: Arc<ServiceSlot>) -> ServiceHandle {
        ServiceHandle {
            slot,
            shared: Arc::clone(&self.shared),
        }
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
        self.shared.shutdown(ShutdownCause::Requested);
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
    /// The services of a running nested supervisor
    /// ([`SupervisorSpec`](crate::SupervisorSpec)) follow their node, named
    /// by their path (`db/pool`), in their supervisor's start order.
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
        let nested = self.shared.nested_children();
        if nested.is_empty() {
            return snapshots;
        }
        let mut tree = Vec::with_capacity(snapshots.len());
        for snapshot in snapshots {
            let child = nested.get(snapshot.service_name.as_str()).cloned();
            tree.push(snapshot);
            if let Some(child) = child {
                tree.extend(
                    Supervisor::from_shared(child)
                        .status_in_start_order()
                        .into_iter()
                        .map(|status| status.snapshot),
                );
            }
        }
        tree
    }

    /// Every registered service's snapshot with its settings (policy, stop
    /// timeout, dependencies, readiness, temporary, critical), sorted by
    /// name: what a status endpoint shows. Each service is read under its
    /// own short lock.
    ///
    /// The services of a running nested supervisor
    /// ([`SupervisorSpec`](crate::SupervisorSpec)) follow their node, named
    /// by their path, in their supervisor's start order, with
    /// [`ServiceStatus::supervisor`] set to the node's path: enough to
    /// rebuild the tree. A node between two runs shows no services.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{service_fn, ServiceContext, SpawnOptions, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let idle = |name: &'static str| service_fn(name, |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// });
    /// supervisor.spawn_service(idle("db"))?;
    /// supervisor.spawn_service_with_options(idle("api"), SpawnOptions::default().after(["db"]).critical())?;
    ///
    /// let status = supervisor.status();
    /// assert_eq!(status[0].snapshot.service_name, "api");
    /// assert_eq!(status[0].dependencies, ["db"]);
    /// assert!(status[0].critical);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn status(&self) -> Vec<ServiceStatus> {
        let mut status: Vec<(u64, ServiceStatus)> = self.own_status();
        status.sort_unstable_by(|a, b| a.1.snapshot.service_name.cmp(&b.1.snapshot.service_name));
        self.with_nested(status)
    }

    /// This supervisor's own services with their start order.
    fn own_status(&self) -> Vec<(u64, ServiceStatus)> {
        let now = self.shared.telemetry.now();
        let supervisor = self.shared.path.as_deref().map(str::to_owned);
        self.shared
            .lock_registry()
            .values()
            .map(|slot| {
                let status = ServiceStatus {
                    snapshot: slot.snapshot(now),
                    policy: slot.spec.policy,
                    stop_timeout: slot.spec.stop_timeout,
                    dependencies: slot
                        .dependencies()
                        .iter()
                        .map(|dependency| dependency.name.to_string())
                        .collect(),
                    signals_readiness: slot.spec.signals_readiness,
                    temporary: slot.spec.temporary,
                    critical: slot.spec.critical,
                    supervisor: supervisor.clone(),
                };
                (slot.spec.order, status)
            })
            .collect()
    }

    /// A nested supervisor's status: its services in start order, each
    /// node's followed by its own.
    fn status_in_start_order(&self) -> Vec<ServiceStatus> {
        let mut status = self.own_status();
        status.sort_unstable_by_key(|(order, _)| *order);
        self.with_nested(status)
    }

    /// `status` with the services of each running nested supervisor after
    /// its node.
    fn with_nested(&self, status: Vec<(u64, ServiceStatus)>) -> Vec<ServiceStatus> {
        let nested = self.shared.nested_children();
        if nested.is_empty() {
            return status.into_iter().map(|(_, status)| status).collect();
        }
        let mut tree = Vec::with_capacity(status.len());
        for (_, row) in status {
            let child = nested.get(row.snapshot.service_name.as_str()).cloned();
            tree.push(row);
            if let Some(child) = child {
                tree.extend(Supervisor::from_shared(child).status_in_start_order());
            }
        }
        tree
    }

    /// The time since this supervisor was created: the clock of every
    /// snapshot's times (`last_transition_at`) and every event's `at`, so
    /// that a reader can tell how long ago they were.
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
    /// tokio::time::sleep(Duration::from_secs(3)).await;
    /// let feed = supervisor.service_lifecycle("feed").unwrap();
    /// assert_eq!(supervisor.elapsed() - feed.last_transition_at, Duration::from_secs(3));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn elapsed(&self) -> std::time::Duration {
        self.shared.telemetry.now()
    }

    /// Why the shutdown began, once it has (`None` before).
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{ShutdownCause, Supervisor, SupervisorConfig};
    ///
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// assert_eq!(supervisor.shutdown_cause(), None);
    /// supervisor.trigger_shutdown();
    /// assert_eq!(supervisor.shutdown_cause(), Some(ShutdownCause::Requested));
    /// ```
    #[must_use]
    pub fn shutdown_cause(&self) -> Option<ShutdownCause> {
        if !self.shared.cancel.is_cancelled() {
            return None;
        }
        Some(
            self.shared
                .cause
                .get()
                .cloned()
                .unwrap_or(ShutdownCause::Requested),
        )
    }

    /// Whether the shutdown has finished: every service drained and the
    /// report is out.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{service_fn, ServiceContext, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// supervisor.spawn_service(service_fn("feed", |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// }))?;
    /// supervisor.trigger_shutdown();
    /// assert!(!supervisor.is_drained());
    /// supervisor.wait_for_drain().await;
    /// assert!(supervisor.is_drained());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn is_drained(&self) -> bool {
        self.shared.cancel.is_cancelled()
            && self
                .shared
                .drain
                .get()
                .is_none_or(|report| report.borrow().is_some())
    }

    /// A snapshot of one service, if one is registered under `name`: a name
    /// of this supervisor's, or the path of a service of a running nested
    /// supervisor (`db/pool`; see [`service`](Self::service)).
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
        let (_, slot) = self.shared.resolve(name)?;
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
    /// triggered, the supervisor asks every service to stop, dependants
    /// before what they depend on ([`SpawnOptions::after`]), independent
    /// services concurrently; a service still running at its stop timeout
    /// ([`SpawnOptions::stop_timeout`], the shutdown timeout by default) is
    /// dropped, marked `Terminated` with
    /// [`TerminationReason::ShutdownTimeout`](crate::TerminationReason::ShutdownTimeout),
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
    /// assert_eq!(report.took, Duration::from_secs(5));
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
            return DrainReport {
                cause: shared.cause.get().cloned(),
                ..DrainReport::default()
            };
        };
        let mut report = report.clone();
        match report.wait_for(Option::is_some).await {
            Ok(report) => report.clone().unwrap_or_default(),
            // The shutdown task is gone without a report: its runtime shut
            // down. Nothing can run any more; report what was logged.
            Err(_closed) => shared.report(tokio::time::Instant::now(), false),
        }
    }

    /// Waits for SIGTERM or Ctrl-C (unless the signal handler is disabled), a
    /// programmatic shutdown, or a [critical](SpawnOptions::critical)
    /// service's end; triggers shutdown, then drains.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::{service_fn, ServiceContext, ShutdownCause, Supervisor, SupervisorConfig};
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
    /// let report = supervisor.run_until_shutdown().await?;
    /// assert!(report.is_clean());
    /// assert_eq!(report.cause, Some(ShutdownCause::Requested));
    /// assert_eq!(supervisor.metrics().snapshot().terminated_total, 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// - [`ShutdownError::Signals`], and nothing is triggered, if the signal
    ///   handlers cannot be installed: among other causes, on a runtime built
    ///   without its IO driver (`enable_io`), which signals need.
    /// - [`ShutdownError::CriticalFailed`], after the whole drain, if a
    ///   critical service failed for good: exit non-zero.
    /// - [`ShutdownError::IntensityExceeded`], after the whole drain, if the
    ///   [restart intensity](SupervisorConfig::with_restart_intensity) was
    ///   exceeded: exit non-zero.
    /// - [`ShutdownError::TreeTerminated`], after the whole drain, if a
    ///   service's run failed with a [`TerminateTree`](crate::TerminateTree)
    ///   error (and the config honours it): exit non-zero.
    pub async fn run_until_shutdown(&self) -> Result<DrainReport, ShutdownError> {
        if self.shared.config.install_signal_handler {
            self.wait_for_signal()
                .await
                .map_err(ShutdownError::Signals)?;
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
            took_ms = report.took.as_millis(),
            "supervisor shutdown complete"
        );
        match &report.cause {
            Some(ShutdownCause::CriticalFailed { service, reason }) => {
                Err(ShutdownError::CriticalFailed {
                    service: service.clone(),
                    reason: reason.clone(),
                    report,
                })
            }
            Some(ShutdownCause::IntensityExceeded {
                service,
                max_restarts,
                period,
            }) => Err(ShutdownError::IntensityExceeded {
                service: service.clone(),
                max_restarts: *max_restarts,
                period: *period,
                report,
            }),
            Some(ShutdownCause::TreeTerminated { service, error }) => {
                Err(ShutdownError::TreeTerminated {
                    service: service.clone(),
                    error: error.clone(),
                    report,
                })
            }
            _ => Ok(report),
        }
    }

    async fn wait_for_signal(&self) -> std::io::Result<()> {
        #[cfg(unix)]
        let signal = {
            use tokio::signal::unix::{SignalKind, signal};
            let mut sigterm = listen(|| signal(SignalKind::terminate()))?;
            let mut sigint = listen(|| signal(SignalKind::interrupt()))?;
            tokio::select! {
                _ = sigterm.recv() => "SIGTERM",
                _ = sigint.recv() => "SIGINT",
                () = self.shared.cancel.cancelled() => return Ok(()),
            }
        };
        #[cfg(not(unix))]
        let signal = {
            let ctrl_c = listen(|| Ok(tokio::signal::ctrl_c()))?;
            tokio::select! {
                result = ctrl_c => {
                    result?;
                    "Ctrl-C"
                }
                () = self.shared.cancel.cancelled() => return Ok(()),
            }
        };
        tracing::info!(signal, "received a shutdown signal");
        self.shared.shutdown(ShutdownCause::Signal { signal });
        Ok(())
    }

    /// A subscription to every service's [`LifecycleEvent`](crate::LifecycleEvent)s
    /// from now on: one per transition (including those the supervisor makes
    /// itself: a stop, a drain timeout, a removal), one when a run says it is
    /// ready, one per spawn and removal. Events of one service arrive in the
    /// order they happened. A slow subscriber is told how many events it
    /// missed ([`RecvError::Lagged`](crate::RecvError::Lagged)); it never
    /// slows a service down. A supervisor without subscribers builds no
    /// event at all.
    ///
    /// A service's events are queued as they happen and delivered, in
    /// batches, before its task next waits or yields (a crash loop's events
    /// arrive a scheduler budget at a time), so a control call's future may
    /// resolve a moment before the events of its change reach a subscriber.
    ///
    /// # Joining late without a gap or a duplicate
    ///
    /// Subscribe first, then read [`lifecycle_snapshots`](Self::lifecycle_snapshots).
    /// Every snapshot carries the `seq` of the latest change it includes, and
    /// every change after it has a greater `seq`: for each event, skip it if
    /// a snapshot of its service has `seq >= event.seq`, apply it otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use std::time::Duration;
    /// use supervisor_core::{service_fn, ServiceContext, ServicePhase, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let idle = |name: &'static str| service_fn(name, |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// });
    /// supervisor.spawn_service(idle("feed"))?;
    /// tokio::time::sleep(Duration::from_secs(1)).await;
    ///
    /// // A late joiner: subscribe, then snapshot.
    /// let mut events = supervisor.subscribe();
    /// let mut table: HashMap<String, (ServicePhase, u64)> = supervisor
    ///     .lifecycle_snapshots()
    ///     .into_iter()
    ///     .map(|s| (s.service_name, (s.phase, s.seq)))
    ///     .collect();
    ///
    /// supervisor.stop_service("feed").await?;
    /// let event = events.recv().await?;
    /// let (phase, seq) = table.get_mut(&*event.service).unwrap();
    /// assert!(event.seq > *seq); // Not in the snapshot: apply it.
    /// (*phase, *seq) = (event.to, event.seq);
    /// assert_eq!(table["feed"].0, ServicePhase::Stopping);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn subscribe(&self) -> LifecycleEvents {
        EventBus::subscribe(&self.shared.telemetry.events)
    }

    /// A handle to the service registered under `name`, if there is one.
    ///
    /// `name` is relative to this supervisor: a bare name is one of its own
    /// services; `db/pool` is the service `pool` of the running child
    /// supervisor of its node `db` ([`SupervisorSpec`](crate::SupervisorSpec)),
    /// resolved now: the handle controls that spawn of `pool` (a restart of
    /// `db` spawns a new one). The `*_service` calls below resolve paths the
    /// same way.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{service_fn, ServiceContext, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// supervisor.spawn_service(service_fn("feed", |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// }))?;
    /// assert_eq!(supervisor.service("feed").map(|handle| handle.name().to_owned()).as_deref(), Some("feed"));
    /// assert!(supervisor.service("ghost").is_none());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn service(&self, name: &str) -> Option<ServiceHandle> {
        let (shared, slot) = self.shared.resolve(name)?;
        Some(ServiceHandle { slot, shared })
    }

    /// Stops the service registered under `name`: see [`ServiceHandle::stop`].
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{service_fn, ServiceContext, Supervisor, SupervisorConfig, TerminationReason};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// supervisor.spawn_service(service_fn("feed", |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// }))?;
    /// let snapshot = supervisor.stop_service("feed").await?;
    /// assert_eq!(snapshot.termination_reason, Some(TerminationReason::Stopped));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] if no service has this name, and those of
    /// [`ServiceHandle::stop`].
    pub fn stop_service(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<ServiceLifecycleSnapshot, ControlError>> + Send + use<> {
        let stop = self.by_name(name).map(|handle| handle.stop());
        async move { stop?.await }
    }

    /// Restarts the service registered under `name`: see
    /// [`ServiceHandle::restart`].
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{service_fn, ServiceContext, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// supervisor.spawn_service(service_fn("feed", |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// }))?;
    /// tokio::task::yield_now().await;
    /// supervisor.restart_service("feed").await?;
    /// let snapshot = supervisor.service_lifecycle("feed").unwrap();
    /// assert_eq!((snapshot.start_count, snapshot.failures.total()), (2, 0));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] if no service has this name, and those of
    /// [`ServiceHandle::restart`].
    pub fn restart_service(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<(), ControlError>> + Send + use<> {
        let restart = self.by_name(name).map(|handle| handle.restart());
        async move { restart?.await }
    }

    /// Removes the service registered under `name`: see
    /// [`ServiceHandle::remove`].
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{service_fn, ServiceContext, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let feed = || service_fn("feed", |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// });
    /// supervisor.spawn_service(feed())?;
    /// supervisor.remove_service("feed").await?;
    /// assert_eq!(supervisor.service_count(), 0);
    /// supervisor.spawn_service(feed())?; // The name is free again.
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] if no service has this name, and those of
    /// [`ServiceHandle::remove`].
    pub fn remove_service(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<ServiceLifecycleSnapshot, ControlError>> + Send + use<> {
        let remove = self.by_name(name).map(|handle| handle.remove());
        async move { remove?.await }
    }

    fn by_name(&self, name: &str) -> Result<ServiceHandle, ControlError> {
        self.service(name).ok_or_else(|| ControlError::NotFound {
            name: name.to_owned(),
        })
    }

    /// Whether everything is up, in O(1): no shutdown has begun, every
    /// registered service that is alive is running and ready, and none
    /// terminated by a failure for good (`Unrecoverable`, `Panicked`, an open
    /// circuit). Services that completed or were stopped do not count.
    /// Turns false the moment shutdown begins, so a pod leaves its load
    /// balancer before it drains.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{service_fn, ServiceContext, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// supervisor.spawn_service(service_fn("feed", |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// }))?;
    /// assert!(!supervisor.is_ready()); // Registered, not started yet.
    /// supervisor.wait_ready().await?;
    /// assert!(supervisor.is_ready());
    /// supervisor.trigger_shutdown();
    /// assert!(!supervisor.is_ready());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn is_ready(&self) -> bool {
        let telemetry = &self.shared.telemetry;
        !self.shared.cancel.is_cancelled()
            && telemetry.waiting.sum() == 0
            && telemetry.failed.load(Ordering::Acquire) == 0
    }

    /// The readiness summary, for a `/readyz` endpoint: [`is_ready`](Self::is_ready),
    /// and which services hold it back.
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
    /// let warming = service_fn("cache", |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await; // Never says it is ready.
    ///     anyhow::Ok(())
    /// });
    /// supervisor.spawn_service_with_options(warming, SpawnOptions::default().signals_readiness())?;
    /// tokio::time::sleep(Duration::from_secs(1)).await;
    ///
    /// let readiness = supervisor.readiness();
    /// assert!(!readiness.ready);
    /// assert_eq!(readiness.waiting, ["cache"]);
    /// assert!(readiness.failed.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn readiness(&self) -> Readiness {
        let shutting_down = self.shared.cancel.is_cancelled();
        let mut waiting = Vec::new();
        let mut failed = Vec::new();
        for slot in self.shared.lock_registry().values() {
            match slot.standing() {
                Standing::Clear => {}
                Standing::Waiting => waiting.push(slot.name.to_string()),
                Standing::Failed => failed.push(slot.name.to_string()),
            }
        }
        waiting.sort_unstable();
        failed.sort_unstable();
        Readiness {
            ready: !shutting_down && waiting.is_empty() && failed.is_empty(),
            shutting_down,
            waiting,
            failed,
        }
    }

    /// Waits until [`is_ready`](Self::is_ready): every registered service
    /// running and ready.
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
    /// let db = service_fn("db", |ctx: ServiceContext| async move {
    ///     tokio::time::sleep(Duration::from_secs(5)).await; // Replaying its log.
    ///     ctx.ready();
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// });
    /// supervisor.spawn_service_with_options(db, SpawnOptions::default().signals_readiness())?;
    /// let started = tokio::time::Instant::now();
    /// supervisor.wait_ready().await?;
    /// assert_eq!(started.elapsed(), Duration::from_secs(5));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ReadyError::ShuttingDown`] if shutdown begins first (or had),
    /// [`ReadyError::Failed`] if a service has failed for good: it will never
    /// be ready.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_ready(&self) -> Result<(), ReadyError> {
        let shared = &*self.shared;
        let telemetry = &shared.telemetry;
        telemetry.ready_waiters.fetch_add(1, Ordering::SeqCst);
        let _counted = ReadyWaiter(&telemetry.ready_waiters);
        loop {
            let changed = telemetry.readiness.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if shared.cancel.is_cancelled() {
                return Err(ReadyError::ShuttingDown);
            }
            if telemetry.failed.load(Ordering::SeqCst) != 0 {
                let failed = shared
                    .slots()
                    .into_iter()
                    .find_map(|slot| Some((slot.name.to_string(), slot.failure_for_good()?)));
                if let Some((service, reason)) = failed {
                    return Err(ReadyError::Failed { service, reason });
                }
            }
            // The per-thread counts can add up to zero for an instant while
            // services change on other threads: confirm on the slots.
            if telemetry.waiting.sum() == 0
                && shared
                    .slots()
                    .iter()
                    .all(|slot| slot.standing() != Standing::Waiting)
            {
                return Ok(());
            }
            tokio::select! {
                () = changed => {}
                () = shared.cancel.cancelled() => {}
            }
        }
    }
}

/// Counts a waiter on one service out when its wait returns or is dropped.
struct Watching<'a>(&'a ServiceSlot);

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        self.0.watch_out();
    }
}

/// Counts a [`Supervisor::wait_ready`] out when it returns or is dropped.
struct ReadyWaiter<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for ReadyWaiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
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

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("config", &self.shared.config)
            .field("services", &self.service_count())
            .field("shutting_down", &self.is_shutting_down())
            .finish_non_exhaustive()
    }
}

/// One service as [`Supervisor::status`] shows it: its snapshot and its
/// settings.
///
/// # Examples
///
/// ```
/// use supervisor_core::{service_fn, RestartPolicy, ServiceContext, Supervisor, SupervisorConfig};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
/// supervisor.spawn_service(service_fn("feed", |ctx: ServiceContext| async move {
///     ctx.cancelled().await;
///     anyhow::Ok(())
/// }))?;
/// let feed = &supervisor.status()[0];
/// assert_eq!(feed.policy, RestartPolicy::OnFailure); // `service_fn`'s default.
/// assert!(feed.dependencies.is_empty() && !feed.critical && !feed.temporary);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ServiceStatus {
    /// The lifecycle.
    pub snapshot: ServiceLifecycleSnapshot,
    /// The restart policy it runs under.
    pub policy: RestartPolicy,
    /// Its stop timeout.
    pub stop_timeout: StopTimeout,
    /// The services it depends on.
    pub dependencies: Vec<String>,
    /// Whether it says itself when it is ready.
    pub signals_readiness: bool,
    /// Whether it is forgotten when it terminates.
    pub temporary: bool,
    /// Whether its failure shuts the supervisor down.
    pub critical: bool,
    /// The path of the nested supervisor's node this service belongs to
    /// ([`SupervisorSpec`](crate::SupervisorSpec)): `Some("db")` for
    /// `db/pool`, `None` for the services of the supervisor asked. With the
    /// `serde` feature, left out of the output when `None`, so a flat
    /// supervisor's status serializes as before.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub supervisor: Option<String>,
}

/// The readiness summary of a supervisor, from [`Supervisor::readiness`].
///
/// # Examples
///
/// ```
/// use supervisor_core::{Supervisor, SupervisorConfig};
///
/// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
/// let readiness = supervisor.readiness();
/// assert!(readiness.ready); // Nothing to wait for.
/// assert!(!readiness.shutting_down);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Readiness {
    /// No shutdown, nothing waiting, nothing failed.
    pub ready: bool,
    /// Shutdown has begun (then `ready` is false).
    pub shutting_down: bool,
    /// Alive services that are not running and ready, sorted.
    pub waiting: Vec<String>,
    /// Services that terminated by a failure for good, sorted.
    pub failed: Vec<String>,
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
    shared: Arc<Shared>,
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
        self.slot.snapshot(self.shared.telemetry.now())
    }

    /// Stops this service: its run is asked to stop (its context is
    /// cancelled) and dropped if it has not returned after its stop timeout;
    /// it then terminates
    /// [`Stopped`](crate::TerminationReason::Stopped) (or
    /// [`StopTimeout`](crate::TerminationReason::StopTimeout)) and is never
    /// restarted. A service backing off, or waiting for its dependencies,
    /// terminates at once. Its dependants are stopped after it.
    ///
    /// The stop is asked for when this is called, not when the future is
    /// first polled; awaiting it waits for the termination and returns the
    /// final snapshot. Dropping the future does not undo the stop, so
    /// `drop(handle.stop())` stops without waiting (from a sink, too).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::{service_fn, ServiceContext, ServicePhase, Supervisor, SupervisorConfig, TerminationReason};
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
    /// let snapshot = feed.stop().await?;
    /// assert_eq!(snapshot.phase, ServicePhase::Terminated);
    /// assert_eq!(snapshot.termination_reason, Some(TerminationReason::Stopped));
    /// assert!(supervisor.service_lifecycle("feed").is_some()); // Still registered.
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ControlError::Terminated`] if it had terminated already,
    /// [`ControlError::Removed`] if it was removed. Stopping a service that
    /// is being stopped already is not an error: the first stop's cause
    /// stays.
    pub fn stop(
        &self,
    ) -> impl Future<Output = Result<ServiceLifecycleSnapshot, ControlError>> + Send + use<> {
        let asked = self.shared.stop(&self.slot);
        let handle = self.clone();
        async move {
            asked?;
            Ok(handle.wait_terminated().await)
        }
    }

    /// Restarts this service: its run is asked to stop (as
    /// [`stop`](Self::stop) does, with its stop timeout), then a new run
    /// starts at once. It counts as a restart, not as a failure, and leaves
    /// the backoff as it was. A service backing off starts at once; one that
    /// is about to start just starts. The new run never overlaps the old one.
    ///
    /// The restart is asked for when this is called; awaiting it waits until
    /// the new run has started.
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
    /// let feed = supervisor.spawn_service(service_fn("feed", |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// }))?;
    /// tokio::time::sleep(Duration::from_secs(1)).await;
    ///
    /// feed.restart().await?;
    /// let snapshot = feed.snapshot();
    /// assert_eq!(snapshot.restart_count(), 1);
    /// assert_eq!(snapshot.failures.total(), 0);
    /// assert_eq!(supervisor.metrics().snapshot().restarts_total, 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ControlError::Stopping`] if a stop was asked for,
    /// [`ControlError::ShuttingDown`] during shutdown,
    /// [`ControlError::Terminated`] if it terminated (before, or instead of
    /// restarting), [`ControlError::Removed`] if it was removed.
    pub fn restart(&self) -> impl Future<Output = Result<(), ControlError>> + Send + use<> {
        let asked = self.shared.restart(&self.slot);
        let handle = self.clone();
        async move {
            let before = asked?;
            let slot = &handle.slot;
            handle
                .wait(|lifecycle, _, _| {
                    if lifecycle.start_count() > before {
                        Some(Ok(()))
                    } else {
                        lifecycle.termination_reason().map(|reason| {
                            Err(ControlError::Terminated {
                                name: slot.name.to_string(),
                                reason: reason.clone(),
                            })
                        })
                    }
                })
                .await
        }
    }

    /// Removes this service: stops it (as [`stop`](Self::stop) does) if it is
    /// alive, then forgets it: its registry entry, its lifecycle, its metric
    /// series (`service_removed` to every sink) and its task's memory go, and
    /// its name can be spawned again. A terminated service is forgotten at
    /// once.
    ///
    /// The removal is asked for when this is called; awaiting it waits until
    /// the service is forgotten and returns its final snapshot.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{service_fn, ServiceContext, Supervisor, SupervisorConfig, TerminationReason};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let feed = supervisor.spawn_service(service_fn("feed", |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// }))?;
    /// let last = feed.remove().await?;
    /// assert_eq!(last.termination_reason, Some(TerminationReason::Stopped));
    /// assert!(supervisor.service("feed").is_none());
    /// assert!(feed.remove().await.is_err()); // Removed already.
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ControlError::Removed`] if it was removed already.
    pub fn remove(
        &self,
    ) -> impl Future<Output = Result<ServiceLifecycleSnapshot, ControlError>> + Send + use<> {
        let asked = self.shared.remove(&self.slot);
        let handle = self.clone();
        async move {
            asked?;
            handle.wait(|_, _, removed| removed.then_some(())).await;
            Ok(handle.snapshot())
        }
    }

    /// Waits until this service has terminated, and returns its final
    /// snapshot.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{service_fn, RestartPolicy, ServiceContext, Supervisor, SupervisorConfig, TerminationReason};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let job = supervisor.spawn_service(
    ///     service_fn("job", |_ctx: ServiceContext| async { anyhow::Ok(()) })
    ///         .with_restart_policy(RestartPolicy::OnFailure),
    /// )?;
    /// let snapshot = job.wait_terminated().await;
    /// assert_eq!(snapshot.termination_reason, Some(TerminationReason::Completed));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_terminated(&self) -> ServiceLifecycleSnapshot {
        self.wait(|lifecycle, _, _| (!lifecycle.phase().is_alive()).then_some(()))
            .await;
        self.snapshot()
    }

    /// Waits until this service enters `phase` (or returns at once if it is
    /// in it), and returns a snapshot taken then. Every entry counts, however
    /// short: the service may have left the phase again by the time the
    /// snapshot is taken.
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
    /// let flaky = supervisor.spawn_service(service_fn("flaky", |_ctx: ServiceContext| async {
    ///     tokio::time::sleep(Duration::from_secs(1)).await;
    ///     anyhow::bail!("lost connection")
    /// }))?;
    /// let snapshot = flaky.wait_for_phase(ServicePhase::BackingOff).await?;
    /// assert_eq!(snapshot.failures.error, 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ControlError::Terminated`] if the service terminates (or had)
    /// without entering `phase`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_for_phase(
        &self,
        phase: ServicePhase,
    ) -> Result<ServiceLifecycleSnapshot, ControlError> {
        let mut baseline = None;
        let name = &self.slot.name;
        self.wait(|lifecycle, entered, _| {
            let entries = entered[phase.index()];
            let before = *baseline.get_or_insert(entries);
            if lifecycle.phase() == phase || entries > before {
                return Some(Ok(()));
            }
            lifecycle.termination_reason().map(|reason| {
                Err(ControlError::Terminated {
                    name: name.to_string(),
                    reason: reason.clone(),
                })
            })
        })
        .await?;
        Ok(self.snapshot())
    }

    /// Whether this service was removed (by a removal, as a temporary
    /// service, or replaced by a new spawn of its name).
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{service_fn, ServiceContext, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let feed = supervisor.spawn_service(service_fn("feed", |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// }))?;
    /// assert!(!feed.is_removed());
    /// feed.remove().await?;
    /// assert!(feed.is_removed());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn is_removed(&self) -> bool {
        self.slot.is_removed()
    }

    /// Waits until `check` (reading the lifecycle, the phase entry counts
    /// and whether the service was removed) returns `Some`.
    async fn wait<R>(
        &self,
        mut check: impl FnMut(&lifecycle::ServiceLifecycle, &[u64; 6], bool) -> Option<R>,
    ) -> R {
        let notify = self.slot.watch_in();
        let _counted = Watching(&self.slot);
        loop {
            let changed = notify.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if let Some(result) = self.slot.observe(&mut check) {
                return result;
            }
            changed.await;
        }
    }
}

impl fmt::Debug for ServiceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceHandle")
            .field("name", &self.slot.name)
            .field("policy", &self.slot.spec.policy)
            .finish_non_exhaustive()
    }
}
