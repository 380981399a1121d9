//! Supervision trees: a [`Supervisor`] that runs as a service of another,
//! through its node, a [`SupervisorSpec`].
//!
//! # Invariants
//!
//! 1. Each run of a node builds a fresh child supervisor (fresh children,
//!    fresh restart intensity window) and returns only once that child has
//!    drained: a node's runs never overlap, so neither do its children's.
//!    (A run dropped at a finite stop timeout, which only a host that chose
//!    one can cause, shuts its child down without waiting: it drains on its
//!    own.)
//! 2. A child supervisor shares its root's counters, sinks, clock origin and
//!    event bus, and keeps its own readiness; it never installs a signal
//!    handler. Nothing of this touches a flat supervisor's restart path.
//! 3. The child's drain decides the run's end: asked by the parent (the
//!    run's context), by the host, or because a critical service completed,
//!    the run returns `Ok`; tripped by its own restart intensity or a
//!    critical service's failure, the run fails with
//!    [`NestedError::Escalated`], which the parent handles like any failure.
//! 4. While a run lasts, the parent reaches its child supervisor through a
//!    weak link under the node's name (paths resolve through it); the link
//!    is cleared when the run ends, and the child's services are then
//!    forgotten (their `Removed` events and `service_removed` are sent), as a
//!    new spawn of their names would.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Weak};

use crate::drain::ShutdownCause;
use crate::panics::take_message;
use crate::shared::Shared;
use crate::{
    BoxError, NestedError, RestartPolicy, Service, ServiceContext, ServiceHandle, SpawnError,
    SpawnOptions, StopTimeout, Supervisor, SupervisorConfig, TerminateTree,
};

/// The function that spawns a nested supervisor's children, called once per
/// run of its node on the run's fresh child supervisor.
type Factory = dyn Fn(&Supervisor) -> Result<(), SpawnError> + Send + Sync + 'static;

/// A nested supervisor, as a child of another: OTP's child spec of type
/// `supervisor`. A [`Service`] whose every run builds a fresh child
/// [`Supervisor`] with this configuration (its strategy, restart intensity,
/// shutdown timeout, default backoff), calls the factory to spawn its
/// children on it, and supervises them until the parent stops the node.
///
/// Spawn it with [`Supervisor::spawn_supervisor`] (or
/// [`spawn_service_with_options`](Supervisor::spawn_service_with_options),
/// which takes the options as given).
///
/// # Paths
///
/// The node's services are registered under the node's name as a path: a
/// service `pool` of the node `db` is `db/pool` in snapshots, events,
/// [`status`](Supervisor::status) and metric labels, and deeper nodes add
/// segments (`db/replica/pool`). The factory's [`Supervisor`] takes names
/// relative to itself (`pool`, and `after(["pool"])`); the root takes the
/// whole path ([`Supervisor::service`], `stop_service`, …), resolved through
/// the node's running child. A name with a `/` is refused
/// ([`SpawnError::InvalidName`]).
///
/// # Escalation
///
/// When the child's [restart intensity](SupervisorConfig::with_restart_intensity)
/// trips, or a [critical](SpawnOptions::critical) service of it fails for
/// good, the child stops its services (newest first) and the node's run
/// fails with [`NestedError::Escalated`]: the parent restarts the node by its
/// policy (a fresh child), under its own strategy, and charges its own
/// intensity, so the escalation goes up the tree one level at a time until
/// the root's intensity trips and [`Supervisor::run_until_shutdown`] returns
/// [`ShutdownError::IntensityExceeded`](crate::ShutdownError::IntensityExceeded).
/// A factory that returns an error or panics fails the run
/// ([`NestedError::Start`], [`NestedError::Panicked`]) the same way. A child
/// that drains because its host triggered its shutdown (or a critical service
/// completed) ends the run cleanly.
///
/// # Shared with the root
///
/// The child shares its root's built-in counters ([`Supervisor::metrics`]
/// covers the whole tree), metrics sinks (the child config's own sinks are
/// added to them), clock origin and event stream ([`Supervisor::subscribe`]
/// on any supervisor of the tree sees every service of it, in one `seq`
/// order). Its readiness is its own: the node is ready once every service of
/// its child is (its first time in each run: a nested service that restarts
/// later does not take the node's readiness back). The child config's signal
/// handler and event capacity are ignored.
///
/// # Where this departs from OTP
///
/// A node restarted by its policy waits for its backoff first, as every
/// service does (OTP restarts a child supervisor at once); restart
/// intensities are counted in exact durations, not whole seconds.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor_core::{
///     service_fn, ServiceContext, Strategy, Supervisor, SupervisorConfig, SupervisorSpec,
/// };
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let root = Supervisor::new(SupervisorConfig::default().without_signal_handler());
/// let db = SupervisorSpec::new(
///     "db",
///     SupervisorConfig::default().with_strategy(Strategy::OneForAll),
///     |db: &Supervisor| {
///         db.spawn_service(service_fn("pool", |ctx: ServiceContext| async move {
///             ctx.cancelled().await;
///             anyhow::Ok(())
///         }))?;
///         Ok(())
///     },
/// );
/// root.spawn_supervisor(db)?;
/// root.wait_ready().await?;
///
/// assert!(root.service("db/pool").is_some());
/// let names: Vec<String> = root.status().into_iter().map(|s| s.snapshot.service_name).collect();
/// assert_eq!(names, ["db", "db/pool"]);
///
/// root.trigger_shutdown();
/// assert!(root.wait_for_drain().await.is_clean());
/// assert_eq!(root.metrics().snapshot().active_services, 0);
/// # Ok(())
/// # }
/// ```
pub struct SupervisorSpec {
    name: Arc<str>,
    config: SupervisorConfig,
    factory: Arc<Factory>,
    /// The supervisor the node is spawned on, set by the spawn.
    pub(crate) parent: Weak<Shared>,
}

