//! Shared helpers of the behaviour tests: supervisors with test settings, a
//! scripted service, an event-recording sink and waiting helpers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervisor_core::{
    BackoffConfig, FailureKind, Jitter, MetricsSink, RestartPolicy, Service, ServiceContext,
    ServicePhase, Supervisor, SupervisorConfig, TerminationReason,
};
use tokio::time::Instant;

/// A supervisor for tests: no signal handler, fixed jitter seed, 5 s drain.
pub(crate) fn supervisor() -> Supervisor {
    Supervisor::new(config())
}

pub(crate) fn config() -> SupervisorConfig {
    SupervisorConfig::default()
        .without_signal_handler()
        .with_jitter_seed(7)
        .with_shutdown_timeout(Duration::from_secs(5))
}

/// 100 ms doubling to 1 s, no jitter, no breaker: delays are exact.
pub(crate) fn exact_backoff() -> BackoffConfig {
    BackoffConfig::new(Duration::from_millis(100), Duration::from_secs(1))
        .with_jitter(Jitter::None)
        .without_circuit_breaker()
}

/// What one run of a [`Scripted`] service does.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Return `Err` after this long.
    Fail(Duration),
    /// Return `Ok` after this long.
    Succeed(Duration),
    /// Panic after this long.
    Panic(Duration),
    /// Panic in `run` itself, before the run's future exists.
    PanicEarly,
    /// Cancel the run's own token (as a drop guard would), then return `Ok`
    /// after this long: not a stop, so the run ends by policy like a success.
    CancelOwnToken(Duration),
    /// Run until cancelled, then return `Ok` after this much cleanup.
    UntilCancelled(Duration),
    /// Ignore cancellation forever.
    Hang,
}

impl Step {
    /// Whether the run returns `Ok` by itself (cancelling its own token is
    /// not a stop).
    pub(crate) fn succeeds(&self) -> bool {
        matches!(self, Step::Succeed(_) | Step::CancelOwnToken(_))
    }
}

/// What a [`Scripted`] service observed, in virtual time.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    pub(crate) starts: Vec<Instant>,
    pub(crate) ends: Vec<Instant>,
    pub(crate) cleanups_done: u32,
}

/// A service that plays one [`Step`] per run; after the script it runs until
/// cancelled.
#[derive(Debug, Clone)]
pub(crate) struct Scripted {
    pub(crate) name: String,
    pub(crate) policy: RestartPolicy,
    script: Arc<Mutex<VecDeque<Step>>>,
    pub(crate) journal: Arc<Mutex<Journal>>,
}

impl Scripted {
    pub(crate) fn new(
        name: &str,
        policy: RestartPolicy,
        steps: impl IntoIterator<Item = Step>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            policy,
            script: Arc::new(Mutex::new(steps.into_iter().collect())),
            journal: Arc::default(),
        }
    }

    pub(crate) fn starts(&self) -> Vec<Instant> {
        self.journal.lock().unwrap().starts.clone()
    }

    pub(crate) fn ends(&self) -> Vec<Instant> {
        self.journal.lock().unwrap().ends.clone()
    }

    pub(crate) fn cleanups_done(&self) -> u32 {
        self.journal.lock().unwrap().cleanups_done
    }
}

#[derive(Debug)]
pub(crate) struct ScriptError(pub(crate) String);

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScriptError {}

impl Service for Scripted {
    type Error = ScriptError;

    fn name(&self) -> &str {
        &self.name
    }

    fn restart_policy(&self) -> RestartPolicy {
        self.policy
    }

    fn run(
        &self,
        ctx: ServiceContext,
    ) -> impl std::future::Future<Output = Result<(), ScriptError>> + Send {
        let run = {
            let mut journal = self.journal.lock().unwrap();
            journal.starts.push(Instant::now());
            journal.starts.len()
        };
        let step = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Step::UntilCancelled(Duration::ZERO));
        if let Step::PanicEarly = step {
            panic!("run {run} panicked");
        }
        async move {
            let result = match step {
                Step::Fail(after) => {
                    tokio::time::sleep(after).await;
                    Err(ScriptError(format!("run {run} failed")))
                }
                Step::Succeed(after) => {
                    tokio::time::sleep(after).await;
                    Ok(())
                }
                Step::Panic(after) => {
                    tokio::time::sleep(after).await;
                    panic!("run {run} panicked");
                }
                Step::PanicEarly => unreachable!("panicked above"),
                Step::CancelOwnToken(after) => {
                    ctx.token().cancel();
                    assert!(ctx.is_cancelled());
                    tokio::time::sleep(after).await;
                    Ok(())
                }
                Step::UntilCancelled(cleanup) => {
                    ctx.cancelled().await;
                    tokio::time::sleep(cleanup).await;
                    self.journal.lock().unwrap().cleanups_done += 1;
                    Ok(())
                }
                Step::Hang => loop {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                },
            };
            self.journal.lock().unwrap().ends.push(Instant::now());
            result
        }
    }
}

