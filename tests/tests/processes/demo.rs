//! The demo as a real process: built with cargo and started, it is sent
//! SIGTERM once its circuit breaker has tripped, and exits 0 within its
//! shutdown timeout with every service drained and the one that ignores
//! cancellation reported as aborted. A real Prometheus scrapes its
//! `supervisor-http` surface, and `promtool check metrics` accepts what a
//! plain client (curl) gets from `/metrics`. With `--chaos` it stops,
//! restarts and removes services by path and still drains and exits 0 on
//! SIGTERM; with `--fail-critical-after` its `market-data` node escalates,
//! is restarted by the root and escalates again until its circuit breaker
//! opens, and the demo exits 2 by itself, naming the critical node and why
//! (`kubelet` does the same with `--kill-dependency-after`, watching
//! `/livez`). Every run checks that the
//! table the demo built from the lifecycle events agrees with the
//! supervisor's final snapshots. The process helpers are in `demo_process`.
//!
//! Real time on purpose: with `kubelet`, this is the only test of the
//! signal handling, and the only one of the demo's output. Nothing sleeps
//! for a fixed time: each step waits for what it needs (a line of the
//! demo's stdout, its exit, an answer of Prometheus) up to a generous
//! deadline, so a fast machine finishes in about the demo's own timings (the
//! breaker trips about 1 s in, the chaos task has stopped, restarted and
//! removed a service about 11 s in, the drain waits out the 2 s shutdown
//! timeout) and a slow one still passes. Unix only (it sends SIGTERM with
//! `kill`).

use tests::prometheus::{PrometheusServer, ScrapeConfig, Tool, http_get, promtool_check_metrics};
use tokio::time::Instant;

use crate::demo_process::{
    CRITICAL_FAILED, Demo, EXIT_MARGIN, PATIENCE, SHUTDOWN_TIMEOUT, assert_drained_truthfully,
    build_the_demo, final_metrics,
};

