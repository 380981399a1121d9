//! `supervisor-bench`: the benchmark suite of the workspace, in one run.
//!
//! It compares this project's `Supervisor` with raw tokio (`tokio::spawn` + a
//! child `CancellationToken` + a `TaskTracker`: the physical limit) and, for
//! start, memory and drain, with tokio-graceful-shutdown (the peer people pick
//! today). Variants alternate A/B/A/B round by round, so machine drift hits
//! all of them alike, and every figure is the median of its rounds.
//!
//! ```text
//! cargo xtask bench                        # release build, full run
//! supervisor-bench --full  [--out PATH]    # default target/bench/latest.md
//! supervisor-bench --smoke [--out PATH]    # tiny N, seconds; default target/bench/smoke.md
//! supervisor-bench --full --only restart   # one scenario group, e.g. under `perf record`
//! ```
//!
//! | # | scenario | figure |
//! |---|---|---|
//! | 1 | start N idle services (1k, 10k, 100k) | ns/service until all run |
//! | 2 | resident memory of 100k idle services | RSS delta ÷ N |
//! | 3 | drain N idle services | ns/service from the shutdown request |
//! | 4 | restart cycle: one service failing 1M times, zero backoff | ns/restart |
//! | 5 | burst: 1k and 100k services failing 10 times at once | ns/restart, and its growth with N |
//! | 6 | `lifecycle_snapshots()` of 100k services during restarts | latency; restart slowdown |
//! | 2b | 100k one-shot services, terminated | live heap bytes kept per service (the `alloc-count` binary) |
//! | 4b | restart cycle with the Prometheus sink attached | ns/restart, ÷ without |
//! | 4c | restart cycle with one live subscriber draining `subscribe()` | ns/restart, ÷ without |
//! | 4d | restart cycle of a service spawned with a heartbeat interval | ns/restart, ÷ without |
//! | 7 | `BackoffState::next_backoff` | ns/call, allocations (the `alloc-count` binary) |
//! | 8 | soak: 1M restarts of one failing service | RSS growth |
//! | 9 | control: stop, restart by call, remove every one of 100k idle services | ns/operation |
//! | 10 | temporary churn: 100k one-shot temporary services, 1k in flight | ns/job; RSS growth |
//! | 11 | the HTTP surface: `GET /metrics` of 1k services over loopback; the restart cycle next to a scraper or an SSE client | ns/scrape; ns/restart, ÷ without |
//! | 12 | `OneForAll` group restart of 10 and 1k children (one fails, all restart) | ns per child restarted |
//!
//! Scenarios 1–3, 8, 9 and 10 run each measurement in a fresh process (this binary
//! with the hidden `--child` argument); scenarios 2b and 7 run `alloc-count`, built
//! next to this binary, whose counting allocator would otherwise slow every
//! other scenario.

mod churn;
mod control;
mod fleet;
mod http;
mod idle;
mod measure;
mod read_path;
mod report;
mod restart;
mod script;
mod strategy;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use crate::churn::Churn;
use crate::control::Op;
use crate::fleet::Variant;
use crate::measure::median;
use crate::report::{Check, Figure, Header, Unit};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child_main(&args[1..]);
    }
    let mut plan = None;
    let mut out = None;
    let mut only = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--full" => plan = Some(Plan::full()),
            "--smoke" => plan = Some(Plan::smoke()),
            "--out" => out = Some(PathBuf::from(rest.next().context("--out needs a path")?)),
            "--only" => {
                let group = rest.next().context("--only needs a scenario group")?;
                ensure!(
                    GROUPS.contains(&group.as_str()),
                    "unknown group `{group}`: one of {GROUPS:?}"
                );
                only = Some(group.clone());
            }
            "--help" | "-h" => {
                println!(
                    "usage: supervisor-bench --full|--smoke [--out PATH] [--only {}]",
                    GROUPS.join("|")
                );
                return Ok(());
            }
            other => bail!("unknown argument `{other}`; try --help"),
        }
    }
    let plan = plan.context("say --full or --smoke")?;
    let out = out.unwrap_or_else(|| default_target_dir().join("bench").join(plan.file));
    run(&plan, only.as_deref(), &out)
}

/// The scenario groups `--only` selects (for profiling one of them).
const GROUPS: [&str; 15] = [
    "idle",
    "memory",
    "restart",
    "sinks",
    "subscriber",
    "heartbeat",
    "terminated",
    "burst",
    "snapshot",
    "backoff",
    "soak",
    "control",
    "churn",
    "http",
    "strategy",
];

/// Sizes of one run.
#[derive(Debug)]
struct Plan {
    mode: &'static str,
    file: &'static str,
    /// Rounds of every interleaved A/B scenario.
    rounds: usize,
    idle_ns: Vec<usize>,
    /// Services the warm start/drain measurement starts in all (repeating
    /// small N), of which the median repetition is reported.
    warm_services: usize,
    memory_n: usize,
    memory_rounds: usize,
    restarts: u64,
    burst_ns: [usize; 2],
    burst_failures: u64,
    /// Restarts per burst measurement at least (small N repeat the burst).
    burst_min_restarts: u64,
    snapshot_n: usize,
    snapshot_restarts: u64,
    backoff_calls: u64,
    soak_restarts: u64,
    soak_warm_up: u64,
    /// Idle services every control operation is applied to.
    control_n: usize,
    /// The temporary-service churn.
    churn: Churn,
    /// Idle services in the registry the HTTP scenarios serve.
    http_services: usize,
    /// Timed `GET /metrics` per format and round.
    http_scrapes: usize,
    /// Children of the `OneForAll` group restarts (scenario 12).
    group_ns: Vec<usize>,
    /// The longest any wait may take before the run fails.
    limit: Duration,
}

impl Plan {
    fn full() -> Self {
        Self {
            mode: "full",
            file: "latest.md",
            rounds: 5,
            idle_ns: vec![1_000, 10_000, 100_000],
            warm_services: 100_000,
            memory_n: 100_000,
            memory_rounds: 3,
            restarts: 1_000_000,
            burst_ns: [1_000, 100_000],
            burst_failures: 10,
            burst_min_restarts: 1_000_000,
            snapshot_n: 100_000,
            snapshot_restarts: 500_000,
            backoff_calls: 20_000_000,
            soak_restarts: 1_000_000,
            soak_warm_up: 100_000,
            control_n: 100_000,
            churn: Churn {
                jobs: 100_000,
                in_flight: 1_000,
                warm_up: 50_000,
            },
            http_services: 1_000,
            http_scrapes: 200,
            group_ns: vec![10, 1_000],
            limit: Duration::from_secs(600),
        }
    }

