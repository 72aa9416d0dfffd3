//! Issue 14 ("one tenant must never stop, slow or see another"), findings 2 and 3: the work one
//! rules call may cause is bounded. Templates render once and within a size limit; a
//! simulation is refused above its rules × events budget, and a tenant's expensive calls beyond
//! its concurrency limit are refused at once while another tenant's calls go on.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kelvin_integration_tests::json::{b2b_spec, to_struct, value};
use kelvin_integration_tests::{TestApp, authed, fixtures, spawn_app_with};
use kelvin_proto::convert::struct_json;
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::model_service_client::ModelServiceClient;
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

fn models(app: &TestApp) -> ModelServiceClient<Channel> {
    ModelServiceClient::new(app.channel.clone())
}

const MAX_SPEC_BYTES: usize = 32 * 1024;

/// 16 parameters whose values each name the next one twice: expanded again and again (the
/// bug), `${client}` alone became 2^16 copies of the last value.
const CHAIN: usize = 16;

fn chain_name(i: usize) -> String {
    format!("p{i:02}")
}

fn chain_value(i: usize) -> serde_json::Value {
    let next = if i + 1 < CHAIN { format!("${{{}}}", chain_name(i + 1)) } else { "end".into() };
    json!(format!("{next}{next}"))
}

async fn versions(api: &mut ModelServiceClient<Channel>, token: &str, tenant: &str) -> Vec<i64> {
    api.list_model_versions(authed(
        token,
        pb::ListModelVersionsRequest {
            tenant_id: tenant.into(),
            model_id: "default".into(),
            ..Default::default()
        },
    ))
    .await
    .unwrap()
    .into_inner()
    .versions
    .iter()
    .map(|v| v.version)
    .collect()
}

