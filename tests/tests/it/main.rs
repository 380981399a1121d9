//! The workspace's behaviour tests: one binary, one module per area.

// The wall-clock ban in clippy.toml is for library code; the real-time smoke
// and soak tests measure real time on purpose.
#![allow(clippy::disallowed_methods)]

mod chaos;
mod contract;
mod control;
mod drain_race;
mod error_values;
mod events;
mod holes;
mod otp;
mod policy;
mod prometheus;
mod readiness;
mod smoke;
#[cfg(target_os = "linux")]
mod soak;
mod strategy;
mod supervision_props;
mod support;
mod tree;
mod watchdog;
