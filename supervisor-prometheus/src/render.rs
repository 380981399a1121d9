//! Rendering a registry as text: OpenMetrics (what a Prometheus server asks
//! for) and the classic Prometheus text format (what `curl` users and
//! `promtool check metrics` read).

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;

/// The `Content-Type` of the OpenMetrics text exposition produced by [`render`].
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `Content-Type` of the Prometheus text format (version 0.0.4) produced by
/// [`render_prometheus_text`].
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Renders every metric of `registry` in the OpenMetrics text format, ending
/// with `# EOF`.
///
/// This is what a Prometheus server scraping [`OPENMETRICS_CONTENT_TYPE`]
/// expects: counter families are named without `_total` in `# TYPE` lines,
/// their samples with it; label values are escaped (`\\`, `\"`, `\n`).
///
/// # Errors
///
/// The [`std::fmt::Error`] of a custom metric's encoder; the sink's own
/// metrics never fail to encode.
///
/// # Examples
///
/// ```
/// use prometheus_client::registry::Registry;
/// use supervisor_metrics::MetricsSink;
/// use supervisor_prometheus::{PrometheusSink, render};
///
/// let mut registry = Registry::default();
/// let sink = PrometheusSink::register(&mut registry);
/// sink.service_spawned(&sink.resolve("feed"));
///
/// let text = render(&registry)?;
/// assert!(text.contains("# HELP supervisor_spawned Services spawned; restarts are not spawns.\n"));
/// assert!(text.contains("# TYPE supervisor_spawned counter\n"));
/// assert!(text.contains("supervisor_spawned_total 1\n"));
/// assert!(text.ends_with("# EOF\n"));
/// # Ok::<(), std::fmt::Error>(())
/// ```
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut buffer = String::new();
    text::encode(&mut buffer, registry)?;
    Ok(buffer)
}

/// Renders every metric of `registry` in the Prometheus text format
/// (version 0.0.4), for tools that do not read OpenMetrics, such as
/// `promtool check metrics`.
///
/// Same series and values as [`render`]; the differences are the format's:
/// counter families are named with `_total`, units go in the names only, and
/// there is no `# EOF`.
///
/// # Errors
///
/// The [`std::fmt::Error`] of a custom metric's encoder; the sink's own
/// metrics never fail to encode.
///
/// # Examples
///
/// ```
/// use prometheus_client::registry::Registry;
/// use supervisor_metrics::MetricsSink;
/// use supervisor_prometheus::{PrometheusSink, render_prometheus_text};
///
/// let mut registry = Registry::default();
/// let sink = PrometheusSink::register(&mut registry);
/// sink.service_spawned(&sink.resolve("feed"));
///
/// let text = render_prometheus_text(&registry)?;
/// assert!(text.contains("# TYPE supervisor_spawned_total counter\n"));
/// assert!(text.contains("supervisor_spawned_total 1\n"));
/// # Ok::<(), std::fmt::Error>(())
/// ```
pub fn render_prometheus_text(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut buffer = String::new();
    prometheus_text::encode(&mut buffer, registry)?;
    Ok(buffer)
}
