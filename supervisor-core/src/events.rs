//! Lifecycle events: one for every change of every service, on a
//! `tokio::sync::broadcast` channel.
//!
//! # Invariants
//!
//! 1. Every change of a lifecycle gets a sequence number from one
//!    supervisor-wide counter, under the service's lock: a service's events
//!    are sent in the order of their numbers, and a snapshot carries the
//!    number of the latest change it includes.
//! 2. Nothing is built, numbered or sent while nobody subscribes: the
//!    subscriber count is one atomic, read under each change's lock. A change
//!    nobody hears takes the counter's current value without moving it, so a
//!    change published later still numbers above every snapshot taken
//!    before it.
//! 3. The channel is made at the first subscription: a supervisor without
//!    subscribers allocates nothing for events.
//! 4. Events travel in batches: the events one service queued between two
//!    deliveries (a restart cycle's three transitions), sent by its one
//!    deliverer at a time (see `slot.rs`), so a service's events stay in
//!    order and a busy service pays one send per cycle, not one per event.
//!    Batches are numbered by the events they carry, in channel order, so a
//!    subscriber that lagged learns exactly how many events it missed.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::Stream;
use lifecycle::{FailureKind, ServicePhase, TerminationReason};
use tokio::sync::broadcast;
use tokio_util::sync::ReusableBoxFuture;

/// What a [`LifecycleEvent`] reports.
///
/// # Examples
///
/// ```
/// use supervisor_core::EventKind;
///
/// assert_eq!(EventKind::Transition.as_str(), "transition");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum EventKind {
    /// The service was registered (`from` and `to` are both `Starting`).
    Spawned,
    /// The phase changed from `from` to `to`.
    Transition,
    /// The current run said it is ready (the phase stays `Running`).
    Ready,
    /// The service was forgotten: removed, a temporary service that
    /// terminated, or a terminated one replaced by a new spawn of its name.
    /// Its last event.
    Removed,
}

impl EventKind {
    /// A stable `snake_case` label.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::EventKind;
    ///
    /// assert_eq!(EventKind::Removed.as_str(), "removed");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Spawned => "spawned",
            EventKind::Transition => "transition",
            EventKind::Ready => "ready",
            EventKind::Removed => "removed",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change of one service, as sent to
/// [`Supervisor::subscribe`](crate::Supervisor::subscribe)rs.
///
/// # Examples
///
/// ```
/// use supervisor_core::{service_fn, EventKind, ServiceContext, ServicePhase, Supervisor, SupervisorConfig};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
/// let mut events = supervisor.subscribe();
/// supervisor.spawn_service(service_fn("feed", |ctx: ServiceContext| async move {
///     ctx.cancelled().await;
///     anyhow::Ok(())
/// }))?;
///
/// let spawned = events.recv().await?;
/// assert_eq!((spawned.kind, &*spawned.service), (EventKind::Spawned, "feed"));
/// let running = events.recv().await?;
/// assert_eq!((running.from, running.to), (ServicePhase::Starting, ServicePhase::Running));
/// assert_eq!(running.generation, 1); // The first run.
/// assert!(running.ready); // Ready as it starts: it does not signal readiness itself.
/// assert!(running.seq > spawned.seq);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct LifecycleEvent {
    /// The service's name.
    pub service: Arc<str>,
    /// The change's number: supervisor-wide, increasing in the order a
    /// service's changes happen (see
    /// [`Supervisor::subscribe`](crate::Supervisor::subscribe) for joining a
    /// stream to snapshots with it).
    pub seq: u64,
    /// The run the change belongs to: the service's start count (0 before
    /// its first start).
    pub generation: u64,
    /// What happened.
    pub kind: EventKind,
    /// The phase before the change.
    pub from: ServicePhase,
    /// The phase after the change.
    pub to: ServicePhase,
    /// Whether the service is ready after the change.
    pub ready: bool,
    /// Why the service terminated, on the transition into `Terminated`.
    pub reason: Option<TerminationReason>,
    /// How the run that just ended failed, on the transition that follows a
    /// failed run.
    pub failure: Option<FailureKind>,
    /// The failure's message (the error chain, or the panic message).
    pub error: Option<Arc<str>>,
    /// When, as time since the supervisor was created (the clock of every
    /// snapshot's times).
    pub at: Duration,
}

/// A [`LifecycleEvent`] as queued and sent: without its service's name,
/// which its batch carries once (the name's reference count is shared with
/// the subscriber's thread: touching it per event costs more than the
/// event).
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) seq: u64,
    pub(crate) generation: u64,
    pub(crate) kind: EventKind,
    pub(crate) from: ServicePhase,
    pub(crate) to: ServicePhase,
    pub(crate) ready: bool,
    /// Boxed: rare, and every queued change would be as large as a reason.
    pub(crate) reason: Option<Box<TerminationReason>>,
    pub(crate) failure: Option<FailureKind>,
    pub(crate) error: Option<Arc<str>>,
    pub(crate) at: Duration,
}

