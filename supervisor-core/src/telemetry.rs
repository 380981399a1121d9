//! Where events go: the built-in counters, the type-erased [`MetricsSink`]s,
//! and the supervisor's clock origin.
//!
//! # Invariants
//!
//! 1. Each event reaches each sink in its own call, under its own
//!    `catch_unwind`: a sink that panics loses exactly the event it panicked
//!    on.
//! 2. A sink's per-service handle is resolved at most once per spawn, before
//!    its first event is delivered; if `resolve` panics, it is tried again at
//!    the next event. After `Removed`, the handle is gone and never resolved
//!    again.
//! 3. The built-in counters are fed every event synchronously (they are our
//!    own atomics and never call out); sinks are fed later, outside every
//!    lock (see `slot.rs`).

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::Duration;

use lifecycle::{FailureKind, ServicePhase, TerminationReason};
use supervisor_metrics::{MetricsSink, SupervisorMetrics};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::events::EventBus;
use crate::panics::drop_payload;

/// One event about one service, as queued for the sinks.
#[derive(Debug, Clone)]
pub(crate) enum SinkEvent {
    Spawned,
    Started {
        start_count: u64,
    },
    Phase {
        from: ServicePhase,
        to: ServicePhase,
    },
    Failed {
        kind: FailureKind,
    },
    Backoff {
        delay: Duration,
    },
    CircuitOpened {
        failures: u32,
        max_retries: u32,
    },
    /// Boxed: rare, and it would make every queued event as large as a
    /// termination reason.
    Terminated(Box<(TerminationReason, Duration)>),
    Removed,
}

/// A [`MetricsSink`] with its handle type erased, so sinks of different
/// types can sit in one list.
pub(crate) trait DynSink: Send + Sync + 'static {
    fn resolve(&self, service: &str) -> Box<dyn Any + Send + Sync>;
    fn deliver(&self, handle: &(dyn Any + Send + Sync), event: &SinkEvent);
    fn remove(&self, handle: Box<dyn Any + Send + Sync>);
}

/// Erases `sink` for [`Telemetry`].
pub(crate) fn erase<S: MetricsSink>(sink: Arc<S>) -> Arc<dyn DynSink> {
    Arc::new(Erased(sink))
}

struct Erased<S>(Arc<S>);

impl<S: MetricsSink> DynSink for Erased<S> {
    fn resolve(&self, service: &str) -> Box<dyn Any + Send + Sync> {
        Box::new(self.0.resolve(service))
    }

    fn deliver(&self, handle: &(dyn Any + Send + Sync), event: &SinkEvent) {
        // Handles are made by `resolve` above, so the type always matches.
        let Some(service) = handle.downcast_ref::<S::Handle>() else {
            return;
        };
        let sink = &*self.0;
        match event {
            SinkEvent::Spawned => sink.service_spawned(service),
            SinkEvent::Started { start_count } => sink.service_started(service, *start_count),
            SinkEvent::Phase { from, to } => sink.phase_changed(service, *from, *to),
            SinkEvent::Failed { kind } => sink.service_failed(service, *kind),
            SinkEvent::Backoff { delay } => sink.backoff_scheduled(service, *delay),
            SinkEvent::CircuitOpened {
                failures,
                max_retries,
            } => sink.circuit_opened(service, *failures, *max_retries),
            SinkEvent::Terminated(terminated) => {
                let (reason, uptime) = &**terminated;
                sink.service_terminated(service, reason, *uptime);
            }
            // Delivered through `remove`, which owns the handle.
            SinkEvent::Removed => {}
        }
    }

    fn remove(&self, handle: Box<dyn Any + Send + Sync>) {
        if let Ok(service) = handle.downcast::<S::Handle>() {
            self.0.service_removed(*service);
        }
    }
}

/// Shards of [`ShardedCount`]: a few per core, so that services restarting on
/// different threads rarely touch the same cache line.
const SHARDS: usize = 16;

/// A count kept in per-thread shards (each thread adds to its own; a shard
/// may go negative), summed by readers: a service's every restart moves the
/// readiness count twice, and one shared counter would bounce between the
/// cores of a busy fleet.
#[derive(Default)]
pub(crate) struct ShardedCount {
    shards: [Shard; SHARDS],
}

#[derive(Default)]
#[repr(align(64))]
struct Shard(AtomicIsize);

