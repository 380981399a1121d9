//! systemd integration: `sd_notify` readiness, status, watchdog and stopping
//! notifications for a process that runs a [`Supervisor`] as a
//! `Type=notify` service (feature `systemd`).
//!
//! [`notify`] (or a [`Notifier`], for its options) follows one supervisor and
//! tells the service manager, over the datagram socket that systemd names in
//! `NOTIFY_SOCKET`, through the [`sd-notify`](https://docs.rs/sd-notify) crate:
//!
//! | sent | when |
//! |---|---|
//! | `READY=1` (with a `STATUS=`) | once [`Supervisor::wait_ready`] holds: every service running and ready (or, with [`ReadyWhen::CriticalServices`], every critical one) |
//! | `STATUS=…` | a one-line summary such as `5 services, all ready`, `3 services, 1 not ready: db` or `shutting down (received SIGTERM): 2 services still running`, updated when a [lifecycle event](Supervisor::subscribe) changes it, at most once per [status interval](Notifier::with_status_interval) |
//! | `WATCHDOG=1` | every half of `WATCHDOG_USEC` (systemd's `WatchdogSec=`), while the supervisor is healthy (see below) |
//! | `STOPPING=1` (with a `STATUS=`) | when shutdown begins: the supervisor's [`cancel_token`](Supervisor::cancel_token) is cancelled (SIGTERM, [`trigger_shutdown`](Supervisor::trigger_shutdown), a critical service's end) |
//!
//! Without `NOTIFY_SOCKET` (not started by systemd, or on a platform other
//! than Unix) the notifier does nothing and returns at once. A notification
//! that cannot be sent is logged with `tracing` (a warning for the first
//! failure, then at debug level until one goes through again); nothing here
//! panics.
//!
//! # The watchdog
//!
//! With `WatchdogSec=` set, systemd passes `WATCHDOG_USEC` and
//! `WATCHDOG_PID` (read with [`sd_notify::watchdog_enabled`], which honours
//! them only in the process whose id is `WATCHDOG_PID`) and kills the service
//! (`SIGABRT`, then restarts it under `Restart=on-failure`) when no
//! `WATCHDOG=1` arrived within that time. The notifier sends one every half
//! of it, so one late tick is not fatal, and withholds it:
//!
//! - once a [critical](supervisor_core::SpawnOptions::critical) service has
//!   failed for good ([`Supervisor::shutdown_cause`] is
//!   [`CriticalFailed`](supervisor_core::ShutdownCause::CriticalFailed)), or
//!   the restart intensity was exceeded
//!   ([`IntensityExceeded`](supervisor_core::ShutdownCause::IntensityExceeded)),
//!   or a service's [`TerminateTree`](supervisor_core::TerminateTree) error
//!   shut the supervisor down
//!   ([`TreeTerminated`](supervisor_core::ShutdownCause::TreeTerminated)):
//!   the process is draining to exit non-zero, and the service manager must
//!   not be told it is healthy (if that drain outlasts `WatchdogSec=`,
//!   systemd aborts it, and restarts the process all the same);
//! - when the tokio runtime is wedged: the keep-alive is an ordinary tokio
//!   task, so when every worker thread is blocked (a service that blocks its
//!   thread on a current-thread runtime, a deadlock, a runaway loop without
//!   an `.await`), it is never polled, no `WATCHDOG=1` goes out, and systemd
//!   restarts the process. One blocked worker of a multi-thread runtime is
//!   not seen: the others still run the keep-alive.
//!
//! A service that fails and is restarted, or backs off, does not stop the
//! watchdog: restarting it is the supervisor's job, and the watchdog is for
//! the process. During an ordinary drain (SIGTERM) the pings go on until
//! every service has stopped, so a drain that takes longer than `WatchdogSec=`
//! is bounded by `TimeoutStopSec=`, not cut short by the watchdog.
//!
//! # Invariants
//!
//! 1. `READY=1` is sent at most once, and never after `STOPPING=1`.
//! 2. `STOPPING=1` is sent once, when shutdown begins, and nothing but
//!    `STATUS=` and `WATCHDOG=1` follows it.
//! 3. No `WATCHDOG=1` is sent once the shutdown cause is
//!    [`CriticalFailed`](supervisor_core::ShutdownCause::CriticalFailed),
//!    [`IntensityExceeded`](supervisor_core::ShutdownCause::IntensityExceeded)
//!    or [`TreeTerminated`](supervisor_core::ShutdownCause::TreeTerminated).
//! 4. Every `STATUS=` value is one line of at most [`MAX_STATUS_LEN`]
//!    bytes: control characters (a newline in a service's name or error
//!    message) become spaces, so no text of a service can forge another
//!    assignment such as `READY=1`.
//! 5. Nothing is sent without `NOTIFY_SOCKET` (or with an empty one).
//!
//! # Cost
//!
//! The notifier subscribes to the lifecycle events (so they are built, as
//! for any subscriber) and reads them as they come; the summary is
//! recomputed (one pass over the registry, under its lock, as
//! [`Supervisor::readiness`] does) at most once per status interval, however
//! many events arrive. A send is what `sd-notify` does: open a Unix datagram
//! socket, connect it to the path in `NOTIFY_SOCKET` (a path: an abstract
//! `@…` address is not supported, fails and is logged) and send one
//! datagram, on the notifier's task; systemd reads its socket at once, so
//! it does not block in practice.
//!
//! The unit file and its explanation are in `deploy/systemd/` in the
//! repository.
//!
//! # Examples
//!
//! ```no_run
//! use std::time::Duration;
//! use supervisor_core::{service_fn, ServiceContext, SpawnOptions, Supervisor, SupervisorConfig};
//! use supervisor_http::systemd;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let config = SupervisorConfig::default().with_shutdown_timeout(Duration::from_secs(2));
//!     let supervisor = Supervisor::new(config);
//!     let db = service_fn("db", |ctx: ServiceContext| async move {
//!         // Open the pool, then:
//!         ctx.ready();
//!         ctx.cancelled().await;
//!         Ok::<(), std::io::Error>(())
//!     });
//!     supervisor.spawn_service_with_options(db, SpawnOptions::default().signals_readiness())?;
//!
//!     // READY=1 once `db` is ready, WATCHDOG=1 while healthy, STOPPING=1 on SIGTERM.
//!     let notifier = systemd::Notifier::new(&supervisor).spawn();
//!     let result = supervisor.run_until_shutdown().await;
//!     notifier.await?; // Returns once the drain is over.
//!     result?;
//!     Ok(())
//! }
//! ```

