//! Supervisor-wide and per-service configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backoff::BackoffConfig;
use lifecycle::RestartIntensity;
use supervisor_metrics::MetricsSink;

use crate::RestartPolicy;
use crate::telemetry::{DynSink, erase};

/// How long a service that exited cleanly under [`RestartPolicy::Always`]
/// waits before it is started again, unless configured otherwise.
///
/// [`RestartPolicy::Always`]: crate::RestartPolicy::Always
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor_core::{DEFAULT_CLEAN_RESTART_DELAY, SupervisorConfig};
///
/// assert_eq!(DEFAULT_CLEAN_RESTART_DELAY, Duration::from_millis(100));
/// assert_eq!(
///     SupervisorConfig::default().clean_restart_delay(),
///     DEFAULT_CLEAN_RESTART_DELAY
/// );
/// ```
pub const DEFAULT_CLEAN_RESTART_DELAY: Duration = Duration::from_millis(100);

/// How long [`Supervisor::wait_for_drain`](crate::Supervisor::wait_for_drain)
/// waits for services after shutdown starts, unless configured otherwise.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor_core::{DEFAULT_SHUTDOWN_TIMEOUT, SupervisorConfig};
///
/// assert_eq!(DEFAULT_SHUTDOWN_TIMEOUT, Duration::from_secs(30));
/// assert_eq!(
///     SupervisorConfig::default().shutdown_timeout(),
///     DEFAULT_SHUTDOWN_TIMEOUT
/// );
/// ```
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// How many deliveries of [`LifecycleEvent`](crate::LifecycleEvent)s a
/// subscriber may fall behind before it misses some, unless configured
/// otherwise (see [`SupervisorConfig::with_event_capacity`]).
///
/// # Examples
///
/// ```
/// use supervisor_core::{DEFAULT_EVENT_CAPACITY, SupervisorConfig};
///
/// assert_eq!(DEFAULT_EVENT_CAPACITY, 1024);
/// assert_eq!(SupervisorConfig::default().event_capacity(), DEFAULT_EVENT_CAPACITY);
/// ```
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// Configuration of a [`Supervisor`](crate::Supervisor).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor_core::{BackoffConfig, SupervisorConfig};
///
/// let config = SupervisorConfig::default()
///     .with_shutdown_timeout(Duration::from_secs(5))
///     .with_default_backoff(BackoffConfig::new(Duration::from_millis(100), Duration::from_secs(10)))
///     .without_signal_handler();
/// assert_eq!(config.shutdown_timeout(), Duration::from_secs(5));
/// assert!(!config.installs_signal_handler());
/// ```
#[derive(Clone)]
pub struct SupervisorConfig {
    pub(crate) default_backoff: BackoffConfig,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) install_signal_handler: bool,
    pub(crate) clean_restart_delay: Duration,
    pub(crate) jitter_seed: Option<u64>,
    pub(crate) sinks: Vec<Arc<dyn DynSink>>,
    pub(crate) event_capacity: usize,
    pub(crate) strategy: Strategy,
    pub(crate) restart_intensity: Option<RestartIntensity>,
    pub(crate) ignore_terminate_tree: bool,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            default_backoff: BackoffConfig::default(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            install_signal_handler: true,
            clean_restart_delay: DEFAULT_CLEAN_RESTART_DELAY,
            jitter_seed: None,
            sinks: Vec::new(),
            event_capacity: DEFAULT_EVENT_CAPACITY,
            strategy: Strategy::OneForOne,
            restart_intensity: None,
            ignore_terminate_tree: false,
        }
    }
}

impl SupervisorConfig {
    /// How long to wait for services once shutdown starts before aborting the
    /// ones still running (default 30 s, like Kubernetes'
    /// `terminationGracePeriodSeconds`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::SupervisorConfig;
    ///
    /// let config = SupervisorConfig::default().with_shutdown_timeout(Duration::from_secs(5));
    /// assert_eq!(config.shutdown_timeout(), Duration::from_secs(5));
    /// ```
    #[must_use]
    pub fn with_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// The backoff of services spawned without their own
    /// ([`SpawnOptions::with_backoff`]). It is validated at each spawn.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::{BackoffConfig, SupervisorConfig};
    ///
    /// let backoff = BackoffConfig::new(Duration::from_millis(50), Duration::from_secs(5));
    /// let config = SupervisorConfig::default().with_default_backoff(backoff);
    /// assert_eq!(config.default_backoff(), backoff);
    /// ```
    #[must_use]
    pub fn with_default_backoff(mut self, backoff: BackoffConfig) -> Self {
        self.default_backoff = backoff;
        self
    }

