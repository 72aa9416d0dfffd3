//! Scoring models as versioned, audited resources, through the API.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // tests build the timestamps a server checks from the wall clock (clippy.toml)

use kelvin_integration_tests::json::{b2b_spec, to_struct};
use kelvin_integration_tests::{TestApp, authed, fixtures, spawn_app};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::model_service_client::ModelServiceClient;
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

fn models(app: &TestApp) -> ModelServiceClient<Channel> {
    ModelServiceClient::new(app.channel.clone())
}

fn ts(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

/// The B2B spec with the hot threshold at `hot`.
fn b2b_with_hot(hot: i64) -> serde_json::Value {
    let mut spec = b2b_spec();
    spec["bands"]["thresholds"][0]["min"] = json!(hot);
    spec
}

async fn setup() -> TestApp {
    let app = spawn_app().await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "acme-fr").await;
    app
}

async fn draft(
    app: &TestApp,
    token: &str,
    spec: serde_json::Value,
    comment: &str,
) -> pb::ModelVersion {
    models(app)
        .create_model_version(authed(
            token,
            pb::CreateModelVersionRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                spec: Some(to_struct(spec)),
                comment: comment.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .version
        .unwrap()
}

#[tokio::test]
async fn draft_simulate_publish_diff_rollback_and_audit() {
    let app = setup().await;
    let admin = app.admin_token.clone();
    let mut api = models(&app);
    let model = api
        .create_model(authed(
            &admin,
            pb::CreateModelRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                display_name: "Default".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .model
        .unwrap();
    assert_eq!((model.active_version, model.latest_version), (0, 0));

    let v1 = draft(&app, &admin, b2b_spec(), "first model").await;
    assert_eq!((v1.version, v1.state, v1.active), (1, pb::ModelVersionState::Draft as i32, false));

    // A draft can be simulated: a director in France with a pricing visit the same day.
    let now = 1_800_000_000;
    let score = api
        .simulate_score(authed(
            &admin,
            pb::SimulateScoreRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                version: 1,
                lead: Some(pb::LeadInput {
                    lead_id: "l1".into(),
                    attributes: Some(to_struct(
                        json!({"country": "FR", "job_title": "Head of Sales", "company_size": 120}),
                    )),
                    ..Default::default()
                }),
                events: vec![pb::EventInput {
                    event_id: "e1".into(),
                    r#type: "page_view".into(),
                    time: Some(ts(now)),
                    properties: Some(to_struct(json!({"url": "https://acme.example/pricing"}))),
                    ..Default::default()
                }],
                as_of: Some(ts(now)),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .score
        .unwrap();
    // Fit 10 (country) + 20 (size 50-500) + 15 (head of) = 45; engagement 10 (pricing, no decay).
    assert_eq!((score.fit, score.engagement, score.total), (45.0, 10.0, 55.0));
    assert_eq!(score.band, "warm");
    let sum: f64 = score.contributions.iter().map(|c| c.points).sum();
    assert!((sum - score.total).abs() < 1e-9, "contributions add up: {sum} vs {}", score.total);
    let pricing = score.contributions.iter().find(|c| c.rule_id == "pricing_page").unwrap();
    assert_eq!(pricing.event_ids, ["e1"]);

    // Publish v1, expecting no active version.
    let published = api
        .publish_model_version(authed(
            &admin,
            pb::PublishModelVersionRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                version: 1,
                expected_active_version: 0,
                comment: "go live".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(published.model.unwrap().active_version, 1);
    let v1_published = published.version.unwrap();
    assert_eq!(v1_published.state, pb::ModelVersionState::Published as i32);

    // A second draft lowers the hot threshold; the diff says so, rule by rule.
    let v2 = draft(&app, &admin, b2b_with_hot(60), "hot from 60").await;
    let diff = api
        .diff_model_versions(authed(
            &admin,
            pb::DiffModelVersionsRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                from_version: 1,
                to_version: 2,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(diff.changes.len(), 1, "{:?}", diff.changes);
    assert_eq!(
        (diff.changes[0].section.as_str(), diff.changes[0].field.as_str()),
        ("bands", "thresholds")
    );

    // Stale expectations are refused; the right one publishes.
    let stale = api
        .publish_model_version(authed(
            &admin,
            pb::PublishModelVersionRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                version: 2,
                expected_active_version: 0,
                comment: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    api.publish_model_version(authed(
        &admin,
        pb::PublishModelVersionRequest {
            tenant_id: "acme-fr".into(),
            model_id: "default".into(),
            version: v2.version,
            expected_active_version: 1,
            comment: "lower hot".into(),
        },
    ))
    .await
    .unwrap();
    // Under v2 the same lead scores the same but is now... still warm at 55; at 60 it would be hot.
    let rolled = api
        .rollback_model(authed(
            &admin,
            pb::RollbackModelRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                to_version: 1,
                expected_active_version: 2,
                comment: "too many hot leads".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rolled.model.unwrap().active_version, 1);
    // Rolling back to a draft is refused; so is publishing the active version again.
    let v3 = draft(&app, &admin, b2b_with_hot(65), "never published").await;
    let err = api
        .rollback_model(authed(
            &admin,
            pb::RollbackModelRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                to_version: v3.version,
                expected_active_version: 1,
                comment: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    // Published versions never change.
    let v1_now = api
        .get_model_version(authed(
            &admin,
            pb::GetModelVersionRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                version: 1,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .version
        .unwrap();
    assert_eq!(v1_now.spec, v1_published.spec);
    assert_eq!(v1_now.spec_sha256, v1.spec_sha256);
    assert!(v1_now.active);
    let active = api
        .get_model_version(authed(
            &admin,
            pb::GetModelVersionRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                version: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .version
        .unwrap();
    assert_eq!(active.version, 1);
    let versions = api
        .list_model_versions(authed(
            &admin,
            pb::ListModelVersionsRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                page_size: 2,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(versions.versions.iter().map(|v| v.version).collect::<Vec<_>>(), [3, 2]);
    assert!(!versions.next_page_token.is_empty());

    // Durable activations for scoring: publish 1, publish 2, rollback to 1.
    let access_principal = kelvin_auth::Verifier::new("kelvin", "kelvin")
        .with_key(&app.runtime.signer)
        .verify(&admin)
        .await
        .unwrap()
        .principal;
    let access = app.runtime.store.access(&access_principal);
    let scope = access.tenant_scope("acme-fr").await.unwrap();
    let activations = access.model_activations(&scope, "default").await.unwrap();
    let summary: Vec<_> =
        activations.iter().map(|a| (a.kind.as_str(), a.previous_version, a.version)).collect();
    assert_eq!(summary, [("publish", 0, 1), ("publish", 1, 2), ("rollback", 2, 1)]);

    // The audit trail of the model, newest first, with reasons and the published diff.
    let audit = app
        .tenants()
        .list_audit_events(authed(
            &admin,
            pb::ListAuditEventsRequest {
                organization_id: "acme".into(),
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let trail: Vec<_> =
        audit.audit_events.iter().map(|e| (e.action.as_str(), e.reason.as_str())).collect();
    assert_eq!(
        trail,
        [
            ("model_version.create", "never published"),
            ("model.rollback", "too many hot leads"),
            ("model.publish", "lower hot"),
            ("model_version.create", "hot from 60"),
            ("model.publish", "go live"),
            ("model_version.create", "first model"),
            ("model.create", ""),
        ]
    );
    let publish_v2 = &audit.audit_events[2];
    let diff = &publish_v2.after.as_ref().unwrap().fields["diff"];
    assert!(format!("{diff:?}").contains("thresholds"), "{diff:?}");
    app.stop().await;
}

#[tokio::test]
async fn invalid_specs_list_every_error_with_its_path_and_store_nothing() {
    let app = setup().await;
    let admin = app.admin_token.clone();
    let mut api = models(&app);
    api.create_model(authed(
        &admin,
        pb::CreateModelRequest {
            tenant_id: "acme-fr".into(),
            model_id: "default".into(),
            display_name: String::new(),
        },
    ))
    .await
    .unwrap();
    let mut bad = b2b_spec();
    bad["engagement"][0]["cap"]["points"] = json!(0);
    bad["fit"][1]["id"] = bad["fit"][0]["id"].clone();
    let status = api
        .create_model_version(authed(
            &admin,
            pb::CreateModelVersionRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                spec: Some(to_struct(bad.clone())),
                comment: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_details_bad_request().expect("a BadRequest detail");
    let fields: Vec<_> = details.field_violations.iter().map(|v| v.field.as_str()).collect();
    assert!(fields.contains(&"spec.engagement[0].cap.points"), "{fields:?}");
    assert!(fields.iter().any(|f| f.starts_with("spec.fit[1]")), "{fields:?}");
    // Unknown fields are errors too.
    let mut unknown = b2b_spec();
    unknown["engagement"][0]["pionts"] = json!(3);
    let validated = api
        .validate_model(authed(
            &admin,
            pb::ValidateModelRequest {
                tenant_id: "acme-fr".into(),
                spec: Some(to_struct(unknown)),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!validated.valid);
    assert!(validated.errors[0].path.starts_with("engagement[0]"), "{:?}", validated.errors);
    let ok = api
        .validate_model(authed(
            &admin,
            pb::ValidateModelRequest {
                tenant_id: "acme-fr".into(),
                spec: Some(to_struct(b2b_spec())),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(ok.valid && ok.errors.is_empty());
    let model = api
        .get_model(authed(
            &admin,
            pb::GetModelRequest { tenant_id: "acme-fr".into(), model_id: "default".into() },
        ))
        .await
        .unwrap()
        .into_inner()
        .model
        .unwrap();
    assert_eq!(model.latest_version, 0, "nothing was stored");
    app.stop().await;
}

#[tokio::test]
async fn roles_draft_simulate_publish() {
    let app = setup().await;
    let admin = app.admin_token.clone();
    models(&app)
        .create_model(authed(
            &admin,
            pb::CreateModelRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                display_name: String::new(),
            },
        ))
        .await
        .unwrap();
    let (editor, _) = fixtures::token(&app, "acme", "acme-fr", pb::Role::Editor).await;
    let (reader, _) = fixtures::token(&app, "acme", "acme-fr", pb::Role::Reader).await;
    let (ingest, _) = fixtures::token(&app, "acme", "acme-fr", pb::Role::Ingest).await;
    let mut api = models(&app);

    // Editors draft and simulate, but do not publish.
    let v1 = draft(&app, &editor, b2b_spec(), "by an editor").await;
    api.simulate_score(authed(
        &editor,
        pb::SimulateScoreRequest {
            tenant_id: "acme-fr".into(),
            model_id: "default".into(),
            version: v1.version,
            ..Default::default()
        },
    ))
    .await
    .unwrap();
    let publish = |token: &str| {
        authed(
            token,
            pb::PublishModelVersionRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                version: 1,
                expected_active_version: 0,
                comment: String::new(),
            },
        )
    };
    assert_eq!(
        api.publish_model_version(publish(&editor)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    // Readers read and diff; they neither draft nor simulate.
    api.get_model(authed(
        &reader,
        pb::GetModelRequest { tenant_id: "acme-fr".into(), model_id: "default".into() },
    ))
    .await
    .unwrap();
    let status = api
        .create_model_version(authed(
            &reader,
            pb::CreateModelVersionRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                spec: Some(to_struct(b2b_spec())),
                comment: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // Ingest keys do not read models.
    let status = api
        .get_model(authed(
            &ingest,
            pb::GetModelRequest { tenant_id: "acme-fr".into(), model_id: "default".into() },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // Admins publish.
    api.publish_model_version(publish(&admin)).await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_of_one_model_let_exactly_one_win() {
    let app = setup().await;
    let admin = app.admin_token.clone();
    for round in 0..5 {
        let model_id = format!("race-{round}");
        models(&app)
            .create_model(authed(
                &admin,
                pb::CreateModelRequest {
                    tenant_id: "acme-fr".into(),
                    model_id: model_id.clone(),
                    display_name: String::new(),
                },
            ))
            .await
            .unwrap();
        for hot in [60, 70] {
            let mut spec = b2b_with_hot(hot);
            spec["description"] = json!(format!("round {round}"));
            models(&app)
                .create_model_version(authed(
                    &admin,
                    pb::CreateModelVersionRequest {
                        tenant_id: "acme-fr".into(),
                        model_id: model_id.clone(),
                        spec: Some(to_struct(spec)),
                        comment: String::new(),
                    },
                ))
                .await
                .unwrap();
        }
        let publish = |version: i64| {
            let mut api = models(&app);
            let request = authed(
                &admin,
                pb::PublishModelVersionRequest {
                    tenant_id: "acme-fr".into(),
                    model_id: model_id.clone(),
                    version,
                    expected_active_version: 0,
                    comment: String::new(),
                },
            );
            async move { api.publish_model_version(request).await }
        };
        let (a, b) = tokio::join!(publish(1), publish(2));
        let codes = [
            a.map(|_| Code::Ok).unwrap_or_else(|s| s.code()),
            b.map(|_| Code::Ok).unwrap_or_else(|s| s.code()),
        ];
        assert!(
            codes == [Code::Ok, Code::Aborted] || codes == [Code::Aborted, Code::Ok],
            "round {round}: {codes:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_stored_lead_is_simulated_with_its_attributes_company_and_events() {
    let app = setup().await;
    let admin = app.admin_token.clone();
    models(&app)
        .create_model(authed(
            &admin,
            pb::CreateModelRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                display_name: String::new(),
            },
        ))
        .await
        .unwrap();
    draft(&app, &admin, b2b_spec(), "draft").await;
    let mut ingest =
        kelvin_proto::v1::ingest_service_client::IngestServiceClient::new(app.channel.clone());
    ingest
        .upsert_leads(authed(
            &admin,
            pb::UpsertLeadsRequest {
                tenant_id: "acme-fr".into(),
                leads: vec![pb::LeadInput {
                    lead_id: "l1".into(),
                    attributes: Some(to_struct(
                        json!({"country": "FR", "job_title": "Head of Sales"}),
                    )),
                    enriched: Some(to_struct(json!({"country": "US", "company_size": 120}))),
                    ..Default::default()
                }],
            },
        ))
        .await
        .unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64;
    let ingested = ingest
        .ingest_events(authed(
            &admin,
            pb::IngestEventsRequest {
                tenant_id: "acme-fr".into(),
                events: vec![pb::EventInput {
                    event_id: "e1".into(),
                    lead_id: "l1".into(),
                    r#type: "page_view".into(),
                    time: Some(ts(now - 3600)),
                    properties: Some(to_struct(json!({"url": "https://acme.example/pricing"}))),
                }],
            },
        ))
        .await
        .unwrap();
    assert_eq!(ingested.into_inner().accepted, 1);
    let score = models(&app)
        .simulate_score(authed(
            &admin,
            pb::SimulateScoreRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                version: 1,
                lead: Some(pb::LeadInput { lead_id: "l1".into(), ..Default::default() }),
                as_of: Some(ts(now)),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .score
        .unwrap();
    // The explicit country (FR, +10) wins over the enriched one; size 120 (+20), head of (+15);
    // the stored pricing visit an hour ago (+10; decay over one hour rounds to 10.0 or just
    // under, so compare to the engine's own contribution).
    assert_eq!(score.fit, 45.0);
    let pricing = score.contributions.iter().find(|c| c.rule_id == "pricing_page").unwrap();
    assert_eq!(pricing.event_ids, ["e1"]);
    assert!(pricing.points > 9.9 && pricing.points <= 10.0, "{}", pricing.points);
    let missing = models(&app)
        .simulate_score(authed(
            &admin,
            pb::SimulateScoreRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                version: 1,
                lead: Some(pb::LeadInput { lead_id: "nobody".into(), ..Default::default() }),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    app.stop().await;
}