use std::future::Future;
use std::time::Duration;

use supervisor_core::Supervisor;
use tokio::task::JoinHandle;

// When `READY=1` is sent (`Notifier::with_ready_when`): the policy of
// `GET /readyz` too, defined at the crate root.
pub use crate::ReadyWhen;

/// How often, at most, a changed `STATUS=` line is sent, unless
/// [`Notifier::with_status_interval`] says otherwise.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor_http::systemd::DEFAULT_STATUS_INTERVAL;
///
/// assert_eq!(DEFAULT_STATUS_INTERVAL, Duration::from_secs(1));
/// ```
pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// The longest `STATUS=` value sent, in bytes; a longer summary is cut at a
/// character boundary and ends with `…`.
///
/// # Examples
///
/// ```
/// use supervisor_http::systemd::MAX_STATUS_LEN;
///
/// assert_eq!(MAX_STATUS_LEN, 256);
/// ```
pub const MAX_STATUS_LEN: usize = 256;

/// Notifies systemd about `supervisor` with the default options: the
/// future [`Notifier::run`] returns for [`Notifier::new`].
///
/// The future returns at once without `NOTIFY_SOCKET`, and otherwise once
/// the supervisor has shut down and drained; it does nothing unless polled
/// (spawn it, or use [`Notifier::spawn`]).
///
/// # Examples
///
/// ```
/// use supervisor_core::{Supervisor, SupervisorConfig};
/// use supervisor_http::systemd;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
/// let notifier = tokio::spawn(systemd::notify(&supervisor));
///
/// supervisor.trigger_shutdown(); // STOPPING=1, under systemd.
/// supervisor.wait_for_drain().await;
/// notifier.await?; // Done: at once outside systemd, after the drain under it.
/// # Ok(())
/// # }
/// ```
#[must_use = "futures do nothing unless polled"]
pub fn notify(supervisor: &Supervisor) -> impl Future<Output = ()> + Send + 'static {
    Notifier::new(supervisor).run()
}

