//! A property test over random groups: a random strategy, restart
//! intensity and set of children (each with a restart type, some with
//! heartbeats), driven by random failures, clean exits, hangs and host
//! stops and restarts at random times, under paused time. After every step
//! and at the end it checks what the children themselves saw:
//!
//! 1. no run of a child overlaps its previous run;
//! 2. under `OneForAll` and `RestForOne`, a child restarted by the group
//!    starts only when no child spawned after it runs (nothing runs while
//!    its group restarts, and the group starts oldest first);
//! 3. the supervisor's own stops come newest first: in every stretch of
//!    stops it asked for with no start in between, the spawn order falls
//!    (a group's cycle; its shutdown under `OneForAll` and `RestForOne`);
//! 4. the restart intensity is never exceeded without the supervisor
//!    giving up (`ShutdownCause::IntensityExceeded`);
//! 5. after the shutdown every child is `Terminated`, no run is live, and
//!    `active_services` is 0.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt as _;
use proptest::prelude::*;
use supervisor_core::{
    ControlError, RestartIntensity, RestartPolicy, ServiceContext, ServicePhase, ShutdownCause,
    SpawnOptions, Strategy as GroupStrategy, Supervisor, service_fn,
};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::support::{config, exact_backoff};

const HEARTBEAT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Child {
    policy: RestartPolicy,
    heartbeat: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Fail(usize),
    Exit(usize),
    Hang(usize),
    Stop(usize),
    Restart(usize),
}

#[derive(Debug, Clone)]
struct Case {
    strategy: GroupStrategy,
    intensity: Option<RestartIntensity>,
    children: Vec<Child>,
    steps: Vec<(Duration, Action)>,
}

/// How a run ended, as the child saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Failed,
    Exited,
    /// Its context was cancelled (asked to stop, hung, or a group cycle).
    Cancelled,
    /// Dropped without ending (aborted).
    Dropped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Start {
        child: usize,
        at: Duration,
    },
    End {
        child: usize,
        end: End,
        at: Duration,
    },
    /// The test asked this of the supervisor (a stop, a restart) or of a
    /// child with a heartbeat (a hang), and it was accepted.
    Asked {
        child: usize,
        action: Action,
    },
}
/// What the children share with the test.
#[derive(Debug, Default)]
struct World {
    events: Vec<Event>,
    live: Vec<bool>,
    overlaps: Vec<usize>,
    /// The commands waiting for each child's current run.
    commands: Vec<VecDeque<Action>>,
}

struct Shared {
    world: Mutex<World>,
    wake: Vec<Notify>,
    origin: Instant,
}

impl Shared {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn start(&self, child: usize) {
        let mut world = self.world.lock().unwrap();
        if world.live[child] {
            world.overlaps.push(child);
        }
        world.live[child] = true;
        // A command meant for an earlier run is dropped with it.
        world.commands[child].clear();
        let at = self.now();
        world.events.push(Event::Start { child, at });
    }

    fn end(&self, child: usize, end: End) {
        let mut world = self.world.lock().unwrap();
        world.live[child] = false;
        let at = self.now();
        world.events.push(Event::End { child, end, at });
    }

    fn command(&self, child: usize) -> Option<Action> {
        self.world.lock().unwrap().commands[child].pop_front()
    }
}

/// Ends the run as `Dropped` unless it ended otherwise first.
struct RunGuard {
    shared: Arc<Shared>,
    child: usize,
    ended: bool,
}

impl RunGuard {
    fn end(mut self, end: End) {
        self.ended = true;
        self.shared.end(self.child, end);
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if !self.ended {
            self.shared.end(self.child, End::Dropped);
        }
    }
}

fn name(child: usize) -> String {
    format!("c{child}")
}

/// One child: beats (if it has a heartbeat) until told to hang, and does
/// what the commands say.
fn spawn_child(supervisor: &Supervisor, shared: &Arc<Shared>, child: usize, spec: Child) {
    let service_shared = Arc::clone(shared);
    let service = service_fn(name(child), move |ctx: ServiceContext| {
        let shared = Arc::clone(&service_shared);
        shared.start(child);
        let guard = RunGuard {
            shared: Arc::clone(&shared),
            child,
            ended: false,
        };
        async move {
            let mut beating = spec.heartbeat;
            loop {
                if beating {
                    ctx.heartbeat();
                }
                tokio::select! {
                    () = ctx.cancelled() => {
                        guard.end(End::Cancelled);
                        return Ok(());
                    }
                    () = shared.wake[child].notified() => {}
                    () = tokio::time::sleep(HEARTBEAT / 3) => {}
                }
                match shared.command(child) {
                    Some(Action::Fail(_)) => {
                        guard.end(End::Failed);
                        anyhow::bail!("told to fail");
                    }
                    Some(Action::Exit(_)) => {
                        guard.end(End::Exited);
                        return Ok(());
                    }
                    Some(Action::Hang(_)) => beating = false,
                    _ => {}
                }
            }
        }
    });
    let mut options = SpawnOptions::default().restart_policy(spec.policy);
    if spec.heartbeat {
        options = options.heartbeat(HEARTBEAT);
    }
    supervisor
        .spawn_service_with_options(service, options)
        .expect("spawn");
}

