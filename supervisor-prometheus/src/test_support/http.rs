//! A plain HTTP/1.1 `GET` over a tokio `TcpStream`: enough to scrape a
//! `/metrics` endpoint or call Prometheus' HTTP API, and nothing more.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How long one request may take, connection to last byte.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// A response read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code, such as 200.
    pub status: u16,
    /// Header names and values in the order received, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked and lossily decoded as UTF-8.
    pub body: String,
}

impl HttpResponse {
    /// The value of the first header named `name` (ASCII case-insensitive).
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_prometheus::test_support::HttpResponse;
    ///
    /// let response = HttpResponse {
    ///     status: 200,
    ///     headers: vec![("Content-Type".to_owned(), "text/plain".to_owned())],
    ///     body: String::new(),
    /// };
    /// assert_eq!(response.header("content-type"), Some("text/plain"));
    /// assert_eq!(response.header("allow"), None);
    /// ```
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Why an [`http_get`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum HttpError {
    /// Connecting, writing or reading failed.
    Io(io::Error),
    /// The exchange took longer than 10 seconds.
    TimedOut,
    /// The response is not HTTP/1.x as this client understands it.
    Malformed(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Io(error) => write!(f, "http request failed: {error}"),
            HttpError::TimedOut => write!(f, "http request timed out after {REQUEST_DEADLINE:?}"),
            HttpError::Malformed(why) => write!(f, "malformed http response: {why}"),
        }
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HttpError::Io(error) => Some(error),
            HttpError::TimedOut | HttpError::Malformed(_) => None,
        }
    }
}

/// Sends `GET <path_and_query> HTTP/1.1` to `addr` with `Connection: close`
/// and reads the whole response (fixed length, chunked or until close).
///
/// `path_and_query` is sent as is: percent-encode it first. Futures do
/// nothing unless polled.
///
/// # Errors
///
/// [`HttpError`] if the exchange fails, takes over 10 seconds or the response
/// cannot be parsed. Any status code is a success.
///
/// # Examples
///
/// ```no_run
/// use supervisor_prometheus::test_support::http_get;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let response = http_get("127.0.0.1:9898".parse()?, "/metrics").await?;
/// assert_eq!(response.status, 200);
/// # Ok(())
/// # }
/// ```
pub async fn http_get(addr: SocketAddr, path_and_query: &str) -> Result<HttpResponse, HttpError> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, io::Error>(raw)
    };
    let raw = timeout(REQUEST_DEADLINE, exchange)
        .await
        .map_err(|_elapsed| HttpError::TimedOut)?
        .map_err(HttpError::Io)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Result<HttpResponse, HttpError> {
    let malformed = |why: &str| HttpError::Malformed(why.to_owned());
    let head_end = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| malformed("no end of headers"))?;
    let head =
        std::str::from_utf8(&raw[..head_end]).map_err(|_| malformed("headers are not utf-8"))?;
    let body = &raw[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut status_parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (status_parts.next(), status_parts.next()) else {
        return Err(malformed("no status line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::Malformed(format!(
            "unexpected version `{version}`"
        )));
    }
    let status = code
        .parse()
        .map_err(|_| HttpError::Malformed(format!("bad status code `{code}`")))?;
    let headers = lines
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| HttpError::Malformed(format!("bad header line `{line}`")))?;
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect::<Result<Vec<_>, HttpError>>()?;
    let mut response = HttpResponse {
        status,
        headers,
        body: String::new(),
    };
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|value| value.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    response.body = String::from_utf8_lossy(&body).into_owned();
    Ok(response)
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, HttpError> {
    let malformed = |why: &str| HttpError::Malformed(format!("bad chunked body: {why}"));
    let mut decoded = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|window| window == b"\r\n")
            .ok_or_else(|| malformed("no chunk size line"))?;
        let size_line =
            std::str::from_utf8(&body[..line_end]).map_err(|_| malformed("size is not utf-8"))?;
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| malformed("size is not hexadecimal"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(decoded);
        }
        let chunk = body
            .get(..size)
            .ok_or_else(|| malformed("truncated chunk"))?;
        decoded.extend_from_slice(chunk);
        body = body
            .get(size + 2..)
            .ok_or_else(|| malformed("truncated chunk end"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_length_and_chunked_bodies_are_read() {
        let fixed =
            parse_response(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n").unwrap();
        assert_eq!((fixed.status, fixed.body.as_str()), (404, "no\n"));

        let chunked = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(chunked.body, "{\"a\":1}");
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            parse_response(b"hello"),
            Err(HttpError::Malformed(_))
        ));
        assert!(matches!(
            parse_response(b"SPDY/3 200 OK\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
    }
}
