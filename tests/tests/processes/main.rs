//! Tests of the real demo process (`cargo run --example fleet`): its
//! drain under SIGTERM, its exit codes, a real Prometheus scraping it,
//! `promtool` on its `/metrics`, and the kubelet played against it as
//! `deploy/k8s/` says.
//!
//! A test binary of its own, apart from `it`: these tests wait for a real
//! process in real time, and the CPU-bound property tests of `it` running
//! beside them on a small machine would stretch their timings.

// The wall-clock ban in clippy.toml is for library code; these tests
// measure real time on purpose.
#![allow(clippy::disallowed_methods)]

#[cfg(unix)]
mod demo;
#[cfg(unix)]
mod demo_process;
#[cfg(unix)]
mod kubelet;
