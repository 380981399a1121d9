//! The metric-prefix grammar every adapter shares: [`validate_prefix`] and
//! [`InvalidPrefix`].

use std::fmt;

/// A metric name prefix that does not follow the metric name grammar shared
/// by Prometheus, OpenMetrics and the `metrics` facade's exporters.
///
/// Returned by [`validate_prefix`], and by the adapters' constructors that
/// take a prefix.
///
/// # Examples
///
/// ```
/// use supervisor_metrics::validate_prefix;
///
/// let error = validate_prefix("9lives").unwrap_err();
/// assert_eq!(error.prefix(), "9lives");
/// assert_eq!(
///     error.to_string(),
///     "invalid metric prefix `9lives`: expected an ASCII letter or `_` followed by ASCII letters, \
///      digits or `_`, not starting with `__`"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPrefix {
    prefix: String,
}

impl InvalidPrefix {
    /// The rejected prefix.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(supervisor_metrics::validate_prefix("").unwrap_err().prefix(), "");
    /// ```
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl fmt::Display for InvalidPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid metric prefix `{}`: expected an ASCII letter or `_` followed by ASCII letters, \
             digits or `_`, not starting with `__`",
            self.prefix
        )
    }
}

impl std::error::Error for InvalidPrefix {}

/// Checks that `prefix` can start a metric name: an ASCII letter or `_`, then
/// ASCII letters, digits or `_`, and not `__` (reserved by Prometheus).
///
/// # Errors
///
/// [`InvalidPrefix`] naming the rejected prefix.
///
/// # Examples
///
/// ```
/// use supervisor_metrics::validate_prefix;
///
/// assert!(validate_prefix("supervisor").is_ok());
/// assert!(validate_prefix("__reserved").is_err());
/// ```
pub fn validate_prefix(prefix: &str) -> Result<(), InvalidPrefix> {
    let mut chars = prefix.chars();
    let valid_start =
        matches!(chars.next(), Some(first) if first.is_ascii_alphabetic() || first == '_');
    let valid_rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid_start && valid_rest && !prefix.starts_with("__") {
        return Ok(());
    }
    Err(InvalidPrefix {
        prefix: prefix.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_follow_the_metric_name_grammar() {
        for valid in ["supervisor", "_x", "a1_b2", "A"] {
            assert_eq!(validate_prefix(valid), Ok(()), "{valid}");
        }
        for invalid in ["", "1a", "__reserved", "a-b", "a:b", "a b", "é"] {
            assert!(validate_prefix(invalid).is_err(), "{invalid}");
        }
    }
}