    fn smoke() -> Self {
        Self {
            mode: "smoke",
            file: "smoke.md",
            rounds: 2,
            idle_ns: vec![100],
            warm_services: 300,
            memory_n: 100,
            memory_rounds: 1,
            restarts: 1_000,
            burst_ns: [10, 100],
            burst_failures: 10,
            burst_min_restarts: 1_000,
            snapshot_n: 100,
            snapshot_restarts: 1_000,
            backoff_calls: 10_000,
            soak_restarts: 1_000,
            soak_warm_up: 100,
            control_n: 100,
            churn: Churn {
                jobs: 1_000,
                in_flight: 10,
                warm_up: 100,
            },
            http_services: 10,
            http_scrapes: 5,
            group_ns: vec![10, 100],
            limit: Duration::from_secs(60),
        }
    }

    /// The N the start, memory and drain targets are about: the largest.
    fn target_n(&self) -> usize {
        self.idle_ns.iter().copied().max().unwrap_or(0)
    }
}

fn run(plan: &Plan, only: Option<&str>, out: &Path) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let selected = |group: &str| only.is_none_or(|only| only == group);
    let mut figures = Vec::new();
    if selected("idle") {
        figures.extend(idle_figures(plan, &exe)?);
    }
    if selected("memory") {
        figures.push(memory_figure(plan, &exe)?);
    }
    if selected("restart") {
        figures.push(cycle_figure(plan)?);
    }
    if selected("sinks") {
        figures.push(sink_figure(plan)?);
    }
    if selected("subscriber") {
        figures.push(subscriber_figure(plan)?);
    }
    if selected("heartbeat") {
        figures.push(heartbeat_figure(plan)?);
    }
    if selected("terminated") {
        figures.push(terminated_figure(plan, &exe)?);
    }
    if selected("burst") {
        figures.extend(burst_figures(plan)?);
    }
    if selected("snapshot") {
        figures.extend(read_path_figures(plan)?);
    }
    if selected("backoff") {
        figures.extend(backoff_figures(plan, &exe)?);
    }
    if selected("soak") {
        figures.push(soak_figure(plan, &exe)?);
    }
    if selected("control") {
        figures.extend(control_figures(plan, &exe)?);
    }
    if selected("churn") {
        figures.extend(churn_figures(plan, &exe)?);
    }
    if selected("http") {
        figures.extend(http_figures(plan)?);
    }
    if selected("strategy") {
        figures.extend(strategy_figures(plan)?);
    }
    // In the order of the issue's scenarios (a stable sort keeps N ascending).
    figures.sort_by_key(|figure| scenario_order(figure.scenario));

    let header = Header {
        mode: plan.mode,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: machine_facts(),
        notes: notes(plan),
        recorded: recorded_run(),
    };
    let text = report::markdown(&header, &figures);
    report::write(out, &text)?;
    if plan.mode == "full" {
        println!("{text}");
    }
    let missed: Vec<&str> = figures
        .iter()
        .filter(|figure| figure.check.as_ref().is_some_and(|check| !check.met))
        .map(|figure| figure.scenario)
        .collect();
    let checked = figures
        .iter()
        .filter(|figure| figure.check.is_some())
        .count();
    eprintln!(
        "supervisor-bench: {} of {checked} targets met{}; report written to {}",
        checked - missed.len(),
        if missed.is_empty() {
            String::new()
        } else {
            format!(" (missed: {})", missed.join(", "))
        },
        out.display()
    );
    Ok(())
}

fn scenario_order(scenario: &str) -> usize {
    [
        "start_cold",
        "start_warm",
        "memory",
        "drain_cold",
        "drain_warm",
        "restart",
        "restart_prometheus",
        "restart_subscriber",
        "restart_heartbeat",
        "terminated",
        "burst",
        "burst_flatness",
        "snapshot_latency",
        "snapshot_slowdown",
        "next_backoff_jitter",
        "next_backoff_no_jitter",
        "next_backoff_breaker",
        "soak",
        "control_stop",
        "control_restart",
        "control_remove",
        "churn",
        "churn_rss",
        "metrics_scrape",
        "restart_scraper",
        "restart_event_stream",
        "one_for_all",
    ]
    .iter()
    .position(|known| *known == scenario)
    .unwrap_or(usize::MAX)
}

/// Scenarios 1 and 3, a fresh process per measurement, each giving a cold
/// and a warm figure (see `idle::lifecycle_child`).
fn idle_figures(plan: &Plan, exe: &Path) -> Result<Vec<Figure>> {
    /// Scenario, the child's result key, title.
    const KINDS: [(&str, &str, &str); 4] = [
        (
            "start_cold",
            "cold_start_ns",
            "1 start idle services (cold process), ns/service until all run",
        ),
        (
            "start_warm",
            "warm_start_ns",
            "1 start idle services (warm allocator), ns/service until all run",
        ),
        (
            "drain_cold",
            "cold_drain_ns",
            "3 drain idle services (cold process), ns/service after shutdown",
        ),
        (
            "drain_warm",
            "warm_drain_ns",
            "3 drain idle services (warm allocator), ns/service after shutdown",
        ),
    ];
    let mut samples: BTreeMap<(&str, usize, &str), Vec<f64>> = BTreeMap::new();
    for round in 1..=plan.rounds {
        for &n in &plan.idle_ns {
            for variant in Variant::ALL {
                let result = child(
                    exe,
                    &[
                        "lifecycle",
                        variant.as_str(),
                        &n.to_string(),
                        &plan.warm_services.to_string(),
                    ],
                    plan,
                )?;
                for (kind, key, _) in KINDS {
                    let value = *result
                        .get(key)
                        .with_context(|| format!("the lifecycle child gave no {key}"))?;
                    samples
                        .entry((kind, n, variant.as_str()))
                        .or_default()
                        .push(value);
                }
                progress(&format!(
                    "start/drain n={n} round {round}/{}: {variant} cold {:.0}/{:.0}, warm {:.0}/{:.0} ns/service",
                    plan.rounds,
                    result["cold_start_ns"],
                    result["cold_drain_ns"],
                    result["warm_start_ns"],
                    result["warm_drain_ns"],
                ));
            }
        }
    }
    let mut figures = Vec::new();
    for (kind, _, title) in KINDS {
        // Start: the issue of per-service control asks for ≤ 2× (the earlier
        // 1.5× stays the aim); drain: 1.5×.
        let target = if kind.starts_with("start") { 2.0 } else { 1.5 };
        for &n in &plan.idle_ns {
            let of = |variant: Variant| median(&samples[&(kind, n, variant.as_str())]);
            let mut figure = Figure::new(kind, title, n as u64, Unit::Ns, of(Variant::Project))
                .raw(of(Variant::Raw))
                .peer(of(Variant::Peer));
            if n == plan.target_n() {
                let ratio = figure.ratio().unwrap_or(f64::NAN);
                figure = figure.check(Check::ratio_at_most("project ÷ raw", ratio, target));
            }
            figures.push(figure);
        }
    }
    Ok(figures)
}

