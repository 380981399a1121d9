//! Chaos: random fleets of scripted services, with random restart policies and
//! backoffs, on a paused-time runtime.
//!
//! Between steps of virtual time the counters must agree with the lifecycles
//! (a current-thread runtime runs no task while the test reads them). After
//! the drain, every event of every service is replayed, with the instant it
//! was emitted at, through a reference model of the policy table, the delays
//! of each jitter kind, the cooldown and the circuit breaker, written here
//! from their documentation; and the sinks' view of the fleet is rebuilt from
//! the events alone and compared with the lifecycle snapshots.
//!
//! Virtual time is exact up to the timer's resolution: tokio fires a sleep at
//! the first whole millisecond at or after its deadline, and every other
//! instant of these tests is a whole number of milliseconds, so a backoff of
//! `D` shows as a gap of exactly `D` rounded up to the millisecond.
//!
//! Each case builds its own runtime and takes a few milliseconds; the number
//! of cases is `PROPTEST_CASES` (256 by default, 2048 in CI).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use supervisor_core::{
    BackoffConfig, DEFAULT_CLEAN_RESTART_DELAY, DrainReport, FailureCounts, FailureKind, Jitter,
    MetricsSink, RestartPolicy, ServiceLifecycleSnapshot, ServicePhase, SpawnOptions, Supervisor,
    TerminationReason,
};
use tests::BreakerModel;
use tokio::time::Instant;

use crate::support::{Event, Recorder, Scripted, Step, config};

proptest! {
    #[test]
    fn chaotic_fleets_keep_every_invariant(chaos in chaos()) {
        run_chaos(&chaos, check_counters, |run, drain| check_drained(&chaos, run, drain));
    }

    #[test]
    fn the_sinks_view_equals_the_lifecycle_snapshots_after_a_chaotic_run(chaos in chaos()) {
        run_chaos(&chaos, check_sink_view, |run, _drain| {
            check_sink_view(run);
            check_uptimes(run);
            check_panicky_sink(run);
        });
    }
}

// ---------------------------------------------------------------------------
// What a chaotic run is made of.

/// One service of a fleet.
#[derive(Debug, Clone)]
struct ServicePlan {
    policy: RestartPolicy,
    /// Run `n` (1-based) plays `script[n - 1]`; after the script, runs last
    /// until cancelled ([`Scripted`]'s default).
    script: Vec<Step>,
    backoff: BackoffConfig,
    /// Spawned just before this pause (an index into [`Chaos::pauses`]).
    spawn_at: usize,
}

#[derive(Debug, Clone)]
struct Chaos {
    services: Vec<ServicePlan>,
    /// The steps of virtual time; the invariants are checked after each.
    pauses: Vec<Duration>,
    shutdown_timeout: Duration,
    clean_restart_delay: Duration,
    jitter_seed: u64,
    /// The event kinds the [`Panicky`] sink panics on (one bit each).
    sink_panics: u8,
    /// Whether the [`Panicky`] sink also panics resolving each service.
    resolve_panics: bool,
}

/// Whole milliseconds up to `max`, often zero, small or round (so that
/// sums of them hit the circuit breaker's window boundaries).
fn millis(max: u64) -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(0),
        1..=20_u64,
        (0..=max / 100).prop_map(|tenths| tenths * 100),
        0..=max
    ]
    .prop_map(Duration::from_millis)
}

/// A run that ends by itself.
fn run_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => millis(1_000).prop_map(Step::Fail),
        1 => millis(1_000).prop_map(Step::Succeed),
        1 => millis(1_000).prop_map(Step::Panic),
        1 => Just(Step::PanicEarly),
        1 => millis(1_000).prop_map(Step::CancelOwnToken),
    ]
}

/// Up to eight runs that end by themselves, then maybe a run that waits for
/// cancellation (with a cleanup that may outlast the shutdown timeout) or one
/// that ignores it.
fn script() -> impl Strategy<Value = Vec<Step>> {
    let last = prop_oneof![
        Just(None),
        millis(4_000).prop_map(|cleanup| Some(Step::UntilCancelled(cleanup))),
        Just(Some(Step::Hang)),
    ];
    (prop::collection::vec(run_step(), 0..=8), last).prop_map(|(mut script, last)| {
        script.extend(last);
        script
    })
}

fn policy() -> impl Strategy<Value = RestartPolicy> {
    prop_oneof![
        Just(RestartPolicy::Always),
        Just(RestartPolicy::OnFailure),
        Just(RestartPolicy::Never),
    ]
}

fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Equal),
        Just(Jitter::Full),
        Just(Jitter::Decorrelated),
    ]
}