    /// Do not listen for SIGTERM / Ctrl-C in
    /// [`run_until_shutdown`](crate::Supervisor::run_until_shutdown): the host
    /// drives shutdown with [`trigger_shutdown`](crate::Supervisor::trigger_shutdown).
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::SupervisorConfig;
    ///
    /// assert!(SupervisorConfig::default().installs_signal_handler());
    /// let config = SupervisorConfig::default().without_signal_handler();
    /// assert!(!config.installs_signal_handler());
    /// ```
    #[must_use]
    pub fn without_signal_handler(mut self) -> Self {
        self.install_signal_handler = false;
        self
    }

    /// The delay before an [`Always`](crate::RestartPolicy::Always) service
    /// that exited cleanly is started again (default 100 ms).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::{service_fn, RestartPolicy, ServiceContext, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = SupervisorConfig::default()
    ///     .without_signal_handler()
    ///     .with_clean_restart_delay(Duration::from_secs(1));
    /// let supervisor = Supervisor::new(config);
    /// let job = service_fn("job", |_ctx: ServiceContext| async { anyhow::Ok(()) })
    ///     .with_restart_policy(RestartPolicy::Always);
    /// let handle = supervisor.spawn_service(job)?;
    ///
    /// tokio::time::sleep(Duration::from_millis(2500)).await;
    /// // Started at 0 s, then again 1 s after each clean exit.
    /// assert_eq!(handle.snapshot().start_count, 3);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_clean_restart_delay(mut self, delay: Duration) -> Self {
        self.clean_restart_delay = delay;
        self
    }

    /// Seeds the jitter of every service's backoff, for reproducible delays
    /// (each service still gets its own stream). By default the seed is random.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::{service_fn, ServiceContext, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// async fn first_restart_delay(seed: u64) -> Option<Duration> {
    ///     let config = SupervisorConfig::default().without_signal_handler().with_jitter_seed(seed);
    ///     let supervisor = Supervisor::new(config);
    ///     let failing = service_fn("db", |_ctx: ServiceContext| async { anyhow::bail!("down") });
    ///     let handle = supervisor.spawn_service(failing).unwrap();
    ///     tokio::time::sleep(Duration::from_millis(1)).await;
    ///     handle.snapshot().current_backoff
    /// }
    ///
    /// assert!(first_restart_delay(7).await.is_some());
    /// assert_eq!(first_restart_delay(7).await, first_restart_delay(7).await);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// Adds a metrics sink; every sink receives every event. The built-in
    /// counters behind [`Supervisor::metrics`](crate::Supervisor::metrics) are
    /// always kept.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use supervisor_core::{service_fn, ServiceContext, Supervisor, SupervisorConfig, SupervisorMetrics};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // Any `MetricsSink` works; `SupervisorMetrics` is one.
    /// let sink = Arc::new(SupervisorMetrics::new());
    /// let config = SupervisorConfig::default()
    ///     .without_signal_handler()
    ///     .with_metrics_sink(sink.clone());
    /// let supervisor = Supervisor::new(config);
    /// supervisor.spawn_service(service_fn("once", |_ctx: ServiceContext| async { anyhow::Ok(()) }))?;
    /// supervisor.wait_for_drain().await;
    /// assert_eq!(sink.snapshot().spawned_total, 1);
    /// assert_eq!(sink.snapshot().terminated_total, 1);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_metrics_sink<S: MetricsSink>(mut self, sink: Arc<S>) -> Self {
        self.sinks.push(erase(sink));
        self
    }

    /// How many deliveries a [subscriber](crate::Supervisor::subscribe) may
    /// fall behind before it misses the oldest ones (default 1024, at least
    /// 1). A delivery carries the events one service produced since its
    /// previous one (a restart cycle's three transitions travel together), so
    /// the channel keeps at least this many events. It is allocated at the
    /// first subscription.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::SupervisorConfig;
    ///
    /// let config = SupervisorConfig::default().with_event_capacity(64);
    /// assert_eq!(config.event_capacity(), 64);
    /// ```
    #[must_use]
    pub fn with_event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// How the services restart together: OTP's restart strategy (default
    /// [`Strategy::OneForOne`]: each service alone). See [`Strategy`].
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{Strategy, SupervisorConfig};
    ///
    /// let config = SupervisorConfig::default().with_strategy(Strategy::RestForOne);
    /// assert_eq!(config.strategy(), Strategy::RestForOne);
    /// assert_eq!(SupervisorConfig::default().strategy(), Strategy::OneForOne);
    /// ```
    #[must_use]
    pub fn with_strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// How many restarts the supervisor tolerates within a period before it
    /// gives up: OTP's `intensity` and `period` supervisor flags. By
    /// default there is no limit.
    ///
    /// # What is charged
    ///
    /// One charge per restart the policies make, at the moment it is
    /// decided (when the run ended, before its backoff and before anything
    /// starts): under [`Strategy::OneForOne`] each service's restart,
    /// under `OneForAll` and `RestForOne` each cycle of the group (one
    /// charge, however many services it restarts). Never charged: a
    /// `OnFailure` service's clean exit, a `Never` service's exit (neither is
    /// a restart), a host [`restart`](crate::ServiceHandle::restart), and
    /// the end of a service whose circuit breaker opened. The window slides
    /// and its bound is inclusive: `max_restarts` restarts are tolerated
    /// within any `period` (a restart exactly `period` ago still counts), the
    /// next one trips, and `max_restarts = 0` trips on the first. Unlike OTP,
    /// times are exact durations, not whole seconds.
    ///
    /// # When it trips
    ///
    /// The restart is not made: the service that called for it terminates
    /// `Cancelled` (its failure recorded), every other service is stopped
    /// one at a time in reverse start order (each within its own stop
    /// timeout), and the supervisor shuts down with
    /// [`ShutdownCause::IntensityExceeded`](crate::ShutdownCause::IntensityExceeded),
    /// so [`run_until_shutdown`](crate::Supervisor::run_until_shutdown)
    /// returns [`ShutdownError::IntensityExceeded`](crate::ShutdownError::IntensityExceeded)
    /// and `main` exits non-zero for systemd or Kubernetes to restart the
    /// process.
    ///
    /// # With backoff and circuit breakers
    ///
    /// Each service's backoff still delays its restarts (OTP restarts at
    /// once), so a crash loop makes fewer restarts per period than in OTP:
    /// pick `period` with the backoff delays in mind. The intensity counts the
    /// whole supervisor's restarts; each service's circuit breaker still
    /// gives up on that service alone (it terminates `CircuitBreakerOpen`,
    /// which is not a restart and not charged). Whichever limit is reached
    /// first acts.
    ///
    /// # Why no limit by default
    ///
    /// OTP's default, [`RestartIntensity::OTP_DEFAULT`] (1 restart in 5 s),
    /// would shut down a supervisor at the second failure within 5 s, where
    /// every existing program relies on backoff and circuit breakers to
    /// ride out a flapping dependency. So the limit is opt-in.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::{
    ///     service_fn, BackoffConfig, RestartIntensity, ServiceContext, ShutdownError, Supervisor,
    ///     SupervisorConfig,
    /// };
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let config = SupervisorConfig::default()
    ///     .without_signal_handler()
    ///     .with_default_backoff(BackoffConfig::new(Duration::from_millis(100), Duration::from_secs(1)))
    ///     .with_restart_intensity(RestartIntensity::new(3, Duration::from_secs(10)));
    /// assert_eq!(config.restart_intensity(), Some(RestartIntensity::new(3, Duration::from_secs(10))));
    /// let supervisor = Supervisor::new(config);
    /// supervisor
    ///     .spawn_service(service_fn("db", |_ctx: ServiceContext| async { anyhow::bail!("refused") }))
    ///     .unwrap();
    ///
    /// // Three restarts are tolerated; the fourth failure shuts everything down.
    /// match supervisor.run_until_shutdown().await {
    ///     Err(ShutdownError::IntensityExceeded { service, max_restarts, .. }) => {
    ///         assert_eq!((service.as_str(), max_restarts), ("db", 3));
    ///     }
    ///     other => panic!("unexpected: {other:?}"),
    /// }
    /// assert_eq!(supervisor.service_lifecycle("db").unwrap().start_count, 4);
    /// # }
    /// ```
    #[must_use]
    pub fn with_restart_intensity(mut self, intensity: RestartIntensity) -> Self {
        self.restart_intensity = Some(intensity);
        self
    }

    /// The restart intensity, if one was set.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{RestartIntensity, SupervisorConfig};
    ///
    /// assert_eq!(SupervisorConfig::default().restart_intensity(), None);
    /// let config = SupervisorConfig::default().with_restart_intensity(RestartIntensity::OTP_DEFAULT);
    /// assert_eq!(config.restart_intensity(), Some(RestartIntensity::OTP_DEFAULT));
    /// ```
    #[must_use]
    pub fn restart_intensity(&self) -> Option<RestartIntensity> {
        self.restart_intensity
    }

    /// The restart strategy.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{Strategy, SupervisorConfig};
    ///
    /// assert_eq!(SupervisorConfig::default().strategy(), Strategy::OneForOne);
    /// ```
    #[must_use]
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The event channel's capacity.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::SupervisorConfig;
    ///
    /// assert_eq!(SupervisorConfig::default().event_capacity(), 1024);
    /// ```
    #[must_use]
    pub fn event_capacity(&self) -> usize {
        self.event_capacity
    }

    /// The default backoff.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{BackoffConfig, SupervisorConfig};
    ///
    /// assert_eq!(SupervisorConfig::default().default_backoff(), BackoffConfig::default());
    /// ```
    pub fn default_backoff(&self) -> BackoffConfig {
        self.default_backoff
    }

    /// The shutdown timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::SupervisorConfig;
    ///
    /// assert_eq!(SupervisorConfig::default().shutdown_timeout(), Duration::from_secs(30));
    /// ```
    #[must_use]
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }

    /// Whether `run_until_shutdown` listens for signals.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::SupervisorConfig;
    ///
    /// assert!(SupervisorConfig::default().installs_signal_handler());
    /// assert!(!SupervisorConfig::default().without_signal_handler().installs_signal_handler());
    /// ```
    #[must_use]
    pub fn installs_signal_handler(&self) -> bool {
        self.install_signal_handler
    }

    /// The delay before a clean `Always` restart.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::SupervisorConfig;
    ///
    /// assert_eq!(SupervisorConfig::default().clean_restart_delay(), Duration::from_millis(100));
    /// ```
    #[must_use]
    pub fn clean_restart_delay(&self) -> Duration {
        self.clean_restart_delay
    }

    /// Do not let a service shut the supervisor down with a
    /// [`TerminateTree`](crate::TerminateTree) error: such an error is then a
    /// [`DoNotRestart`](crate::DoNotRestart) for that service only (it
    /// terminates with
    /// [`TerminationReason::DoNotRestart`](crate::TerminationReason::DoNotRestart),
    /// and the others keep running).
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{
    ///     service_fn, ServiceContext, Supervisor, SupervisorConfig, TerminateTree,
    ///     TerminationReason,
    /// };
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = SupervisorConfig::default()
    ///     .without_signal_handler()
    ///     .ignore_terminate_tree();
    /// assert!(!config.honours_terminate_tree());
    /// let supervisor = Supervisor::new(config);
    /// let plugin = supervisor.spawn_service(service_fn("plugin", |_ctx: ServiceContext| async {
    ///     Err(TerminateTree::new("stop everything"))
    /// }))?;
    ///
    /// let snapshot = plugin.wait_terminated().await;
    /// assert_eq!(
    ///     snapshot.termination_reason,
    ///     Some(TerminationReason::DoNotRestart("stop everything".into()))
    /// );
    /// assert!(!supervisor.is_shutting_down());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn ignore_terminate_tree(mut self) -> Self {
        self.ignore_terminate_tree = true;
        self
    }

    /// Whether a [`TerminateTree`](crate::TerminateTree) error shuts the
    /// supervisor down (the default), or is a do-not-restart for its service
    /// only ([`ignore_terminate_tree`](Self::ignore_terminate_tree)).
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::SupervisorConfig;
    ///
    /// assert!(SupervisorConfig::default().honours_terminate_tree());
    /// assert!(!SupervisorConfig::default().ignore_terminate_tree().honours_terminate_tree());
    /// ```
    #[must_use]
    pub fn honours_terminate_tree(&self) -> bool {
        !self.ignore_terminate_tree
    }
}

