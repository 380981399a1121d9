//! Group restarts: the `OneForAll` and `RestForOne` strategies, run by one
//! coordinator task per supervisor.
//!
//! Everything a group restart decides lives here, apart from the runners: a
//! child supervisor could run the same coordinator over its own children.
//!
//! # Invariants
//!
//! 1. Under `OneForOne` nothing of this exists: no coordinator, no channel,
//!    no hold; a runner's restart path reads one `Option` more.
//! 2. A runner whose policy calls for a restart under `OneForAll` or
//!    `RestForOne` holds itself (`Hold::Held`, in `BackingOff`) before it
//!    asks for a cycle, and starts again only when a cycle releases it (or
//!    terminates when it is asked to stop). So no service starts on its own
//!    under these strategies.
//! 3. The coordinator runs one cycle at a time: it holds the group's other
//!    services newest first, each once the previous one is held (or
//!    terminated), waits for the failed service's backoff, then releases
//!    them oldest first, each once the previous one started (and is ready, if
//!    it signals readiness). A request whose service was restarted since (by
//!    an earlier cycle) or stopped is dropped.
//! 4. Nothing is released once the supervisor drains: held services wait
//!    for the drain's stop, and terminate `Cancelled`.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use lifecycle::{IntensityExceeded, IntensityWindow, ServicePhase};
use tokio::sync::mpsc;

use crate::drain::ShutdownCause;
use crate::shared::Shared;
use crate::slot::{DependencyState, Hold, ServiceSlot, StopCause};
use crate::{RestartPolicy, Strategy, SupervisorConfig};

/// What a supervisor keeps for its strategy; `None` in `Shared` under
/// `OneForOne`.
pub(crate) struct Group {
    strategy: Strategy,
    /// The restarts charged, if a restart intensity is set.
    window: Option<Mutex<IntensityWindow>>,
    /// The coordinator's queue, under `OneForAll` and `RestForOne`.
    cycles: Option<Cycles>,
}

/// The coordinator's queue: made with the group, its receiver taken by the
/// coordinator task when the first spawn starts it.
struct Cycles {
    sender: mpsc::UnboundedSender<CycleRequest>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<CycleRequest>>>,
}

/// A service's request for a group restart.
pub(crate) struct CycleRequest {
    slot: Arc<ServiceSlot>,
    /// The run that ended: the request is current while the service is held
    /// since then.
    start_count: u64,
    /// When the failed service's backoff is over (since the supervisor's
    /// creation).
    not_before: Duration,
}

impl Group {
    /// The group of a supervisor configured so, if it needs one: none under
    /// `OneForOne` without a restart intensity.
    pub(crate) fn new(config: &SupervisorConfig) -> Option<Self> {
        let window = config
            .restart_intensity
            .map(|intensity| Mutex::new(IntensityWindow::new(intensity)));
        let cycles = (config.strategy != Strategy::OneForOne).then(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            Cycles {
                sender,
                receiver: Mutex::new(Some(receiver)),
            }
        });
        if window.is_none() && cycles.is_none() {
            return None;
        }
        Some(Self {
            strategy: config.strategy,
            window,
            cycles,
        })
    }

    /// Whether policy restarts go through the coordinator.
    pub(crate) fn cycles(&self) -> bool {
        self.cycles.is_some()
    }
}

impl Shared {
    /// Asks the coordinator for a group restart set off by `slot`, whose run
    /// number `start_count` ended, not before `not_before`.
    pub(crate) fn request_cycle(
        &self,
        slot: &Arc<ServiceSlot>,
        start_count: u64,
        not_before: Duration,
    ) {
        if let Some(cycles) = self.group.as_ref().and_then(|group| group.cycles.as_ref()) {
            // The coordinator is gone only once the supervisor shuts down:
            // the held service then waits for the drain's stop.
            let _ = cycles.sender.send(CycleRequest {
                slot: Arc::clone(slot),
                start_count,
                not_before,
            });
        }
    }

