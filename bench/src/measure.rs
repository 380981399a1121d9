//! Clocks, resident memory, statistics and the runtime every scenario runs on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::runtime::Runtime;
use tokio::sync::Notify;

/// Worker threads of every scenario's runtime: the machine the figures are
/// recorded on has two cores.
pub(crate) const WORKERS: usize = 2;

/// How the runtime is described in the report.
pub(crate) const RUNTIME: &str =
    "tokio multi_thread, 2 workers, time driver only; a fresh runtime per measurement";

/// The wall clock of the measurements.
///
/// The workspace bans `Instant::now` so that library code takes time as data;
/// a benchmark measures real time by definition.
#[expect(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall-clock time"
)]
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// Nanoseconds of `elapsed` divided by `count`.
pub(crate) fn per(elapsed: Duration, count: u64) -> f64 {
    elapsed.as_nanos() as f64 / count.max(1) as f64
}

/// A fresh runtime for one measurement.
pub(crate) fn runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_time()
        .build()
        .context("cannot build the tokio runtime")
}

/// Runs `scenario` as a task on a worker of `runtime` (not on the thread that
/// calls `block_on`), so spawns go through the worker's local queue as they do
/// in a server, and waits for it.
pub(crate) fn run_on_worker<T, F>(runtime: &Runtime, scenario: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    runtime.block_on(async move {
        tokio::spawn(scenario)
            .await
            .context("the scenario task panicked")?
    })
}

/// Resident set size of this process, from `/proc/self/statm`.
pub(crate) fn rss_bytes() -> Result<u64> {
    let statm =
        std::fs::read_to_string("/proc/self/statm").context("cannot read /proc/self/statm")?;
    let resident: u64 = statm
        .split_whitespace()
        .nth(1)
        .context("/proc/self/statm has no resident field")?
        .parse()
        .context("/proc/self/statm: resident is not a number")?;
    Ok(resident * page_size())
}

/// The page size, from the `AT_PAGESZ` entry of `/proc/self/auxv` (4 KiB if
/// it cannot be read).
fn page_size() -> u64 {
    const AT_PAGESZ: u64 = 6;
    const FALLBACK: u64 = 4096;
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else {
        return FALLBACK;
    };
    let word = |bytes: &[u8]| u64::from_ne_bytes(bytes.try_into().unwrap_or([0; 8]));
    auxv.chunks_exact(16)
        .find(|entry| word(&entry[..8]) == AT_PAGESZ)
        .map(|entry| word(&entry[8..]))
        .filter(|&size| size > 0)
        .unwrap_or(FALLBACK)
}

/// The median of `values` (the mean of the two middle ones for an even count).
pub(crate) fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    }
}

/// The `q`-quantile of `values` (nearest rank).
pub(crate) fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Counts services reaching a point (running, done, …) and wakes the one
/// waiter when `target` of them have.
///
/// Every variant of a scenario reports through the same counter, so its cost
/// (one contended atomic add per arrival) is the same on both sides of a ratio.
#[derive(Debug)]
pub(crate) struct Arrivals {
    count: AtomicUsize,
    target: usize,
    reached: Notify,
}

impl Arrivals {
    pub(crate) fn new(target: usize) -> Self {
        Self {
            count: AtomicUsize::new(0),
            target,
            reached: Notify::new(),
        }
    }

    pub(crate) fn arrive(&self) {
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.target {
            // Stores a permit if the waiter is not waiting yet.
            self.reached.notify_one();
        }
    }

    /// How many arrived so far.
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until at least `count` arrived, polling every millisecond
    /// (for a setup step that is not timed: [`wait`](Self::wait) wakes only
    /// at the target), failing after `limit`.
    pub(crate) async fn wait_for_count(&self, count: usize, limit: Duration) -> Result<()> {
        let started = now();
        while self.count() < count {
            if started.elapsed() > limit {
                bail!("only {} of {count} arrivals after {limit:?}", self.count());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    }

    /// Waits until `target` arrivals, failing after `limit` (a broken
    /// scenario must fail, never hang CI).
    pub(crate) async fn wait(&self, limit: Duration) -> Result<()> {
        if self.count.load(Ordering::Acquire) >= self.target {
            return Ok(());
        }
        if tokio::time::timeout(limit, self.reached.notified())
            .await
            .is_err()
        {
            bail!(
                "only {} of {} arrivals after {limit:?}",
                self.count.load(Ordering::Acquire),
                self.target
            );
        }
        Ok(())
    }
}