/// Base 0–500 ms (often under 20 ms) and max up to 5 s, in microseconds (so delays are rarely
/// whole milliseconds), multiplier 1–4, any jitter, maybe a circuit breaker
/// of 0–5 retries in 1–60 s, and a cooldown.
fn backoff() -> impl Strategy<Value = BackoffConfig> {
    let base =
        prop_oneof![Just(0_u64), 0..=20_000_u64, 0..=500_000_u64].prop_map(Duration::from_micros);
    let headroom = prop_oneof![Just(0_u64), 0..=1_000_000_u64, 0..=5_000_000_u64]
        .prop_map(Duration::from_micros);
    let multiplier = prop_oneof![Just(1.0), Just(2.0), 1.0..=4.0_f64];
    let window = prop_oneof![
        Just(Duration::from_secs(1)),
        Just(Duration::from_secs(2)),
        (1_000..=60_000_u64).prop_map(Duration::from_millis),
    ];
    let breaker = proptest::option::of((0..=5_u32, window));
    let cooldown = prop_oneof![
        Just(Duration::ZERO),
        millis(3_000),
        Just(BackoffConfig::DEFAULT_COOLDOWN),
    ];
    (base, headroom, multiplier, jitter(), breaker, cooldown).prop_map(
        |(base, headroom, multiplier, jitter, breaker, cooldown)| {
            let max = (base + headroom).min(Duration::from_secs(5));
            let config = BackoffConfig::new(base, max)
                .with_multiplier(multiplier)
                .with_jitter(jitter)
                .with_cooldown(cooldown);
            match breaker {
                Some((max_retries, window)) => config.with_circuit_breaker(max_retries, window),
                None => config.without_circuit_breaker(),
            }
        },
    )
}

/// A step of virtual time: mostly up to 2 s, sometimes none at all (the
/// services just spawned are then not even polled before the next check).
fn pause() -> impl Strategy<Value = Duration> {
    prop_oneof![
        1 => Just(Duration::ZERO),
        4 => (1..=2_000_u64).prop_map(Duration::from_millis),
    ]
}

fn chaos() -> impl Strategy<Value = Chaos> {
    let service = (policy(), script(), backoff(), 0..8_usize).prop_map(
        |(policy, script, backoff, spawn_at)| ServicePlan {
            policy,
            script,
            backoff,
            spawn_at,
        },
    );
    (
        prop::collection::vec(service, 1..=8),
        prop::collection::vec(pause(), 1..=8),
        (100..=3_000_u64).prop_map(Duration::from_millis),
        prop_oneof![
            Just(DEFAULT_CLEAN_RESTART_DELAY),
            Just(Duration::ZERO),
            millis(300)
        ],
        any::<u64>(),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                mut services,
                pauses,
                shutdown_timeout,
                clean_restart_delay,
                jitter_seed,
                sink_panics,
                resolve_panics,
            )| {
                for service in &mut services {
                    service.spawn_at %= pauses.len();
                }
                Chaos {
                    services,
                    pauses,
                    shutdown_timeout,
                    clean_restart_delay,
                    jitter_seed,
                    sink_panics,
                    resolve_panics,
                }
            },
        )
}

// ---------------------------------------------------------------------------
// Running one case.

/// A fleet under way.
struct Run {
    supervisor: Supervisor,
    recorder: Arc<Recorder>,
    /// A second sink: it must see exactly the stream the first one sees.
    timed: Arc<Recorder>,
    /// A sink added before both, that panics: it loses exactly the events it
    /// panics on, and nothing else.
    panicky: Arc<Panicky>,
    services: Vec<Scripted>,
    /// The supervisor's creation: the origin of its lifecycle times.
    epoch: Instant,
}

/// How the fleet was shut down.
struct Drain {
    report: DrainReport,
    shutdown_at: Instant,
    drained_at: Instant,
}

/// Runs `chaos` on its own paused current-thread runtime: spawns each service
/// before its pause, calls `between_steps` after each pause, then shuts the
/// fleet down and calls `after_drain` (still inside the runtime, so virtual
/// time is still the clock).
fn run_chaos(
    chaos: &Chaos,
    mut between_steps: impl FnMut(&Run),
    after_drain: impl FnOnce(&Run, &Drain),
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a paused current-thread runtime");
    runtime.block_on(async {
        let recorder = Arc::new(Recorder::default());
        let timed = Arc::new(Recorder::default());
        let panicky = Arc::new(Panicky::new(chaos.sink_panics, chaos.resolve_panics));
        let epoch = Instant::now();
        let supervisor = Supervisor::new(
            config()
                .with_jitter_seed(chaos.jitter_seed)
                .with_shutdown_timeout(chaos.shutdown_timeout)
                .with_clean_restart_delay(chaos.clean_restart_delay)
                .with_metrics_sink(panicky.clone())
                .with_metrics_sink(recorder.clone())
                .with_metrics_sink(timed.clone()),
        );
        let services = chaos
            .services
            .iter()
            .enumerate()
            .map(|(i, plan)| Scripted::new(&name(i), plan.policy, plan.script.clone()))
            .collect();
        let run = Run {
            supervisor,
            recorder,
            timed,
            panicky,
            services,
            epoch,
        };

        for (step, pause) in chaos.pauses.iter().enumerate() {
            for (plan, service) in chaos.services.iter().zip(&run.services) {
                if plan.spawn_at == step {
                    let options = SpawnOptions::with_backoff(plan.backoff);
                    let spawned = run
                        .supervisor
                        .spawn_service_with_options(service.clone(), options);
                    assert!(spawned.is_ok(), "{}: {spawned:?}", service.name);
                }
            }
            tokio::time::sleep(*pause).await;
            between_steps(&run);
        }

        let shutdown_at = Instant::now();
        run.supervisor.trigger_shutdown();
        let report = run.supervisor.wait_for_drain().await;
        let drain = Drain {
            report,
            shutdown_at,
            drained_at: Instant::now(),
        };
        after_drain(&run, &drain);
    });
}

