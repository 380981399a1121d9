//! [`ReadyWhen`]: which services must be ready for the process to be, for
//! `GET /readyz` ([`SupervisorRoutes::with_ready_when`](crate::SupervisorRoutes::with_ready_when))
//! and systemd's `READY=1` (`systemd::Notifier::with_ready_when`).

use supervisor_core::{Readiness, ServicePhase, Supervisor};

/// Which services must be ready for the process to be ready: for `GET
/// /readyz` ([`SupervisorRoutes::with_ready_when`](crate::SupervisorRoutes::with_ready_when))
/// and, with the `systemd` feature, for `READY=1`.
///
/// Either way the process is not ready from the moment shutdown begins.
///
/// # Examples
///
/// ```
/// use supervisor_http::ReadyWhen;
///
/// assert_eq!(ReadyWhen::default(), ReadyWhen::AllServices);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReadyWhen {
    /// When [`Supervisor::is_ready`] holds: every registered service that
    /// is alive is running and ready, and none failed for good. A service
    /// that fails for good keeps the process unready until it is removed or
    /// spawned again (for systemd, `READY=1` is held back, and
    /// `TimeoutStartSec=` then fails the start).
    #[default]
    AllServices,
    /// When every alive [critical](supervisor_core::SpawnOptions::critical)
    /// service is running and ready: the other services may still be
    /// starting, backing off, or have failed for good. With no critical
    /// service this holds at once. For a host whose optional services may
    /// fail while it is still useful (the systemd notifier checks it when
    /// it refreshes its status, so up to one status interval after it
    /// holds).
    CriticalServices,
}

/// The readiness of `supervisor` under `ready_when`: the supervisor's own
/// [`Readiness`] (which services wait, which failed), with `ready` as
/// `ready_when` decides.
pub(crate) fn readiness(supervisor: &Supervisor, ready_when: ReadyWhen) -> Readiness {
    let mut readiness = supervisor.readiness();
    if ready_when == ReadyWhen::CriticalServices {
        readiness.ready = critical_services_ready(supervisor);
    }
    readiness
}

/// Whether every alive critical service is running and ready, and shutdown
/// has not begun ([`ReadyWhen::CriticalServices`]).
pub(crate) fn critical_services_ready(supervisor: &Supervisor) -> bool {
    !supervisor.is_shutting_down()
        && supervisor
            .status()
            .iter()
            .filter(|service| service.critical && service.snapshot.phase.is_alive())
            .all(|service| {
                service.snapshot.phase == ServicePhase::Running && service.snapshot.ready
            })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use supervisor_core::{
        RestartPolicy, ServiceContext, SpawnOptions, Supervisor, SupervisorConfig, service_fn,
    };

    use super::{ReadyWhen, critical_services_ready, readiness};

    #[tokio::test(start_paused = true)]
    async fn critical_services_alone_can_make_the_process_ready() {
        let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
        assert!(critical_services_ready(&supervisor)); // None to wait for.
        let feed = service_fn("feed", |ctx: ServiceContext| async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            ctx.ready();
            ctx.cancelled().await;
            Ok::<(), std::io::Error>(())
        });
        let critical = SpawnOptions::default().signals_readiness().critical();
        supervisor
            .spawn_service_with_options(feed, critical)
            .unwrap();
        let poller = service_fn("poller", |_ctx: ServiceContext| async {
            Err::<(), _>(std::io::Error::other("refused"))
        })
        .with_restart_policy(RestartPolicy::Never);
        supervisor.spawn_service(poller).unwrap();

        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!critical_services_ready(&supervisor));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(critical_services_ready(&supervisor));
        assert!(!supervisor.is_ready()); // `poller` failed for good.

        // The policy decides `ready`; the rest is the supervisor's own.
        let all = readiness(&supervisor, ReadyWhen::AllServices);
        let critical = readiness(&supervisor, ReadyWhen::CriticalServices);
        assert!(!all.ready);
        assert!(critical.ready);
        assert_eq!(critical.failed, ["poller"]);
        assert_eq!(all.failed, critical.failed);

        supervisor.trigger_shutdown();
        assert!(!critical_services_ready(&supervisor));
        assert!(!readiness(&supervisor, ReadyWhen::CriticalServices).ready);
    }
}
