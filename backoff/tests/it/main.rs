//! Behaviour tests of the `supervisor-backoff` crate: properties checked against reference models.
//!
//! One test binary (matklad, "Delete Cargo Integration Tests"); the models and
//! the strategies live in `support`. The number of proptest cases comes from
//! `PROPTEST_CASES` (256 when unset).

mod breaker;
mod config;
mod delay;
mod jitter;
#[cfg(feature = "serde")]
mod serde;
mod state;
mod support;
