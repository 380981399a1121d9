//! The bounds: an oversized body (413) or request head (431), a request past
//! its time (408) or past the concurrency limit (503), a client too slow to
//! send its head (disconnected), and the server stopping once drained while
//! it answers during the drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use supervisor_http::{HttpServer, Limits, SupervisorRoutes, drained};
use tests::prometheus::{http_get, http_request};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Notify;

use crate::{PATIENCE, Served, holding_its_drain, ready, supervisor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_or_request_head_is_refused() {
    let supervisor = supervisor();
    let served = Served::until_drained(SupervisorRoutes::new(supervisor.clone())).await;
    let limits = Limits::default();

    // A body past the limit, announced by its length: refused before the
    // route looks at it, whatever the method.
    let big_body = vec![b'x'; limits.max_body_bytes + 1];
    for method in ["GET", "POST"] {
        let response = http_request(served.addr, method, "/status", &[], Some(big_body.clone()))
            .await
            .unwrap();
        assert_eq!(response.status, 413, "{method}: {response:?}");
    }
    let small = http_request(served.addr, "GET", "/status", &[], Some(b"{}".to_vec()))
        .await
        .unwrap();
    assert_eq!(small.status, 200, "{small:?}");

    // A head past its size, or with too many headers.
    let big_header = "x".repeat(limits.max_header_bytes);
    let response = http_request(
        served.addr,
        "GET",
        "/livez",
        &[("x-big", &big_header)],
        None,
    )
    .await
    .unwrap();
    assert_eq!(response.status, 431, "{response:?}");
    let names: Vec<String> = (0..=limits.max_headers)
        .map(|n| format!("x-h{n}"))
        .collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|name| (name.as_str(), "1")).collect();
    let response = http_request(served.addr, "GET", "/livez", &headers, None)
        .await
        .unwrap();
    assert_eq!(response.status, 431, "{response:?}");

    supervisor.trigger_shutdown();
    served.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_time_gets_408_and_one_past_the_concurrency_limit_503() {
    // A host route bounded like the supervisor's: one request at a time,
    // 2 s each. It never answers, and says when it is entered.
    let mut limits = Limits::default();
    limits.max_concurrent_requests = 1;
    limits.request_timeout = Duration::from_secs(2);
    let entered = Arc::new(Notify::new());
    let entering = Arc::clone(&entered);
    let slow = Router::new().route(
        "/slow",
        get(move || {
            let entering = Arc::clone(&entering);
            async move {
                entering.notify_one();
                std::future::pending::<()>().await
            }
        }),
    );
    let (served, stop) = Served::until_told(limits.apply(slow)).await;

    let addr = served.addr;
    let first = tokio::spawn(async move { http_get(addr, "/slow", &[]).await });
    tokio::time::timeout(PATIENCE, entered.notified())
        .await
        .expect("the first request reaches the route");
    let second = http_get(served.addr, "/slow", &[]).await.unwrap();
    assert_eq!(second.status, 503, "refused, not queued: {second:?}");
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status, 408, "{first:?}");

    let _ = stop.send(());
    served.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_too_slow_to_send_its_head_is_disconnected() {
    let supervisor = supervisor();
    let mut limits = Limits::default();
    limits.header_read_timeout = Duration::from_millis(300);
    let server = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap()
        .with_limits(limits);
    let served = Served::with_server(
        server,
        SupervisorRoutes::new(supervisor.clone()),
        drained(&supervisor),
    );

    let mut stream = tokio::net::TcpStream::connect(served.addr).await.unwrap();
    stream.write_all(b"GET /livez HTTP/1.1\r\n").await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut response))
        .await
        .expect("the server closes the connection")
        .unwrap();
    assert!(
        response.is_empty(),
        "{}",
        String::from_utf8_lossy(&response)
    );

    supervisor.trigger_shutdown();
    served.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_while_draining_and_stops_once_drained() {
    let (supervisor, release) = holding_its_drain();
    let served = Served::until_drained(SupervisorRoutes::new(supervisor.clone())).await;
    let addr = served.addr;
    ready(&supervisor).await;

    // `flush` holds the drain until it is released.
    supervisor.trigger_shutdown();
    assert_eq!(http_get(addr, "/readyz", &[]).await.unwrap().status, 503);
    assert!(!served.task.is_finished());

    let _ = release.send(());
    served.stopped().await;
    assert!(supervisor.is_drained());
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}
