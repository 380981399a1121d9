//! Scenario 9: control of single services. N idle services run; then every
//! one of them is stopped, restarted by call, or removed: all requests are
//! made first, then all are awaited, timed from the first request to the
//! last completion.
//!
//! Raw tokio does the same with what it has: a per-task child
//! `CancellationToken` and the task's `JoinHandle` (stop: cancel, join;
//! restart: cancel, join, spawn the run again; remove: a name-keyed map of
//! tasks, cancel, take the task out, join). tokio-graceful-shutdown has a
//! comparable operation for stop only: `NestedSubsystem::initiate_shutdown`
//! then `join`. Each measurement runs in a fresh process (`--child control`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use supervisor_core::{ControlError, ServiceHandle, ServicePhase, Supervisor, TerminationReason};
use tokio::task::JoinHandle;
use tokio_graceful_shutdown::{NestedSubsystem, SubsystemBuilder, SubsystemHandle, Toplevel};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::fleet::{BoxError, Variant, supervisor, zero_backoff};
use crate::measure::{Arrivals, now, per, run_on_worker, runtime};
use crate::script::{Script, Scripted, names};

/// What is done to every service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `ServiceHandle::stop`, awaited until `Terminated`.
    Stop,
    /// `ServiceHandle::restart`, awaited until the new run started (and,
    /// for every variant, until the new run's body reported).
    Restart,
    /// `ServiceHandle::remove`, awaited until the service is forgotten.
    Remove,
}

impl Op {
    pub(crate) const ALL: [Op; 3] = [Op::Stop, Op::Restart, Op::Remove];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::Stop => "stop",
            Op::Restart => "restart",
            Op::Remove => "remove",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Self> {
        match text {
            "stop" => Ok(Op::Stop),
            "restart" => Ok(Op::Restart),
            "remove" => Ok(Op::Remove),
            other => bail!("unknown control operation `{other}`"),
        }
    }