fn name(i: usize) -> String {
    format!("svc-{i}")
}

// ---------------------------------------------------------------------------
// Invariants.

/// The counters agree with the lifecycles and with the event stream, and no
/// service started after its circuit opened.
fn check_counters(run: &Run) {
    let m = run.supervisor.metrics().snapshot();
    let snapshots = run.supervisor.lifecycle_snapshots();
    let count = |kind: &str| {
        snapshots
            .iter()
            .filter(|s| s.termination_reason.as_ref().map(TerminationReason::kind) == Some(kind))
            .count() as u64
    };

    assert_eq!(m.spawned_total, snapshots.len() as u64, "{m:?}");
    assert_eq!(
        m.spawned_total,
        m.terminated_total + m.active_services,
        "spawned = terminated + active: {m:?}"
    );
    let alive = snapshots.iter().filter(|s| s.phase.is_alive()).count() as u64;
    assert_eq!(m.active_services, alive, "{m:?}");
    let restarts: u64 = snapshots
        .iter()
        .map(|s| s.start_count.saturating_sub(1))
        .sum();
    assert_eq!(m.restarts_total, restarts, "restarts = Σ(start_count − 1)");
    let restart_counts: u64 = snapshots.iter().map(|s| s.restart_count()).sum();
    assert_eq!(restart_counts, restarts);
    assert_eq!(m.circuit_breaker_trips, count("circuit_breaker_open"));
    assert_eq!(m.failures.timeout, count("shutdown_timeout"));
    let failures: u64 = snapshots.iter().map(|s| s.failures.total()).sum();
    assert_eq!(
        m.failures.total(),
        failures,
        "one source of truth per number"
    );

    let mut open = BTreeSet::new();
    for event in run.recorder.events() {
        match event {
            Event::CircuitOpened(name, ..) => {
                open.insert(name);
            }
            Event::Started(name, n) => {
                assert!(
                    !open.contains(&name),
                    "{name} started (run {n}) after its circuit opened"
                );
            }
            _ => {}
        }
    }
}

/// After the drain: every service terminated, the hung ones aborted, and the
/// whole event stream agrees with the reference model.
fn check_drained(chaos: &Chaos, run: &Run, drain: &Drain) {
    check_counters(run);
    let m = run.supervisor.metrics().snapshot();
    let snapshots = run.supervisor.lifecycle_snapshots();
    assert_eq!(m.active_services, 0, "{m:?}");
    assert_eq!(m.spawned_total, chaos.services.len() as u64);
    assert_eq!(m.terminated_total, m.spawned_total);
    for snapshot in &snapshots {
        assert_eq!(
            snapshot.phase,
            ServicePhase::Terminated,
            "{snapshot:?} after the drain"
        );
    }
    assert!(drain.report.unwound, "{:?}", drain.report);
    let timed_out: Vec<String> = snapshots
        .iter()
        .filter(|s| {
            s.termination_reason.as_ref().map(TerminationReason::kind) == Some("shutdown_timeout")
        })
        .map(|s| s.service_name.clone())
        .collect();
    assert_eq!(drain.report.aborted, timed_out, "aborted = timed out");

    // Both sinks saw every event, in the same order.
    let timed = run.timed.timed_events();
    let untimed: Vec<Event> = timed.iter().map(|(_, event)| event.clone()).collect();
    assert_eq!(untimed, run.recorder.events());

    let mut models: BTreeMap<String, Model<'_>> = chaos
        .services
        .iter()
        .enumerate()
        .map(|(i, plan)| (name(i), Model::new(name(i), plan, chaos, run.epoch, drain)))
        .collect();
    for (at, event) in timed {
        let model = models
            .get_mut(event.service())
            .unwrap_or_else(|| panic!("an event of an unknown service: {event:?}"));
        model.apply(at, event);
    }
    for (model, service) in models.values().zip(&run.services) {
        model.finish(service);
    }

    // The drain lasted until the last service terminated, and no longer.
    let last_termination = models
        .values()
        .filter_map(|model| model.terminated_at)
        .max()
        .expect("at least one service");
    assert_eq!(
        drain.drained_at - drain.shutdown_at,
        last_termination.saturating_duration_since(drain.shutdown_at),
        "the drain took as long as the slowest service"
    );
}

/// `d` rounded up to a whole millisecond: how long a tokio sleep of `d` lasts
/// from a whole millisecond.
fn ceil_to_millis(d: Duration) -> Duration {
    let millis = d.as_nanos().div_ceil(1_000_000);
    Duration::from_millis(u64::try_from(millis).expect("a short delay"))
}

