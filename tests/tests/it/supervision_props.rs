//! A property test over random supervision trees (depth ≤ 3): every group
//! (the root, or a nested supervisor) with a random strategy and restart
//! intensity, its members random services (each with a restart type, some
//! with heartbeats) and nested supervisors; driven by random failures, clean
//! exits, hangs, and host stops and restarts by path, at random times,
//! under paused time. After every step and at the end it checks what the
//! services themselves saw:
//!
//! 1. no run of a service overlaps its previous run, nor a run of an
//!    earlier spawn of the same path (a nested supervisor restarted spawns
//!    its services again);
//! 2. under `OneForAll` and `RestForOne`, a service restarted by its group
//!    starts only when no service spawned after it in that group runs
//!    (nothing runs while its group restarts, and the group starts oldest
//!    first);
//! 3. a group's own stops come newest first: in every stretch of its
//!    services' stops that its supervisor asked for, with no start of the
//!    group in between, the spawn order falls (a cycle; a shutdown under
//!    `OneForAll` and `RestForOne`);
//! 4. a group's restart intensity is never exceeded: the restarts that
//!    were made, in any window of its period (within one run of a nested
//!    supervisor), are at most its `max_restarts`: a restart that would
//!    exceed it is not made;
//! 5. after the shutdown every service is `Terminated`, no run is live, and
//!    `active_services` is 0.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt as _;
use proptest::prelude::*;
use supervisor_core::{
    ControlError, RestartIntensity, RestartPolicy, ServiceContext, ServicePhase, SpawnError,
    SpawnOptions, Strategy as GroupStrategy, Supervisor, SupervisorConfig, SupervisorSpec,
    service_fn,
};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::support::{config, exact_backoff};

const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long a slow service takes to stop: more than the 100 ms backoff,
/// less than the 5 s stop timeout.
const SLOW_STOP: Duration = Duration::from_millis(300);

/// The deepest a tree goes: the root, and two levels of nested supervisors.
const DEPTH: u32 = 3;

#[derive(Debug, Clone, Copy)]
struct Child {
    policy: RestartPolicy,
    heartbeat: bool,
    /// Takes [`SLOW_STOP`] to stop once asked (longer than a backoff), so
    /// that a run that is not waited for overlaps the next one.
    slow_stop: bool,
}

#[derive(Debug, Clone)]
struct Group {
    strategy: GroupStrategy,
    intensity: Option<RestartIntensity>,
    members: Vec<Member>,
}

#[derive(Debug, Clone)]
enum Member {
    Service(Child),
    Supervisor(Group),
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
    root: Group,
    steps: Vec<(Duration, Action)>,
}

/// A service of the tree, flattened: its path, its group and its place
/// in that group's start order.
#[derive(Debug, Clone)]
struct Leaf {
    path: String,
    group: usize,
    order: usize,
    child: Child,
}

/// A group of the tree, flattened.
#[derive(Debug, Clone, Copy)]
struct GroupInfo {
    strategy: GroupStrategy,
    intensity: Option<RestartIntensity>,
    /// Whether a nested supervisor is among its members.
    nests: bool,
}

/// The tree, flattened: services and groups numbered depth first.
#[derive(Debug, Default)]
struct Layout {
    leaves: Vec<Leaf>,
    groups: Vec<GroupInfo>,
}

impl Layout {
    fn of(root: &Group) -> Self {
        let mut layout = Self::default();
        layout.add(root, "");
        layout
    }

    fn add(&mut self, group: &Group, prefix: &str) {
        let id = self.groups.len();
        self.groups.push(GroupInfo {
            strategy: group.strategy,
            intensity: group.intensity,
            nests: group
                .members
                .iter()
                .any(|member| matches!(member, Member::Supervisor(_))),
        });
        for (order, member) in group.members.iter().enumerate() {
            match member {
                Member::Service(child) => self.leaves.push(Leaf {
                    path: format!("{prefix}c{order}"),
                    group: id,
                    order,
                    child: *child,
                }),
                Member::Supervisor(nested) => self.add(nested, &format!("{prefix}g{order}/")),
            }
        }
    }
}

