//! `demo`: the operator's round on the embedded simulators (Bitbucket, and SonarQube beside it),
//! from the examples, in seconds and without a cluster: plan, apply, a table of what became
//! Ready, then changes behind the operator's back in both that `plan` sees and `apply` repairs.

use std::{net::SocketAddr, path::Path};

use serde_json::Value;

use super::{
    Error,
    manifests::{LoadOptions, ManifestError, Manifests},
    plan::{Mode, Progress, RunReport, run},
    simulator::{DEFAULT_SEED, sonarqube_seed, start, start_sonarqube},
};
use crate::{
    plan::status::Phase,
    simulator::{RunningSimulator, Seed, sonarqube::RunningSonarQube},
};

/// The examples, as shipped (file name, content).
const EXAMPLES: &[(&str, &str)] = &[
    ("secret-token.yaml", include_str!("../../examples/secret-token.yaml")),
    ("secret-webhook.yaml", include_str!("../../examples/secret-webhook.yaml")),
    ("secret-sonarqube-bitbucket-token.yaml", include_str!("../../examples/secret-sonarqube-bitbucket-token.yaml")),
    ("sonarqube-configuration.yaml", include_str!("../../examples/sonarqube-configuration.yaml")),
    ("configuration.yaml", include_str!("../../examples/configuration.yaml")),
    ("cluster-configuration.yaml", include_str!("../../examples/cluster-configuration.yaml")),
    ("binding-single-repository.yaml", include_str!("../../examples/binding-single-repository.yaml")),
    ("binding-selection.yaml", include_str!("../../examples/binding-selection.yaml")),
    ("binding-monorepo.yaml", include_str!("../../examples/binding-monorepo.yaml")),
    ("required-report-sonarqube.yaml", include_str!("../../examples/required-report-sonarqube.yaml")),
    ("required-report-observe.yaml", include_str!("../../examples/required-report-observe.yaml")),
    ("required-build.yaml", include_str!("../../examples/required-build.yaml")),
];

/// The namespace the demo puts the examples in (also the operator's, for the cluster-scoped
/// configuration's Secret).
const NAMESPACE: &str = "demo";

/// The examples as manifests, pointed at `url` (Bitbucket) and `sonarqube_url`.
pub fn examples(url: &str, sonarqube_url: &str) -> Result<Manifests, Error> {
    let options = LoadOptions { default_namespace: NAMESPACE.into(), operator_namespace: NAMESPACE.into() };
    let mut manifests = Manifests { operator_namespace: NAMESPACE.into(), ..Default::default() };
    let mut problems = Vec::new();
    for (name, text) in EXAMPLES {
        problems.extend(manifests.read_text(text, &Path::new("examples").join(name), &options));
    }
    if !problems.is_empty() {
        return Err(Error::Examples(ManifestError { problems }));
    }
    manifests.point_at(url);
    manifests.point_sonarqube_at(sonarqube_url);
    // The simulators have no rate limit of their own; the demo need not wait for one.
    for item in &mut manifests.configurations {
        item.object.spec.rate_limit.requests_per_second = 200;
        item.object.spec.rate_limit.burst = 200;
    }
    for item in &mut manifests.sonarqube_configurations {
        item.object.spec.rate_limit.requests_per_second = 200;
        item.object.spec.rate_limit.burst = 200;
    }
    Ok(manifests)
}

/// Runs `demo` as the command line asks, on standard output: 0 when everything converged.
pub async fn execute() -> Result<u8, Error> {
    let converged = demo(&mut std::io::stdout()).await?;
    Ok(if converged { 0 } else { 1 })
}

/// Runs the demo, writing to `out`. Returns whether everything converged.
pub async fn demo(out: &mut dyn std::io::Write) -> Result<bool, Error> {
    let seed = Seed::from_yaml(DEFAULT_SEED)
        .map_err(|source| Error::Seed { origin: "the built-in seed".to_owned(), source })?;
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let simulator = start(seed, loopback, false).await?;
    let sonarqube = match start_sonarqube(sonarqube_seed(None)?, loopback, false).await {
        Ok(sonarqube) => sonarqube,
        Err(error) => {
            simulator.shutdown().await;
            return Err(error);
        }
    };
    let result = steps(&simulator, &sonarqube, out).await;
    sonarqube.shutdown().await;
    simulator.shutdown().await;
    result
}

