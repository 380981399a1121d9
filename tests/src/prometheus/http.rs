//! HTTP/1.1 on `ureq`, run on tokio's blocking pool: a `GET` to scrape a
//! `/metrics` endpoint or call Prometheus' HTTP API, any request with headers
//! and a body, and a Server-Sent Events reader, from an async test.

use std::fmt;
use std::io::BufReader;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;
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

/// Sends `method http://{addr}{path}` with `headers` and `body` (sent with
/// its `Content-Length` whatever the method, `GET` included), and reads the
/// whole response, as [`http_get`] does.
///
/// # Errors
///
/// [`HttpError`] if the exchange fails or takes over 10 seconds.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<HttpResponse, HttpError> {
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for &(name, value) in headers {
        request = request.header(name, value);
    }
    let request = request
        .body(body.unwrap_or_default())
        .map_err(|error| HttpError::Request(ureq::Error::Http(error)))?;
    tokio::task::spawn_blocking(move || {
        let agent = agent(Some(REQUEST_DEADLINE));
        read_whole(agent.run(request)?)
    })
    .await
    .map_err(HttpError::Task)?
    .map_err(HttpError::Request)
}

fn agent(deadline: Option<Duration>) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .allow_non_standard_methods(true)
        .timeout_global(deadline)
        .build()
        .into()
}

fn blocking_get(url: &str, query: Vec<(String, String)>) -> Result<HttpResponse, ureq::Error> {
    read_whole(
        agent(Some(REQUEST_DEADLINE))
            .get(url)
            .query_pairs(query)
            .call()?,
    )
}

fn read_whole(mut response: ureq::http::Response<ureq::Body>) -> Result<HttpResponse, ureq::Error> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.body_mut().read_to_vec()?;
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// One Server-Sent Event, as a browser's `EventSource` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// Its `event:` field; `None` for the default type, `message`.
    pub event: Option<String>,
    /// Its `id:` field.
    pub id: Option<String>,
    /// Its `data:` lines, joined with newlines.
    pub data: String,
}

/// A Server-Sent Events stream being read by a thread of tokio's blocking
/// pool, from [`sse_connect`].
#[derive(Debug)]
pub struct SseStream {
    /// The status code.
    pub status: u16,
    /// The headers received.
    pub headers: HeaderMap,
    /// The body of a response that is not `200`, read to its end.
    pub body: String,
    events: mpsc::UnboundedReceiver<SseEvent>,
}

impl SseStream {
    /// The next event; `None` once the stream ended, failed, or passed its
    /// deadline. Comments (keep-alives) are skipped.
    pub async fn next(&mut self) -> Option<SseEvent> {
        self.events.recv().await
    }
}

/// Opens `GET http://{addr}{path}` as an event stream (`Accept:
/// text/event-stream`) and returns once the response head is in; its events
/// are then read as they come, for at most `deadline` from the start.
/// Dropping the stream stops the reading at the next event.
///
/// # Errors
///
/// [`HttpError`] if connecting or receiving the response head fails.
pub async fn sse_connect(
    addr: SocketAddr,
    path: &str,
    deadline: Duration,
) -> Result<SseStream, HttpError> {
    let url = format!("http://{addr}{path}");
    let (head, received) = tokio::sync::oneshot::channel();
    let (sender, events) = mpsc::unbounded_channel();
    tokio::task::spawn_blocking(move || {
        let response = agent(Some(deadline))
            .get(&url)
            .header("Accept", "text/event-stream")
            .call();
        let mut response = match response {
            Ok(response) => response,
            Err(error) => {
                let _ = head.send(Err(error));
                return;
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if status != 200 {
            let body = response.body_mut().read_to_string();
            let _ = head.send(body.map(|body| (status, headers, body)));
            return;
        }
        if head.send(Ok((status, headers, String::new()))).is_err() {
            return;
        }
        read_events(BufReader::new(response.into_body().into_reader()), &sender);
    });
    let (status, headers, body) = received
        .await
        .map_err(|_| HttpError::Request(ureq::Error::Other("the reader is gone".into())))?
        .map_err(HttpError::Request)?;
    Ok(SseStream {
        status,
        headers,
        body,
        events,
    })
}

/// Reads events from `body` into `events` until it ends, fails, or nobody
/// listens.
fn read_events(body: impl std::io::BufRead, events: &mpsc::UnboundedSender<SseEvent>) {
    let mut event = SseEvent {
        event: None,
        id: None,
        data: String::new(),
    };
    let mut has_data = false;
    for line in body.lines() {
        let Ok(line) = line else {
            return;
        };
        if line.is_empty() {
            if has_data || event.event.is_some() || event.id.is_some() {
                let done = std::mem::replace(
                    &mut event,
                    SseEvent {
                        event: None,
                        id: None,
                        data: String::new(),
                    },
                );
                has_data = false;
                if events.send(done).is_err() {
                    return;
                }
            }
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event.event = Some(value.to_owned()),
            "id" => event.id = Some(value.to_owned()),
            "data" => {
                if has_data {
                    event.data.push('\n');
                }
                event.data.push_str(value);
                has_data = true;
            }
            // A comment (`:…`) or a field we do not read (`retry`).
            _ => {}
        }
    }
}