/// Scenario 2, a fresh process per measurement.
fn memory_figure(plan: &Plan, exe: &Path) -> Result<Figure> {
    let n = plan.memory_n;
    let mut bytes: HashMap<&str, Vec<f64>> = HashMap::new();
    for round in 1..=plan.memory_rounds {
        for variant in Variant::ALL {
            let result = child(exe, &["memory", variant.as_str(), &n.to_string()], plan)?;
            let per_service = result["bytes_per_service"];
            progress(&format!(
                "memory n={n} round {round}/{}: {variant} {per_service:.0} B/service",
                plan.memory_rounds
            ));
            bytes.entry(variant.as_str()).or_default().push(per_service);
        }
    }
    let of = |variant: Variant| median(&bytes[variant.as_str()]);
    let figure = Figure::new(
        "memory",
        "2 resident memory per idle service (RSS delta ÷ N)",
        n as u64,
        Unit::Bytes,
        of(Variant::Project),
    )
    .raw(of(Variant::Raw))
    .peer(of(Variant::Peer));
    let ratio = figure.ratio().unwrap_or(f64::NAN);
    Ok(figure.check(Check::ratio_at_most("project ÷ raw", ratio, 2.0)))
}

/// Scenario 4.
fn cycle_figure(plan: &Plan) -> Result<Figure> {
    let mut samples: HashMap<&str, Vec<f64>> = HashMap::new();
    for round in 1..=plan.rounds {
        for variant in [Variant::Project, Variant::Raw] {
            let ns = restart::cycle(variant, plan.restarts, plan.limit)?;
            progress(&format!(
                "restart cycle round {round}/{}: {variant} {ns:.0} ns/restart",
                plan.rounds
            ));
            samples.entry(variant.as_str()).or_default().push(ns);
        }
    }
    let of = |variant: Variant| median(&samples[variant.as_str()]);
    let figure = Figure::new(
        "restart",
        "4 restart cycle of one failing service, ns/restart (raw: respawn + await)",
        plan.restarts,
        Unit::Ns,
        of(Variant::Project),
    )
    .raw(of(Variant::Raw));
    let ratio = figure.ratio().unwrap_or(f64::NAN);
    Ok(figure.check(Check::ratio_at_most("project ÷ raw", ratio, 1.5)))
}

/// Scenario 4b: the restart cycle with the Prometheus sink attached, against
/// the same cycle with no sink, interleaved.
fn sink_figure(plan: &Plan) -> Result<Figure> {
    let mut samples: HashMap<&str, Vec<f64>> = HashMap::new();
    for round in 1..=plan.rounds {
        for variant in [Variant::Project, Variant::ProjectPrometheus] {
            let ns = restart::cycle(variant, plan.restarts, plan.limit)?;
            progress(&format!(
                "restart cycle with sinks round {round}/{}: {variant} {ns:.0} ns/restart",
                plan.rounds
            ));
            samples.entry(variant.as_str()).or_default().push(ns);
        }
    }
    let of = |variant: Variant| median(&samples[variant.as_str()]);
    let (with, without) = (of(Variant::ProjectPrometheus), of(Variant::Project));
    Ok(Figure::new(
        "restart_prometheus",
        format!(
            "4b restart cycle with the Prometheus sink attached, ns/restart (without: {without:.0} ns)"
        ),
        plan.restarts,
        Unit::Ns,
        with,
    )
    .check(Check::ratio_at_most(
        "with sink ÷ without",
        with / without,
        1.5,
    )))
}

/// Scenario 4c: the restart cycle with one live subscriber draining the
/// lifecycle events, against the same cycle with none, interleaved.
fn subscriber_figure(plan: &Plan) -> Result<Figure> {
    let mut without = Vec::new();
    let mut with = Vec::new();
    let (mut received, mut missed) = (0, 0);
    for round in 1..=plan.rounds {
        for subscribed in [false, true] {
            let observed = restart::observed_cycle(plan.restarts, subscribed, plan.limit)?;
            progress(&format!(
                "restart cycle with a subscriber round {round}/{}: {} {:.0} ns/restart{}",
                plan.rounds,
                if subscribed {
                    "one subscriber"
                } else {
                    "no subscriber"
                },
                observed.ns,
                if subscribed {
                    format!(
                        " ({} events received, {} missed)",
                        observed.received, observed.missed
                    )
                } else {
                    String::new()
                }
            ));
            if subscribed {
                with.push(observed.ns);
                received += observed.received;
                missed += observed.missed;
            } else {
                without.push(observed.ns);
            }
        }
    }
    let (with, without) = (median(&with), median(&without));
    let restarts = plan.restarts * plan.rounds as u64;
    let per_restart = (received + missed) as f64 / restarts as f64;
    let missed_share = missed as f64 / (received + missed).max(1) as f64;
    Ok(Figure::new(
        "restart_subscriber",
        format!(
            "4c restart cycle with one live subscriber draining `subscribe()`, ns/restart (without: {without:.0} ns; {per_restart:.1} events/restart, {:.1} % missed by lagging)",
            missed_share * 100.0
        ),
        plan.restarts,
        Unit::Ns,
        with,
    )
    .check(Check::ratio_at_most(
        "with subscriber ÷ without",
        with / without,
        1.3,
    ))
    .extra("without_ns", format!("{without:.1}"))
    .extra("events_per_restart", format!("{per_restart:.3}"))
    .extra("missed_share", format!("{missed_share:.4}")))
}

