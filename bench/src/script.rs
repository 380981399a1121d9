//! The one service body every variant runs: fail a number of times, then
//! report and wait for cancellation.
//!
//! Writing the body once and handing it to the supervisor (as a [`Service`]),
//! to raw tokio tasks and to tokio-graceful-shutdown subsystems keeps the user
//! code identical on both sides of every ratio; only the machinery around it
//! differs.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use supervisor_core::{Service, ServiceContext};
use tokio_util::sync::CancellationToken;

use crate::measure::Arrivals;

/// The error of a failing run. A zero-sized type, so boxing it allocates
/// nothing: every allocation of a restart is the machinery's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Crash;

impl fmt::Display for Crash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("crashed on purpose")
    }
}

impl StdError for Crash {}

/// What a service does on each run, and the counters the scenario watches.
#[derive(Debug)]
pub(crate) struct Script {
    runs: AtomicU64,
    /// Runs `1..=failures` fail at once; later runs report `done` and wait for
    /// cancellation.
    failures: u64,
    /// If set, the first run reports `ready` and waits for the starting gun
    /// before failing (the burst scenario).
    gate: Option<Gate>,
    /// If set, the run with this number reports to `mark` (and goes on).
    checkpoint: Option<(u64, Arc<Arrivals>)>,
    done: Arc<Arrivals>,
}

/// The starting gun of the burst scenario.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    pub(crate) ready: Arc<Arrivals>,
    pub(crate) go: CancellationToken,
}

impl Script {
    /// Reports `done` on its first run and waits for cancellation.
    pub(crate) fn idle(done: Arc<Arrivals>) -> Self {
        Self::failing(0, done)
    }

    /// Fails `failures` times in a row, then reports `done` and waits.
    pub(crate) fn failing(failures: u64, done: Arc<Arrivals>) -> Self {
        Self {
            runs: AtomicU64::new(0),
            failures,
            gate: None,
            checkpoint: None,
            done,
        }
    }

    /// Waits for `gate` on its first run.
    pub(crate) fn with_gate(mut self, gate: Gate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Reports to `mark` when run number `run` starts.
    pub(crate) fn with_checkpoint(mut self, run: u64, mark: Arc<Arrivals>) -> Self {
        self.checkpoint = Some((run, mark));
        self
    }

    /// How many runs started.
    pub(crate) fn runs(&self) -> u64 {
        self.runs.load(Ordering::Acquire)
    }

    /// One run; `cancelled` completes when the service is asked to stop.
    pub(crate) async fn run_once(&self, cancelled: impl Future<Output = ()>) -> Result<(), Crash> {
        let run = self.runs.fetch_add(1, Ordering::AcqRel) + 1;
        if let Some((at, mark)) = &self.checkpoint {
            if run == *at {
                mark.arrive();
            }
        }
        if run == 1 {
            if let Some(gate) = &self.gate {
                gate.ready.arrive();
                gate.go.cancelled().await;
            }
        }
        if run <= self.failures {
            return Err(Crash);
        }
        self.done.arrive();
        cancelled.await;
        Ok(())
    }
}

/// A [`Script`] as a supervised service.
///
/// A `Service` impl rather than `service_fn`: its `run` borrows the script, so
/// the project pays no per-run `Arc` clone that the raw tasks do not pay.
#[derive(Debug)]
pub(crate) struct Scripted {
    pub(crate) name: Arc<str>,
    pub(crate) script: Arc<Script>,
}

impl Service for Scripted {
    type Error = Crash;

    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self, ctx: ServiceContext) -> Result<(), Crash> {
        self.script.run_once(ctx.cancelled()).await
    }
}

/// `n` distinct service names, made before any clock starts: the names are
/// the user's data, not the machinery's cost.
pub(crate) fn names(n: usize) -> Arc<[Arc<str>]> {
    (0..n).map(|i| Arc::from(format!("svc-{i:06}"))).collect()
}
