//! A real Prometheus server in a child process, scraping given targets, and a
//! client for its instant-query API.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tokio::time::Instant;

use super::http::{HttpError, http_get};

/// How long Prometheus may take to answer `/-/ready` after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause between two polls (readiness, queries).
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Attempts at starting Prometheus: the free port picked for its web listener
/// may be taken by someone else before Prometheus binds it.
const START_ATTEMPTS: u32 = 3;

/// What Prometheus scrapes: one job of static targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeConfig {
    /// The `job` label of the scraped series.
    pub job_name: String,
    /// The `host:port` targets, scraped at `/metrics`.
    pub targets: Vec<SocketAddr>,
    /// Scrape interval, also used as the scrape timeout; Prometheus rejects
    /// values under one millisecond.
    pub scrape_interval: Duration,
}

impl ScrapeConfig {
    /// Job `supervisor`, the given targets, a one-second scrape interval.
    #[must_use]
    pub fn new(targets: impl IntoIterator<Item = SocketAddr>) -> Self {
        ScrapeConfig {
            job_name: "supervisor".to_owned(),
            targets: targets.into_iter().collect(),
            scrape_interval: Duration::from_secs(1),
        }
    }

    /// The `prometheus.yml` for this configuration.
    #[must_use]
    pub fn to_yaml(&self) -> String {
        let interval = format!("{}ms", self.scrape_interval.as_millis());
        let job_name = self.job_name.replace('\'', "''");
        let mut yaml = format!(
            "global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n  evaluation_interval: {interval}\n\
             scrape_configs:\n  - job_name: '{job_name}'\n    static_configs:\n      - targets:\n"
        );
        for target in &self.targets {
            // Writing to a `String` cannot fail.
            let _ = writeln!(yaml, "          - '{target}'");
        }
        yaml
    }
}

/// One series of an instant-query result.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels, `__name__` included.
    pub labels: BTreeMap<String, String>,
    /// The sample value (`NaN` and infinities included).
    pub value: f64,
}

/// Why starting or querying Prometheus failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum PrometheusError {
    /// Preparing the data folder, the configuration or the process failed.
    Io {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// Prometheus exited before it was ready.
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// Its log (stderr).
        log: String,
    },
    /// Prometheus did not report ready in time.
    NotReady {
        /// Its log (stderr) so far.
        log: String,
    },
    /// A request to the HTTP API failed.
    Http(HttpError),
    /// The HTTP API answered with an error or with something else than a
    /// vector.
    Api {
        /// The HTTP status code.
        status: u16,
        /// The response body.
        body: String,
    },
    /// [`PrometheusServer::wait_for`] ran out of time.
    TimedOut {
        /// The query polled.
        query: String,
        /// The last result seen.
        last: Vec<Sample>,
    },
}

impl fmt::Display for PrometheusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrometheusError::Io { context, source } => write!(f, "{context}: {source}"),
            PrometheusError::Exited { status, log } => {
                write!(
                    f,
                    "prometheus exited before it was ready ({status}); its log:\n{log}"
                )
            }
            PrometheusError::NotReady { log } => {
                write!(
                    f,
                    "prometheus was not ready after {READY_TIMEOUT:?}; its log:\n{log}"
                )
            }
            PrometheusError::Http(error) => write!(f, "prometheus api: {error}"),
            PrometheusError::Api { status, body } => {
                write!(f, "prometheus api answered {status}: {body}")
            }
            PrometheusError::TimedOut { query, last } => {
                write!(
                    f,
                    "query `{query}` did not reach the expected result in time; last result: {last:?}"
                )
            }
        }
    }
}

impl std::error::Error for PrometheusError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PrometheusError::Io { source, .. } => Some(source),
            PrometheusError::Http(error) => Some(error),
            PrometheusError::Exited { .. }
            | PrometheusError::NotReady { .. }
            | PrometheusError::Api { .. }
            | PrometheusError::TimedOut { .. } => None,
        }
    }
}

impl From<HttpError> for PrometheusError {
    fn from(error: HttpError) -> Self {
        PrometheusError::Http(error)
    }
}

/// A `prometheus` server running as a child process on `127.0.0.1`, with its
/// own temporary data folder.
///
/// Dropping it kills the process and deletes the folder.
#[derive(Debug)]
pub struct PrometheusServer {
    child: Child,
    dir: TempDir,
    api_addr: SocketAddr,
}

impl PrometheusServer {
    /// Starts `binary` with a configuration written from `config`, its web
    /// listener on a free port of `127.0.0.1`, and waits until `/-/ready`
    /// answers 200 (at most 30 seconds).
    ///
    /// Futures do nothing unless polled; must be polled within a tokio
    /// runtime with the time driver, in real (not paused) time.
    ///
    /// # Errors
    ///
    /// [`PrometheusError`] if the files cannot be written, the process cannot
    /// be started, exits early (three attempts, in case the port was taken) or
    /// is not ready in time.
    pub async fn start(binary: &Path, config: &ScrapeConfig) -> Result<Self, PrometheusError> {
        let mut attempt = 1;
        loop {
            match Self::start_once(binary, config).await {
                Err(PrometheusError::Exited { .. }) if attempt < START_ATTEMPTS => attempt += 1,
                outcome => return outcome,
            }
        }
    }