/// Scenario 4d: the restart cycle of a service spawned with a heartbeat
/// interval (60 s, never reached), against the same cycle without one,
/// interleaved: what a required heartbeat costs each run. The cycle without
/// one is scenario 4's project figure, for comparison with earlier runs.
fn heartbeat_figure(plan: &Plan) -> Result<Figure> {
    const INTERVAL: Duration = Duration::from_secs(60);
    let mut without = Vec::new();
    let mut with = Vec::new();
    for round in 1..=plan.rounds {
        for interval in [None, Some(INTERVAL)] {
            let ns = restart::heartbeat_cycle(interval, plan.restarts, plan.limit)?;
            progress(&format!(
                "restart cycle with a heartbeat round {round}/{}: {} {ns:.0} ns/restart",
                plan.rounds,
                if interval.is_some() {
                    "heartbeat"
                } else {
                    "no heartbeat"
                },
            ));
            match interval {
                Some(_) => with.push(ns),
                None => without.push(ns),
            }
        }
    }
    let (with, without) = (median(&with), median(&without));
    Ok(Figure::new(
        "restart_heartbeat",
        format!(
            "4d restart cycle of a service spawned with a heartbeat interval, ns/restart (without: {without:.0} ns)"
        ),
        plan.restarts,
        Unit::Ns,
        with,
    )
    .check(Check::ratio_at_most(
        "with heartbeat ÷ without",
        with / without,
        1.3,
    ))
    .extra("without_ns", format!("{without:.1}")))
}

/// Scenario 12: a `OneForAll` group restart of each N of `group_ns`
/// children, the project and the hand-written raw loop interleaved; as many
/// children restarted per measurement as scenario 4 restarts one service.
fn strategy_figures(plan: &Plan) -> Result<Vec<Figure>> {
    let mut figures = Vec::new();
    for &n in &plan.group_ns {
        let cycles = (plan.restarts / n as u64).max(1);
        let mut measured: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for round in 1..=plan.rounds {
            for (at, variant) in [Variant::Project, Variant::Raw].into_iter().enumerate() {
                let ns = strategy::one_for_all(variant, n, cycles, plan.limit)?;
                progress(&format!(
                    "OneForAll restart of {n} children round {round}/{}: {variant} {ns:.0} ns per child restarted",
                    plan.rounds
                ));
                measured[at].push(ns);
            }
        }
        let [project, raw] = measured.map(|values| median(&values));
        figures.push(
            Figure::new(
                "one_for_all",
                format!(
                    "12 OneForAll group restart: one of N children fails {cycles}×, all N stop (newest first) and start again (in order), ns per child restarted (raw: a hand-written loop, starts unordered)"
                ),
                n as u64,
                Unit::Ns,
                project,
            )
            .raw(raw)
            .extra("cycles", cycles.to_string()),
        );
    }
    Ok(figures)
}

/// Scenario 2b: the live heap bytes a terminated service keeps, through the
/// `alloc-count` binary (a counting allocator: a resident set would also
/// count the fragmentation the kept allocations cause).
fn terminated_figure(plan: &Plan, exe: &Path) -> Result<Figure> {
    let n = plan.memory_n;
    let mut bytes: HashMap<&str, Vec<f64>> = HashMap::new();
    for round in 1..=plan.memory_rounds {
        for variant in [Variant::Project, Variant::Raw] {
            let results = alloc_count(exe, &["terminated", variant.as_str(), &n.to_string()])?;
            let per_service = results
                .first()
                .and_then(|result| result.get("bytes_per_service"))
                .context("alloc-count terminated gave no bytes_per_service")?
                .parse::<f64>()
                .context("bytes_per_service is not a number")?;
            progress(&format!(
                "terminated n={n} round {round}/{}: {variant} keeps {per_service:.0} B/service",
                plan.memory_rounds
            ));
            bytes.entry(variant.as_str()).or_default().push(per_service);
        }
    }
    let of = |variant: Variant| median(&bytes[variant.as_str()]);
    Ok(Figure::new(
        "terminated",
        "2b live heap bytes kept per terminated one-shot service (raw keeps nothing)",
        n as u64,
        Unit::Bytes,
        of(Variant::Project),
    )
    .raw(of(Variant::Raw)))
}

/// Scenario 5.
fn burst_figures(plan: &Plan) -> Result<Vec<Figure>> {
    let mut samples: BTreeMap<(usize, &str), Vec<f64>> = BTreeMap::new();
    for round in 1..=plan.rounds {
        for &n in &plan.burst_ns {
            let per_burst = n as u64 * plan.burst_failures;
            let reps = plan.burst_min_restarts.div_ceil(per_burst).max(1);
            for variant in [Variant::Project, Variant::Raw] {
                let ns = restart::burst(variant, n, plan.burst_failures, reps, plan.limit)?;
                progress(&format!(
                    "burst n={n} ×{reps} round {round}/{}: {variant} {ns:.0} ns/restart",
                    plan.rounds
                ));
                samples.entry((n, variant.as_str())).or_default().push(ns);
            }
        }
    }
    let of = |n: usize, variant: Variant| median(&samples[&(n, variant.as_str())]);
    let mut figures = Vec::new();
    for &n in &plan.burst_ns {
        figures.push(
            Figure::new(
                "burst",
                format!(
                    "5 burst: all N fail {}× at once, ns/restart",
                    plan.burst_failures
                ),
                n as u64,
                Unit::Ns,
                of(n, Variant::Project),
            )
            .raw(of(n, Variant::Raw)),
        );
    }
    let [small, large] = plan.burst_ns;
    let growth = of(large, Variant::Project) / of(small, Variant::Project);
    let raw_growth = of(large, Variant::Raw) / of(small, Variant::Raw);
    figures.push(
        Figure::new(
            "burst_flatness",
            format!("5 burst: ns/restart at N={large} vs N={small} (raw grows {raw_growth:.2}×)"),
            large as u64,
            Unit::Ns,
            of(large, Variant::Project),
        )
        .check(Check::ratio_at_most(
            &format!("project N={large} ÷ N={small}"),
            growth,
            1.5,
        ))
        .extra("small_n", small.to_string())
        .extra("small_ns", format!("{:.1}", of(small, Variant::Project)))
        .extra("raw_growth", format!("{raw_growth:.3}")),
    );
    Ok(figures)
}

