//! What a supervised service is: the [`Service`] trait, its [`RestartPolicy`]
//! and [`service_fn`].

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::ServiceContext;

/// The error type every service error is converted into: the same bound as
/// tower's `BoxError`.
///
/// # Examples
///
/// ```
/// use supervisor_core::BoxError;
///
/// let error: BoxError = std::io::Error::other("disk full").into();
/// assert_eq!(error.to_string(), "disk full");
/// let error: BoxError = anyhow::anyhow!("no route to host").into();
/// assert_eq!(error.to_string(), "no route to host");
/// ```
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// A long-running asynchronous service the [`Supervisor`](crate::Supervisor)
/// starts, watches and restarts.
///
/// `run` is called once per start; the supervisor calls it again after a
/// failure or a clean exit, as the [`RestartPolicy`] says. It should run until
/// its work is done or [`ServiceContext::cancelled`] completes, then clean up
/// and return. The supervisor never drops a running `run` future before the
/// stop timeout: cancellation is cooperative.
///
/// A panic anywhere in the service's code is a failure like an `Err`: in
/// `run` before it returns its future, while the future is polled or
/// dropped, and in the error's `Display` or `source` while it is formatted.
///
/// The error type is anything that converts into a boxed error, so both
/// `anyhow::Error` and a hand-written error enum work; the supervisor records
/// the error with its whole [`source`](StdError::source) chain.
///
/// # Examples
///
/// ```
/// use supervisor_core::{RestartPolicy, Service, ServiceContext};
///
/// struct Poller;
///
/// impl Service for Poller {
///     type Error = std::io::Error;
///
///     fn name(&self) -> &str {
///         "poller"
///     }
///
///     fn restart_policy(&self) -> RestartPolicy {
///         RestartPolicy::Always
///     }
///
///     async fn run(&self, ctx: ServiceContext) -> Result<(), Self::Error> {
///         ctx.cancelled().await;
///         Ok(())
///     }
/// }
/// ```
pub trait Service: Send + Sync + 'static {
    /// The error a run can fail with.
    type Error: Into<BoxError>;

    /// The service's name, unique among the live services of a supervisor,
    /// without a `/` (the separator of nested paths: a service of a nested
    /// supervisor is registered under its node's path, `db/pool`).
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{service_fn, Service, ServiceContext, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let feed = service_fn("feed", |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// });
    /// assert_eq!(feed.name(), "feed");
    ///
    /// // The name is the key the supervisor registers the service under.
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// supervisor.spawn_service(feed)?;
    /// assert!(supervisor.service_lifecycle("feed").is_some());
    /// # Ok(())
    /// # }
    /// ```
    fn name(&self) -> &str;

    /// When the supervisor restarts this service. Defaults to
    /// [`RestartPolicy::OnFailure`].
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{RestartPolicy, Service, ServiceContext};
    ///
    /// struct Migrate;
    ///
    /// impl Service for Migrate {
    ///     type Error = std::io::Error;
    ///     fn name(&self) -> &str {
    ///         "migrate"
    ///     }
    ///     async fn run(&self, _ctx: ServiceContext) -> Result<(), Self::Error> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// assert_eq!(Migrate.restart_policy(), RestartPolicy::OnFailure);
    /// ```
    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::OnFailure
    }

    /// One run of the service. Futures do nothing unless polled.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{RestartPolicy, Service, ServiceContext, Supervisor, SupervisorConfig};
    ///
    /// struct Migrate;
    ///
    /// impl Service for Migrate {
    ///     type Error = std::io::Error;
    /// #     fn name(&self) -> &str {
    /// #         "migrate"
    /// #     }
    /// #     fn restart_policy(&self) -> RestartPolicy {
    /// #         RestartPolicy::Never
    /// #     }
    ///     async fn run(&self, _ctx: ServiceContext) -> Result<(), Self::Error> {
    ///         Err(std::io::Error::other("disk full"))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let handle = supervisor.spawn_service(Migrate)?;
    /// supervisor.wait_for_drain().await;
    /// assert_eq!(handle.snapshot().last_error.as_deref(), Some("disk full"));
    /// # Ok(())
    /// # }
    /// ```
    fn run(&self, ctx: ServiceContext) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// When a service is restarted after `run` returns.
///
/// | run ended with | `Always` | `OnFailure` | `Never` |
/// |---|---|---|---|
/// | `Ok(())` | restart after a short fixed delay, backoff reset | terminate `Completed` | terminate `Completed` |
/// | `Err(_)` or panic | restart after backoff | restart after backoff | terminate `Unrecoverable` / `Panicked` |
/// | cancellation | terminate `Cancelled` | terminate `Cancelled` | terminate `Cancelled` |
///
/// # Examples
///
/// ```
/// use supervisor_core::RestartPolicy;
///
/// assert_eq!(RestartPolicy::default(), RestartPolicy::OnFailure);
/// assert_eq!(RestartPolicy::Always.to_string(), "always");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum RestartPolicy {
    /// Restart after every exit, clean or not.
    Always,
    /// Restart only after a failure (an error or a panic).
    #[default]
    OnFailure,
    /// Never restart.
    Never,
}

