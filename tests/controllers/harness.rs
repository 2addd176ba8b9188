//! The operator on the fake Kubernetes API and the Bitbucket simulator: start both, start and
//! stop the controllers, apply manifests, wait for status.

use std::time::Duration;

use bitbucket_operator::{
    controller::{self, Options},
    simulator::{RunningSimulator, Seed, Simulator},
};
use serde_json::Value;
use tokio::{sync::oneshot, task::JoinHandle};

use crate::fake_kube::FakeKube;

/// How long a test waits for the operator to converge.
pub const CONVERGE: Duration = Duration::from_secs(20);

pub const SEED: &str = r#"
server: {version: "9.4.22", displayName: Bitbucket}
users:
  - name: svc-operator
    displayName: Operator
    password: "correct horse"
    tokens: [{name: operator, token: BBDC-operator-token}]
  - name: reader
    password: "reader pass"
    tokens: [{name: reader, token: BBDC-reader-token}]
projects:
  - key: PAY
    name: Payments
    permissions: {svc-operator: PROJECT_ADMIN, reader: PROJECT_READ}
    repositories:
      - slug: payments-api
  - key: PLAT
    name: Platform
    permissions: {svc-operator: PROJECT_ADMIN, reader: PROJECT_READ}
    repositories:
      - slug: api-gateway
      - slug: auth-service
      - slug: build-tools
      - slug: sandbox-alice
      - slug: old-deployer
        archived: true
"#;

pub struct Env {
    pub fake: FakeKube,
    pub sim: RunningSimulator,
    operator: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    pub options: Options,
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
        Self { fake, sim, operator: None, options }
    }

    pub fn start_operator(&mut self) {
        assert!(self.operator.is_none(), "the operator already runs");
        let (stop, stopped) = oneshot::channel::<()>();
        let kube = self.fake.client();
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

    /// Waits until `check` holds for the object, and returns it.
    pub async fn wait(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        loop {
            let object = self.fake.object(resource, namespace, name);
            if let Some(object) = object.as_ref().filter(|o| check(o)) {
                return object.clone();
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "{resource} {namespace}/{name}: {what} did not happen within {CONVERGE:?}; last seen: {object:#?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the Ready condition to have `status` and `reason`.
    pub async fn wait_ready(&self, resource: &str, name: &str, status: &str, reason: &str) -> Value {
        self.wait(resource, "team-a", name, &format!("Ready={status} ({reason})"), |o| {
            ready(o).is_some_and(|c| c["status"] == status && c["reason"] == reason)
                && o["status"]["observedGeneration"] == o["metadata"]["generation"]
        })
        .await
    }

    /// Waits until `check` holds, polling.
    pub async fn eventually(&self, what: &str, check: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        while !check() {
            if tokio::time::Instant::now() > deadline {
                panic!("{what} did not happen within {CONVERGE:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
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

    /// Waits until an object is gone.
    pub async fn wait_gone(&self, resource: &str, name: &str) {
        self.eventually(&format!("{resource} {name} deleted"), || self.fake.object(resource, "team-a", name).is_none())
            .await;
    }

    /// The requests the simulator served, in order.
    pub fn log(&self) -> Vec<bitbucket_operator::simulator::RequestRecord> {
        self.sim.simulator().requests()
    }

    /// The reasons of the Events about an object.
    pub fn event_reasons(&self, kind: &str, name: &str) -> Vec<String> {
        self.fake
            .objects("events", Some("team-a"))
            .iter()
            .filter(|e| {
                let regarding = if e["regarding"].is_object() { &e["regarding"] } else { &e["involvedObject"] };
                regarding["kind"] == kind && regarding["name"] == name
            })
            .filter_map(|e| e["reason"].as_str().map(str::to_owned))
            .collect()
    }

    /// Simulator requests whose route matches `pattern` (substring of `METHOD template`).
    pub fn requests_matching(&self, pattern: &str) -> u64 {
        self.sim.simulator().request_counts().iter().filter(|(k, _)| k.contains(pattern)).map(|(_, v)| v).sum()
    }

    pub async fn shutdown(mut self) {
        self.stop_operator().await;
        self.sim.shutdown().await;
    }
}

/// The Ready condition of an object.
pub fn ready(object: &Value) -> Option<&Value> {
    object["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")
}

pub const CONFIGURATION: &str = r#"
apiVersion: v1
kind: Secret
metadata:
  name: bitbucket-token
  labels: {bitbucket.integrations.dev/credential: "true"}
stringData: {token: BBDC-operator-token}
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: BitbucketConfiguration
metadata: {name: bitbucket}
spec:
  url: {URL}
  allowInsecureHttp: true
  auth: {token: {secretRef: {name: bitbucket-token}}}
"#;