impl fmt::Debug for SupervisorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorConfig")
            .field("default_backoff", &self.default_backoff)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("install_signal_handler", &self.install_signal_handler)
            .field("clean_restart_delay", &self.clean_restart_delay)
            .field("jitter_seed", &self.jitter_seed)
            .field("sinks", &self.sinks.len())
            .field("event_capacity", &self.event_capacity)
            .field("strategy", &self.strategy)
            .field("restart_intensity", &self.restart_intensity)
            .field("ignore_terminate_tree", &self.ignore_terminate_tree)
            .finish()
    }
}

/// How the services of one supervisor restart together: OTP's restart
/// strategy.
///
/// A service's own [`RestartPolicy`](crate::RestartPolicy) still decides
/// *whether* its exit calls for a restart (`Always` is OTP's permanent child,
/// `OnFailure` transient, `Never` temporary); the strategy decides *what*
/// restarts with it. Start order is spawn order: a service removed and
/// spawned again goes to the end. A first start follows its spawn at once:
/// unlike OTP's `start_child`, a spawn does not wait for the service before
/// it to run; [`after`](crate::SpawnOptions::after) orders first starts by
/// readiness where that matters.
///
/// Under `OneForAll` and `RestForOne`, when a service's run ends and its
/// policy would restart it, a group restart (a *cycle*) begins:
///
/// 1. the other services of its group are stopped one at a time, newest
///    first (reverse start order), each asked through its context and
///    dropped at its own [stop timeout](crate::SpawnOptions::stop_timeout),
///    as a host stop does; a stop at the timeout counts as a
///    [`Timeout`](crate::FailureKind::Timeout) failure, like a host restart;
/// 2. the cycle waits until the failed service's own backoff delay (its
///    [`BackoffConfig`](crate::BackoffConfig)) has passed since its run
///    ended (a departure from OTP, which restarts at once);
/// 3. the group is started again in start order, the failed service in its
///    place, each once the previous one is running, and ready if it
///    [signals readiness](crate::SpawnOptions::signals_readiness) (a service
///    whose dependencies are not ready when its turn comes is let go without
///    waiting: it starts when they are).
///
/// No service of the group runs from the moment the others are stopped
/// until the group starts again, and a run never overlaps the previous run
/// of the same service. Cycles happen one at a time: a service that fails
/// while a cycle holds it is restarted by that cycle. A service that
/// signals readiness but stays up without ever being ready holds up the
/// rest of its cycle, and the cycles after it, as a hanging `init` does in
/// OTP; a service spawned during a cycle is not part of it.
///
/// | in the group, when a cycle comes | it is |
/// |---|---|
/// | `Always` or `OnFailure`, alive | stopped, then started again |
/// | `Never` (OTP's temporary child), alive | stopped for good: terminates `Cancelled` (forgotten if [temporary](crate::SpawnOptions::temporary)) |
/// | terminated (stopped by the host, completed, failed for good) | left alone: not started again |
///
/// What never sets a cycle off: a `OnFailure` service's clean exit
/// (`Completed`), a `Never` service's exit, a circuit breaker that opens
/// (the service terminates `CircuitBreakerOpen` for good, alone; a
/// [critical](crate::SpawnOptions::critical) one shuts the supervisor down
/// as before), a host [`restart`](crate::ServiceHandle::restart) (only that
/// service restarts; if a cycle holds it, the cycle's start is its restart),
/// and a host [`stop`](crate::ServiceHandle::stop) (final: a cycle does not
/// start a stopped service). Once shutdown begins nothing restarts: held
/// services terminate `Cancelled`, in the drain's order.
///
/// The shutdown follows the strategy too. Under `OneForAll` and
/// `RestForOne` it stops the services one at a time, newest first, each
/// within its stop timeout (as OTP's supervisor terminates its children),
/// so a drain takes as long as the stops it waits for, added up. Under
/// `OneForOne` independent services stop all at once (dependants before
/// what they depend on): a departure from OTP, for a large flat fleet's
/// drain.
///
/// Unlike OTP, a terminated service is not started again by a `OneForAll`
/// cycle (OTP restarts a transient child that exited normally, and a child
/// stopped with `terminate_child`): here a terminated service has no task
/// left; spawning its name again brings it back.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor_core::{
///     service_fn, BackoffConfig, ServiceContext, Strategy, Supervisor, SupervisorConfig,
/// };
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = SupervisorConfig::default()
///     .without_signal_handler()
///     .with_default_backoff(BackoffConfig::new(Duration::from_millis(100), Duration::from_secs(1)))
///     .with_strategy(Strategy::OneForAll);
/// let supervisor = Supervisor::new(config);
/// let idle = |name: &'static str| service_fn(name, |ctx: ServiceContext| async move {
///     ctx.cancelled().await;
///     anyhow::Ok(())
/// });
/// let db = supervisor.spawn_service(idle("db"))?;
/// let cache = supervisor.spawn_service(idle("cache"))?;
/// tokio::time::sleep(Duration::from_secs(1)).await;
///
/// // A restart of `db` by the host restarts `db` alone.
/// db.restart().await?;
/// assert_eq!(cache.snapshot().start_count, 1);
///
/// // `db` fails: `cache` stops, then both start again.
/// let api = supervisor.spawn_service(service_fn("api", |_ctx: ServiceContext| async {
///     tokio::time::sleep(Duration::from_secs(1)).await;
///     anyhow::bail!("lost the connection")
/// }))?;
/// tokio::time::sleep(Duration::from_millis(1500)).await;
/// assert_eq!(db.snapshot().start_count, 3);
/// assert_eq!(cache.snapshot().start_count, 2);
/// assert_eq!(api.snapshot().start_count, 2);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum Strategy {
    /// Each service restarts alone (the default, and what a supervisor
    /// always did).
    #[default]
    OneForOne,
    /// When one service calls for a restart, every other service is stopped,
    /// then all are started again.
    OneForAll,
    /// When one service calls for a restart, the services started after it
    /// are stopped, then it and they are started again.
    RestForOne,
}

