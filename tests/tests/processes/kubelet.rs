//! The kubelet, played against the real demo process as
//! `deploy/k8s/deployment.yaml` tells it to: its probe paths, port and
//! grace period are read from that file.
//!
//! A pod's life: the readiness probe asks until `200`; the pod is deleted,
//! so the demo gets SIGTERM, and from then on the readiness probe gets
//! `503` while the liveness probe still gets `200` and the server keeps
//! answering until the drain ends; the process exits 0 within
//! `terminationGracePeriodSeconds`. A second pod's exchange session is
//! banned (`--kill-dependency-after`): its critical `market-data` node
//! escalates until its circuit breaker opens, the liveness probe gets `503`
//! naming the node, and the process drains and exits 2 by itself, before
//! the kubelet would have restarted it.
//!
//! Real time on purpose (a real process); nothing sleeps for a fixed time
//! as a check: each step asks until what it needs comes, up to a deadline.
//! Unix only (SIGTERM is sent with `kill`).

use std::time::Duration;

use serde_json::Value;
use tests::prometheus::{HttpResponse, http_get};
use tokio::time::Instant;
use yaml_rust2::{Yaml, YamlLoader};

use crate::demo_process::{
    CRITICAL_FAILED, Demo, EXIT_MARGIN, PROBE_INTERVAL, SHUTDOWN_TIMEOUT,
    assert_drained_truthfully, workspace_root,
};

/// The demo's port in the Deployment (`--http-addr 0.0.0.0:9898`).
const PORT: &str = "9898";

#[test]
fn the_deployment_probes_and_scrapes_what_the_demo_serves() {
    let deployment = Manifest::read("deployment.yaml");
    let pod = ["spec", "template"];
    let container = ["spec", "template", "spec", "containers"];

    let command = deployment.list(&[&container[..], &["command"]].concat());
    let addr = command
        .iter()
        .position(|arg| arg == "--http-addr")
        .and_then(|at| command.get(at + 1))
        .unwrap_or_else(|| panic!("no --http-addr in {command:?}"));
    assert_eq!(
        addr,
        &format!("0.0.0.0:{PORT}"),
        "every interface of the pod"
    );
    assert_eq!(
        deployment.value(&[&container[..], &["ports", "containerPort"]].concat()),
        PORT
    );
    let port_name = deployment.value(&[&container[..], &["ports", "name"]].concat());

    let probes = Probes::of(&deployment);
    assert_eq!(probes.readiness_path, "/readyz");
    assert_eq!(probes.liveness_path, "/livez");
    for probe in ["readinessProbe", "livenessProbe"] {
        let port = deployment.value(&[&container[..], &[probe, "httpGet", "port"]].concat());
        assert_eq!(port, port_name, "{probe} asks the container's port");
    }

    let annotation =
        |key: &str| deployment.value(&[&pod[..], &["metadata", "annotations", key]].concat());
    assert_eq!(annotation("prometheus.io/scrape"), "true");
    assert_eq!(annotation("prometheus.io/port"), PORT);
    assert_eq!(annotation("prometheus.io/path"), "/metrics");

    // The drain (the stubborn worker holds it for the shutdown timeout) and
    // the exit fit in the grace period.
    assert!(probes.grace > SHUTDOWN_TIMEOUT + EXIT_MARGIN, "{probes:?}");

    let service = Manifest::read("service.yaml");
    assert_eq!(service.value(&["spec", "ports", "port"]), PORT);
    assert_eq!(service.value(&["spec", "ports", "targetPort"]), port_name);
    let monitor = Manifest::read("servicemonitor.yaml");
    assert_eq!(monitor.value(&["spec", "endpoints", "port"]), port_name);
    assert_eq!(monitor.value(&["spec", "endpoints", "path"]), "/metrics");
}

