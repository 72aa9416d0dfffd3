//! kelvinctl end to end against a running server: every subcommand, JSON output parsed.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use kelvin_integration_tests::process::binary;
use kelvin_integration_tests::{TestApp, spawn_app};
use serde_json::Value;

struct Ctl<'a> {
    app: &'a TestApp,
    config: std::path::PathBuf,
}

impl Ctl<'_> {
    fn raw(&self, args: &[&str]) -> Output {
        self.raw_in(&std::env::current_dir().unwrap(), args)
    }

    /// Runs from directory `cwd`.
    fn raw_in(&self, cwd: &Path, args: &[&str]) -> Output {
        Command::new(binary("kelvinctl"))
            .current_dir(cwd)
            .args(args)
            .env("KELVINCTL_CONFIG", &self.config)
            .env_remove("KELVIN_ENDPOINT")
            .env_remove("KELVIN_TOKEN")
            .output()
            .unwrap()
    }

    /// Runs with the server's endpoint and admin token, JSON output; fails on a non-zero exit.
    fn json(&self, args: &[&str]) -> Value {
        let endpoint = format!("http://{}", self.app.addr);
        let mut all = vec!["--endpoint", &endpoint, "--token", &self.app.admin_token, "-o", "json"];
        all.extend_from_slice(args);
        let out = self.raw(&all);
        assert!(
            out.status.success(),
            "kelvinctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
    }

    fn fails(&self, args: &[&str]) -> String {
        let endpoint = format!("http://{}", self.app.addr);
        let mut all = vec!["--endpoint", &endpoint, "--token", &self.app.admin_token];
        all.extend_from_slice(args);
        let out = self.raw(&all);
        assert!(!out.status.success(), "kelvinctl {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn model_file(dir: &Path, hot: i64) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/models/b2b-saas.yaml"),
    )
    .unwrap();
    let text = text.replace("{ label: hot, min: 70,", &format!("{{ label: hot, min: {hot},"));
    let path = dir.join(format!("model-{hot}.yaml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_against_a_running_server() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let ctl = Ctl { app: &app, config: dir.path().join("config.toml") };

    // Organizations, tenants, keys.
    assert_eq!(
        ctl.json(&["orgs", "create", "agency", "--name", "The agency"])["organization_id"],
        "agency"
    );
    assert_eq!(ctl.json(&["orgs", "list"]).as_array().unwrap().len(), 1);
    ctl.json(&["tenants", "create", "--org", "agency", "client-a", "--label", "tier=gold"]);
    let t = ctl.json(&["tenants", "get", "client-a"]);
    assert_eq!((t["state"].as_str(), t["labels"]["tier"].as_str()), (Some("active"), Some("gold")));
    assert_eq!(ctl.json(&["tenants", "list", "--org", "agency"]).as_array().unwrap().len(), 1);
    let key = ctl.json(&[
        "keys", "create", "--org", "agency", "--tenant", "client-a", "--role", "ingest", "--days",
        "7",
    ]);
    assert!(key["token"].as_str().unwrap().starts_with("eyJ"));
    let id = key["api_key_id"].as_str().unwrap().to_owned();
    assert_eq!(ctl.json(&["keys", "list", "--org", "agency"]).as_array().unwrap().len(), 1);
    assert!(ctl.json(&["keys", "revoke", &id])["revoke_time"].is_string());

    // Models as code: draft, publish, unchanged, change with diff, history, diff, rollback.
    let v70 = model_file(dir.path(), 70);
    let draft = ctl.json(&["models", "apply", "-f", &v70, "--tenant", "client-a"]);
    assert_eq!((draft["version"].as_i64(), draft["status"].as_str()), (Some(1), Some("draft")));
    let published = ctl.json(&["models", "apply", "-f", &v70, "--tenant", "client-a", "--publish"]);
    assert_eq!(published["version"], 1, "the identical draft is reused: {published}");
    let unchanged = ctl.json(&["models", "apply", "-f", &v70, "--tenant", "client-a", "--publish"]);
    assert_eq!(unchanged["status"], "unchanged");
    let v60 = model_file(dir.path(), 60);
    let changed = ctl.json(&[
        "models",
        "apply",
        "-f",
        &v60,
        "--tenant",
        "client-a",
        "--publish",
        "--comment",
        "hot from 60",
    ]);
    assert_eq!(
        (changed["version"].as_i64(), changed["status"].as_str()),
        (Some(2), Some("published"))
    );
    let changes = changed["changes"].as_array().unwrap();
    assert!(
        changes.iter().any(|c| c["section"] == "bands" && c["field"] == "thresholds"),
        "{changes:?}"
    );
    let history = ctl.json(&["models", "history", "--tenant", "client-a"]);
    assert_eq!(
        history
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(
        ctl.json(&["models", "diff", "--tenant", "client-a", "1", "2"]).as_array().unwrap().len(),
        1
    );
    assert_eq!(
        ctl.json(&["models", "rollback", "--tenant", "client-a", "--to", "1", "--comment", "back"])
            ["active_version"],
        1
    );
    assert_eq!(
        ctl.json(&["models", "validate", "-f", &v60, "--tenant", "client-a"])["valid"],
        true
    );
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(&v60).unwrap().replace("cap: { points: 30 }", "cap: { points: 0 }"),
    )
    .unwrap();
    let stderr =
        ctl.fails(&["models", "validate", "-f", broken.to_str().unwrap(), "--tenant", "client-a"]);
    assert!(stderr.contains("engagement[0].cap.points"), "{stderr}");

    // Events from JSON lines, with bad rows reported by line.
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        [
            r#"{"event_id": "e1", "lead_id": "l1", "type": "page_view", "time": "2026-11-01T10:00:00Z", "properties": {"url": "/pricing"}}"#,
            r#"{"event_id": "e2", "lead_id": "l1", "type": "email_open", "time": "2026-11-01T11:00:00Z"}"#,
            "not json",
            r#"{"event_id": "e3", "lead_id": "l1", "type": "Bad Type", "time": "2026-11-01T12:00:00Z"}"#,
            r#"{"event_id": "e1", "lead_id": "l1", "type": "page_view", "time": "2026-11-01T10:00:00Z"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    // Some rejected: the rest is sent, each rejected row is shown with its line, field and
    // reason, and the exit code (3) says so.
    let send = |format: &str| {
        let endpoint = format!("http://{}", app.addr);
        let events = events.to_str().unwrap();
        ctl.raw(&[
            "--endpoint",
            &endpoint,
            "--token",
            &app.admin_token,
            "-o",
            format,
            "events",
            "send",
            "--tenant",
            "client-a",
            "-f",
            events,
            "--batch",
            "2",
        ])
    };
    let out = send("json");
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 of 5 event(s) rejected"));
    let sent: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (sent["accepted"].as_i64(), sent["duplicates"].as_i64(), sent["rejected"].as_i64()),
        (Some(2), Some(1), Some(2))
    );
    let rejects: Vec<_> = sent["rejects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["line"].as_i64().unwrap(), r["field"].as_str().unwrap()))
        .collect();
    assert_eq!(rejects, [(3, ""), (4, "type")]);
    let out = send("table");
    assert_eq!(out.status.code(), Some(3));
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table.lines().find(|l| l.starts_with("4 ")).unwrap_or_else(|| panic!("{table}"));
    assert!(table.contains("LINE") && table.contains("REASON"), "{table}");
    assert!(row.contains("type") && row.contains("must be 1-64 characters"), "{row}");
    let help = ctl.raw(&["events", "send", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("3 when some were rejected"));

    // A template rolled out from one file; a bad target is reported and the exit is non-zero.
    ctl.json(&["tenants", "create", "--org", "agency", "client-b"]);
    let template = std::fs::read_to_string(&v70)
        .unwrap()
        .replace("{ label: hot, min: 70,", "{ label: hot, min: \"${hot}\",");
    std::fs::write(dir.path().join("template.yaml"), template).unwrap();
    let rollout = dir.path().join("rollout.yaml");
    let write_rollout = |targets: &str| {
        std::fs::write(
            &rollout,
            format!(
                "organization: agency\ntemplate:\n  id: standard\n  display_name: Standard\n  model_file: template.yaml\n  parameters:\n    - {{ name: hot, default: 70 }}\ntargets:\n{targets}publish: true\ncomment: rollout\n"
            ),
        )
        .unwrap();
    };
    write_rollout(
        "  - { tenant: client-a, model: product-x }\n  - { tenant: client-b, parameters: { hot: 65 } }\n",
    );
    let results = ctl.json(&["templates", "apply", "-f", rollout.to_str().unwrap()]);
    let summary: Vec<_> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["tenant_id"].as_str().unwrap(),
                r["model_id"].as_str().unwrap(),
                r["version"].as_i64().unwrap(),
                r["published"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary, [("client-a", "product-x", 1, true), ("client-b", "default", 1, true)]);
    assert_eq!(ctl.json(&["templates", "list", "--org", "agency"])[0]["template_id"], "standard");
    // Reapplying the same file changes nothing: no new version, nothing published again.
    let again = ctl.json(&["templates", "apply", "-f", rollout.to_str().unwrap()]);
    let summary: Vec<_> = again
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["version"].as_i64().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(summary, [(1, "unchanged"), (1, "unchanged")], "{again}");
    let versions = ctl.json(&["models", "history", "--tenant", "client-a", "--model", "product-x"]);
    assert_eq!(versions.as_array().unwrap().len(), 1, "{versions}");
    let audit = ctl.json(&[
        "audit",
        "--org",
        "agency",
        "--tenant",
        "client-b",
        "--action",
        "model.publish",
    ]);
    assert_eq!(audit.as_array().unwrap().len(), 1, "published once: {audit}");
    write_rollout("  - { tenant: client-b, parameters: { hot: hot } }\n  - { tenant: nobody }\n");
    let stderr = ctl.fails(&["templates", "apply", "-f", rollout.to_str().unwrap()]);
    assert!(stderr.contains("2 target(s) failed"), "{stderr}");

    // The audit log of the model.
    let audit =
        ctl.json(&["audit", "--org", "agency", "--tenant", "client-a", "--model", "default"]);
    assert_eq!(audit[0]["action"], "model.rollback");
    assert_eq!(audit[0]["reason"], "back");

    // Scores: get (waiting for the worker), top, explain, history, rescore, watch.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let got = loop {
        let endpoint = format!("http://{}", app.addr);
        let out = ctl.raw(&[
            "--endpoint",
            &endpoint,
            "--token",
            &app.admin_token,
            "-o",
            "json",
            "scores",
            "get",
            "--tenant",
            "client-a",
            "l1",
        ]);
        if out.status.success() {
            break serde_json::from_slice::<Value>(&out.stdout).unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "l1 was never scored");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(got[0]["lead_id"], "l1");
    let total = got[0]["total"].as_f64().unwrap();
    let top = ctl.json(&["scores", "top", "--tenant", "client-a", "--limit", "5"]);
    assert_eq!(top[0]["lead_id"], "l1");
    let explained = ctl.json(&["scores", "explain", "--tenant", "client-a", "l1"]);
    assert_eq!(explained["total"].as_f64(), Some(total));
    let lines = explained["contributions"].as_array().unwrap();
    let sum: f64 = lines.iter().map(|c| c["points"].as_f64().unwrap()).sum();
    assert!((sum - total).abs() < 1e-6, "{sum} vs {total}");
    let pricing = lines.iter().find(|c| c["rule_id"] == "pricing_page").unwrap();
    assert_eq!(pricing["event_ids"], serde_json::json!(["e1"]));
    let history = ctl.json(&["scores", "history", "--tenant", "client-a", "--all", "l1"]);
    assert!(!history.as_array().unwrap().is_empty());
    let rescore = ctl.json(&["scores", "rescore", "--tenant", "client-a"]);
    assert_eq!(rescore["model_id"], "default");
    let bands = ctl.json(&["scores", "bands", "--tenant", "client-a"]);
    let leads: i64 = bands.as_array().unwrap().iter().map(|b| b["leads"].as_i64().unwrap()).sum();
    assert!(leads >= 1, "{bands}");
    // No scoring work failed: no dead letters, and retrying all of them retries none.
    let dead = ctl.json(&["scores", "dead-letters", "--tenant", "client-a"]);
    assert_eq!(dead, serde_json::json!([]));
    let retried = ctl.json(&["scores", "retry", "--tenant", "client-a"]);
    assert_eq!(retried["retried"], 0);
    let endpoint = format!("http://{}", app.addr);
    let out = ctl.raw(&[
        "--endpoint",
        &endpoint,
        "--token",
        &app.admin_token,
        "-o",
        "json",
        "watch",
        "--tenant",
        "client-a",
        "--all",
        "--after",
        "-1",
        "--limit",
        "1",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["cursor"], 1);
    let out = ctl.raw(&[
        "--endpoint",
        &endpoint,
        "--token",
        &app.admin_token,
        "scores",
        "explain",
        "--tenant",
        "client-a",
        "l1",
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.starts_with("lead l1: total")
            && table.contains("RULE")
            && table.contains("pricing_page"),
        "{table}"
    );
    let stderr = ctl.fails(&["scores", "get", "--tenant", "client-a", "nobody"]);
    assert!(stderr.contains("nobody"), "{stderr}");

    // Server errors show the field and exit non-zero.
    let stderr = ctl.fails(&["tenants", "create", "--org", "agency", "Bad_Id"]);
    assert!(stderr.contains("tenant_id") && stderr.contains("InvalidArgument"), "{stderr}");

    // Contexts: saved, listed, used without flags and from any directory (a relative token
    // file is stored absolute); YAML and table output.
    let endpoint = format!("http://{}", app.addr);
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/token"), &app.admin_token).unwrap();
    let set = ctl.raw_in(
        dir.path(),
        &["context", "set", "local", "--endpoint", &endpoint, "--token-file", "data/token"],
    );
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    let elsewhere = tempfile::tempdir().unwrap();
    let out = ctl.raw_in(elsewhere.path(), &["-o", "json", "orgs", "list"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = ctl.raw(&["-o", "json", "context", "list"]);
    let contexts: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (contexts[0]["name"].as_str(), contexts[0]["current"].as_bool()),
        (Some("local"), Some(true))
    );
    let out = ctl.raw(&["-o", "yaml", "orgs", "list"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("organization_id: agency"));
    let out = ctl.raw(&["tenants", "list", "--org", "agency"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("TENANT") && table.contains("client-a"), "{table}");
    app.stop().await;
}

/// `watch` shows the model of each change (a tenant's models each report their own), in
/// columns that line up whatever the widths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_shows_each_model_s_change_in_aligned_columns() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let ctl = Ctl { app: &app, config: dir.path().join("config.toml") };
    ctl.json(&["orgs", "create", "agency"]);
    ctl.json(&["tenants", "create", "--org", "agency", "client-a"]);
    let v70 = model_file(dir.path(), 70);
    for model in ["default", "product-x"] {
        ctl.json(&[
            "models",
            "apply",
            "-f",
            &v70,
            "--tenant",
            "client-a",
            "--model",
            model,
            "--publish",
        ]);
    }
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        r#"{"event_id": "e1", "lead_id": "a-rather-long-lead-identifier", "type": "page_view", "time": "2026-11-01T10:00:00Z", "properties": {"url": "/pricing"}}"#,
    )
    .unwrap();
    ctl.json(&["events", "send", "--tenant", "client-a", "-f", events.to_str().unwrap()]);
    // Every change of the lead, per model, once both models scored it.
    let mut expected = Vec::new();
    for model in ["default", "product-x"] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let history = loop {
            let h = ctl.json(&[
                "scores",
                "history",
                "--tenant",
                "client-a",
                "--model",
                model,
                "--all",
                "a-rather-long-lead-identifier",
            ]);
            if !h.as_array().unwrap().is_empty() {
                break h;
            }
            assert!(std::time::Instant::now() < deadline, "never scored by {model}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        for change in history.as_array().unwrap() {
            expected.push((change["cursor"].as_i64().unwrap(), model.to_owned()));
        }
    }
    expected.sort();
    let limit = expected.len().to_string();
    let endpoint = format!("http://{}", app.addr);
    let out = ctl.raw(&[
        "--endpoint",
        &endpoint,
        "--token",
        &app.admin_token,
        "watch",
        "--tenant",
        "client-a",
        "--all",
        "--after",
        "-1",
        "--limit",
        &limit,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), expected.len() + 1, "{table}");
    let header = lines[0];
    let headers = ["CURSOR", "TIME", "MODEL", "LEAD", "FROM", "TO", "TOTAL", "CAUSE"];
    let starts: Vec<usize> = headers.iter().map(|h| header.find(h).unwrap()).collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "{header}");
    let mut shown = Vec::new();
    for line in &lines[1..] {
        // Every cell starts at its header's column, after a gap.
        let cell = |i: usize| {
            let end = starts.get(i + 1).copied().unwrap_or(line.len()).min(line.len());
            line[starts[i]..end].trim_end()
        };
        for (i, start) in starts.iter().enumerate().skip(1) {
            assert_eq!(&line[start - 2..*start], "  ", "column {}: {table}", headers[i]);
        }
        assert_eq!(cell(3), "a-rather-long-lead-identifier", "{table}");
        shown.push((cell(0).parse::<i64>().unwrap(), cell(2).to_owned()));
    }
    shown.sort();
    assert_eq!(shown, expected, "each change once, with its model: {table}");
    app.stop().await;
}

/// Every list follows `next_page_token` to its last page (pages of 2 here, through the hidden
/// `--page-size`), or stops at the `--limit` asked for: nothing is cut at the first page, and a
/// `--limit` above one page (1,000) is read in pages rather than refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_reads_all_its_pages() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let ctl = Ctl { app: &app, config: dir.path().join("config.toml") };
    let paged = |args: &[&str]| {
        let mut all = vec!["--page-size", "2"];
        all.extend_from_slice(args);
        ctl.json(&all)
    };
    // The list in pages of 2 is the list in one page, and longer than a page.
    let same = |args: &[&str]| {
        let whole = ctl.json(args);
        assert!(whole.as_array().unwrap().len() > 2, "{args:?}: {whole}");
        assert_eq!(paged(args), whole, "{args:?}");
    };

    for org in ["agency", "agency-b", "agency-c"] {
        ctl.json(&["orgs", "create", org]);
    }
    same(&["orgs", "list"]);
    for tenant in ["client-a", "client-b", "client-c"] {
        ctl.json(&["tenants", "create", "--org", "agency", tenant]);
    }
    same(&["tenants", "list", "--org", "agency"]);
    for _ in 0..3 {
        ctl.json(&["keys", "create", "--org", "agency", "--role", "reader"]);
    }
    same(&["keys", "list", "--org", "agency"]);

    // Three versions of a model (drafts), the last one published.
    for hot in [80, 75, 70] {
        ctl.json(&["models", "apply", "-f", &model_file(dir.path(), hot), "--tenant", "client-a"]);
    }
    let v70 = model_file(dir.path(), 70);
    ctl.json(&["models", "apply", "-f", &v70, "--tenant", "client-a", "--publish"]);
    same(&["models", "history", "--tenant", "client-a"]);

    // Three templates; rolling out the last one again finds it on the second page.
    std::fs::copy(&v70, dir.path().join("template.yaml")).unwrap();
    let rollout = |id: &str| {
        let path = dir.path().join(format!("rollout-{id}.yaml"));
        std::fs::write(
            &path,
            format!(
                "organization: agency\ntemplate:\n  id: {id}\n  model_file: template.yaml\ntargets:\n  - {{ tenant: client-b, model: {id} }}\npublish: true\n"
            ),
        )
        .unwrap();
        path.display().to_string()
    };
    for id in ["t1", "t2", "t3"] {
        ctl.json(&["templates", "apply", "-f", &rollout(id)]);
    }
    same(&["templates", "list", "--org", "agency"]);
    let again = paged(&["templates", "apply", "-f", &rollout("t3")]);
    assert_eq!(again[0]["status"], "unchanged", "{again}");

    // Three leads scored; one of them three times.
    let send = |event: &str, lead: &str, hour: u32| {
        let file = dir.path().join(format!("{event}.jsonl"));
        std::fs::write(
            &file,
            format!(
                r#"{{"event_id": "{event}", "lead_id": "{lead}", "type": "page_view", "time": "2026-11-01T{hour:02}:00:00Z", "properties": {{"url": "/pricing"}}}}"#
            ),
        )
        .unwrap();
        ctl.json(&["events", "send", "--tenant", "client-a", "-f", file.to_str().unwrap()]);
    };
    let history =
        |lead: &str| ctl.json(&["scores", "history", "--tenant", "client-a", "--all", lead]);
    let wait = |lead: &str, changes: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while history(lead).as_array().unwrap().len() < changes {
            assert!(std::time::Instant::now() < deadline, "{lead}: never {changes} change(s)");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    for (n, hour) in [(1, 10), (2, 11), (3, 12)] {
        send(&format!("e{n}"), "l1", hour);
        wait("l1", n);
    }
    send("e4", "l2", 10);
    send("e5", "l3", 10);
    wait("l2", 1);
    wait("l3", 1);
    same(&["scores", "history", "--tenant", "client-a", "--all", "l1"]);
    same(&["scores", "top", "--tenant", "client-a"]);
    assert_eq!(
        paged(&["scores", "top", "--tenant", "client-a", "--limit", "3"]).as_array().unwrap().len(),
        3
    );
    same(&["scores", "top", "--tenant", "client-a", "--limit", "1001"]);

    // The audit log: the first `--limit` events, in pages, whatever the limit.
    let all = ctl.json(&["audit", "--org", "agency", "--limit", "1000"]);
    let all = all.as_array().unwrap();
    assert!(all.len() > 5, "{all:?}");
    assert_eq!(paged(&["audit", "--org", "agency", "--limit", "5"]).as_array().unwrap(), &all[..5]);
    same(&["audit", "--org", "agency", "--limit", "1001"]);
    app.stop().await;
}
