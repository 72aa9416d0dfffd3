//! Ingestion: durable, idempotent, validated, within quotas; export and erasure.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // tests build the timestamps a server checks from the wall clock (clippy.toml)

use kelvin_integration_tests::json::to_struct;
use kelvin_integration_tests::{TestApp, authed, fixtures, spawn_app, spawn_app_with};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::ingest_service_client::IngestServiceClient;
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;

fn ingest(app: &TestApp) -> IngestServiceClient<Channel> {
    IngestServiceClient::new(app.channel.clone())
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn event(id: &str, lead: &str, kind: &str, seconds: i64) -> pb::EventInput {
    pb::EventInput {
        event_id: id.into(),
        lead_id: lead.into(),
        r#type: kind.into(),
        time: Some(prost_types::Timestamp { seconds, nanos: 0 }),
        properties: Some(to_struct(json!({"url": "https://acme.example/pricing"}))),
    }
}

async fn setup() -> TestApp {
    let app = spawn_app().await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "acme-fr").await;
    app
}

async fn stored_events(app: &TestApp, tenant: &str) -> u64 {
    let principal = kelvin_auth::Verifier::new("kelvin", "kelvin")
        .with_key(&app.runtime.signer)
        .verify(&app.admin_token)
        .await
        .unwrap()
        .principal;
    let access = app.runtime.store.access(&principal);
    let scope = access.tenant_scope(tenant).await.unwrap();
    access.count_events(&scope).await.unwrap()
}

#[tokio::test]
async fn events_are_acknowledged_once_stored_and_counted_once() {
    let app = setup().await;
    let (token, _) = fixtures::token(&app, "acme", "acme-fr", pb::Role::Ingest).await;
    let t = now_s();
    let mut batch = vec![
        event("e1", "lead-1", "page_view", t - 60),
        event("e2", "lead-1", "email_open", t - 30),
        event("e1", "lead-1", "page_view", t - 60),
        event("", "lead-1", "page_view", t),
        event("e4", "lead-1", "Page View", t),
        event("e5", "", "page_view", t),
        event("e6", "lead-2", "page_view", t + 3 * 86_400),
    ];
    batch[3].event_id = String::new();
    let mut no_time = event("e7", "lead-2", "page_view", t);
    no_time.time = None;
    batch.push(no_time);
    let reply = ingest(&app)
        .ingest_events(authed(
            &token,
            pb::IngestEventsRequest { tenant_id: "acme-fr".into(), events: batch.clone() },
        ))
        .await
        .unwrap()
        .into_inner();
    let summary: Vec<_> =
        reply.results.iter().map(|r| (r.id.as_str(), r.status, r.field.as_str())).collect();
    use pb::ItemStatus::{Accepted, Duplicate, Rejected};
    assert_eq!(
        summary,
        [
            ("e1", Accepted as i32, ""),
            ("e2", Accepted as i32, ""),
            ("e1", Duplicate as i32, ""),
            ("", Rejected as i32, "events[3].event_id"),
            ("e4", Rejected as i32, "events[4].type"),
            ("e5", Rejected as i32, "events[5].lead_id"),
            ("e6", Rejected as i32, "events[6].time"),
            ("e7", Rejected as i32, "events[7].time"),
        ]
    );
    assert_eq!((reply.accepted, reply.duplicates, reply.rejected), (2, 1, 5));
    // The acknowledgement means the events are in the store.
    assert_eq!(stored_events(&app, "acme-fr").await, 2);
    // Sent again: all duplicates, nothing counted twice.
    let again = ingest(&app)
        .ingest_events(authed(
            &token,
            pb::IngestEventsRequest { tenant_id: "acme-fr".into(), events: batch[..3].to_vec() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.accepted, again.duplicates), (0, 3));
    assert_eq!(stored_events(&app, "acme-fr").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn streamed_batches_are_acknowledged_in_order() {
    let app = setup().await;
    let (token, _) = fixtures::token(&app, "acme", "acme-fr", pb::Role::Ingest).await;
    let t = now_s();
    let batches: Vec<_> = (0..5)
        .map(|b| pb::StreamEventsRequest {
            tenant_id: "acme-fr".into(),
            // Each batch repeats the previous batch's last event: one duplicate per batch.
            events: (b * 10..b * 10 + 11)
                .map(|i| event(&format!("s{i}"), "lead-1", "page_view", t - i))
                .collect(),
            sequence: b,
        })
        .collect();
    let mut acks = ingest(&app)
        .stream_events(authed(&token, tokio_stream::iter(batches)))
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while let Some(ack) = acks.message().await.unwrap() {
        seen.push((ack.sequence, ack.accepted, ack.duplicates));
    }
    assert_eq!(seen, [(0, 11, 0), (1, 10, 1), (2, 10, 1), (3, 10, 1), (4, 10, 1)]);
    assert_eq!(stored_events(&app, "acme-fr").await, 51);
    app.stop().await;
}

#[tokio::test]
async fn quotas_refuse_a_noisy_tenant_without_hurting_the_others() {
    let app = spawn_app_with(|c| {
        c.ingest.events_per_second = 100;
        c.ingest.max_batch = 200;
    })
    .await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "noisy").await;
    fixtures::tenant(&app, "acme", "quiet").await;
    let t = now_s();
    let batch = |tenant: &str, from: i64, n: i64| pb::IngestEventsRequest {
        tenant_id: tenant.into(),
        events: (from..from + n)
            .map(|i| event(&format!("q{i}"), "lead-1", "page_view", t - i))
            .collect(),
    };
    let admin = app.admin_token.clone();
    ingest(&app).ingest_events(authed(&admin, batch("noisy", 0, 100))).await.unwrap();
    let status =
        ingest(&app).ingest_events(authed(&admin, batch("noisy", 100, 100))).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.message().contains("quota"), "{}", status.message());
    ingest(&app).ingest_events(authed(&admin, batch("quiet", 0, 50))).await.unwrap();
    let status =
        ingest(&app).ingest_events(authed(&admin, batch("quiet", 50, 201))).await.unwrap_err();
    // The size of one call is the request's problem (INVALID_ARGUMENT naming the field); a
    // rate is RESOURCE_EXHAUSTED.
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("events"), "{}", status.message());
    assert!(status.message().contains("limit of 200"), "{}", status.message());
    assert_eq!(stored_events(&app, "noisy").await, 100);
    app.stop().await;
}

