//! The Helm chart, rendered and linted by Helm's own engine (the helm-python-sdk package bundles
//! Helm's Go SDK), and the Argo CD health checks run by a real Lua (lupa), against statuses built
//! by the operator's own condition code. Both run in the Python `HELM_PYTHON` names, or else in
//! the venv `tests/python/setup.sh` prepares in `target/helm-venv` (CI runs it before the tests).

use std::{collections::BTreeSet, path::PathBuf, process::Command, sync::OnceLock};

use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A Python that can `import helm_python, lupa`.
fn python() -> PathBuf {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let python = PYTHON.get_or_init(|| {
        if let Ok(python) = std::env::var("HELM_PYTHON") {
            return Ok(PathBuf::from(python));
        }
        let python = root().join("target").join("helm-venv").join("bin").join("python");
        let works =
            Command::new(&python).args(["-c", "import helm_python, lupa"]).output().is_ok_and(|o| o.status.success());
        if works {
            return Ok(python);
        }
        let setup = root().join("tests").join("python").join("setup.sh");
        Err(format!(
            "the chart tests need helm-python-sdk and lupa in target/helm-venv, which is missing or incomplete; \
             prepare it with: bash {}",
            setup.display()
        ))
    });
    python.clone().unwrap_or_else(|message| panic!("{message}"))
}

struct Rendered {
    objects: Vec<Value>,
    crds: Vec<String>,
    lint: Value,
}

fn render(values: Value) -> Rendered {
    let chart = root().join("charts").join("bitbucket-operator");
    let output = Command::new(python())
        .arg(root().join("tests").join("python").join("render.py"))
        .arg(&chart)
        .arg(values.to_string())
        .arg("operators")
        .output()
        .expect("run the renderer");
    assert!(output.status.success(), "render failed: {}", String::from_utf8_lossy(&output.stderr));
    let result: Value = serde_json::from_slice(&output.stdout).expect("renderer JSON");
    let mut objects = Vec::new();
    for text in result["manifests"].as_object().into_iter().flatten().filter_map(|(_, t)| t.as_str()) {
        let documents: Vec<Value> = serde_saphyr::from_multiple(text).expect("rendered YAML");
        objects.extend(documents.into_iter().filter(|d| !d.is_null()));
    }
    let crds = result["crds"].as_array().into_iter().flatten().filter_map(|c| c.as_str().map(str::to_owned)).collect();
    Rendered { objects, crds, lint: result["lint"].clone() }
}

fn find<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn assert_lints_clean(rendered: &Rendered) {
    let errors = rendered.lint["errors"].as_array().cloned().unwrap_or_default();
    assert!(errors.is_empty(), "lint errors: {errors:?}");
    for message in rendered.lint["messages"].as_array().into_iter().flatten() {
        assert!(message["severity"].as_i64().unwrap_or(0) < 2, "lint: {message}");
    }
}

/// What the operator does with the Kubernetes API (see src/controller): every rendered RBAC rule
/// must be within this, so the chart grants nothing more.
fn used() -> BTreeSet<(String, String, String)> {
    let mut used = BTreeSet::new();
    let mut add = |group: &str, resources: &[&str], verbs: &[&str]| {
        for resource in resources {
            for verb in verbs {
                used.insert((group.to_owned(), (*resource).to_owned(), (*verb).to_owned()));
            }
        }
    };
    // Every kind the operator serves: it reconciles each of them.
    let plurals: Vec<String> = bitbucket_operator::api::crds().into_iter().map(|crd| crd.spec.names.plural).collect();
    let kinds: Vec<&str> = plurals.iter().map(String::as_str).collect();
    add("bitbucket.integrations.dev", &kinds, &["get", "list", "watch", "patch", "update"]);
    let status: Vec<String> = kinds.iter().map(|k| format!("{k}/status")).collect();
    add(
        "bitbucket.integrations.dev",
        &status.iter().map(String::as_str).collect::<Vec<_>>(),
        &["get", "patch", "update"],
    );
    let finalizers: Vec<String> = kinds.iter().map(|k| format!("{k}/finalizers")).collect();
    add("bitbucket.integrations.dev", &finalizers.iter().map(String::as_str).collect::<Vec<_>>(), &["update"]);
    add("", &["secrets"], &["get", "list", "watch"]);
    add("", &["namespaces"], &["get"]);
    add("events.k8s.io", &["events"], &["create", "patch"]);
    add("coordination.k8s.io", &["leases"], &["get", "create", "update"]);
    used
}

