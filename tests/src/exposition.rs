//! Reading a text exposition (Prometheus text 0.0.4 or OpenMetrics) back:
//! its sample lines, the value of one series, the sum of a family.
//!
//! A sample line is `series value`, where `series` is the metric name and its
//! labels exactly as rendered (`name{label="value",...}`): look-ups compare
//! that text, so a test also checks the label order and escaping it expects.
//! Values stay text where a test compares them (`"1"` and `"1.0"` differ in
//! the exposition) and are parsed only to add them up.

/// The sample lines of an exposition: every line that is neither empty nor a
/// `#` comment (`# HELP`, `# TYPE`, `# UNIT`, `# EOF`).
#[must_use]
pub fn samples(exposition: &str) -> Vec<&str> {
    exposition
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
}

/// The value, as rendered, of the sample whose series is exactly `series`
/// (`name{label="value",...}`), if there is one.
#[must_use]
pub fn value<'a>(exposition: &'a str, series: &str) -> Option<&'a str> {
    samples(exposition)
        .into_iter()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
}

/// The sum of the values of every sample of `family`: the series named
/// exactly `family`, with or without labels (so `foo` does not include
/// `foo_total` or `foo_bucket`).
///
/// # Panics
///
/// If a sample of the family has a value that is not a number.
#[must_use]
pub fn sum_of(exposition: &str, family: &str) -> f64 {
    samples(exposition)
        .into_iter()
        .filter_map(|line| {
            let rest = line.strip_prefix(family)?;
            let (labels, value) = rest.rsplit_once(' ')?;
            (labels.is_empty() || labels.starts_with('{')).then_some(value)
        })
        .map(|value| {
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("`{value}` of {family} is not a number"))
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP a_total Things.\n# TYPE a_total counter\n\
        a_total{service=\"x\"} 2\na_total{service=\"y y\"} 3\na_total_extra 100\n\
        b 1.0\n\n# EOF\n";

    #[test]
    fn samples_skip_comments_and_blank_lines() {
        assert_eq!(samples(TEXT).len(), 4);
        assert!(samples(TEXT).iter().all(|line| !line.starts_with('#')));
    }

    #[test]
    fn a_value_is_found_by_its_exact_series() {
        assert_eq!(value(TEXT, "a_total{service=\"x\"}"), Some("2"));
        assert_eq!(value(TEXT, "a_total{service=\"y y\"}"), Some("3"));
        assert_eq!(value(TEXT, "b"), Some("1.0"));
        assert_eq!(value(TEXT, "a_total"), None);
        assert_eq!(value(TEXT, "a_total{service=\"z\"}"), None);
    }

    #[test]
    fn a_family_sums_its_own_series_only() {
        assert_eq!(sum_of(TEXT, "a_total"), 5.0);
        assert_eq!(sum_of(TEXT, "b"), 1.0);
        assert_eq!(sum_of(TEXT, "c"), 0.0);
    }
}
