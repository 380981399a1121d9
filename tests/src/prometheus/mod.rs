//! Prometheus in tests (feature `prometheus`): find `promtool` and
//! `prometheus`, lint an exposition with `promtool check metrics`, run a real
//! Prometheus server scraping a target, query its HTTP API, and an HTTP
//! client (requests, and a Server-Sent Events reader).
//!
//! The helpers spawn processes, write temporary folders and poll with real
//! time, each wait bounded by a deadline.
//!
//! # Where the tools come from
//!
//! Both binaries ship in Debian's `prometheus` package;
//! `supervisor-prometheus/fetch-prometheus.sh` unpacks it (without installing
//! or starting the daemon) into `target/tools/prometheus/` of the workspace,
//! whatever `CARGO_TARGET_DIR` says. [`Tool::locate`] then looks, in order, at:
//!
//! 1. the environment variable [`Tool::env_var`] (`PROMTOOL`, `PROMETHEUS`),
//!    which must then name an existing file;
//! 2. `$PROMETHEUS_TOOLS_DIR/usr/bin/<tool>` when that variable is set (the
//!    script's destination override);
//! 3. `<workspace>/target/tools/prometheus/usr/bin/<tool>` (the script's
//!    default destination);
//! 4. every folder of `PATH`.
//!
//! From 2 on, the first executable file of that name wins (`which`).
//!
//! [`Tool::require`] adds the policy for a missing tool: an error when
//! `CI=true`; outside CI an error too, unless [`SKIP_ENV_VAR`]
//! (`SUPERVISOR_SKIP_PROMTOOL=1`) asks to skip, in which case it returns
//! `Ok(None)` and says so on stderr. A missing tool is never a silent skip.

mod http;
mod server;
mod tools;

pub use self::http::{
    HttpError, HttpResponse, SseEvent, SseStream, http_get, http_request, sse_connect,
};
pub use self::server::{PrometheusError, PrometheusServer, Sample, ScrapeConfig};
pub use self::tools::{CommandOutput, SKIP_ENV_VAR, Tool, ToolNotFound, promtool_check_metrics};
