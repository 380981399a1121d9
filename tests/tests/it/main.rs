//! The workspace's behaviour tests: one binary, one module per area.

mod holes;
mod policy;
mod support;