impl RestartPolicy {
    /// A stable lowercase label.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::RestartPolicy;
    ///
    /// assert_eq!(RestartPolicy::OnFailure.as_str(), "on_failure");
    /// assert_eq!(RestartPolicy::Never.as_str(), "never");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on_failure",
            RestartPolicy::Never => "never",
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A [`Service`] made from a name and a closure; see [`service_fn`].
///
/// # Examples
///
/// ```
/// use supervisor_core::{service_fn, RestartPolicy, Service, ServiceContext, ServiceFn};
///
/// let feed: ServiceFn<_> = service_fn("feed", |ctx: ServiceContext| async move {
///     ctx.cancelled().await;
///     anyhow::Ok(())
/// });
/// assert_eq!(feed.restart_policy(), RestartPolicy::OnFailure);
/// assert_eq!(format!("{feed:?}"), r#"ServiceFn { name: "feed", policy: OnFailure, .. }"#);
/// ```
pub struct ServiceFn<F> {
    name: Arc<str>,
    policy: RestartPolicy,
    f: F,
}

/// Makes a [`Service`] from a closure called once per run.
///
/// The policy defaults to [`RestartPolicy::OnFailure`]; change it with
/// [`ServiceFn::with_restart_policy`].
///
/// # Examples
///
/// ```
/// use supervisor_core::{service_fn, RestartPolicy, Service, ServiceContext};
///
/// let svc = service_fn("heartbeat", |ctx: ServiceContext| async move {
///     ctx.cancelled().await;
///     anyhow::Ok(())
/// })
/// .with_restart_policy(RestartPolicy::Always);
/// assert_eq!(svc.name(), "heartbeat");
/// assert_eq!(svc.restart_policy(), RestartPolicy::Always);
/// ```
pub fn service_fn<F, Fut, E>(name: impl Into<Arc<str>>, f: F) -> ServiceFn<F>
where
    F: Fn(ServiceContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Into<BoxError>,
{
    ServiceFn {
        name: name.into(),
        policy: RestartPolicy::default(),
        f,
    }
}

impl<F> ServiceFn<F> {
    /// Sets the restart policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{service_fn, RestartPolicy, Service, ServiceContext};
    ///
    /// let job = service_fn("job", |_ctx: ServiceContext| async { anyhow::Ok(()) })
    ///     .with_restart_policy(RestartPolicy::Never);
    /// assert_eq!(job.restart_policy(), RestartPolicy::Never);
    /// ```
    #[must_use]
    pub fn with_restart_policy(mut self, policy: RestartPolicy) -> Self {
        self.policy = policy;
        self
    }
}

impl<F> fmt::Debug for ServiceFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceFn")
            .field("name", &self.name)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<F, Fut, E> Service for ServiceFn<F>
where
    F: Fn(ServiceContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Into<BoxError>,
{
    type Error = E;

    fn name(&self) -> &str {
        &self.name
    }

    fn restart_policy(&self) -> RestartPolicy {
        self.policy
    }

    fn run(&self, ctx: ServiceContext) -> impl Future<Output = Result<(), E>> + Send {
        (self.f)(ctx)
    }
}

/// Formats an error with its whole `source()` chain: `outer: inner: root`.
pub(crate) fn error_chain(error: &(dyn StdError + 'static)) -> String {
    use fmt::Write as _;
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // anyhow and friends sometimes repeat the cause in the outer message.
        if !message.ends_with(&text) {
            let _ = write!(message, ": {text}");
        }
        source = cause.source();
    }
    message
}
