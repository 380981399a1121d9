//! Behaviour tests of supervisor-prometheus: one test binary, one module per
//! subject; the helpers (the event script, the exposition reader, promtool, a
//! real Prometheus, an HTTP client) are the workspace's shared test support,
//! the `tests` crate.

mod exposition;
mod promtool;
mod real_prometheus;
mod server;