    /// The variants that have this operation: tokio-graceful-shutdown can
    /// stop one subsystem, but has no restart and no registry to remove from.
    pub(crate) fn variants(self) -> &'static [Variant] {
        match self {
            Op::Stop => &[Variant::Project, Variant::Raw, Variant::Peer],
            Op::Restart | Op::Remove => &[Variant::Project, Variant::Raw],
        }
    }

    /// Runs of each service's body by the end of the operation.
    fn runs(self) -> usize {
        match self {
            Op::Restart => 2,
            Op::Stop | Op::Remove => 1,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Child `control <variant> <op> <n>`: ns per operation (`ns_per_op`), and
/// of it the loop making the requests (`request_ns`, per operation).
pub(crate) fn control_child(
    variant: Variant,
    op: Op,
    n: usize,
    limit: Duration,
) -> Result<Vec<(&'static str, f64)>> {
    ensure!(
        op.variants().contains(&variant),
        "{variant} has no {op} operation"
    );
    let runtime = runtime()?;
    let names = names(n);
    run_on_worker(&runtime, async move {
        let arrivals = Arc::new(Arrivals::new(n * op.runs()));
        let script = Arc::new(Script::idle(Arc::clone(&arrivals)));
        let times = match variant {
            Variant::Project => project(op, &names, &script, &arrivals, limit).await?,
            Variant::Raw => raw(op, &names, &script, &arrivals, limit).await?,
            Variant::Peer => peer(&names, &script, &arrivals, limit).await?,
            Variant::ProjectPrometheus => bail!("no control scenario with a sink"),
        };
        ensure!(
            script.runs() == (n * op.runs()) as u64,
            "{} runs of {n} services after {op}, expected {}",
            script.runs(),
            n * op.runs()
        );
        let count = n as u64;
        Ok(vec![
            ("ns_per_op", per(times.total, count)),
            ("request_ns", per(times.requests, count)),
        ])
    })
}

/// What one control measurement timed.
#[derive(Debug, Clone, Copy)]
struct Times {
    /// From the first request until the last one completed.
    total: Duration,
    /// Of which the loop making the requests.
    requests: Duration,
}

/// The clock of one measurement: started before the first request.
#[derive(Debug)]
struct Clock {
    started: Instant,
    requests: Option<Duration>,
}

impl Clock {
    fn start() -> Self {
        Self {
            started: now(),
            requests: None,
        }
    }

    /// Every request is made.
    fn requested(&mut self) {
        self.requests = Some(self.started.elapsed());
    }

    /// Every operation completed.
    fn stop(&self) -> Times {
        let total = self.started.elapsed();
        Times {
            total,
            requests: self.requests.unwrap_or(total),
        }
    }
}

/// The project: a handle per service, the operation through it.
async fn project(
    op: Op,
    names: &Arc<[Arc<str>]>,
    script: &Arc<Script>,
    arrivals: &Arrivals,
    limit: Duration,
) -> Result<Times> {
    let n = names.len();
    let supervisor = supervisor();
    let handles = names
        .iter()
        .map(|name| {
            let service = Scripted {
                name: Arc::clone(name),
                script: Arc::clone(script),
            };
            supervisor
                .spawn_service_with_options(service, zero_backoff())
                .with_context(|| format!("cannot spawn `{name}`"))
        })
        .collect::<Result<Vec<ServiceHandle>>>()?;
    arrivals.wait_for_count(n, limit).await?;

    let mut clock = Clock::start();
    match op {
        Op::Stop => request_all(&handles, ServiceHandle::stop, &mut clock, limit).await?,
        Op::Restart => {
            request_all(&handles, ServiceHandle::restart, &mut clock, limit).await?;
            // Until every new run's body ran, as for raw tokio.
            arrivals.wait(limit).await?;
        }
        Op::Remove => request_all(&handles, ServiceHandle::remove, &mut clock, limit).await?,
    }
    let times = clock.stop();

    check_project(op, &supervisor, &handles)?;
    supervisor.trigger_shutdown();
    let report = tokio::time::timeout(limit, supervisor.wait_for_drain())
        .await
        .with_context(|| format!("drain still running after {limit:?}"))?;
    ensure!(report.is_clean(), "unclean drain after {op}: {report:?}");
    Ok(times)
}

/// Asks every service (`ask` makes its request when called; its future
/// waits), then awaits every answer, failing after `limit`.
async fn request_all<F, T>(
    handles: &[ServiceHandle],
    ask: impl Fn(&ServiceHandle) -> F,
    clock: &mut Clock,
    limit: Duration,
) -> Result<()>
where
    F: Future<Output = Result<T, ControlError>>,
{
    let answers: Vec<F> = handles.iter().map(ask).collect();
    clock.requested();
    let all = async {
        for answer in answers {
            answer.await?;
        }
        Ok::<(), ControlError>(())
    };
    tokio::time::timeout(limit, all)
        .await
        .with_context(|| format!("control requests still pending after {limit:?}"))?
        .context("a control request failed")
}

/// The counters and every service's state after `op`.
fn check_project(op: Op, supervisor: &Supervisor, handles: &[ServiceHandle]) -> Result<()> {
    let n = handles.len() as u64;
    let metrics = supervisor.metrics().snapshot();
    ensure!(
        metrics.spawned_total == n && metrics.failures.total() == 0,
        "after {op} of {n} services: {metrics:?}"
    );
    match op {
        Op::Stop => {
            ensure!(
                metrics.terminated_total == n
                    && metrics.active_services == 0
                    && metrics.restarts_total == 0
                    && supervisor.service_count() == handles.len(),
                "after stopping {n} services: {} registered, {metrics:?}",
                supervisor.service_count()
            );
            for handle in handles {
                let snapshot = handle.snapshot();
                ensure!(
                    snapshot.phase == ServicePhase::Terminated
                        && snapshot.termination_reason == Some(TerminationReason::Stopped),
                    "`{}` after its stop: {snapshot:?}",
                    handle.name()
                );
            }
        }
        Op::Restart => {
            ensure!(
                metrics.restarts_total == n
                    && metrics.terminated_total == 0
                    && metrics.active_services == n
                    && supervisor.service_count() == handles.len(),
                "after restarting {n} services: {} registered, {metrics:?}",
                supervisor.service_count()
            );
            for handle in handles {
                let snapshot = handle.snapshot();
                ensure!(
                    snapshot.phase == ServicePhase::Running && snapshot.start_count == 2,
                    "`{}` after its restart: {snapshot:?}",
                    handle.name()
                );
            }
        }
        Op::Remove => {
            ensure!(
                metrics.terminated_total == n
                    && metrics.active_services == 0
                    && supervisor.service_count() == 0,
                "after removing {n} services: {} registered, {metrics:?}",
                supervisor.service_count()
            );
            for handle in handles {
                ensure!(
                    handle.is_removed(),
                    "`{}` is not removed after its removal",
                    handle.name()
                );
            }
        }
    }
    Ok(())
}

/// One raw task: its child token and its join handle.
#[derive(Debug)]
struct RawTask {
    token: CancellationToken,
    join: JoinHandle<()>,
}

/// Raw tokio: a child token per task, tracked by a `TaskTracker` (as the raw
/// variant of every other scenario), plus what the operation needs.
async fn raw(
    op: Op,
    names: &Arc<[Arc<str>]>,
    script: &Arc<Script>,
    arrivals: &Arrivals,
    limit: Duration,
) -> Result<Times> {
    let n = names.len();
    let root = CancellationToken::new();
    let tracker = TaskTracker::new();
    let spawn = || {
        let token = root.child_token();
        let cancelled = token.clone();
        let script = Arc::clone(script);
        let join = tracker.spawn(async move {
            let _ = script.run_once(cancelled.cancelled()).await;
        });
        RawTask { token, join }
    };
    let times = match op {
        Op::Stop | Op::Restart => {
            let mut tasks: Vec<RawTask> = (0..n).map(|_| spawn()).collect();
            arrivals.wait_for_count(n, limit).await?;
            let mut clock = Clock::start();
            for task in &tasks {
                task.token.cancel();
            }
            clock.requested();
            let all = async {
                for task in &mut tasks {
                    (&mut task.join).await?;
                    if op == Op::Restart {
                        *task = spawn();
                    }
                }
                if op == Op::Restart {
                    arrivals.wait(limit).await?;
                }
                Ok::<(), anyhow::Error>(())
            };
            tokio::time::timeout(limit, all)
                .await
                .with_context(|| format!("raw {op} still running after {limit:?}"))??;
            clock.stop()
        }
        Op::Remove => {
            let mut registry: HashMap<Arc<str>, RawTask> = names
                .iter()
                .map(|name| (Arc::clone(name), spawn()))
                .collect();
            arrivals.wait_for_count(n, limit).await?;
            let mut clock = Clock::start();
            for name in names.iter() {
                registry
                    .get(name)
                    .context("a raw task is missing")?
                    .token
                    .cancel();
            }
            clock.requested();
            let all = async {
                for name in names.iter() {
                    let task = registry.remove(name).context("a raw task is missing")?;
                    task.join.await?;
                }
                Ok::<(), anyhow::Error>(())
            };
            tokio::time::timeout(limit, all)
                .await
                .with_context(|| format!("raw {op} still running after {limit:?}"))??;
            let times = clock.stop();
            ensure!(registry.is_empty(), "{} raw tasks left", registry.len());
            times
        }
    };
    root.cancel();
    tracker.close();
    tokio::time::timeout(limit, tracker.wait())
        .await
        .with_context(|| format!("raw drain still running after {limit:?}"))?;
    Ok(times)
}

/// tokio-graceful-shutdown: one nested subsystem per service, started from
/// the root subsystem as in the start scenario; each stopped by
/// `initiate_shutdown` and joined.
async fn peer(
    names: &Arc<[Arc<str>]>,
    script: &Arc<Script>,
    arrivals: &Arrivals,
    limit: Duration,
) -> Result<Times> {
    let n = names.len();
    let shutdown = CancellationToken::new();
    let (send, receive) = tokio::sync::oneshot::channel();
    let toplevel = Toplevel::new_with_shutdown_token(
        {
            let names = Arc::clone(names);
            let script = Arc::clone(script);
            async move |root: &mut SubsystemHandle<BoxError>| {
                let nested: Vec<NestedSubsystem<BoxError>> = names
                    .iter()
                    .map(|name| {
                        let script = Arc::clone(&script);
                        root.start(SubsystemBuilder::new(
                            &**name,
                            async move |subsystem: &mut SubsystemHandle<BoxError>| {
                                script
                                    .run_once(subsystem.on_shutdown_requested())
                                    .await
                                    .map_err(BoxError::from)
                            },
                        ))
                    })
                    .collect();
                let _ = send.send(nested);
            }
        },
        shutdown.clone(),
    );
    let toplevel = tokio::spawn(toplevel.handle_shutdown_requests(limit));
    let nested = receive
        .await
        .context("the tokio-graceful-shutdown root subsystem gave no subsystems")?;
    arrivals.wait_for_count(n, limit).await?;

    let mut clock = Clock::start();
    for subsystem in &nested {
        subsystem.initiate_shutdown();
    }
    clock.requested();
    let all = async {
        for subsystem in &nested {
            subsystem
                .join()
                .await
                .map_err(|error| anyhow::anyhow!("a subsystem failed: {error}"))?;
        }
        Ok::<(), anyhow::Error>(())
    };
    tokio::time::timeout(limit, all)
        .await
        .with_context(|| format!("tgs stop still running after {limit:?}"))??;
    let times = clock.stop();

    ensure!(
        nested.iter().all(NestedSubsystem::is_finished),
        "a subsystem is still running after its join"
    );
    shutdown.cancel();
    tokio::time::timeout(limit, toplevel)
        .await
        .with_context(|| format!("tgs toplevel still running after {limit:?}"))?
        .context("the tokio-graceful-shutdown toplevel panicked")?
        .context("tokio-graceful-shutdown reported errors")?;
    Ok(times)
}
