//! `GET /metrics` (feature `prometheus`): the registry, in the format the
//! `Accept` header negotiates.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use supervisor_prometheus::prometheus_client::registry::Registry;
use supervisor_prometheus::{
    OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE, render, render_prometheus_text,
};

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// OpenMetrics 1.0.0.
    OpenMetrics,
    /// The Prometheus text format 0.0.4.
    Text,
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(registry): State<Arc<Registry>>, headers: HeaderMap) -> Response {
    let format = negotiate(headers.get_all(header::ACCEPT).iter());
    let (rendered, content_type) = match format {
        Format::OpenMetrics => (render(&registry), OPENMETRICS_CONTENT_TYPE),
        Format::Text => (
            render_prometheus_text(&registry),
            PROMETHEUS_TEXT_CONTENT_TYPE,
        ),
    };
    let vary = (header::VARY, HeaderValue::from_static("accept"));
    match rendered {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                vary,
            ],
            body,
        )
            .into_response(),
        // Only a custom metric of the host's can fail to encode.
        Err(std::fmt::Error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [vary],
            "a metric of the registry could not be encoded\n",
        )
            .into_response(),
    }
}

/// The format for `accept`, chosen as the official Go client
/// (`expfmt.NegotiateIncludingOpenMetrics`) chooses it: the media types in
/// order of their `q` (the first listed first among equals), the first one
/// this server offers wins: `application/openmetrics-text` with no version,
/// `1.0.0` or `0.0.1`, or `text/plain` with no version or `0.0.4`. Text
/// otherwise, and for no header at all. A `q` of 0 refuses a type.
fn negotiate<'a>(accept: impl Iterator<Item = &'a HeaderValue>) -> Format {
    let mut offers: Vec<(f32, Option<Format>)> = accept
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(media_range)
        .collect();
    // Stable: among equal weights, the order of the header.
    offers.sort_by(|a, b| b.0.total_cmp(&a.0));
    offers
        .into_iter()
        .find_map(|(_, format)| format)
        .unwrap_or(Format::Text)
}

/// One media range of an `Accept` header: its weight, and the format it
/// names if we offer it. `None` for a weight of 0 or a malformed one.
fn media_range(range: &str) -> Option<(f32, Option<Format>)> {
    let mut parts = range.split(';');
    let media_type = parts.next()?.trim().to_ascii_lowercase();
    let mut version = None;
    let mut weight = 1.0_f32;
    for parameter in parts {
        let Some((name, value)) = parameter.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        match name.trim().to_ascii_lowercase().as_str() {
            "version" => version = Some(value.to_owned()),
            "q" => {
                weight = value
                    .parse()
                    .ok()
                    .filter(|q: &f32| (0.0..=1.0).contains(q))?
            }
            _ => {}
        }
    }
    if weight == 0.0 {
        return None;
    }
    let format = match (media_type.as_str(), version.as_deref()) {
        ("application/openmetrics-text", None | Some("1.0.0" | "0.0.1")) => {
            Some(Format::OpenMetrics)
        }
        ("text/plain", None | Some("0.0.4")) => Some(Format::Text),
        _ => None,
    };
    Some((weight, format))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format_for(accept: &[&str]) -> Format {
        let values: Vec<HeaderValue> = accept
            .iter()
            .map(|value| HeaderValue::from_str(value).unwrap())
            .collect();
        negotiate(values.iter())
    }

    #[test]
    fn what_prometheus_sends_gets_openmetrics() {
        // Prometheus 2.x and 3.x scrape with these (3.x adds `escaping`).
        for accept in [
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            "application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1",
            "application/openmetrics-text; version=0.0.1,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            "Application/OpenMetrics-Text",
        ] {
            assert_eq!(format_for(&[accept]), Format::OpenMetrics, "{accept}");
        }
    }

    #[test]
    fn everything_else_gets_the_text_format() {
        for accept in [
            &[][..],
            &["*/*"],
            &["text/plain"],
            &["text/plain;version=0.0.4"],
            &["text/html,application/xhtml+xml"],
            &["application/openmetrics-text;version=2.0.0"],
            &["application/openmetrics-text;q=0"],
            &["application/openmetrics-text;q=0.2,text/plain;q=0.9"],
            &["text/plain;q=0.5", "application/openmetrics-text;q=0.4"],
        ] {
            assert_eq!(format_for(accept), Format::Text, "{accept:?}");
        }
    }

    #[test]
    fn weights_decide_and_ties_keep_the_header_order() {
        assert_eq!(
            format_for(&["text/plain;q=0.3,application/openmetrics-text;q=0.6"]),
            Format::OpenMetrics
        );
        assert_eq!(
            format_for(&["application/openmetrics-text,text/plain"]),
            Format::OpenMetrics
        );
        assert_eq!(
            format_for(&["text/plain,application/openmetrics-text"]),
            Format::Text
        );
        // A malformed weight drops its range, not the header.
        assert_eq!(
            format_for(&["text/plain;q=x,application/openmetrics-text"]),
            Format::OpenMetrics
        );
    }
}