fn assert_least_privilege(objects: &[Value]) {
    let used = used();
    for role in objects.iter().filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role") {
        for rule in role["rules"].as_array().into_iter().flatten() {
            for group in rule["apiGroups"].as_array().into_iter().flatten() {
                for resource in rule["resources"].as_array().into_iter().flatten() {
                    for verb in rule["verbs"].as_array().into_iter().flatten() {
                        let grant = (
                            group.as_str().unwrap_or("*").to_owned(),
                            resource.as_str().unwrap_or("*").to_owned(),
                            verb.as_str().unwrap_or("*").to_owned(),
                        );
                        assert!(
                            used.contains(&grant),
                            "{} grants {grant:?}, which the operator does not use",
                            role["metadata"]["name"]
                        );
                    }
                }
            }
            assert!(rule.get("resourceNames").is_none() || rule["resourceNames"].is_array());
        }
    }
}

/// The other way round: the ClusterRole grants everything the operator does with its own kinds,
/// so a new kind cannot ship without its rights.
fn assert_grants_every_kind(objects: &[Value]) {
    let mut granted = BTreeSet::new();
    for role in find(objects, "ClusterRole") {
        for rule in role["rules"].as_array().into_iter().flatten() {
            let strings = |field: &str| -> Vec<String> {
                rule[field].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
            };
            for group in strings("apiGroups") {
                for resource in strings("resources") {
                    for verb in strings("verbs") {
                        granted.insert((group.clone(), resource.clone(), verb));
                    }
                }
            }
        }
    }
    for grant in used().into_iter().filter(|(group, _, _)| group == "bitbucket.integrations.dev") {
        assert!(granted.contains(&grant), "the ClusterRole lacks {grant:?}");
    }
}