/// How long a service asked to stop may take before its run is dropped:
/// OTP's child `shutdown` spec.
///
/// A [`Duration`] converts into [`StopTimeout::After`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor_core::{SpawnOptions, StopTimeout};
///
/// assert_eq!(StopTimeout::from(Duration::from_secs(5)), StopTimeout::After(Duration::from_secs(5)));
/// let options = SpawnOptions::default().stop_timeout(Duration::from_secs(5));
/// let brutal = SpawnOptions::default().stop_timeout(StopTimeout::Immediate);
/// # let _ = (options, brutal);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum StopTimeout {
    /// The run is dropped at once, without being asked to stop first (OTP's
    /// `brutal_kill`). Being configured, this is not a failure: the service
    /// ends [`Stopped`](crate::TerminationReason::Stopped) (or
    /// [`Cancelled`](crate::TerminationReason::Cancelled) at shutdown).
    Immediate,
    /// The run's context is cancelled, and the run dropped if it has not
    /// returned after this long (a [`Timeout`](crate::FailureKind::Timeout)
    /// failure).
    After(Duration),
    /// The run's context is cancelled, and the supervisor waits for it as long
    /// as it takes (OTP's `infinity`, for services that must finish what they
    /// started). A shutdown waits too: the process manager's own deadline
    /// (systemd's `TimeoutStopSec`, Kubernetes' grace period) is then the only
    /// limit.
    Infinity,
}

