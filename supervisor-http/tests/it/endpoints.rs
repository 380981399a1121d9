//! `/`, `/livez`, `/readyz` and `/status`: their status codes, content types
//! and bodies as the supervisor changes; probes through a shutdown and a
//! critical failure; a hostile service name as JSON text.

use serde_json::{Value, json};
use supervisor_core::{RestartPolicy, ServiceContext, SpawnOptions, service_fn};
use supervisor_http::{ReadyWhen, SupervisorRoutes};
use tests::prometheus::{HttpResponse, http_get, http_request, sse_connect};
use tokio::sync::{Notify, oneshot};

use crate::{PATIENCE, Served, drain, holding_its_drain, idle, ready, supervisor};

/// `GET path`, and what every response of the surface says.
async fn get(served: &Served, path: &str) -> HttpResponse {
    let response = http_get(served.addr, path, &[]).await.expect("an answer");
    assert_eq!(
        response.header("x-content-type-options"),
        Some("nosniff"),
        "{path}"
    );
    response
}

/// The body as JSON, after checking the content type.
fn json_of(response: &HttpResponse) -> Value {
    assert_eq!(response.header("content-type"), Some("application/json"));
    serde_json::from_str(&response.body)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", response.body))
}

/// A service whose first run fails with `error()` once the sender is used
/// (or dropped); later runs fail at once.
fn fails_when_told(
    name: &'static str,
    error: impl Fn() -> anyhow::Error + Send + Sync + 'static,
) -> (
    oneshot::Sender<()>,
    supervisor_core::ServiceFn<impl Fn(ServiceContext) -> BoxFuture + Send + Sync + 'static>,
) {
    let (fail, failing) = oneshot::channel::<()>();
    let failing = std::sync::Mutex::new(Some(failing));
    let error = std::sync::Arc::new(error);
    let service = service_fn(name, move |_ctx: ServiceContext| -> BoxFuture {
        let failing = failing.lock().unwrap().take();
        let error = std::sync::Arc::clone(&error);
        Box::pin(async move {
            if let Some(failing) = failing {
                let _ = failing.await;
            }
            Err(error())
        })
    });
    (fail, service)
}