impl Change {
    fn into_event(self, service: Arc<str>) -> LifecycleEvent {
        LifecycleEvent {
            service,
            seq: self.seq,
            generation: self.generation,
            kind: self.kind,
            from: self.from,
            to: self.to,
            ready: self.ready,
            reason: self.reason.map(|reason| *reason),
            failure: self.failure,
            error: self.error,
            at: self.at,
        }
    }
}

/// Why [`LifecycleEvents::recv`] returned no event.
///
/// # Examples
///
/// ```
/// use supervisor_core::RecvError;
///
/// let lagged = RecvError::Lagged { missed: 3 };
/// assert_eq!(lagged.to_string(), "the subscriber fell behind and missed 3 events");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecvError {
    /// The subscriber fell behind by more than the channel's capacity
    /// ([`SupervisorConfig::with_event_capacity`](crate::SupervisorConfig::with_event_capacity)):
    /// this many of the oldest events were dropped for it. The next call
    /// returns the oldest event still kept. Services are never slowed down
    /// by a slow subscriber.
    Lagged {
        /// Events this subscriber missed.
        missed: u64,
    },
    /// The supervisor and every service are gone: no event will ever come.
    Closed,
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Lagged { missed } => {
                write!(f, "the subscriber fell behind and missed {missed} events")
            }
            RecvError::Closed => f.write_str("the supervisor is gone"),
        }
    }
}

impl std::error::Error for RecvError {}

/// The events a batch carries inline: a restart cycle's three transitions.
/// Inline, so that a delivery allocates nothing (an allocation here is
/// freed by the subscriber, on another thread, and the allocator's locks
/// would then cost more than the events).
const INLINE: usize = 3;

/// Events of one service, in order, as one message on the channel.
#[derive(Clone)]
struct Batch {
    /// How many events were sent on the channel before this batch.
    first: u64,
    service: Arc<str>,
    inline: [Option<Change>; INLINE],
    /// The events past the inline ones (rare: several changes between two
    /// deliveries).
    more: Option<Arc<[Change]>>,
}

impl Batch {
    fn len(&self) -> usize {
        self.inline.iter().flatten().count() + self.more.as_ref().map_or(0, |more| more.len())
    }

    /// The event at `index`, taken out of this (received) copy.
    fn take(&mut self, index: usize) -> Option<LifecycleEvent> {
        let change = match self.inline.get_mut(index) {
            Some(change) => change.take(),
            None => self
                .more
                .as_ref()
                .and_then(|more| more.get(index - INLINE).cloned()),
        };
        Some(change?.into_event(Arc::clone(&self.service)))
    }
}

/// The supervisor's side of the event channel.
pub(crate) struct EventBus {
    subscribers: AtomicUsize,
    seq: AtomicU64,
    capacity: usize,
    sender: OnceLock<broadcast::Sender<Batch>>,
    /// Events sent so far; held across each send, so batches are numbered
    /// in channel order.
    sent: Mutex<u64>,
}

impl EventBus {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            subscribers: AtomicUsize::new(0),
            seq: AtomicU64::new(0),
            capacity: capacity.max(1),
            sender: OnceLock::new(),
            sent: Mutex::new(0),
        }
    }

    /// Whether an event should be built (someone may receive it).
    pub(crate) fn is_heard(&self) -> bool {
        self.subscribers.load(Ordering::Acquire) != 0
    }

    /// The number of a change: a fresh one if it is heard, the current one
    /// otherwise (invariant 2).
    pub(crate) fn number(&self, heard: bool) -> u64 {
        if heard {
            self.seq.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            self.seq.load(Ordering::Acquire)
        }
    }

    /// Sends `events` (`service`'s, in order) to every subscriber, as one
    /// batch; leaves `events` empty, with its capacity.
    pub(crate) fn send(&self, service: &Arc<str>, events: &mut Vec<Change>) {
        let Some(sender) = self.sender.get() else {
            events.clear();
            return;
        };
        let count = events.len() as u64;
        let more = (events.len() > INLINE).then(|| events.drain(INLINE..).collect());
        let mut drained = events.drain(..);
        let inline = std::array::from_fn(|_| drained.next());
        drop(drained);
        let mut sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        let first = *sent;
        *sent += count;
        // No receiver left is not an error: the events are simply unheard.
        let _ = sender.send(Batch {
            first,
            service: Arc::clone(service),
            inline,
            more,
        });
    }

    /// A new subscription. Counted before the receiver exists, so a change
    /// that sees the count zero happened before the subscription and is in
    /// every snapshot taken after it.
    pub(crate) fn subscribe(bus: &Arc<Self>) -> LifecycleEvents {
        bus.subscribers.fetch_add(1, Ordering::AcqRel);
        let guard = Subscription(Arc::downgrade(bus));
        let sender = bus
            .sender
            .get_or_init(|| broadcast::Sender::new(bus.capacity));
        // Under the numbering lock: the receiver sees exactly the batches
        // numbered from here on.
        let sent = bus.sent.lock().unwrap_or_else(PoisonError::into_inner);
        let receiver = sender.subscribe();
        let expected = *sent;
        drop(sent);
        LifecycleEvents {
            next: ReusableBoxFuture::new(receive(receiver)),
            batch: None,
            at: 0,
            expected,
            _subscription: guard,
        }
    }
}

