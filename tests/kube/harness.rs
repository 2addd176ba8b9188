//! The operator on the fake Kubernetes API and the Bitbucket simulator: start both, start and
//! stop the controllers, apply manifests, wait for status, read Events and the request log. The
//! seed and the manifests the tests share live in `support::fixtures`, re-exported here.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use bitbucket_operator::{
    controller::{self, Options},
    simulator::{RequestRecord, RunningSimulator, Seed, Simulator},
};
use serde_json::Value;
use tokio::{sync::oneshot, task::JoinHandle, time::Instant};

use crate::fake_kube::{FakeKube, ServeHandle};
pub use crate::support::fixtures::{BIG, BINDING, CONFIGURATION, OPERATOR_TOKEN, REPORT, SEED, big_slug, many};

/// How long a test waits for the operator to converge.
pub const CONVERGE: Duration = Duration::from_secs(20);

/// SonarQube's report key (the default of a RequiredReport).
pub const SONAR: &str = "com.sonarsource.sonarqube";

/// The webhook list of a repository (`GET`) or a webhook creation (`POST`), as counted.
pub const WEBHOOKS: &str = "/rest/api/1.0/projects/{key}/repos/{slug}/webhooks";
/// The merge check of a report key on a repository, as counted.
pub const MERGE_CHECK: &str = "/rest/insights/latest/projects/{key}/repos/{slug}/settings/merge-checks/{reportKey}";
/// The paged repository list of a project, as counted.
pub const REPOSITORIES: &str = "/rest/api/1.0/projects/{key}/repos";

/// [`CONFIGURATION`] with the operator's own rate limit set.
pub fn configuration_with_rate(requests_per_second: u32, burst: u32) -> String {
    CONFIGURATION.replace(
        "auth: {token:",
        &format!("rateLimit: {{requestsPerSecond: {requests_per_second}, burst: {burst}}}\n  auth: {{token:"),
    )
}

/// Successful webhook creations (each made a webhook).
pub fn webhooks_created(env: &Env) -> u64 {
    env.bitbucket()
        .request_counts_by_status()
        .iter()
        .filter(|((e, s), _)| *e == format!("POST {WEBHOOKS}") && s / 100 == 2)
        .map(|(_, n)| n)
        .sum()
}

/// Successful merge-check writes.
pub fn checks_written(env: &Env) -> u64 {
    env.bitbucket()
        .request_counts_by_status()
        .iter()
        .filter(|((e, s), _)| *e == format!("PUT {MERGE_CHECK}") && s / 100 == 2)
        .map(|(_, n)| n)
        .sum()
}

/// Every repository of BIG has exactly one webhook `ci` and the SonarQube check.
pub fn assert_big_converged(env: &Env, n: usize) {
    for i in 0..n {
        let slug = big_slug(i);
        let hooks = env.bitbucket().webhooks("BIG", &slug).expect("repository");
        assert_eq!(hooks.len(), 1, "{slug}: {hooks:#?}");
        assert_eq!(hooks[0]["name"], "ci", "{slug}");
        let check = env.bitbucket().merge_check("BIG", &slug, SONAR).expect("repository");
        assert!(check.is_some(), "{slug} has no check");
    }
}

/// The binding and the report of [`BIG`], apart.
pub fn big_parts() -> (&'static str, &'static str) {
    BIG.split_once("\n---\n").expect("two documents")
}

pub struct Env {
    pub fake: FakeKube,
    pub sim: RunningSimulator,
    operator: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    pub options: Options,
    /// The fake on a loopback port, once [`Env::serve_api`] made the operator talk to it over TCP.
    api_server: Option<ServeHandle>,
}