/// Follows one [`Supervisor`] and notifies systemd of its readiness, its
/// status, its health (the watchdog) and its shutdown: see the
/// [module](self) for what is sent when.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor_core::{Supervisor, SupervisorConfig};
/// use supervisor_http::systemd::{Notifier, ReadyWhen};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
/// let notifier = Notifier::new(&supervisor)
///     .with_status_interval(Duration::from_secs(5))
///     .with_ready_when(ReadyWhen::CriticalServices)
///     .spawn();
///
/// supervisor.trigger_shutdown();
/// supervisor.wait_for_drain().await;
/// notifier.await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Notifier {
    supervisor: Supervisor,
    status_interval: Duration,
    ready_when: ReadyWhen,
}

impl Notifier {
    /// A notifier for `supervisor`, with [`DEFAULT_STATUS_INTERVAL`] and
    /// [`ReadyWhen::AllServices`].
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{Supervisor, SupervisorConfig};
    /// use supervisor_http::systemd::{Notifier, ReadyWhen, DEFAULT_STATUS_INTERVAL};
    ///
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let notifier = Notifier::new(&supervisor);
    /// assert_eq!(notifier.status_interval(), DEFAULT_STATUS_INTERVAL);
    /// assert_eq!(notifier.ready_when(), ReadyWhen::AllServices);
    /// ```
    #[must_use]
    pub fn new(supervisor: &Supervisor) -> Self {
        Self {
            supervisor: supervisor.clone(),
            status_interval: DEFAULT_STATUS_INTERVAL,
            ready_when: ReadyWhen::AllServices,
        }
    }

    /// Sends a changed `STATUS=` line at most once per `interval` (events
    /// in between are folded into one update, sent when the interval is
    /// over). `READY=1` and `STOPPING=1` carry their own `STATUS=` at once,
    /// whatever the interval.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor_core::{Supervisor, SupervisorConfig};
    /// use supervisor_http::systemd::Notifier;
    ///
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let notifier = Notifier::new(&supervisor).with_status_interval(Duration::from_millis(250));
    /// assert_eq!(notifier.status_interval(), Duration::from_millis(250));
    /// ```
    #[must_use]
    pub fn with_status_interval(mut self, interval: Duration) -> Self {
        self.status_interval = interval;
        self
    }

    /// Sends `READY=1` when `ready_when` holds.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{Supervisor, SupervisorConfig};
    /// use supervisor_http::systemd::{Notifier, ReadyWhen};
    ///
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let notifier = Notifier::new(&supervisor).with_ready_when(ReadyWhen::CriticalServices);
    /// assert_eq!(notifier.ready_when(), ReadyWhen::CriticalServices);
    /// ```
    #[must_use]
    pub fn with_ready_when(mut self, ready_when: ReadyWhen) -> Self {
        self.ready_when = ready_when;
        self
    }

    /// The longest a changed `STATUS=` line waits to be sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{Supervisor, SupervisorConfig};
    /// use supervisor_http::systemd::{Notifier, DEFAULT_STATUS_INTERVAL};
    ///
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// assert_eq!(Notifier::new(&supervisor).status_interval(), DEFAULT_STATUS_INTERVAL);
    /// ```
    #[must_use]
    pub fn status_interval(&self) -> Duration {
        self.status_interval
    }

    /// When `READY=1` is sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{Supervisor, SupervisorConfig};
    /// use supervisor_http::systemd::{Notifier, ReadyWhen};
    ///
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// assert_eq!(Notifier::new(&supervisor).ready_when(), ReadyWhen::AllServices);
    /// ```
    #[must_use]
    pub fn ready_when(&self) -> ReadyWhen {
        self.ready_when
    }

