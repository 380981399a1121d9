//! The rendered exposition: values after a chaotic run, the one-hot phase
//! gauge, removal, escaping, HELP/TYPE lines, prefixes and odd event orders.

use std::time::Duration;

use prometheus_client::registry::Registry;
use supervisor_metrics::{FailureKind, ServicePhase, TerminationReason};
use supervisor_prometheus::{
    PrometheusSink, UPTIME_BUCKETS_SECONDS, render, render_prometheus_text,
};

use tests::exposition::{samples, value};
use tests::sink::{ByName, WEIRD_SERVICE, WEIRD_SERVICE_ESCAPED, chaotic_run};

/// Every family, with its type, as named in OpenMetrics `# TYPE` lines.
const FAMILIES: [(&str, &str); 9] = [
    ("supervisor_restarts", "counter"),
    ("supervisor_active_services", "gauge"),
    ("supervisor_spawned", "counter"),
    ("supervisor_terminated", "counter"),
    ("supervisor_failures", "counter"),
    ("supervisor_circuit_breaker_trips", "counter"),
    ("supervisor_service_uptime_seconds", "histogram"),
    ("supervisor_service_phase", "gauge"),
    ("supervisor_backoff_delay_seconds", "gauge"),
];

fn chaotic_exposition() -> anyhow::Result<String> {
    let mut registry = Registry::default();
    let sink = PrometheusSink::register(&mut registry);
    let sink = ByName::new(&sink);
    chaotic_run(&sink);
    Ok(render(&registry)?)
}

