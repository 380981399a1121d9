//! Scenario 6: `lifecycle_snapshots()` of N services while a service restarts
//! — the snapshot's latency, and how much a reader taking snapshots back to
//! back slows the restarts.
//!
//! The reader is its own OS thread (as a metrics exporter or an admin endpoint
//! on a blocking thread would be); the restarts run on the 2-worker runtime.
//! Rounds alternate without / with the reader.

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
    /// ns per `lifecycle_snapshots()` call, every call of every round.
    pub(crate) latencies: Vec<f64>,
}

impl ReadPath {
    /// Restarts with the reader ÷ without, on the medians.
    pub(crate) fn slowdown(&self) -> f64 {
        median(&self.with_reader) / median(&self.alone)
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
        let fleet = Fleet::start_once(Variant::Project, &names, &idle)?;
        running.wait(limit).await?;
        let supervisor = fleet.supervisor().context("not a supervisor")?.clone();

        let mut result = ReadPath {
            alone: Vec::new(),
            with_reader: Vec::new(),
            latencies: Vec::new(),
        };
        for round in 0..rounds {
            for reading in [false, true] {
                let reader = if reading {
                    let reader = Reader::start(supervisor.clone(), n);
                    reader.wait_for_first(limit).await?;
                    Some(reader)
                } else {
                    None
                };
                let done = Arc::new(Arrivals::new(1));
                let script = Arc::new(Script::failing(restarts, Arc::clone(&done)));
                let name = Arc::from(format!("crasher-{round}-{reading}"));
                let started = now();
                fleet.spawn_restarting(&name, &script)?;
                done.wait(limit).await?;
                let ns = per(started.elapsed(), restarts);
                match reader {
                    Some(reader) => {
                        result.latencies.extend(reader.stop().await?);
                        result.with_reader.push(ns);
                    }
                    None => result.alone.push(ns),
                }
                ensure!(script.runs() == restarts + 1, "the crasher did not finish");
            }
        }
        fleet.drain(limit).await?;
        Ok(result)
    })
}

/// A thread taking snapshots back to back until stopped.
struct Reader {
    stop: Arc<AtomicBool>,
    taken: Arc<AtomicU64>,
    thread: JoinHandle<Result<Vec<f64>>>,
}

impl Reader {
    fn start(supervisor: Supervisor, at_least: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let taken = Arc::new(AtomicU64::new(0));
        let thread = std::thread::spawn({
            let stop = Arc::clone(&stop);
            let taken = Arc::clone(&taken);
            move || {
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Acquire) {
                    let started = now();
                    let snapshots = supervisor.lifecycle_snapshots();
                    latencies.push(started.elapsed().as_nanos() as f64);
                    ensure!(
                        snapshots.len() >= at_least,
                        "a snapshot of {} services, expected at least {at_least}",
                        snapshots.len()
                    );
                    drop(snapshots);
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
