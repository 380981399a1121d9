//! What a supervisor and its services' tasks share: the registry, the
//! shutdown, and what follows a service's termination.
//!
//! # Invariants
//!
//! 1. A spawn is one step as the drain sees it: the shutdown check, the
//!    registration, the links to the dependencies and the task's tracking
//!    happen under the registry lock, and the drain takes that lock once
//!    after shutdown begins, so a spawn is either refused or drained.
//! 2. Lock order: the registry, then a dependency's slot, then its
//!    dependants' slots. No slot lock is held while the registry lock is
//!    taken.
//! 3. Whatever follows a termination ([`Shared::after_termination`]) runs
//!    once per spawn, outside every lock: stopping the dependants, releasing
//!    the dependencies (which, during a drain, asks a dependency with no live
//!    dependant left to stop), the shutdown a
//!    [`TerminateTree`](crate::TerminateTree) error or a critical service
//!    asks for, the drain's log, and forgetting a removed or temporary
//!    service.

use std::any::Any;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use backoff::{BackoffConfig, SplitMix64};
use lifecycle::TerminationReason;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::context::RunContexts;
use crate::drain::{DrainLog, DrainReport, ShutdownCause};
use crate::group::Group;
use crate::panics::take_message;
use crate::runner::{LazyBackoff, Runner};
use crate::slot::{Refusal, ServiceSlot, Spec, StopCause};
use crate::telemetry::{InSpan, Telemetry};
use crate::tree::SupervisorSpec;
use crate::{ControlError, Service, SpawnError, SpawnOptions, StopTimeout, SupervisorConfig};

/// Services by name. Hashed with foldhash, randomly seeded per process:
/// several times faster than SipHash on short names; names come from the
/// host's code, so the weaker flooding resistance is not exposed to peers.
pub(crate) type Registry = HashMap<Arc<str>, Arc<ServiceSlot>, foldhash::fast::RandomState>;

/// The registry keeps at least this many entries' room when it shrinks.
const MIN_REGISTRY_CAPACITY: usize = 64;

pub(crate) struct Shared {
    pub(crate) config: SupervisorConfig,
    pub(crate) tracker: TaskTracker,
    /// The public shutdown token: cancelling it starts the shutdown.
    pub(crate) cancel: CancellationToken,
    /// Why the shutdown began; the first cause wins.
    pub(crate) cause: OnceLock<ShutdownCause>,
    /// The default backoff, shared by every service that uses it.
    default_backoff: Arc<BackoffConfig>,
    pub(crate) telemetry: Arc<Telemetry>,
    /// Written on spawn and removal; never by transitions.
    registry: Mutex<Registry>,
    /// The report of the shutdown, published once by the shutdown task, which
    /// the first spawn starts (under the registry lock).
    pub(crate) drain: OnceLock<watch::Receiver<Option<DrainReport>>>,
    /// Set once the drain has started asking services to stop.
    draining: AtomicBool,
    /// Set by the first spawn with dependencies: the drain orders its stops.
    pub(crate) has_dependencies: AtomicBool,
    /// Set under `OneForAll` and `RestForOne`, and when the restart
    /// intensity tripped: the drain stops the services one at a time in
    /// reverse start order.
    in_start_order: AtomicBool,
    pub(crate) drain_log: Mutex<DrainLog>,
    /// The shortest stop among the slowest ones logged (nanoseconds), read
    /// without the log's lock: most stops are quicker, and skip it.
    slowest_floor: AtomicU64,
    jitter_seed: u64,
    spawn_counter: AtomicU64,
    /// The first runtime found to have a time driver.
    timed_runtime: OnceLock<tokio::runtime::Id>,
    /// The next spawn's place in the start order.
    start_order: AtomicU64,
    /// The strategy's coordinator and queue; `None` under `OneForOne`.
    pub(crate) group: Option<Group>,
    /// This supervisor's path from the root (its node's registered name),
    /// the prefix of every name it registers; `None` for a root.
    pub(crate) path: Option<Arc<str>>,
    /// The running child supervisor of each of this supervisor's nodes, by
    /// the node's registered name: set by the node's run when it starts,
    /// cleared when it ends. Empty (and never locked on a restart) in a
    /// supervisor without nested ones.
    nested: Mutex<HashMap<Arc<str>, Weak<Shared>>>,
}

