//! `promtool check metrics` lints the exposition of a chaotic run.
//!
//! promtool (2.x) reads the Prometheus text format 0.0.4 only, so it is fed
//! [`render_prometheus_text`]: the same registry, series and values as the
//! OpenMetrics rendering (checked in `exposition`), whose own parsing by a
//! real Prometheus is checked in `real_prometheus`.

use prometheus_client::registry::Registry;
use supervisor_prometheus::{PrometheusSink, render_prometheus_text};
use tests::prometheus::{Tool, promtool_check_metrics};
use tests::sink::{ByName, chaotic_run};

#[test]
fn promtool_accepts_the_exposition_of_a_chaotic_run() -> anyhow::Result<()> {
    let Some(promtool) = Tool::Promtool.require()? else {
        return Ok(());
    };
    let mut registry = Registry::default();
    let sink = PrometheusSink::register(&mut registry);
    let sink = ByName::new(&sink);
    chaotic_run(&sink);
    let exposition = render_prometheus_text(&registry)?;

    let output = promtool_check_metrics(&promtool, &exposition)?;
    assert!(
        output.is_clean(),
        "`promtool check metrics` complained (exit code {:?}):\nstdout:\n{}\nstderr:\n{}\ninput:\n{exposition}",
        output.code,
        output.stdout,
        output.stderr
    );
    Ok(())
}

#[test]
fn promtool_rejects_a_bad_exposition() -> anyhow::Result<()> {
    // The control: proves the check above can fail.
    let Some(promtool) = Tool::Promtool.require()? else {
        return Ok(());
    };
    let output = promtool_check_metrics(&promtool, "# TYPE requests counter\nrequests 1\n")?;
    assert!(!output.is_clean(), "{output:?}");
    assert!(output.stdout.contains("no help text") || output.stderr.contains("no help text"));
    Ok(())
}