/// The documented exponential `min(max, base · multiplierⁿ)`, in `f64`.
fn formula_nanos(config: &BackoffConfig, attempt: u32) -> f64 {
    let base = config.base().as_nanos() as f64;
    let max = config.max().as_nanos() as f64;
    (base * config.multiplier().powf(f64::from(attempt))).min(max)
}

/// A run of a service, as the model saw it.
#[derive(Debug)]
struct ModelRun {
    /// 1-based.
    index: u64,
    step: Step,
    started: Instant,
    /// The failure recorded for this run, if any.
    failed: Option<(Instant, FailureKind)>,
}

impl ModelRun {
    /// When the run ends if nothing cancels it; `None` for the runs that end
    /// only on cancellation.
    fn natural_end(&self) -> Option<Instant> {
        match self.step {
            Step::Fail(d) | Step::Succeed(d) | Step::Panic(d) | Step::CancelOwnToken(d) => {
                Some(self.started + d)
            }
            Step::PanicEarly => Some(self.started),
            Step::UntilCancelled(_) | Step::Hang => None,
        }
    }

    /// When the run ends once shutdown starts at `shutdown_at`; `None` if
    /// never.
    fn end_after_shutdown(&self, shutdown_at: Instant) -> Option<Instant> {
        match self.step {
            Step::UntilCancelled(cleanup) => Some(shutdown_at + cleanup),
            Step::Hang => None,
            _ => self.natural_end(),
        }
    }

    /// Checks that the run ended at `at` with the failure its step makes.
    fn assert_ended(&self, service: &str, at: Instant, shutdown_at: Instant) {
        let expected_failure = match self.step {
            Step::Fail(_) => Some((at, FailureKind::Error)),
            Step::Panic(_) | Step::PanicEarly => Some((at, FailureKind::Panic)),
            _ => None,
        };
        assert_eq!(
            self.failed, expected_failure,
            "{service}: the failure recorded for {self:?}"
        );
        let end = if at >= shutdown_at {
            self.end_after_shutdown(shutdown_at)
        } else {
            self.natural_end()
        };
        assert_eq!(Some(at), end, "{service}: when {self:?} ended");
    }
}

/// How the last run ended, while its backoff event is awaited.
#[derive(Debug)]
enum Ended {
    Clean,
    Failure { started: Instant, ended: Instant },
}

/// The reference model of one service, fed its events in order. Every event
/// is checked against the script, the policy and the backoff; times are
/// checked exactly.
#[derive(Debug)]
struct Model<'a> {
    name: String,
    plan: &'a ServicePlan,
    clean_restart_delay: Duration,
    shutdown_timeout: Duration,
    epoch: Instant,
    shutdown_at: Instant,

    phase: Option<ServicePhase>,
    last_transition: Option<(Instant, ServicePhase)>,
    starts: Vec<Instant>,
    run: Option<ModelRun>,
    awaiting_backoff: Option<Ended>,
    /// The backoff being waited out: when it was scheduled, and for how long.
    backoff: Option<(Instant, Duration)>,
    attempt: u32,
    previous_delay: Duration,
    breaker: Option<BreakerModel>,
    circuit_opened: Option<(u32, u32)>,
    terminated_at: Option<Instant>,
    reason: Option<TerminationReason>,
    timeout_failures: Vec<Instant>,
}

impl<'a> Model<'a> {
    fn new(
        name: String,
        plan: &'a ServicePlan,
        chaos: &Chaos,
        epoch: Instant,
        drain: &Drain,
    ) -> Self {
        Self {
            name,
            plan,
            clean_restart_delay: chaos.clean_restart_delay,
            shutdown_timeout: chaos.shutdown_timeout,
            epoch,
            shutdown_at: drain.shutdown_at,
            phase: None,
            last_transition: None,
            starts: Vec::new(),
            run: None,
            awaiting_backoff: None,
            backoff: None,
            attempt: 0,
            previous_delay: plan.backoff.base(),
            breaker: plan
                .backoff
                .circuit_breaker()
                .map(|breaker| BreakerModel::new(breaker.max_retries(), breaker.window())),
            circuit_opened: None,
            terminated_at: None,
            reason: None,
            timeout_failures: Vec::new(),
        }
    }