impl Shared {
    pub(crate) fn new(config: SupervisorConfig, jitter_seed: u64) -> Self {
        let telemetry = Arc::new(Telemetry::new(
            config.sinks.clone(),
            config.clean_restart_delay,
            config.event_capacity,
        ));
        Self::with_telemetry(config, jitter_seed, telemetry, None)
    }

    /// A nested supervisor under `parent`, registered there as `path`: it
    /// shares the parent's counters, sinks, clock and event bus, keeps its
    /// own readiness, and never installs a signal handler.
    pub(crate) fn new_child(parent: &Shared, path: Arc<str>, mut config: SupervisorConfig) -> Self {
        config.install_signal_handler = false;
        let telemetry = Arc::new(Telemetry::new_child(
            &parent.telemetry,
            &config.sinks,
            config.clean_restart_delay,
        ));
        let jitter_seed = config.jitter_seed.unwrap_or_else(|| parent.next_seed());
        Self::with_telemetry(config, jitter_seed, telemetry, Some(path))
    }

    fn with_telemetry(
        config: SupervisorConfig,
        jitter_seed: u64,
        telemetry: Arc<Telemetry>,
        path: Option<Arc<str>>,
    ) -> Self {
        let group = Group::new(&config);
        // OTP's shutdown for a group whose services depend on their order:
        // one at a time, newest first.
        let in_start_order = config.strategy != crate::Strategy::OneForOne;
        Self {
            path,
            nested: Mutex::new(HashMap::new()),
            group,
            start_order: AtomicU64::new(0),
            default_backoff: Arc::new(config.default_backoff),
            config,
            tracker: TaskTracker::new(),
            cancel: CancellationToken::new(),
            cause: OnceLock::new(),
            telemetry,
            registry: Mutex::new(HashMap::default()),
            drain: OnceLock::new(),
            draining: AtomicBool::new(false),
            has_dependencies: AtomicBool::new(false),
            in_start_order: AtomicBool::new(in_start_order),
            drain_log: Mutex::new(DrainLog::default()),
            slowest_floor: AtomicU64::new(0),
            jitter_seed,
            spawn_counter: AtomicU64::new(0),
            timed_runtime: OnceLock::new(),
        }
    }

    pub(crate) fn lock_registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The registered slots, copied out so no lock is held while reading them.
    pub(crate) fn slots(&self) -> Vec<Arc<ServiceSlot>> {
        self.lock_registry().values().cloned().collect()
    }

    /// The slot registered under `name` (a name relative to this supervisor,
    /// without `/`).
    pub(crate) fn slot(&self, name: &str) -> Option<Arc<ServiceSlot>> {
        match &self.path {
            None => self.lock_registry().get(name).cloned(),
            Some(path) => self
                .lock_registry()
                .get(&*format!("{path}/{name}"))
                .cloned(),
        }
    }

    /// The supervisor and slot of the service at `path`, relative to this
    /// supervisor: a bare name is one of its own services; `node/rest` is
    /// `rest` in the running child supervisor of its node `node`.
    pub(crate) fn resolve(self: &Arc<Self>, path: &str) -> Option<(Arc<Shared>, Arc<ServiceSlot>)> {
        let Some((node, rest)) = path.split_once('/') else {
            let slot = self.slot(path)?;
            return Some((Arc::clone(self), slot));
        };
        let node = match &self.path {
            None => Arc::<str>::from(node),
            Some(prefix) => Arc::from(format!("{prefix}/{node}")),
        };
        self.nested_child(&node)?.resolve(rest)
    }