#[test]
fn the_chart_renders_and_lints_with_default_values() {
    let rendered = render(json!({}));
    assert_lints_clean(&rendered);
    assert_least_privilege(&rendered.objects);
    assert_grants_every_kind(&rendered.objects);
    let deployment = find(&rendered.objects, "Deployment");
    assert_eq!(deployment.len(), 1);
    let pod = &deployment[0]["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["args"][0], "run");
    assert_eq!(find(&rendered.objects, "ServiceAccount").len(), 1);
    assert_eq!(find(&rendered.objects, "Service").len(), 1);
    assert!(find(&rendered.objects, "ServiceMonitor").is_empty(), "off by default");
    let cluster_role = find(&rendered.objects, "ClusterRole");
    let grants_secrets =
        cluster_role[0]["rules"].as_array().into_iter().flatten().any(|r| r["resources"][0] == "secrets");
    assert!(grants_secrets, "watching all namespaces needs Secrets cluster-wide");
}

#[test]
fn non_default_values_reach_the_operator_and_narrow_its_rights() {
    let rendered = render(json!({
        "replicaCount": 2,
        "watchNamespaces": ["team-a", "team-b"],
        "labelSelector": "shard=a",
        "bitbucketHosts": ["bitbucket.example.com", "*.corp.example"],
        "logFormat": "text",
        "maxResyncInterval": "5m",
        "metrics": {"serviceMonitor": {"enabled": true}},
    }));
    assert_lints_clean(&rendered);
    assert_least_privilege(&rendered.objects);
    assert_grants_every_kind(&rendered.objects);
    let deployment = find(&rendered.objects, "Deployment")[0];
    assert_eq!(deployment["spec"]["replicas"], 2);
    let args: Vec<&str> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for expected in [
        "--watch-namespace=team-a,team-b",
        "--label-selector=shard=a",
        "--allowed-host=bitbucket.example.com,*.corp.example",
        "--max-resync-interval=5m",
        "--leader-elect=true",
    ] {
        assert!(args.contains(&expected), "{expected} missing from {args:?}");
    }
    assert!(!args.contains(&"--log-json"));
    assert_eq!(find(&rendered.objects, "ServiceMonitor").len(), 1);
    // Secrets only in the watched namespaces and the operator's own.
    let cluster_role = find(&rendered.objects, "ClusterRole")[0];
    assert!(!cluster_role["rules"].as_array().into_iter().flatten().any(|r| r["resources"][0] == "secrets"));
    let secret_roles: BTreeSet<&str> = find(&rendered.objects, "Role")
        .into_iter()
        .filter(|r| r["rules"][0]["resources"][0] == "secrets")
        .filter_map(|r| r["metadata"]["namespace"].as_str())
        .collect();
    assert_eq!(secret_roles, BTreeSet::from(["operators", "team-a", "team-b"]));
}

#[test]
fn the_chart_ships_the_current_crds() {
    let rendered = render(json!({}));
    let mut expected: Vec<String> = std::fs::read_dir(root().join("crds"))
        .expect("crds/")
        .filter_map(Result::ok)
        .map(|e| std::fs::read_to_string(e.path()).expect("read"))
        .collect();
    let mut shipped = rendered.crds.clone();
    expected.sort();
    shipped.sort();
    assert!(
        expected == shipped,
        "charts/bitbucket-operator/crds differs from crds/; run: cp crds/*.yaml charts/bitbucket-operator/crds/"
    );
}

mod health {
    use super::*;
    use bitbucket_operator::plan::{
        reasons,
        status::{Outcome, conditions},
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn object(kind: &str, generation: i64, observed: i64, outcome: Option<&Outcome>) -> Value {
        let time = Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap_or_default());
        let status = outcome
            .map(|o| json!({"observedGeneration": observed, "conditions": conditions(&[], o, Some(observed), &time)}));
        json!({
            "apiVersion": "bitbucket.integrations.dev/v1alpha1",
            "kind": kind,
            "metadata": {"name": "x", "generation": generation},
            "status": status,
        })
    }

    fn run_lua(objects: &[Value]) -> Vec<Value> {
        let output = Command::new(python())
            .arg(root().join("tests").join("python").join("lua_health.py"))
            .arg(root().join("health").join("argocd").join("health.lua"))
            .arg(Value::Array(objects.to_vec()).to_string())
            .output()
            .expect("run Lua");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<Vec<Value>>(&output.stdout).expect("JSON")
    }

    /// kstatus (what Flux reads): Current, InProgress or Failed.
    fn kstatus(object: &Value) -> &'static str {
        let generation = object["metadata"]["generation"].as_i64();
        let observed = object["status"]["observedGeneration"].as_i64();
        if object["status"].is_null() || observed < generation {
            return "InProgress";
        }
        let condition = |t: &str| {
            object["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == t)
                .map(|c| c["status"] == "True")
        };
        match (condition("Stalled"), condition("Reconciling"), condition("Ready")) {
            (Some(true), _, _) => "Failed",
            (_, Some(true), _) => "InProgress",
            (_, _, Some(true)) => "Current",
            _ => "InProgress",
        }
    }

    #[test]
    fn argo_cd_and_kstatus_read_every_kind_the_same_way() {
        let ready = Outcome::ready(reasons::BOUND, "3 repositories bound");
        let working = Outcome::reconciling(reasons::UNREACHABLE, "cannot reach Bitbucket");
        let stalled = Outcome::stalled(reasons::PROJECT_NOT_FOUND, "project PAY does not exist in Bitbucket");
        for kind in [
            "BitbucketConfiguration",
            "ClusterBitbucketConfiguration",
            "ProjectBinding",
            "RequiredReport",
            "RequiredBuild",
        ] {
            let cases = [
                (object(kind, 1, 1, Some(&ready)), "Healthy", "Current", "3 repositories bound"),
                (object(kind, 1, 1, Some(&working)), "Progressing", "InProgress", "Unreachable"),
                (object(kind, 1, 1, Some(&stalled)), "Degraded", "Failed", "ProjectNotFound: project PAY"),
                (object(kind, 2, 1, Some(&ready)), "Progressing", "InProgress", "latest spec"),
                (object(kind, 1, 0, None), "Progressing", "InProgress", "Waiting"),
            ];
            let objects: Vec<Value> = cases.iter().map(|c| c.0.clone()).collect();
            let results = run_lua(&objects);
            for ((object, health, flux, message), result) in cases.iter().zip(&results) {
                assert_eq!(result["status"], *health, "{kind}: {object}");
                assert!(result["message"].as_str().unwrap_or_default().contains(message), "{kind}: {result}");
                assert_eq!(kstatus(object), *flux, "{kind}: {object}");
            }
        }
    }
}