    /// Follows the supervisor and notifies systemd, until the supervisor has
    /// shut down and drained; returns at once without `NOTIFY_SOCKET` (or
    /// on a platform other than Unix).
    ///
    /// The future is `'static`: spawn it (or use [`spawn`](Self::spawn)),
    /// and await it after [`Supervisor::run_until_shutdown`] so that the
    /// last notifications are out before `main` returns. Futures do nothing
    /// unless polled.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{Supervisor, SupervisorConfig};
    /// use supervisor_http::systemd::Notifier;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let notifier = tokio::spawn(Notifier::new(&supervisor).run());
    /// supervisor.trigger_shutdown();
    /// supervisor.wait_for_drain().await;
    /// notifier.await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the notifications (and the watchdog with
    /// them: under `WatchdogSec=`, systemd then restarts the process).
    #[must_use = "futures do nothing unless polled"]
    pub fn run(self) -> impl Future<Output = ()> + Send + 'static {
        run(self)
    }

    /// Spawns [`run`](Self::run) on the current tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_core::{Supervisor, SupervisorConfig};
    /// use supervisor_http::systemd::Notifier;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    /// let notifier = Notifier::new(&supervisor).spawn();
    /// supervisor.trigger_shutdown();
    /// supervisor.wait_for_drain().await;
    /// notifier.await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as [`tokio::spawn`] does.
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(self.run())
    }
}

#[cfg(not(unix))]
async fn run(notifier: Notifier) {
    // No `NOTIFY_SOCKET` to send to: the service manager is Unix-only.
    drop(notifier.supervisor);
    tracing::debug!("systemd: notifications are sent on Unix only");
}

#[cfg(unix)]
async fn run(notifier: Notifier) {
    unix::run(notifier).await;
}

#[cfg(unix)]
mod unix {
    //! The notifier's loop, on `sd-notify`'s Unix datagram socket.

    use std::pin::pin;
    use std::time::Duration;

    use sd_notify::NotifyState;
    use supervisor_core::{ReadyError, RecvError, ShutdownCause, Supervisor};
    use tokio::time::{Instant, Interval, MissedTickBehavior};

    use super::{MAX_STATUS_LEN, Notifier, ReadyWhen};
    use crate::readiness::critical_services_ready;