async fn description(
    api: &mut ModelServiceClient<Channel>,
    token: &str,
    tenant: &str,
    version: i64,
) -> serde_json::Value {
    let v = api
        .get_model_version(authed(
            token,
            pb::GetModelVersionRequest {
                tenant_id: tenant.into(),
                model_id: "default".into(),
                version,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .version
        .unwrap();
    serde_json::Value::Object(struct_json(v.spec.unwrap()))["description"].clone()
}

#[tokio::test]
async fn templates_render_once_and_within_the_spec_size_limit() {
    let app = spawn_app_with(|c| c.limits.max_spec_bytes = MAX_SPEC_BYTES).await;
    fixtures::org(&app, "agency").await;
    fixtures::tenant(&app, "agency", "client-a").await;
    fixtures::tenant(&app, "agency", "client-b").await;
    let (agency, _) = fixtures::token(&app, "agency", "", pb::Role::Admin).await;
    let mut api = models(&app);

    // Defaults that name each other (CreateTemplate's side of the finding).
    let mut spec = b2b_spec();
    spec["description"] = json!("model for ${client}");
    let mut parameters = vec![pb::TemplateParameter {
        name: "client".into(),
        description: String::new(),
        default_value: Some(value(json!("${p00}${p00}"))),
    }];
    parameters.extend((0..CHAIN).map(|i| pb::TemplateParameter {
        name: chain_name(i),
        description: String::new(),
        default_value: Some(value(chain_value(i))),
    }));
    let template = pb::Template {
        organization_id: "agency".into(),
        template_id: "chained".into(),
        display_name: "chained".into(),
        spec: Some(to_struct(spec.clone())),
        parameters,
        ..Default::default()
    };
    api.create_template(authed(
        &agency,
        pb::CreateTemplateRequest { template: Some(template.clone()) },
    ))
    .await
    .unwrap();

    // Values given by the call that name each other (ApplyTemplate's side).
    let mut given = serde_json::Map::new();
    given.insert("client".into(), json!("${p00} & ${p01}"));
    for i in 0..CHAIN {
        given.insert(chain_name(i), chain_value(i));
    }
    let apply = |tenant: &str, parameters: serde_json::Map<String, serde_json::Value>| {
        authed(
            &agency,
            pb::ApplyTemplateRequest {
                organization_id: "agency".into(),
                template_id: "chained".into(),
                targets: vec![pb::TemplateTarget {
                    tenant_id: tenant.into(),
                    model_id: String::new(),
                    parameters: Some(to_struct(serde_json::Value::Object(parameters))),
                }],
                publish: false,
                comment: String::new(),
            },
        )
    };
    let reply = api.apply_template(apply("client-a", given)).await.unwrap().into_inner();
    assert_eq!(reply.results[0].code, Code::Ok as i32, "{:?}", reply.results);
    assert_eq!(
        description(&mut api, &agency, "client-a", 1).await,
        json!("model for ${p00} & ${p01}"),
        "a value is spliced as written, never expanded again"
    );
    let reply =
        api.apply_template(apply("client-b", serde_json::Map::new())).await.unwrap().into_inner();
    assert_eq!(reply.results[0].code, Code::Ok as i32, "{:?}", reply.results);
    assert_eq!(
        description(&mut api, &agency, "client-b", 1).await,
        json!("model for ${p00}${p00}"),
        "defaults are spliced as written too"
    );

    // A value that would make the spec pass the limit: refused, naming it; nothing stored.
    let mut huge = serde_json::Map::new();
    huge.insert("client".into(), json!("x".repeat(MAX_SPEC_BYTES)));
    let reply = api.apply_template(apply("client-a", huge)).await.unwrap().into_inner();
    let result = &reply.results[0];
    assert_eq!(result.code, Code::InvalidArgument as i32, "{result:?}");
    assert!(result.message.contains("invalid parameters: client"), "{}", result.message);
    assert!(
        result.errors.iter().any(|e| e.path == "parameters.client" && e.message.contains("larger")),
        "{:?}",
        result.errors
    );
    assert_eq!(versions(&mut api, &agency, "client-a").await, [1]);

    // Specs over the limit are refused where they come in, naming the field.
    let mut big = spec;
    big["description"] = json!("x".repeat(MAX_SPEC_BYTES));
    let status = api
        .create_model_version(authed(
            &agency,
            pb::CreateModelVersionRequest {
                tenant_id: "client-a".into(),
                model_id: "default".into(),
                spec: Some(to_struct(big.clone())),
                comment: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("spec"), "{}", status.message());
    assert_eq!(versions(&mut api, &agency, "client-a").await, [1]);
    let mut too_big = template;
    too_big.template_id = "too-big".into();
    too_big.spec = Some(to_struct(big));
    let status = api
        .create_template(authed(&agency, pb::CreateTemplateRequest { template: Some(too_big) }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("template.spec"), "{}", status.message());
    let templates = api
        .list_templates(authed(
            &agency,
            pb::ListTemplatesRequest { organization_id: "agency".into(), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner()
        .templates;
    assert_eq!(templates.iter().map(|t| t.template_id.as_str()).collect::<Vec<_>>(), ["chained"]);
}

const BUDGET: u64 = 100_000;

fn rules(spec: &serde_json::Value) -> u64 {
    ["fit", "exclusions", "engagement"]
        .iter()
        .map(|s| spec[*s].as_array().map_or(0, Vec::len) as u64)
        .sum::<u64>()
        + spec["company"]["fit"].as_array().map_or(0, Vec::len) as u64
}

/// A SimulateScore of `tenant`'s published model with `events` page views.
fn simulation(
    token: &str,
    tenant: &str,
    events: usize,
) -> tonic::Request<pb::SimulateScoreRequest> {
    let now = 1_800_000_000;
    authed(
        token,
        pb::SimulateScoreRequest {
            tenant_id: tenant.into(),
            model_id: "default".into(),
            version: 1,
            lead: Some(pb::LeadInput {
                attributes: Some(to_struct(json!({"country": "FR", "job_title": "CEO"}))),
                ..Default::default()
            }),
            events: (0..events)
                .map(|i| pb::EventInput {
                    event_id: format!("e{i}"),
                    r#type: "page_view".into(),
                    time: Some(prost_types::Timestamp { seconds: now - i as i64, nanos: 0 }),
                    properties: Some(to_struct(json!({"url": "https://x.example/pricing"}))),
                    ..Default::default()
                })
                .collect(),
            as_of: Some(prost_types::Timestamp { seconds: now, nanos: 0 }),
            ..Default::default()
        },
    )
}

#[tokio::test]
async fn simulations_are_bounded_and_one_tenant_cannot_hold_the_evaluators() {
    let app = spawn_app_with(|c| {
        c.limits.max_simulation_work = BUDGET;
        c.limits.expensive_calls_per_tenant = 1;
        c.limits.expensive_calls_per_api_key = 1;
        c.limits.evaluation_threads = 4;
    })
    .await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "busy").await;
    fixtures::tenant(&app, "acme", "quiet").await;
    let mut busy_keys = Vec::new();
    for _ in 0..3 {
        busy_keys.push(fixtures::token(&app, "acme", "busy", pb::Role::Admin).await.0);
    }
    let (quiet, _) = fixtures::token(&app, "acme", "quiet", pb::Role::Admin).await;
    for (token, tenant) in [(&busy_keys[0], "busy"), (&quiet, "quiet")] {
        fixtures::publish(app.channel.clone(), token, tenant, "default", b2b_spec()).await;
    }
    let per_call = (BUDGET / rules(&b2b_spec())) as usize;

    // Over the budget: refused before any work, naming the field.
    let status = models(&app).simulate_score(simulation(&busy_keys[0], "busy", per_call + 1)).await;
    let status = status.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("events"), "{}", status.message());

    // Within the budget, but many at once from one tenant (three keys, two calls each):
    // beyond the tenant's limit they are refused with a retry delay, while the quiet tenant's
    // reads and small simulations all go through meanwhile.
    let mut refused = 0;
    for _round in 0..5 {
        let done = Arc::new(AtomicBool::new(false));
        let quiet_calls = {
            let (mut api, quiet, done) = (models(&app), quiet.clone(), done.clone());
            tokio::spawn(async move {
                let mut calls = 0;
                while !done.load(Ordering::SeqCst) || calls == 0 {
                    api.get_model(authed(
                        &quiet,
                        pb::GetModelRequest {
                            tenant_id: "quiet".into(),
                            model_id: "default".into(),
                        },
                    ))
                    .await
                    .unwrap();
                    let score = api.simulate_score(simulation(&quiet, "quiet", 3)).await.unwrap();
                    assert!(score.into_inner().score.is_some());
                    calls += 1;
                }
                calls
            })
        };
        let heavy: Vec<_> = (0..6)
            .map(|i| {
                let (mut api, token) = (models(&app), busy_keys[i % 3].clone());
                tokio::spawn(async move {
                    api.simulate_score(simulation(&token, "busy", per_call)).await
                })
            })
            .collect();
        let mut succeeded = 0;
        for call in heavy {
            match call.await.unwrap() {
                Ok(reply) => {
                    assert!(reply.into_inner().score.is_some());
                    succeeded += 1;
                }
                Err(status) => {
                    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                    assert!(status.message().contains("tenant busy"), "{}", status.message());
                    let retry = status.get_details_retry_info().expect("a RetryInfo detail");
                    assert!(retry.retry_delay.is_some());
                    refused += 1;
                }
            }
        }
        assert!(succeeded >= 1, "the tenant's first call runs");
        done.store(true, Ordering::SeqCst);
        assert!(quiet_calls.await.unwrap() >= 1);
        if refused > 0 {
            break;
        }
    }
    assert!(refused > 0, "six concurrent expensive calls of one tenant, limit 1: none refused");
}
