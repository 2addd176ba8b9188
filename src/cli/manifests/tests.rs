//! The loader on texts: documents and positions, kinds, defaults, Secrets, references.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{
    LoadOptions, Manifests, Problem,
    documents::{documents, is_blank},
};
use crate::plan::reasons;

const GROUP_VERSION: &str = "apiVersion: bitbucket.integrations.dev/v1alpha1";

fn read(texts: &[(&str, &str)], options: &LoadOptions) -> (Manifests, Vec<Problem>) {
    let mut manifests = Manifests { operator_namespace: options.operator_namespace.clone(), ..Default::default() };
    let mut problems = Vec::new();
    for (file, text) in texts {
        problems.extend(manifests.read_text(text, Path::new(file), options));
    }
    (manifests, problems)
}

fn configuration(name: &str, namespace: Option<&str>) -> String {
    let namespace = namespace.map(|n| format!(", namespace: {n}")).unwrap_or_default();
    format!(
        "{GROUP_VERSION}\nkind: BitbucketConfiguration\nmetadata: {{name: {name}{namespace}}}\nspec:\n  url: https://bitbucket.example.com\n  auth: {{token: {{secretRef: {{name: token}}}}}}\n"
    )
}

fn cluster_configuration(name: &str, allowed: &str) -> String {
    format!(
        "{GROUP_VERSION}\nkind: ClusterBitbucketConfiguration\nmetadata: {{name: {name}, namespace: ignored}}\nspec:\n  url: https://bitbucket.example.com\n  auth: {{token: {{secretRef: {{name: token}}}}}}\n  allowedNamespaces: {allowed}\n"
    )
}

fn binding(name: &str, namespace: &str, reference: &str) -> String {
    format!(
        "{GROUP_VERSION}\nkind: ProjectBinding\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  configurationRef: {reference}\n  projectKey: PAY\n  repositorySlug: payments-api\n"
    )
}

const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\n  labels: {bitbucket.integrations.dev/credential: \"true\"}\nstringData: {token: BBDC-value}\n";

#[test]
fn documents_keep_their_numbers_and_the_file_lines() {
    let text = "# header\n---\na: 1\n---\n---\n# only a comment\n--- {b: 2}\n---\n";
    let documents = documents(text);
    let shown: Vec<(usize, u64, bool)> =
        documents.iter().map(|d| (d.number, d.first_line, is_blank(&d.text))).collect();
    // A leading marker does not start a second document; empty documents do not count.
    assert_eq!(shown, vec![(1, 2, false), (2, 7, false), (3, 8, true)]);
    let values: Vec<Value> = documents.iter().filter_map(|d| serde_saphyr::from_str::<Value>(&d.text).ok()).collect();
    assert_eq!(values[..2], [serde_json::json!({"a": 1}), serde_json::json!({"b": 2})]);
}

#[test]
fn yaml_errors_give_the_line_in_the_file_and_never_the_text() {
    let text = format!(
        "{SECRET}---\n{SECRET}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: x}}\nstringData: {{token: [BBDC-leaked\n"
    );
    let (_, problems) = read(&[("team.yaml", &text)], &LoadOptions::default());
    assert_eq!(problems.len(), 2, "{problems:?}");
    let Problem::Yaml { origin, line, .. } = &problems[1] else { panic!("{problems:?}") };
    assert_eq!((origin.document, *line), (3, 18), "{}", problems[1]);
    let text = problems[1].to_string();
    assert!(text.starts_with("team.yaml (document 3), line 18 column"), "{text}");
    assert!(!text.contains("BBDC-leaked"), "{text}");
    // The second Secret is the same as the first.
    assert!(problems[0].to_string().contains("defined twice (first in team.yaml (document 1))"), "{}", problems[0]);
}

#[test]
fn a_file_that_is_not_a_manifest_is_skipped_but_a_stray_document_is_not() {
    let seed = "server: {version: \"9.4.22\"}\n---\nusers: []\n";
    let stray = format!("{SECRET}---\nusers: []\n");
    let (manifests, problems) = read(&[("seed.yaml", seed), ("stray.yaml", &stray)], &LoadOptions::default());
    assert_eq!(manifests.skipped, vec![PathBuf::from("seed.yaml")]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].to_string().starts_with("stray.yaml (document 2): the object has no apiVersion"));
    assert_eq!(problems[0].file(), Path::new("stray.yaml"));
}