impl From<Duration> for StopTimeout {
    fn from(timeout: Duration) -> Self {
        StopTimeout::After(timeout)
    }
}

impl StopTimeout {
    /// The duration, if this is a finite timeout ([`Immediate`](Self::Immediate)
    /// is zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::StopTimeout;
    ///
    /// assert_eq!(StopTimeout::Immediate.duration(), Some(Duration::ZERO));
    /// assert_eq!(StopTimeout::Infinity.duration(), None);
    /// ```
    #[must_use]
    pub fn duration(self) -> Option<Duration> {
        match self {
            StopTimeout::Immediate => Some(Duration::ZERO),
            StopTimeout::After(timeout) => Some(timeout),
            StopTimeout::Infinity => None,
        }
    }
}

/// One service's settings (OTP's child spec), for
/// [`Supervisor::spawn_service_with_options`](crate::Supervisor::spawn_service_with_options):
/// a plain builder, where anything not set takes the supervisor's default.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor_core::{BackoffConfig, RestartPolicy, SpawnOptions};
///
/// let options = SpawnOptions::with_backoff(BackoffConfig::new(
///     Duration::from_millis(10),
///     Duration::from_secs(1),
/// ))
/// .restart_policy(RestartPolicy::OnFailure)
/// .stop_timeout(Duration::from_secs(5))
/// .after(["db", "cache"])
/// .signals_readiness()
/// .heartbeat(Duration::from_secs(10));
/// assert!(options.backoff.is_some());
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SpawnOptions {
    /// This service's backoff, instead of the supervisor's default.
    pub backoff: Option<BackoffConfig>,
    pub(crate) restart_policy: Option<RestartPolicy>,
    pub(crate) stop_timeout: Option<StopTimeout>,
    pub(crate) after: Vec<Arc<str>>,
    pub(crate) signals_readiness: bool,
    pub(crate) temporary: bool,
    pub(crate) critical: bool,
    pub(crate) heartbeat: Option<Duration>,
}