#[tokio::test]
async fn ready_then_sigterm_turns_readyz_503_at_once_and_drains_within_the_grace_period() {
    let probes = Probes::of(&Manifest::read("deployment.yaml"));
    let (mut demo, addr) = Demo::serving(&[]).await;

    // The readiness probe, until the pod is ready.
    let ready = demo
        .probe_until(addr, &probes.readiness_path, "readiness", |answer| {
            answer.status == 200
        })
        .await;
    let ready = json(&ready);
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["shutting_down"], false, "{ready}");
    let live = get(&demo, addr, &probes.liveness_path).await;
    assert_eq!(
        (live.status, json(&live)),
        (200, serde_json::json!({"live": true}))
    );
    // What Prometheus finds through the annotations.
    let metrics = get(&demo, addr, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("supervisor_active_services"));

    // The pod is deleted: SIGTERM. The kubelet keeps probing; every answer
    // is kept until the server stops answering (the drain is over).
    let signalled = Instant::now();
    demo.terminate().await;
    let mut readiness = Vec::new();
    let mut liveness = Vec::new();
    loop {
        assert!(
            signalled.elapsed() < probes.grace,
            "still answering after the grace period\n{}",
            demo.output()
        );
        let Ok(answer) = http_get(addr, &probes.readiness_path, &[]).await else {
            break;
        };
        readiness.push(answer);
        let Ok(answer) = http_get(addr, &probes.liveness_path, &[]).await else {
            break;
        };
        liveness.push(answer);
        tokio::time::sleep(PROBE_INTERVAL).await;
    }

    // 503 from the first answer after the signal was handled, never 200
    // again; the first one came while the drain still held the stubborn
    // worker, not after it.
    let first = readiness
        .iter()
        .position(|answer| answer.status == 503)
        .unwrap_or_else(|| panic!("/readyz never said 503: {readiness:?}\n{}", demo.output()));
    assert!(
        readiness[..first].iter().all(|answer| answer.status == 200)
            && readiness[first..].iter().all(|answer| answer.status == 503),
        "{readiness:?}"
    );
    let draining = json(&readiness[first]);
    assert_eq!(draining["ready"], false, "{draining}");
    assert_eq!(draining["shutting_down"], true, "{draining}");
    assert!(
        draining["waiting"]
            .as_array()
            .is_some_and(|waiting| waiting.contains(&Value::from("stubborn-worker"))),
        "the first 503 came before the drain had stopped the stubborn worker: {draining}"
    );
    // Alive all along: a kubelet never kills a process that drains on time.
    // (The last answer may come as the drain ends: `drained`.)
    let during: Vec<(u16, Value)> = liveness
        .get(first..)
        .unwrap_or_default()
        .iter()
        .map(|answer| (answer.status, json(answer)))
        .collect();
    assert!(
        during.first().is_some_and(|(status, _)| *status == 200),
        "{during:?}"
    );
    assert!(
        during
            .iter()
            .all(|(status, body)| *status == 200 || body["reason"] == "drained"),
        "{during:?}"
    );

    let left = probes.grace.saturating_sub(signalled.elapsed());
    let status = demo.wait_for_exit(left).await;
    let output = demo.output();
    assert!(status.success(), "the demo exited with {status}\n{output}");
    assert!(
        signalled.elapsed() >= SHUTDOWN_TIMEOUT,
        "the drain waited for the stubborn worker's timeout\n{output}"
    );
    assert_drained_truthfully(&demo.stdout(), &output);
}

#[tokio::test]
async fn a_critical_failure_turns_livez_503_and_the_process_exits_2_by_itself() {
    let probes = Probes::of(&Manifest::read("deployment.yaml"));
    // Long enough for the readiness probe to see the pod ready first.
    let (mut demo, addr) = Demo::serving(&["--kill-dependency-after", "3"]).await;
    demo.probe_until(addr, &probes.readiness_path, "readiness", |answer| {
        answer.status == 200
    })
    .await;

    // Every run of `market-data/exchange-link` fails for good from then on:
    // the `market-data` node escalates, is restarted, escalates again until
    // its breaker opens; it is critical at the root, so the liveness probe
    // turns 503 and names it.
    let dead = demo
        .probe_until(addr, &probes.liveness_path, "a failed liveness", |answer| {
            answer.status != 200
        })
        .await;
    let failed_at = Instant::now();
    assert_eq!(dead.status, 503, "{dead:?}");
    let dead = json(&dead);
    assert_eq!(dead["live"], false, "{dead}");
    assert_eq!(dead["reason"], "critical_failed", "{dead}");
    assert_eq!(dead["cause"]["service"], "market-data", "{dead}");
    assert_eq!(
        dead["cause"]["reason"]["circuit_breaker_open"]["failures"], 3,
        "{dead}"
    );
    // The server still answers while the fleet drains; not ready.
    let readiness = get(&demo, addr, &probes.readiness_path).await;
    assert_eq!(readiness.status, 503, "{readiness:?}");

    // The kubelet would restart the container after `failureThreshold`
    // failed probes `periodSeconds` apart; the demo drains and exits 2 by
    // itself before that.
    let left = probes.liveness_patience.saturating_sub(failed_at.elapsed());
    let status = demo.wait_for_exit(left).await;
    let output = demo.output();
    assert_eq!(status.code(), Some(CRITICAL_FAILED), "{output}");
    assert!(
        demo.stderr().contains(
            "critical service `market-data` failed: circuit breaker open after 3 failures (max retries 2); \
             its last error: supervisor `market-data` escalated: critical service \
             `market-data/exchange-link` failed: gave up, asked not to be restarted: \
             the exchange refused the session: banned"
        ),
        "{output}"
    );
    assert_drained_truthfully(&demo.stdout(), &output);
}

