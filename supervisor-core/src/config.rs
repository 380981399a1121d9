//! Supervisor-wide and per-service configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backoff::BackoffConfig;
use supervisor_metrics::MetricsSink;

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
            .finish()
    }
}

/// Per-service options for
/// [`Supervisor::spawn_service_with_options`](crate::Supervisor::spawn_service_with_options).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor_core::{BackoffConfig, SpawnOptions};
///
/// let options = SpawnOptions::with_backoff(BackoffConfig::new(
///     Duration::from_millis(10),
///     Duration::from_secs(1),
/// ));
/// assert!(options.backoff.is_some());
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SpawnOptions {
    /// This service's backoff, instead of the supervisor's default.
    pub backoff: Option<BackoffConfig>,
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
        Self {
            backoff: Some(backoff),
        }
    }
}
