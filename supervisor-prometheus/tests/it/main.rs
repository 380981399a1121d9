//! Behaviour tests of supervisor-prometheus: one test binary, one module per
//! subject, shared helpers in `support`.

mod exposition;
mod promtool;
mod real_prometheus;
mod server;
mod support;
