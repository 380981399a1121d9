//! Scenario 10: temporary-service churn. Uniquely named one-shot jobs
//! (`RestartPolicy::Never`, `temporary()`: forgotten as soon as they
//! terminate) are spawned back to back with at most a fixed number in
//! flight; ns per job, and the resident set before and after (it must stay
//! flat: a temporary service leaves nothing behind).
//!
//! Every variant bounds its jobs the same way: the driver takes a semaphore
//! permit before each spawn, and the permit lives in the job's task until
//! that task is gone (for the project: until the service was forgotten and
//! its task freed). Raw tokio is a bare `tokio::spawn` of the job, joined
//! through its permit; tokio-graceful-shutdown starts each job as a nested
//! subsystem of its root subsystem. Each measurement runs in a fresh process
//! (`--child churn`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use supervisor_core::{RestartPolicy, Service, ServiceContext, SpawnOptions, Supervisor};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_graceful_shutdown::{SubsystemBuilder, SubsystemHandle, Toplevel};
use tokio_util::sync::CancellationToken;

use crate::fleet::{BoxError, Variant, supervisor};
use crate::measure::{now, per, rss_bytes, run_on_worker, runtime};
use crate::script::Crash;

/// Sizes of one churn measurement.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Churn {
    /// Jobs timed.
    pub(crate) jobs: usize,
    /// Jobs in flight at most.
    pub(crate) in_flight: usize,
    /// Jobs run before the clock and the first RSS reading, so the
    /// allocator and the registry reach their steady state.
    pub(crate) warm_up: usize,
}

/// Child `churn <variant> <jobs> <in-flight> <warm-up>`: ns per job, and the
/// RSS after the warm-up and after every job.
pub(crate) fn churn_child(
    variant: Variant,
    churn: Churn,
    limit: Duration,
) -> Result<Vec<(&'static str, f64)>> {
    ensure!(churn.in_flight > 0, "at least one job in flight");
    let runtime = runtime()?;
    // The names are the user's data, made before any reading.
    let names: Arc<[Arc<str>]> = (0..churn.warm_up + churn.jobs)
        .map(|i| Arc::from(format!("job-{i:08}")))
        .collect();
    run_on_worker(&runtime, async move {
        let runs = Arc::new(AtomicU64::new(0));
        let jobs = Jobs {
            names: &names,
            churn,
            runs: &runs,
            limit,
        };
        let measured = match variant {
            Variant::Project => project(&jobs).await?,
            Variant::Raw => raw(&jobs).await?,
            Variant::Peer => peer(&jobs).await?,
            Variant::ProjectPrometheus => bail!("no churn scenario with a sink"),
        };
        let total = names.len() as u64;
        ensure!(
            runs.load(Ordering::Acquire) == total,
            "{} job runs, expected {total}",
            runs.load(Ordering::Acquire)
        );
        Ok(vec![
            ("ns_per_job", per(measured.elapsed, churn.jobs as u64)),
            ("rss_before", measured.rss_before as f64),
            ("rss_after", measured.rss_after as f64),
            (
                "growth_bytes",
                measured.rss_after as f64 - measured.rss_before as f64,
            ),
        ])
    })
}

/// The one job body every variant runs: count the run, return.
fn job(runs: &AtomicU64) -> Result<(), Crash> {
    runs.fetch_add(1, Ordering::AcqRel);
    Ok(())
}

/// A job as a supervised service; its permit goes with its task.
#[derive(Debug)]
struct Job {
    name: Arc<str>,
    runs: Arc<AtomicU64>,
    _permit: OwnedSemaphorePermit,
}

impl Service for Job {
    type Error = Crash;

    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self, _ctx: ServiceContext) -> Result<(), Crash> {
        job(&self.runs)
    }
}

/// The jobs of one measurement.
#[derive(Debug)]
struct Jobs<'a> {
    /// The warm-up's names, then the timed jobs' names.
    names: &'a Arc<[Arc<str>]>,
    churn: Churn,
    runs: &'a Arc<AtomicU64>,
    limit: Duration,
}

/// What [`Jobs::drive`] measured.
#[derive(Debug, Clone, Copy)]
struct Measured {
    elapsed: Duration,
    rss_before: u64,
    rss_after: u64,
}