#[test]
fn list_items_and_unsupported_kinds_are_named() {
    let text = "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: c}\n  - apiVersion: bitbucket.integrations.dev/v1beta1\n    kind: ProjectBinding\n    metadata: {name: b}\n";
    let (_, problems) = read(&[("list.yaml", text)], &LoadOptions::default());
    let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts[0].starts_with("list.yaml (document 1) items[0]: apiVersion \"v1\" kind \"ConfigMap\""));
    assert!(texts[1].contains("(document 1) items[1]: apiVersion \"bitbucket.integrations.dev/v1beta1\""));
    assert!(texts.iter().all(|t| t.contains("the CLI reads")), "{texts:?}");
}

#[test]
fn objects_are_defaulted_and_namespaced_as_the_cluster_would() {
    let report =
        format!("{GROUP_VERSION}\nkind: RequiredReport\nmetadata: {{name: r}}\nspec: {{bindingRef: {{name: b}}}}\n");
    let options = LoadOptions { default_namespace: "team".into(), ..LoadOptions::default() };
    let text = format!("{report}---\n{}", cluster_configuration("shared", "{names: [team]}"));
    let (manifests, problems) = read(&[("r.yaml", &text)], &options);
    assert!(problems.is_empty(), "{problems:?}");
    let report = &manifests.reports[0].object;
    assert_eq!(report.metadata.namespace.as_deref(), Some("team"));
    assert!(report.spec.must_pass, "mustPass defaults to true");
    assert_eq!(manifests.cluster_configurations[0].object.metadata.namespace, None);
    let missing = manifests.binding_for(report).expect_err("no binding");
    assert_eq!(missing.reason(), reasons::BINDING_NOT_FOUND);
    assert!(missing.to_string().contains("ProjectBinding team/b is not among the manifests"), "{missing}");
}

#[test]
fn a_required_build_is_admitted_with_its_crd_rules_and_finds_its_binding() {
    let build = |name: &str, spec: &str| {
        format!(
            "{GROUP_VERSION}\nkind: RequiredBuild\nmetadata: {{name: {name}}}\nspec: {{bindingRef: {{name: b}}, {spec}}}\n"
        )
    };
    let good = build("gate", "buildParentKeys: [sonarqube-quality-gate]");
    let bad = build("bad", "buildParentKeys: [ci], refMatcher: {type: Branch, value: 'release/*'}");
    let text = format!("{good}---\n{bad}---\n{}---\n{good}", binding("b", "default", "{name: c}"));
    let (manifests, problems) = read(&[("b.yaml", &text)], &LoadOptions::default());
    let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    // The CEL rule of the CRD names the field and says what to use instead.
    assert!(texts[0].contains("RequiredBuild default/bad: spec.refMatcher"), "{}", texts[0]);
    assert!(texts[0].contains("use type Pattern"), "{}", texts[0]);
    assert!(texts[1].contains("(document 4)") && texts[1].contains("defined twice"), "{}", texts[1]);
    assert_eq!(manifests.builds.len(), 1);
    let found = manifests.binding_for_build(&manifests.builds[0].object).expect("the binding");
    assert_eq!(found.object.metadata.name.as_deref(), Some("b"));
    let targets = manifests.targets();
    assert_eq!(targets.builds.len(), 1);
    assert_eq!(targets.builds[0].binding, Ok(0));

    let (manifests, problems) = read(&[("b.yaml", &good)], &LoadOptions::default());
    assert!(problems.is_empty(), "{problems:?}");
    assert!(!manifests.is_empty(), "a RequiredBuild alone is something to plan");
    let missing = manifests.targets().builds.remove(0).binding.expect_err("no binding");
    assert_eq!(missing.reason, reasons::BINDING_NOT_FOUND);
    assert!(missing.message.contains("ProjectBinding default/b is not among the manifests"), "{}", missing.message);
}

