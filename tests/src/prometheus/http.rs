//! An HTTP/1.1 `GET` on `ureq`, run on tokio's blocking pool: enough to scrape
//! a `/metrics` endpoint or call Prometheus' HTTP API from an async test.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use ureq::http::HeaderMap;

/// How long one request may take, connection to last byte.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// A response read to its end.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code, such as 200.
    pub status: u16,
    /// The headers received.
    pub headers: HeaderMap,
    /// The body, lossily decoded as UTF-8.
    pub body: String,
}

impl HttpResponse {
    /// The value of the first header named `name` (ASCII case-insensitive),
    /// if it is visible ASCII.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

/// Why an [`http_get`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum HttpError {
    /// The request failed: connecting, timing out after 10 seconds, reading
    /// or parsing the response.
    Request(ureq::Error),
    /// The blocking task running the request panicked or was cancelled.
    Task(tokio::task::JoinError),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Request(error) => write!(f, "http request failed: {error}"),
            HttpError::Task(error) => write!(f, "http request task failed: {error}"),
        }
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HttpError::Request(error) => Some(error),
            HttpError::Task(error) => Some(error),
        }
    }
}

/// Sends `GET http://{addr}{path}` with the `query` pairs percent-encoded,
/// and reads the whole response. Any status code is a success; proxies from
/// the environment are ignored (the targets are on loopback).
///
/// The request blocks one thread of tokio's blocking pool, so the runtime
/// keeps serving while it waits (a server under test may run on the same
/// current-thread runtime). Futures do nothing unless polled; must be polled
/// within a tokio runtime.
///
/// # Errors
///
/// [`HttpError`] if the exchange fails or takes over 10 seconds.
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    query: &[(&str, &str)],
) -> Result<HttpResponse, HttpError> {
    let url = format!("http://{addr}{path}");
    let query: Vec<(String, String)> = query
        .iter()
        .map(|&(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || blocking_get(&url, query))
        .await
        .map_err(HttpError::Task)?
        .map_err(HttpError::Request)
}

fn blocking_get(url: &str, query: Vec<(String, String)>) -> Result<HttpResponse, ureq::Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(REQUEST_DEADLINE))
        .build()
        .into();
    let mut response = agent.get(url).query_pairs(query).call()?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.body_mut().read_to_vec()?;
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