    /// The running child supervisor of the node registered as `node`.
    pub(crate) fn nested_child(&self, node: &str) -> Option<Arc<Shared>> {
        self.lock_nested().get(node).and_then(Weak::upgrade)
    }

    /// The running child supervisors, by their node's registered name; empty
    /// (without an allocation) when there are none.
    pub(crate) fn nested_children(&self) -> HashMap<Arc<str>, Arc<Shared>> {
        let nested = self.lock_nested();
        if nested.is_empty() {
            return HashMap::new();
        }
        nested
            .iter()
            .filter_map(|(node, child)| Some((Arc::clone(node), child.upgrade()?)))
            .collect()
    }

    /// Records `child` as the running child supervisor of the node `node`.
    pub(crate) fn attach_nested(&self, node: &Arc<str>, child: &Arc<Shared>) {
        self.lock_nested()
            .insert(Arc::clone(node), Arc::downgrade(child));
    }

    /// Forgets `child` as the node `node`'s, if it still is.
    pub(crate) fn detach_nested(&self, node: &str, child: &Weak<Shared>) {
        let mut nested = self.lock_nested();
        if nested
            .get(node)
            .is_some_and(|current| current.ptr_eq(child))
        {
            nested.remove(node);
        }
    }

    fn lock_nested(&self) -> MutexGuard<'_, HashMap<Arc<str>, Weak<Shared>>> {
        self.nested.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// The drain is to stop the services one at a time, newest first.
    pub(crate) fn stop_in_start_order(&self) {
        self.in_start_order.store(true, Ordering::SeqCst);
    }

    pub(crate) fn stops_in_start_order(&self) -> bool {
        self.in_start_order.load(Ordering::SeqCst)
    }

    /// Starts the shutdown for `cause`, unless it started already.
    pub(crate) fn shutdown(&self, cause: ShutdownCause) {
        if !self.cancel.is_cancelled() {
            tracing::info!(cause = %cause, "supervisor: shutdown triggered");
        }
        let _ = self.cause.set(cause);
        self.cancel.cancel();
    }