    /// Starts the coordinator, unless it runs already or the strategy needs
    /// none. Called under the registry lock, from a runtime.
    pub(crate) fn start_coordinator(self: &Arc<Self>) {
        let Some(cycles) = self.group.as_ref().and_then(|group| group.cycles.as_ref()) else {
            return;
        };
        let Some(mut receiver) = cycles
            .receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        let weak: Weak<Shared> = Arc::downgrade(self);
        let cancel = self.cancel.clone();
        tokio::spawn(async move {
            loop {
                let request = tokio::select! {
                    biased;
                    () = cancel.cancelled() => return,
                    request = receiver.recv() => request,
                };
                let Some(request) = request else {
                    return;
                };
                let Some(shared) = Weak::upgrade(&weak) else {
                    return;
                };
                // A shutdown ends the cycle where it is (invariant 4).
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return,
                    () = shared.cycle(request) => {}
                }
            }
        });
    }

    /// One group restart (invariant 3).
    async fn cycle(&self, request: CycleRequest) {
        let CycleRequest {
            slot: failed,
            start_count,
            not_before,
        } = request;
        let Some(group) = &self.group else {
            return;
        };
        if self.is_draining() || !failed.is_held_after(start_count) {
            return;
        }
        // One charge for the whole cycle, before anything stops or starts.
        // Tripped: the failed service stays held until the drain stops it.
        if self.charge_restart(&failed, self.telemetry.now()).is_err() {
            return;
        }
        let order = failed.spec.order;
        let mut members: Vec<Arc<ServiceSlot>> = self
            .slots()
            .into_iter()
            .filter(|slot| !Arc::ptr_eq(slot, &failed))
            .filter(|slot| match group.strategy {
                Strategy::RestForOne => slot.spec.order > order,
                _ => true,
            })
            .collect();
        members.sort_unstable_by_key(|slot| slot.spec.order);
        tracing::info!(
            service = %failed.name,
            strategy = ?group.strategy,
            others = members.len(),
            "group restart"
        );

        // The others stop, newest first, one at a time.
        let mut held = Vec::with_capacity(members.len() + 1);
        for member in members.into_iter().rev() {
            if member.spec.policy == RestartPolicy::Never {
                let cause = StopCause::Group {
                    name: Arc::clone(&failed.name),
                };
                if member.request_stop(cause, self.telemetry.now()).is_ok() {
                    member.wait_until(|lc, _| !lc.phase().is_alive()).await;
                }
                continue;
            }
            if member.request_hold() {
                member
                    .wait_until(|lc, hold| hold == Hold::Held || !lc.phase().is_alive())
                    .await;
                held.push(member);
            } else {
                // Being stopped (by the host, or a dependency): it will not
                // start again, but its run may still be going; the group
                // starts again only once it is over.
                member.wait_until(|lc, _| !lc.phase().is_alive()).await;
            }
        }
        held.push(failed);
        held.sort_unstable_by_key(|slot| slot.spec.order);

        // The failed service's backoff, if it is not over yet (a timer
        // fires at the driver's next tick at the earliest, up to a
        // millisecond away even for a deadline already past).
        if self.telemetry.now() < not_before {
            tokio::time::sleep_until(self.telemetry.instant(not_before)).await;
        }

        // Then all start again, oldest first.
        for member in held {
            if self.is_draining() {
                return;
            }
            let waits = member
                .dependencies()
                .iter()
                .all(|dependency| matches!(dependency.dependency_state(), DependencyState::Ready));
            let Some(before) = member.release() else {
                continue;
            };
            if !waits {
                continue;
            }
            member
                .wait_until(|lc, hold| {
                    !lc.phase().is_alive()
                        || hold != Hold::None && hold != Hold::Released
                        || lc.start_count() > before
                            && (lc.is_ready() || lc.phase() != ServicePhase::Running)
                })
                .await;
        }
    }
}

impl Shared {
    /// Charges one restart called for by `slot` at `now` against the
    /// restart intensity, if one is set. When it trips, the shutdown begins
    /// (stopping the services in reverse start order) and the restart must
    /// not be made.
    pub(crate) fn charge_restart(
        &self,
        slot: &ServiceSlot,
        now: Duration,
    ) -> Result<(), IntensityExceeded> {
        let Some(window) = self.group.as_ref().and_then(|group| group.window.as_ref()) else {
            return Ok(());
        };
        let charged = window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .charge(now);
        let Err(exceeded) = charged else {
            return Ok(());
        };
        if !self.cancel.is_cancelled() {
            tracing::error!(service = %slot.name, %exceeded, "restart intensity exceeded: shutting down");
            // Before the shutdown begins, so that nothing the tripping
            // service's termination sets off stops out of order.
            self.stop_in_start_order();
            self.start_draining();
            self.shutdown(ShutdownCause::IntensityExceeded {
                service: slot.name.to_string(),
                max_restarts: exceeded.intensity.max_restarts(),
                period: exceeded.intensity.period(),
            });
        }
        Err(exceeded)
    }
}