/// Scenario 6.
fn read_path_figures(plan: &Plan) -> Result<Vec<Figure>> {
    let n = plan.snapshot_n;
    let result = read_path::measure(n, plan.snapshot_restarts, plan.rounds, plan.limit)?;
    progress(&format!(
        "snapshots n={n}: {} snapshots, median {:.2} ms; restarts alone {:?}, with control {:?}, with reader {:?} ns",
        result.latencies.len(),
        median(&result.latencies) / 1e6,
        result.alone.iter().map(|v| v.round()).collect::<Vec<_>>(),
        result
            .with_control
            .iter()
            .map(|v| v.round())
            .collect::<Vec<_>>(),
        result
            .with_reader
            .iter()
            .map(|v| v.round())
            .collect::<Vec<_>>(),
    ));
    let alone = median(&result.alone);
    let control = median(&result.with_control);
    let latency = median(&result.latencies);
    let p99 = measure::quantile(&result.latencies, 0.99);
    Ok(vec![
        Figure::new(
            "snapshot_latency",
            format!(
                "6 lifecycle_snapshots() of N services during restarts, latency (p99 {:.1} ms)",
                p99 / 1e6
            ),
            n as u64,
            Unit::Ns,
            latency,
        )
        .extra("p99_ns", format!("{p99:.0}"))
        .extra(
            "max_ns",
            format!("{:.0}", measure::quantile(&result.latencies, 1.0)),
        )
        .extra("snapshots", result.latencies.len().to_string())
        .extra("per_service_ns", format!("{:.1}", latency / n as f64)),
        Figure::new(
            "snapshot_slowdown",
            format!(
                "6 restart of one service while a thread takes snapshots back to back, ns/restart (alone {alone:.0} ns; next to a control thread {control:.0} ns, so {:.2}× is the read path's)",
                result.slowdown_vs_control()
            ),
            n as u64,
            Unit::Ns,
            median(&result.with_reader),
        )
        .check(Check::ratio_at_most(
            "with reader ÷ without",
            result.slowdown(),
            1.10,
        ))
        .extra("alone_ns", format!("{alone:.1}"))
        .extra("control_ns", format!("{control:.1}"))
        .extra(
            "vs_control",
            format!("{:.3}", result.slowdown_vs_control()),
        ),
    ])
}

/// Scenario 7, through the `alloc-count` binary.
fn backoff_figures(plan: &Plan, exe: &Path) -> Result<Vec<Figure>> {
    let results = alloc_count(
        exe,
        &[
            "backoff",
            &plan.backoff_calls.to_string(),
            &plan.rounds.to_string(),
        ],
    )?;
    let mut figures = Vec::new();
    for result in results {
        let scenario = match result.get("scenario").map(String::as_str) {
            Some("next_backoff_jitter") => "next_backoff_jitter",
            Some("next_backoff_no_jitter") => "next_backoff_no_jitter",
            Some("next_backoff_breaker") => "next_backoff_breaker",
            other => bail!("unknown alloc-count result {other:?}"),
        };
        let number = |key: &str| -> Result<f64> {
            result
                .get(key)
                .with_context(|| format!("alloc-count gave no {key}"))?
                .parse()
                .with_context(|| format!("alloc-count: {key} is not a number"))
        };
        let ns = number("ns")?;
        let allocations = number("allocations")?;
        let title = result
            .get("title")
            .cloned()
            .unwrap_or_default()
            .replace('_', " ");
        progress(&format!(
            "{title}: {ns:.1} ns/call, {allocations} allocations"
        ));
        let check = Check::value_at_most("ns per call", Unit::Ns, ns, 20.0, false).and(
            allocations == 0.0,
            &format!("{allocations} allocations"),
            &format!("{allocations} allocations"),
        );
        if plan.mode == "smoke" {
            // Deterministic, unlike the timings: a regression fails the smoke run.
            ensure!(allocations == 0.0, "{title}: {allocations} allocations");
        }
        figures.push(
            Figure::new(
                scenario,
                format!("7 {title}, ns/call"),
                number("calls")? as u64,
                Unit::Ns,
                ns,
            )
            .check(check)
            .extra("allocations", allocations.to_string()),
        );
    }
    ensure!(
        figures.len() == 3,
        "alloc-count gave {} results",
        figures.len()
    );
    Ok(figures)
}

/// Runs the `alloc-count` binary (built next to this one) with `args`; its
/// `RESULT` lines.
fn alloc_count(exe: &Path, args: &[&str]) -> Result<Vec<HashMap<String, String>>> {
    let probe = exe.with_file_name(format!("alloc-count{}", std::env::consts::EXE_SUFFIX));
    ensure!(
        probe.exists(),
        "{} is missing: build every binary of the crate (`cargo build -p supervisor-bench --bins`)",
        probe.display()
    );
    let output = Command::new(&probe)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", probe.display()))?;
    ensure!(
        output.status.success(),
        "alloc-count {} failed: {}",
        args.join(" "),
        output.status
    );
    parse_results(&output.stdout)
}

/// Scenario 8, a fresh process per variant.
fn soak_figure(plan: &Plan, exe: &Path) -> Result<Figure> {
    let mut growth = HashMap::new();
    for variant in [Variant::Project, Variant::Raw] {
        let result = child(
            exe,
            &[
                "soak",
                variant.as_str(),
                &plan.soak_restarts.to_string(),
                &plan.soak_warm_up.to_string(),
            ],
            plan,
        )?;
        let bytes = result["growth_bytes"];
        progress(&format!(
            "soak {variant}: RSS {:.0} → {:.0} KiB over {} restarts",
            result["rss_before"] / 1024.0,
            result["rss_after"] / 1024.0,
            plan.soak_restarts
        ));
        growth.insert(variant.as_str(), bytes);
    }
    let project = growth[Variant::Project.as_str()];
    Ok(Figure::new(
        "soak",
        format!(
            "8 soak: RSS growth over N restarts of one failing service (after {} warm-up restarts)",
            plan.soak_warm_up
        ),
        plan.soak_restarts,
        Unit::Bytes,
        project,
    )
    .raw(growth[Variant::Raw.as_str()])
    .check(Check::value_at_most(
        "RSS growth",
        Unit::Bytes,
        project,
        1024.0 * 1024.0,
        true,
    )))
}

