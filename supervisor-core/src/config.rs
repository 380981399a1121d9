//! Supervisor-wide and per-service configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backoff::BackoffConfig;
use supervisor_metrics::MetricsSink;

/// How long a service that exited cleanly under [`RestartPolicy::Always`]
/// waits before it is started again, unless configured otherwise.
///
/// [`RestartPolicy::Always`]: crate::RestartPolicy::Always
pub const DEFAULT_CLEAN_RESTART_DELAY: Duration = Duration::from_millis(100);

/// How long [`Supervisor::wait_for_drain`](crate::Supervisor::wait_for_drain)
/// waits for services after shutdown starts, unless configured otherwise.
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
    pub(crate) sinks: Vec<Arc<dyn MetricsSink>>,
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
    #[must_use]
    pub fn with_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// The backoff of services spawned without their own
    /// ([`SpawnOptions::with_backoff`]). It is validated at each spawn.
    #[must_use]
    pub fn with_default_backoff(mut self, backoff: BackoffConfig) -> Self {
        self.default_backoff = backoff;
        self
    }

    /// Do not listen for SIGTERM / Ctrl-C in
    /// [`run_until_shutdown`](crate::Supervisor::run_until_shutdown): the host
    /// drives shutdown with [`trigger_shutdown`](crate::Supervisor::trigger_shutdown).
    #[must_use]
    pub fn without_signal_handler(mut self) -> Self {
        self.install_signal_handler = false;
        self
    }

    /// The delay before an [`Always`](crate::RestartPolicy::Always) service
    /// that exited cleanly is started again (default 100 ms).
    #[must_use]
    pub fn with_clean_restart_delay(mut self, delay: Duration) -> Self {
        self.clean_restart_delay = delay;
        self
    }

    /// Seeds the jitter of every service's backoff, for reproducible delays
    /// (each service still gets its own stream). By default the seed is random.
    #[must_use]
    pub fn with_jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// Adds a metrics sink; every sink receives every event. The built-in
    /// counters behind [`Supervisor::metrics`](crate::Supervisor::metrics) are
    /// always kept.
    #[must_use]
    pub fn with_metrics_sink(mut self, sink: Arc<dyn MetricsSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// The default backoff.
    pub fn default_backoff(&self) -> BackoffConfig {
        self.default_backoff
    }

    /// The shutdown timeout.
    #[must_use]
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }

    /// Whether `run_until_shutdown` listens for signals.
    #[must_use]
    pub fn installs_signal_handler(&self) -> bool {
        self.install_signal_handler
    }

    /// The delay before a clean `Always` restart.
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
    #[must_use]
    pub fn with_backoff(backoff: BackoffConfig) -> Self {
        Self {
            backoff: Some(backoff),
        }
    }
}
