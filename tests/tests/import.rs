//! kelvinctl import: CSV exports with mappings, bad rows to an exact rejects file, an
//! interrupted import resumed without duplicates.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use kelvin_integration_tests::process::binary;
use kelvin_integration_tests::{TestApp, authed, fixtures, spawn_app};
use kelvin_proto::v1 as pb;
use serde_json::Value;

fn import(app: &TestApp, args: &[&str]) -> Value {
    let endpoint = format!("http://{}", app.addr);
    let out = Command::new(binary("kelvinctl"))
        .args(["--endpoint", &endpoint, "--token", &app.admin_token, "-o", "json", "import"])
        .args(args)
        .env("KELVINCTL_CONFIG", "/nonexistent/kelvinctl.toml")
        .output()
        .unwrap();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("import {args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr))
    });
    // Exit 3 says that some rows were rejected (the others were imported); 0 that none were.
    let rejected = summary["rejected"].as_u64().unwrap_or(0);
    assert_eq!(
        out.status.code(),
        Some(if rejected > 0 { 3 } else { 0 }),
        "import {args:?} with {rejected} rejected row(s): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    summary
}

/// Runs an import that must fail; returns its stderr.
fn import_fails(app: &TestApp, args: &[&str]) -> String {
    let endpoint = format!("http://{}", app.addr);
    let out = Command::new(binary("kelvinctl"))
        .args(["--endpoint", &endpoint, "--token", &app.admin_token, "-o", "json", "import"])
        .args(args)
        .env("KELVINCTL_CONFIG", "/nonexistent/kelvinctl.toml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "import {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The times of `lead`'s events in `tenant` (first page), in Unix seconds; none for an
/// unknown lead.
async fn event_times(app: &TestApp, tenant: &str, lead: &str) -> Vec<i64> {
    let mut ingest =
        kelvin_proto::v1::ingest_service_client::IngestServiceClient::new(app.channel.clone());
    let reply = ingest
        .export_lead(authed(
            &app.admin_token,
            pb::ExportLeadRequest {
                tenant_id: tenant.into(),
                lead_id: lead.into(),
                page_size: 1000,
                page_token: String::new(),
            },
        ))
        .await;
    let page = match reply {
        Err(s) if s.code() == tonic::Code::NotFound => return Vec::new(),
        other => other.unwrap().into_inner(),
    };
    let mut times: Vec<i64> = page.events.iter().map(|e| e.time.unwrap().seconds).collect();
    times.sort();
    times
}

/// The number of `lead`'s events, over every page of its export.
async fn export_events(app: &TestApp, lead: &str) -> usize {
    let mut ingest =
        kelvin_proto::v1::ingest_service_client::IngestServiceClient::new(app.channel.clone());
    let (mut n, mut page_token) = (0, String::new());
    loop {
        let page = ingest
            .export_lead(authed(
                &app.admin_token,
                pb::ExportLeadRequest {
                    tenant_id: "acme-fr".into(),
                    lead_id: lead.into(),
                    page_size: 1000,
                    page_token,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        n += page.events.len();
        if page.next_page_token.is_empty() {
            return n;
        }
        page_token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_go_to_the_rejects_file_with_line_field_and_reason() {
    let app = spawn_app().await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "acme-fr").await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("activity.csv");
    std::fs::write(
        &csv,
        "Activity ID,Contact ID,Activity Type,Activity Date,Page URL,Page Title,Clicked URL\n\
         a1,c1,Page View,2026-11-01T10:00:00Z,https://acme.example/pricing,Pricing,\n\
         a2,c1,Email Open,2026-11-01 11:00:00,,,\n\
         a3,c1,Telepathy,2026-11-01T12:00:00Z,,,\n\
         a4,,Page View,2026-11-01T12:00:00Z,,,\n\
         a5,c2,Page View,yesterday,,,\n\
         a6,c2,Page View,2099-01-01T00:00:00Z,,,\n\
         a1,c1,Page View,2026-11-01T10:00:00Z,https://acme.example/pricing,Pricing,\n\
         a7,c2,Email Click,1793527200000,,,https://acme.example/demo\n",
    )
    .unwrap();
    let rejects = dir.path().join("rejects.csv");
    let summary = import(
        &app,
        &[
            "--tenant",
            "acme-fr",
            "-f",
            csv.to_str().unwrap(),
            "--mapping",
            "hubspot-events",
            "--rejects",
            rejects.to_str().unwrap(),
            "--batch",
            "3",
        ],
    );
    assert_eq!(
        (
            summary["rows"].as_u64(),
            summary["accepted"].as_u64(),
            summary["duplicates"].as_u64(),
            summary["rejected"].as_u64()
        ),
        (Some(8), Some(3), Some(1), Some(4))
    );
    assert_eq!(
        std::fs::read_to_string(&rejects).unwrap(),
        "line,field,reason\n\
         4,type,unknown value `Telepathy` in column `Activity Type`\n\
         5,lead_id,column `Contact ID` is empty\n\
         6,time,\"`yesterday` is not a time (RFC 3339, `YYYY-MM-DD HH:MM:SS` UTC, or Unix ms)\"\n\
         7,time,is more than a day in the future\n"
    );
    assert_eq!(export_events(&app, "c1").await, 2);
    assert_eq!(export_events(&app, "c2").await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_import_resumes_without_duplicates() {
    let app = spawn_app().await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "acme-fr").await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("tasks.csv");
    let mut text = String::from("Id,WhoId,Type,CreatedDate,Url__c,Subject\n");
    for i in 0..1000 {
        text.push_str(&format!(
            "t{i},lead-{},Web Visit,2026-11-0{} 10:00:00,https://acme.example/p{i},Visit\n",
            i % 7,
            1 + i % 9
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let file = csv.to_str().unwrap();
    let first = import(
        &app,
        &[
            "--tenant",
            "acme-fr",
            "-f",
            file,
            "--mapping",
            "salesforce-events",
            "--batch",
            "100",
            "--max-rows",
            "300",
        ],
    );
    assert_eq!((first["rows"].as_u64(), first["accepted"].as_u64()), (Some(300), Some(300)));
    assert!(dir.path().join("tasks.csv.kelvin-import").exists(), "a checkpoint is kept");
    let resumed = import(
        &app,
        &[
            "--tenant",
            "acme-fr",
            "-f",
            file,
            "--mapping",
            "salesforce-events",
            "--batch",
            "100",
            "--resume",
        ],
    );
    assert_eq!(
        (
            resumed["rows"].as_u64(),
            resumed["accepted"].as_u64(),
            resumed["duplicates"].as_u64(),
            resumed["rejected"].as_u64()
        ),
        (Some(1000), Some(1000), Some(0), Some(0)),
        "{resumed}"
    );
    assert!(!dir.path().join("tasks.csv.kelvin-import").exists(), "the checkpoint goes once done");
    let total: usize = {
        let mut n = 0;
        for l in 0..7 {
            n += export_events(&app, &format!("lead-{l}")).await;
        }
        n
    };
    assert_eq!(total, 1000);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_are_imported_with_typed_attributes() {
    let app = spawn_app().await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "acme-fr").await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("contacts.csv");
    std::fs::write(
        &csv,
        "Record ID,Email,Country/Region,Job Title,Industry,Number of Employees,Associated Company ID\n\
         101,ana@client.example,FR,Head of Marketing,software,\"1,200\",co-1\n\
         102,bob@client.example,BE,Intern,retail,many,\n",
    )
    .unwrap();
    let summary = import(
        &app,
        &["--tenant", "acme-fr", "-f", csv.to_str().unwrap(), "--mapping", "hubspot-contacts"],
    );
    assert_eq!((summary["accepted"].as_u64(), summary["rejected"].as_u64()), (Some(1), Some(1)));
    let mut ingest =
        kelvin_proto::v1::ingest_service_client::IngestServiceClient::new(app.channel.clone());
    let lead = ingest
        .export_lead(authed(
            &app.admin_token,
            pb::ExportLeadRequest {
                tenant_id: "acme-fr".into(),
                lead_id: "101".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap();
    let attributes = Value::Object(kelvin_proto::convert::struct_json(lead.attributes.unwrap()));
    assert_eq!(attributes["company_size"], 1200);
    assert_eq!(attributes["country"], "FR");
    assert_eq!(lead.company_id, "co-1");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_over_the_tenant_quota_backs_off_and_completes() {
    let app = kelvin_integration_tests::spawn_app_with(|c| c.ingest.events_per_second = 200).await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "acme-fr").await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("tasks.csv");
    let mut text = String::from("Id,WhoId,Type,CreatedDate,Url__c,Subject\n");
    for i in 0..600 {
        text.push_str(&format!(
            "q{i},lead-0,Web Visit,2026-11-01 10:00:00,https://acme.example/p{i},Visit\n"
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let summary = import(
        &app,
        &[
            "--tenant",
            "acme-fr",
            "-f",
            csv.to_str().unwrap(),
            "--mapping",
            "salesforce-events",
            "--batch",
            "150",
        ],
    );
    assert_eq!((summary["accepted"].as_u64(), summary["rejected"].as_u64()), (Some(600), Some(0)));
    assert_eq!(export_events(&app, "lead-0").await, 600);
    app.stop().await;
}

/// A checkpoint names its tenant, file (by content) and mapping: resuming with any other is
/// refused, naming what differs, instead of skipping rows never sent there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_with_another_tenant_file_or_mapping_is_refused() {
    let app = spawn_app().await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "acme-fr").await;
    fixtures::tenant(&app, "acme", "acme-de").await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("tasks.csv");
    let mut text = String::from("Id,WhoId,Type,CreatedDate,Url__c,Subject\n");
    for i in 0..100 {
        text.push_str(&format!(
            "t{i},lead-{},Web Visit,2026-11-01 10:00:00,https://acme.example/p{i},Visit\n",
            i % 3
        ));
    }
    std::fs::write(&csv, &text).unwrap();
    let file = csv.to_str().unwrap();
    let args = |tenant: &'static str, mapping: &str| -> Vec<String> {
        ["--tenant", tenant, "-f", file, "--mapping", mapping, "--batch", "10", "--resume"]
            .map(str::to_owned)
            .to_vec()
    };
    fn run(a: &[String]) -> Vec<&str> {
        a.iter().map(String::as_str).collect()
    }
    let first = import(
        &app,
        &["--tenant", "acme-fr", "-f", file, "--mapping", "salesforce-events", "--max-rows", "30"],
    );
    assert_eq!(first["accepted"].as_u64(), Some(30));

    let stderr = import_fails(&app, &run(&args("acme-de", "salesforce-events")));
    assert!(stderr.contains("tenant: the checkpoint is for `acme-fr`, not `acme-de`"), "{stderr}");
    assert!(!stderr.contains("file:") && !stderr.contains("mapping:"), "{stderr}");

    // Appended to, or cut short: another file.
    std::fs::write(&csv, format!("{text}t100,lead-0,Web Visit,2026-11-01 10:00:00,,Visit\n"))
        .unwrap();
    let stderr = import_fails(&app, &run(&args("acme-fr", "salesforce-events")));
    assert!(stderr.contains("file: its content changed"), "{stderr}");
    std::fs::write(&csv, &text[..text.len() / 2]).unwrap();
    let stderr = import_fails(&app, &run(&args("acme-fr", "salesforce-events")));
    assert!(stderr.contains("file: its content changed"), "{stderr}");
    std::fs::write(&csv, &text).unwrap();

    let mapping = dir.path().join("mine.yaml");
    let builtin = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/mappings/salesforce-events.yaml"),
    )
    .unwrap();
    std::fs::write(&mapping, builtin.replace("title: \"Subject\"", "subject: \"Subject\""))
        .unwrap();
    let stderr = import_fails(&app, &run(&args("acme-fr", mapping.to_str().unwrap())));
    assert!(stderr.contains("mapping: the checkpoint is for `salesforce-events`"), "{stderr}");

    // Nothing went to the other tenant; the right resume completes without duplicates.
    assert!(event_times(&app, "acme-de", "lead-0").await.is_empty());
    let resumed = import(&app, &run(&args("acme-fr", "salesforce-events")));
    assert_eq!(
        (resumed["rows"].as_u64(), resumed["accepted"].as_u64(), resumed["duplicates"].as_u64()),
        (Some(100), Some(100), Some(0)),
        "{resumed}"
    );

    // A checkpoint of an older kelvinctl says nothing of what it is for: refused.
    std::fs::write(
        dir.path().join("tasks.csv.kelvin-import"),
        r#"{"rows":30,"accepted":30,"duplicates":0,"rejected":0}"#,
    )
    .unwrap();
    let stderr = import_fails(&app, &run(&args("acme-fr", "salesforce-events")));
    assert!(stderr.contains("older kelvinctl"), "{stderr}");
    app.stop().await;
}

/// A mapping's `time_format` (strftime) and `time_zone` (IANA name or offset) read local
/// times; a bad one is refused naming the mapping field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapped_times_take_the_mapping_format_and_zone() {
    let app = spawn_app().await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "acme-fr").await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("visits.csv");
    std::fs::write(
        &csv,
        "id,who,when\nv1,l1,20/10/2026 10:00\nv2,l1,02/11/2026 10:00\nv3,l1,2026-11-02T10:00:00Z\n",
    )
    .unwrap();
    let mapping = dir.path().join("visits.yaml");
    let write = |extra: &str| {
        std::fs::write(
            &mapping,
            format!(
                "kind: events\nfields:\n  event_id: id\n  lead_id: who\n  type: {{ column: id, values: {{ v1: page_view, v2: page_view, v3: page_view }} }}\n  time: when\n{extra}"
            ),
        )
        .unwrap();
    };
    let args = [
        "--tenant",
        "acme-fr",
        "-f",
        csv.to_str().unwrap(),
        "--mapping",
        mapping.to_str().unwrap(),
    ];
    write("time_format: \"%d/%m/%Y %H:%M\"\ntime_zone: Mars/Olympus\n");
    let stderr = import_fails(&app, &args);
    assert!(stderr.contains("time_zone: `Mars/Olympus` is not a time zone"), "{stderr}");
    write("time_format: \"%d/%m/%Y %Q\"\n");
    let stderr = import_fails(&app, &args);
    assert!(stderr.contains("time_format: `%d/%m/%Y %Q`"), "{stderr}");

    write("time_format: \"%d/%m/%Y %H:%M\"\ntime_zone: Europe/Paris\n");
    let summary = import(&app, &args);
    assert_eq!((summary["accepted"].as_u64(), summary["rejected"].as_u64()), (Some(2), Some(1)));
    let rejects = std::fs::read_to_string(dir.path().join("visits.csv.rejects.csv")).unwrap();
    assert!(
        rejects.contains("4,time,") && rejects.contains("does not match time_format"),
        "{rejects}"
    );
    // 10:00 in Paris: UTC+2 in summer time (2026-10-20T08:00:00Z), UTC+1 after it ends on 25
    // October (2026-11-02T09:00:00Z).
    assert_eq!(event_times(&app, "acme-fr", "l1").await, [1_792_483_200, 1_793_610_000]);
    app.stop().await;
}

/// Issue 16: a value a numeric rule cannot read (`"60 000 €"`) is stored, and kelvinctl says so
/// by line, field, model and rule instead of staying silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_shows_the_values_a_numeric_rule_cannot_read() {
    let app = spawn_app().await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "acme-fr").await;
    fixtures::publish(
        app.channel.clone(),
        &app.admin_token,
        "acme-fr",
        "default",
        kelvin_integration_tests::json::b2b_spec(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    // The budget as text: the mapping does not declare it a number, the model reads it as one.
    let mapping = dir.path().join("leads.yaml");
    std::fs::write(
        &mapping,
        "kind: leads\nfields:\n  lead_id: { column: id }\nattributes:\n  budget: Budget\n",
    )
    .unwrap();
    let csv = dir.path().join("leads.csv");
    std::fs::write(&csv, "id,Budget\nok-lead,60000\neuro-lead,60 000 €\n").unwrap();
    let summary = import(
        &app,
        &[
            "--tenant",
            "acme-fr",
            "-f",
            csv.to_str().unwrap(),
            "--mapping",
            mapping.to_str().unwrap(),
        ],
    );
    assert_eq!((summary["accepted"].as_u64(), summary["rejected"].as_u64()), (Some(2), Some(0)));
    assert_eq!(summary["warned"].as_u64(), Some(1), "{summary}");
    let warning = &summary["warnings"][0];
    assert_eq!(
        (warning["line"].as_u64(), warning["field"].as_str(), warning["model"].as_str()),
        (Some(3), Some("attributes.budget"), Some("default")),
        "{summary}"
    );
    assert_eq!(warning["rule"], "bant_budget", "{summary}");
    app.stop().await;
}