/// `GET path`, which must be answered.
async fn get(demo: &Demo, addr: std::net::SocketAddr, path: &str) -> HttpResponse {
    http_get(addr, path, &[])
        .await
        .unwrap_or_else(|error| panic!("{path} did not answer: {error}\n{}", demo.output()))
}

/// The body as JSON.
fn json(answer: &HttpResponse) -> Value {
    serde_json::from_str(&answer.body)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {answer:?}"))
}

/// What the kubelet does, as the Deployment says.
#[derive(Debug)]
struct Probes {
    readiness_path: String,
    liveness_path: String,
    /// `terminationGracePeriodSeconds`: SIGTERM, then SIGKILL after this.
    grace: Duration,
    /// `periodSeconds` × `failureThreshold` of the liveness probe: how long
    /// a failing liveness lasts before the kubelet restarts the container.
    liveness_patience: Duration,
}

impl Probes {
    fn of(deployment: &Manifest) -> Self {
        let spec = ["spec", "template", "spec"];
        let container = [&spec[..], &["containers"]].concat();
        let seconds = |path: &[&str]| {
            let value = deployment.value(path);
            Duration::from_secs(
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("{path:?} = {value} is not a number of seconds")),
            )
        };
        let liveness = |key: &'static str| [&container[..], &["livenessProbe", key]].concat();
        let threshold: u32 = deployment
            .value(&liveness("failureThreshold"))
            .parse()
            .expect("a failure threshold");
        Self {
            readiness_path: deployment
                .value(&[&container[..], &["readinessProbe", "httpGet", "path"]].concat()),
            liveness_path: deployment
                .value(&[&container[..], &["livenessProbe", "httpGet", "path"]].concat()),
            grace: seconds(&[&spec[..], &["terminationGracePeriodSeconds"]].concat()),
            liveness_patience: seconds(&liveness("periodSeconds")) * threshold,
        }
    }
}

/// One file of `deploy/k8s/`, parsed. A path names mapping keys; a list
/// on the way is entered at its first item that has the next key (so
/// `containers.ports.containerPort` is the first container's first port).
struct Manifest {
    name: &'static str,
    document: Yaml,
}

impl Manifest {
    fn read(name: &'static str) -> Self {
        let path = workspace_root().join("deploy").join("k8s").join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
        let mut documents = YamlLoader::load_from_str(&text)
            .unwrap_or_else(|error| panic!("{name} is not YAML: {error}"));
        assert_eq!(documents.len(), 1, "{name}: one document");
        Self {
            name,
            document: documents.remove(0),
        }
    }

    /// The scalar at `path` as text; fails the test if there is none.
    fn value(&self, path: &[&str]) -> String {
        let node = self.node(path);
        scalar(node).unwrap_or_else(|| {
            panic!(
                "{}: {} is not a scalar: {node:?}",
                self.name,
                path.join(".")
            )
        })
    }

    /// The list of scalars at `path`.
    fn list(&self, path: &[&str]) -> Vec<String> {
        let node = self.node(path);
        node.as_vec()
            .and_then(|items| items.iter().map(scalar).collect())
            .unwrap_or_else(|| {
                panic!(
                    "{}: {} is not a list of scalars: {node:?}",
                    self.name,
                    path.join(".")
                )
            })
    }

    fn node(&self, path: &[&str]) -> &Yaml {
        path.iter()
            .try_fold(&self.document, |node, key| {
                let key = Yaml::String((*key).to_owned());
                match node {
                    Yaml::Hash(map) => map.get(&key),
                    Yaml::Array(items) => items
                        .iter()
                        .find_map(|item| item.as_hash().and_then(|map| map.get(&key))),
                    _ => None,
                }
            })
            .unwrap_or_else(|| panic!("{}: nothing at {}", self.name, path.join(".")))
    }
}

/// A string, number or boolean as the text it stands for.
fn scalar(node: &Yaml) -> Option<String> {
    match node {
        Yaml::String(text) | Yaml::Real(text) => Some(text.clone()),
        Yaml::Integer(number) => Some(number.to_string()),
        Yaml::Boolean(flag) => Some(flag.to_string()),
        _ => None,
    }
}