/// Scenario 9, a fresh process per measurement: every control operation on
/// N idle services, against raw tokio's equivalent (and tokio-graceful-shutdown's
/// for stop).
fn control_figures(plan: &Plan, exe: &Path) -> Result<Vec<Figure>> {
    let n = plan.control_n;
    let mut samples: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
    let mut requests: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
    for round in 1..=plan.rounds {
        for op in Op::ALL {
            for &variant in op.variants() {
                let result = child(
                    exe,
                    &["control", variant.as_str(), op.as_str(), &n.to_string()],
                    plan,
                )?;
                let ns = result["ns_per_op"];
                progress(&format!(
                    "control {op} n={n} round {round}/{}: {variant} {ns:.0} ns/service (requests {:.0})",
                    plan.rounds, result["request_ns"],
                ));
                samples
                    .entry((op.as_str(), variant.as_str()))
                    .or_default()
                    .push(ns);
                requests
                    .entry((op.as_str(), variant.as_str()))
                    .or_default()
                    .push(result["request_ns"]);
            }
        }
    }
    let mut figures = Vec::new();
    for op in Op::ALL {
        let of = |variant: Variant| median(&samples[&(op.as_str(), variant.as_str())]);
        let (scenario, title) = match op {
            Op::Stop => (
                "control_stop",
                "9 stop every idle service (all asked, then all awaited until terminated), ns/service (raw: cancel its token, join; tgs: initiate_shutdown, join)",
            ),
            Op::Restart => (
                "control_restart",
                "9 restart every idle service by call (until each new run runs), ns/service (raw: cancel, join, spawn again)",
            ),
            Op::Remove => (
                "control_remove",
                "9 remove every idle service (until forgotten), ns/service (raw: cancel, take out of a name map, join)",
            ),
        };
        let requests_of = |variant: Variant| median(&requests[&(op.as_str(), variant.as_str())]);
        let mut figure = Figure::new(scenario, title, n as u64, Unit::Ns, of(Variant::Project))
            .raw(of(Variant::Raw))
            .extra(
                "request_ns",
                format!("{:.1}", requests_of(Variant::Project)),
            )
            .extra(
                "raw_request_ns",
                format!("{:.1}", requests_of(Variant::Raw)),
            );
        if op.variants().contains(&Variant::Peer) {
            figure = figure.peer(of(Variant::Peer));
        }
        figures.push(figure);
    }
    Ok(figures)
}

/// Scenario 10, a fresh process per measurement: temporary-service churn,
/// ns per job and RSS growth.
fn churn_figures(plan: &Plan, exe: &Path) -> Result<Vec<Figure>> {
    let churn = plan.churn;
    let mut ns: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut growth: HashMap<&str, Vec<f64>> = HashMap::new();
    for round in 1..=plan.rounds {
        for variant in Variant::ALL {
            let result = child(
                exe,
                &[
                    "churn",
                    variant.as_str(),
                    &churn.jobs.to_string(),
                    &churn.in_flight.to_string(),
                    &churn.warm_up.to_string(),
                ],
                plan,
            )?;
            progress(&format!(
                "churn {} jobs, {} in flight, round {round}/{}: {variant} {:.0} ns/job, RSS {:.0} → {:.0} KiB",
                churn.jobs,
                churn.in_flight,
                plan.rounds,
                result["ns_per_job"],
                result["rss_before"] / 1024.0,
                result["rss_after"] / 1024.0,
            ));
            ns.entry(variant.as_str())
                .or_default()
                .push(result["ns_per_job"]);
            growth
                .entry(variant.as_str())
                .or_default()
                .push(result["growth_bytes"]);
        }
    }
    let ns_of = |variant: Variant| median(&ns[variant.as_str()]);
    let growth_of = |variant: Variant| median(&growth[variant.as_str()]);
    let project_growth = growth_of(Variant::Project);
    Ok(vec![
        Figure::new(
            "churn",
            format!(
                "10 temporary churn: one-shot temporary services, {} in flight, ns/job until forgotten (raw: `tokio::spawn`, joined through its permit)",
                churn.in_flight
            ),
            churn.jobs as u64,
            Unit::Ns,
            ns_of(Variant::Project),
        )
        .raw(ns_of(Variant::Raw))
        .peer(ns_of(Variant::Peer))
        .extra("in_flight", churn.in_flight.to_string()),
        Figure::new(
            "churn_rss",
            format!(
                "10 temporary churn: RSS growth over N jobs after {} warm-up jobs (raw {}, tgs {})",
                churn.warm_up,
                Unit::Bytes.show(growth_of(Variant::Raw)),
                Unit::Bytes.show(growth_of(Variant::Peer)),
            ),
            churn.jobs as u64,
            Unit::Bytes,
            project_growth,
        )
        .check(Check::value_at_most(
            "RSS growth",
            Unit::Bytes,
            project_growth,
            1024.0 * 1024.0,
            true,
        ))
        .extra("raw_growth_bytes", format!("{:.0}", growth_of(Variant::Raw)))
        .extra("tgs_growth_bytes", format!("{:.0}", growth_of(Variant::Peer))),
    ])
}

