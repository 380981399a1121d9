//! `GET /events`: a `status` event to join from, the lifecycle events in
//! order with their `seq` as `id:`, a lag told as such, a last `status`
//! once drained, and a bounded number of streams.

use serde_json::{Value, json};
use supervisor_core::{RestartPolicy, ServiceContext, service_fn};
use supervisor_http::{Limits, SupervisorRoutes};
use tests::prometheus::{SseEvent, SseStream, sse_connect};

use crate::{PATIENCE, Served, idle, quiet, supervisor};

/// The next event, within [`PATIENCE`].
async fn next(stream: &mut SseStream) -> Option<SseEvent> {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("an event (or the end) in time")
}

/// The next event, which must be named `name`, and its data as JSON.
async fn expect_named(stream: &mut SseStream, name: &str) -> Value {
    let event = next(stream).await.expect("the stream goes on");
    assert_eq!(event.event.as_deref(), Some(name), "{event:?}");
    serde_json::from_str(&event.data).expect("JSON data")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_in_order_with_their_seq_as_id_and_end_once_drained() {
    let supervisor = supervisor();
    let served = Served::until_drained(SupervisorRoutes::new(supervisor.clone())).await;
    let mut stream = sse_connect(served.addr, "/events", PATIENCE).await.unwrap();
    assert_eq!(stream.status, 200);
    let content_type = stream.headers.get("content-type").unwrap();
    assert_eq!(content_type, "text/event-stream");

    // Subscribed: the snapshot to join from comes first.
    let status = expect_named(&mut stream, "status").await;
    assert_eq!(status["services"], json!([]));

    let once = service_fn("once", |_ctx: ServiceContext| async { anyhow::Ok(()) })
        .with_restart_policy(RestartPolicy::Never);
    supervisor.spawn_service(once).unwrap();
    let mut seen: Vec<Value> = Vec::new();
    while seen.last().is_none_or(|event| event["to"] != "terminated") {
        let event = next(&mut stream).await.expect("the stream goes on");
        assert_eq!(event.event, None, "lifecycle events are unnamed: {event:?}");
        let data: Value = serde_json::from_str(&event.data).expect("JSON data");
        assert_eq!(
            event.id.as_deref(),
            Some(data["seq"].to_string().as_str()),
            "{event:?}"
        );
        seen.push(data);
    }
    assert!(seen.iter().all(|event| event["service"] == "once"));
    assert_eq!(seen[0]["kind"], "spawned");
    assert_eq!(
        (&seen[1]["from"], &seen[1]["to"]),
        (&json!("starting"), &json!("running"))
    );
    let last = seen.last().unwrap();
    assert_eq!(last["reason"], json!("completed"), "{last}");
    let seqs: Vec<u64> = seen
        .iter()
        .map(|event| event["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");

    // Drained: a last snapshot, then the end.
    supervisor.trigger_shutdown();
    let status = expect_named(&mut stream, "status").await;
    assert_eq!(status["drained"], json!(true), "{status}");
    assert_eq!(next(&mut stream).await, None);
    served.stopped().await;
}

/// One thread for the server and the test, so that a burst of spawns is
/// sent before the stream's task can read any of it.
#[tokio::test(flavor = "current_thread")]
async fn a_client_that_fell_behind_is_told_how_many_events_it_missed() {
    let supervisor = supervisor_core::Supervisor::new(quiet().with_event_capacity(2));
    let served = Served::until_drained(SupervisorRoutes::new(supervisor.clone())).await;
    let mut stream = sse_connect(served.addr, "/events", PATIENCE).await.unwrap();
    expect_named(&mut stream, "status").await;

    // Ten `spawned` events, each sent as its spawn returns; the channel
    // keeps two.
    let names = ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"];
    for name in names {
        supervisor.spawn_service(idle(name)).unwrap();
    }
    let lagged = expect_named(&mut stream, "lagged").await;
    assert_eq!(lagged, json!({"missed": 8}));
    // A fresh snapshot to join from again, with every service.
    let status = expect_named(&mut stream, "status").await;
    assert_eq!(status["services"].as_array().map(Vec::len), Some(10));

    supervisor.trigger_shutdown();
    served.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_bounded() {
    let supervisor = supervisor();
    let mut limits = Limits::default();
    limits.max_event_streams = 1;
    let routes = SupervisorRoutes::new(supervisor.clone()).with_limits(limits);
    let served = Served::until_drained(routes).await;
    let mut first = sse_connect(served.addr, "/events", PATIENCE).await.unwrap();
    expect_named(&mut first, "status").await;

    let second = sse_connect(served.addr, "/events", PATIENCE).await.unwrap();
    assert_eq!(second.status, 503, "{second:?}");
    let refusal: Value = serde_json::from_str(&second.body).unwrap();
    assert_eq!(refusal, json!({"error": "too many event streams are open"}));

    supervisor.trigger_shutdown();
    served.stopped().await;
}