fn case() -> impl proptest::strategy::Strategy<Value = Case> {
    let group = prop_oneof![
        Just(GroupStrategy::OneForOne),
        Just(GroupStrategy::OneForAll),
        Just(GroupStrategy::RestForOne),
    ];
    let intensity = prop::option::of(
        (0u32..4, 1u64..4)
            .prop_map(|(max, secs)| RestartIntensity::new(max, Duration::from_secs(secs))),
    );
    let child = (
        prop_oneof![
            Just(RestartPolicy::Always),
            Just(RestartPolicy::OnFailure),
            Just(RestartPolicy::Never),
        ],
        any::<bool>(),
    )
        .prop_map(|(policy, heartbeat)| Child { policy, heartbeat });
    (group, intensity, prop::collection::vec(child, 2..6)).prop_flat_map(
        |(strategy, intensity, children)| {
            let n = children.len();
            let action = prop_oneof![
                4 => (0..n).prop_map(Action::Fail),
                1 => (0..n).prop_map(Action::Exit),
                1 => (0..n).prop_map(Action::Hang),
                1 => (0..n).prop_map(Action::Stop),
                1 => (0..n).prop_map(Action::Restart),
            ];
            let delay = (0u64..1_500).prop_map(Duration::from_millis);
            prop::collection::vec((delay, action), 0..16).prop_map(move |steps| Case {
                strategy,
                intensity,
                children: children.clone(),
                steps,
            })
        },
    )
}

/// The replay of the events: what the host asked that is not yet seen.
#[derive(Debug)]
struct Replay {
    live: Vec<bool>,
    runs: Vec<u64>,
    /// Host restarts not yet seen as a start.
    restarts: Vec<u32>,
    /// Host stops not yet seen as an end.
    stops: Vec<u32>,
    /// Hangs told, not yet seen as an end.
    hangs: Vec<u32>,
    /// How and when each child's last run ended.
    last_end: Vec<Option<(End, Duration)>>,
}

impl Replay {
    fn new(n: usize) -> Self {
        Self {
            live: vec![false; n],
            runs: vec![0; n],
            restarts: vec![0; n],
            stops: vec![0; n],
            hangs: vec![0; n],
            last_end: vec![None; n],
        }
    }
}

/// Properties 2 and 3 over the whole event stream, and the restarts the
/// supervisor charged as the children saw them (property 4's input), at the
/// end of the run that called for them (where the supervisor charges):
/// under `OneForOne` each start after a failure (or a clean exit of an
/// `Always` child) that the host did not ask for; under the group
/// strategies one per instant at which such starts happened (a cycle starts
/// its group at one instant: no time passes after the backoff), charged at
/// the earliest of those ends. A hang's restart is not counted (fewer
/// charges can only hide a violation, never make one up).
fn replay(case: &Case, events: &[Event]) -> Result<Vec<Duration>, TestCaseError> {
    let grouped = case.strategy != GroupStrategy::OneForOne;
    let n = case.children.len();
    let mut state = Replay::new(n);
    let mut last_supervisor_stop: Option<usize> = None;
    let mut charged = Vec::new();
    for event in events {
        match *event {
            Event::Asked { child, action } => match action {
                Action::Restart(_) => state.restarts[child] += 1,
                Action::Stop(_) => state.stops[child] += 1,
                Action::Hang(_) => state.hangs[child] += 1,
                Action::Fail(_) | Action::Exit(_) => {}
            },
            Event::Start { child, at } => {
                state.runs[child] += 1;
                let by_host = state.restarts[child] > 0;
                state.restarts[child] = state.restarts[child].saturating_sub(1);
                if grouped && state.runs[child] > 1 && !by_host {
                    // Property 2.
                    let later: Vec<usize> = (child + 1..n).filter(|&o| state.live[o]).collect();
                    prop_assert!(
                        later.is_empty(),
                        "c{} restarted by its group while {:?} ran: {:?}",
                        child,
                        later,
                        events
                    );
                }
                let policy = case.children[child].policy;
                let failed_at = match state.last_end[child] {
                    Some((End::Failed, ended)) => Some(ended),
                    Some((End::Exited, ended)) if policy == RestartPolicy::Always => Some(ended),
                    _ => None,
                };
                if let (Some(ended), false) = (failed_at, by_host) {
                    match charged.last_mut() {
                        Some((started, charge)) if grouped && *started == at => {
                            *charge = ended.min(*charge);
                        }
                        _ => charged.push((at, ended)),
                    }
                }
                state.live[child] = true;
                last_supervisor_stop = None;
            }
            Event::End { child, end, at } => {
                state.live[child] = false;
                state.last_end[child] = Some((end, at));
                if end != End::Cancelled && end != End::Dropped {
                    continue;
                }
                let by_host = state.stops[child] > 0 || state.restarts[child] > 0;
                let hung = state.hangs[child] > 0;
                state.stops[child] = state.stops[child].saturating_sub(1);
                state.hangs[child] = state.hangs[child].saturating_sub(1);
                // Property 3: only the group strategies order their stops
                // (under `OneForOne` the shutdown stops all at once).
                if !grouped || by_host || hung {
                    continue;
                }
                if let Some(previous) = last_supervisor_stop {
                    prop_assert!(
                        child < previous,
                        "the supervisor stopped c{} after c{}: {:?}",
                        child,
                        previous,
                        events
                    );
                }
                last_supervisor_stop = Some(child);
            }
        }
    }
    let mut charges: Vec<Duration> = charged.into_iter().map(|(_, charge)| charge).collect();
    charges.sort_unstable();
    Ok(charges)
}

