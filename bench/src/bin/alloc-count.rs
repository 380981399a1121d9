//! `alloc-count`: the scenarios that count allocations, on a counting
//! allocator.
//!
//! A binary of its own because the counting allocator (`stats_alloc`, which
//! adds atomic counters to every allocation) replaces the global allocator of
//! the whole process: `supervisor-bench` runs it as a child so that none of its
//! other scenarios pays for the counting.
//!
//! ```text
//! alloc-count backoff <calls> <rounds>
//! alloc-count terminated project|raw <n>
//! ```
//!
//! `backoff` prints one `RESULT scenario=… title=… calls=… ns=… allocations=…
//! bytes=…` line per configuration: equal jitter (the default), no jitter, and
//! equal jitter with the default circuit breaker. The configurations alternate
//! round by round; `ns` is the median, `allocations` the largest count of any
//! round.
//!
//! `terminated` prints `RESULT bytes_per_service=…`: the live heap bytes each
//! of `n` one-shot services keeps once it has terminated (the supervisor: its
//! registry entry and lifecycle; raw tokio: nothing), after a warm-up batch
//! that grows the registry and the runtime to their size.

use std::alloc::System;
use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use backoff::{BackoffConfig, BackoffState, Jitter};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use supervisor_core::{RestartPolicy, ServiceContext, Supervisor, SupervisorConfig, service_fn};
use tokio_util::task::TaskTracker;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// `reset()` after this many failures: attempts 0 to 7, a realistic climb
/// (100 ms to 12.8 s), and the breaker (10 retries) never opens.
const RESET_EVERY: u64 = 8;

const USAGE: &str = "usage: alloc-count backoff <calls> <rounds> | terminated project|raw <n>";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = |index: usize, what: &str| -> Result<u64> {
        args.get(index)
            .context(USAGE)?
            .parse()
            .with_context(|| format!("{what} is not a count"))
    };
    match args.first().map(String::as_str) {
        Some("backoff") => backoff(count(1, "calls")?, count(2, "rounds")? as usize),
        Some("terminated") => {
            let variant = args.get(1).context(USAGE)?;
            terminated(variant, count(2, "n")? as usize)
        }
        _ => bail!(USAGE),
    }
}

/// The `next_backoff` figures.
fn backoff(calls: u64, rounds: usize) -> Result<()> {
    ensure!(calls > 0 && rounds > 0, "calls and rounds must be positive");

    let base = BackoffConfig::new(Duration::from_millis(100), Duration::from_secs(30));
    let configs = [
        (
            "next_backoff_jitter",
            "next_backoff_(equal_jitter,_no_breaker)",
            base.with_jitter(Jitter::Equal).without_circuit_breaker(),
        ),
        (
            "next_backoff_no_jitter",
            "next_backoff_(no_jitter,_no_breaker)",
            base.with_jitter(Jitter::None).without_circuit_breaker(),
        ),
        (
            "next_backoff_breaker",
            "next_backoff_(equal_jitter,_default_breaker)",
            base.with_jitter(Jitter::Equal),
        ),
    ];
    let mut ns = vec![Vec::new(); configs.len()];
    let mut allocations = vec![0_usize; configs.len()];
    let mut bytes = vec![0_usize; configs.len()];
    for _ in 0..rounds {
        for (index, (_, _, config)) in configs.iter().enumerate() {
            let (per_call, stats) = measure(*config, calls)?;
            ns[index].push(per_call);
            allocations[index] = allocations[index].max(stats.allocations + stats.reallocations);
            bytes[index] = bytes[index].max(stats.bytes_allocated);
        }
    }
    for (index, (scenario, title, _)) in configs.iter().enumerate() {
        println!(
            "RESULT scenario={scenario} title={title} calls={calls} ns={:.2} allocations={} bytes={}",
            median(&mut ns[index]),
            allocations[index],
            bytes[index]
        );
    }
    Ok(())
}

/// The live heap bytes each of `n` terminated one-shot services keeps.
fn terminated(variant: &str, n: usize) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let names: Vec<String> = (0..2 * n).map(|i| format!("svc-{i:06}")).collect();
    let kept = runtime.block_on(async {
        let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
        let tracker = TaskTracker::new();
        let batch = |names: &[String]| -> Result<()> {
            for name in names {
                match variant {
                    "project" => {
                        let job = service_fn(name.as_str(), |_ctx: ServiceContext| async {
                            anyhow::Ok(())
                        })
                        .with_restart_policy(RestartPolicy::Never);
                        supervisor.spawn_service(job)?;
                    }
                    "raw" => {
                        tracker.spawn(async { anyhow::Ok(()) });
                    }
                    other => bail!("unknown variant `{other}` ({USAGE})"),
                }
            }
            Ok(())
        };
        let wait = || async {
            let report = supervisor.wait_for_drain().await;
            tracker.close();
            tracker.wait().await;
            tracker.reopen();
            ensure!(report.is_clean(), "unclean end: {report:?}");
            Ok(())
        };
        batch(&names[..n])?;
        wait().await?;
        let region = Region::new(GLOBAL);
        batch(&names[n..])?;
        wait().await?;
        let change = region.change();
        Ok::<_, anyhow::Error>(
            change.bytes_allocated as isize - change.bytes_deallocated as isize
                + change.bytes_reallocated,
        )
    })?;
    println!(
        "RESULT bytes_per_service={:.1}",
        kept.max(0) as f64 / n as f64
    );
    Ok(())
}

/// ns per call over `calls` calls after a warm-up, and what they allocated.
fn measure(config: BackoffConfig, calls: u64) -> Result<(f64, stats_alloc::Stats)> {
    let mut state = BackoffState::new(config, 0x5eed)?;
    let mut now = Duration::ZERO;
    // The warm-up fills the breaker's bounded buffer to its steady size.
    drive(&mut state, &mut now, calls.div_ceil(10).max(1_000));
    let region = Region::new(GLOBAL);
    let started = now_instant();
    drive(&mut state, &mut now, calls);
    let elapsed = started.elapsed();
    let stats = region.change();
    Ok((elapsed.as_nanos() as f64 / calls as f64, stats))
}

/// `calls` failures, one second apart, resetting every [`RESET_EVERY`].
fn drive(state: &mut BackoffState, now: &mut Duration, calls: u64) {
    for call in 0..calls {
        if call % RESET_EVERY == 0 {
            state.reset();
        }
        let _ = black_box(state.next_backoff(black_box(*now)));
        *now += Duration::from_secs(1);
    }
}

#[expect(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall-clock time"
)]
fn now_instant() -> Instant {
    Instant::now()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