async fn steps(
    simulator: &RunningSimulator,
    sonarqube: &RunningSonarQube,
    out: &mut dyn std::io::Write,
) -> Result<bool, Error> {
    let url = simulator.base_url();
    let sonarqube_url = sonarqube.base_url();
    let manifests = examples(&url, &sonarqube_url)?;
    let targets = manifests.targets();
    let total = targets.count();
    let write = |out: &mut dyn std::io::Write, text: &str| out.write_all(text.as_bytes()).map_err(Error::Output);

    write(
        out,
        &format!(
            "A Bitbucket simulator runs at {url}, seeded from examples/simulator-seed.yaml,\n\
         and a SonarQube simulator (Enterprise edition) at {sonarqube_url}, seeded from examples/sonarqube-seed.yaml.\n\
         The {} resources of examples/ are read as the cluster would store them.\n\n== 1. plan: what the operator would change ==\n",
            total
        ),
    )?;
    let plan = run(&targets, Mode::Plan, &mut Progress::new(total, true)).await;
    write(out, &plan.render_text())?;

    write(out, "\n== 2. apply: the operator's round, once ==\n")?;
    let applied = run(&targets, Mode::Apply, &mut Progress::new(total, true)).await;
    write(out, &applied.render_text())?;
    write(out, &format!("\n{}\n", table(&applied)))?;
    write(out, &format!("== What now exists in Bitbucket ==\n{}\n", inventory(simulator)))?;
    write(out, &format!("== What now exists in SonarQube ==\n{}\n", sonarqube_state(sonarqube)))?;

    write(out, "== 3. Someone changes Bitbucket and SonarQube behind the operator's back ==\n")?;
    let sim = simulator.simulator();
    sim.delete_merge_check("PAY", "payments-api", "com.sonarsource.sonarqube")?;
    // In Repository settings > Required builds, someone deletes the quality-gate condition.
    for condition in sim.required_builds("PAY", "payments-api")? {
        if let Some(id) = condition["id"].as_i64() {
            sim.delete_required_build("PAY", "payments-api", id)?;
        }
    }
    let hooks = sim.webhooks("PLAT", "api-gateway")?;
    for hook in hooks.iter().filter(|h| h["name"] == "ci-build") {
        if let Some(id) = hook["id"].as_i64() {
            sim.delete_webhook("PLAT", "api-gateway", id)?;
        }
    }
    // In SonarQube's Project Settings > DevOps Platform Integration, someone points a project
    // at another repository.
    sonarqube.simulator().set_binding("PLAT_api-gateway", "bitbucket", "PLAT", "auth-service", false)?;
    write(
        out,
        "    removed the SonarQube required report of PAY/payments-api\n    \
         deleted the required build (sonarqube-quality-gate) of PAY/payments-api\n    \
         deleted the ci-build webhook of PLAT/api-gateway\n    \
         bound the SonarQube project PLAT_api-gateway to PLAT/auth-service in SonarQube's UI\n\n",
    )?;

    write(out, "== 4. plan sees the drift ==\n")?;
    let drift = run(&targets, Mode::Plan, &mut Progress::new(total, true)).await;
    write(out, &drift.render_text())?;
    write(out, "\n== 5. apply repairs it ==\n")?;
    let repaired = run(&targets, Mode::Apply, &mut Progress::new(total, true)).await;
    write(out, &repaired.render_text())?;
    let after = run(&targets, Mode::Plan, &mut Progress::new(total, true)).await;
    let converged = after.exit_code() == 0 && repaired.exit_code() == 0;
    write(
        out,
        &format!(
            "\n== 6. plan again: {} ==\n",
            if converged { "nothing left to change" } else { "something is still off (see above)" }
        ),
    )?;
    write(out, &format!("{}\n", table(&repaired)))?;
    write(out, &format!("== SonarQube after the repair ==\n{}\n", sonarqube_state(sonarqube)))?;
    write(
        out,
        "Try it by hand: `bitbucket-operator simulator` in one terminal, then `bitbucket-operator plan -f examples/ --url http://127.0.0.1:7990 --sonarqube-url http://127.0.0.1:9000` in another;\n\
         `bitbucket-operator inventory -f examples/ --url http://127.0.0.1:7990` lists every repository a binding selects, with its webhooks, required reports and required builds.\n",
    )?;
    Ok(converged)
}

