//! The catalogue of series every adapter exports: one base name and one help
//! text per series, so back-ends agree on what they publish.
//!
//! Names are bare: an adapter adds its prefix (`supervisor` by default) and
//! the suffixes its format wants (`_total` for counters, `_seconds` for the
//! unit).
//!
//! # Examples
//!
//! ```
//! use supervisor_metrics::series;
//!
//! let full_name = format!("supervisor_{}_total", series::RESTARTS.name);
//! assert_eq!(full_name, "supervisor_restarts_total");
//! assert!(!series::RESTARTS.help.ends_with('.'));
//! ```

/// One exported series: its bare name and its help text (no trailing period;
/// Prometheus' encoders add one).
///
/// # Examples
///
/// ```
/// assert_eq!(supervisor_metrics::series::SPAWNED.name, "spawned");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Series {
    /// The bare name, without prefix or suffix.
    pub name: &'static str,
    /// What the series counts or measures.
    pub help: &'static str,
}

/// Counter, label `service`.
pub const RESTARTS: Series = Series {
    name: "restarts",
    help: "Runs of a service started after its first run (restarts after a failure or a clean exit)",
};

/// Gauge, no label.
pub const ACTIVE_SERVICES: Series = Series {
    name: "active_services",
    help: "Services spawned and not yet terminated",
};

/// Counter, no label.
pub const SPAWNED: Series = Series {
    name: "spawned",
    help: "Services spawned; restarts are not spawns",
};

/// Counter, labels `service`, `reason`.
pub const TERMINATED: Series = Series {
    name: "terminated",
    help: "Services that reached the terminated phase, by termination reason",
};

/// Counter, labels `service`, `kind`.
pub const FAILURES: Series = Series {
    name: "failures",
    help: "Failed runs of a service, by kind: error, panic or timeout (aborted at shutdown)",
};

/// Counter, label `service`.
pub const CIRCUIT_BREAKER_TRIPS: Series = Series {
    name: "circuit_breaker_trips",
    help: "Circuit breakers that opened: the service is not restarted again",
};

/// Histogram in seconds, label `service`.
pub const SERVICE_UPTIME: Series = Series {
    name: "service_uptime",
    help: "Cumulative time a service spent running over all its runs, observed when it terminates",
};

/// Gauge, labels `service`, `phase`.
pub const SERVICE_PHASE: Series = Series {
    name: "service_phase",
    help: "Current lifecycle phase of a service: 1 for the current phase, 0 for the others",
};

/// Gauge in seconds, label `service`.
pub const BACKOFF_DELAY: Series = Series {
    name: "backoff_delay",
    help: "Delay before the last scheduled restart of a service",
};