    fn apply(&mut self, at: Instant, event: Event) {
        let name = self.name.clone();
        let shutdown_at = self.shutdown_at;
        match event {
            Event::Spawned(_) => {
                assert_eq!(self.phase, None, "{name} spawned twice");
                self.phase = Some(ServicePhase::Starting);
            }
            Event::Phase(_, from, to) => self.transition(at, from, to),
            Event::Started(_, start_count) => {
                assert_eq!(self.phase, Some(ServicePhase::Running), "{name}");
                let run = self.run.as_ref().expect("a run in progress");
                assert_eq!((run.index, run.started), (start_count, at), "{name}");
            }
            Event::Failed(_, FailureKind::Timeout) => {
                // Reported by the drain along with the termination (checked
                // in `finish`, whichever of the two comes first).
                self.timeout_failures.push(at);
            }
            Event::Failed(_, kind) => {
                let run = self.run.as_mut().expect("a failing run");
                assert_eq!(run.failed, None, "{name}: {run:?} failed twice");
                run.failed = Some((at, kind));
            }
            Event::Backoff(_, delay) => self.backed_off(at, delay),
            Event::CircuitOpened(_, failures, max_retries) => {
                assert!(at <= shutdown_at, "{name}: circuit opened after shutdown");
                let run = self.run.as_ref().expect("a failed run");
                assert_eq!(run.failed.map(|(when, _)| when), Some(at), "{name}");
                let started = run.started;
                self.apply_cooldown(started, at);
                let breaker = self.breaker.as_mut().expect("a circuit breaker");
                assert!(
                    breaker.fail(at - self.epoch),
                    "{name}: the circuit opened, the model says it stays closed: {breaker:?}"
                );
                assert_eq!(max_retries, breaker.max_retries(), "{name}");
                assert_eq!(failures, max_retries + 1, "{name}");
                assert_eq!(failures, breaker.failures_in_window(), "{name}");
                self.circuit_opened = Some((failures, max_retries));
            }
            Event::Terminated(_, reason) => self.terminated(at, reason),
            Event::Removed(_) => panic!("{name} removed: nothing replaces a service here"),
        }
    }

    fn transition(&mut self, at: Instant, from: ServicePhase, to: ServicePhase) {
        let name = self.name.clone();
        let shutdown_at = self.shutdown_at;
        assert_eq!(self.phase, Some(from), "{name}: {from} → {to}");
        self.phase = Some(to);
        self.last_transition = Some((at, from));
        match (from, to) {
            (ServicePhase::Starting | ServicePhase::Restarting, ServicePhase::Running) => {
                assert!(at <= shutdown_at, "{name} started after shutdown");
                assert_eq!(
                    self.circuit_opened, None,
                    "{name} started after its circuit opened"
                );
                assert!(self.awaiting_backoff.is_none(), "{name}");
                if from == ServicePhase::Starting {
                    assert!(self.starts.is_empty(), "{name}");
                } else {
                    assert!(self.backoff.is_none(), "{name}: the backoff is over");
                }
                self.starts.push(at);
                let index = self.starts.len() as u64;
                let step = self
                    .plan
                    .script
                    .get(self.starts.len() - 1)
                    .cloned()
                    .unwrap_or(Step::UntilCancelled(Duration::ZERO));
                self.run = Some(ModelRun {
                    index,
                    step,
                    started: at,
                    failed: None,
                });
            }
            (ServicePhase::BackingOff, ServicePhase::Restarting) => {
                assert!(at <= shutdown_at, "{name} restarted after shutdown");
                let (scheduled, delay) = self.backoff.take().expect("a backoff");
                assert_eq!(
                    at - scheduled,
                    ceil_to_millis(delay),
                    "{name}: the gap between the end of a run and the next start is the backoff"
                );
            }
            (ServicePhase::Running, ServicePhase::BackingOff) => {
                assert!(at <= shutdown_at, "{name} backed off after shutdown");
                let run = self.run.take().expect("a run that ended");
                run.assert_ended(&name, at, shutdown_at);
                match run.failed {
                    None => {
                        assert!(run.step.succeeds(), "{name}: {run:?}");
                        assert_eq!(
                            self.plan.policy,
                            RestartPolicy::Always,
                            "{name}: only Always restarts after a clean exit"
                        );
                        self.awaiting_backoff = Some(Ended::Clean);
                    }
                    Some(_) => {
                        assert_ne!(
                            self.plan.policy,
                            RestartPolicy::Never,
                            "{name}: Never does not restart"
                        );
                        self.awaiting_backoff = Some(Ended::Failure {
                            started: run.started,
                            ended: at,
                        });
                    }
                }
            }
            (ServicePhase::Running, ServicePhase::Stopping) => {
                // Asked to stop the moment shutdown begins; the run goes on
                // until it returns (checked with the termination).
                assert_eq!(
                    at, shutdown_at,
                    "{name}: a running service is asked to stop at once"
                );
                assert!(self.run.is_some(), "{name}: a run to stop");
            }
            (
                ServicePhase::Starting | ServicePhase::BackingOff | ServicePhase::Restarting,
                ServicePhase::Stopping,
            ) => {
                assert_eq!(
                    at, shutdown_at,
                    "{name}: a service not running stops at once"
                );
                self.backoff = None;
            }
            (ServicePhase::Running | ServicePhase::Stopping, ServicePhase::Terminated) => {
                // Checked with the termination event that follows.
            }
            _ => panic!("{name}: unexpected transition {from} → {to}"),
        }
    }