impl SupervisorSpec {
    /// A nested supervisor named `name`, configured by `config`, whose
    /// children `factory` spawns at each start.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{Service, Supervisor, SupervisorConfig, SupervisorSpec};
    ///
    /// let empty = SupervisorSpec::new("workers", SupervisorConfig::default(), |_: &Supervisor| Ok(()));
    /// assert_eq!(empty.name(), "workers");
    /// ```
    #[must_use]
    pub fn new<F>(name: impl Into<Arc<str>>, config: SupervisorConfig, factory: F) -> Self
    where
        F: Fn(&Supervisor) -> Result<(), SpawnError> + Send + Sync + 'static,
    {
        Self {
            name: name.into(),
            config,
            factory: Arc::new(factory),
            parent: Weak::new(),
        }
    }

    /// The configuration each run's child supervisor is built with.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{Strategy, Supervisor, SupervisorConfig, SupervisorSpec};
    ///
    /// let config = SupervisorConfig::default().with_strategy(Strategy::RestForOne);
    /// let spec = SupervisorSpec::new("db", config, |_: &Supervisor| Ok(()));
    /// assert_eq!(spec.config().strategy(), Strategy::RestForOne);
    /// ```
    #[must_use]
    pub fn config(&self) -> &SupervisorConfig {
        &self.config
    }
}

impl fmt::Debug for SupervisorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorSpec")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Service for SupervisorSpec {
    /// A [`NestedError`]; one that escalates a
    /// [`TerminateTree`](crate::TerminateTree) is wrapped in a
    /// `TerminateTree` of its own, so that it reaches the parent as one.
    type Error = BoxError;

    fn name(&self) -> &str {
        &self.name
    }

    /// [`RestartPolicy::Always`]: a supervisor is a permanent child, as in
    /// OTP.
    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::Always
    }

    async fn run(&self, ctx: ServiceContext) -> Result<(), BoxError> {
        let path: Arc<str> = Arc::from(ctx.name());
        let Some(parent) = self.parent.upgrade() else {
            // Only a supervisor that is gone can have dropped its link.
            return Err(NestedError::Start {
                supervisor: path.to_string(),
                source: SpawnError::ShuttingDown {
                    name: path.to_string(),
                },
            }
            .into());
        };
        let child = Arc::new(Shared::new_child(
            &parent,
            Arc::clone(&path),
            self.config.clone(),
        ));
        parent.attach_nested(&path, &child);
        let attached = Attached {
            parent: Arc::downgrade(&parent),
            node: Arc::clone(&path),
            child: Arc::downgrade(&child),
        };
        drop(parent);
        let supervisor = Supervisor::from_shared(child);

        let started = panic::catch_unwind(AssertUnwindSafe(|| (self.factory)(&supervisor)));
        let failed = match started {
            Ok(Ok(())) => None,
            Ok(Err(source)) => Some(NestedError::Start {
                supervisor: path.to_string(),
                source,
            }),
            Err(payload) => Some(NestedError::Panicked {
                supervisor: path.to_string(),
                message: take_message(payload),
            }),
        };
        if let Some(error) = failed {
            end(&supervisor, attached).await;
            return Err(error.into());
        }

        let mut watching_readiness = true;
        loop {
            tokio::select! {
                biased;
                () = ctx.cancelled() => {
                    end(&supervisor, attached).await;
                    return Ok(());
                }
                () = supervisor.cancel_token().cancelled() => {
                    let report = end(&supervisor, attached).await;
                    let escalated = |cause| NestedError::Escalated {
                        supervisor: path.to_string(),
                        cause,
                    };
                    return match report {
                        Some(cause @ (ShutdownCause::IntensityExceeded { .. }
                        | ShutdownCause::CriticalFailed { .. })) => Err(escalated(cause).into()),
                        // The tree's termination goes on up: the parent
                        // honours it or not, by its own config.
                        Some(cause @ ShutdownCause::TreeTerminated { .. }) => {
                            Err(TerminateTree::new(escalated(cause)).into())
                        }
                        _ => Ok(()),
                    };
                }
                ready = supervisor.wait_ready(), if watching_readiness => {
                    // A failure for good is not undone on its own: stop
                    // watching (the node stays not ready).
                    watching_readiness = false;
                    if ready.is_ok() {
                        ctx.ready();
                    }
                }
            }
        }
    }
}