/// How a run ended, as the service saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Failed,
    Exited,
    /// Its context was cancelled (asked to stop, hung, or a group's cycle).
    Cancelled,
    /// Dropped without ending (aborted).
    Dropped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Start {
        leaf: usize,
        spawn: u64,
        at: Duration,
    },
    End {
        leaf: usize,
        end: End,
        at: Duration,
    },
    /// The test asked this of the supervisor (a stop, a restart) or of a
    /// service with a heartbeat (a hang), and it was accepted.
    Asked {
        leaf: usize,
        action: Action,
    },
}

/// What the services share with the test.
#[derive(Debug, Default)]
struct World {
    events: Vec<Event>,
    live: Vec<bool>,
    /// How many times each path was spawned.
    spawns: Vec<u64>,
    overlaps: Vec<usize>,
    /// The commands waiting for each service's current run.
    commands: Vec<VecDeque<Action>>,
}

struct Shared {
    world: Mutex<World>,
    wake: Vec<Notify>,
    origin: Instant,
    layout: Layout,
}

impl Shared {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn start(&self, leaf: usize, spawn: u64) {
        let mut world = self.world.lock().unwrap();
        if world.live[leaf] {
            world.overlaps.push(leaf);
        }
        world.live[leaf] = true;
        // A command meant for an earlier run is dropped with it.
        world.commands[leaf].clear();
        let at = self.now();
        world.events.push(Event::Start { leaf, spawn, at });
    }

    fn end(&self, leaf: usize, end: End) {
        let mut world = self.world.lock().unwrap();
        world.live[leaf] = false;
        let at = self.now();
        world.events.push(Event::End { leaf, end, at });
    }

    fn command(&self, leaf: usize) -> Option<Action> {
        self.world.lock().unwrap().commands[leaf].pop_front()
    }
}

/// Ends the run as `Dropped` unless it ended otherwise first.
struct RunGuard {
    shared: Arc<Shared>,
    leaf: usize,
    ended: bool,
}

impl RunGuard {
    fn end(mut self, end: End) {
        self.ended = true;
        self.shared.end(self.leaf, end);
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if !self.ended {
            self.shared.end(self.leaf, End::Dropped);
        }
    }
}

fn group_config(group: &Group) -> SupervisorConfig {
    let mut config = config()
        .with_default_backoff(exact_backoff())
        .with_strategy(group.strategy);
    if let Some(intensity) = group.intensity {
        config = config.with_restart_intensity(intensity);
    }
    config
}

/// Spawns `group`'s members into `supervisor`, in order: services, and
/// nested supervisors whose factory does the same for their own members.
/// `first_leaf` is the number of the group's first service, depth first.
fn spawn_group(
    supervisor: &Supervisor,
    shared: &Arc<Shared>,
    group: &Group,
    first_leaf: usize,
) -> Result<(), SpawnError> {
    let mut leaf = first_leaf;
    for (order, member) in group.members.iter().enumerate() {
        match member {
            Member::Service(child) => {
                spawn_service(supervisor, shared, leaf, order, *child)?;
                leaf += 1;
            }
            Member::Supervisor(nested) => {
                let (shared, nested_group, first) = (Arc::clone(shared), nested.clone(), leaf);
                let spec = SupervisorSpec::new(
                    format!("g{order}"),
                    group_config(nested),
                    move |child: &Supervisor| spawn_group(child, &shared, &nested_group, first),
                );
                supervisor.spawn_supervisor(spec)?;
                leaf += leaves_in(nested);
            }
        }
    }
    Ok(())
}

fn leaves_in(group: &Group) -> usize {
    group
        .members
        .iter()
        .map(|member| match member {
            Member::Service(_) => 1,
            Member::Supervisor(nested) => leaves_in(nested),
        })
        .sum()
}