    fn backed_off(&mut self, at: Instant, delay: Duration) {
        let name = self.name.clone();
        assert_eq!(self.phase, Some(ServicePhase::BackingOff), "{name}");
        assert_eq!(
            self.last_transition.map(|(when, _)| when),
            Some(at),
            "{name}"
        );
        match self.awaiting_backoff.take().expect("a run that ended") {
            Ended::Clean => {
                assert_eq!(
                    delay, self.clean_restart_delay,
                    "{name}: a clean exit waits the clean restart delay"
                );
                // A clean exit resets the backoff and the circuit breaker.
                self.attempt = 0;
                self.previous_delay = self.plan.backoff.base();
                if let Some(breaker) = &mut self.breaker {
                    breaker.clear();
                }
            }
            Ended::Failure { started, ended } => {
                self.apply_cooldown(started, ended);
                if let Some(breaker) = &mut self.breaker {
                    assert!(
                        !breaker.fail(ended - self.epoch),
                        "{name}: retried, the model says the circuit opens: {breaker:?}"
                    );
                    breaker.add_delay(delay);
                }
                self.assert_delay_in_bounds(delay);
                self.previous_delay = delay;
                self.attempt += 1;
            }
        }
        self.backoff = Some((at, delay));
    }

    /// A run of at least the cooldown backs off from the base again.
    fn apply_cooldown(&mut self, started: Instant, ended: Instant) {
        if ended - started >= self.plan.backoff.cooldown() {
            self.attempt = 0;
            self.previous_delay = self.plan.backoff.base();
        }
    }

    /// The delay of the current attempt lies within its jitter's bounds;
    /// without jitter it is exactly `min(max, base · multiplierⁿ)`.
    fn assert_delay_in_bounds(&self, delay: Duration) {
        let config = &self.plan.backoff;
        let d = config.delay_for_attempt(self.attempt);
        let formula = formula_nanos(config, self.attempt);
        let exact = d.as_nanos() as f64;
        assert!(
            (exact - formula).abs() <= 2.0 + formula * 1e-12,
            "{}: d({}) = {d:?}, the formula gives {formula} ns ({config:?})",
            self.name,
            self.attempt
        );
        let (low, high) = match config.jitter() {
            Jitter::None => (d, d),
            Jitter::Equal => (d - d / 2, d),
            Jitter::Full => (d.min(Duration::from_nanos(1)), d),
            Jitter::Decorrelated => (config.base(), config.max().min(self.previous_delay * 3)),
            other => panic!("a jitter kind unknown to this test: {other:?}"),
        };
        assert!(
            low <= delay && delay <= high && delay <= config.max(),
            "{}: attempt {} waits {delay:?}, outside [{low:?}, {high:?}] ({config:?}, previous {:?})",
            self.name,
            self.attempt,
            self.previous_delay
        );
    }

    fn terminated(&mut self, at: Instant, reason: TerminationReason) {
        let name = self.name.clone();
        let shutdown_at = self.shutdown_at;
        assert_eq!(self.phase, Some(ServicePhase::Terminated), "{name}");
        let (transition_at, from) = self.last_transition.expect("a transition");
        assert_eq!(transition_at, at, "{name}");
        assert_eq!(self.terminated_at, None, "{name} terminated twice");
        self.terminated_at = Some(at);
        let run = self.run.take();
        let policy = self.plan.policy;
        match &reason {
            TerminationReason::Completed => {
                let run = run.expect("a completed run");
                assert!(at <= shutdown_at, "{name}");
                assert!(run.step.succeeds(), "{name}: {run:?}");
                run.assert_ended(&name, at, shutdown_at);
                assert_ne!(policy, RestartPolicy::Always, "{name}");
            }
            TerminationReason::Unrecoverable(message) | TerminationReason::Panicked(message) => {
                let run = run.expect("a failed run");
                assert!(at <= shutdown_at, "{name}");
                run.assert_ended(&name, at, shutdown_at);
                assert_eq!(policy, RestartPolicy::Never, "{name}");
                let expected = match reason {
                    TerminationReason::Panicked(_) => format!("run {} panicked", run.index),
                    _ => format!("run {} failed", run.index),
                };
                assert_eq!(*message, expected, "{name}");
            }
            TerminationReason::CircuitBreakerOpen {
                failures,
                max_retries,
            } => {
                let run = run.expect("a failed run");
                run.assert_ended(&name, at, shutdown_at);
                assert_ne!(policy, RestartPolicy::Never, "{name}");
                assert_eq!(
                    self.circuit_opened,
                    Some((*failures, *max_retries)),
                    "{name}"
                );
            }
            TerminationReason::Cancelled => {
                assert_eq!(from, ServicePhase::Stopping, "{name}");
                assert!(at >= shutdown_at, "{name}");
                assert!(
                    at <= shutdown_at + self.shutdown_timeout,
                    "{name} stopped after the shutdown timeout"
                );
                // A run asked to stop ends when it returns.
                if let Some(run) = run {
                    run.assert_ended(&name, at, shutdown_at);
                }
            }
            TerminationReason::ShutdownTimeout { timeout } => {
                assert_eq!(*timeout, self.shutdown_timeout, "{name}");
                assert_eq!(at, shutdown_at + *timeout, "{name}");
                assert_eq!(from, ServicePhase::Stopping, "{name}");
                let run = run.expect("only a running service is aborted");
                if let Some(end) = run.end_after_shutdown(shutdown_at) {
                    assert!(end >= at, "{name}: {run:?} would have ended in time");
                }
            }
            other => panic!("{name}: a reason unknown to this test: {other:?}"),
        }
        self.reason = Some(reason);
    }

