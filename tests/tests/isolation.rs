//! Invariant 6: a token of tenant A can neither read nor change anything of tenant B, nor learn
//! that it exists. Table-driven over every RPC of the contract.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use kelvin_integration_tests::json::{b2b_spec, to_struct};
use kelvin_integration_tests::{TestApp, authed, days_from_now, fixtures, spawn_app};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::ingest_service_client::IngestServiceClient;
use kelvin_proto::v1::model_service_client::ModelServiceClient;
use kelvin_proto::v1::scoring_service_client::ScoringServiceClient;
use prost::Message;
use tonic::transport::Channel;
use tonic::{Code, Status};

type Call<'a> = Pin<Box<dyn Future<Output = Result<(), Status>> + 'a>>;

/// The target a case aims at: the organization and tenant, and an API key of that tenant.
#[derive(Clone)]
struct Target {
    org: String,
    tenant: String,
    key: String,
}

/// One RPC called with `token` against `target`; every TenantService RPC has a row.
struct Case {
    rpc: &'static str,
    call: for<'a> fn(&'a TestApp, &'a str, &'a Target) -> Call<'a>,
}

fn ok<T>(r: Result<tonic::Response<T>, Status>) -> Result<(), Status> {
    r.map(|_| ())
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            rpc: "GetOrganization",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(app
                        .tenants()
                        .get_organization(authed(
                            token,
                            pb::GetOrganizationRequest { organization_id: t.org.clone() },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "ListTenants",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(app
                        .tenants()
                        .list_tenants(authed(
                            token,
                            pb::ListTenantsRequest {
                                organization_id: t.org.clone(),
                                ..Default::default()
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "CreateTenant",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(app
                        .tenants()
                        .create_tenant(authed(
                            token,
                            pb::CreateTenantRequest {
                                organization_id: t.org.clone(),
                                tenant_id: "intruder".into(),
                                ..Default::default()
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "GetTenant",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(app
                        .tenants()
                        .get_tenant(authed(
                            token,
                            pb::GetTenantRequest { tenant_id: t.tenant.clone() },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "UpdateTenant",
            call: |app, token, t| {
                Box::pin(async move {
                    let tenant = pb::Tenant {
                        tenant_id: t.tenant.clone(),
                        display_name: "pwned".into(),
                        ..Default::default()
                    };
                    ok(app
                        .tenants()
                        .update_tenant(authed(
                            token,
                            pb::UpdateTenantRequest { tenant: Some(tenant), update_mask: None },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "DeleteTenant",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(app
                        .tenants()
                        .delete_tenant(authed(
                            token,
                            pb::DeleteTenantRequest {
                                tenant_id: t.tenant.clone(),
                                etag: String::new(),
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "CreateApiKey",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(app
                        .tenants()
                        .create_api_key(authed(
                            token,
                            pb::CreateApiKeyRequest {
                                organization_id: t.org.clone(),
                                tenant_id: t.tenant.clone(),
                                role: pb::Role::Admin as i32,
                                display_name: "backdoor".into(),
                                expire_time: Some(days_from_now(1)),
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "ListApiKeys",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(app
                        .tenants()
                        .list_api_keys(authed(
                            token,
                            pb::ListApiKeysRequest {
                                organization_id: t.org.clone(),
                                tenant_id: t.tenant.clone(),
                                ..Default::default()
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "RevokeApiKey",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(app
                        .tenants()
                        .revoke_api_key(authed(
                            token,
                            pb::RevokeApiKeyRequest { api_key_id: t.key.clone() },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "ListAuditEvents",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(app
                        .tenants()
                        .list_audit_events(authed(
                            token,
                            pb::ListAuditEventsRequest {
                                organization_id: t.org.clone(),
                                tenant_id: t.tenant.clone(),
                                ..Default::default()
                            },
                        ))
                        .await)
                })
            },
        },
        // ModelService: every tenant-addressed RPC.
        Case {
            rpc: "CreateModel",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(models(app)
                        .create_model(authed(
                            token,
                            pb::CreateModelRequest {
                                tenant_id: t.tenant.clone(),
                                model_id: "intruder".into(),
                                display_name: String::new(),
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "GetModel",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(models(app)
                        .get_model(authed(
                            token,
                            pb::GetModelRequest {
                                tenant_id: t.tenant.clone(),
                                model_id: "default".into(),
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "ListModels",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(models(app)
                        .list_models(authed(
                            token,
                            pb::ListModelsRequest {
                                tenant_id: t.tenant.clone(),
                                ..Default::default()
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "CreateModelVersion",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(models(app)
                        .create_model_version(authed(
                            token,
                            pb::CreateModelVersionRequest {
                                tenant_id: t.tenant.clone(),
                                model_id: "default".into(),
                                spec: Some(to_struct(b2b_spec())),
                                comment: String::new(),
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "GetModelVersion",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(models(app)
                        .get_model_version(authed(
                            token,
                            pb::GetModelVersionRequest {
                                tenant_id: t.tenant.clone(),
                                model_id: "default".into(),
                                version: 1,
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "ListModelVersions",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(models(app)
                        .list_model_versions(authed(
                            token,
                            pb::ListModelVersionsRequest {
                                tenant_id: t.tenant.clone(),
                                model_id: "default".into(),
                                ..Default::default()
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "ValidateModel",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(models(app)
                        .validate_model(authed(
                            token,
                            pb::ValidateModelRequest {
                                tenant_id: t.tenant.clone(),
                                spec: Some(to_struct(b2b_spec())),
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "DiffModelVersions",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(models(app)
                        .diff_model_versions(authed(
                            token,
                            pb::DiffModelVersionsRequest {
                                tenant_id: t.tenant.clone(),
                                model_id: "default".into(),
                                from_version: 1,
                                to_version: 1,
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "PublishModelVersion",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(models(app)
                        .publish_model_version(authed(
                            token,
                            pb::PublishModelVersionRequest {
                                tenant_id: t.tenant.clone(),
                                model_id: "default".into(),
                                version: 1,
                                expected_active_version: 0,
                                comment: String::new(),
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "RollbackModel",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(models(app)
                        .rollback_model(authed(
                            token,
                            pb::RollbackModelRequest {
                                tenant_id: t.tenant.clone(),
                                model_id: "default".into(),
                                to_version: 1,
                                expected_active_version: 1,
                                comment: String::new(),
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "SimulateScore",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(models(app)
                        .simulate_score(authed(
                            token,
                            pb::SimulateScoreRequest {
                                tenant_id: t.tenant.clone(),
                                model_id: "default".into(),
                                ..Default::default()
                            },
                        ))
                        .await)
                })
            },
        },
        // Templates belong to organizations.
        Case {
            rpc: "CreateTemplate",
            call: |app, token, t| {
                Box::pin(async move {
                    let template = pb::Template {
                        organization_id: t.org.clone(),
                        template_id: "intruder".into(),
                        spec: Some(to_struct(b2b_spec())),
                        ..Default::default()
                    };
                    ok(models(app)
                        .create_template(authed(
                            token,
                            pb::CreateTemplateRequest { template: Some(template) },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "ListTemplates",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(models(app)
                        .list_templates(authed(
                            token,
                            pb::ListTemplatesRequest {
                                organization_id: t.org.clone(),
                                ..Default::default()
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "ApplyTemplate",
            call: |app, token, t| {
                Box::pin(async move {
                    let target =
                        pb::TemplateTarget { tenant_id: t.tenant.clone(), ..Default::default() };
                    ok(models(app)
                        .apply_template(authed(
                            token,
                            pb::ApplyTemplateRequest {
                                organization_id: t.org.clone(),
                                template_id: "standard".into(),
                                targets: vec![target],
                                publish: true,
                                comment: String::new(),
                            },
                        ))
                        .await)
                })
            },
        },
        // IngestService: every RPC names its tenant.
        Case {
            rpc: "UpsertLeads",
            call: |app, token, t| {
                Box::pin(async move {
                    let lead = pb::LeadInput {
                        lead_id: "l1".into(),
                        attributes: Some(to_struct(serde_json::json!({"country": "XX"}))),
                        ..Default::default()
                    };
                    ok(ingest(app)
                        .upsert_leads(authed(
                            token,
                            pb::UpsertLeadsRequest {
                                tenant_id: t.tenant.clone(),
                                leads: vec![lead],
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "UpsertCompanies",
            call: |app, token, t| {
                Box::pin(async move {
                    let company = pb::CompanyInput { company_id: "c1".into(), attributes: None };
                    ok(ingest(app)
                        .upsert_companies(authed(
                            token,
                            pb::UpsertCompaniesRequest {
                                tenant_id: t.tenant.clone(),
                                companies: vec![company],
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "IngestEvents",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(ingest(app)
                        .ingest_events(authed(
                            token,
                            pb::IngestEventsRequest {
                                tenant_id: t.tenant.clone(),
                                events: vec![event("intruder-event")],
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "StreamEvents",
            call: |app, token, t| {
                Box::pin(async move {
                    let batch = pb::StreamEventsRequest {
                        tenant_id: t.tenant.clone(),
                        events: vec![event("intruder-stream")],
                        sequence: 1,
                    };
                    let mut acks = ingest(app)
                        .stream_events(authed(token, tokio_stream::iter([batch])))
                        .await?
                        .into_inner();
                    acks.message().await.map(|_| ())
                })
            },
        },
        Case {
            rpc: "RecordOutcomes",
            call: |app, token, t| {
                Box::pin(async move {
                    let outcome = pb::Outcome {
                        outcome_id: "o1".into(),
                        lead_id: "l1".into(),
                        kind: pb::OutcomeKind::Won as i32,
                        value: 1.0,
                        currency: "EUR".into(),
                        time: Some(prost_types::Timestamp { seconds: 1_800_000_000, nanos: 0 }),
                    };
                    ok(ingest(app)
                        .record_outcomes(authed(
                            token,
                            pb::RecordOutcomesRequest {
                                tenant_id: t.tenant.clone(),
                                outcomes: vec![outcome],
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "EraseLead",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(ingest(app)
                        .erase_lead(authed(
                            token,
                            pb::EraseLeadRequest {
                                tenant_id: t.tenant.clone(),
                                lead_id: "l1".into(),
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "ExportLead",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(ingest(app)
                        .export_lead(authed(
                            token,
                            pb::ExportLeadRequest {
                                tenant_id: t.tenant.clone(),
                                lead_id: "l1".into(),
                                ..Default::default()
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "GetScore",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(scoring(app)
                        .get_score(authed(
                            token,
                            pb::GetScoreRequest {
                                tenant_id: t.tenant.clone(),
                                lead_id: "l1".into(),
                                model_id: String::new(),
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "BatchGetScores",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(scoring(app)
                        .batch_get_scores(authed(
                            token,
                            pb::BatchGetScoresRequest {
                                tenant_id: t.tenant.clone(),
                                lead_ids: vec!["l1".into()],
                                model_id: String::new(),
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "ExplainScore",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(scoring(app)
                        .explain_score(authed(
                            token,
                            pb::ExplainScoreRequest {
                                tenant_id: t.tenant.clone(),
                                lead_id: "l1".into(),
                                model_id: String::new(),
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "ListLeads",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(scoring(app)
                        .list_leads(authed(
                            token,
                            pb::ListLeadsRequest {
                                tenant_id: t.tenant.clone(),
                                ..Default::default()
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "GetCompanyScore",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(scoring(app)
                        .get_company_score(authed(
                            token,
                            pb::GetCompanyScoreRequest {
                                tenant_id: t.tenant.clone(),
                                company_id: "c1".into(),
                                model_id: String::new(),
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "ListCompanies",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(scoring(app)
                        .list_companies(authed(
                            token,
                            pb::ListCompaniesRequest {
                                tenant_id: t.tenant.clone(),
                                ..Default::default()
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "GetScoreHistory",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(scoring(app)
                        .get_score_history(authed(
                            token,
                            pb::GetScoreHistoryRequest {
                                tenant_id: t.tenant.clone(),
                                lead_id: "l1".into(),
                                ..Default::default()
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "WatchScoreChanges",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(scoring(app)
                        .watch_score_changes(authed(
                            token,
                            pb::WatchScoreChangesRequest {
                                tenant_id: t.tenant.clone(),
                                after_cursor: -1,
                                ..Default::default()
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "GetRescoreStatus",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(scoring(app)
                        .get_rescore_status(authed(
                            token,
                            pb::GetRescoreStatusRequest {
                                tenant_id: t.tenant.clone(),
                                model_id: String::new(),
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "ListDeadLetters",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(scoring(app)
                        .list_dead_letters(authed(
                            token,
                            pb::ListDeadLettersRequest {
                                tenant_id: t.tenant.clone(),
                                ..Default::default()
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "RetryDeadLetters",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(scoring(app)
                        .retry_dead_letters(authed(
                            token,
                            pb::RetryDeadLettersRequest {
                                tenant_id: t.tenant.clone(),
                                dead_letter_ids: vec![],
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "GetBandCounts",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(scoring(app)
                        .get_band_counts(authed(
                            token,
                            pb::GetBandCountsRequest {
                                tenant_id: t.tenant.clone(),
                                ..Default::default()
                            },
                        ))
                        .await)
                })
            },
        },
        // Not addressed by resource: a tenant token may not create organizations at all, and
        // the list shows its own organization only (checked below).
        Case {
            rpc: "CreateOrganization",
            call: |app, token, t| {
                Box::pin(async move {
                    ok(app
                        .tenants()
                        .create_organization(authed(
                            token,
                            pb::CreateOrganizationRequest {
                                organization_id: format!("{}-x", t.org),
                                ..Default::default()
                            },
                        ))
                        .await)
                })
            },
        },
        Case {
            rpc: "ListOrganizations",
            call: |app, token, _| {
                Box::pin(async move {
                    let orgs = app
                        .tenants()
                        .list_organizations(authed(token, pb::ListOrganizationsRequest::default()))
                        .await?
                        .into_inner();
                    let ids: Vec<_> =
                        orgs.organizations.iter().map(|o| o.organization_id.as_str()).collect();
                    if ids == ["agency-a"] {
                        Err(Status::not_found("only its own organization"))
                    } else {
                        Ok(())
                    }
                })
            },
        },
    ]
}

/// Every RPC of every service of the contract.
fn contract_rpcs() -> BTreeSet<String> {
    let set = prost_types::FileDescriptorSet::decode(kelvin_proto::FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .iter()
        .filter(|f| f.package().starts_with("kelvin."))
        .flat_map(|f| f.service.iter())
        .flat_map(|s| s.method.iter().map(|m| m.name().to_owned()))
        .collect()
}

fn ingest(app: &TestApp) -> IngestServiceClient<Channel> {
    IngestServiceClient::new(app.channel.clone())
}

fn event(id: &str) -> pb::EventInput {
    pb::EventInput {
        event_id: id.into(),
        lead_id: "l1".into(),
        r#type: "page_view".into(),
        time: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 }),
        properties: None,
    }
}

fn scoring(app: &TestApp) -> ScoringServiceClient<Channel> {
    ScoringServiceClient::new(app.channel.clone())
}

fn models(app: &TestApp) -> ModelServiceClient<Channel> {
    ModelServiceClient::new(app.channel.clone())
}

/// A published model `default`, a lead `l1` of company `c1` with a score (and so a history, a
/// company score and a change stream) and, in its organization, a template `standard`.
async fn resources(app: &TestApp, org: &str, tenant: &str) {
    let admin = &app.admin_token;
    models(app)
        .create_model(authed(
            admin,
            pb::CreateModelRequest {
                tenant_id: tenant.into(),
                model_id: "default".into(),
                display_name: String::new(),
            },
        ))
        .await
        .unwrap();
    models(app)
        .create_model_version(authed(
            admin,
            pb::CreateModelVersionRequest {
                tenant_id: tenant.into(),
                model_id: "default".into(),
                spec: Some(to_struct(b2b_spec())),
                comment: String::new(),
            },
        ))
        .await
        .unwrap();
    models(app)
        .publish_model_version(authed(
            admin,
            pb::PublishModelVersionRequest {
                tenant_id: tenant.into(),
                model_id: "default".into(),
                version: 1,
                expected_active_version: 0,
                comment: String::new(),
            },
        ))
        .await
        .unwrap();
    ingest(app)
        .upsert_leads(authed(
            admin,
            pb::UpsertLeadsRequest {
                tenant_id: tenant.into(),
                leads: vec![pb::LeadInput {
                    lead_id: "l1".into(),
                    company_id: "c1".into(),
                    ..Default::default()
                }],
            },
        ))
        .await
        .unwrap();
    ingest(app)
        .ingest_events(authed(
            admin,
            pb::IngestEventsRequest { tenant_id: tenant.into(), events: vec![event("seed")] },
        ))
        .await
        .unwrap();
    kelvin_integration_tests::eventually(
        std::time::Duration::from_secs(20),
        "l1's score",
        || async {
            let company = scoring(app)
                .get_company_score(authed(
                    admin,
                    pb::GetCompanyScoreRequest {
                        tenant_id: tenant.into(),
                        company_id: "c1".into(),
                        model_id: String::new(),
                    },
                ))
                .await
                .ok()?;
            company.into_inner().score.filter(|c| c.lead_count == 1)
        },
    )
    .await;
    let template = pb::Template {
        organization_id: org.into(),
        template_id: "standard".into(),
        spec: Some(to_struct(b2b_spec())),
        ..Default::default()
    };
    let _ = models(app)
        .create_template(authed(admin, pb::CreateTemplateRequest { template: Some(template) }))
        .await;
}

/// The message with every mention of `from` replaced by `to`.
fn normalized(status: &Status, from: &str, to: &str) -> (Code, String) {
    (status.code(), status.message().replace(from, to))
}

#[tokio::test]
async fn a_tenant_token_cannot_reach_another_tenant_through_any_rpc() {
    let app = spawn_app().await;
    fixtures::org(&app, "agency-a").await;
    fixtures::org(&app, "agency-b").await;
    fixtures::tenant(&app, "agency-a", "a1").await;
    fixtures::tenant(&app, "agency-a", "a2").await;
    fixtures::tenant(&app, "agency-b", "b1").await;
    resources(&app, "agency-a", "a2").await;
    resources(&app, "agency-b", "b1").await;
    let (_, a2_key) = fixtures::token(&app, "agency-a", "a2", pb::Role::Reader).await;
    let (_, b1_key) = fixtures::token(&app, "agency-b", "b1", pb::Role::Reader).await;
    // The most powerful tenant-limited token: an admin of tenant a1 only.
    let (token, _) = fixtures::token(&app, "agency-a", "a1", pb::Role::Admin).await;

    let table = cases();
    let covered: BTreeSet<String> = table.iter().map(|c| c.rpc.to_owned()).collect();
    assert_eq!(covered, contract_rpcs(), "every RPC of the contract has a row in the table");

    let same_org = Target { org: "agency-a".into(), tenant: "a2".into(), key: a2_key };
    let other_org = Target { org: "agency-b".into(), tenant: "b1".into(), key: b1_key };
    for case in &table {
        let org_level = matches!(
            case.rpc,
            "GetOrganization"
                | "ListTenants"
                | "CreateTenant"
                | "CreateTemplate"
                | "ListTemplates"
                | "ApplyTemplate"
        );
        let targets: &[&Target] = if org_level { &[&other_org] } else { &[&same_org, &other_org] };
        for target in targets {
            // The same call on something that does not exist, in an organization the token
            // does (same_org) or does not (other_org) reach.
            let ghost_org = if target.org == "agency-a" { "agency-a" } else { "ghost-org" };
            let ghost =
                Target { org: ghost_org.into(), tenant: "ghost".into(), key: "key-ghost".into() };
            let ghost_status = (case.call)(&app, &token, &ghost).await.expect_err(case.rpc);
            let status = (case.call)(&app, &token, target).await.expect_err(case.rpc);
            // Replace the longest identifiers first: a key id may contain a tenant id.
            let (code, message) = normalized(&status, &target.key, "key-ghost");
            let message = message
                .replace(&target.org, ghost_org)
                .replace(&format!("`{}`", target.tenant), "`ghost`");
            assert_eq!(
                (code, message),
                (ghost_status.code(), ghost_status.message().to_owned()),
                "{} on {}: must look exactly like a missing resource",
                case.rpc,
                target.tenant
            );
            if !matches!(case.rpc, "CreateOrganization") {
                assert_eq!(code, Code::NotFound, "{}: {status:?}", case.rpc);
            }
        }
    }

    // Nothing changed: tenant a2 and b1 are intact, and no key was created for them.
    let t = app
        .tenants()
        .get_tenant(authed(&app.admin_token, pb::GetTenantRequest { tenant_id: "b1".into() }))
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    assert_eq!((t.display_name.as_str(), t.state), ("Client b1", pb::TenantState::Active as i32));
    let keys = app
        .tenants()
        .list_api_keys(authed(
            &app.admin_token,
            pb::ListApiKeysRequest { organization_id: "agency-b".into(), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(keys.api_keys.len(), 1);
    // Listing its own organization shows its tenant only.
    let own = app
        .tenants()
        .list_tenants(authed(
            &token,
            pb::ListTenantsRequest { organization_id: "agency-a".into(), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.tenants.iter().map(|t| t.tenant_id.as_str()).collect::<Vec<_>>(), ["a1"]);
    app.stop().await;
}

#[tokio::test]
async fn an_agency_token_reaches_every_tenant_of_its_organization_and_nothing_else() {
    let app = spawn_app().await;
    fixtures::org(&app, "agency-a").await;
    fixtures::org(&app, "agency-b").await;
    fixtures::tenant(&app, "agency-a", "a1").await;
    fixtures::tenant(&app, "agency-a", "a2").await;
    fixtures::tenant(&app, "agency-b", "b1").await;
    let (agency, _) = fixtures::token(&app, "agency-a", "", pb::Role::Admin).await;
    let mut api = app.tenants();

    for t in ["a1", "a2"] {
        api.get_tenant(authed(&agency, pb::GetTenantRequest { tenant_id: t.into() }))
            .await
            .unwrap();
        api.create_api_key(authed(
            &agency,
            pb::CreateApiKeyRequest {
                organization_id: "agency-a".into(),
                tenant_id: t.into(),
                role: pb::Role::Ingest as i32,
                display_name: "ingest".into(),
                expire_time: Some(days_from_now(7)),
            },
        ))
        .await
        .unwrap();
    }
    let listed = api
        .list_tenants(authed(
            &agency,
            pb::ListTenantsRequest { organization_id: "agency-a".into(), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.tenants.len(), 2);
    let created = api
        .create_tenant(authed(
            &agency,
            pb::CreateTenantRequest {
                organization_id: "agency-a".into(),
                tenant_id: "a3".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    assert_eq!(created.into_inner().tenant.unwrap().organization_id, "agency-a");
    let audit = api
        .list_audit_events(authed(
            &agency,
            pb::ListAuditEventsRequest { organization_id: "agency-a".into(), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner();
    let tenants: BTreeSet<_> = audit.audit_events.iter().map(|e| e.tenant_id.as_str()).collect();
    assert_eq!(tenants, BTreeSet::from(["", "a1", "a2", "a3"]));

    let orgs = api
        .list_organizations(authed(&agency, pb::ListOrganizationsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        orgs.organizations.iter().map(|o| o.organization_id.as_str()).collect::<Vec<_>>(),
        ["agency-a"]
    );
    for status in [
        api.get_organization(authed(
            &agency,
            pb::GetOrganizationRequest { organization_id: "agency-b".into() },
        ))
        .await
        .unwrap_err(),
        api.get_tenant(authed(&agency, pb::GetTenantRequest { tenant_id: "b1".into() }))
            .await
            .unwrap_err(),
        api.list_tenants(authed(
            &agency,
            pb::ListTenantsRequest { organization_id: "agency-b".into(), ..Default::default() },
        ))
        .await
        .unwrap_err(),
        api.create_tenant(authed(
            &agency,
            pb::CreateTenantRequest {
                organization_id: "agency-b".into(),
                tenant_id: "b9".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err(),
        api.list_audit_events(authed(
            &agency,
            pb::ListAuditEventsRequest { organization_id: "agency-b".into(), ..Default::default() },
        ))
        .await
        .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    // An agency is not the platform: it cannot create organizations.
    let denied = api
        .create_organization(authed(
            &agency,
            pb::CreateOrganizationRequest {
                organization_id: "agency-c".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    // A tenant-limited admin cannot mint organization-wide keys nor create tenants.
    let (tenant_admin, _) = fixtures::token(&app, "agency-a", "a1", pb::Role::Admin).await;
    let denied = api
        .create_api_key(authed(
            &tenant_admin,
            pb::CreateApiKeyRequest {
                organization_id: "agency-a".into(),
                role: pb::Role::Admin as i32,
                expire_time: Some(days_from_now(1)),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = api
        .create_tenant(authed(
            &tenant_admin,
            pb::CreateTenantRequest {
                organization_id: "agency-a".into(),
                tenant_id: "a4".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    app.stop().await;
}