/// Whether a control call was accepted: its request is made when it is
/// called, and a refusal is ready at once (the future, dropped, still
/// stops or restarts).
fn accepted<T>(call: impl Future<Output = Result<T, ControlError>>) -> bool {
    !matches!(call.now_or_never(), Some(Err(_)))
}

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let n = case.children.len();
        let mut cfg = config()
            .with_default_backoff(exact_backoff())
            .with_strategy(case.strategy);
        if let Some(intensity) = case.intensity {
            cfg = cfg.with_restart_intensity(intensity);
        }
        let supervisor = Supervisor::new(cfg);
        let shared = Arc::new(Shared {
            world: Mutex::new(World {
                live: vec![false; n],
                commands: vec![VecDeque::new(); n],
                ..World::default()
            }),
            wake: (0..n).map(|_| Notify::new()).collect(),
            origin: Instant::now(),
        });
        for (child, spec) in case.children.iter().enumerate() {
            spawn_child(&supervisor, &shared, child, *spec);
        }
        for &(delay, action) in &case.steps {
            tokio::time::sleep(delay).await;
            if supervisor.is_shutting_down() {
                break;
            }
            // The request and its record happen with no `.await` between
            // them: on this one-thread runtime nothing runs in between.
            let mut world = shared.world.lock().unwrap();
            match action {
                Action::Fail(child) | Action::Exit(child) | Action::Hang(child) => {
                    if world.live[child] {
                        world.commands[child].push_back(action);
                        if matches!(action, Action::Hang(_)) && case.children[child].heartbeat {
                            world.events.push(Event::Asked { child, action });
                        }
                        shared.wake[child].notify_one();
                    }
                }
                Action::Stop(child) => {
                    if accepted(supervisor.stop_service(&name(child))) {
                        world.events.push(Event::Asked { child, action });
                    }
                }
                Action::Restart(child) => {
                    if accepted(supervisor.restart_service(&name(child))) {
                        world.events.push(Event::Asked { child, action });
                    }
                }
            }
            // Property 1, after every step.
            prop_assert!(
                world.overlaps.is_empty(),
                "overlapping runs: {:?}",
                world.overlaps
            );
        }
        // Let everything settle, then shut down.
        tokio::time::sleep(Duration::from_secs(10)).await;
        supervisor.trigger_shutdown();
        let report = supervisor.wait_for_drain().await;

        let world = shared.world.lock().unwrap();
        prop_assert!(
            world.overlaps.is_empty(),
            "overlapping runs: {:?}",
            world.overlaps
        );
        // Property 5.
        for child in 0..n {
            let snapshot = supervisor.service_lifecycle(&name(child)).unwrap();
            prop_assert_eq!(snapshot.phase, ServicePhase::Terminated, "{}", name(child));
            prop_assert!(!world.live[child], "{} still runs", name(child));
        }
        prop_assert_eq!(supervisor.metrics().snapshot().active_services, 0);

        // Properties 2 and 3.
        let charged = replay(case, &world.events)?;

        // Property 4.
        let tripped = matches!(report.cause, Some(ShutdownCause::IntensityExceeded { .. }));
        if let (Some(intensity), false) = (case.intensity, tripped) {
            for (i, &at) in charged.iter().enumerate() {
                let within = charged[..=i]
                    .iter()
                    .filter(|&&earlier| at - earlier <= intensity.period())
                    .count();
                prop_assert!(
                    within <= intensity.max_restarts() as usize,
                    "{} restarts within {:?} at {:?} without tripping: {:?}",
                    within,
                    intensity.period(),
                    at,
                    world.events
                );
            }
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: ProptestConfig::default().cases.min(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_groups_keep_the_strategy_invariants(case in case()) {
        run_case(&case)?;
    }
}