    fn finish(&self, service: &Scripted) {
        let name = &self.name;
        assert_eq!(service.name, *name);
        assert_eq!(self.phase, Some(ServicePhase::Terminated), "{name}");
        assert!(self.terminated_at.is_some(), "{name}");
        assert!(self.run.is_none(), "{name}: {:?}", self.run);
        assert!(self.awaiting_backoff.is_none(), "{name}");
        assert_eq!(
            service.starts(),
            self.starts,
            "{name}: the service saw the starts the events report"
        );
        let timed_out = matches!(self.reason, Some(TerminationReason::ShutdownTimeout { .. }));
        let expected: &[Instant] = match self.terminated_at {
            Some(at) if timed_out => &[at],
            _ => &[],
        };
        assert_eq!(
            self.timeout_failures, expected,
            "{name}: one timeout failure, exactly when aborted"
        );
    }
}

// ---------------------------------------------------------------------------
// A sink that panics.

/// Records every event it is given, then panics if its kind is in `mask`;
/// with `resolve_panics`, `resolve` panics the first time for each name.
#[derive(Debug)]
struct Panicky {
    recorder: Recorder,
    mask: u8,
    resolve_panics: bool,
    resolved: std::sync::Mutex<BTreeSet<String>>,
}

impl Panicky {
    fn new(mask: u8, resolve_panics: bool) -> Self {
        Self {
            recorder: Recorder::default(),
            mask,
            resolve_panics,
            resolved: std::sync::Mutex::default(),
        }
    }

    fn maybe_panic(&self, bit: u8, event: &str) {
        if self.mask & (1 << bit) != 0 {
            panic!("a sink bug on {event}");
        }
    }
}

impl MetricsSink for Panicky {
    type Handle = Arc<str>;

    fn resolve(&self, service: &str) -> Arc<str> {
        if self.resolve_panics && self.resolved.lock().unwrap().insert(service.to_owned()) {
            panic!("a sink bug resolving {service}");
        }
        self.recorder.resolve(service)
    }
    fn service_spawned(&self, service: &Arc<str>) {
        self.recorder.service_spawned(service);
        self.maybe_panic(0, "spawned");
    }
    fn service_started(&self, service: &Arc<str>, start_count: u64) {
        self.recorder.service_started(service, start_count);
        self.maybe_panic(1, "started");
    }
    fn phase_changed(&self, service: &Arc<str>, from: ServicePhase, to: ServicePhase) {
        self.recorder.phase_changed(service, from, to);
        self.maybe_panic(2, "phase changed");
    }
    fn service_failed(&self, service: &Arc<str>, kind: FailureKind) {
        self.recorder.service_failed(service, kind);
        self.maybe_panic(3, "failed");
    }
    fn backoff_scheduled(&self, service: &Arc<str>, delay: Duration) {
        self.recorder.backoff_scheduled(service, delay);
        self.maybe_panic(4, "backoff");
    }
    fn circuit_opened(&self, service: &Arc<str>, failures: u32, max_retries: u32) {
        self.recorder.circuit_opened(service, failures, max_retries);
        self.maybe_panic(5, "circuit opened");
    }
    fn service_terminated(&self, service: &Arc<str>, reason: &TerminationReason, uptime: Duration) {
        self.recorder.service_terminated(service, reason, uptime);
        self.maybe_panic(6, "terminated");
    }
}

/// The panicking sink was given every event the others saw, one per call, in
/// order: only the spawn events are missing when its `resolve` panicked
/// (they are the events that triggered the resolution, which is retried at
/// the next one).
fn check_panicky_sink(run: &Run) {
    let expected: Vec<Event> = run
        .recorder
        .events()
        .into_iter()
        .filter(|event| !(run.panicky.resolve_panics && matches!(event, Event::Spawned(_))))
        .collect();
    assert_eq!(run.panicky.recorder.events(), expected);
    // The services never noticed: the counters are the other sinks' business.
    assert_eq!(
        run.supervisor.metrics().snapshot().active_services,
        0,
        "every service drained"
    );
}

// ---------------------------------------------------------------------------
// The sinks' view.

/// One service as the events tell it.
struct View {
    name: String,
    phase: ServicePhase,
    start_count: u64,
    failures: FailureCounts,
    last_error: Option<String>,
    termination: Option<TerminationReason>,
    current_backoff: Option<Duration>,
    closed_running_time: Duration,
    running_since: Option<Instant>,
    last_transition: Instant,
}