impl SpawnOptions {
    /// Options with this service's own backoff.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::{BackoffConfig, SpawnOptions};
    ///
    /// let backoff = BackoffConfig::new(Duration::from_millis(10), Duration::from_secs(1));
    /// assert_eq!(SpawnOptions::with_backoff(backoff).backoff, Some(backoff));
    /// // Without it, the supervisor's default backoff is used.
    /// assert_eq!(SpawnOptions::default().backoff, None);
    /// ```
    #[must_use]
    pub fn with_backoff(backoff: BackoffConfig) -> Self {
        Self::default().backoff(backoff)
    }

    /// This service's backoff, instead of the supervisor's default. It is
    /// validated at spawn ([`SpawnError::InvalidBackoff`](crate::SpawnError::InvalidBackoff)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::{BackoffConfig, SpawnOptions};
    ///
    /// let backoff = BackoffConfig::new(Duration::from_millis(10), Duration::from_secs(1));
    /// assert_eq!(SpawnOptions::default().backoff(backoff).backoff, Some(backoff));
    /// ```
    #[must_use]
    pub fn backoff(mut self, backoff: BackoffConfig) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// The restart policy, instead of the one the service declares
    /// ([`Service::restart_policy`](crate::Service::restart_policy)).
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{service_fn, RestartPolicy, ServiceContext, SpawnOptions, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let once = service_fn("once", |_ctx: ServiceContext| async { anyhow::Ok(()) }); // Always by default.
    /// let options = SpawnOptions::default().restart_policy(RestartPolicy::Never);
    /// let handle = supervisor.spawn_service_with_options(once, options)?;
    /// let snapshot = handle.wait_terminated().await;
    /// assert_eq!(snapshot.start_count, 1);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn restart_policy(mut self, policy: RestartPolicy) -> Self {
        self.restart_policy = Some(policy);
        self
    }