thread_local! {
    /// This thread's shard.
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
    };
}

impl ShardedCount {
    /// Adds `delta` (SeqCst: see [`Telemetry::restand`]).
    pub(crate) fn add(&self, delta: isize) {
        let shard = SHARD.try_with(|shard| *shard).unwrap_or(0);
        self.shards[shard].0.fetch_add(delta, Ordering::SeqCst);
    }

    /// The total: exact when nothing moves, and a read of every shard after
    /// a change sees at least that change.
    pub(crate) fn sum(&self) -> isize {
        self.shards
            .iter()
            .map(|shard| shard.0.load(Ordering::SeqCst))
            .sum()
    }
}

/// How one registered service counts toward the supervisor's readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Ready, or out of the count (terminated cleanly, or removed).
    Clear,
    /// Alive and not ready.
    Waiting,
    /// Terminated by failure.
    Failed,
}

/// One sink's state for one service.
#[derive(Default)]
pub(crate) enum SinkHandle {
    /// Not resolved yet (or `resolve` panicked: tried again next time).
    #[default]
    Unresolved,
    Resolved(Box<dyn Any + Send + Sync>),
    /// Given back with `service_removed`.
    Released,
}

/// What every service's task shares: the counters and sinks events go to,
/// the supervisor's clock origin, and the settings the tasks read.
///
/// A nested supervisor shares the counters, the sinks, the clock origin and
/// the event bus with its whole tree ([`Telemetry::new_child`]); the
/// readiness counts and their `Notify` are each supervisor's own.
pub(crate) struct Telemetry {
    pub(crate) counters: Arc<SupervisorMetrics>,
    sinks: Box<[Arc<dyn DynSink>]>,
    epoch: Instant,
    pub(crate) clean_restart_delay: Duration,
    pub(crate) events: Arc<EventBus>,
    /// Registered services that hold readiness back: alive and not ready.
    pub(crate) waiting: ShardedCount,
    /// Registered services that terminated by failure.
    pub(crate) failed: AtomicUsize,
    /// Woken when `waiting` drops to zero, and when a service fails for good,
    /// if anyone waits (`ready_waiters`): a restart loop of a ready service
    /// takes `waiting` to zero once per cycle.
    pub(crate) readiness: Notify,
    pub(crate) ready_waiters: AtomicUsize,
}

impl Telemetry {
    pub(crate) fn new(
        sinks: Vec<Arc<dyn DynSink>>,
        clean_restart_delay: Duration,
        event_capacity: usize,
    ) -> Self {
        Self {
            counters: Arc::new(SupervisorMetrics::new()),
            sinks: sinks.into_boxed_slice(),
            epoch: Instant::now(),
            clean_restart_delay,
            events: Arc::new(EventBus::new(event_capacity)),
            waiting: ShardedCount::default(),
            failed: AtomicUsize::new(0),
            readiness: Notify::new(),
            ready_waiters: AtomicUsize::new(0),
        }
    }

    /// The telemetry of a nested supervisor under `parent`: the same
    /// counters, sinks (then `own_sinks`, the child's own), clock origin and
    /// event bus, so the whole tree is counted, numbered and exported as one;
    /// but its own readiness counts, since a nested supervisor's readiness is
    /// its own (its node is ready only once it is).
    pub(crate) fn new_child(
        parent: &Telemetry,
        own_sinks: &[Arc<dyn DynSink>],
        clean_restart_delay: Duration,
    ) -> Self {
        Self {
            counters: Arc::clone(&parent.counters),
            sinks: parent.sinks.iter().chain(own_sinks).cloned().collect(),
            epoch: parent.epoch,
            clean_restart_delay,
            events: Arc::clone(&parent.events),
            waiting: ShardedCount::default(),
            failed: AtomicUsize::new(0),
            readiness: Notify::new(),
            ready_waiters: AtomicUsize::new(0),
        }
    }

