//! Behaviour tests of supervisor-prometheus: one test binary, one module per
//! subject; the helpers (the event script, the exposition reader, promtool)
//! are the workspace's shared test support, the `tests` crate. A real
//! Prometheus scrapes the registry in `supervisor-http`'s tests, which serve
//! it over HTTP.

mod exposition;
mod promtool;
