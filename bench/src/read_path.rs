//! Scenario 6: `lifecycle_snapshots()` of N services while a service restarts
//! — the snapshot's latency, and how much a reader taking snapshots back to
//! back slows the restarts.
//!
//! The reader is its own OS thread (as a metrics exporter or an admin endpoint
//! on a blocking thread would be); the restarts run on the 2-worker runtime.
//! Rounds alternate: no reader, a control thread, the snapshot reader. The
//! control thread does the same kind of work as a snapshot (reads 100k names,
//! allocates a string for each and a vector of 152-byte records) without
//! touching the supervisor: on a 2-core machine any busy thread slows the
//! restarts, and the control shows how much of the slowdown is the machine's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use supervisor_core::Supervisor;

use crate::fleet::{Fleet, Variant};
use crate::measure::{Arrivals, median, now, per, run_on_worker, runtime};
use crate::script::{Script, names};

/// What scenario 6 measured.
#[derive(Debug)]
pub(crate) struct ReadPath {
    /// ns per restart without a reader, one per round.
    pub(crate) alone: Vec<f64>,
    /// ns per restart while the reader runs, one per round.
    pub(crate) with_reader: Vec<f64>,
    /// ns per restart while the control thread runs, one per round.
    pub(crate) with_control: Vec<f64>,
    /// ns per `lifecycle_snapshots()` call, every call of every round.
    pub(crate) latencies: Vec<f64>,
}

impl ReadPath {
    /// Restarts with the reader ÷ without, on the medians.
    pub(crate) fn slowdown(&self) -> f64 {
        median(&self.with_reader) / median(&self.alone)
    }

    /// Restarts with the reader ÷ with the control thread: the part of the
    /// slowdown the supervisor's read path is responsible for.
    pub(crate) fn slowdown_vs_control(&self) -> f64 {
        median(&self.with_reader) / median(&self.with_control)
    }
}

/// `n` idle services plus one failing service restarting `restarts` times per
/// measurement, `rounds` times without and with the reader.
pub(crate) fn measure(n: usize, restarts: u64, rounds: usize, limit: Duration) -> Result<ReadPath> {
    let runtime = runtime()?;
    let names = names(n);
    run_on_worker(&runtime, async move {
        let running = Arc::new(Arrivals::new(n));
        let idle = Arc::new(Script::idle(Arc::clone(&running)));
        let mut fleet = Fleet::start_once(Variant::Project, &names, &idle)?;
        running.wait(limit).await?;
        let supervisor = fleet.supervisor().context("not a supervisor")?.clone();

        let mut result = ReadPath {
            alone: Vec::new(),
            with_reader: Vec::new(),
            with_control: Vec::new(),
            latencies: Vec::new(),
        };
        for round in 0..rounds {
            for mode in [Mode::Alone, Mode::Control, Mode::Snapshots] {
                let reader = match mode {
                    Mode::Alone => None,
                    Mode::Control => Some(Reader::start(Work::Control(Arc::clone(&names)))),
                    Mode::Snapshots => Some(Reader::start(Work::Snapshots(supervisor.clone(), n))),
                };
                if let Some(reader) = &reader {
                    reader.wait_for_first(limit).await?;
                }
                let done = Arc::new(Arrivals::new(1));
                let script = Arc::new(Script::failing(restarts, Arc::clone(&done)));
                let name = Arc::from(format!("crasher-{round}-{mode:?}"));
                let started = now();
                fleet.spawn_restarting(&name, &script)?;
                done.wait(limit).await?;
                let ns = per(started.elapsed(), restarts);
                let latencies = match reader {
                    Some(reader) => reader.stop().await?,
                    None => Vec::new(),
                };
                match mode {
                    Mode::Alone => result.alone.push(ns),
                    Mode::Control => result.with_control.push(ns),
                    Mode::Snapshots => {
                        result.with_reader.push(ns);
                        result.latencies.extend(latencies);
                    }
                }
                ensure!(script.runs() == restarts + 1, "the crasher did not finish");
            }
        }
        fleet.drain(limit).await?;
        Ok(result)
    })
}

/// What runs next to the restarts in a round.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Alone,
    Control,
    Snapshots,
}

/// What the reader thread does, back to back.
enum Work {
    /// `lifecycle_snapshots()`, which must list at least this many services.
    Snapshots(Supervisor, usize),
    /// The same kind of work without the supervisor.
    Control(Arc<[Arc<str>]>),
}

impl Work {
    /// One iteration.
    fn once(&self) -> Result<()> {
        match self {
            Work::Snapshots(supervisor, at_least) => {
                let snapshots = supervisor.lifecycle_snapshots();
                ensure!(
                    snapshots.len() >= *at_least,
                    "a snapshot of {} services, expected at least {at_least}",
                    snapshots.len()
                );
            }
            Work::Control(names) => {
                let records: Vec<(String, [u64; 16])> = names
                    .iter()
                    .map(|name| (name.to_string(), [name.len() as u64; 16]))
                    .collect();
                std::hint::black_box(&records);
            }
        }
        Ok(())
    }
}

/// A thread doing [`Work`] back to back until stopped.
struct Reader {
    stop: Arc<AtomicBool>,
    taken: Arc<AtomicU64>,
    thread: JoinHandle<Result<Vec<f64>>>,
}

impl Reader {
    fn start(work: Work) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let taken = Arc::new(AtomicU64::new(0));
        let thread = std::thread::spawn({
            let stop = Arc::clone(&stop);
            let taken = Arc::clone(&taken);
            move || {
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Acquire) {
                    let started = now();
                    work.once()?;
                    latencies.push(started.elapsed().as_nanos() as f64);
                    taken.fetch_add(1, Ordering::Release);
                }
                Ok(latencies)
            }
        });
        Self {
            stop,
            taken,
            thread,
        }
    }

    /// Waits until the reader is in its steady state (one snapshot done).
    async fn wait_for_first(&self, limit: Duration) -> Result<()> {
        let started = now();
        while self.taken.load(Ordering::Acquire) == 0 {
            if started.elapsed() > limit || self.thread.is_finished() {
                bail!("the snapshot reader did not take a snapshot");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    }

    /// Stops the reader; its latencies, in ns.
    async fn stop(self) -> Result<Vec<f64>> {
        self.stop.store(true, Ordering::Release);
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .context("cannot join the reader")?
            .map_err(|_| anyhow::anyhow!("the snapshot reader panicked"))?
    }
}
