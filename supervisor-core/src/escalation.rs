//! Errors a service's run can fail with to say more than "I failed":
//! [`DoNotRestart`] (do not restart me) and [`TerminateTree`] (stop the whole
//! supervisor), suture's `ErrDoNotRestart` and `ErrTerminateSupervisorTree`.
//!
//! # Invariants
//!
//! 1. Both are transparent: their `Display` is their cause's, and their
//!    `source()` is a private [`Marked`] node that displays as the cause and
//!    whose `source()` is the cause's, so the error recorded for the run
//!    reads as if the wrapper were not there.
//! 2. The marker is found wherever it is in the error's `source()` chain
//!    (the outermost one found decides), by the runner, under the same
//!    `catch_unwind` as the formatting of the error: a panic while walking the
//!    chain is a panic, never mistaken for either. The marker, not the
//!    wrapper, is what is looked for: `anyhow::Error::new(wrapper)`, boxed,
//!    hides the wrapper's own type but still calls its `source()`.

use std::error::Error as StdError;
use std::fmt;

use crate::BoxError;

/// An error that asks the supervisor not to restart the service: the run's
/// failure is recorded (an [`Error`](crate::FailureKind::Error) failure, its
/// message the `last_error`), and the service terminates with
/// [`TerminationReason::DoNotRestart`](crate::TerminationReason::DoNotRestart)
/// whatever its [`RestartPolicy`](crate::RestartPolicy).
///
/// It is found anywhere in the run's error's
/// [`source`](StdError::source) chain, so it can be wrapped in further context
/// (`anyhow`'s `.context(…)`, an error enum whose `source` it is), or put in
/// an `anyhow::Error`. Its `Display` is its cause's, and its `source`
/// displays as the cause, with the cause's own chain behind it (the cause
/// itself is [`cause`](Self::cause)).
///
/// It counts as a failure for good, as
/// [`Unrecoverable`](crate::TerminationReason::Unrecoverable) does: a
/// [critical](crate::SpawnOptions::critical) service that fails with it shuts
/// the supervisor down
/// ([`ShutdownCause::CriticalFailed`](crate::ShutdownCause::CriticalFailed)),
/// and its dependants stop as for any dependency that failed for good. A
/// stop, or the shutdown, asked for before the run ended decides instead (as
/// for any run's end, its failure still recorded); a restart asked for by the
/// host does not: the service is not restarted.
///
/// # Examples
///
/// ```
/// use supervisor_core::{
///     service_fn, DoNotRestart, RestartPolicy, ServiceContext, Supervisor, SupervisorConfig,
///     TerminationReason,
/// };
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
/// let login = service_fn("login", |_ctx: ServiceContext| async {
///     // Retrying with the same credentials cannot help.
///     Err(DoNotRestart::new(std::io::Error::other("bad credentials")))
/// })
/// .with_restart_policy(RestartPolicy::Always);
/// let handle = supervisor.spawn_service(login)?;
///
/// let snapshot = handle.wait_terminated().await;
/// assert_eq!(
///     snapshot.termination_reason,
///     Some(TerminationReason::DoNotRestart("bad credentials".into()))
/// );
/// assert_eq!(snapshot.start_count, 1);
/// assert_eq!(snapshot.last_error.as_deref(), Some("bad credentials"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DoNotRestart {
    marked: Marked,
}

impl DoNotRestart {
    /// Wraps `cause`: the run fails with it, and is not restarted.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::error::Error as _;
    /// use supervisor_core::DoNotRestart;
    ///
    /// let error = DoNotRestart::new(std::io::Error::other("bad credentials"));
    /// assert_eq!(error.to_string(), "bad credentials");
    /// assert_eq!(error.source().unwrap().to_string(), "bad credentials");
    ///
    /// // `anyhow` errors (with their context) and plain strings work too.
    /// let error = DoNotRestart::new("unsupported schema version");
    /// assert_eq!(error.to_string(), "unsupported schema version");
    /// ```
    #[must_use]
    pub fn new(cause: impl Into<BoxError>) -> Self {
        Self {
            marked: Marked {
                cause: cause.into(),
                escalation: Escalation::DoNotRestart,
            },
        }
    }

    /// The cause.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::DoNotRestart;
    ///
    /// let error = DoNotRestart::new(std::io::Error::other("bad credentials"));
    /// assert!(error.cause().downcast_ref::<std::io::Error>().is_some());
    /// ```
    #[must_use]
    pub fn cause(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.marked.cause
    }

    /// The cause, unwrapped.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::DoNotRestart;
    ///
    /// let error = DoNotRestart::new(std::io::Error::other("bad credentials"));
    /// let cause = error.into_inner();
    /// assert!(cause.downcast_ref::<std::io::Error>().is_some());
    /// ```
    #[must_use]
    pub fn into_inner(self) -> BoxError {
        self.marked.cause
    }
}