/// Scenario 11: `GET /metrics` of `http_services` services through the
/// real server, and the restart cycle next to a scraper, an SSE client or
/// an in-process subscriber, interleaved with the cycle alone.
fn http_figures(plan: &Plan) -> Result<Vec<Figure>> {
    let n = plan.http_services;
    let mut openmetrics = Vec::new();
    let mut text = Vec::new();
    let mut render = Vec::new();
    let mut shape = (0, 0);
    let mut restarts: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut work: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for round in 1..=plan.rounds {
        let scrapes = http::scrapes(n, plan.http_scrapes, plan.limit)?;
        progress(&format!(
            "GET /metrics of {n} services round {round}/{}: {:.0} ns (OpenMetrics), {:.0} ns (text), render alone {:.0} ns; {} bytes, {} samples",
            plan.rounds,
            median(&scrapes.openmetrics),
            median(&scrapes.text),
            median(&scrapes.render),
            scrapes.bytes,
            scrapes.samples,
        ));
        openmetrics.extend(scrapes.openmetrics);
        text.extend(scrapes.text);
        render.extend(scrapes.render);
        shape = (scrapes.bytes, scrapes.samples);
        for alongside in http::Alongside::ALL {
            let measured = http::restart_alongside(alongside, n, plan.restarts, plan.limit)?;
            progress(&format!(
                "restart cycle next to {n} served services round {round}/{}: {} alongside, {:.0} ns/restart{}",
                plan.rounds,
                alongside.as_str(),
                measured.ns,
                match alongside {
                    http::Alongside::Nothing => String::new(),
                    _ => format!(" ({} {})", measured.work, alongside.work_unit()),
                },
            ));
            restarts
                .entry(alongside.as_str())
                .or_default()
                .push(measured.ns);
            work.entry(alongside.as_str())
                .or_default()
                .push(measured.work as f64);
            if alongside != http::Alongside::Nothing {
                ensure!(
                    measured.work > 0,
                    "the {} did nothing alongside the restarts",
                    alongside.as_str()
                );
            }
        }
    }
    let scrape = median(&openmetrics);
    let of = |alongside: http::Alongside| median(&restarts[alongside.as_str()]);
    let work_of = |alongside: http::Alongside| median(&work[alongside.as_str()]);
    let nothing = of(http::Alongside::Nothing);
    let scraper = of(http::Alongside::Scraper);
    let stream = of(http::Alongside::EventStream);
    let subscriber = of(http::Alongside::Subscriber);
    let busy = of(http::Alongside::BusyWorker);
    let (bytes, samples) = shape;
    // Bounded: a Prometheus scrapes every 15 s to 1 min with a 10 s timeout;
    // 5 ms per scrape of 1k services is under 0.05 % of a core at 15 s, and
    // far from the timeouts of a scrape (10 s) and of the probes sharing the
    // server (1 s).
    let limit_ns = 5e6;
    Ok(vec![
        Figure::new(
            "metrics_scrape",
            format!(
                "11 GET /metrics of N services through the router and server, loopback keep-alive HTTP/1.1, as Prometheus asks (OpenMetrics), ns/scrape (text 0.0.4 {}; render alone {}; p99 {}; {bytes} bytes, {samples} samples)",
                Unit::Ns.show(median(&text)),
                Unit::Ns.show(median(&render)),
                Unit::Ns.show(measure::quantile(&openmetrics, 0.99)),
            ),
            n as u64,
            Unit::Ns,
            scrape,
        )
        .check(Check::value_at_most(
            "median per scrape",
            Unit::Ns,
            scrape,
            limit_ns,
            false,
        ))
        .extra("text_ns", format!("{:.0}", median(&text)))
        .extra("render_ns", format!("{:.0}", median(&render)))
        .extra(
            "p99_ns",
            format!("{:.0}", measure::quantile(&openmetrics, 0.99)),
        )
        .extra("bytes", bytes.to_string())
        .extra("samples", samples.to_string()),
        Figure::new(
            "restart_scraper",
            format!(
                "11 restart cycle next to N served idle services while a thread scrapes /metrics back to back, ns/restart (nothing alongside {nothing:.0} ns; a task as busy, touching nothing, {busy:.0} ns, so {:.2}× is the scrape's; {:.0} scrapes per measurement)",
                scraper / busy,
                work_of(http::Alongside::Scraper),
            ),
            n as u64,
            Unit::Ns,
            scraper,
        )
        .check(Check::ratio_at_most(
            "with scraper ÷ without",
            scraper / nothing,
            1.1,
        ))
        .extra("without_ns", format!("{nothing:.1}"))
        .extra("busy_ns", format!("{busy:.1}"))
        .extra("vs_busy", format!("{:.3}", scraper / busy))
        .extra(
            "scrapes",
            format!("{:.0}", work_of(http::Alongside::Scraper)),
        ),
        Figure::new(
            "restart_event_stream",
            format!(
                "11 restart cycle next to N served idle services while an SSE client follows /events, ns/restart (nothing alongside {nothing:.0} ns, {:.2}×; an in-process subscriber {subscriber:.0} ns, {:.2}×; {:.0} events read per measurement)",
                stream / nothing,
                subscriber / nothing,
                work_of(http::Alongside::EventStream),
            ),
            n as u64,
            Unit::Ns,
            stream,
        )
        .check(Check::ratio_at_most(
            "with SSE client ÷ with a subscriber",
            stream / subscriber,
            1.1,
        ))
        .extra("without_ns", format!("{nothing:.1}"))
        .extra("subscriber_ns", format!("{subscriber:.1}"))
        .extra("vs_nothing", format!("{:.3}", stream / nothing))
        .extra(
            "events",
            format!("{:.0}", work_of(http::Alongside::EventStream)),
        ),
    ])
}

/// The hidden entry point of the fresh processes: `--child <kind> <variant> <args…> <limit-secs>`.
fn child_main(args: &[String]) -> Result<()> {
    let kind = args.first().context("missing child kind")?;
    let variant = Variant::parse(args.get(1).context("missing variant")?)?;
    let count = |index: usize, what: &str| -> Result<u64> {
        args.get(index)
            .with_context(|| format!("missing {what}"))?
            .parse()
            .with_context(|| format!("{what} is not a count"))
    };
    let limit = Duration::from_secs(count(args.len() - 1, "limit")?);
    let results = match kind.as_str() {
        "lifecycle" => idle::lifecycle_child(
            variant,
            count(2, "n")? as usize,
            count(3, "warm services")? as usize,
            limit,
        )?,
        "memory" => idle::memory_child(variant, count(2, "n")? as usize, limit)?,
        "soak" => restart::soak_child(variant, count(2, "restarts")?, count(3, "warm-up")?, limit)?,
        "control" => control::control_child(
            variant,
            Op::parse(args.get(2).context("missing control operation")?)?,
            count(3, "n")? as usize,
            limit,
        )?,
        "churn" => churn::churn_child(
            variant,
            Churn {
                jobs: count(2, "jobs")? as usize,
                in_flight: count(3, "jobs in flight")? as usize,
                warm_up: count(4, "warm-up jobs")? as usize,
            },
            limit,
        )?,
        // Not used by the run itself: single scenarios to profile
        // (`perf record … supervisor-bench --child cycle project 1000000 600`).
        "cycle" => vec![(
            "ns_per_restart",
            restart::cycle(variant, count(2, "restarts")?, limit)?,
        )],
        "cycle-subscribed" => vec![(
            "ns_per_restart",
            restart::observed_cycle(count(2, "restarts")?, true, limit)?.ns,
        )],
        "burst" => vec![(
            "ns_per_restart",
            restart::burst(
                variant,
                count(2, "n")? as usize,
                count(3, "failures")?,
                1,
                limit,
            )?,
        )],
        other => bail!("unknown child kind `{other}`"),
    };
    let fields: Vec<String> = results
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    println!("RESULT {}", fields.join(" "));
    Ok(())
}

/// Runs this binary as `--child <args…> <limit>`; its numeric results.
fn child(exe: &Path, args: &[&str], plan: &Plan) -> Result<HashMap<String, f64>> {
    let output = Command::new(exe)
        .arg("--child")
        .args(args)
        .arg(plan.limit.as_secs().to_string())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot start a child process")?;
    ensure!(
        output.status.success(),
        "child `{}` failed: {}",
        args.join(" "),
        output.status
    );
    let results = parse_results(&output.stdout)?;
    let result = results
        .into_iter()
        .next()
        .context("the child printed no RESULT line")?;
    result
        .into_iter()
        .map(|(key, value)| {
            let number = value
                .parse()
                .with_context(|| format!("child result {key}={value} is not a number"))?;
            Ok((key, number))
        })
        .collect()
}