    /// Spawns `service` (see `Supervisor::spawn_service_with_options`).
    pub(crate) fn spawn<S: Service>(
        self: &Arc<Self>,
        service: S,
        options: SpawnOptions,
    ) -> Result<Arc<ServiceSlot>, SpawnError> {
        let SpawnOptions {
            backoff,
            restart_policy,
            stop_timeout,
            after,
            signals_readiness,
            temporary,
            critical,
            heartbeat,
        } = options;
        // `name` and `restart_policy` are user code.
        let described = panic::catch_unwind(AssertUnwindSafe(|| {
            let name = Arc::<str>::from(service.name());
            let policy = restart_policy.unwrap_or_else(|| service.restart_policy());
            (name, policy)
        }));
        let (name, policy) = described.map_err(|payload| SpawnError::Panicked {
            message: take_message(payload),
        })?;
        // `/` separates the segments of a nested service's path.
        if name.contains('/') {
            return Err(SpawnError::InvalidName {
                name: name.to_string(),
            });
        }
        let (name, after) = match &self.path {
            None => (name, after),
            Some(path) => (
                Arc::from(format!("{path}/{name}")),
                after
                    .iter()
                    .map(|dependency| Arc::from(format!("{path}/{dependency}")))
                    .collect(),
            ),
        };
        self.check_runtime(&name)?;
        let backoff_config = match backoff {
            Some(config) => Arc::new(config),
            None => Arc::clone(&self.default_backoff),
        };
        let backoff = LazyBackoff::new(backoff_config, self.next_seed()).map_err(|source| {
            SpawnError::InvalidBackoff {
                name: name.to_string(),
                source,
            }
        })?;
        if heartbeat.is_some_and(|interval| interval.is_zero()) {
            return Err(SpawnError::InvalidHeartbeat {
                name: name.to_string(),
            });
        }
        let dependencies = self.resolve_dependencies(&name, &after)?;

        let telemetry = &self.telemetry;
        let now = telemetry.now();
        let spec = Spec {
            policy,
            stop_timeout: stop_timeout.unwrap_or(StopTimeout::After(self.config.shutdown_timeout)),
            signals_readiness,
            temporary,
            critical,
            heartbeat,
            order: self.start_order.fetch_add(1, Ordering::Relaxed),
        };
        let slot = Arc::new(ServiceSlot::new(
            Arc::clone(&name),
            spec,
            dependencies,
            now,
            telemetry,
        ));
        let mut service = service;
        // A nested supervisor's node learns its parent: the supervisor it is
        // spawned on (a type check, resolved at compile time).
        if let Some(spec) = (&mut service as &mut dyn Any).downcast_mut::<SupervisorSpec>() {
            spec.parent = Arc::downgrade(self);
        }
        let mut runner = Runner {
            service,
            slot: Arc::clone(&slot),
            backoff,
            contexts: RunContexts::new(),
            shared: Arc::clone(self),
        };
        let span = tracing::info_span!("service", service = %name, policy = %policy);
        // An `async fn` taking `self` by value would keep the runner twice in
        // the task (the argument and its binding); borrowing it keeps it once.
        let task = InSpan::new(async move { runner.run().await }, span);

        // Invariant 1.
        let (task, replaced) = {
            let mut registry = self.lock_registry();
            if self.cancel.is_cancelled() {
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
                Entry::Occupied(mut terminated) => {
                    let replaced = terminated.insert(Arc::clone(&slot));
                    replaced.removed(telemetry, now);
                    Some(replaced)
                }
                Entry::Vacant(vacant) => {
                    vacant.insert(Arc::clone(&slot));
                    None
                }
            };
            for dependency in slot.dependencies() {
                dependency.add_dependant(Arc::downgrade(&slot));
            }
            slot.spawned(telemetry, now);
            self.start_shutdown_task();
            self.start_coordinator();
            (self.tracker.track_future(task), replaced)
        };
        // Outside every lock: sinks may call back into the supervisor.
        if let Some(replaced) = replaced {
            replaced.flush(telemetry);
        }
        slot.flush(telemetry);
        let join = tokio::spawn(task);
        slot.set_abort_handle(join.abort_handle());
        Ok(slot)
    }

    /// The slots of `after`, which must be registered and alive.
    fn resolve_dependencies(
        &self,
        name: &Arc<str>,
        after: &[Arc<str>],
    ) -> Result<Box<[Arc<ServiceSlot>]>, SpawnError> {
        if after.is_empty() {
            return Ok(Box::default());
        }
        if after.contains(name) {
            return Err(SpawnError::DependencyCycle {
                name: name.to_string(),
                cycle: vec![name.to_string(), name.to_string()],
            });
        }
        let registry = self.lock_registry();
        let mut dependencies: Vec<Arc<ServiceSlot>> = Vec::with_capacity(after.len());
        for dependency in after {
            let Some(slot) = registry.get(dependency) else {
                return Err(SpawnError::UnknownDependency {
                    name: name.to_string(),
                    dependency: dependency.to_string(),
                });
            };
            if !slot.is_alive() {
                return Err(SpawnError::DependencyTerminated {
                    name: name.to_string(),
                    dependency: dependency.to_string(),
                });
            }
            if !dependencies.iter().any(|known| Arc::ptr_eq(known, slot)) {
                dependencies.push(Arc::clone(slot));
            }
        }
        self.has_dependencies.store(true, Ordering::SeqCst);
        Ok(dependencies.into_boxed_slice())
    }

    pub(crate) fn next_seed(&self) -> u64 {
        let n = self.spawn_counter.fetch_add(1, Ordering::Relaxed);
        // Each service gets its own seed: its spawn number, mixed, keyed by
        // the supervisor's seed and mixed again (SplitMix64's output function).
        let spread = SplitMix64::new(n).next_u64();
        SplitMix64::new(self.jitter_seed ^ spread).next_u64()
    }

