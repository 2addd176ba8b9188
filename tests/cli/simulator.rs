//! The `simulator` and `demo` commands as a user runs them: the real binary, serving what
//! `check` accepts, and the demo's tour of the examples.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use crate::support::workspace::{BIN, Workspace, all, closed_port, run, stderr, stdout};

/// The token of the service account the simulator serves when it is given no seed.
const DEFAULT_TOKEN: &str = "BBDC-replace-with-your-http-access-token";

/// The administrator's token of the default SonarQube seed.
const SONARQUBE_TOKEN: &str = "squ_replace-with-your-sonarqube-user-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_command_serves_what_check_accepts() {
    let ws = Workspace::new("simulator");
    let listen = format!("127.0.0.1:{}", closed_port());
    let mut child = Command::new(BIN)
        .args(["simulator", "--listen", &listen, "--sonarqube-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the simulator");
    let token = ws.write("token", DEFAULT_TOKEN);
    let url = format!("http://{listen}");
    let mut last = String::new();
    for _ in 0..100 {
        let output = run(&["check", "--url", &url, "--token-file", &token]).await;
        last = all(&output);
        if output.status.success() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(last.contains("OK: connected as svc-operator"), "{last}");
    let refused = run(&["simulator", "--listen", "0.0.0.0:0"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(all(&refused).contains("--allow-remote"), "{}", all(&refused));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_command_prints_its_url_and_serves_check() {
    let mut child = Command::new(BIN)
        .args(["simulator", "--listen", "127.0.0.1:0", "--sonarqube-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the simulator");
    let pipe = child.stdout.take().expect("stdout");
    let banner = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let done = line.starts_with("Stop it with Ctrl-C");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    let banner = tokio::time::timeout(Duration::from_secs(30), banner).await;
    let banner = match banner {
        Ok(joined) => joined.expect("join"),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the simulator printed no banner within 30s");
        }
    };
    let url = banner
        .iter()
        .find_map(|line| line.split_once(" listening on ").map(|(_, url)| url.trim().to_owned()))
        .unwrap_or_default();
    let sonarqube = banner
        .iter()
        .filter(|line| line.starts_with("SonarQube simulator"))
        .find_map(|line| line.split_once(" listening on ").map(|(_, url)| url.trim().to_owned()))
        .unwrap_or_default();
    let ws = Workspace::new("simulator");
    let token = ws.write("token", &format!("{DEFAULT_TOKEN}\n"));
    let output = run(&["check", "--url", &url, "--token-file", &token]).await;
    // The SonarQube simulator answers an administrator's request with the banner's token.
    let definitions = reqwest::Client::new()
        .get(format!("{sonarqube}/api/alm_settings/list_definitions"))
        .basic_auth(SONARQUBE_TOKEN, Some(""))
        .send()
        .await;
    let _ = child.kill();
    let _ = child.wait();
    let text = banner.join("\n");
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"), "{text}");
    assert!(text.contains("svc-operator") && text.contains("fake by design"), "{text}");
    assert_eq!(output.status.code(), Some(0), "{}", all(&output));
    assert!(stdout(&output).contains("OK: connected as svc-operator"), "{}", all(&output));
    assert!(text.contains(SONARQUBE_TOKEN) && sonarqube != url, "{text}");
    assert_eq!(definitions.map(|r| r.status().as_u16()).ok(), Some(200), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_refuses_remote_addresses_and_names_a_bad_seed() {
    let refused = run(&["simulator", "--listen", "0.0.0.0:0"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(all(&refused).contains("--allow-remote"), "{}", all(&refused));

    let ws = Workspace::new("seed");
    let seed = ws.write("seed.yaml", "users:\n  - name: a\n    colour: blue\n");
    let output = run(&["simulator", "--seed", &seed, "--listen", "127.0.0.1:0"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", all(&output));
    let err = stderr(&output);
    assert!(err.contains("seed.yaml") && err.contains("colour"), "{err}");

    let sonar = ws.write("sonar.yaml", "edition: free\n");
    let output = run(&["simulator", "--sonarqube-seed", &sonar, "--listen", "127.0.0.1:0"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", all(&output));
    let err = stderr(&output);
    assert!(err.contains("sonar.yaml") && err.contains("edition"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_the_examples_to_convergence_and_prints_its_table() {
    let started = std::time::Instant::now();
    let output = run(&["demo"]).await;
    let out = all(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(out.contains("RESOURCE") && out.contains("READY") && out.contains("REASON"), "{out}");
    assert!(out.contains("ProjectBinding demo/platform-services") && out.contains("Bound"), "{out}");
    assert!(out.contains("plan sees the drift") && out.contains("nothing left to change"), "{out}");
    // SonarQube's half: the setting, the created projects and their bindings, and the binding
    // changed in SonarQube's UI that plan sees and apply puts back.
    let sonarqube = out.split("== What now exists in SonarQube ==").nth(1).unwrap_or_default();
    assert!(sonarqube.contains("DevOps Platform setting bitbucket (bitbucket)"), "{out}");
    assert!(sonarqube.contains("project PLAT_api-gateway (API Gateway): bound to PLAT/api-gateway"), "{out}");
    assert!(out.contains("SonarQube project PLAT_api-gateway: bind to PLAT/api-gateway"), "{out}");
    assert!(out.contains("(was: PLAT/auth-service through setting bitbucket)"), "{out}");
    // The required build: created, deleted by hand, seen missing, restored.
    let section =
        |from: &str, to: &str| out.split(from).nth(1).and_then(|rest| rest.split(to).next()).unwrap_or_default();
    let created = section("== What now exists in Bitbucket ==", "== What now exists in SonarQube ==");
    assert!(created.contains("required builds: sonarqube-quality-gate on main (condition"), "{out}");
    let drift = section("== 4. plan sees the drift ==", "== 5. apply repairs it ==");
    assert!(drift.contains("+ required build condition: builds sonarqube-quality-gate on refs/heads/main"), "{out}");
    let repair = section("== 5. apply repairs it ==", "== 6. plan again");
    assert!(repair.contains("RequiredBuild demo/payments-api-quality-gate"), "{out}");
    assert!(
        repair.contains("+ required build condition") && repair.contains("created: builds sonarqube-quality-gate"),
        "{out}"
    );
    let repaired = out.split("== SonarQube after the repair ==").nth(1).unwrap_or_default();
    assert!(repaired.contains("project PLAT_api-gateway (API Gateway): bound to PLAT/api-gateway"), "{out}");
    assert!(
        !out.contains("BBDC-replace-with-a-read-only-token") && !out.contains("squ_"),
        "a token was printed: {out}"
    );
    eprintln!("the demo took {:?}", started.elapsed());
}