/// One event a sink saw.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    Spawned(String),
    Started(String, u64),
    Phase(String, ServicePhase, ServicePhase),
    Failed(String, FailureKind),
    Backoff(String, Duration),
    CircuitOpened(String, u32, u32),
    Terminated(String, TerminationReason),
    Removed(String),
}

/// A sink that records every event with the instant it was emitted at
/// (virtual time under a paused clock), under one lock so the order is the
/// order of emission.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    events: Mutex<Vec<(Instant, Event)>>,
    uptimes: Mutex<Vec<(String, Duration)>>,
}

impl Recorder {
    pub(crate) fn events(&self) -> Vec<Event> {
        self.timed_events()
            .into_iter()
            .map(|(_, event)| event)
            .collect()
    }

    pub(crate) fn timed_events(&self) -> Vec<(Instant, Event)> {
        self.events.lock().unwrap().clone()
    }

    /// The `uptime` of every `service_terminated` event, in order.
    pub(crate) fn uptimes(&self) -> Vec<(String, Duration)> {
        self.uptimes.lock().unwrap().clone()
    }

    /// The phases `service` went through, starting with `Starting`.
    pub(crate) fn phases(&self, service: &str) -> Vec<ServicePhase> {
        let mut phases = vec![ServicePhase::Starting];
        for event in self.events() {
            if let Event::Phase(name, from, to) = event {
                if name == service {
                    assert_eq!(phases.last(), Some(&from), "phase events out of order");
                    phases.push(to);
                }
            }
        }
        phases
    }

    fn push(&self, event: Event) {
        self.events.lock().unwrap().push((Instant::now(), event));
    }
}

impl MetricsSink for Recorder {
    type Handle = Arc<str>;

    fn resolve(&self, service: &str) -> Arc<str> {
        Arc::from(service)
    }
    fn service_spawned(&self, service: &Arc<str>) {
        self.push(Event::Spawned(service.to_string()));
    }
    fn service_started(&self, service: &Arc<str>, start_count: u64) {
        self.push(Event::Started(service.to_string(), start_count));
    }
    fn phase_changed(&self, service: &Arc<str>, from: ServicePhase, to: ServicePhase) {
        self.push(Event::Phase(service.to_string(), from, to));
    }
    fn service_failed(&self, service: &Arc<str>, kind: FailureKind) {
        self.push(Event::Failed(service.to_string(), kind));
    }
    fn backoff_scheduled(&self, service: &Arc<str>, delay: Duration) {
        self.push(Event::Backoff(service.to_string(), delay));
    }
    fn circuit_opened(&self, service: &Arc<str>, failures: u32, max_retries: u32) {
        self.push(Event::CircuitOpened(
            service.to_string(),
            failures,
            max_retries,
        ));
    }
    fn service_terminated(&self, service: &Arc<str>, reason: &TerminationReason, uptime: Duration) {
        self.uptimes
            .lock()
            .unwrap()
            .push((service.to_string(), uptime));
        self.push(Event::Terminated(service.to_string(), reason.clone()));
    }
    fn service_removed(&self, service: Arc<str>) {
        self.push(Event::Removed(service.to_string()));
    }
}

/// A supervisor whose events are recorded.
pub(crate) fn recorded_supervisor(config: SupervisorConfig) -> (Supervisor, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let supervisor = Supervisor::new(config.with_metrics_sink(recorder.clone()));
    (supervisor, recorder)
}

/// Lets paused time run until `service` is in `phase`; panics after an hour of
/// virtual time.
pub(crate) async fn wait_for_phase(supervisor: &Supervisor, service: &str, phase: ServicePhase) {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        if supervisor
            .service_lifecycle(service)
            .is_some_and(|s| s.phase == phase)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{service} never reached {phase}: {:?}",
            supervisor.service_lifecycle(service)
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Advances paused time by `d`, letting every task run.
pub(crate) async fn advance(d: Duration) {
    tokio::time::sleep(d).await;
}

impl Event {
    /// The service the event is about.
    pub(crate) fn service(&self) -> &str {
        match self {
            Event::Spawned(name)
            | Event::Started(name, _)
            | Event::Phase(name, ..)
            | Event::Failed(name, _)
            | Event::Backoff(name, _)
            | Event::CircuitOpened(name, ..)
            | Event::Terminated(name, _)
            | Event::Removed(name) => name,
        }
    }
}

/// Like [`exact_backoff`], from `base` doubling to `max`: no jitter, no
/// breaker.
pub(crate) fn exact_backoff_between(base: Duration, max: Duration) -> BackoffConfig {
    BackoffConfig::new(base, max)
        .with_jitter(Jitter::None)
        .without_circuit_breaker()
}

impl Recorder {
    /// Every backoff delay scheduled, in order.
    pub(crate) fn backoffs(&self) -> Vec<Duration> {
        self.events()
            .into_iter()
            .filter_map(|event| match event {
                Event::Backoff(_, delay) => Some(delay),
                _ => None,
            })
            .collect()
    }

    /// How many services were forgotten (`service_removed`).
    pub(crate) fn removals(&self) -> usize {
        self.events()
            .iter()
            .filter(|event| matches!(event, Event::Removed(_)))
            .count()
    }
}