impl Jobs<'_> {
    /// Spawns the warm-up jobs, waits until they are gone, reads the RSS,
    /// then spawns and times the rest the same way. `spawn` starts one job
    /// that must keep its permit until its task is gone.
    async fn drive(
        &self,
        mut spawn: impl FnMut(&Arc<str>, OwnedSemaphorePermit) -> Result<()>,
    ) -> Result<Measured> {
        let semaphore = Arc::new(Semaphore::new(self.churn.in_flight));
        let (warm_up, timed) = self.names.split_at(self.churn.warm_up);
        self.run(&semaphore, warm_up, &mut spawn).await?;
        let rss_before = rss_bytes()?;
        let started = now();
        self.run(&semaphore, timed, &mut spawn).await?;
        let elapsed = started.elapsed();
        let rss_after = rss_bytes()?;
        Ok(Measured {
            elapsed,
            rss_before,
            rss_after,
        })
    }

    /// Spawns a job per name, at most `in_flight` at a time, and waits until
    /// every one is gone.
    async fn run(
        &self,
        semaphore: &Arc<Semaphore>,
        names: &[Arc<str>],
        spawn: &mut impl FnMut(&Arc<str>, OwnedSemaphorePermit) -> Result<()>,
    ) -> Result<()> {
        let all = async {
            for name in names {
                let permit = Arc::clone(semaphore)
                    .acquire_owned()
                    .await
                    .context("the job semaphore closed")?;
                spawn(name, permit)?;
            }
            // Every permit back: every job's task is gone.
            let everything = u32::try_from(self.churn.in_flight).context("too many in flight")?;
            drop(
                semaphore
                    .acquire_many(everything)
                    .await
                    .context("the job semaphore closed")?,
            );
            Ok(())
        };
        tokio::time::timeout(self.limit, all)
            .await
            .with_context(|| format!("jobs still running after {:?}", self.limit))?
    }
}

/// The project: each job a temporary service that runs once.
async fn project(jobs: &Jobs<'_>) -> Result<Measured> {
    let supervisor = supervisor();
    let options = SpawnOptions::default()
        .restart_policy(RestartPolicy::Never)
        .temporary();
    let measured = jobs
        .drive(|name, permit| {
            let job = Job {
                name: Arc::clone(name),
                runs: Arc::clone(jobs.runs),
                _permit: permit,
            };
            supervisor
                .spawn_service_with_options(job, options.clone())
                .with_context(|| format!("cannot spawn `{name}`"))?;
            Ok(())
        })
        .await?;
    check_project(&supervisor, jobs.names.len())?;
    supervisor.trigger_shutdown();
    let report = tokio::time::timeout(jobs.limit, supervisor.wait_for_drain())
        .await
        .with_context(|| format!("drain still running after {:?}", jobs.limit))?;
    ensure!(
        report.is_clean(),
        "unclean drain after the churn: {report:?}"
    );
    Ok(measured)
}

/// Every job ran once, terminated, and was forgotten.
fn check_project(supervisor: &Supervisor, total: usize) -> Result<()> {
    let metrics = supervisor.metrics().snapshot();
    let total = total as u64;
    ensure!(
        supervisor.service_count() == 0
            && metrics.spawned_total == total
            && metrics.terminated_total == total
            && metrics.active_services == 0
            && metrics.restarts_total == 0
            && metrics.failures.total() == 0,
        "after {total} temporary jobs: {} still registered, {metrics:?}",
        supervisor.service_count()
    );
    Ok(())
}

/// Raw tokio: a bare `tokio::spawn` per job.
async fn raw(jobs: &Jobs<'_>) -> Result<Measured> {
    jobs.drive(|_name, permit| {
        let runs = Arc::clone(jobs.runs);
        drop(tokio::spawn(async move {
            let _permit = permit;
            let _ = job(&runs);
        }));
        Ok(())
    })
    .await
}

/// tokio-graceful-shutdown: each job a nested subsystem of the root
/// subsystem, which runs the driver.
async fn peer(jobs: &Jobs<'_>) -> Result<Measured> {
    let shutdown = CancellationToken::new();
    let (send, receive) = tokio::sync::oneshot::channel();
    let names = Arc::clone(jobs.names);
    let runs = Arc::clone(jobs.runs);
    let (churn, limit) = (jobs.churn, jobs.limit);
    let toplevel = Toplevel::new_with_shutdown_token(
        async move |root: &mut SubsystemHandle<BoxError>| {
            let jobs = Jobs {
                names: &names,
                churn,
                runs: &runs,
                limit,
            };
            let measured = jobs
                .drive(|name, permit| {
                    let runs = Arc::clone(&runs);
                    drop(root.start(SubsystemBuilder::new(
                        &**name,
                        async move |_subsystem: &mut SubsystemHandle<BoxError>| {
                            let _permit = permit;
                            job(&runs).map_err(BoxError::from)
                        },
                    )));
                    Ok(())
                })
                .await;
            let _ = send.send(measured);
        },
        shutdown.clone(),
    );
    let toplevel = tokio::spawn(toplevel.handle_shutdown_requests(limit));
    let measured = receive
        .await
        .context("the tokio-graceful-shutdown root subsystem gave no result")??;
    shutdown.cancel();
    tokio::time::timeout(limit, toplevel)
        .await
        .with_context(|| format!("tgs toplevel still running after {limit:?}"))?
        .context("the tokio-graceful-shutdown toplevel panicked")?
        .context("tokio-graceful-shutdown reported errors")?;
    Ok(measured)
}