/// An error that asks the supervisor to shut down: the service is not
/// restarted, and the whole supervisor drains, as suture's
/// `ErrTerminateSupervisorTree` asks.
///
/// The run's failure is recorded (an [`Error`](crate::FailureKind::Error)
/// failure, its message the `last_error`), the service terminates with
/// [`TerminationReason::TerminateTree`](crate::TerminationReason::TerminateTree),
/// and the supervisor shuts down with
/// [`ShutdownCause::TreeTerminated`](crate::ShutdownCause::TreeTerminated):
/// every other service is stopped as for any shutdown (its dependants first,
/// `Cancelled`), and
/// [`run_until_shutdown`](crate::Supervisor::run_until_shutdown) returns
/// [`ShutdownError::TreeTerminated`](crate::ShutdownError::TreeTerminated)
/// once the drain is over. The supervisor is flat today, so the tree is this
/// supervisor.
///
/// A host that does not want a service to take everything down sets
/// [`SupervisorConfig::ignore_terminate_tree`](crate::SupervisorConfig::ignore_terminate_tree):
/// the error is then a [`DoNotRestart`] for that service only.
///
/// It is found anywhere in the run's error's [`source`](StdError::source)
/// chain, or in an `anyhow::Error`; its `Display` is its cause's, and its
/// `source` displays as the cause, with the cause's own chain behind it (the
/// cause itself is [`cause`](Self::cause)). If
/// the chain holds both this and a [`DoNotRestart`], the outermost decides.
/// A stop, or the shutdown, asked for before the run ended decides instead
/// (as for any run's end, its failure still recorded); a restart asked for by
/// the host does not.
///
/// # Examples
///
/// ```
/// use supervisor_core::{
///     service_fn, ServiceContext, ShutdownError, Supervisor, SupervisorConfig, TerminateTree,
/// };
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
/// supervisor.spawn_service(service_fn("api", |ctx: ServiceContext| async move {
///     ctx.cancelled().await;
///     anyhow::Ok(())
/// }))?;
/// supervisor.spawn_service(service_fn("migrate", |_ctx: ServiceContext| async {
///     Err(TerminateTree::new("the database is newer than this binary"))
/// }))?;
///
/// match supervisor.run_until_shutdown().await {
///     Err(ShutdownError::TreeTerminated { service, error, report }) => {
///         assert_eq!(service, "migrate");
///         assert_eq!(error, "the database is newer than this binary");
///         assert!(report.is_clean()); // `api` was stopped within its timeout.
///     }
///     other => panic!("unexpected: {other:?}"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TerminateTree {
    marked: Marked,
}

impl TerminateTree {
    /// Wraps `cause`: the run fails with it, and the supervisor shuts down.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::error::Error as _;
    /// use supervisor_core::TerminateTree;
    ///
    /// let error = TerminateTree::new(std::io::Error::other("schema mismatch"));
    /// assert_eq!(error.to_string(), "schema mismatch");
    /// assert_eq!(error.source().unwrap().to_string(), "schema mismatch");
    /// ```
    #[must_use]
    pub fn new(cause: impl Into<BoxError>) -> Self {
        Self {
            marked: Marked {
                cause: cause.into(),
                escalation: Escalation::TerminateTree,
            },
        }
    }

    /// The cause.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::TerminateTree;
    ///
    /// let error = TerminateTree::new(std::io::Error::other("schema mismatch"));
    /// assert!(error.cause().downcast_ref::<std::io::Error>().is_some());
    /// ```
    #[must_use]
    pub fn cause(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.marked.cause
    }

    /// The cause, unwrapped.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::TerminateTree;
    ///
    /// let error = TerminateTree::new(std::io::Error::other("schema mismatch"));
    /// let cause = error.into_inner();
    /// assert!(cause.downcast_ref::<std::io::Error>().is_some());
    /// ```
    #[must_use]
    pub fn into_inner(self) -> BoxError {
        self.marked.cause
    }
}

/// Invariant 1: `Display` of a wrapper is its cause's; its `source` is its
/// marker.
macro_rules! transparent {
    ($($wrapper:ident),*) => {$(
        impl fmt::Display for $wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.marked, f)
            }
        }

        impl StdError for $wrapper {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.marked)
            }
        }
    )*};
}

transparent!(DoNotRestart, TerminateTree);

/// What a wrapper's `source()` returns, and what the runner looks for: the
/// cause, as its `Display` and its `source()` chain, with what it asks for.
#[derive(Debug)]
struct Marked {
    cause: BoxError,
    escalation: Escalation,
}

impl fmt::Display for Marked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.cause, f)
    }
}

impl StdError for Marked {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.cause.source()
    }
}

/// What a run's error asks of the supervisor, beyond being a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escalation {
    /// Nothing: the policy decides.
    None,
    /// A [`DoNotRestart`] is in the chain.
    DoNotRestart,
    /// A [`TerminateTree`] is in the chain.
    TerminateTree,
}

impl Escalation {
    /// The outermost [`DoNotRestart`] or [`TerminateTree`] in `error`'s
    /// `source()` chain. User code (`source`): call it under `catch_unwind`.
    pub(crate) fn of(error: &(dyn StdError + 'static)) -> Self {
        let mut next = Some(error);
        while let Some(error) = next {
            if let Some(marked) = error.downcast_ref::<Marked>() {
                return marked.escalation;
            }
            next = error.source();
        }
        Escalation::None
    }
}
