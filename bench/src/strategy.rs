//! Scenario 12: a `OneForAll` group restart of N children, against the
//! hand-written one-for-all loop raw tokio needs for the same.
//!
//! N − 1 idle children run; the N-th, spawned last, fails `cycles` times in
//! a row, then stays up. Each failure cycles the whole group: the others stop
//! newest first, one at a time (each awaited), then all N start again oldest
//! first. A cycle restarts N children; the figure is ns per child restarted,
//! timed from the failing child's spawn to its last run.
//!
//! - project: `SupervisorConfig::with_strategy(Strategy::OneForAll)`, zero
//!   backoff, no restart intensity; the supervisor's coordinator starts each
//!   child once the one before it runs.
//! - raw: a task per child with its own `CancellationToken`; the loop awaits
//!   the failing child, cancels and joins the others newest first, then
//!   spawns them all again in order (without waiting for each to run: the
//!   physical limit, which keeps no order of starts).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use supervisor_core::{Strategy, Supervisor, SupervisorConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::fleet::{Variant, zero_backoff};
use crate::measure::{Arrivals, now, per, run_on_worker, runtime};
use crate::script::{Crash, Script, Scripted, names};

/// ns per child restarted over `cycles` group restarts of `n` children.
pub(crate) fn one_for_all(variant: Variant, n: usize, cycles: u64, limit: Duration) -> Result<f64> {
    ensure!(n >= 2, "a group restart needs at least two children");
    let runtime = runtime()?;
    run_on_worker(&runtime, async move {
        let names = names(n);
        // The idle children report every run here; nobody waits for a target.
        let runs = Arc::new(Arrivals::new(usize::MAX));
        let done = Arc::new(Arrivals::new(1));
        let mut scripts: Vec<Arc<Script>> = (0..n - 1)
            .map(|_| Arc::new(Script::idle(Arc::clone(&runs))))
            .collect();
        scripts.push(Arc::new(Script::failing(cycles, Arc::clone(&done))));
        let elapsed = match variant {
            Variant::Project => project(&names, &scripts, &runs, &done, limit).await?,
            Variant::Raw => raw(&scripts, &runs, &done, cycles, limit).await?,
            other => bail!("{other} has no group restart"),
        };
        for (i, script) in scripts.iter().enumerate() {
            ensure!(
                script.runs() == cycles + 1,
                "{variant}: child {i} ran {} times, not {}",
                script.runs(),
                cycles + 1
            );
        }
        Ok(per(elapsed, cycles * n as u64))
    })
}

async fn project(
    names: &[Arc<str>],
    scripts: &[Arc<Script>],
    runs: &Arrivals,
    done: &Arrivals,
    limit: Duration,
) -> Result<Duration> {
    let supervisor = Supervisor::new(
        SupervisorConfig::default()
            .without_signal_handler()
            .with_strategy(Strategy::OneForAll),
    );
    let spawn = |i: usize| {
        let service = Scripted {
            name: Arc::clone(&names[i]),
            script: Arc::clone(&scripts[i]),
        };
        supervisor
            .spawn_service_with_options(service, zero_backoff())
            .with_context(|| format!("cannot spawn `{}`", names[i]))
    };
    // The failing child is the last one.
    let idle = scripts.len() - 1;
    for i in 0..idle {
        spawn(i)?;
    }
    runs.wait_for_count(idle, limit).await?;
    let started = now();
    spawn(idle)?;
    done.wait(limit).await?;
    let elapsed = started.elapsed();
    supervisor.trigger_shutdown();
    let report = tokio::time::timeout(limit, supervisor.wait_for_drain())
        .await
        .context("the drain did not end")?;
    ensure!(report.is_clean(), "the drain was not clean: {report:?}");
    Ok(elapsed)
}

async fn raw(
    scripts: &[Arc<Script>],
    runs: &Arrivals,
    done: &Arrivals,
    cycles: u64,
    limit: Duration,
) -> Result<Duration> {
    let spawn = |script: &Arc<Script>| -> (CancellationToken, JoinHandle<Result<(), Crash>>) {
        let token = CancellationToken::new();
        let (script, cancelled) = (Arc::clone(script), token.clone());
        let task = tokio::spawn(async move { script.run_once(cancelled.cancelled()).await });
        (token, task)
    };
    let (failing, idle) = scripts.split_last().context("no children")?;
    let mut group: Vec<_> = idle.iter().map(spawn).collect();
    runs.wait_for_count(idle.len(), limit).await?;
    let started = now();
    for _ in 0..cycles {
        let (_, task) = spawn(failing);
        ensure!(
            task.await.context("the failing child panicked")?.is_err(),
            "the failing child did not fail"
        );
        // Newest first, one at a time; then all again, oldest first.
        for (token, task) in group.drain(..).rev() {
            token.cancel();
            task.await.context("a child panicked")??;
        }
        group = idle.iter().map(spawn).collect();
    }
    let (last_token, last) = spawn(failing);
    done.wait(limit).await?;
    let elapsed = started.elapsed();
    group.push((last_token, last));
    for (token, task) in group.into_iter().rev() {
        token.cancel();
        task.await.context("a child panicked")??;
    }
    Ok(elapsed)
}
