//! The `/metrics` server, spoken to with plain TCP and with an HTTP client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use supervisor_prometheus::{
    MAX_REQUEST_HEAD_BYTES, MetricsServer, OPENMETRICS_CONTENT_TYPE, PrometheusSink,
    REQUEST_TIMEOUT, render,
};
use tests::prometheus::http_get;
use tests::sink::{ByName, chaotic_run};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server on a free loopback port, stopped when the sender is dropped or
/// used.
struct Running {
    addr: SocketAddr,
    registry: Arc<Registry>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

async fn start_server() -> anyhow::Result<Running> {
    let mut registry = Registry::default();
    let sink = PrometheusSink::register(&mut registry);
    let sink = ByName::new(&sink);
    chaotic_run(&sink);
    let registry = Arc::new(registry);
    let server =
        MetricsServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), Arc::clone(&registry)).await?;
    let addr = server.local_addr();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    Ok(Running {
        addr,
        registry,
        stop,
        task,
    })
}

/// Sends `request` as is and reads until the server closes the connection.
async fn exchange(addr: SocketAddr, request: &[u8]) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(String::from_utf8(response)?)
}

#[tokio::test]
async fn get_metrics_answers_the_openmetrics_rendering() -> anyhow::Result<()> {
    let server = start_server().await?;
    let response = exchange(
        server.addr,
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/openmetrics-text\r\n\r\n",
    )
    .await?;

    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no end of head in {response:?}"))?;
    let mut lines = head.split("\r\n");
    assert_eq!(lines.next(), Some("HTTP/1.1 200 OK"));
    let headers: Vec<&str> = lines.collect();
    assert!(headers.contains(&format!("Content-Type: {OPENMETRICS_CONTENT_TYPE}").as_str()));
    assert!(headers.contains(&format!("Content-Length: {}", body.len()).as_str()));
    assert!(headers.contains(&"Connection: close"));
    assert_eq!(body, render(&server.registry)?);
    assert!(body.contains("supervisor_restarts_total{service=\"flaky\"} 2\n"));

    let _ = server.stop.send(());
    server.task.await?;
    Ok(())
}

#[tokio::test]
async fn other_paths_and_methods_are_refused() -> anyhow::Result<()> {
    let server = start_server().await?;

    let not_found = http_get(server.addr, "/", &[]).await?;
    assert_eq!(not_found.status, 404);
    let not_found = http_get(server.addr, "/metrics/extra", &[]).await?;
    assert_eq!(not_found.status, 404);

    let with_query = http_get(server.addr, "/metrics", &[("debug", "1")]).await?;
    assert_eq!(with_query.status, 200);
    assert_eq!(
        with_query.header("content-type"),
        Some(OPENMETRICS_CONTENT_TYPE)
    );

    let post = exchange(
        server.addr,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    )
    .await?;
    assert!(
        post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{post}"
    );
    assert!(post.contains("\r\nAllow: GET, HEAD\r\n"), "{post}");

    let head = exchange(server.addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await?;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.ends_with("\r\n\r\n"),
        "HEAD must not carry a body: {head}"
    );
    let length = render(&server.registry)?.len();
    assert!(
        head.contains(&format!("\r\nContent-Length: {length}\r\n")),
        "{head}"
    );

    let garbage = exchange(server.addr, b"hello\r\n\r\n").await?;
    assert!(
        garbage.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{garbage}"
    );

    let _ = server.stop.send(());
    server.task.await?;
    Ok(())
}

#[tokio::test]
async fn an_oversized_request_head_is_refused() -> anyhow::Result<()> {
    let server = start_server().await?;
    let mut request = b"GET /metrics HTTP/1.1\r\nX-Padding: ".to_vec();
    request.resize(MAX_REQUEST_HEAD_BYTES + 100, b'a');
    let response = exchange(server.addr, &request).await?;
    assert!(
        response.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{response}"
    );
    let _ = server.stop.send(());
    server.task.await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_times_out() -> anyhow::Result<()> {
    let server = start_server().await?;
    let mut stream = TcpStream::connect(server.addr).await?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\n").await?;
    let started = tokio::time::Instant::now();
    let mut response = String::new();
    // Paused time: the runtime jumps to the server's timeout once idle.
    stream.read_to_string(&mut response).await?;
    assert!(
        response.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{response}"
    );
    assert!(started.elapsed() >= REQUEST_TIMEOUT);
    let _ = server.stop.send(());
    server.task.await?;
    Ok(())
}

#[tokio::test]
async fn concurrent_scrapes_all_succeed_and_see_updates() -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let sink = Arc::new(PrometheusSink::register(&mut registry));
    let sink = ByName::new(&*sink);
    let server =
        MetricsServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), Arc::new(registry)).await?;
    let addr = server.local_addr();
    let serving = tokio::spawn(server.run(std::future::pending()));

    sink.service_spawned("feed");
    let scrapes: Vec<_> = (0..16)
        .map(|_| tokio::spawn(http_get(addr, "/metrics", &[])))
        .collect();
    for scrape in scrapes {
        let response = scrape.await??;
        assert_eq!(response.status, 200);
        assert!(response.body.contains("supervisor_spawned_total 1\n"));
    }
    sink.service_started("feed", 2);
    let response = http_get(addr, "/metrics", &[]).await?;
    assert!(
        response
            .body
            .contains("supervisor_restarts_total{service=\"feed\"} 1\n")
    );

    // Dropping the run future (aborting its task) closes the listener.
    serving.abort();
    let _ = serving.await;
    assert!(TcpStream::connect(addr).await.is_err());
    Ok(())
}

#[tokio::test]
async fn shutdown_stops_accepting() -> anyhow::Result<()> {
    let server = start_server().await?;
    let addr = server.addr;
    assert_eq!(http_get(addr, "/metrics", &[]).await?.status, 200);
    let _ = server.stop.send(());
    tokio::time::timeout(Duration::from_secs(5), server.task).await??;
    assert!(TcpStream::connect(addr).await.is_err());
    Ok(())
}
