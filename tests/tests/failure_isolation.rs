//! One tenant's bad data or bad luck never stops another's work (issue 14): text that a
//! database or a terminal would choke on is refused at the door, whatever the field; a work item
//! the database refuses becomes a visible, retryable dead letter instead of blocking the queue;
//! and the queue is taken fairly across tenants. Both backends.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // tests build the timestamps a server checks from the wall clock (clippy.toml)

use std::time::Duration;

use kelvin_integration_tests::json::{b2b_spec, to_struct};
use kelvin_integration_tests::raw::RawCodec;
use kelvin_integration_tests::{
    Backend, TestApp, authed, backend, eventually, fixtures, spawn_app_with,
};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::ingest_service_client::IngestServiceClient;
use kelvin_proto::v1::model_service_client::ModelServiceClient;
use kelvin_proto::v1::scoring_service_client::ScoringServiceClient;
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(30);

fn scoring(app: &TestApp) -> ScoringServiceClient<Channel> {
    ScoringServiceClient::new(app.channel.clone())
}

fn ingest(app: &TestApp) -> IngestServiceClient<Channel> {
    IngestServiceClient::new(app.channel.clone())
}

fn models(app: &TestApp) -> ModelServiceClient<Channel> {
    ModelServiceClient::new(app.channel.clone())
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn page_view(id: &str, lead: &str) -> pb::EventInput {
    pb::EventInput {
        event_id: id.into(),
        lead_id: lead.into(),
        r#type: "page_view".into(),
        time: Some(prost_types::Timestamp { seconds: now_s() - 60, nanos: 0 }),
        properties: Some(to_struct(json!({ "url": "/pricing" }))),
    }
}

async fn send(app: &TestApp, tenant: &str, events: Vec<pb::EventInput>) {
    let reply = ingest(app)
        .ingest_events(authed(
            &app.admin_token,
            pb::IngestEventsRequest { tenant_id: tenant.into(), events },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.results.iter().all(|r| r.status == pb::ItemStatus::Accepted as i32), "{reply:?}");
}

async fn scored(app: &TestApp, tenant: &str, lead: &str) -> bool {
    match scoring(app)
        .get_score(authed(
            &app.admin_token,
            pb::GetScoreRequest {
                tenant_id: tenant.into(),
                lead_id: lead.into(),
                model_id: String::new(),
            },
        ))
        .await
    {
        Ok(_) => true,
        Err(s) if s.code() == Code::NotFound => false,
        Err(s) => panic!("GetScore: {s:?}"),
    }
}

async fn dead_letters(app: &TestApp, tenant: &str) -> Vec<pb::DeadLetter> {
    scoring(app)
        .list_dead_letters(authed(
            &app.admin_token,
            pb::ListDeadLettersRequest { tenant_id: tenant.into(), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner()
        .dead_letters
}

/// A trigger that makes the database refuse the score of one lead, as PostgreSQL refused a
/// band label with a NUL: a stored item that can never be applied.
async fn poison(app: &TestApp, lead: &str) {
    let statements = match backend() {
        Backend::Postgres => vec![
            "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN \
             RAISE EXCEPTION 'poisoned lead refused'; END; $$ LANGUAGE plpgsql"
                .to_owned(),
            format!(
                "CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON lead_scores FOR EACH ROW \
                 WHEN (NEW.lead_id = '{lead}') EXECUTE FUNCTION refuse_poison()"
            ),
        ],
        Backend::Sqlite => vec![
            format!(
                "CREATE TRIGGER poison BEFORE INSERT ON lead_scores WHEN NEW.lead_id = '{lead}' \
                 BEGIN SELECT RAISE(ABORT, 'poisoned lead refused'); END"
            ),
            format!(
                "CREATE TRIGGER poison_update BEFORE UPDATE ON lead_scores WHEN NEW.lead_id = '{lead}' \
                 BEGIN SELECT RAISE(ABORT, 'poisoned lead refused'); END"
            ),
        ],
    };
    for s in statements {
        app.runtime.store.execute_unprepared(&s).await.unwrap();
    }
}

async fn cure(app: &TestApp) {
    let statements: &[&str] = match backend() {
        Backend::Postgres => &["DROP TRIGGER poison ON lead_scores"],
        Backend::Sqlite => &["DROP TRIGGER poison", "DROP TRIGGER poison_update"],
    };
    for s in statements {
        app.runtime.store.execute_unprepared(s).await.unwrap();
    }
}

/// Finding 1: a work item the database refuses stopped scoring for every tenant. Now it is
/// retried in a transaction of its own, becomes a dead letter after `max_attempts`, is listed
/// for its tenant only, and is scored once retried after the cause is fixed; every other item,
/// of its tenant and of another organization's, is scored meanwhile.
#[tokio::test]
async fn a_poisoned_work_item_becomes_a_dead_letter_and_blocks_no_one() {
    let app = spawn_app_with(|c| c.scoring.max_attempts = 2).await;
    fixtures::org(&app, "acme").await;
    fixtures::org(&app, "other").await;
    fixtures::tenant(&app, "acme", "acme-fr").await;
    fixtures::tenant(&app, "other", "other-fr").await;
    for t in ["acme-fr", "other-fr"] {
        fixtures::publish(app.channel.clone(), &app.admin_token, t, "default", b2b_spec()).await;
    }
    poison(&app, "poison").await;
    // The poisoned item first, so that it leads every batch it is in.
    send(&app, "acme-fr", vec![page_view("p1", "poison")]).await;
    send(
        &app,
        "acme-fr",
        (0..5).map(|i| page_view(&format!("a{i}"), &format!("good-{i}"))).collect(),
    )
    .await;
    send(
        &app,
        "other-fr",
        (0..5).map(|i| page_view(&format!("b{i}"), &format!("lead-{i}"))).collect(),
    )
    .await;

    for i in 0..5 {
        let (a, b) = (format!("good-{i}"), format!("lead-{i}"));
        eventually(WAIT, "the other tenant's leads are scored", || async {
            scored(&app, "other-fr", &b).await.then_some(())
        })
        .await;
        eventually(WAIT, "the same tenant's other leads are scored", || async {
            scored(&app, "acme-fr", &a).await.then_some(())
        })
        .await;
    }
    let dead = eventually(WAIT, "the poisoned item becomes a dead letter", || async {
        let d = dead_letters(&app, "acme-fr").await;
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].subject_id, "poison");
    assert_eq!(dead[0].kind, "event");
    assert_eq!(dead[0].attempts, 2);
    assert!(dead[0].error.contains("poisoned lead refused"), "{}", dead[0].error);
    assert!(dead_letters(&app, "other-fr").await.is_empty());
    assert!(!scored(&app, "acme-fr", "poison").await);

    // Another tenant's reader cannot see or retry them: NOT_FOUND, as for a missing tenant.
    let (other, _) = fixtures::token(&app, "other", "other-fr", pb::Role::Editor).await;
    let status = scoring(&app)
        .retry_dead_letters(authed(
            &other,
            pb::RetryDeadLettersRequest { tenant_id: "acme-fr".into(), dead_letter_ids: vec![] },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    // A reader may look but not retry.
    let (reader, _) = fixtures::token(&app, "acme", "acme-fr", pb::Role::Reader).await;
    let status = scoring(&app)
        .retry_dead_letters(authed(
            &reader,
            pb::RetryDeadLettersRequest { tenant_id: "acme-fr".into(), dead_letter_ids: vec![] },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = scoring(&app)
        .retry_dead_letters(authed(
            &app.admin_token,
            pb::RetryDeadLettersRequest {
                tenant_id: "acme-fr".into(),
                dead_letter_ids: vec![424242],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    // Fixed, then retried: scored once, the dead letter gone, the retry audited.
    cure(&app).await;
    let retried = scoring(&app)
        .retry_dead_letters(authed(
            &app.admin_token,
            pb::RetryDeadLettersRequest {
                tenant_id: "acme-fr".into(),
                dead_letter_ids: vec![dead[0].dead_letter_id],
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .retried;
    assert_eq!(retried, 1);
    eventually(WAIT, "the retried item is scored", || async {
        scored(&app, "acme-fr", "poison").await.then_some(())
    })
    .await;
    assert!(dead_letters(&app, "acme-fr").await.is_empty());
    let audit = app
        .tenants()
        .list_audit_events(authed(
            &app.admin_token,
            pb::ListAuditEventsRequest {
                organization_id: "acme".into(),
                tenant_id: "acme-fr".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        audit.audit_events.iter().any(|e| e.action == "scoring.retry_dead_letters"),
        "{:?}",
        audit.audit_events.iter().map(|e| &e.action).collect::<Vec<_>>()
    );
}

/// Finding 1, at the door: a NUL in a band label (or in any other text of any request) is
/// INVALID_ARGUMENT naming the field, on both backends, and nothing is stored.
#[tokio::test]
async fn control_characters_are_refused_at_the_door_with_their_path() {
    let app = spawn_app_with(|_| {}).await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "acme-fr").await;
    models(&app)
        .create_model(authed(
            &app.admin_token,
            pb::CreateModelRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                display_name: "d".into(),
            },
        ))
        .await
        .unwrap();
    let mut spec = b2b_spec();
    spec["bands"]["thresholds"][0]["label"] = json!("hot\u{0}");
    let status = models(&app)
        .create_model_version(authed(
            &app.admin_token,
            pb::CreateModelVersionRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                spec: Some(to_struct(spec)),
                comment: "c".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("spec.bands.thresholds[0].label"), "{}", status.message());
    let status = models(&app)
        .create_model_version(authed(
            &app.admin_token,
            pb::CreateModelVersionRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                spec: Some(to_struct(b2b_spec())),
                comment: "bad\u{0}comment".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("comment"), "{}", status.message());
    let versions = models(&app)
        .list_model_versions(authed(
            &app.admin_token,
            pb::ListModelVersionsRequest {
                tenant_id: "acme-fr".into(),
                model_id: "default".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(versions.versions.is_empty(), "nothing stored: {versions:?}");

    let status = ingest(&app)
        .record_outcomes(authed(
            &app.admin_token,
            pb::RecordOutcomesRequest {
                tenant_id: "acme-fr".into(),
                outcomes: vec![pb::Outcome {
                    outcome_id: "o1".into(),
                    lead_id: "l1".into(),
                    kind: pb::OutcomeKind::Won as i32,
                    value: 1.0,
                    currency: "E\u{0}R".into(),
                    time: Some(prost_types::Timestamp { seconds: now_s(), nanos: 0 }),
                }],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("outcomes[0].currency"), "{}", status.message());
    // An escape sequence in an event property (it would rewrite an operator's terminal).
    let mut e = page_view("e1", "l1");
    e.properties = Some(to_struct(json!({ "title": "\u{1b}[2Jhello" })));
    let status = ingest(&app)
        .ingest_events(authed(
            &app.admin_token,
            pb::IngestEventsRequest { tenant_id: "acme-fr".into(), events: vec![e] },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("events[0].properties.title"), "{}", status.message());
    // Tabs, new lines and any printable text are fine.
    let mut e = page_view("e2", "l1");
    e.properties = Some(to_struct(json!({ "title": "Prix\tet\ntarifs — 日本 🎉" })));
    send(&app, "acme-fr", vec![e]).await;
}

/// Finding 12 (first item): a malformed protobuf message is the caller's fault:
/// INVALID_ARGUMENT, not INTERNAL (which would feed the operators' error-rate alert).
#[tokio::test]
async fn a_malformed_message_is_invalid_argument() {
    let app = spawn_app_with(|_| {}).await;
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    // Field 1 says 9 bytes follow; one does. Then a valid message with invalid UTF-8 text.
    for body in [vec![0x0a_u8, 9, b'a'], vec![0x0a, 2, 0xff, 0xfe]] {
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(
            "/kelvin.v1.IngestService/IngestEvents",
        );
        grpc.ready().await.unwrap();
        let status = grpc.unary(authed(&app.admin_token, body), path, RawCodec).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
}

/// Finding 4: after a tenant was purged, a new tenant of another organization under the same id
/// read the old tenant's cached scores. Cache namespaces are per incarnation of a tenant id, so
/// even a purge that could not clear the cache (here the store's purge alone, no sweeper) leaves
/// nothing readable to the new tenant.
#[tokio::test]
async fn a_reused_tenant_id_starts_with_an_empty_cache() {
    let app = spawn_app_with(|_| {}).await;
    fixtures::org(&app, "acme").await;
    fixtures::org(&app, "other").await;
    let old = fixtures::tenant(&app, "acme", "shared-id").await;
    fixtures::publish(app.channel.clone(), &app.admin_token, "shared-id", "default", b2b_spec())
        .await;
    send(&app, "shared-id", vec![page_view("e1", "lead-1")]).await;
    eventually(WAIT, "the old tenant's lead is scored", || async {
        scored(&app, "shared-id", "lead-1").await.then_some(())
    })
    .await;
    let incarnation = {
        let t = old.create_time.unwrap();
        t.seconds * 1000 + i64::from(t.nanos) / 1_000_000
    };
    let old_ns = kelvin_cache::Namespace::tenant("shared-id", incarnation);
    eventually(WAIT, "the score is cached", || async {
        app.runtime.cache.get(&old_ns, "score:7:default:lead-1").await.unwrap().map(|_| ())
    })
    .await;

    app.tenants()
        .delete_tenant(authed(
            &app.admin_token,
            pb::DeleteTenantRequest { tenant_id: "shared-id".into(), ..Default::default() },
        ))
        .await
        .unwrap();
    app.runtime
        .store
        .execute_unprepared("UPDATE tenants SET purge_time = 0 WHERE id = 'shared-id'")
        .await
        .unwrap();
    app.runtime.store.purge_due_tenants().await.unwrap();
    assert!(
        app.runtime.cache.get(&old_ns, "score:7:default:lead-1").await.unwrap().is_some(),
        "the old entry is still there: the test covers a purge that did not clear the cache"
    );

    // The same id, another organization.
    fixtures::tenant(&app, "other", "shared-id").await;
    let (token, _) = fixtures::token(&app, "other", "shared-id", pb::Role::Reader).await;
    let status = scoring(&app)
        .get_score(authed(
            &token,
            pb::GetScoreRequest {
                tenant_id: "shared-id".into(),
                lead_id: "lead-1".into(),
                model_id: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let batch = scoring(&app)
        .batch_get_scores(authed(
            &token,
            pb::BatchGetScoresRequest {
                tenant_id: "shared-id".into(),
                lead_ids: vec!["lead-1".into()],
                model_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(batch.scores.is_empty(), "{batch:?}");
}

fn lead(id: &str, attributes: serde_json::Value) -> pb::LeadInput {
    pb::LeadInput {
        lead_id: id.into(),
        company_id: String::new(),
        attributes: Some(to_struct(attributes)),
        enriched: None,
    }
}

/// Finding 6: concurrent UpsertLeads and UpsertCompanies of the same new ids failed with
/// INTERNAL on PostgreSQL (find-then-insert). Now every call succeeds and no merge is lost: each
/// call's own attribute is in the final row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_upserts_of_the_same_new_ids_all_succeed_and_merge() {
    let app = spawn_app_with(|_| {}).await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "acme-fr").await;
    let calls = (0..40).map(|i| {
        let mut leads = ingest(&app);
        let mut companies = ingest(&app);
        let token = app.admin_token.clone();
        async move {
            // Every call touches the same four ids, in a different order.
            let mut ids: Vec<String> = (0..4).map(|k| format!("new-{k}")).collect();
            ids.rotate_left(i % 4);
            let key = format!("k{i}");
            leads
                .upsert_leads(authed(
                    &token,
                    pb::UpsertLeadsRequest {
                        tenant_id: "acme-fr".into(),
                        leads: ids.iter().map(|id| lead(id, json!({ key.clone(): i }))).collect(),
                    },
                ))
                .await
                .map(drop)?;
            companies
                .upsert_companies(authed(
                    &token,
                    pb::UpsertCompaniesRequest {
                        tenant_id: "acme-fr".into(),
                        companies: ids
                            .iter()
                            .map(|id| pb::CompanyInput {
                                company_id: id.clone(),
                                attributes: Some(to_struct(json!({ key.clone(): i }))),
                            })
                            .collect(),
                    },
                ))
                .await
                .map(drop)
        }
    });
    let results = futures::future::join_all(calls).await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "{} calls failed: {failed:?}", failed.len());
    let export = ingest(&app)
        .export_lead(authed(
            &app.admin_token,
            pb::ExportLeadRequest {
                tenant_id: "acme-fr".into(),
                lead_id: "new-2".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let attributes = export.lead.unwrap().attributes.unwrap();
    for i in 0..40 {
        assert!(attributes.fields.contains_key(&format!("k{i}")), "k{i} lost: {attributes:?}");
    }
}

/// Finding 7: UpsertLeads, UpsertCompanies and RecordOutcomes had no quota. Every ingest write
/// now takes from the tenant's quota: the noisy tenant gets RESOURCE_EXHAUSTED with RetryInfo,
/// the quiet tenant's writes go through.
#[tokio::test]
async fn every_ingest_write_counts_against_the_tenant_quota() {
    use tonic_types::StatusExt as _;
    let app = spawn_app_with(|c| c.ingest.events_per_second = 50).await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "noisy").await;
    fixtures::tenant(&app, "acme", "quiet").await;
    let leads = |tenant: &str, n: usize| pb::UpsertLeadsRequest {
        tenant_id: tenant.into(),
        leads: (0..n).map(|i| lead(&format!("l{i}"), json!({ "n": i }))).collect(),
    };
    ingest(&app).upsert_leads(authed(&app.admin_token, leads("noisy", 40))).await.unwrap();
    let refused = [
        ingest(&app).upsert_leads(authed(&app.admin_token, leads("noisy", 40))).await.map(drop),
        ingest(&app)
            .upsert_companies(authed(
                &app.admin_token,
                pb::UpsertCompaniesRequest {
                    tenant_id: "noisy".into(),
                    companies: (0..40)
                        .map(|i| pb::CompanyInput { company_id: format!("c{i}"), attributes: None })
                        .collect(),
                },
            ))
            .await
            .map(drop),
        ingest(&app)
            .record_outcomes(authed(
                &app.admin_token,
                pb::RecordOutcomesRequest {
                    tenant_id: "noisy".into(),
                    outcomes: (0..40)
                        .map(|i| pb::Outcome {
                            outcome_id: format!("o{i}"),
                            lead_id: "l1".into(),
                            kind: pb::OutcomeKind::Won as i32,
                            value: 1.0,
                            currency: "EUR".into(),
                            time: Some(prost_types::Timestamp { seconds: now_s(), nanos: 0 }),
                        })
                        .collect(),
                },
            ))
            .await
            .map(drop),
    ];
    for r in refused {
        let status = r.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        let retry = status.get_details_retry_info().expect("RetryInfo");
        assert!(
            retry.retry_delay.is_some_and(|d| d > Duration::ZERO && d <= Duration::from_secs(2))
        );
    }
    // The quiet tenant is not slowed or refused by the noisy one's bucket.
    ingest(&app).upsert_leads(authed(&app.admin_token, leads("quiet", 40))).await.unwrap();
}