/// The `RESULT key=value …` lines of a child's output.
fn parse_results(stdout: &[u8]) -> Result<Vec<HashMap<String, String>>> {
    let text = String::from_utf8_lossy(stdout);
    text.lines()
        .filter_map(|line| line.strip_prefix("RESULT "))
        .map(|fields| {
            fields
                .split_whitespace()
                .map(|field| {
                    let (key, value) = field
                        .split_once('=')
                        .with_context(|| format!("malformed result field `{field}`"))?;
                    Ok((key.to_owned(), value.to_owned()))
                })
                .collect()
        })
        .collect()
}

fn progress(message: &str) {
    eprintln!("  {message}");
}

/// The machine-readable lines of BENCHMARKS.md at the workspace root, if it
/// can be read: this run's figures are compared with them.
fn recorded_run() -> Option<report::Recorded> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = manifest.parent().unwrap_or(manifest).join("BENCHMARKS.md");
    let text = std::fs::read_to_string(path).ok()?;
    Some(report::Recorded::parse(&text))
}

/// `$CARGO_TARGET_DIR`, or the workspace's `target/`.
fn default_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest.parent().unwrap_or(manifest).join("target")
        })
}

/// CPU, cores, memory, kernel, compiler, profile and runtime.
fn machine_facts() -> Vec<String> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let meminfo = read("/proc/meminfo");
    let memory_kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned()))
        .arg("-V")
        .output()
        .ok()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .filter(|version| !version.is_empty())
        .unwrap_or_else(|| "rustc (version unknown)".to_owned());
    vec![
        format!(
            "machine: {cpu}; {cores} CPUs available; {:.1} GiB RAM; Linux {}",
            memory_kib as f64 / 1024.0 / 1024.0,
            read("/proc/sys/kernel/osrelease").trim()
        ),
        format!(
            "build: {rustc}; {} profile",
            if cfg!(debug_assertions) {
                "dev (debug assertions on: the figures only show the bench runs)"
            } else {
                "release"
            }
        ),
        format!("runtime: {}", measure::RUNTIME),
    ]
}

fn notes(plan: &Plan) -> Vec<String> {
    vec![
        format!(
            "Every figure is the median of {} interleaved rounds (project, raw, tgs, project, raw, tgs, …); memory of {}.",
            plan.rounds, plan.memory_rounds
        ),
        "raw = `TaskTracker::spawn` + a child `CancellationToken` per task, no names, no restarts (scenarios 1–3); for restarts, a loop that respawns the run with `tokio::spawn` and awaits it.".to_owned(),
        "tgs = tokio-graceful-shutdown: one nested subsystem per service under a `Toplevel`, started from its root subsystem.".to_owned(),
        "Every variant runs the same service body (`Script`); names are made before the clock starts. Start, memory, drain and soak run in a fresh process per measurement.".to_owned(),
        "Start and drain: *cold* = the first N services of a fresh process (after 1k started and drained), so page faults and allocator growth count; *warm* = N more right after those drained, the median of repetitions up to 100k services in all (100 at N=1k). The supervisor's own teardown (dropping its registry) is not part of a drain, for any variant.".to_owned(),
        "Snapshots: a reader thread calls `lifecycle_snapshots()` back to back; the control round runs a thread doing similar work (100k string copies, a vector of 152-byte records) without the supervisor, to show how much of the slowdown any busy thread causes on this machine.".to_owned(),
        format!(
            "Burst: each service's first run waits for a starting gun, then every service fails {}× with zero backoff; timed from the gun to the last service running again; N={} repeats the burst to reach {} restarts per measurement.",
            plan.burst_failures, plan.burst_ns[0], plan.burst_min_restarts
        ),
        "Restart with a subscriber (4c): the restart cycle run alternately with no subscriber and with one task draining `Supervisor::subscribe()` (default capacity 1024; events it misses by lagging are counted, not waited for).".to_owned(),
        "OneForAll (12): N − 1 idle children run; the N-th, spawned last, fails at once on each run until the group has restarted about as many children as scenario 4 restarts one service, with zero backoff and no restart intensity; project = `Strategy::OneForAll` (its coordinator stops the others newest first, each awaited, and starts each child once the one before it runs); raw = a task and token per child, the loop joins the failing child, cancels and joins the others newest first, then spawns all again in order without waiting.".to_owned(),
        "Restart with a heartbeat (4d): the restart cycle run alternately without and with `SpawnOptions::heartbeat(60 s)` (each run makes its boxed deadline; the run fails before it is ever reached).".to_owned(),
        format!(
            "Control (9): {} idle services run; then every one is asked (stop / restart / remove through its `ServiceHandle`), and all answers are awaited; timed from the first request to the last answer (restart: until every new run's body ran). raw keeps a child token and `JoinHandle` per task (remove: in a name-keyed `HashMap`); tgs has a per-subsystem stop only.",
            plan.control_n
        ),
        format!(
            "Temporary churn (10): {} one-shot jobs (`RestartPolicy::Never`, `temporary()`), at most {} in flight (a semaphore permit lives in each job's task), after {} warm-up jobs; timed until every job's task is gone (project: forgotten); RSS read after the warm-up and at the end. raw = bare `tokio::spawn`; tgs = a nested subsystem per job.",
            plan.churn.jobs, plan.churn.in_flight, plan.churn.warm_up
        ),
        format!(
            "HTTP (11): {} idle services with the Prometheus sink, served by `supervisor-http` (`HttpServer`, default limits) on the scenario's runtime (with its I/O driver); the clients are OS threads on `ureq` (keep-alive). /metrics is timed by the client, request to last byte, {} times per format and round. The restart cycle (one service failing {} times, as in 4) runs next to them with nothing else, a scraper looping on /metrics (Prometheus' `Accept`), a task keeping the other worker busy in 3 ms slices without touching the supervisor (the scraper's control), an SSE client reading /events, or an in-process `subscribe()` drain (4c's cost), interleaved; a fresh runtime, supervisor and server per measurement.",
            plan.http_services, plan.http_scrapes, plan.restarts
        ),
        "next_backoff: base 100 ms, max 30 s, ×2, `reset()` every 8 calls (a realistic climb); allocations counted by `stats_alloc` in the separate `alloc-count` binary, after a warm-up.".to_owned(),
    ]
}