impl View {
    fn snapshot(&self, now: Instant, epoch: Instant) -> ServiceLifecycleSnapshot {
        let open = self
            .running_since
            .map_or(Duration::ZERO, |since| now - since);
        ServiceLifecycleSnapshot {
            service_name: self.name.clone(),
            phase: self.phase,
            start_count: self.start_count,
            failures: self.failures,
            last_error: self.last_error.clone(),
            termination_reason: self.termination.clone(),
            cumulative_running_time: self.closed_running_time + open,
            current_backoff: self.current_backoff,
            last_transition_at: self.last_transition - epoch,
            // No service here signals readiness itself: a run is ready as it
            // starts.
            ready: self.phase == ServicePhase::Running,
            // Nobody subscribes to the lifecycle events here, so no change is
            // numbered.
            seq: 0,
        }
    }
}

/// Rebuilds every service's snapshot from the recorded events alone.
fn sink_view(run: &Run) -> Vec<ServiceLifecycleSnapshot> {
    let events = run.recorder.events();
    let timed = run.timed.timed_events();
    assert_eq!(events.len(), timed.len());
    let mut views: BTreeMap<String, View> = BTreeMap::new();
    for (event, (at, same)) in events.into_iter().zip(timed) {
        assert_eq!(
            event, same,
            "both sinks see the same events in the same order"
        );
        if let Event::Spawned(name) = &event {
            let view = View {
                name: name.clone(),
                phase: ServicePhase::Starting,
                start_count: 0,
                failures: FailureCounts::default(),
                last_error: None,
                termination: None,
                current_backoff: None,
                closed_running_time: Duration::ZERO,
                running_since: None,
                last_transition: at,
            };
            assert!(
                views.insert(name.clone(), view).is_none(),
                "{name} spawned twice"
            );
            continue;
        }
        let view = views
            .get_mut(event.service())
            .expect("no event before the spawn");
        match event {
            Event::Spawned(_) => unreachable!("handled above"),
            Event::Started(_, start_count) => {
                assert_eq!(start_count, view.start_count + 1, "{}", view.name);
                view.start_count = start_count;
            }
            Event::Phase(_, from, to) => {
                assert_eq!(from, view.phase, "{}", view.name);
                if let Some(since) = view.running_since.take() {
                    view.closed_running_time += at - since;
                }
                if to == ServicePhase::Running {
                    view.running_since = Some(at);
                }
                view.phase = to;
                view.current_backoff = None;
                view.last_transition = at;
            }
            Event::Failed(_, FailureKind::Timeout) => view.failures.record(FailureKind::Timeout),
            Event::Failed(_, kind) => {
                view.failures.record(kind);
                let verb = if kind == FailureKind::Panic {
                    "panicked"
                } else {
                    "failed"
                };
                view.last_error = Some(format!("run {} {verb}", view.start_count));
            }
            Event::Backoff(_, delay) => view.current_backoff = Some(delay),
            Event::CircuitOpened(..) => {}
            Event::Terminated(_, reason) => {
                // An abort is a timeout failure whose message is the reason.
                if reason.is_abort() {
                    view.last_error = Some(reason.to_string());
                }
                view.termination = Some(reason);
            }
            Event::Removed(name) => panic!("{name} removed: nothing replaces a service here"),
        }
    }
    let now = Instant::now();
    views
        .values()
        .map(|view| view.snapshot(now, run.epoch))
        .collect()
}

/// The snapshots equal the view rebuilt from the events, and the counters
/// count the events.
fn check_sink_view(run: &Run) {
    assert_eq!(run.supervisor.lifecycle_snapshots(), sink_view(run));

    let events = run.recorder.events();
    let count = |matches: fn(&Event) -> bool| events.iter().filter(|e| matches(e)).count() as u64;
    let m = run.supervisor.metrics().snapshot();
    assert_eq!(m.spawned_total, count(|e| matches!(e, Event::Spawned(_))));
    assert_eq!(
        m.terminated_total,
        count(|e| matches!(e, Event::Terminated(..)))
    );
    assert_eq!(
        m.restarts_total,
        count(|e| matches!(e, Event::Started(_, n) if *n > 1))
    );
    assert_eq!(
        m.circuit_breaker_trips,
        count(|e| matches!(e, Event::CircuitOpened(..)))
    );
    assert_eq!(
        m.failures.error,
        count(|e| matches!(e, Event::Failed(_, FailureKind::Error)))
    );
    assert_eq!(
        m.failures.panic,
        count(|e| matches!(e, Event::Failed(_, FailureKind::Panic)))
    );
    assert_eq!(
        m.failures.timeout,
        count(|e| matches!(e, Event::Failed(_, FailureKind::Timeout)))
    );
}

/// Each termination reports the service's whole running time as its uptime.
fn check_uptimes(run: &Run) {
    let snapshots = run.supervisor.lifecycle_snapshots();
    let uptimes = run.timed.uptimes();
    assert_eq!(
        uptimes.len(),
        snapshots.len(),
        "one termination per service"
    );
    for (name, uptime) in uptimes {
        let snapshot = snapshots
            .iter()
            .find(|s| s.service_name == name)
            .expect("a terminated service is registered");
        assert_eq!(uptime, snapshot.cumulative_running_time, "{name}");
    }
}