#[tokio::test]
async fn leads_merge_export_everything_and_erase_leaves_no_personal_data() {
    let app = setup().await;
    let admin = app.admin_token.clone();
    let (ingest_key, _) = fixtures::token(&app, "acme", "acme-fr", pb::Role::Ingest).await;
    let mut api = ingest(&app);
    let upsert =
        |attributes: serde_json::Value, enriched: serde_json::Value| pb::UpsertLeadsRequest {
            tenant_id: "acme-fr".into(),
            leads: vec![pb::LeadInput {
                lead_id: "jane@client.example".into(),
                attributes: Some(to_struct(attributes)),
                company_id: "client-co".into(),
                enriched: Some(to_struct(enriched)),
            }],
        };
    api.upsert_companies(authed(
        &ingest_key,
        pb::UpsertCompaniesRequest {
            tenant_id: "acme-fr".into(),
            companies: vec![pb::CompanyInput {
                company_id: "client-co".into(),
                attributes: Some(to_struct(json!({"employees": 120}))),
            }],
        },
    ))
    .await
    .unwrap();
    api.upsert_leads(authed(
        &ingest_key,
        upsert(json!({"country": "FR", "job_title": "CTO"}), json!({"email_validity": "ok"})),
    ))
    .await
    .unwrap();
    api.upsert_leads(authed(
        &ingest_key,
        upsert(json!({"job_title": null, "budget": 60000}), json!({})),
    ))
    .await
    .unwrap();
    let t = now_s();
    api.ingest_events(authed(
        &ingest_key,
        pb::IngestEventsRequest {
            tenant_id: "acme-fr".into(),
            events: vec![
                event("x2", "jane@client.example", "email_open", t - 10),
                event("x1", "jane@client.example", "page_view", t - 20),
            ],
        },
    ))
    .await
    .unwrap();
    api.record_outcomes(authed(
        &ingest_key,
        pb::RecordOutcomesRequest {
            tenant_id: "acme-fr".into(),
            outcomes: vec![pb::Outcome {
                outcome_id: "deal-1".into(),
                lead_id: "jane@client.example".into(),
                kind: pb::OutcomeKind::Won as i32,
                value: 12000.0,
                currency: "EUR".into(),
                time: Some(prost_types::Timestamp { seconds: t, nanos: 0 }),
            }],
        },
    ))
    .await
    .unwrap();

    // Ingest keys send data but may not read it back or erase it.
    let status = api
        .export_lead(authed(
            &ingest_key,
            pb::ExportLeadRequest {
                tenant_id: "acme-fr".into(),
                lead_id: "jane@client.example".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    let export = api
        .export_lead(authed(
            &admin,
            pb::ExportLeadRequest {
                tenant_id: "acme-fr".into(),
                lead_id: "jane@client.example".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let lead = export.lead.unwrap();
    let attributes =
        serde_json::Value::Object(kelvin_proto::convert::struct_json(lead.attributes.unwrap()));
    assert_eq!(attributes, json!({"country": "FR", "budget": 60000}), "merged, null removed");
    assert_eq!(lead.company_id, "client-co");
    assert_eq!(export.company.unwrap().company_id, "client-co");
    assert_eq!(export.events.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(), ["x1", "x2"]);
    assert_eq!(export.outcomes.len(), 1);

    let erased = api
        .erase_lead(authed(
            &admin,
            pb::EraseLeadRequest {
                tenant_id: "acme-fr".into(),
                lead_id: "jane@client.example".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((erased.events_erased, erased.outcomes_erased), (2, 1));
    let status = api
        .export_lead(authed(
            &admin,
            pb::ExportLeadRequest {
                tenant_id: "acme-fr".into(),
                lead_id: "jane@client.example".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(stored_events(&app, "acme-fr").await, 0);
    let audit = app
        .tenants()
        .list_audit_events(authed(
            &admin,
            pb::ListAuditEventsRequest {
                organization_id: "acme".into(),
                action: "lead.erase".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(audit.audit_events.len(), 1);
    let row = format!("{:?}", audit.audit_events[0]);
    assert!(!row.contains("jane") && !row.contains("client.example"), "no personal data: {row}");
    app.stop().await;
}

/// Reads every page of `lead`'s export with `token`, checking each stays within `limit` bytes
/// and `page_size` items.
async fn export_pages(
    app: &TestApp,
    token: &str,
    lead: &str,
    page_size: i32,
    limit: usize,
) -> Vec<pb::ExportLeadResponse> {
    use prost::Message;
    let mut pages = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = ingest(app)
            .export_lead(authed(
                token,
                pb::ExportLeadRequest {
                    tenant_id: "acme-fr".into(),
                    lead_id: lead.into(),
                    page_size,
                    page_token: page_token.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.encoded_len() <= limit, "page of {} bytes", page.encoded_len());
        let items = page.events.len() + page.outcomes.len();
        assert!(items >= 1, "no empty page");
        if page_size > 0 {
            assert!(items <= page_size as usize, "{items} items in a page of {page_size}");
        }
        assert_eq!(page.lead.as_ref().unwrap().lead_id, lead, "every page names the lead");
        page_token = page.next_page_token.clone();
        pages.push(page);
        if page_token.is_empty() {
            return pages;
        }
        assert!(pages.len() < 1000, "the pages end");
    }
}

/// Issue 14: a lead holding more than the response size limit could not be exported at all.
/// Here 200 events of ~1 KiB (about 3 times the limit) and 5 outcomes come back in pages, each
/// under the limit, every item exactly once, events oldest first, then outcomes.
#[tokio::test]
async fn a_lead_larger_than_the_message_limit_is_exported_in_pages() {
    const LIMIT: usize = 64 * 1024;
    let app = spawn_app_with(|c| c.server.max_response_bytes = LIMIT).await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "acme-fr").await;
    fixtures::tenant(&app, "acme", "acme-be").await;
    let t = now_s() - 3600;
    let padding = "x".repeat(1000);
    let events: Vec<_> = (0..200)
        .map(|i| {
            // Many events share a time: pages must not split or repeat ties.
            let mut e = event(&format!("ev-{i:03}"), "big", "page_view", t - (i % 20));
            e.properties = Some(to_struct(json!({"url": "/p", "padding": padding})));
            e
        })
        .collect();
    let reply = ingest(&app)
        .ingest_events(authed(
            &app.admin_token,
            pb::IngestEventsRequest { tenant_id: "acme-fr".into(), events },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, 200);
    let outcomes: Vec<_> = (0..5)
        .map(|i| pb::Outcome {
            outcome_id: format!("o{i}"),
            lead_id: "big".into(),
            kind: pb::OutcomeKind::Won as i32,
            value: 100.0,
            currency: "EUR".into(),
            time: Some(prost_types::Timestamp { seconds: t - (i % 2), nanos: 0 }),
        })
        .collect();
    ingest(&app)
        .record_outcomes(authed(
            &app.admin_token,
            pb::RecordOutcomesRequest { tenant_id: "acme-fr".into(), outcomes },
        ))
        .await
        .unwrap();

    let mut want_events: Vec<(i64, String)> =
        (0..200).map(|i| (t - (i % 20), format!("ev-{i:03}"))).collect();
    want_events.sort();
    let mut want_outcomes: Vec<(i64, String)> =
        (0..5).map(|i| (t - (i % 2), format!("o{i}"))).collect();
    want_outcomes.sort();
    for page_size in [0, 7, 1000] {
        let pages = export_pages(&app, &app.admin_token, "big", page_size, LIMIT).await;
        assert!(pages.len() >= 3, "page_size {page_size}: {} pages", pages.len());
        let events: Vec<(i64, String)> = pages
            .iter()
            .flat_map(|p| &p.events)
            .map(|e| (e.time.unwrap().seconds, e.event_id.clone()))
            .collect();
        assert_eq!(events, want_events, "page_size {page_size}: every event once, in order");
        let outcomes: Vec<(i64, String)> = pages
            .iter()
            .flat_map(|p| &p.outcomes)
            .map(|o| (o.time.unwrap().seconds, o.outcome_id.clone()))
            .collect();
        assert_eq!(outcomes, want_outcomes, "page_size {page_size}: every outcome once");
        let first_outcome = pages.iter().position(|p| !p.outcomes.is_empty()).unwrap();
        assert!(pages[first_outcome + 1..].iter().all(|p| p.events.is_empty()), "events first");
    }

    // Another tenant's token learns nothing: NOT_FOUND, exactly as for a lead that does not
    // exist, with or without a page token.
    let (other, _) = fixtures::token(&app, "acme", "acme-be", pb::Role::Admin).await;
    let ask = |token: String, tenant: &'static str, lead: &'static str, page_token: String| {
        let app = &app;
        async move {
            ingest(app)
                .export_lead(authed(
                    &token,
                    pb::ExportLeadRequest {
                        tenant_id: tenant.into(),
                        lead_id: lead.into(),
                        page_size: 0,
                        page_token,
                    },
                ))
                .await
                .unwrap_err()
        }
    };
    let second_page =
        export_pages(&app, &app.admin_token, "big", 10, LIMIT).await[0].next_page_token.clone();
    let crossed = ask(other.clone(), "acme-fr", "big", String::new()).await;
    let no_tenant = ask(other.clone(), "nowhere", "big", String::new()).await;
    assert_eq!(crossed.code(), Code::NotFound);
    assert_eq!(
        crossed.message().replace("acme-fr", "?"),
        no_tenant.message().replace("nowhere", "?")
    );
    let crossed = ask(other.clone(), "acme-fr", "big", second_page.clone()).await;
    assert_eq!(crossed.code(), Code::NotFound);
    let missing = ask(app.admin_token.clone(), "acme-fr", "nobody", String::new()).await;
    let missing_paged = ask(app.admin_token.clone(), "acme-fr", "nobody", second_page).await;
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(missing_paged.message(), missing.message());
    let bad = ask(app.admin_token.clone(), "acme-fr", "big", "not-a-token".into()).await;
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("page_token"), "{}", bad.message());
    app.stop().await;
}

/// The audit row of an erasure as a string, after erasing `lead` (upserted first) of acme-fr.
async fn erase_and_audit(app: &TestApp, lead: &str) -> String {
    let admin = app.admin_token.clone();
    let mut api = ingest(app);
    api.upsert_leads(authed(
        &admin,
        pb::UpsertLeadsRequest {
            tenant_id: "acme-fr".into(),
            leads: vec![pb::LeadInput {
                lead_id: lead.into(),
                attributes: Some(to_struct(json!({"country": "FR"}))),
                ..Default::default()
            }],
        },
    ))
    .await
    .unwrap();
    api.erase_lead(authed(
        &admin,
        pb::EraseLeadRequest { tenant_id: "acme-fr".into(), lead_id: lead.into() },
    ))
    .await
    .unwrap();
    let audit = app
        .tenants()
        .list_audit_events(authed(
            &admin,
            pb::ListAuditEventsRequest {
                organization_id: "acme".into(),
                action: "lead.erase".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(audit.audit_events.len(), 1);
    audit.audit_events[0].resource.clone()
}

fn hex16(bytes: &[u8]) -> String {
    bytes.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn erasure_audit_names_the_lead_by_a_keyed_hash_not_a_guessable_one() {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    let secret = "an audit key of at least thirty-two bytes";
    let app = spawn_app_with(|c| {
        c.auth.audit_hmac_key = Some(kelvin_config::Secret::new(secret));
    })
    .await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "acme-fr").await;
    let lead = "jane@client.example";
    let resource = erase_and_audit(&app, lead).await;

    // Anyone can hash a guessed e-mail: that digest must not appear.
    let guessable = hex16(&Sha256::digest(format!("acme-fr/{lead}").as_bytes()));
    assert!(!resource.contains(&guessable), "{resource}");
    // The holder of the key can still tell which lead was erased.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("acme-fr/{lead}").as_bytes());
    let keyed = hex16(&mac.finalize().into_bytes());
    assert_eq!(resource, format!("tenants/acme-fr/leads/hmac-sha256:{keyed}"));
    assert_eq!(app.runtime.store.lead_pseudonym("acme-fr", lead), keyed);
    app.stop().await;

    // Without a configured key, the key is derived from the signing key: still not the plain
    // hash, and the same for every service sharing that key.
    let app = spawn_app().await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "acme-fr").await;
    let resource = erase_and_audit(&app, lead).await;
    assert!(!resource.contains(&guessable) && !resource.contains(&keyed), "{resource}");
    let derived = kelvin_server::audit_hmac_key(&app.runtime.config, &app.runtime.signer);
    let mut mac = Hmac::<Sha256>::new_from_slice(&derived).unwrap();
    mac.update(format!("acme-fr/{lead}").as_bytes());
    assert_eq!(
        resource,
        format!("tenants/acme-fr/leads/hmac-sha256:{}", hex16(&mac.finalize().into_bytes()))
    );
    app.stop().await;
}

/// Issue 16: `"60 000 €"` for a numeric attribute silently failed the numeric rule. Ingestion
/// stores the item and says so, per item, at the value's path, naming the model and the rule.
#[tokio::test]
async fn values_a_numeric_rule_cannot_read_are_stored_with_a_warning() {
    let app = setup().await;
    let mut spec = kelvin_integration_tests::json::b2b_spec();
    spec["engagement"].as_array_mut().unwrap().push(json!({
        "id": "big_order", "when": {"field": "event.amount", "op": "gt", "value": 1000}, "points": 5
    }));
    fixtures::publish(app.channel.clone(), &app.admin_token, "acme-fr", "default", spec).await;
    let mut api = ingest(&app);
    let leads = vec![
        pb::LeadInput {
            lead_id: "ok".into(),
            attributes: Some(to_struct(json!({"budget": "60000", "company_size": 120}))),
            ..Default::default()
        },
        pb::LeadInput {
            lead_id: "euro".into(),
            attributes: Some(to_struct(json!({"budget": "60 000 €", "country": "FR"}))),
            enriched: Some(to_struct(json!({"company_size": "big"}))),
            ..Default::default()
        },
    ];
    let reply = api
        .upsert_leads(authed(
            &app.admin_token,
            pb::UpsertLeadsRequest { tenant_id: "acme-fr".into(), leads },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.results.iter().all(|r| r.status == pb::ItemStatus::Accepted as i32));
    assert!(reply.results[0].warnings.is_empty(), "{:?}", reply.results[0]);
    let warned: Vec<(&str, &str, &str)> = reply.results[1]
        .warnings
        .iter()
        .map(|w| (w.field.as_str(), w.model_id.as_str(), w.rule_id.as_str()))
        .collect();
    assert_eq!(
        warned,
        [
            ("leads[1].enriched.company_size", "default", "company_size_mid"),
            ("leads[1].attributes.budget", "default", "bant_budget"),
        ]
    );
    assert!(reply.results[1].warnings[1].message.contains("60 000 €"), "{:?}", reply.results[1]);

    let companies = vec![pb::CompanyInput {
        company_id: "globex".into(),
        attributes: Some(to_struct(json!({"employees": "about 200"}))),
    }];
    let reply = api
        .upsert_companies(authed(
            &app.admin_token,
            pb::UpsertCompaniesRequest { tenant_id: "acme-fr".into(), companies },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.results[0].status, pb::ItemStatus::Accepted as i32);
    assert_eq!(reply.results[0].warnings[0].field, "companies[0].attributes.employees");

    let mut order = event("o1", "euro", "purchase", now_s());
    order.properties = Some(to_struct(json!({"amount": "1 500 $"})));
    let reply = api
        .ingest_events(authed(
            &app.admin_token,
            pb::IngestEventsRequest {
                tenant_id: "acme-fr".into(),
                events: vec![event("v1", "euro", "page_view", now_s()), order],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, 2);
    assert!(reply.results[0].warnings.is_empty());
    assert_eq!(
        (
            reply.results[1].warnings[0].field.as_str(),
            reply.results[1].warnings[0].rule_id.as_str()
        ),
        ("events[1].properties.amount", "big_order")
    );
    // Stored as sent.
    let export = api
        .export_lead(authed(
            &app.admin_token,
            pb::ExportLeadRequest {
                tenant_id: "acme-fr".into(),
                lead_id: "euro".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let attributes = kelvin_proto::convert::struct_json(export.lead.unwrap().attributes.unwrap());
    assert_eq!(attributes["budget"], json!("60 000 €"));
    app.stop().await;
}