#[test]
fn a_chaotic_run_renders_the_expected_values() -> anyhow::Result<()> {
    let text = chaotic_exposition()?;
    let expected = [
        ("supervisor_spawned_total", "5"),
        ("supervisor_active_services", "2"),
        (r#"supervisor_restarts_total{service="flaky"}"#, "2"),
        (r#"supervisor_restarts_total{service="stuck"}"#, "0"),
        (r#"supervisor_restarts_total{service="steady"}"#, "0"),
        (
            r#"supervisor_failures_total{service="flaky",kind="error"}"#,
            "2",
        ),
        (
            r#"supervisor_failures_total{service="flaky",kind="panic"}"#,
            "1",
        ),
        (
            r#"supervisor_failures_total{service="flaky",kind="timeout"}"#,
            "0",
        ),
        (
            r#"supervisor_failures_total{service="stuck",kind="timeout"}"#,
            "1",
        ),
        (
            r#"supervisor_failures_total{service="stuck",kind="error"}"#,
            "0",
        ),
        (
            r#"supervisor_failures_total{service="steady",kind="panic"}"#,
            "0",
        ),
        (
            r#"supervisor_circuit_breaker_trips_total{service="flaky"}"#,
            "1",
        ),
        (
            r#"supervisor_circuit_breaker_trips_total{service="stuck"}"#,
            "0",
        ),
        (
            r#"supervisor_terminated_total{service="flaky",reason="circuit_breaker_open"}"#,
            "1",
        ),
        (
            r#"supervisor_terminated_total{service="stuck",reason="shutdown_timeout"}"#,
            "1",
        ),
        (
            r#"supervisor_backoff_delay_seconds{service="flaky"}"#,
            "1.0",
        ),
        (
            r#"supervisor_backoff_delay_seconds{service="steady"}"#,
            "0.0",
        ),
        (
            r#"supervisor_service_uptime_seconds_sum{service="flaky"}"#,
            "12.5",
        ),
        (
            r#"supervisor_service_uptime_seconds_count{service="flaky"}"#,
            "1",
        ),
        (
            r#"supervisor_service_uptime_seconds_bucket{le="10.0",service="flaky"}"#,
            "0",
        ),
        (
            r#"supervisor_service_uptime_seconds_bucket{le="60.0",service="flaky"}"#,
            "1",
        ),
        (
            r#"supervisor_service_uptime_seconds_bucket{le="+Inf",service="flaky"}"#,
            "1",
        ),
        (
            r#"supervisor_service_uptime_seconds_sum{service="stuck"}"#,
            "3600.0",
        ),
        (
            r#"supervisor_service_uptime_seconds_bucket{le="900.0",service="stuck"}"#,
            "0",
        ),
        (
            r#"supervisor_service_uptime_seconds_bucket{le="3600.0",service="stuck"}"#,
            "1",
        ),
        (
            r#"supervisor_service_uptime_seconds_count{service="steady"}"#,
            "0",
        ),
    ];
    for (series, expected) in expected {
        assert_eq!(value(&text, series), Some(expected), "{series} in\n{text}");
    }
    // Terminations exist only for the reasons that happened.
    let terminations = samples(&text)
        .into_iter()
        .filter(|line| line.starts_with("supervisor_terminated_total"))
        .count();
    assert_eq!(terminations, 2, "{text}");
    assert!(text.ends_with("# EOF\n"));
    Ok(())
}

#[test]
fn the_phase_gauge_is_one_hot() -> anyhow::Result<()> {
    let text = chaotic_exposition()?;
    let expected_phases = [
        ("flaky", ServicePhase::Terminated),
        ("stuck", ServicePhase::Terminated),
        ("steady", ServicePhase::Running),
        (WEIRD_SERVICE_ESCAPED, ServicePhase::Running),
    ];
    for (service, current) in expected_phases {
        for phase in ServicePhase::ALL {
            let series = format!(
                r#"supervisor_service_phase{{service="{service}",phase="{}"}}"#,
                phase.as_str()
            );
            let expected = if phase == current { "1" } else { "0" };
            assert_eq!(value(&text, &series), Some(expected), "{series} in\n{text}");
        }
    }
    let phase_series = samples(&text)
        .into_iter()
        .filter(|line| line.starts_with("supervisor_service_phase"))
        .count();
    assert_eq!(phase_series, 4 * ServicePhase::ALL.len(), "{text}");
    Ok(())
}

#[test]
fn a_removed_service_leaves_no_series() -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let sink = PrometheusSink::register(&mut registry);
    let sink = ByName::new(&sink);
    chaotic_run(&sink);
    let text = render(&registry)?;
    assert!(!text.contains("ephemeral"), "{text}");

    for service in ["flaky", "stuck", "steady", WEIRD_SERVICE] {
        sink.service_removed(service);
    }
    assert_eq!(sink.tracked_services(), 0);
    let text = render(&registry)?;
    let labelled: Vec<_> = samples(&text)
        .into_iter()
        .filter(|line| line.contains('{'))
        .collect();
    assert_eq!(labelled, Vec::<&str>::new(), "{text}");
    // Totals survive their services; the two still running were removed
    // without a termination and no longer count as active.
    assert_eq!(value(&text, "supervisor_spawned_total"), Some("5"));
    assert_eq!(value(&text, "supervisor_active_services"), Some("0"));
    Ok(())
}

#[test]
fn label_values_are_escaped() -> anyhow::Result<()> {
    let text = chaotic_exposition()?;
    let series =
        format!(r#"supervisor_service_phase{{service="{WEIRD_SERVICE_ESCAPED}",phase="running"}}"#);
    assert_eq!(value(&text, &series), Some("1"), "{text}");
    // The raw name never appears: no unescaped newline or quote breaks a line.
    assert!(!text.contains(WEIRD_SERVICE), "{text}");
    for line in samples(&text) {
        assert!(
            line.starts_with("supervisor_"),
            "a label value split a sample line: {line:?}"
        );
    }
    Ok(())
}

#[test]
fn every_family_has_help_and_type() -> anyhow::Result<()> {
    let text = chaotic_exposition()?;
    for (family, kind) in FAMILIES {
        let help = format!("# HELP {family} ");
        let help_line = text.lines().find(|line| line.starts_with(&help));
        assert!(
            help_line.is_some_and(|line| line.len() > help.len() + 10),
            "no HELP for {family} in\n{text}"
        );
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "no TYPE for {family}"
        );
    }
    for family in [
        "supervisor_service_uptime_seconds",
        "supervisor_backoff_delay_seconds",
    ] {
        assert!(
            text.contains(&format!("# UNIT {family} seconds\n")),
            "no UNIT for {family}"
        );
    }
    assert_eq!(text.matches("# HELP ").count(), FAMILIES.len(), "{text}");
    Ok(())
}

#[test]
fn the_prometheus_text_format_has_the_same_samples() -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let sink = PrometheusSink::register(&mut registry);
    let sink = ByName::new(&sink);
    chaotic_run(&sink);
    let openmetrics = render(&registry)?;
    let classic = render_prometheus_text(&registry)?;
    // Histogram buckets differ in form only (`le="1.0"` first vs `le="1"`
    // last); every other sample line is identical.
    let sorted_without_buckets = |text| {
        let mut lines: Vec<&str> = samples(text)
            .into_iter()
            .filter(|line| !line.contains("_bucket{"))
            .collect();
        lines.sort_unstable();
        lines
    };
    let buckets = |text| {
        samples(text)
            .into_iter()
            .filter(|line| line.contains("_bucket{"))
            .count()
    };
    assert_eq!(
        sorted_without_buckets(&openmetrics),
        sorted_without_buckets(&classic)
    );
    assert_eq!(buckets(&openmetrics), buckets(&classic));
    assert_eq!(buckets(&classic), 4 * (UPTIME_BUCKETS_SECONDS.len() + 1));
    assert!(classic.contains("# TYPE supervisor_restarts_total counter\n"));
    Ok(())
}

#[test]
fn a_prefix_renames_every_family_and_sinks_stay_independent() -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let ingest = PrometheusSink::register_with_prefix(&mut registry, "ingest")?;
    let ingest = ByName::new(&ingest);
    let export = PrometheusSink::register_with_prefix(&mut registry, "export")?;
    let export = ByName::new(&export);
    ingest.service_spawned("feed");
    ingest.service_started("feed", 2);
    export.service_spawned("feed");

    let text = render(&registry)?;
    assert_eq!(
        value(&text, r#"ingest_restarts_total{service="feed"}"#),
        Some("1")
    );
    assert_eq!(
        value(&text, r#"export_restarts_total{service="feed"}"#),
        Some("0")
    );
    assert_eq!(value(&text, "ingest_spawned_total"), Some("1"));
    assert_eq!(value(&text, "export_spawned_total"), Some("1"));
    assert!(!text.contains("supervisor_"), "{text}");
    // A family without samples is not rendered: neither sink saw a termination.
    assert_eq!(
        text.matches("# HELP ").count(),
        2 * (FAMILIES.len() - 1),
        "{text}"
    );
    assert!(!text.contains("_terminated"), "{text}");

    for invalid in ["", "9lives", "__reserved", "with-dash", "with:colon"] {
        let error = PrometheusSink::register_with_prefix(&mut registry, invalid)
            .err()
            .ok_or_else(|| anyhow::anyhow!("prefix `{invalid}` was accepted"))?;
        assert_eq!(error.prefix(), invalid);
    }
    Ok(())
}

#[test]
fn a_sink_that_missed_the_spawn_creates_series_on_the_first_event() -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let sink = PrometheusSink::register(&mut registry);
    let sink = ByName::new(&sink);
    sink.phase_changed("late", ServicePhase::BackingOff, ServicePhase::Restarting);
    sink.service_started("late", 4);

    let text = render(&registry)?;
    assert_eq!(
        value(&text, r#"supervisor_restarts_total{service="late"}"#),
        Some("1")
    );
    assert_eq!(
        value(
            &text,
            r#"supervisor_service_phase{service="late",phase="restarting"}"#
        ),
        Some("1")
    );
    // Never seen spawning: neither spawned nor active.
    assert_eq!(value(&text, "supervisor_spawned_total"), Some("0"));
    assert_eq!(value(&text, "supervisor_active_services"), Some("0"));

    sink.service_terminated("late", &TerminationReason::Cancelled, Duration::ZERO);
    let text = render(&registry)?;
    assert_eq!(value(&text, "supervisor_active_services"), Some("0"));
    Ok(())
}

#[test]
fn repeated_or_reordered_events_keep_active_services_consistent() -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let sink = PrometheusSink::register(&mut registry);
    let sink = ByName::new(&sink);
    sink.service_spawned("twice");
    sink.service_spawned("twice");
    let text = render(&registry)?;
    assert_eq!(value(&text, "supervisor_spawned_total"), Some("2"));
    assert_eq!(value(&text, "supervisor_active_services"), Some("1"));

    let reason = TerminationReason::Panicked("boom".to_owned());
    sink.service_terminated("twice", &reason, Duration::from_secs(2));
    sink.service_terminated("twice", &reason, Duration::from_secs(2));
    let text = render(&registry)?;
    assert_eq!(value(&text, "supervisor_active_services"), Some("0"));
    assert_eq!(
        value(
            &text,
            r#"supervisor_terminated_total{service="twice",reason="panicked"}"#
        ),
        Some("2")
    );
    Ok(())
}

#[test]
fn a_service_respawned_after_removal_starts_from_zero() -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let sink = PrometheusSink::register(&mut registry);
    let sink = ByName::new(&sink);
    sink.service_spawned("feed");
    sink.service_started("feed", 2);
    sink.service_failed("feed", FailureKind::Error);
    sink.service_terminated(
        "feed",
        &TerminationReason::Completed,
        Duration::from_secs(1),
    );
    sink.service_removed("feed");
    sink.service_spawned("feed");

    let text = render(&registry)?;
    assert_eq!(
        value(&text, r#"supervisor_restarts_total{service="feed"}"#),
        Some("0")
    );
    assert_eq!(
        value(
            &text,
            r#"supervisor_failures_total{service="feed",kind="error"}"#
        ),
        Some("0")
    );
    assert_eq!(
        value(
            &text,
            r#"supervisor_terminated_total{service="feed",reason="completed"}"#
        ),
        None
    );
    assert_eq!(
        value(
            &text,
            r#"supervisor_service_phase{service="feed",phase="starting"}"#
        ),
        Some("1")
    );
    assert_eq!(value(&text, "supervisor_active_services"), Some("1"));
    Ok(())
}

#[test]
fn concurrent_events_and_scrapes_add_up() -> anyhow::Result<()> {
    const THREADS: usize = 4;
    const RESTARTS: u64 = 500;

    let mut registry = Registry::default();
    let sink = PrometheusSink::register(&mut registry);
    let services: Vec<String> = (0..THREADS).map(|n| format!("worker-{n}")).collect();
    std::thread::scope(|scope| {
        for service in &services {
            let sink = &sink;
            scope.spawn(move || {
                let sink = ByName::new(sink);
                sink.service_spawned(service);
                for start in 1..=RESTARTS + 1 {
                    sink.service_started(service, start);
                    sink.phase_changed(service, ServicePhase::Restarting, ServicePhase::Running);
                    sink.service_failed(service, FailureKind::Error);
                    sink.phase_changed(service, ServicePhase::Running, ServicePhase::BackingOff);
                }
                sink.service_terminated(
                    service,
                    &TerminationReason::Cancelled,
                    Duration::from_secs(1),
                );
            });
        }
        // Scrape while the workers run: rendering must never fail or block them.
        for _ in 0..50 {
            assert!(render(&registry).is_ok());
        }
    });

    let text = render(&registry)?;
    for service in &services {
        let restarts = value(
            &text,
            &format!(r#"supervisor_restarts_total{{service="{service}"}}"#),
        );
        assert_eq!(restarts, Some(RESTARTS.to_string().as_str()));
        let failures = value(
            &text,
            &format!(r#"supervisor_failures_total{{service="{service}",kind="error"}}"#),
        );
        assert_eq!(failures, Some((RESTARTS + 1).to_string().as_str()));
        let phase = value(
            &text,
            &format!(r#"supervisor_service_phase{{service="{service}",phase="terminated"}}"#),
        );
        assert_eq!(phase, Some("1"));
    }
    assert_eq!(value(&text, "supervisor_spawned_total"), Some("4"));
    assert_eq!(value(&text, "supervisor_active_services"), Some("0"));
    Ok(())
}

/// A hang (a missed heartbeat) is its own failure kind: its series exists
/// from the spawn, at zero, and counts apart from timeouts.
#[test]
fn hangs_have_their_own_failure_series() -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let sink = PrometheusSink::register(&mut registry);
    let sink = ByName::new(&sink);
    sink.service_spawned("watched");
    sink.service_spawned("steady");
    sink.service_started("watched", 1);
    sink.service_failed("watched", FailureKind::Hung);
    sink.service_started("watched", 2);
    sink.service_failed("watched", FailureKind::Hung);

    let text = render(&registry)?;
    let series = |service: &str, kind: &str| {
        value(
            &text,
            &format!(r#"supervisor_failures_total{{service="{service}",kind="{kind}"}}"#),
        )
        .map(str::to_owned)
    };
    assert_eq!(series("watched", "hung").as_deref(), Some("2"));
    assert_eq!(series("watched", "timeout").as_deref(), Some("0"));
    assert_eq!(series("steady", "hung").as_deref(), Some("0"));
    Ok(())
}
