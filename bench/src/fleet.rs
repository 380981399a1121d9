//! The three ways of running services the scenarios compare: this project's
//! `Supervisor`, raw tokio (the physical limit) and tokio-graceful-shutdown.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use supervisor_core::{BackoffConfig, SpawnOptions, Supervisor, SupervisorConfig};
use supervisor_prometheus::PrometheusSink;
use supervisor_prometheus::prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_graceful_shutdown::errors::GracefulShutdownError;
use tokio_graceful_shutdown::{SubsystemBuilder, SubsystemHandle, Toplevel};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::script::{Crash, Script, Scripted};

/// The error type of the peer's subsystem tree.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Who runs the services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    /// `supervisor_core::Supervisor`.
    Project,
    /// `tokio::spawn` (through a `TaskTracker`) + a child `CancellationToken`
    /// per task: the least any supervisor can do.
    Raw,
    /// tokio-graceful-shutdown: one nested subsystem per service.
    Peer,
    /// The project with a `PrometheusSink` attached (the sink scenario only).
    ProjectPrometheus,
}

impl Variant {
    pub(crate) const ALL: [Variant; 3] = [Variant::Project, Variant::Raw, Variant::Peer];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Variant::Project => "project",
            Variant::Raw => "raw",
            Variant::Peer => "tgs",
            Variant::ProjectPrometheus => "project+prometheus",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Self> {
        match text {
            "project" => Ok(Variant::Project),
            "raw" => Ok(Variant::Raw),
            "tgs" => Ok(Variant::Peer),
            "project+prometheus" => Ok(Variant::ProjectPrometheus),
            other => bail!("unknown variant `{other}`"),
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Restarts with no delay and never give up: the scenarios measure the
/// machinery, not the sleeps.
pub(crate) fn zero_backoff() -> SpawnOptions {
    SpawnOptions::with_backoff(
        BackoffConfig::new(Duration::ZERO, Duration::ZERO).without_circuit_breaker(),
    )
}

/// The project's supervisor as the scenarios configure it.
pub(crate) fn supervisor() -> Supervisor {
    Supervisor::new(SupervisorConfig::default().without_signal_handler())
}

/// The same, with a `PrometheusSink` registered in a registry of its own.
fn supervisor_with_prometheus() -> Supervisor {
    let mut registry = Registry::default();
    let sink = Arc::new(PrometheusSink::register(&mut registry));
    Supervisor::new(
        SupervisorConfig::default()
            .without_signal_handler()
            .with_metrics_sink(sink),
    )
}

/// Running services, of one variant.
#[derive(Debug)]
pub(crate) enum Fleet {
    Project(Supervisor),
    Raw {
        root: CancellationToken,
        tracker: TaskTracker,
    },
    Peer {
        shutdown: CancellationToken,
        toplevel: JoinHandle<Result<(), GracefulShutdownError<BoxError>>>,
    },
}

impl Fleet {
    /// An empty fleet of the project or raw tokio.
    pub(crate) fn new(variant: Variant) -> Result<Self> {
        match variant {
            Variant::Project => Ok(Fleet::Project(supervisor())),
            Variant::ProjectPrometheus => Ok(Fleet::Project(supervisor_with_prometheus())),
            Variant::Raw => Ok(Fleet::Raw {
                root: CancellationToken::new(),
                tracker: TaskTracker::new(),
            }),
            Variant::Peer => bail!("a tokio-graceful-shutdown tree is built with its services"),
        }
    }

    /// Starts one service per name, each running `script` once (no restart).
    ///
    /// The peer's subsystems are started from its root subsystem's task, the
    /// others from the calling task.
    pub(crate) fn start_once(
        variant: Variant,
        names: &Arc<[Arc<str>]>,
        script: &Arc<Script>,
    ) -> Result<Self> {
        match variant {
            Variant::Project | Variant::ProjectPrometheus => {
                let fleet = Self::new(variant)?;
                for name in names.iter() {
                    fleet.spawn_supervised(name, script)?;
                }
                Ok(fleet)
            }
            Variant::Raw => {
                let root = CancellationToken::new();
                let tracker = TaskTracker::new();
                for _ in 0..names.len() {
                    let token = root.child_token();
                    let script = Arc::clone(script);
                    tracker.spawn(async move {
                        let _ = script.run_once(token.cancelled()).await;
                    });
                }
                Ok(Fleet::Raw { root, tracker })
            }
            Variant::Peer => {
                let shutdown = CancellationToken::new();
                let names = Arc::clone(names);
                let script = Arc::clone(script);
                let toplevel = Toplevel::new_with_shutdown_token(
                    async move |root: &mut SubsystemHandle<BoxError>| {
                        for name in names.iter() {
                            let script = Arc::clone(&script);
                            root.start(SubsystemBuilder::new(
                                &**name,
                                async move |subsystem: &mut SubsystemHandle<BoxError>| {
                                    script
                                        .run_once(subsystem.on_shutdown_requested())
                                        .await
                                        .map_err(BoxError::from)
                                },
                            ));
                        }
                    },
                    shutdown.clone(),
                );
                let toplevel =
                    tokio::spawn(toplevel.handle_shutdown_requests(Duration::from_secs(60)));
                Ok(Fleet::Peer { shutdown, toplevel })
            }
        }
    }

    /// Supervises `script` under `name`, restarting it after every failure
    /// with zero backoff: through the supervisor, or with a raw loop that
    /// respawns a task and awaits it.
    pub(crate) fn spawn_restarting(&self, name: &Arc<str>, script: &Arc<Script>) -> Result<()> {
        match self {
            Fleet::Project(_) => self.spawn_supervised(name, script),
            Fleet::Raw { root, tracker } => {
                let token = root.child_token();
                let script = Arc::clone(script);
                tracker.spawn(respawn_loop(script, token));
                Ok(())
            }
            Fleet::Peer { .. } => bail!("the peer is only compared on start, memory and drain"),
        }
    }

    fn spawn_supervised(&self, name: &Arc<str>, script: &Arc<Script>) -> Result<()> {
        self.spawn_supervised_with(name, script, zero_backoff())
    }

    /// Spawns one service of the project's fleet that runs `script` with
    /// `options`.
    pub(crate) fn spawn_supervised_with(
        &self,
        name: &Arc<str>,
        script: &Arc<Script>,
        options: SpawnOptions,
    ) -> Result<()> {
        let Fleet::Project(supervisor) = self else {
            bail!("not a supervisor");
        };
        let service = Scripted {
            name: Arc::clone(name),
            script: Arc::clone(script),
        };
        supervisor
            .spawn_service_with_options(service, options)
            .with_context(|| format!("cannot spawn `{name}`"))?;
        Ok(())
    }

    /// The supervisor, for the project's fleet.
    pub(crate) fn supervisor(&self) -> Option<&Supervisor> {
        match self {
            Fleet::Project(supervisor) => Some(supervisor),
            Fleet::Raw { .. } | Fleet::Peer { .. } => None,
        }
    }

    /// Asks every service to stop and waits until all have ended, failing
    /// after `limit`. The project's drain must be clean.
    ///
    /// Takes `&mut self` so that the caller stops its clock before the fleet
    /// itself (the supervisor's registry, the tracker) is dropped: tearing
    /// down the bookkeeping is not part of a drain, for any variant.
    pub(crate) async fn drain(&mut self, limit: Duration) -> Result<()> {
        let drained = async {
            match self {
                Fleet::Project(supervisor) => {
                    supervisor.trigger_shutdown();
                    let report = supervisor.wait_for_drain().await;
                    ensure!(report.is_clean(), "unclean drain: {report:?}");
                    Ok(())
                }
                Fleet::Raw { root, tracker } => {
                    root.cancel();
                    tracker.close();
                    tracker.wait().await;
                    Ok(())
                }
                Fleet::Peer { shutdown, toplevel } => {
                    shutdown.cancel();
                    toplevel
                        .await
                        .context("the tokio-graceful-shutdown toplevel panicked")?
                        .context("tokio-graceful-shutdown reported errors")
                }
            }
        };
        tokio::time::timeout(limit, drained)
            .await
            .with_context(|| format!("drain still running after {limit:?}"))?
    }
}

/// The raw restart loop: respawn the run as a task, await it, again.
async fn respawn_loop(script: Arc<Script>, token: CancellationToken) {
    loop {
        let run = Arc::clone(&script);
        let cancel = token.clone();
        let outcome = tokio::spawn(async move { run.run_once(cancel.cancelled()).await }).await;
        match outcome {
            Ok(Err(Crash)) => continue,
            Ok(Ok(())) | Err(_) => return,
        }
    }
}