/// One service: beats (if it has a heartbeat) until told to hang, and does
/// what the commands say.
fn spawn_service(
    supervisor: &Supervisor,
    shared: &Arc<Shared>,
    leaf: usize,
    order: usize,
    spec: Child,
) -> Result<(), SpawnError> {
    let spawn = {
        let mut world = shared.world.lock().unwrap();
        world.spawns[leaf] += 1;
        world.spawns[leaf]
    };
    let service_shared = Arc::clone(shared);
    let service = service_fn(format!("c{order}"), move |ctx: ServiceContext| {
        let shared = Arc::clone(&service_shared);
        shared.start(leaf, spawn);
        let guard = RunGuard {
            shared: Arc::clone(&shared),
            leaf,
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
                        if spec.slow_stop {
                            tokio::time::sleep(SLOW_STOP).await;
                        }
                        guard.end(End::Cancelled);
                        return Ok(());
                    }
                    () = shared.wake[leaf].notified() => {}
                    () = tokio::time::sleep(HEARTBEAT / 3) => {}
                }
                match shared.command(leaf) {
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
    supervisor.spawn_service_with_options(service, options)?;
    Ok(())
}

fn child() -> impl Strategy<Value = Child> {
    (
        prop_oneof![
            Just(RestartPolicy::Always),
            Just(RestartPolicy::OnFailure),
            Just(RestartPolicy::Never),
        ],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(policy, heartbeat, slow_stop)| Child {
            policy,
            heartbeat,
            slow_stop,
        })
}

fn group(depth: u32) -> BoxedStrategy<Group> {
    let strategy = prop_oneof![
        Just(GroupStrategy::OneForOne),
        Just(GroupStrategy::OneForAll),
        Just(GroupStrategy::RestForOne),
    ];
    let intensity = prop::option::of(
        (0u32..4, 1u64..4)
            .prop_map(|(max, secs)| RestartIntensity::new(max, Duration::from_secs(secs))),
    );
    let member = if depth < DEPTH {
        prop_oneof![
            4 => child().prop_map(Member::Service),
            1 => group(depth + 1).prop_map(Member::Supervisor),
        ]
        .boxed()
    } else {
        child().prop_map(Member::Service).boxed()
    };
    let size = if depth == 1 { 2..6 } else { 1..4 };
    (strategy, intensity, prop::collection::vec(member, size))
        .prop_map(|(strategy, intensity, members)| Group {
            strategy,
            intensity,
            members,
        })
        .boxed()
}

fn case() -> impl Strategy<Value = Case> {
    group(1)
        .prop_filter("at least one service", |root| leaves_in(root) > 0)
        .prop_flat_map(|root| {
            let n = leaves_in(&root);
            let action = prop_oneof![
                4 => (0..n).prop_map(Action::Fail),
                1 => (0..n).prop_map(Action::Exit),
                1 => (0..n).prop_map(Action::Hang),
                1 => (0..n).prop_map(Action::Stop),
                1 => (0..n).prop_map(Action::Restart),
            ];
            let delay = (0u64..1_500).prop_map(Duration::from_millis);
            prop::collection::vec((delay, action), 0..16).prop_map(move |steps| Case {
                root: root.clone(),
                steps,
            })
        })
}

/// Where the replay of the events stands: what the host asked that is not
/// yet seen, and each service's runs.
#[derive(Debug)]
struct Replay {
    live: Vec<bool>,
    /// The spawn of each path seen last, and its runs so far.
    spawn: Vec<u64>,
    runs: Vec<u64>,
    /// Host restarts not yet seen as a start.
    restarts: Vec<u32>,
    /// Host stops not yet seen as an end.
    stops: Vec<u32>,
    /// Hangs told, not yet seen as an end.
    hangs: Vec<u32>,
    /// How and when each service's last run (of its current spawn) ended.
    last_end: Vec<Option<(End, Duration)>>,
    /// Per group: the order of the last of its services its supervisor
    /// stopped since a start in the group.
    last_stop: Vec<Option<usize>>,
    /// Per group: the restarts made, `(start, charged at, the group's run)`.
    made: Vec<Vec<(Duration, Duration, u64)>>,
}

/// Properties 2 and 3 over the whole event stream; returns the restarts
/// each group made as the services saw them (property 4's input), charged
/// at the end of the run that called for them (where the supervisor
/// charges): under `OneForOne` each start after a failure (or a clean exit
/// of an `Always` service) that the host did not ask for; under the group
/// strategies one per instant at which such starts happened (a cycle starts
/// its group at one instant: no time passes after the backoff), with the
/// earliest of those ends (see [`charged`]). A hang is a failure.
fn replay(layout: &Layout, events: &[Event]) -> Result<Replay, TestCaseError> {
    let n = layout.leaves.len();
    let groups = layout.groups.len();
    let mut state = Replay {
        live: vec![false; n],
        spawn: vec![0; n],
        runs: vec![0; n],
        restarts: vec![0; n],
        stops: vec![0; n],
        hangs: vec![0; n],
        last_end: vec![None; n],
        last_stop: vec![None; groups],
        made: vec![Vec::new(); groups],
    };
    for event in events {
        match *event {
            Event::Asked { leaf, action } => match action {
                Action::Restart(_) => state.restarts[leaf] += 1,
                Action::Stop(_) => state.stops[leaf] += 1,
                Action::Hang(_) => state.hangs[leaf] += 1,
                Action::Fail(_) | Action::Exit(_) => {}
            },
            Event::Start { leaf, spawn, at } => {
                let Leaf {
                    group,
                    order,
                    child,
                    ..
                } = layout.leaves[leaf];
                let grouped = layout.groups[group].strategy != GroupStrategy::OneForOne;
                if spawn != state.spawn[leaf] {
                    // A fresh spawn (its nested supervisor's new run).
                    state.spawn[leaf] = spawn;
                    state.runs[leaf] = 0;
                    state.last_end[leaf] = None;
                    state.restarts[leaf] = 0;
                }
                state.runs[leaf] += 1;
                let by_host = state.restarts[leaf] > 0;
                state.restarts[leaf] = state.restarts[leaf].saturating_sub(1);
                if grouped && state.runs[leaf] > 1 && !by_host {
                    // Property 2.
                    let later: Vec<&str> = layout
                        .leaves
                        .iter()
                        .enumerate()
                        .filter(|(other, info)| {
                            info.group == group && info.order > order && state.live[*other]
                        })
                        .map(|(_, info)| info.path.as_str())
                        .collect();
                    prop_assert!(
                        later.is_empty(),
                        "{} restarted by its group while {:?} ran: {:?}",
                        layout.leaves[leaf].path,
                        later,
                        events
                    );
                }
                let failed_at = match state.last_end[leaf] {
                    Some((End::Failed, ended)) => Some(ended),
                    Some((End::Exited, ended)) if child.policy == RestartPolicy::Always => {
                        Some(ended)
                    }
                    _ => None,
                };
                // Charged whoever starts it: at the run's end under
                // `OneForOne`, by the cycle under the group strategies (a
                // host restart of a held service is that cycle's start).
                if let Some(ended) = failed_at {
                    let made = &mut state.made[group];
                    match made.last_mut() {
                        Some((started, charged, run))
                            if grouped && *started == at && *run == spawn =>
                        {
                            *charged = ended.min(*charged);
                        }
                        _ => made.push((at, ended, spawn)),
                    }
                }
                state.live[leaf] = true;
                state.last_stop[group] = None;
            }
            Event::End { leaf, end, at } => {
                let Leaf { group, order, .. } = layout.leaves[leaf];
                let grouped = layout.groups[group].strategy != GroupStrategy::OneForOne;
                state.live[leaf] = false;
                state.last_end[leaf] = Some((end, at));
                if end != End::Cancelled && end != End::Dropped {
                    continue;
                }
                let by_host = state.stops[leaf] > 0 || state.restarts[leaf] > 0;
                let hung = state.hangs[leaf] > 0;
                state.stops[leaf] = state.stops[leaf].saturating_sub(1);
                state.hangs[leaf] = state.hangs[leaf].saturating_sub(1);
                if hung && !by_host {
                    // A hang is a failure: its restart is charged.
                    state.last_end[leaf] = Some((End::Failed, at));
                }
                // Property 3: only the group strategies order their stops
                // (under `OneForOne` a shutdown stops all at once).
                if !grouped || by_host || hung {
                    continue;
                }
                if let Some(previous) = state.last_stop[group] {
                    prop_assert!(
                        order < previous,
                        "{} stopped after c{} of its group: {:?}",
                        layout.leaves[leaf].path,
                        previous,
                        events
                    );
                }
                state.last_stop[group] = Some(order);
            }
        }
    }
    Ok(state)
}

/// When each restart a group made was charged. Under `OneForOne`, at the
/// end of the run that called for it. Under the group strategies the
/// coordinator runs one cycle at a time: a cycle is charged when it takes
/// the request, the later of the first end that called for it and the end
/// of the cycle before (whose starts are all at one instant).
fn charged(
    strategy: GroupStrategy,
    made: &[(Duration, Duration, u64)],
) -> Vec<(Duration, Duration, u64)> {
    if strategy == GroupStrategy::OneForOne {
        return made.to_vec();
    }
    let mut previous: Option<(Duration, u64)> = None;
    made.iter()
        .map(|&(started, ended, run)| {
            let charged = match previous {
                Some((before, same_run)) if same_run == run => ended.max(before),
                _ => ended,
            };
            previous = Some((started, run));
            (started, charged, run)
        })
        .collect()
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
        let layout = Layout::of(&case.root);
        let n = layout.leaves.len();
        let supervisor = Supervisor::new(group_config(&case.root));
        let shared = Arc::new(Shared {
            world: Mutex::new(World {
                live: vec![false; n],
                spawns: vec![0; n],
                commands: vec![VecDeque::new(); n],
                ..World::default()
            }),
            wake: (0..n).map(|_| Notify::new()).collect(),
            origin: Instant::now(),
            layout,
        });
        spawn_group(&supervisor, &shared, &case.root, 0).expect("spawn the tree");
        for &(delay, action) in &case.steps {
            tokio::time::sleep(delay).await;
            if supervisor.is_shutting_down() {
                break;
            }
            // The request and its record happen with no `.await` between
            // them: on this one-thread runtime nothing runs in between.
            let mut world = shared.world.lock().unwrap();
            match action {
                Action::Fail(leaf) | Action::Exit(leaf) | Action::Hang(leaf) => {
                    if world.live[leaf] {
                        world.commands[leaf].push_back(action);
                        let beats = shared.layout.leaves[leaf].child.heartbeat;
                        if matches!(action, Action::Hang(_)) && beats {
                            world.events.push(Event::Asked { leaf, action });
                        }
                        shared.wake[leaf].notify_one();
                    }
                }
                Action::Stop(leaf) => {
                    if accepted(supervisor.stop_service(&shared.layout.leaves[leaf].path)) {
                        world.events.push(Event::Asked { leaf, action });
                    }
                }
                Action::Restart(leaf) => {
                    if accepted(supervisor.restart_service(&shared.layout.leaves[leaf].path)) {
                        world.events.push(Event::Asked { leaf, action });
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
        supervisor.wait_for_drain().await;

        let world = shared.world.lock().unwrap();
        prop_assert!(
            world.overlaps.is_empty(),
            "overlapping runs: {:?}",
            world.overlaps
        );
        // Property 5.
        for snapshot in supervisor.lifecycle_snapshots() {
            prop_assert_eq!(
                snapshot.phase,
                ServicePhase::Terminated,
                "{}",
                snapshot.service_name
            );
        }
        for (leaf, info) in shared.layout.leaves.iter().enumerate() {
            prop_assert!(!world.live[leaf], "{} still runs", info.path);
        }
        prop_assert_eq!(supervisor.metrics().snapshot().active_services, 0);

        // Properties 2 and 3.
        let replayed = replay(&shared.layout, &world.events)?;

        // Property 4, per group and, for a nested one, per run of it; for
        // the groups whose restarts the services see all of: a nested
        // supervisor's own failures are not seen here (its escalations are
        // tested in `tree`).
        for (group, info) in shared.layout.groups.iter().enumerate() {
            let (Some(intensity), false) = (info.intensity, info.nests) else {
                continue;
            };
            let made = charged(info.strategy, &replayed.made[group]);
            for &(_, charged, run) in &made {
                let within = made
                    .iter()
                    .filter(|&&(_, earlier, earlier_run)| {
                        earlier_run == run
                            && earlier <= charged
                            && charged - earlier <= intensity.period()
                    })
                    .count();
                prop_assert!(
                    within <= intensity.max_restarts() as usize,
                    "group {} made {} restarts within {:?} at {:?}: {:?}",
                    group,
                    within,
                    intensity.period(),
                    charged,
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
    fn random_trees_keep_the_supervision_invariants(case in case()) {
        run_case(&case)?;
    }
}