    /// How long a run asked to stop (by shutdown, a stop, a restart or a
    /// removal) may take before it is dropped; the supervisor's
    /// [shutdown timeout](SupervisorConfig::with_shutdown_timeout) by default.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::{service_fn, ServiceContext, SpawnOptions, Supervisor, SupervisorConfig, TerminationReason};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let stubborn = service_fn("stubborn", |_ctx: ServiceContext| std::future::pending::<anyhow::Result<()>>());
    /// let options = SpawnOptions::default().stop_timeout(Duration::from_secs(2));
    /// let handle = supervisor.spawn_service_with_options(stubborn, options)?;
    /// tokio::time::sleep(Duration::from_secs(1)).await;
    ///
    /// let snapshot = handle.stop().await?;
    /// assert_eq!(
    ///     snapshot.termination_reason,
    ///     Some(TerminationReason::StopTimeout { timeout: Duration::from_secs(2) })
    /// );
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn stop_timeout(mut self, timeout: impl Into<StopTimeout>) -> Self {
        self.stop_timeout = Some(timeout.into());
        self
    }

    /// Services this one depends on: it starts (and restarts) only once each
    /// of them is ready, it stops at shutdown before them, and it is stopped
    /// ([`DependencyStopped`](crate::TerminationReason::DependencyStopped))
    /// when one of them terminates. They must be registered when this one is
    /// spawned. Calls add up.
    ///
    /// A dependency that restarts does not restart its dependants: they keep
    /// running, and the next start of one of them waits for the dependency
    /// to be ready again.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{service_fn, ServiceContext, SpawnError, SpawnOptions, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let idle = |name: &'static str| service_fn(name, |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// });
    /// supervisor.spawn_service(idle("db"))?;
    /// supervisor.spawn_service_with_options(idle("api"), SpawnOptions::default().after(["db"]))?;
    ///
    /// let unknown = supervisor.spawn_service_with_options(idle("web"), SpawnOptions::default().after(["cache"]));
    /// assert!(matches!(unknown, Err(SpawnError::UnknownDependency { .. })));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn after<I>(mut self, dependencies: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Arc<str>>,
    {
        self.after.extend(dependencies.into_iter().map(Into::into));
        self
    }