    /// Moves one service's readiness standing from `from` to `to`.
    pub(crate) fn restand(&self, from: Standing, to: Standing) {
        if from == to {
            return;
        }
        // SeqCst: a waiter counts itself in, then reads the counts; a change
        // moves a count, then reads the waiters. One of them sees the other.
        let mut wake = false;
        match from {
            Standing::Waiting => {
                self.waiting.add(-1);
                // The total may have reached zero: a waiter sums it.
                wake = true;
            }
            Standing::Failed => {
                self.failed.fetch_sub(1, Ordering::SeqCst);
            }
            Standing::Clear => {}
        }
        match to {
            Standing::Waiting => self.waiting.add(1),
            Standing::Failed => {
                self.failed.fetch_add(1, Ordering::SeqCst);
                wake = true;
            }
            Standing::Clear => {}
        }
        if wake && self.ready_waiters.load(Ordering::SeqCst) != 0 {
            self.readiness.notify_waiters();
        }
    }

    /// Time since the supervisor was created, the origin of every time value
    /// handed to `backoff` and `lifecycle`.
    pub(crate) fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.epoch)
    }

    /// The instant `since_epoch` after the supervisor was created.
    pub(crate) fn instant(&self, since_epoch: Duration) -> Instant {
        self.epoch + since_epoch
    }

    /// Whether any sink listens (if not, no event is ever queued).
    pub(crate) fn has_sinks(&self) -> bool {
        !self.sinks.is_empty()
    }

    /// One unresolved handle per sink, for a new service.
    pub(crate) fn new_handles(&self) -> Box<[SinkHandle]> {
        self.sinks.iter().map(|_| SinkHandle::Unresolved).collect()
    }

    /// Feeds `event` to the built-in counters.
    pub(crate) fn count(&self, event: &SinkEvent) {
        let counters = &*self.counters;
        match event {
            SinkEvent::Spawned => counters.service_spawned(&()),
            SinkEvent::Started { start_count } => counters.service_started(&(), *start_count),
            SinkEvent::Failed { kind } => counters.service_failed(&(), *kind),
            SinkEvent::CircuitOpened {
                failures,
                max_retries,
            } => counters.circuit_opened(&(), *failures, *max_retries),
            SinkEvent::Terminated(terminated) => {
                let (reason, uptime) = &**terminated;
                counters.service_terminated(&(), reason, *uptime);
            }
            SinkEvent::Phase { .. } | SinkEvent::Backoff { .. } | SinkEvent::Removed => {}
        }
    }

    /// Delivers `event` about `service` to every sink, one call per sink,
    /// each under its own `catch_unwind`. `handles` has one entry per sink.
    pub(crate) fn deliver(&self, service: &str, handles: &mut [SinkHandle], event: &SinkEvent) {
        for (sink, handle) in self.sinks.iter().zip(handles.iter_mut()) {
            if matches!(event, SinkEvent::Removed) {
                if let SinkHandle::Resolved(resolved) =
                    std::mem::replace(handle, SinkHandle::Released)
                {
                    contain(|| sink.remove(resolved));
                }
                continue;
            }
            if matches!(handle, SinkHandle::Unresolved) {
                match panic::catch_unwind(AssertUnwindSafe(|| sink.resolve(service))) {
                    Ok(resolved) => *handle = SinkHandle::Resolved(resolved),
                    Err(payload) => {
                        drop_payload(payload);
                        tracing::error!(
                            service,
                            "a metrics sink panicked resolving a service; the event was dropped for that sink"
                        );
                        continue;
                    }
                }
            }
            if let SinkHandle::Resolved(resolved) = handle {
                contain(|| sink.deliver(&**resolved, event));
            }
        }
    }
}

/// Runs `f`, catching a panic (logged, payload dropped safely).
fn contain(f: impl FnOnce()) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(f)) {
        drop_payload(payload);
        tracing::error!("a metrics sink panicked; the event was dropped for that sink");
    }
}

pin_project_lite::pin_project! {
    /// A future that runs inside a tracing span, as `tracing::Instrumented`
    /// does, with the span boxed, and not kept at all when no subscriber
    /// wants it: every service's task is 32 bytes smaller when tracing is
    /// off.
    pub(crate) struct InSpan<F> {
        #[pin]
        inner: F,
        span: Option<Box<tracing::Span>>,
    }
}

impl<F> InSpan<F> {
    pub(crate) fn new(inner: F, span: tracing::Span) -> Self {
        let span = (!span.is_disabled()).then(|| Box::new(span));
        Self { inner, span }
    }
}

impl<F: std::future::Future> std::future::Future for InSpan<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.project();
        let _entered = this.span.as_deref().map(tracing::Span::enter);
        this.inner.poll(cx)
    }
}