#[tokio::test]
async fn the_demo_drains_every_service_on_sigterm_and_exits_0() {
    let fleet = build_the_demo();
    let mut demo = Demo::start(&fleet, &[]);

    // Run at least until `price-poller`'s circuit breaker has tripped: by then
    // it has restarted four times.
    demo.wait_for_stdout("the circuit breaker to trip", |stdout| {
        stdout.contains("circuit breaker open").then_some(())
    })
    .await;
    assert!(
        demo.child.try_wait().expect("the demo's status").is_none(),
        "the demo exited before SIGTERM\n{}",
        demo.output()
    );

    let signalled = Instant::now();
    demo.terminate().await;
    let status = demo.wait_for_exit(SHUTDOWN_TIMEOUT + EXIT_MARGIN).await;
    let took = signalled.elapsed();

    let output = demo.output();
    let stdout = demo.stdout();
    assert!(status.success(), "the demo exited with {status}\n{output}");
    assert!(
        took >= SHUTDOWN_TIMEOUT,
        "the demo waited for the hung service's timeout ({took:?})\n{output}"
    );

    let metrics = final_metrics(&stdout);
    let metric = |key: &str| metrics.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
    for (key, expected) in [
        ("active_services", 0),
        // Four at the root, two in each node (nothing escalates here).
        ("spawned_total", 8),
        ("terminated_total", 8),
        ("circuit_breaker_trips", 1),
        ("failures_timeout", 1),
        ("failures_hung", 0),
    ] {
        assert_eq!(metric(key), Some(expected), "{key}\n{output}");
    }
    assert!(
        metric("restarts_total").is_some_and(|restarts| restarts >= 4),
        "price-poller alone restarted four times\n{output}"
    );
    let aborted = stdout
        .lines()
        .find_map(|line| line.strip_prefix("aborted at the shutdown timeout: "))
        .unwrap_or_else(|| panic!("no aborted list\n{output}"));
    assert_eq!(aborted, r#"["stubborn-worker"]"#, "{output}");
    assert_drained_truthfully(&stdout, &output);
}

#[tokio::test]
async fn the_demo_survives_its_chaos_task_and_drains_on_sigterm() {
    let fleet = build_the_demo();
    let mut demo = Demo::start(&fleet, &["--chaos"]);

    // The chaos task picks its calls from a fixed seed: the first ones to
    // succeed are a removal about 5 s in, a stop about 9 s and a restart
    // about 11 s in.
    let calls = ["stop", "restart", "remove"];
    demo.wait_for_stdout("a stop, a restart and a removal that succeeded", |stdout| {
        calls
            .iter()
            .all(|call| chaos_success(stdout, call).is_some())
            .then_some(())
    })
    .await;

    demo.terminate().await;
    let status = demo.wait_for_exit(SHUTDOWN_TIMEOUT + EXIT_MARGIN).await;
    let output = demo.output();
    let stdout = demo.stdout();
    assert!(status.success(), "the demo exited with {status}\n{output}");

    // What the chaos task says it did, the events say too.
    for call in calls {
        let (service, ok, lines) = chaos_success(&stdout, call).expect("seen before SIGTERM");
        let changes: Vec<&str> = event_changes(&lines, service).collect();
        let shown = match call {
            "stop" => {
                let reason = ok
                    .strip_prefix(" (terminated: ")
                    .and_then(|reason| reason.strip_suffix(')'))
                    .unwrap_or_else(|| panic!("a stop's `Ok` names the reason: {ok}"));
                changes.iter().any(|change| {
                    change.contains("→ terminated") && change.ends_with(&format!(": {reason}"))
                })
            }
            "restart" => changes
                .iter()
                .any(|change| change.ends_with("→ restarting")),
            _ => changes.contains(&"removed"),
        };
        assert!(
            shown,
            "the events do not show the {call} of {service} (Ok{ok}): {changes:?}\n{output}"
        );
    }
    assert_drained_truthfully(&stdout, &output);
}

#[tokio::test]
async fn the_demo_escalates_then_exits_2_naming_its_critical_node_when_it_fails_for_good() {
    let fleet = build_the_demo();
    let mut demo = Demo::start(&fleet, &["--fail-critical-after", "1"]);

    // No signal: from 1 s on every run of `market-data/market-feed` fails,
    // so each run of the `market-data` node trips its restart intensity and
    // escalates; the root restarts the node until its circuit breaker
    // opens, then drains and exits by itself.
    let status = demo.wait_for_exit(PATIENCE).await;
    let output = demo.output();
    let stdout = demo.stdout();
    assert_eq!(status.code(), Some(CRITICAL_FAILED), "{output}");
    assert!(
        demo.stderr().contains(
            "critical service `market-data` failed: circuit breaker open after 3 failures (max retries 2); \
             its last error: supervisor `market-data` escalated: restart intensity exceeded: \
             `market-data/market-feed` called for a restart beyond 2 in 10s"
        ),
        "{output}"
    );

    // The escalation, as the events tell it: the node's run fails with it,
    // the root runs the node again (fresh children), and it escalates again
    // until it terminates for good.
    let lines: Vec<&str> = stdout.lines().collect();
    let node: Vec<&str> = event_changes(&lines, "market-data").collect();
    let escalated = "running → backing off (error: supervisor `market-data` escalated: \
                     restart intensity exceeded: `market-data/market-feed` called for a restart beyond 2 in 10s)";
    let first = node
        .iter()
        .position(|change| *change == escalated)
        .unwrap_or_else(|| panic!("no escalation of market-data: {node:?}\n{output}"));
    let rerun = node[first..]
        .iter()
        .position(|change| *change == "restarting → running (run 2)")
        .unwrap_or_else(|| {
            panic!("market-data not run again after escalating: {node:?}\n{output}")
        });
    assert!(
        node[first + rerun..].contains(&escalated),
        "the second run of market-data escalated too: {node:?}\n{output}"
    );
    assert!(
        node.last()
            .is_some_and(|change| change.starts_with("running → terminated")),
        "market-data terminated for good last: {node:?}\n{output}"
    );
    // Each run of the node had fresh children.
    let spawned = event_changes(&lines, "market-data/market-feed")
        .filter(|change| *change == "spawned")
        .count();
    assert_eq!(spawned, 3, "{output}");
    assert_drained_truthfully(&stdout, &output);
}

#[tokio::test]
async fn promtool_accepts_what_curl_gets_from_the_demo() {
    let Some(promtool) = Tool::Promtool.require().unwrap() else {
        return;
    };
    let (mut demo, addr) = Demo::serving(&[]).await;
    // Restarts, failures and a tripped breaker in the registry first.
    demo.wait_for_stdout("the circuit breaker to trip", |stdout| {
        stdout.contains("circuit breaker open").then_some(())
    })
    .await;

    // What `curl -s ADDR/metrics` gets: no `Accept` header, the text format.
    let scrape = http_get(addr, "/metrics", &[])
        .await
        .unwrap_or_else(|err| panic!("cannot scrape the demo: {err}\n{}", demo.output()));
    assert_eq!(scrape.status, 200);
    assert_eq!(
        scrape.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        scrape
            .body
            .contains("supervisor_circuit_breaker_trips_total{service=\"price-poller\"} 1")
    );
    let lint = promtool_check_metrics(&promtool, &scrape.body).expect("promtool runs");
    assert!(
        lint.is_clean(),
        "`promtool check metrics` complained: {lint:?}\n{}",
        scrape.body
    );

    demo.stop_cleanly().await;
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_demo_and_sees_the_flaky_service_restart() {
    let Some(prometheus) = Tool::Prometheus.require().unwrap() else {
        return;
    };
    // Its `supervisor-http` surface; Prometheus asks for OpenMetrics.
    let (mut demo, addr) = Demo::serving(&[]).await;

    let server = PrometheusServer::start(&prometheus, &ScrapeConfig::new([addr]))
        .await
        .unwrap_or_else(|err| panic!("cannot start prometheus: {err}"));
    // `orders/order-consumer` is the demo's flaky service: it fails three
    // times. A nested service's label is its path.
    let query = r#"supervisor_restarts_total{service="orders/order-consumer"}"#;
    let samples = server
        .wait_for(query, PATIENCE, |samples| {
            samples.iter().any(|s| s.value > 0.0)
        })
        .await
        .unwrap_or_else(|err| {
            panic!(
                "prometheus never saw a restart: {err}\n{}\n{}",
                server.log(),
                demo.output()
            )
        });
    assert_eq!(samples.len(), 1, "{samples:?}");
    assert_eq!(
        samples[0].labels.get("job").map(String::as_str),
        Some("supervisor")
    );
    let up = server.query("up").await.unwrap();
    assert_eq!(up.iter().map(|s| s.value).collect::<Vec<_>>(), [1.0]);

    demo.stop_cleanly().await;
}

/// The chaos task's first `call` (`stop`, `restart`, `remove`) that
/// returned `Ok` (`<time>  chaos: <call> <service> → Ok<detail>`): its
/// service, its detail, and the demo's lines from the call's announcement
/// (`<time>  chaos: <call> <service>`) on.
fn chaos_success<'a>(stdout: &'a str, call: &str) -> Option<(&'a str, &'a str, Vec<&'a str>)> {
    let lines: Vec<&str> = stdout.lines().collect();
    let prefix = format!("chaos: {call} ");
    let (at, service, ok) = lines.iter().enumerate().find_map(|(at, line)| {
        let (_, rest) = line.split_once(&prefix)?;
        let (service, result) = rest.split_once(" → ")?;
        Some((at, service, result.strip_prefix("Ok")?))
    })?;
    let announced = format!("chaos: {call} {service}");
    let from = lines[..at]
        .iter()
        .rposition(|line| line.ends_with(&announced))?;
    Some((service, ok, lines[from..].to_vec()))
}

/// The changes in the event lines of `service` (its whole path) among
/// `lines` (`<time>  <service>  <change>`).
fn event_changes<'a>(lines: &[&'a str], service: &'a str) -> impl Iterator<Item = &'a str> {
    lines.iter().filter_map(move |line| {
        let (time, rest) = line.trim_start().split_once("  ")?;
        time.strip_suffix('s')?.parse::<f64>().ok()?;
        let change = rest.strip_prefix(service)?;
        // `orders`, not `orders/order-consumer`.
        change.starts_with(' ').then(|| change.trim_start())
    })
}