    /// Starts the task that drains the services once shutdown begins, unless
    /// it runs already. Called under the registry lock, from a runtime.
    fn start_shutdown_task(self: &Arc<Self>) {
        self.drain.get_or_init(|| {
            let (publish, report) = watch::channel(None);
            let weak = Arc::downgrade(self);
            let cancel = self.cancel.clone();
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

    /// What follows the termination of `slot` (invariant 3). Called once, by
    /// whoever terminated it.
    pub(crate) fn after_termination(&self, slot: &Arc<ServiceSlot>, now: Duration) {
        // One read of the slot for everything below.
        let Some(ended) = slot.ended() else {
            return;
        };
        let draining = self.is_draining();
        // Read once, and only for what needs it: a failure for good (a tree
        // termination is one) or a critical service.
        let reason = if ended.failed || slot.spec.critical {
            slot.termination_reason()
        } else {
            None
        };
        // A tree termination shuts down first, so that the dependants stop
        // for the shutdown (`Cancelled`), and so that it is the cause even
        // for a critical service.
        let tree = match &reason {
            Some(TerminationReason::TerminateTree(error)) if !self.cancel.is_cancelled() => {
                tracing::error!(service = %slot.name, %error, "service asked to terminate the supervisor: shutting down");
                self.shutdown(ShutdownCause::TreeTerminated {
                    service: slot.name.to_string(),
                    error: error.clone(),
                });
                true
            }
            _ => false,
        };
        // A drain in reverse start order stops every service itself, in
        // turn; outside a drain, a dependency's end stops its dependants
        // whatever the strategy.
        let in_order = self.stops_in_start_order() && (draining || tree);
        if ended.has_dependants && !in_order {
            for dependant in slot.live_dependants() {
                let cause = if draining || tree {
                    StopCause::Shutdown
                } else {
                    StopCause::Dependency {
                        name: Arc::clone(&slot.name),
                        failed: ended.failed,
                    }
                };
                let _ = dependant.request_stop(cause, now);
            }
        }
        for dependency in slot.dependencies() {
            if dependency.dependant_terminated(slot) && self.is_draining() && !in_order {
                let _ = dependency.request_stop(StopCause::Shutdown, now);
            }
        }
        if slot.spec.critical && !self.cancel.is_cancelled() {
            let reason = reason.unwrap_or(TerminationReason::Cancelled);
            if reason == TerminationReason::Completed {
                self.shutdown(ShutdownCause::CriticalCompleted {
                    service: slot.name.to_string(),
                });
            } else if ended.failed {
                tracing::error!(service = %slot.name, %reason, "critical service failed: shutting down");
                self.shutdown(ShutdownCause::CriticalFailed {
                    service: slot.name.to_string(),
                    reason,
                });
            }
        }
        if draining {
            let took = ended.stop_asked_at.map(|asked| now.saturating_sub(asked));
            if DrainLog::worth_recording(&self.slowest_floor, ended.aborted, took) {
                self.drain_log
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .record(&slot.name, ended.aborted, took, &self.slowest_floor);
            }
        }
        if ended.forget {
            self.forget(slot, now);
        }
    }

    /// Adds a nested supervisor's drain to this supervisor's drain log, if
    /// this one is draining: its aborted services and its slowest stops,
    /// under their paths, so that the root's report covers the whole tree.
    /// (A node stopped outside a drain, by a cycle or by the host, reports
    /// nothing here.)
    pub(crate) fn absorb_nested_drain(&self, report: &DrainReport) {
        if !self.is_draining() {
            return;
        }
        let mut log = self
            .drain_log
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let took = |name: &str| {
            report
                .slowest
                .iter()
                .find(|stop| stop.service == name)
                .map(|stop| stop.took)
        };
        for name in &report.aborted {
            log.record(
                &Arc::from(name.as_str()),
                true,
                took(name),
                &self.slowest_floor,
            );
        }
        for stop in report.slowest.iter().filter(|stop| !stop.aborted) {
            let name = Arc::from(stop.service.as_str());
            log.record(&name, false, Some(stop.took), &self.slowest_floor);
        }
    }

    /// Takes a terminated service out of the registry (if it is still the
    /// one registered under its name) and forgets it.
    pub(crate) fn forget(&self, slot: &Arc<ServiceSlot>, now: Duration) {
        {
            let mut registry = self.lock_registry();
            if registry
                .get(&slot.name)
                .is_some_and(|registered| Arc::ptr_eq(registered, slot))
            {
                registry.remove(&slot.name);
                // A process that spawns jobs for ever keeps a registry the
                // size of what runs now, not of its peak.
                if registry.capacity() > MIN_REGISTRY_CAPACITY
                    && registry.len() * 4 < registry.capacity()
                {
                    let keep = (registry.len() * 2).max(MIN_REGISTRY_CAPACITY);
                    registry.shrink_to(keep);
                }
            }
            slot.removed(&self.telemetry, now);
        }
        slot.flush(&self.telemetry);
    }

    /// The host asks `slot` to stop.
    pub(crate) fn stop(&self, slot: &ServiceSlot) -> Result<(), ControlError> {
        if slot.is_removed() {
            return Err(ControlError::Removed {
                name: slot.name.to_string(),
            });
        }
        slot.request_stop(StopCause::Host, self.telemetry.now())
            .map_err(|refusal| refused(&slot.name, refusal))
    }

    /// The host asks `slot` to restart; returns the start count to wait past.
    pub(crate) fn restart(&self, slot: &ServiceSlot) -> Result<u64, ControlError> {
        if slot.is_removed() {
            return Err(ControlError::Removed {
                name: slot.name.to_string(),
            });
        }
        if self.cancel.is_cancelled() {
            return Err(ControlError::ShuttingDown {
                name: slot.name.to_string(),
            });
        }
        slot.request_restart()
            .map_err(|refusal| refused(&slot.name, refusal))
    }

    /// The host asks `slot` to be removed: forgotten now if it terminated,
    /// when it terminates otherwise.
    pub(crate) fn remove(&self, slot: &Arc<ServiceSlot>) -> Result<(), ControlError> {
        let now = self.telemetry.now();
        match slot.request_removal(now) {
            Ok(crate::slot::Removal::Terminated) => {
                self.forget(slot, now);
                Ok(())
            }
            Ok(crate::slot::Removal::Stopping) => Ok(()),
            Err(refusal) => Err(refused(&slot.name, refusal)),
        }
    }
}

/// The public error for a slot's refusal.
fn refused(name: &str, refusal: Refusal) -> ControlError {
    let name = name.to_owned();
    match refusal {
        Refusal::Terminated(reason) => ControlError::Terminated { name, reason },
        Refusal::Stopping => ControlError::Stopping { name },
        Refusal::Removed => ControlError::Removed { name },
    }
}

impl Shared {
    /// Checks that the current runtime can run services: a runtime, with its
    /// time driver (tokio panics at the first timer otherwise). The runtime
    /// the first spawn checked is remembered, so spawns on it skip the timer
    /// check.
    fn check_runtime(&self, name: &str) -> Result<(), SpawnError> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(SpawnError::NoRuntime {
                name: name.to_owned(),
            });
        };
        let id = runtime.id();
        if self.timed_runtime.get() == Some(&id) {
            return Ok(());
        }
        let timer = panic::catch_unwind(|| drop(tokio::time::sleep(Duration::ZERO)));
        timer.map_err(|payload| {
            crate::panics::drop_payload(payload);
            SpawnError::NoTimeDriver {
                name: name.to_owned(),
            }
        })?;
        let _ = self.timed_runtime.set(id);
        Ok(())
    }
}