    pub(super) async fn run(notifier: Notifier) {
        let Notifier {
            supervisor,
            status_interval,
            ready_when,
        } = notifier;
        if std::env::var_os("NOTIFY_SOCKET").is_none_or(|socket| socket.is_empty()) {
            tracing::debug!("systemd: no NOTIFY_SOCKET, nothing to notify");
            return;
        }
        let mut watchdog = watchdog();
        tracing::info!(
            watchdog_every = ?watchdog.as_ref().map(Interval::period),
            "systemd: notifying the service manager"
        );
        // Subscribe before the first look, so no change is missed.
        let mut events = Some(supervisor.subscribe());
        let mut link = Link::default();
        let mut status = StatusLine::new(status_interval);
        let cancel = supervisor.cancel_token().clone();

        // Until shutdown begins: READY=1, STATUS= and WATCHDOG=1.
        let waits_for_all = ready_when == ReadyWhen::AllServices;
        let mut ready = pin!(wait_ready(supervisor.clone()));
        let mut ready_armed = waits_for_all;
        let mut ready_sent = false;
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                result = &mut ready, if ready_armed => {
                    ready_armed = false;
                    match result {
                        Ok(()) => {
                            ready_sent = true;
                            send_ready(&supervisor, &mut link, &mut status);
                        }
                        // The next turn of the loop sees the token.
                        Err(ReadyError::ShuttingDown) => {}
                        // A service failed for good. Asked again at the
                        // status refresh after the next event: a removal or
                        // a new spawn of that service clears it.
                        Err(error) => tracing::info!(%error, "systemd: not ready yet"),
                    }
                }
                received = next_event(&mut events) => {
                    if let Err(RecvError::Closed) = received {
                        events = None;
                    }
                    status.schedule();
                }
                () = tick(&mut watchdog) => feed(&supervisor, &mut link),
                () = until(status.due) => {
                    if ready_sent {
                        status.refresh(&supervisor, &mut link);
                    } else if waits_for_all {
                        if !ready_armed {
                            ready.set(wait_ready(supervisor.clone()));
                            ready_armed = true;
                        }
                        status.refresh(&supervisor, &mut link);
                    } else if critical_services_ready(&supervisor) {
                        ready_sent = true;
                        send_ready(&supervisor, &mut link, &mut status);
                    } else {
                        status.refresh(&supervisor, &mut link);
                    }
                }
            }
        }

        // Shutdown began: STOPPING=1 at once, then STATUS= and WATCHDOG=1
        // (unless a critical service failed) until the drain is over.
        let line = summary(&supervisor);
        link.send(&[NotifyState::Stopping, NotifyState::Status(&line)]);
        status.sent(line);
        tracing::info!("systemd: told the service manager the service is stopping");
        let mut drained = pin!(supervisor.wait_for_drain());
        loop {
            tokio::select! {
                biased;
                _report = &mut drained => break,
                received = next_event(&mut events) => {
                    if let Err(RecvError::Closed) = received {
                        events = None;
                    }
                    status.schedule();
                }
                () = tick(&mut watchdog) => feed(&supervisor, &mut link),
                () = until(status.due) => status.refresh(&supervisor, &mut link),
            }
        }
        status.refresh(&supervisor, &mut link);
    }

    /// The watchdog's ticks, every half of `WATCHDOG_USEC`, if systemd
    /// asked for a watchdog for this process. The first tick is at once.
    fn watchdog() -> Option<Interval> {
        let mut usec = 0;
        // `false`: changing the environment of a running (multi-threaded)
        // process is unsound; `WATCHDOG_PID` keeps children from using it.
        if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
            return None;
        }
        let period = (Duration::from_micros(usec) / 2).max(Duration::from_millis(1));
        let mut ticks = tokio::time::interval(period);
        // After a stall, one ping at once, then the period again: never a
        // burst that would hide how long the stall was.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Some(ticks)
    }

    /// Sends `WATCHDOG=1` unless a critical service failed for good.
    fn feed(supervisor: &Supervisor, link: &mut Link) {
        if healthy(supervisor) {
            link.send(&[NotifyState::Watchdog]);
        } else {
            tracing::debug!("systemd: a critical service failed, the watchdog is not fed");
        }
    }

    fn send_ready(supervisor: &Supervisor, link: &mut Link, status: &mut StatusLine) {
        let line = summary(supervisor);
        link.send(&[NotifyState::Ready, NotifyState::Status(&line)]);
        status.sent(line);
        tracing::info!("systemd: told the service manager the service is ready");
    }

    async fn wait_ready(supervisor: Supervisor) -> Result<(), ReadyError> {
        supervisor.wait_ready().await
    }

    async fn next_event(
        events: &mut Option<supervisor_core::LifecycleEvents>,
    ) -> Result<supervisor_core::LifecycleEvent, RecvError> {
        match events {
            Some(events) => events.recv().await,
            None => std::future::pending().await,
        }
    }

    async fn tick(ticks: &mut Option<Interval>) {
        match ticks {
            Some(ticks) => {
                ticks.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    async fn until(due: Option<Instant>) {
        match due {
            Some(due) => tokio::time::sleep_until(due).await,
            None => std::future::pending().await,
        }
    }

    /// The `STATUS=` line last sent, when the summary was last computed, and
    /// when the next refresh is due (`None`: nothing changed since).
    struct StatusLine {
        interval: Duration,
        last: Option<String>,
        refreshed_at: Option<Instant>,
        due: Option<Instant>,
    }

    impl StatusLine {
        /// The first refresh is due at once.
        fn new(interval: Duration) -> Self {
            Self {
                interval,
                last: None,
                refreshed_at: None,
                due: Some(Instant::now()),
            }
        }

        /// Something changed: refresh at once, or one interval after the
        /// last refresh, whichever is later.
        fn schedule(&mut self) {
            if self.due.is_some() {
                return;
            }
            let now = Instant::now();
            let due = self
                .refreshed_at
                .map_or(now, |refreshed_at| (refreshed_at + self.interval).max(now));
            self.due = Some(due);
        }

        /// Computes the summary, and sends it if it changed.
        fn refresh(&mut self, supervisor: &Supervisor, link: &mut Link) {
            let line = summary(supervisor);
            if self.last.as_deref() != Some(line.as_str()) {
                link.send(&[NotifyState::Status(&line)]);
            }
            self.sent(line);
        }

        /// `line` is the latest summary, and the service manager has it.
        fn sent(&mut self, line: String) {
            self.last = Some(line);
            self.refreshed_at = Some(Instant::now());
            self.due = None;
        }
    }

    /// Sends notifications and logs failures: the first at warning level,
    /// the next ones at debug level until one goes through again.
    #[derive(Default)]
    struct Link {
        failing: bool,
    }

    impl Link {
        fn send(&mut self, states: &[NotifyState<'_>]) {
            match sd_notify::notify(false, states) {
                Ok(()) => {
                    if self.failing {
                        tracing::info!("systemd: notifications go through again");
                    }
                    self.failing = false;
                }
                Err(error) if self.failing => {
                    tracing::debug!(%error, "systemd: cannot notify the service manager");
                }
                Err(error) => {
                    self.failing = true;
                    tracing::warn!(%error, "systemd: cannot notify the service manager");
                }
            }
        }
    }

    /// Whether the watchdog may be fed: no critical service failed for good,
    /// and no service's error terminated the supervisor (either way the
    /// process drains to exit non-zero). A wedged runtime needs no check: it
    /// does not poll the keep-alive.
    pub(super) fn healthy(supervisor: &Supervisor) -> bool {
        !matches!(
            supervisor.shutdown_cause(),
            Some(
                ShutdownCause::CriticalFailed { .. }
                    | ShutdownCause::IntensityExceeded { .. }
                    | ShutdownCause::TreeTerminated { .. }
            )
        )
    }

    /// The one-line summary sent as `STATUS=`, made safe by [`one_line`].
    pub(super) fn summary(supervisor: &Supervisor) -> String {
        if let Some(cause) = supervisor.shutdown_cause() {
            if supervisor.is_drained() {
                return one_line(&format!("drained ({cause})"));
            }
            let running = supervisor
                .lifecycle_snapshots()
                .iter()
                .filter(|snapshot| snapshot.phase.is_alive())
                .count();
            return one_line(&format!(
                "shutting down ({cause}): {} still running",
                services(running)
            ));
        }
        let readiness = supervisor.readiness();
        let total = services(supervisor.service_count());
        if readiness.ready {
            return one_line(&format!("{total}, all ready"));
        }
        let mut parts = Vec::with_capacity(2);
        if readiness.waiting.is_empty() && readiness.failed.is_empty() {
            // Shutdown began between the two reads.
            parts.push("not ready".to_owned());
        }
        if !readiness.waiting.is_empty() {
            parts.push(format!(
                "{} not ready: {}",
                readiness.waiting.len(),
                names(&readiness.waiting)
            ));
        }
        if !readiness.failed.is_empty() {
            parts.push(format!(
                "{} failed for good: {}",
                readiness.failed.len(),
                names(&readiness.failed)
            ));
        }
        one_line(&format!("{total}, {}", parts.join("; ")))
    }

    /// `1 service`, `2 services`.
    fn services(count: usize) -> String {
        match count {
            1 => "1 service".to_owned(),
            _ => format!("{count} services"),
        }
    }

    /// The first three names, and how many more.
    fn names(names: &[String]) -> String {
        const SHOWN: usize = 3;
        let mut text = names
            .iter()
            .take(SHOWN)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if names.len() > SHOWN {
            text.push_str(&format!(" and {} more", names.len() - SHOWN));
        }
        text
    }

    /// `text` as one line of at most [`MAX_STATUS_LEN`] bytes: every control
    /// character (a newline, a tab, an escape) becomes a space, and a longer
    /// line is cut at a character boundary and ends with `…`.
    pub(super) fn one_line(text: &str) -> String {
        const ELLIPSIS: char = '…';
        let mut line: String = text
            .chars()
            .map(|character| {
                if character.is_control() {
                    ' '
                } else {
                    character
                }
            })
            .collect();
        if line.len() > MAX_STATUS_LEN {
            let mut end = MAX_STATUS_LEN - ELLIPSIS.len_utf8();
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            line.push(ELLIPSIS);
        }
        line
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::time::Duration;

    use supervisor_core::{
        RestartPolicy, ServiceContext, SpawnOptions, Supervisor, SupervisorConfig, service_fn,
    };

    use super::MAX_STATUS_LEN;
    use super::unix::{healthy, one_line, summary};

    fn idle(name: &'static str) -> impl supervisor_core::Service {
        service_fn(name, |ctx: ServiceContext| async move {
            ctx.cancelled().await;
            Ok::<(), std::io::Error>(())
        })
    }

    #[test]
    fn a_status_line_is_one_bounded_line() {
        assert_eq!(one_line("db\nREADY=1\r\tx"), "db READY=1  x");
        let fits = "a".repeat(MAX_STATUS_LEN);
        assert_eq!(one_line(&fits), fits);
        for long in ["a".repeat(MAX_STATUS_LEN + 1), "é".repeat(MAX_STATUS_LEN)] {
            let cut = one_line(&long);
            assert!(cut.len() <= MAX_STATUS_LEN, "{}", cut.len());
            assert!(cut.len() >= MAX_STATUS_LEN - 4, "{}", cut.len());
            assert!(cut.ends_with('…'));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_is_withheld_once_a_service_terminates_the_tree() {
        let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
        let migrate = service_fn("migrate", |_ctx: ServiceContext| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err::<(), _>(supervisor_core::TerminateTree::new("schema mismatch"))
        });
        supervisor.spawn_service(idle("cache")).unwrap();
        supervisor.spawn_service(migrate).unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(healthy(&supervisor));

        tokio::time::sleep(Duration::from_secs(1)).await;
        // At once, not only once drained: the process will exit non-zero.
        assert!(!healthy(&supervisor));
        supervisor.wait_for_drain().await;
        assert!(!healthy(&supervisor));
        assert_eq!(
            summary(&supervisor),
            "drained (service `migrate` asked to terminate the supervisor: schema mismatch)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_ordinary_shutdown_keeps_the_watchdog_fed() {
        let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
        supervisor.spawn_service(idle("cache")).unwrap();
        supervisor.trigger_shutdown();
        supervisor.wait_for_drain().await;
        assert!(healthy(&supervisor));
    }

    #[tokio::test(start_paused = true)]
    async fn the_summary_names_what_holds_readiness_back() {
        let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
        let waiting = service_fn("db", |ctx: ServiceContext| async move {
            ctx.cancelled().await; // Never says it is ready.
            Ok::<(), std::io::Error>(())
        });
        let failing = service_fn("poller\nREADY=1", |_ctx: ServiceContext| async {
            Err::<(), _>(std::io::Error::other("refused"))
        })
        .with_restart_policy(RestartPolicy::Never);
        supervisor
            .spawn_service_with_options(waiting, SpawnOptions::default().signals_readiness())
            .unwrap();
        supervisor.spawn_service(failing).unwrap();
        supervisor.spawn_service(idle("cache")).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;

        assert_eq!(
            summary(&supervisor),
            "3 services, 1 not ready: db; 1 failed for good: poller READY=1"
        );
        supervisor.remove_service("poller\nREADY=1").await.unwrap();
        supervisor.remove_service("db").await.unwrap();
        assert_eq!(summary(&supervisor), "1 service, all ready");

        supervisor.trigger_shutdown();
        assert_eq!(
            summary(&supervisor),
            "shutting down (requested by the host): 1 service still running"
        );
        supervisor.wait_for_drain().await;
        assert_eq!(summary(&supervisor), "drained (requested by the host)");
    }
}