/// The future of one run of [`fails_when_told`]'s service.
type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_with_its_status_type_and_body() {
    let supervisor = supervisor();
    // `db` is ready once the test says so; `api` starts after it.
    let gate = std::sync::Arc::new(Notify::new());
    let opened = std::sync::Arc::clone(&gate);
    let db = service_fn("db", move |ctx: ServiceContext| {
        let opened = std::sync::Arc::clone(&opened);
        async move {
            opened.notified().await;
            ctx.ready();
            ctx.cancelled().await;
            anyhow::Ok(())
        }
    });
    supervisor
        .spawn_service_with_options(db, SpawnOptions::default().signals_readiness())
        .unwrap();
    let api = SpawnOptions::default().after(["db"]).critical();
    supervisor
        .spawn_service_with_options(idle("api"), api)
        .unwrap();
    let served = Served::until_drained(SupervisorRoutes::new(supervisor.clone())).await;

    // Not ready: both wait (`api` for `db`, `db` for itself).
    let readyz = get(&served, "/readyz").await;
    assert_eq!(readyz.status, 503, "{readyz:?}");
    assert_eq!(readyz.header("cache-control"), Some("no-store"));
    assert_eq!(
        json_of(&readyz),
        json!({"ready": false, "shutting_down": false, "waiting": ["api", "db"], "failed": []})
    );

    let livez = get(&served, "/livez").await;
    assert_eq!(livez.status, 200);
    assert_eq!(json_of(&livez), json!({"live": true}));

    let status = get(&served, "/status").await;
    assert_eq!(status.status, 200);
    let status = json_of(&status);
    let services = status["services"].as_array().expect("a list of services");
    let names: Vec<&str> = services
        .iter()
        .map(|service| service["snapshot"]["service_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "db"]);
    assert_eq!(services[0]["dependencies"], json!(["db"]));
    assert_eq!(services[0]["critical"], json!(true));
    assert_eq!(services[1]["signals_readiness"], json!(true));
    assert_eq!(status["readiness"]["ready"], json!(false));
    assert_eq!(status["shutdown_cause"], Value::Null);
    assert_eq!(status["drained"], json!(false));
    assert_eq!(status["metrics"]["spawned_total"], json!(2));
    assert!(status["now"]["secs"].is_u64(), "{status}");

    // The page: HTML, compiled in, with a policy that loads nothing else.
    let page = get(&served, "/").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.body.to_ascii_lowercase().contains("<html"),
        "{}",
        page.body
    );
    let policy = page.header("content-security-policy").unwrap_or_default();
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert!(policy.contains("connect-src 'self'"), "{policy}");

    // Ready once `db` says so and `api` runs.
    gate.notify_one();
    ready(&supervisor).await;
    let readyz = get(&served, "/readyz").await;
    assert_eq!(readyz.status, 200, "{readyz:?}");
    assert_eq!(
        json_of(&readyz),
        json!({"ready": true, "shutting_down": false, "waiting": [], "failed": []})
    );

    // No `/metrics` without a registry; no other path; no other method.
    assert_eq!(get(&served, "/metrics").await.status, 404);
    assert_eq!(get(&served, "/nothing-here").await.status, 404);
    let post = http_request(served.addr, "POST", "/status", &[], None)
        .await
        .unwrap();
    assert_eq!(post.status, 405, "{post:?}");
    let head = http_request(served.addr, "HEAD", "/status", &[], None)
        .await
        .unwrap();
    assert_eq!((head.status, head.body.as_str()), (200, ""));

    supervisor.trigger_shutdown();
    served.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_503_the_moment_shutdown_begins_and_livez_once_drained() {
    let (supervisor, release) = holding_its_drain();
    // A host whose router outlives the supervisor: served until the test
    // says so.
    let (served, stop) = Served::until_told(SupervisorRoutes::new(supervisor.clone())).await;
    ready(&supervisor).await;
    assert_eq!(get(&served, "/readyz").await.status, 200);

    // The drain waits for `flush`: shutting down, not drained.
    supervisor.trigger_shutdown();
    let readyz = get(&served, "/readyz").await;
    assert_eq!(readyz.status, 503, "{readyz:?}");
    assert_eq!(json_of(&readyz)["shutting_down"], json!(true));
    let livez = get(&served, "/livez").await;
    assert_eq!(livez.status, 200, "alive while draining: {livez:?}");
    let status = json_of(&get(&served, "/status").await);
    assert_eq!(status["shutdown_cause"], json!({"kind": "requested"}));
    assert_eq!(status["drained"], json!(false));

    let _ = release.send(());
    drain(&supervisor).await;
    let livez = get(&served, "/livez").await;
    assert_eq!(livez.status, 503, "{livez:?}");
    assert_eq!(
        json_of(&livez),
        json!({
            "live": false,
            "reason": "drained",
            "cause": {"kind": "requested"},
            "message": "the supervisor has shut down (requested by the host)",
        })
    );
    assert_eq!(
        json_of(&get(&served, "/status").await)["drained"],
        json!(true)
    );

    let _ = stop.send(());
    served.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livez_turns_503_once_a_critical_service_fails_for_good() {
    let supervisor = supervisor();
    let (fail, ledger) = fails_when_told("ledger", || anyhow::anyhow!("disk full"));
    let ledger = ledger.with_restart_policy(RestartPolicy::Never);
    supervisor
        .spawn_service_with_options(ledger, SpawnOptions::default().critical())
        .unwrap();
    let (served, stop) = Served::until_told(SupervisorRoutes::new(supervisor.clone())).await;
    ready(&supervisor).await;
    assert_eq!(get(&served, "/livez").await.status, 200);

    let _ = fail.send(());
    drain(&supervisor).await;
    let livez = get(&served, "/livez").await;
    assert_eq!(livez.status, 503, "{livez:?}");
    let livez = json_of(&livez);
    assert_eq!(livez["live"], json!(false));
    assert_eq!(livez["reason"], json!("critical_failed"));
    assert_eq!(livez["cause"]["kind"], json!("critical_failed"));
    assert_eq!(livez["cause"]["service"], json!("ledger"));
    assert_eq!(
        livez["message"],
        json!("critical service `ledger` failed: unrecoverable error: disk full")
    );
    let readyz = get(&served, "/readyz").await;
    assert_eq!(readyz.status, 503);
    assert_eq!(json_of(&readyz)["failed"], json!(["ledger"]));

    let _ = stop.send(());
    served.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livez_turns_503_once_a_service_terminates_the_tree() {
    let supervisor = supervisor();
    let (fail, migrate) = fails_when_told("migrate", || {
        anyhow::Error::new(supervisor_core::TerminateTree::new("schema mismatch"))
    });
    supervisor.spawn_service(migrate).unwrap();
    let (served, stop) = Served::until_told(SupervisorRoutes::new(supervisor.clone())).await;
    ready(&supervisor).await;
    assert_eq!(get(&served, "/livez").await.status, 200);

    let _ = fail.send(());
    drain(&supervisor).await;
    let livez = get(&served, "/livez").await;
    assert_eq!(livez.status, 503, "{livez:?}");
    let livez = json_of(&livez);
    assert_eq!(livez["live"], json!(false));
    assert_eq!(livez["reason"], json!("tree_terminated"));
    assert_eq!(livez["cause"]["kind"], json!("tree_terminated"));
    assert_eq!(livez["cause"]["service"], json!("migrate"));
    assert_eq!(livez["cause"]["error"], json!("schema mismatch"));
    assert_eq!(
        livez["message"],
        json!("service `migrate` asked to terminate the supervisor: schema mismatch")
    );
    let status = json_of(&get(&served, "/status").await);
    assert_eq!(status["shutdown_cause"]["kind"], json!("tree_terminated"));

    let _ = stop.send(());
    served.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_name_and_error_round_trip_as_json_text() {
    // A name cannot hold a `/` (the separator of nested paths): the closing
    // `</script>` is in the error.
    const NAME: &str = "<script>alert(1)<img src=x onerror=alert(1)> \"name\"";
    const ERROR: &str = "</script><img src=x onerror=alert(2)> \"quoted\" \\ \u{2028}";
    let supervisor = supervisor();
    let hostile = service_fn(NAME, |_ctx: ServiceContext| async { anyhow::bail!(ERROR) })
        .with_restart_policy(RestartPolicy::Never);
    let handle = supervisor.spawn_service(hostile).unwrap();
    tokio::time::timeout(PATIENCE, handle.wait_terminated())
        .await
        .expect("terminated in time");
    let served = Served::until_drained(SupervisorRoutes::new(supervisor.clone())).await;

    let status = json_of(&get(&served, "/status").await);
    let snapshot = &status["services"][0]["snapshot"];
    assert_eq!(snapshot["service_name"], json!(NAME));
    assert_eq!(snapshot["last_error"], json!(ERROR));
    let readyz = json_of(&get(&served, "/readyz").await);
    assert_eq!(readyz["failed"], json!([NAME]));
    let mut events = sse_connect(served.addr, "/events", PATIENCE).await.unwrap();
    let joined = tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("the first event in time")
        .expect("a first event");
    let joined: Value = serde_json::from_str(&joined.data).expect("JSON data");
    assert_eq!(
        joined["services"][0]["snapshot"]["service_name"],
        json!(NAME)
    );
    drop(events);

    // The page is the file compiled in, whatever the services say.
    let page = get(&served, "/").await;
    assert!(!page.body.contains("alert(2)"), "the page embeds an error");

    supervisor.trigger_shutdown();
    served.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_a_nested_supervisor_s_services_under_their_node() {
    use supervisor_core::{Supervisor, SupervisorSpec};

    let supervisor = supervisor();
    supervisor.spawn_service(idle("api")).unwrap();
    let db = SupervisorSpec::new("db", crate::quiet(), |db: &Supervisor| {
        db.spawn_service(idle("pool"))?;
        db.spawn_service(idle("cache"))?;
        Ok(())
    });
    supervisor.spawn_supervisor(db).unwrap();
    ready(&supervisor).await;
    let served = Served::until_drained(SupervisorRoutes::new(supervisor.clone())).await;

    let status = json_of(&get(&served, "/status").await);
    let rows: Vec<(String, Value)> = status["services"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|row| {
            let name = row["snapshot"]["service_name"].as_str().expect("a name");
            (
                name.to_owned(),
                row.get("supervisor").cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    // Each node's services follow it, in their start order; a service of the
    // supervisor served has no `supervisor` field at all.
    assert_eq!(
        rows,
        [
            ("api".to_owned(), Value::Null),
            ("db".to_owned(), Value::Null),
            ("db/pool".to_owned(), json!("db")),
            ("db/cache".to_owned(), json!("db")),
        ]
    );
    assert!(status["services"][0].get("supervisor").is_none());
    assert_eq!(status["readiness"]["ready"], json!(true));

    supervisor.trigger_shutdown();
    drain(&supervisor).await;
    served.stopped().await;
}

/// `/status` (and so the page) carries the readiness `/readyz` answers
/// with, and its policy: with `ReadyWhen::CriticalServices`, a failed
/// optional service leaves both ready; by default, neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_readiness_readyz_answers_with() {
    for (ready_when, label, ready) in [
        (ReadyWhen::AllServices, "all_services", false),
        (ReadyWhen::CriticalServices, "critical_services", true),
    ] {
        let supervisor = supervisor();
        supervisor
            .spawn_service_with_options(idle("feed"), SpawnOptions::default().critical())
            .unwrap();
        let poller = service_fn("poller", |_ctx: ServiceContext| async {
            anyhow::bail!("refused")
        })
        .with_restart_policy(RestartPolicy::Never);
        let poller = supervisor.spawn_service(poller).unwrap();
        tokio::time::timeout(PATIENCE, poller.wait_terminated())
            .await
            .expect("the poller fails at once");
        let served = Served::until_drained(
            SupervisorRoutes::new(supervisor.clone()).with_ready_when(ready_when),
        )
        .await;

        let readyz = get(&served, "/readyz").await;
        assert_eq!(readyz.status, if ready { 200 } else { 503 }, "{label}");
        let status = json_of(&get(&served, "/status").await);
        assert_eq!(status["ready_when"], json!(label));
        assert_eq!(status["readiness"], json_of(&readyz), "{label}");
        assert_eq!(status["readiness"]["ready"], json!(ready), "{label}");
        assert_eq!(status["readiness"]["failed"], json!(["poller"]), "{label}");

        supervisor.trigger_shutdown();
        drain(&supervisor).await;
        served.task.await.unwrap();
    }
}