/// A table of resources with Ready and reason, like `kubectl get bitbucket`.
pub fn table(report: &RunReport) -> String {
    let rows: Vec<[String; 4]> = report
        .resources
        .iter()
        .map(|r| {
            let ready = if r.outcome.phase == Phase::Ready { "True" } else { "False" };
            [r.id.to_string(), ready.to_owned(), r.outcome.reason.to_owned(), r.outcome.message.clone()]
        })
        .collect();
    let width = |i: usize, title: &str| rows.iter().map(|r| r[i].len()).max().unwrap_or(0).max(title.len());
    let (w0, w1, w2) = (width(0, "RESOURCE"), width(1, "READY"), width(2, "REASON"));
    let mut text = format!("{:<w0$}  {:<w1$}  {:<w2$}  MESSAGE\n", "RESOURCE", "READY", "REASON");
    for row in rows {
        text.push_str(&format!("{:<w0$}  {:<w1$}  {:<w2$}  {}\n", row[0], row[1], row[2], row[3]));
    }
    text
}

/// The DevOps Platform settings and the projects with their bindings, as the SonarQube simulator
/// holds them (never a token).
fn sonarqube_state(sonarqube: &RunningSonarQube) -> String {
    let sim = sonarqube.simulator();
    let mut text = String::new();
    for setting in sim.alm_settings_json().as_array().into_iter().flatten() {
        text.push_str(&format!(
            "  DevOps Platform setting {} ({}): {}, {} project(s) bound\n",
            setting["key"].as_str().unwrap_or_default(),
            setting["alm"].as_str().unwrap_or_default(),
            setting["url"].as_str().unwrap_or_default(),
            setting["bindings"].as_u64().unwrap_or_default()
        ));
    }
    for (key, name) in sim.projects() {
        let bound = match sim.binding(&key) {
            Some(binding) => format!(
                "bound to {}/{} through setting {}{}",
                binding["repository"].as_str().unwrap_or_default(),
                binding["slug"].as_str().unwrap_or_default(),
                binding["key"].as_str().unwrap_or_default(),
                if binding["monorepo"] == true { " (monorepo)" } else { "" }
            ),
            None => "not bound".to_owned(),
        };
        text.push_str(&format!("  project {key} ({name}): {bound}\n"));
    }
    if text.is_empty() { "  (nothing)\n".into() } else { text }
}

/// Webhooks and required reports per repository, as the simulator holds them.
fn inventory(simulator: &RunningSimulator) -> String {
    let state = simulator.simulator().state_json();
    let mut text = String::new();
    for project in state["projects"].as_array().into_iter().flatten() {
        let key = project["key"].as_str().unwrap_or_default();
        for repository in project["repositories"].as_array().into_iter().flatten() {
            let slug = repository["slug"].as_str().unwrap_or_default();
            let hooks = simulator.simulator().webhooks(key, slug).unwrap_or_default();
            let names: Vec<&str> = hooks.iter().filter_map(|h| h["name"].as_str()).collect();
            let checks: Vec<String> = repository["mergeChecks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let must = if c["mustPass"] == true { "must pass" } else { "must exist" };
                    format!("{} ({must})", c["reportKey"].as_str().unwrap_or_default())
                })
                .collect();
            let builds: Vec<String> = repository["requiredBuilds"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let keys: Vec<&str> =
                        c["buildParentKeys"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                    let branch = c["refMatcher"]["displayId"].as_str().unwrap_or_default();
                    format!("{} on {branch} (condition {})", keys.join(", "), c["id"])
                })
                .collect();
            if names.is_empty() && checks.is_empty() && builds.is_empty() {
                continue;
            }
            text.push_str(&format!("  {key}/{slug}\n"));
            if !names.is_empty() {
                text.push_str(&format!("      webhooks: {}\n", names.join(", ")));
            }
            if !checks.is_empty() {
                text.push_str(&format!("      required reports: {}\n", checks.join(", ")));
            }
            if !builds.is_empty() {
                text.push_str(&format!("      required builds: {}\n", builds.join("; ")));
            }
        }
    }
    if text.is_empty() { "  (nothing)\n".into() } else { text }
}
