//! The stream behind `GET /events`: a `status` event, the lifecycle events,
//! lags, and a last `status` event once the supervisor has drained.
//!
//! # Invariants
//!
//! 1. The first `status` is taken after subscribing, so with the `seq` of
//!    each snapshot a client joins without a gap or a duplicate; a lag is
//!    followed by a fresh `status` for the same reason.
//! 2. Nothing is buffered here beyond the events of one lag or of the end
//!    (bounded by the supervisor's channel): a slow client lags in the
//!    channel, and never slows a service.
//! 3. The stream ends once the supervisor has drained (or is gone), after
//!    the events queued by then.

use std::collections::VecDeque;

use futures::future::BoxFuture;
use futures::{FutureExt as _, Stream};
use supervisor_core::{LifecycleEvent, LifecycleEvents, RecvError, Supervisor};
use tokio::sync::OwnedSemaphorePermit;

use crate::ReadyWhen;
use crate::routes::{SseItem, Status, json_event};
use crate::server::drained;

/// The event stream of `supervisor`, holding `permit` until it is dropped.
pub(crate) fn event_stream(
    supervisor: Supervisor,
    ready_when: ReadyWhen,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = SseItem> + Send + 'static {
    let events = supervisor.subscribe();
    let mut pending = VecDeque::new();
    pending.push_back(json_event(
        Some("status"),
        &Status::of(&supervisor, ready_when),
    ));
    let reader = Reader {
        drained: Box::pin(drained(&supervisor)),
        supervisor,
        ready_when,
        events,
        pending,
        ended: false,
        _permit: permit,
    };
    futures::stream::unfold(reader, Reader::next)
}

/// The state of one event stream.
struct Reader {
    supervisor: Supervisor,
    /// The policy of the `readiness` in each `status` event.
    ready_when: ReadyWhen,
    events: LifecycleEvents,
    /// Completes once the supervisor has drained.
    drained: BoxFuture<'static, ()>,
    /// Events to send before reading more.
    pending: VecDeque<axum::response::sse::Event>,
    /// Nothing will be read any more: the stream ends with `pending`.
    ended: bool,
    _permit: OwnedSemaphorePermit,
}

impl Reader {
    async fn next(mut self) -> Option<(SseItem, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(event), self));
            }
            if self.ended {
                return None;
            }
            tokio::select! {
                // Events first: what happened before the drain's end is sent
                // before the stream ends.
                biased;
                received = self.events.recv() => self.receive(received),
                () = &mut self.drained => self.end(),
            }
        }
    }

    fn receive(&mut self, received: Result<LifecycleEvent, RecvError>) {
        match received {
            Ok(event) => self.pending.push_back(lifecycle_event(&event)),
            Err(RecvError::Lagged { missed }) => {
                self.pending
                    .push_back(json_event(Some("lagged"), &Lagged { missed }));
                self.pending.push_back(json_event(
                    Some("status"),
                    &Status::of(&self.supervisor, self.ready_when),
                ));
            }
            // The supervisor is gone (or a variant added later): nothing
            // more will come.
            Err(_) => self.ended = true,
        }
    }

    /// The supervisor has drained: sends what is queued, a last `status`,
    /// and ends.
    fn end(&mut self) {
        // Without the cooperative budget, a queued event is never reported
        // as pending: this reads exactly what is queued.
        while let Some(received) = tokio::task::unconstrained(self.events.recv()).now_or_never() {
            self.receive(received);
            if self.ended {
                break;
            }
        }
        self.pending.push_back(json_event(
            Some("status"),
            &Status::of(&self.supervisor, self.ready_when),
        ));
        self.ended = true;
    }
}

/// A lifecycle event: its JSON as data, its `seq` as `id:`.
fn lifecycle_event(event: &LifecycleEvent) -> axum::response::sse::Event {
    json_event(None, event).id(event.seq.to_string())
}

/// The data of a `lagged` event.
#[derive(serde::Serialize)]
struct Lagged {
    missed: u64,
}