/// Shuts the child down (if it is not already), waits for its drain, forgets
/// its services and detaches it from its parent; returns why it shut down.
/// A parent that is draining adds the child's aborted services and slowest
/// stops to its own report.
async fn end(supervisor: &Supervisor, attached: Attached) -> Option<ShutdownCause> {
    supervisor.shared().shutdown(ShutdownCause::Requested);
    let report = supervisor.wait_for_drain().await;
    let shared = supervisor.shared();
    for slot in shared.slots() {
        let _ = shared.remove(&slot);
    }
    if let Some(parent) = attached.parent.upgrade() {
        parent.absorb_nested_drain(&report);
    }
    drop(attached);
    report.cause
}

/// The node's link to its running child supervisor: detached when the run
/// ends, and if the run is dropped before its child drained (the node was
/// dropped at its stop timeout), the child is shut down.
struct Attached {
    parent: Weak<Shared>,
    node: Arc<str>,
    child: Weak<Shared>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        if let Some(child) = self.child.upgrade() {
            child.shutdown(ShutdownCause::Requested);
        }
        if let Some(parent) = self.parent.upgrade() {
            parent.detach_nested(&self.node, &self.child);
        }
    }
}

impl Supervisor {
    /// Spawns a nested supervisor as a child of this one, with the defaults
    /// of a supervisor child: permanent ([`RestartPolicy::Always`]),
    /// [`StopTimeout::Infinity`] (OTP's `infinity`: the child's own drain
    /// bounds the stop, each of its services within its own stop timeout),
    /// and [signalling readiness](SpawnOptions::signals_readiness) (the node
    /// is ready once its children are).
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{Supervisor, SupervisorConfig, SupervisorSpec, StopTimeout};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let root = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let node = root.spawn_supervisor(SupervisorSpec::new(
    ///     "workers",
    ///     SupervisorConfig::default(),
    ///     |_: &Supervisor| Ok(()),
    /// ))?;
    /// assert_eq!(node.name(), "workers");
    /// let status = &root.status()[0];
    /// assert_eq!(status.stop_timeout, StopTimeout::Infinity);
    /// assert!(status.signals_readiness);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`spawn_service_with_options`](Self::spawn_service_with_options).
    pub fn spawn_supervisor(&self, spec: SupervisorSpec) -> Result<ServiceHandle, SpawnError> {
        self.spawn_supervisor_with_options(spec, SpawnOptions::default())
    }

    /// Spawns a nested supervisor with `options`: a restart policy or stop
    /// timeout they do not set takes the defaults of
    /// [`spawn_supervisor`](Self::spawn_supervisor), and the node always
    /// signals its readiness.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{
    ///     RestartPolicy, SpawnOptions, Supervisor, SupervisorConfig, SupervisorSpec,
    /// };
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let root = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let spec = SupervisorSpec::new("batch", SupervisorConfig::default(), |_: &Supervisor| Ok(()));
    /// root.spawn_supervisor_with_options(spec, SpawnOptions::default().restart_policy(RestartPolicy::OnFailure))?;
    /// assert_eq!(root.status()[0].policy, RestartPolicy::OnFailure);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`spawn_service_with_options`](Self::spawn_service_with_options).
    pub fn spawn_supervisor_with_options(
        &self,
        spec: SupervisorSpec,
        mut options: SpawnOptions,
    ) -> Result<ServiceHandle, SpawnError> {
        options.restart_policy = options.restart_policy.or(Some(RestartPolicy::Always));
        options.stop_timeout = options.stop_timeout.or(Some(StopTimeout::Infinity));
        options.signals_readiness = true;
        self.spawn_service_with_options(spec, options)
    }
}