impl Env {
    /// The fake API server with the default namespace, and the simulator seeded with `seed`.
    pub async fn new(seed: &str) -> Self {
        let fake = FakeKube::new();
        let sim = Simulator::new(Seed::from_yaml(seed).expect("seed"))
            .expect("simulator")
            .serve("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("serve");
        let options = Options {
            operator_namespace: "bitbucket-operator".into(),
            instance: Some("test".into()),
            wait_delay: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            max_resync: None,
            shutdown_grace: Duration::from_secs(2),
            ..Options::default()
        };
        Self { fake, sim, operator: None, options, api_server: None }
    }

    /// Serves the fake on a loopback port and makes the operator talk to it over TCP, with the
    /// client settings of `bitbucket-operator run`, so that the server can go away and come back
    /// ([`Env::api_server`]). The tests' own requests stay in process.
    pub async fn serve_api(&mut self) {
        let (_, handle) = self.fake.serve("127.0.0.1:0".parse().expect("address")).await.expect("listening");
        self.api_server = Some(handle);
    }

    /// The fake's loopback listener (after [`Env::serve_api`]).
    pub fn api_server(&mut self) -> &mut ServeHandle {
        self.api_server.as_mut().expect("serve_api first")
    }

    /// A client of the fake as the operator gets it: in process, or over TCP after
    /// [`Env::serve_api`].
    pub fn operator_client(&self) -> kube::Client {
        match &self.api_server {
            Some(server) => {
                let url = format!("http://{}", server.addr()).parse().expect("URL");
                controller::api_server::client(kube::Config::new(url)).expect("a client")
            }
            None => self.fake.client(),
        }
    }

    /// The simulator's test controls.
    pub fn bitbucket(&self) -> &Simulator {
        self.sim.simulator()
    }

    /// The repositories of a project as the simulator's state dump shows them.
    pub fn repositories_in(&self, project: &str) -> Vec<Value> {
        let state = self.bitbucket().state_json();
        let projects = state["projects"].as_array().cloned().unwrap_or_default();
        let project = projects.into_iter().find(|p| p["key"] == project).unwrap_or_else(|| panic!("no {project}"));
        project["repositories"].as_array().cloned().unwrap_or_default()
    }

    pub fn start_operator(&mut self) {
        assert!(self.operator.is_none(), "the operator already runs");
        let (stop, stopped) = oneshot::channel::<()>();
        let kube = self.operator_client();
        let options = self.options.clone();
        let task = tokio::spawn(controller::run(kube, options, async move {
            let _ = stopped.await;
        }));
        self.operator = Some((stop, task));
    }

    pub async fn stop_operator(&mut self) {
        if let Some((stop, task)) = self.operator.take() {
            let _ = stop.send(());
            if tokio::time::timeout(Duration::from_secs(10), task).await.is_err() {
                panic!("the operator did not stop within 10 s");
            }
        }
    }

    /// Stops the operator at once, as a crash would: in-flight work is dropped.
    pub async fn kill_operator(&mut self) {
        if let Some((_, task)) = self.operator.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Creates objects from YAML (several documents allowed); `{URL}` becomes the simulator's URL.
    /// Namespaced objects without a namespace go to team-a.
    pub fn apply(&self, yaml: &str) {
        let yaml = yaml.replace("{URL}", &self.sim.base_url());
        for document in yaml.split("\n---\n").filter(|d| !d.trim().is_empty()) {
            let mut value: Value = serde_saphyr::from_str(document).expect("test YAML");
            if value.pointer("/metadata/namespace").is_none()
                && !matches!(value["kind"].as_str(), Some("ClusterBitbucketConfiguration" | "Namespace"))
            {
                value["metadata"]["namespace"] = "team-a".into();
            }
            self.fake.create(value).unwrap_or_else(|status| panic!("create failed: {status}"));
        }
    }

    /// Waits until `check` holds for the object, and returns it. `namespace` is `""` for
    /// cluster-scoped kinds.
    pub async fn wait(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_within(CONVERGE, resource, namespace, name, what, check).await
    }

    /// [`Env::wait`] with a time limit of its own (for work of many thousand requests).
    pub async fn wait_within(
        &self,
        limit: Duration,
        resource: &str,
        namespace: &str,
        name: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let object = self.fake.object(resource, namespace, name);
            if let Some(object) = object.as_ref().filter(|o| check(o)) {
                return object.clone();
            }
            if Instant::now() > deadline {
                panic!("{resource} {namespace}/{name}: {what} did not happen within {limit:?}; last seen: {object:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the Ready condition of an object in team-a to have `status` and `reason` at its
    /// current generation.
    pub async fn wait_ready(&self, resource: &str, name: &str, status: &str, reason: &str) -> Value {
        self.wait_ready_in(resource, "team-a", name, status, reason).await
    }

    /// [`Env::wait_ready`] in any namespace (`""` for cluster-scoped kinds).
    pub async fn wait_ready_in(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        status: &str,
        reason: &str,
    ) -> Value {
        self.wait(resource, namespace, name, &format!("Ready={status} ({reason})"), |o| {
            ready(o).is_some_and(|c| c["status"] == status && c["reason"] == reason)
                && o["status"]["observedGeneration"] == o["metadata"]["generation"]
        })
        .await
    }

    /// Waits until `check` holds, polling.
    pub async fn eventually(&self, what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + CONVERGE;
        while !check() {
            if Instant::now() > deadline {
                panic!("{what} did not happen within {CONVERGE:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A typed API on the fake server, in namespace team-a.
    pub fn api<K>(&self) -> kube::Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        kube::Api::namespaced(self.fake.client(), "team-a")
    }

    /// Merge-patches an object in team-a.
    pub async fn patch<K>(&self, name: &str, patch: Value)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        self.api::<K>()
            .patch(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("patch {name}: {e}"));
    }

    /// Merge-patches a cluster-scoped object.
    pub async fn patch_cluster<K>(&self, name: &str, patch: Value)
    where
        K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        kube::Api::<K>::all(self.fake.client())
            .patch(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("patch {name}: {e}"));
    }

    /// Deletes an object in team-a.
    pub async fn delete<K>(&self, name: &str)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        self.api::<K>().delete(name, &Default::default()).await.unwrap_or_else(|e| panic!("delete {name}: {e}"));
    }

    /// Waits until an object in team-a is gone.
    pub async fn wait_gone(&self, resource: &str, name: &str) {
        self.eventually(&format!("{resource} {name} deleted"), || self.fake.object(resource, "team-a", name).is_none())
            .await;
    }

    /// The requests the simulator served, in order.
    pub fn log(&self) -> Vec<RequestRecord> {
        self.bitbucket().requests()
    }

    /// The Events about an object of team-a.
    pub fn events(&self, kind: &str, name: &str) -> Vec<Value> {
        self.events_in(Some("team-a"), kind, name)
    }

    /// The Events about an object in a namespace (`None` for cluster-scoped kinds).
    pub fn events_in(&self, namespace: Option<&str>, kind: &str, name: &str) -> Vec<Value> {
        self.fake
            .objects("events", None)
            .into_iter()
            .filter(|e| {
                let regarding = if e["regarding"].is_object() { &e["regarding"] } else { &e["involvedObject"] };
                regarding["kind"] == kind
                    && regarding["name"] == name
                    && regarding["namespace"].as_str().filter(|n| !n.is_empty()) == namespace
            })
            .collect()
    }

    /// The reasons of the Events about an object of team-a.
    pub fn event_reasons(&self, kind: &str, name: &str) -> Vec<String> {
        reasons_of(&self.events(kind, name))
    }

    /// The reasons of the Events about an object in a namespace (`None`: cluster-scoped).
    pub fn event_reasons_in(&self, namespace: Option<&str>, kind: &str, name: &str) -> Vec<String> {
        reasons_of(&self.events_in(namespace, kind, name))
    }

    /// The notes (or, in the core/v1 view, messages) of the Events with `reason` about an object
    /// of team-a.
    pub fn event_notes(&self, kind: &str, name: &str, reason: &str) -> Vec<String> {
        self.events(kind, name)
            .iter()
            .filter(|e| e["reason"] == reason)
            .filter_map(|e| e["note"].as_str().or_else(|| e["message"].as_str()).map(str::to_owned))
            .collect()
    }

    /// Whether an Event with `reason` was recorded about an object of team-a.
    pub fn has_event(&self, kind: &str, name: &str, reason: &str) -> bool {
        self.event_reasons(kind, name).iter().any(|r| r == reason)
    }

    /// Simulator requests whose route matches `pattern` (substring of `METHOD template`).
    pub fn requests_matching(&self, pattern: &str) -> u64 {
        self.bitbucket().request_counts().iter().filter(|(k, _)| k.contains(pattern)).map(|(_, v)| v).sum()
    }

    /// Simulator requests to exactly this `METHOD template`.
    pub fn requests_to(&self, endpoint: &str) -> u64 {
        self.bitbucket().request_counts().get(endpoint).copied().unwrap_or(0)
    }

    /// Starts sampling the simulator's request counter every few milliseconds.
    pub fn sample_requests(&self) -> Sampler {
        let simulator = self.bitbucket().clone();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let samples = samples.clone();
            tokio::spawn(async move {
                loop {
                    let count = simulator.request_count();
                    samples.lock().unwrap_or_else(PoisonError::into_inner).push((Instant::now(), count));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        Sampler { samples, task }
    }

    pub async fn shutdown(mut self) {
        self.stop_operator().await;
        self.sim.shutdown().await;
    }
}

/// Samples of the simulator's request counter over time.
pub struct Sampler {
    samples: Arc<Mutex<Vec<(Instant, u64)>>>,
    task: JoinHandle<()>,
}

impl Sampler {
    /// Stops sampling and returns the samples, oldest first.
    pub fn finish(self) -> Vec<(Instant, u64)> {
        self.task.abort();
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The worst excess of any window between two samples over what a token bucket of `rate` per
/// second and `burst` allows, when requests may be recorded up to `skew` after they took their
/// token: the largest `served - (burst + rate * (window + skew))`, negative when it was kept.
pub fn worst_excess(samples: &[(Instant, u64)], rate: f64, burst: f64, skew: Duration) -> f64 {
    let mut worst = f64::NEG_INFINITY;
    for (i, (start, before)) in samples.iter().enumerate() {
        for (end, after) in &samples[i + 1..] {
            let window = end.duration_since(*start) + skew;
            let allowed = burst + rate * window.as_secs_f64();
            worst = worst.max((after - before) as f64 - allowed);
        }
    }
    worst
}

fn reasons_of(events: &[Value]) -> Vec<String> {
    events.iter().filter_map(|e| e["reason"].as_str().map(str::to_owned)).collect()
}

/// A condition of an object.
pub fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}

/// The Ready condition of an object.
pub fn ready(object: &Value) -> Option<&Value> {
    condition(object, "Ready")
}

/// The reason of the Ready condition ("" without one).
pub fn reason(object: &Value) -> String {
    ready(object).and_then(|c| c["reason"].as_str()).unwrap_or_default().to_owned()
}

/// The message of the Ready condition ("" without one).
pub fn message(object: &Value) -> String {
    ready(object).and_then(|c| c["message"].as_str()).unwrap_or_default().to_owned()
}

/// Whether a condition is True.
pub fn is_true(object: &Value, type_: &str) -> bool {
    condition(object, type_).is_some_and(|c| c["status"] == "True")
}

/// The ids in a status's record of repositories (`repositoryIds`, or another field so written).
pub fn recorded_ids(object: &Value, field: &str) -> Vec<i64> {
    let record: bitbucket_operator::api::coverage::RepositoryIds =
        serde_json::from_value(object["status"][field].clone()).unwrap_or_default();
    record.ids().unwrap_or_else(|e| panic!("{e}: {object:#}"))
}

/// The repositories (by slug, sorted) whose ids an object's status records, as named in
/// `project` of the simulator now.
pub fn recorded_slugs(env: &Env, object: &Value, project: &str) -> Vec<String> {
    let ids = recorded_ids(object, "repositoryIds");
    let mut slugs: Vec<String> = env
        .repositories_in(project)
        .iter()
        .filter(|r| r["id"].as_i64().is_some_and(|id| ids.contains(&id)))
        .filter_map(|r| r["slug"].as_str().map(str::to_owned))
        .collect();
    slugs.sort();
    slugs
}

/// A status's entry for a repository that needs attention.
pub fn attention_entry<'a>(object: &'a Value, slug: &str) -> Option<&'a Value> {
    object["status"]["needsAttention"].as_array()?.iter().find(|r| r["slug"] == slug)
}

/// Requests in `log` with `method` whose path is under repository `project/slug` and ends
/// with `tail` (`/webhooks`, a report key ...).
pub fn on_repository(log: &[RequestRecord], method: &str, project: &str, slug: &str, tail: &str) -> usize {
    let api = format!("/projects/{project}/repos/{slug}/");
    log.iter().filter(|r| r.method == method && r.path.contains(&api) && r.path.ends_with(tail)).count()
}
