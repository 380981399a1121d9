//! The state machine of one supervised service: phases, the transition table,
//! termination reasons and snapshots.
//!
//! `lifecycle` is pure: it never reads a clock, sleeps, spawns or does I/O.
//! Time is an input: every method that needs it takes `now`, a
//! [`Duration`](core::time::Duration) since an origin the caller chooses (for
//! example the supervisor's start, measured with `tokio::time::Instant`).
//!
//! # Key types
//!
//! - [`ServiceLifecycle`]: the state machine of one service, with its
//!   counters (starts, restarts, [`FailureCounts`] by [`FailureKind`]), its last error, its backoff delay,
//!   its termination reason and its cumulative running time. Its numbered
//!   invariants are listed in [its documentation](ServiceLifecycle#invariants).
//! - [`ServicePhase`]: `Starting`, `Running`, `BackingOff`, `Restarting`,
//!   `Stopping`, `Terminated`, and the transition table,
//!   [`ServicePhase::can_transition_to`], the only place that decides which
//!   move is legal.
//! - [`TerminationReason`]: why a service reached `Terminated`, with a human
//!   sentence and a stable [`kind`](TerminationReason::kind) label.
//! - [`ServiceLifecycleSnapshot`]: a plain-data copy for status pages,
//!   exporters and logs.
//! - [`RestartIntensity`] and [`IntensityWindow`]: how many restarts a group
//!   of services may make within a period, counted as OTP's `supervisor`
//!   counts them; [`IntensityExceeded`] when the group must give up.
//! - [`InvalidTransition`] and [`NotRunning`]: the typed errors. An illegal
//!   move returns one of them and changes nothing; nothing here panics.
//!
//! # Who should depend on this crate
//!
//! The supervisor core, which drives one [`ServiceLifecycle`] per service, and
//! any adapter that only reads lifecycle data (metrics exporters, status
//! endpoints): they depend on this small, runtime-free crate and not on the
//! supervisor.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `serde` | no      | `Serialize`/`Deserialize` for [`ServicePhase`] (as its [`as_str`](ServicePhase::as_str) label), [`TerminationReason`], [`FailureKind`], [`FailureCounts`] and [`ServiceLifecycleSnapshot`] |
//!
//! # Examples
//!
//! A service runs, fails, backs off, restarts, and is shut down, with times
//! given explicitly:
//!
//! ```
//! use core::time::Duration;
//! use supervisor_lifecycle::{FailureKind, ServiceLifecycle, ServicePhase, TerminationReason};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let at = Duration::from_millis;
//! let mut lifecycle = ServiceLifecycle::new("market-feed", at(0));
//!
//! // First run: 500 ms, then it fails.
//! lifecycle.transition_to_running(at(0))?;
//! lifecycle.record_failure(FailureKind::Error, "websocket closed")?;
//! lifecycle.transition_to_backing_off(at(500), at(100))?;
//! assert_eq!(lifecycle.phase(), ServicePhase::BackingOff);
//! assert_eq!(lifecycle.current_backoff(), Some(at(100)));
//!
//! // The backoff delay is over: restart.
//! lifecycle.transition_to_restarting(at(600))?;
//! lifecycle.transition_to_running(at(600))?;
//! assert_eq!(lifecycle.start_count(), 2);
//! assert_eq!(lifecycle.restart_count(), 1);
//!
//! // An illegal move is rejected and changes nothing.
//! let before = lifecycle.clone();
//! let error = lifecycle.transition_to_restarting(at(700)).unwrap_err();
//! assert_eq!(error.to_string(), "invalid lifecycle transition from running to restarting");
//! assert_eq!(lifecycle, before);
//!
//! // Shutdown after a second run of 400 ms.
//! lifecycle.transition_to_stopping(at(1_000))?;
//! lifecycle.transition_to_terminated(at(1_050), TerminationReason::Cancelled)?;
//!
//! let snapshot = lifecycle.snapshot(at(2_000));
//! assert_eq!(snapshot.phase, ServicePhase::Terminated);
//! assert_eq!(snapshot.failures.error, 1);
//! assert_eq!(snapshot.last_error.as_deref(), Some("websocket closed"));
//! assert_eq!(snapshot.termination_reason, Some(TerminationReason::Cancelled));
//! assert_eq!(snapshot.cumulative_running_time, at(900));
//! # Ok(())
//! # }
//! ```

mod error;
mod failure;
mod intensity;
mod machine;
mod phase;
mod reason;
mod snapshot;

pub use crate::error::{InvalidTransition, NotRunning};
pub use crate::failure::{FailureCounts, FailureKind};
pub use crate::intensity::{IntensityExceeded, IntensityWindow, RestartIntensity};
pub use crate::machine::ServiceLifecycle;
pub use crate::phase::ServicePhase;
pub use crate::reason::TerminationReason;
pub use crate::snapshot::ServiceLifecycleSnapshot;

// The README's example is a doctest too, so that it stays true to the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
