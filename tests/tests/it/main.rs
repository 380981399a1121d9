//! The workspace's behaviour tests: one binary, one module per area.

mod chaos;
mod holes;
mod policy;
mod soak;
mod support;
