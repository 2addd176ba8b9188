//! The Bitbucket and the manifests the tests share: one simulator seed, and a configuration, a
//! binding and a report that work against it. Manifests carry no namespace (the controllers'
//! harness puts them in team-a, the CLI in default), and `{URL}` stands for the simulator's URL:
//! the harness fills it in when it applies them, [`fill`] does it for a file.

/// Bitbucket 9.4.22 with `svc-operator` (admin of PAY and PLAT; [`OPERATOR_TOKEN`] or
/// [`OPERATOR_PASSWORD`]) and `reader` (may only read them; [`READER_TOKEN`]). PAY holds
/// payments-api; PLAT holds three repositories a selection takes, sandbox-alice and the
/// archived old-deployer.
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

/// The token of `svc-operator` in [`SEED`], as [`CONFIGURATION`]'s Secret holds it.
pub const OPERATOR_TOKEN: &str = "BBDC-operator-token";

/// The password of `svc-operator` in [`SEED`].
pub const OPERATOR_PASSWORD: &str = "correct horse";

/// The token of `reader` in [`SEED`].
pub const READER_TOKEN: &str = "BBDC-reader-token";

/// [`SEED`] plus a project BIG of `n` repositories, `repo-000` ..., that only `svc-operator`
/// may see.
pub fn many(n: usize) -> String {
    let mut seed = SEED.to_owned();
    seed.push_str("  - key: BIG\n    name: Big\n    permissions: {svc-operator: PROJECT_ADMIN}\n    repositories:\n");
    for i in 0..n {
        seed.push_str(&format!("      - slug: {}\n", big_slug(i)));
    }
    seed
}

/// The slug of the `i`th repository of BIG in [`many`].
pub fn big_slug(i: usize) -> String {
    format!("repo-{i:03}")
}

/// `seed` with `lines` added after `line`, which it must hold once.
pub fn insert_after(seed: &str, line: &str, lines: &str) -> String {
    assert_eq!(seed.matches(line).count(), 1, "{line:?} must be in the seed exactly once");
    seed.replacen(line, &format!("{line}{lines}"), 1)
}

/// A labelled token Secret `bitbucket-token` holding [`OPERATOR_TOKEN`], and a
/// BitbucketConfiguration `bitbucket` at `{URL}` that uses it.
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

/// The start of a binding `payments` of the single repository PAY/payments-api.
macro_rules! payments_binding {
    () => {
        r#"
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: ProjectBinding
metadata: {name: payments}
spec:
  configurationRef: {name: bitbucket}
  projectKey: PAY
  repositorySlug: payments-api
"#
    };
}

/// The webhook `ci` as a binding's spec lists it.
macro_rules! ci_webhook {
    () => {
        r#"  webhooks:
    - name: ci
      url: https://ci.example.com/hook
      events: ["repo:refs_changed"]
"#
    };
}

/// [`BINDING`] without its webhook.
pub const BARE_BINDING: &str = payments_binding!();

/// A binding `payments` of the single repository PAY/payments-api with one webhook `ci`.
pub const BINDING: &str = concat!(payments_binding!(), ci_webhook!());

/// The SonarQube RequiredReport `sonarqube` on the binding `payments`.
pub const REPORT: &str = r#"
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: RequiredReport
metadata: {name: sonarqube}
spec:
  bindingRef: {name: payments}
"#;

/// [`CONFIGURATION`], [`BINDING`] and [`REPORT`] in one file: everything payments-api needs.
pub fn manifests() -> String {
    [CONFIGURATION, BINDING, REPORT].join("---")
}

/// A binding `big` of every repository of BIG (see [`many`]) with one webhook `ci`, and the
/// SonarQube RequiredReport `big-sonarqube` on it.
pub const BIG: &str = concat!(
    r#"
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: ProjectBinding
metadata: {name: big}
spec:
  configurationRef: {name: bitbucket}
  projectKey: BIG
  repositories: {}
"#,
    ci_webhook!(),
    r#"---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: RequiredReport
metadata: {name: big-sonarqube}
spec:
  bindingRef: {name: big}
"#
);

/// A binding `platform` of the repositories of PLAT that match `include` (a YAML list of
/// globs) with one webhook `ci`, and the SonarQube RequiredReport `sonarqube` on it.
pub fn platform(include: &str) -> String {
    format!(
        r#"
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: ProjectBinding
metadata: {{name: platform}}
spec:
  configurationRef: {{name: bitbucket}}
  projectKey: PLAT
  repositories: {{include: {include}}}
{webhook}---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: RequiredReport
metadata: {{name: sonarqube}}
spec:
  bindingRef: {{name: platform}}
"#,
        webhook = ci_webhook!()
    )
}

/// `yaml` with `{URL}` pointing at `url` and `token` where it holds [`OPERATOR_TOKEN`].
pub fn fill(yaml: &str, url: &str, token: &str) -> String {
    yaml.replace("{URL}", url).replace(OPERATOR_TOKEN, token)
}
