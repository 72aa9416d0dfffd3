//! The handlers' shared paths (issue 17): UpsertLeads and UpsertCompanies go through one generic
//! path, PublishModelVersion and RollbackModel through one activation path, each request saying
//! only what differs. These pin what each of them answers, so that sharing a path never
//! changes a field name, an order of checks or a reply.

#![allow(clippy::unwrap_used)]

use kelvin_integration_tests::json::{b2b_spec, to_struct};
use kelvin_integration_tests::{TestApp, authed, fixtures, spawn_app_with};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::ingest_service_client::IngestServiceClient;
use kelvin_proto::v1::model_service_client::ModelServiceClient;
use serde_json::json;
use tonic::Code;

async fn setup() -> TestApp {
    let app = spawn_app_with(|c| c.ingest.max_batch = 2).await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "acme-fr").await;
    app
}

fn lead(id: &str) -> pb::LeadInput {
    pb::LeadInput {
        lead_id: id.into(),
        company_id: String::new(),
        attributes: Some(to_struct(json!({"country": "FR"}))),
        enriched: None,
    }
}

fn company(id: &str) -> pb::CompanyInput {
    pb::CompanyInput { company_id: id.into(), attributes: Some(to_struct(json!({"size": 10}))) }
}

fn leads(tenant: &str, leads: Vec<pb::LeadInput>) -> pb::UpsertLeadsRequest {
    pb::UpsertLeadsRequest { tenant_id: tenant.into(), leads }
}

fn companies(tenant: &str, companies: Vec<pb::CompanyInput>) -> pb::UpsertCompaniesRequest {
    pb::UpsertCompaniesRequest { tenant_id: tenant.into(), companies }
}

/// Each kind keeps its own field in every answer: the batch limit names `leads` or
/// `companies` (before the tenant is even looked up), rejections name the item's path, and a
/// tenant out of reach is NOT_FOUND.
#[tokio::test]
async fn leads_and_companies_share_one_upsert_path_each_naming_its_fields() {
    let app = setup().await;
    let mut api = IngestServiceClient::new(app.channel.clone());
    let admin = app.admin_token.clone();

    let over = api
        .upsert_leads(authed(&admin, leads("nowhere", vec![lead("a"), lead("b"), lead("c")])))
        .await
        .unwrap_err();
    assert_eq!(over.code(), Code::InvalidArgument);
    assert_eq!(over.message(), "invalid leads: 3 items in one call, over the limit of 2");
    let over = api
        .upsert_companies(authed(
            &admin,
            companies("nowhere", vec![company("a"), company("b"), company("c")]),
        ))
        .await
        .unwrap_err();
    assert_eq!(over.code(), Code::InvalidArgument);
    assert_eq!(over.message(), "invalid companies: 3 items in one call, over the limit of 2");

    let missing = api.upsert_leads(authed(&admin, leads("nowhere", vec![lead("a")]))).await;
    assert_eq!(missing.unwrap_err().code(), Code::NotFound);
    let missing =
        api.upsert_companies(authed(&admin, companies("nowhere", vec![company("a")]))).await;
    assert_eq!(missing.unwrap_err().code(), Code::NotFound);

    let results = api
        .upsert_leads(authed(&admin, leads("acme-fr", vec![lead("jane"), lead("")])))
        .await
        .unwrap()
        .into_inner()
        .results;
    let summary: Vec<_> =
        results.iter().map(|r| (r.id.as_str(), r.status, r.field.as_str())).collect();
    assert_eq!(
        summary,
        [
            ("jane", pb::ItemStatus::Accepted as i32, ""),
            ("", pb::ItemStatus::Rejected as i32, "leads[1].lead_id"),
        ]
    );
    let results = api
        .upsert_companies(authed(&admin, companies("acme-fr", vec![company(""), company("co")])))
        .await
        .unwrap()
        .into_inner()
        .results;
    let summary: Vec<_> =
        results.iter().map(|r| (r.id.as_str(), r.status, r.field.as_str())).collect();
    assert_eq!(
        summary,
        [
            ("", pb::ItemStatus::Rejected as i32, "companies[0].company_id"),
            ("co", pb::ItemStatus::Accepted as i32, ""),
        ]
    );
}

/// Publish and Rollback: reach first (NOT_FOUND whatever the version), then the version named
/// by each request's own field, then the conditional activation (ABORTED when stale), and
/// both answer the model and the activated version.
#[tokio::test]
async fn publish_and_rollback_share_one_activation_path_each_naming_its_field() {
    let app = setup().await;
    let mut api = ModelServiceClient::new(app.channel.clone());
    let admin = app.admin_token.clone();
    let publish = |tenant: &str, version: i64, expected: i64| pb::PublishModelVersionRequest {
        tenant_id: tenant.into(),
        model_id: "default".into(),
        version,
        expected_active_version: expected,
        comment: "go".into(),
    };
    let rollback = |tenant: &str, to_version: i64, expected: i64| pb::RollbackModelRequest {
        tenant_id: tenant.into(),
        model_id: "default".into(),
        to_version,
        expected_active_version: expected,
        comment: "back".into(),
    };

    let status = api.publish_model_version(authed(&admin, publish("nowhere", 0, 0))).await;
    assert_eq!(status.unwrap_err().code(), Code::NotFound);
    let status = api.rollback_model(authed(&admin, rollback("nowhere", 0, 0))).await;
    assert_eq!(status.unwrap_err().code(), Code::NotFound);

    let status = api.publish_model_version(authed(&admin, publish("acme-fr", 0, 0))).await;
    let status = status.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "invalid version: must be a version number");
    let status = api.rollback_model(authed(&admin, rollback("acme-fr", -1, 0))).await;
    let status = status.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "invalid to_version: must be a version number");

    // Versions 1 and 2, 2 active; then a rollback to 1 and a publish of 2 again.
    fixtures::publish(app.channel.clone(), &admin, "acme-fr", "default", b2b_spec()).await;
    let mut spec = b2b_spec();
    spec["bands"]["thresholds"][0]["min"] = json!(60);
    fixtures::publish(app.channel.clone(), &admin, "acme-fr", "default", spec).await;

    let stale = api.rollback_model(authed(&admin, rollback("acme-fr", 1, 1))).await;
    assert_eq!(stale.unwrap_err().code(), Code::Aborted);
    let back =
        api.rollback_model(authed(&admin, rollback("acme-fr", 1, 2))).await.unwrap().into_inner();
    assert_eq!(back.model.unwrap().active_version, 1);
    assert_eq!(back.version.map(|v| (v.version, v.active)), Some((1, true)));

    let stale = api.publish_model_version(authed(&admin, publish("acme-fr", 2, 2))).await;
    assert_eq!(stale.unwrap_err().code(), Code::Aborted);
    let again = api
        .publish_model_version(authed(&admin, publish("acme-fr", 2, 1)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.model.unwrap().active_version, 2);
    assert_eq!(again.version.map(|v| (v.version, v.active)), Some((2, true)));
}