    /// The service says itself when it is ready, with
    /// [`ServiceContext::ready`](crate::ServiceContext::ready) (systemd's
    /// `Type=notify`). Without this, each run is ready as soon as it starts.
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
    ///     tokio::time::sleep(Duration::from_secs(3)).await; // Warming up.
    ///     ctx.ready();
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// });
    /// let handle = supervisor.spawn_service_with_options(db, SpawnOptions::default().signals_readiness())?;
    /// tokio::time::sleep(Duration::from_secs(1)).await;
    /// assert!(!handle.snapshot().ready);
    /// supervisor.wait_ready().await?;
    /// assert!(handle.snapshot().ready);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn signals_readiness(mut self) -> Self {
        self.signals_readiness = true;
        self
    }

    /// Forget the service as soon as it terminates (OTP's temporary child, a
    /// job): its registry entry, its metric series and its memory go, and its
    /// name can be spawned again. For processes that spawn `job-{id}` for
    /// ever.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{service_fn, RestartPolicy, ServiceContext, SpawnOptions, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let job = service_fn("job-1", |_ctx: ServiceContext| async { anyhow::Ok(()) });
    /// let options = SpawnOptions::default().restart_policy(RestartPolicy::Never).temporary();
    /// let handle = supervisor.spawn_service_with_options(job, options)?;
    /// handle.wait_terminated().await;
    /// assert_eq!(supervisor.service_count(), 0);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn temporary(mut self) -> Self {
        self.temporary = true;
        self
    }

    /// The process cannot do without this service (OTP's significant child
    /// with `auto_shutdown`): when it *fails* for good (circuit breaker open,
    /// `Unrecoverable`, `Panicked`, or stopped because a dependency failed),
    /// the supervisor shuts everything down and
    /// [`run_until_shutdown`](crate::Supervisor::run_until_shutdown) returns
    /// [`ShutdownError::CriticalFailed`](crate::ShutdownError::CriticalFailed),
    /// so `main` exits non-zero and systemd or Kubernetes restarts the
    /// process. When it *completes* and its policy does not restart it, the
    /// supervisor shuts down too, and `run_until_shutdown` returns `Ok` with
    /// a report naming it (a job's exit 0). A stop or removal asked for by
    /// the host triggers neither.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{
    ///     service_fn, RestartPolicy, ServiceContext, ShutdownCause, SpawnOptions, Supervisor,
    ///     SupervisorConfig,
    /// };
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let migrate = service_fn("migrate", |_ctx: ServiceContext| async { anyhow::Ok(()) });
    /// let options = SpawnOptions::default().restart_policy(RestartPolicy::OnFailure).critical();
    /// supervisor.spawn_service_with_options(migrate, options)?;
    ///
    /// let report = supervisor.run_until_shutdown().await?;
    /// assert_eq!(report.cause, Some(ShutdownCause::CriticalCompleted { service: "migrate".into() }));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn critical(mut self) -> Self {
        self.critical = true;
        self
    }

    /// The service must send heartbeats (a watchdog, systemd's
    /// `WatchdogSec`): while it runs, it calls
    /// [`ServiceContext::heartbeat`](crate::ServiceContext::heartbeat) at
    /// least once per `interval`, or its run is taken as hung.
    ///
    /// The first deadline is `interval` after the run starts (each run, not
    /// the spawn, and not readiness). When a deadline passes, the supervisor
    /// checks whether the run beat since the previous check: if it did, the
    /// next deadline is `interval` after this check; if it did not, the run
    /// is hung. So a run that beats at least once per `interval` is never
    /// taken as hung, and one that stops beating is found within two
    /// intervals of its last beat.
    ///
    /// A hung run fails with [`FailureKind::Hung`](crate::FailureKind::Hung)
    /// ("no heartbeat within …"): it is asked to stop as a stop would (its
    /// context is cancelled; the service goes `Stopping`), dropped if it has
    /// not returned by its [stop timeout](Self::stop_timeout), and then its
    /// restart policy decides as after any failed run (backoff and circuit
    /// breaker, or `Unrecoverable` under
    /// [`RestartPolicy::Never`](crate::RestartPolicy::Never)). A stop, a
    /// restart or the shutdown asked for while a hung run is being stopped
    /// wins, as it would over any failure. A zero interval is refused at
    /// spawn ([`SpawnError::InvalidHeartbeat`](crate::SpawnError::InvalidHeartbeat)).
    ///
    /// Services spawned without it pay nothing: no timer, no check.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::{service_fn, FailureKind, ServiceContext, SpawnOptions, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let worker = service_fn("worker", |ctx: ServiceContext| async move {
    ///     loop {
    ///         tokio::select! {
    ///             _ = ctx.cancelled() => return anyhow::Ok(()),
    ///             _ = tokio::time::sleep(Duration::from_secs(1)) => ctx.heartbeat(),
    ///         }
    ///     }
    /// });
    /// let stuck = service_fn("stuck", |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await; // Never beats.
    ///     anyhow::Ok(())
    /// });
    /// let options = SpawnOptions::default().heartbeat(Duration::from_secs(2));
    /// let worker = supervisor.spawn_service_with_options(worker, options.clone())?;
    /// let stuck = supervisor.spawn_service_with_options(stuck, options)?;
    ///
    /// tokio::time::sleep(Duration::from_secs(3)).await;
    /// assert_eq!(worker.snapshot().failures.total(), 0);
    /// let snapshot = stuck.snapshot();
    /// assert_eq!(snapshot.failures.get(FailureKind::Hung), 1);
    /// assert_eq!(snapshot.last_error.as_deref(), Some("no heartbeat within 2s"));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = Some(interval);
        self
    }
}