    async fn start_once(binary: &Path, config: &ScrapeConfig) -> Result<Self, PrometheusError> {
        let io = |context| move |source| PrometheusError::Io { context, source };
        let dir = tempfile::Builder::new()
            .prefix("supervisor-prometheus-")
            .tempdir()
            .map_err(io("cannot create a temporary folder"))?;
        let config_path = dir.path().join("prometheus.yml");
        fs::write(&config_path, config.to_yaml()).map_err(io("cannot write prometheus.yml"))?;
        let log = File::create(dir.path().join("prometheus.log"))
            .map_err(io("cannot create the log file"))?;
        let api_addr = free_loopback_port().map_err(io("cannot find a free port"))?;
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={api_addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(io("cannot start prometheus"))?;
        // From here on, dropping `server` kills the child and removes `dir`.
        let mut server = PrometheusServer {
            child,
            dir,
            api_addr,
        };
        server.wait_until_ready().await?;
        Ok(server)
    }

    async fn wait_until_ready(&mut self) -> Result<(), PrometheusError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    return Err(PrometheusError::Exited {
                        status,
                        log: self.log(),
                    });
                }
                Ok(None) => {}
                Err(source) => {
                    return Err(PrometheusError::Io {
                        context: "cannot poll the prometheus process",
                        source,
                    });
                }
            }
            if let Ok(response) = http_get(self.api_addr, "/-/ready", &[]).await {
                if response.status == 200 {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(PrometheusError::NotReady { log: self.log() });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The address of the web UI and HTTP API.
    #[must_use]
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The temporary folder holding the configuration, the log and the TSDB.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Prometheus' log (its stderr) so far; empty if it cannot be read.
    #[must_use]
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Runs an instant query (`/api/v1/query`) and returns its samples.
    ///
    /// Futures do nothing unless polled.
    ///
    /// # Errors
    ///
    /// [`PrometheusError::Http`] if the request fails, [`PrometheusError::Api`]
    /// if Prometheus answers with an error or a result that is not a vector.
    pub async fn query(&self, promql: &str) -> Result<Vec<Sample>, PrometheusError> {
        let response = http_get(self.api_addr, "/api/v1/query", &[("query", promql)]).await?;
        let api_error = || PrometheusError::Api {
            status: response.status,
            body: response.body.clone(),
        };
        if response.status != 200 {
            return Err(api_error());
        }
        parse_vector(&response.body).ok_or_else(api_error)
    }

    /// Polls `promql` every 250 ms until `accept` returns true for its
    /// samples, for at most `timeout`; returns the accepted samples.
    ///
    /// Futures do nothing unless polled.
    ///
    /// # Errors
    ///
    /// [`PrometheusError::TimedOut`] with the last result if `timeout`
    /// passes; the error of a query that fails.
    pub async fn wait_for(
        &self,
        promql: &str,
        timeout: Duration,
        mut accept: impl FnMut(&[Sample]) -> bool,
    ) -> Result<Vec<Sample>, PrometheusError> {
        let deadline = Instant::now() + timeout;
        loop {
            let samples = self.query(promql).await?;
            if accept(&samples) {
                return Ok(samples);
            }
            if Instant::now() >= deadline {
                return Err(PrometheusError::TimedOut {
                    query: promql.to_owned(),
                    last: samples,
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        // Best effort: the process may already be gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
        // `dir` removes itself when dropped, after this.
    }
}

/// A port of `127.0.0.1` free right now (the OS picks it; it is released
/// before returning, so someone else may take it first).
fn free_loopback_port() -> io::Result<SocketAddr> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()
}

/// The samples of a successful instant-query answer of type `vector`.
fn parse_vector(body: &str) -> Option<Vec<Sample>> {
    let answer: serde_json::Value = serde_json::from_str(body).ok()?;
    if answer.get("status")?.as_str()? != "success" {
        return None;
    }
    let data = answer.get("data")?;
    if data.get("resultType")?.as_str()? != "vector" {
        return None;
    }
    data.get("result")?
        .as_array()?
        .iter()
        .map(|series| {
            let labels = series
                .get("metric")?
                .as_object()?
                .iter()
                .map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
                .collect::<Option<_>>()?;
            let value = series.get("value")?.as_array()?.get(1)?.as_str()?;
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                other => other.parse().ok()?,
            };
            Some(Sample { labels, value })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_parsed_and_errors_are_not() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","job":"supervisor"},"value":[1700000000.5,"1"]},
            {"metric":{},"value":[1700000000.5,"+Inf"]}]}}"#;
        let samples = parse_vector(body).unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].labels["job"], "supervisor");
        assert_eq!(samples[0].value, 1.0);
        assert_eq!(samples[1].value, f64::INFINITY);

        assert_eq!(parse_vector(r#"{"status":"error","error":"bad"}"#), None);
        assert_eq!(
            parse_vector(r#"{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}"#),
            None
        );
    }

    #[test]
    fn the_configuration_scrapes_every_target() {
        let mut config = ScrapeConfig::new([
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        ]);
        config.job_name = "it's".to_owned();
        config.scrape_interval = Duration::from_millis(500);
        assert_eq!(
            config.to_yaml(),
            "global:\n  scrape_interval: 500ms\n  scrape_timeout: 500ms\n  evaluation_interval: 500ms\n\
             scrape_configs:\n  - job_name: 'it''s'\n    static_configs:\n      - targets:\n\
             \x20         - '127.0.0.1:1'\n          - '127.0.0.1:2'\n"
        );
    }
}
