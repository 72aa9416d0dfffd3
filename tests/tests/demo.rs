//! `kelvin demo`: one command that shows the main job, on its embedded server and against a
//! running one.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use kelvin_integration_tests::process::binary;
use kelvin_integration_tests::spawn_app;

fn check(stdout: &str) {
    for expected in [
        "model `default` v1 published",
        "curious readers",
        "hot buyers",
        "students",
        "competitors",
        "  hot ",
        "  warm ",
        "  cold ",
        "  disqualified ",
        "Top hot leads",
        "fit ",
        "pricing_page",
        "Published v2",
        "after v2:",
        "Done in",
    ] {
        assert!(stdout.contains(expected), "`{expected}` missing from:\n{stdout}");
    }
}

/// `kelvin demo` on its embedded server, as a newcomer runs it (no configuration).
fn embedded_demo() -> String {
    let out = Command::new(binary("kelvin"))
        .args(["demo", "--leads", "400", "--seed", "7"])
        .env_remove("KELVIN_CONFIG")
        .env_remove("KELVIN_DATABASE_URL")
        .env_remove("KELVIN_CACHE__REDIS_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn the_demo_runs_on_its_own_embedded_server() {
    let stdout = embedded_demo();
    check(&stdout);
    // Deterministic: the same seed gives the same history.
    let streamed = |s: &str| s.lines().find(|l| l.starts_with("Streamed")).map(str::to_owned);
    assert_eq!(streamed(&stdout), streamed(&embedded_demo()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_against_a_running_server() {
    let app = spawn_app().await;
    let endpoint = format!("http://{}", app.addr);
    let token = app.admin_token.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(binary("kelvin"))
            .args(["demo", "--endpoint", &endpoint, "--leads", "300", "--seed", "11"])
            .env("KELVIN_TOKEN", token)
            .env_remove("KELVIN_CONFIG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    check(&stdout);
    assert!(stdout.contains("kelvinctl scores top"));
    app.stop().await;
}

/// A second `kelvin demo --endpoint` against the same server makes its own agency (a fresh
/// suffix) instead of failing on the first one's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_reruns_against_the_same_server() {
    let app = spawn_app().await;
    let endpoint = format!("http://{}", app.addr);
    let run = |endpoint: String, token: String| {
        tokio::task::spawn_blocking(move || {
            Command::new(binary("kelvin"))
                .args(["demo", "--endpoint", &endpoint, "--leads", "120", "--seed", "11"])
                .env("KELVIN_TOKEN", token)
                .env_remove("KELVIN_CONFIG")
                .output()
                .unwrap()
        })
    };
    let mut agencies = Vec::new();
    for _ in 0..2 {
        let out = run(endpoint.clone(), app.admin_token.clone()).await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        check(&stdout);
        let agency = stdout.lines().find(|l| l.starts_with("Agency `")).unwrap().to_owned();
        agencies.push(agency.split('`').nth(1).unwrap().to_owned());
    }
    assert_eq!(agencies, ["demo-agency-000b", "demo-agency-000b-2"]);

    // The platform-admin hint only for a refused token, not for any failure.
    let out = run(endpoint.clone(), "not-a-token".into()).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success() && stderr.contains("platform admin"), "{stderr}");
    let token = app.admin_token.clone();
    app.stop().await;
    let out = run(endpoint, token).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "no server, no demo");
    assert!(!stderr.contains("platform admin"), "{stderr}");
}