#[test]
fn secrets_are_checked_without_showing_values() {
    let text = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  labels: {bitbucket.integrations.dev/credential: true}\ndata: {a: \"c2VjcmV0\", b: \"s3cr3t!\"}\nstringData: {c: 5}\n";
    let (manifests, problems) = read(&[("s.yaml", text)], &LoadOptions::default());
    let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(
        texts[0].contains("Secret default/s: metadata.labels.bitbucket.integrations.dev/credential must be a string")
    );
    assert!(texts[1].contains("data.b is not base64"));
    assert!(texts[2].contains("stringData.c must be a string"));
    assert!(!texts.iter().any(|t| t.contains("s3cr3t") || t.contains("c2VjcmV0")), "{texts:?}");
    assert!(manifests.secrets.is_empty());

    let good =
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {token: c2VjcmV0}\nstringData: {token: plain}\n";
    let (manifests, problems) = read(&[("s.yaml", good)], &LoadOptions::default());
    assert!(problems.is_empty(), "{problems:?}");
    let secret = manifests.secret("default", "s").expect("the Secret");
    assert_eq!(secret.data.get("token").map(Vec::as_slice), Some(&b"plain"[..]), "stringData wins");
}

#[test]
fn bindings_find_their_configuration_as_the_operator_would() {
    let options = LoadOptions { default_namespace: "team".into(), operator_namespace: "ops".into() };
    let texts = [
        ("c.yaml", configuration("bb", None)),
        ("other.yaml", configuration("elsewhere", Some("other"))),
        ("s.yaml", SECRET.replace("name: token", "name: token\n  namespace: ops")),
        ("names.yaml", cluster_configuration("by-name", "{names: [team]}")),
        ("all.yaml", cluster_configuration("everyone", "{selector: {}}")),
        (
            "label.yaml",
            cluster_configuration("by-label", "{selector: {matchLabels: {kubernetes.io/metadata.name: team}}}"),
        ),
        ("env.yaml", cluster_configuration("by-env", "{selector: {matchLabels: {env: prod}}}")),
    ];
    let texts: Vec<(&str, &str)> = texts.iter().map(|(f, t)| (*f, t.as_str())).collect();
    let (manifests, problems) = read(&texts, &options);
    assert!(problems.is_empty(), "{problems:?}");
    let resolve = |reference: &str| {
        let text = binding("b", "team", reference);
        let (extra, problems) = read(&[("b.yaml", &text)], &options);
        assert!(problems.is_empty(), "{problems:?}");
        manifests
            .configuration_for(&extra.bindings[0].object)
            .map(|c| (c.kind_name(), c.name.to_owned(), c.secret_namespace.to_owned()))
    };
    assert_eq!(resolve("{name: bb}"), Ok(("BitbucketConfiguration", "bb".into(), "team".into())));
    for name in ["by-name", "everyone", "by-label"] {
        let found = resolve(&format!("{{kind: ClusterBitbucketConfiguration, name: {name}}}"));
        assert_eq!(found, Ok(("ClusterBitbucketConfiguration", name.into(), "ops".into())));
    }
    let refused = resolve("{kind: ClusterBitbucketConfiguration, name: by-env}").expect_err("a label files lack");
    assert_eq!(refused.reason(), reasons::NAMESPACE_NOT_ALLOWED);
    let missing = resolve("{name: elsewhere}").expect_err("another namespace's");
    assert_eq!(missing.reason(), reasons::CONFIGURATION_NOT_FOUND);
    assert!(missing.to_string().contains("BitbucketConfiguration team/elsewhere"), "{missing}");
    let missing = resolve("{kind: ClusterBitbucketConfiguration, name: bb}").expect_err("wrong kind");
    assert!(missing.to_string().starts_with("ClusterBitbucketConfiguration bb is not"), "{missing}");

    // Cluster-scoped configurations read their Secret in the operator's namespace.
    let all = manifests.all_configurations();
    let cluster = all.iter().find(|c| c.name == "by-name").expect("by-name");
    assert!(manifests.client_config(cluster).is_ok());
    let namespaced = all.iter().find(|c| c.name == "bb").expect("bb");
    assert_eq!(manifests.client_config(namespaced).map(|_| ()).map_err(|e| e.reason()), Err(reasons::SECRET_NOT_FOUND));
}

#[test]
fn targets_carry_the_resolution() {
    let options = LoadOptions::default();
    let text = format!("{}---\n{SECRET}---\n{}", configuration("bb", None), binding("b", "default", "{name: missing}"));
    let (manifests, problems) = read(&[("t.yaml", &text)], &options);
    assert!(problems.is_empty(), "{problems:?}");
    let targets = manifests.targets();
    assert!(targets.configurations[0].settings.is_ok());
    assert_eq!(targets.configurations[0].source, "t.yaml (document 1)");
    let outcome = targets.bindings[0].configuration.as_ref().expect_err("no such configuration");
    assert_eq!(outcome.reason, reasons::CONFIGURATION_NOT_FOUND);
}
