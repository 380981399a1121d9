//! Behaviour tests of the `lifecycle` crate, in one test binary.

mod examples;
mod intensity;
mod properties;
mod reasons;
#[cfg(feature = "serde")]
mod serde_json_format;
mod support;
mod table;