/// Counts a subscriber out when its stream is dropped. Weak, so that a
/// subscription does not keep the channel open once the supervisor is gone.
struct Subscription(Weak<EventBus>);

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(bus) = self.0.upgrade() {
            bus.subscribers.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

type Received = (
    Result<Batch, broadcast::error::RecvError>,
    broadcast::Receiver<Batch>,
);

async fn receive(mut receiver: broadcast::Receiver<Batch>) -> Received {
    let result = receiver.recv().await;
    (result, receiver)
}

/// A subscription to a supervisor's [`LifecycleEvent`]s, from
/// [`Supervisor::subscribe`](crate::Supervisor::subscribe): read it with
/// [`recv`](Self::recv), or as a [`Stream`] (which ends when the supervisor
/// is gone).
///
/// # Examples
///
/// ```
/// use futures::StreamExt as _;
/// use supervisor_core::{service_fn, EventKind, ServiceContext, Supervisor, SupervisorConfig};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
/// let events = supervisor.subscribe();
/// supervisor.spawn_service(service_fn("once", |_ctx: ServiceContext| async { anyhow::Ok(()) })
///     .with_restart_policy(supervisor_core::RestartPolicy::Never))?;
///
/// let kinds: Vec<EventKind> = events
///     .take(2)
///     .map(|event| event.map(|event| event.kind))
///     .collect::<Vec<_>>()
///     .await
///     .into_iter()
///     .collect::<Result<_, _>>()?;
/// assert_eq!(kinds, [EventKind::Spawned, EventKind::Transition]);
/// # Ok(())
/// # }
/// ```
pub struct LifecycleEvents {
    next: ReusableBoxFuture<'static, Received>,
    /// The batch being read, and the index of its next event.
    batch: Option<Batch>,
    at: usize,
    /// The number of the next event: after a lag, the next batch's number
    /// says how many were missed.
    expected: u64,
    _subscription: Subscription,
}

impl LifecycleEvents {
    /// The next event.
    ///
    /// # Errors
    ///
    /// [`RecvError::Lagged`] if this subscriber fell behind (the call after
    /// it returns the oldest event kept); [`RecvError::Closed`] once the
    /// supervisor and all its services are gone.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: an event is never lost by dropping the future.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{service_fn, EventKind, ServiceContext, Supervisor, SupervisorConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let mut events = supervisor.subscribe();
    /// supervisor.spawn_service(service_fn("feed", |ctx: ServiceContext| async move {
    ///     ctx.cancelled().await;
    ///     anyhow::Ok(())
    /// }))?;
    /// assert_eq!(events.recv().await?.kind, EventKind::Spawned);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Result<LifecycleEvent, RecvError> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<LifecycleEvent, RecvError>> {
        loop {
            if let Some(batch) = &mut self.batch {
                if let Some(event) = batch.take(self.at) {
                    self.at += 1;
                    return Poll::Ready(Ok(event));
                }
                self.batch = None;
            }
            let (result, receiver) = ready!(self.next.poll(cx));
            self.next.set(receive(receiver));
            match result {
                Ok(batch) => {
                    let missed = batch.first.saturating_sub(self.expected);
                    self.expected = batch.first + batch.len() as u64;
                    self.batch = Some(batch);
                    self.at = 0;
                    if missed > 0 {
                        return Poll::Ready(Err(RecvError::Lagged { missed }));
                    }
                }
                // The next batch says how many events were missed.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    return Poll::Ready(Err(RecvError::Closed));
                }
            }
        }
    }
}

impl Stream for LifecycleEvents {
    /// An event, or [`RecvError::Lagged`]; the stream ends instead of
    /// yielding [`RecvError::Closed`].
    type Item = Result<LifecycleEvent, RecvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match ready!(self.get_mut().poll_recv(cx)) {
            Err(RecvError::Closed) => Poll::Ready(None),
            item => Poll::Ready(Some(item)),
        }
    }
}

impl fmt::Debug for LifecycleEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LifecycleEvents").finish_non_exhaustive()
    }
}
