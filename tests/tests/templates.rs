//! Agency templates: one template rolled out to 50 tenants, then one tenant changed, published,
//! rolled back, with its diff and audit trail.

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use kelvin_integration_tests::json::{b2b_spec, to_struct, value};
use kelvin_integration_tests::{TestApp, authed, backend, fixtures, spawn_app};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::model_service_client::ModelServiceClient;
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;

fn models(app: &TestApp) -> ModelServiceClient<Channel> {
    ModelServiceClient::new(app.channel.clone())
}

/// The B2B model with the hot threshold, served countries and competitors as parameters.
fn template_spec() -> serde_json::Value {
    let mut spec = b2b_spec();
    spec["bands"]["thresholds"][0]["min"] = json!("${hot}");
    spec["fit"][0]["when"]["value"] = json!("${countries}");
    spec["exclusions"][1]["when"]["value"] = json!("${competitors}");
    spec["description"] = json!("B2B model for ${client}");
    spec
}

#[tokio::test]
async fn a_template_rolls_out_to_fifty_tenants_with_a_result_each() {
    let app = spawn_app().await;
    fixtures::org(&app, "agency").await;
    let tenants: Vec<String> = (0..50).map(|i| format!("client-{i:02}")).collect();
    for t in &tenants {
        fixtures::tenant(&app, "agency", t).await;
    }
    let (agency, _) = fixtures::token(&app, "agency", "", pb::Role::Admin).await;
    let mut api = models(&app);

    let template = pb::Template {
        organization_id: "agency".into(),
        template_id: "b2b-standard".into(),
        display_name: "B2B standard".into(),
        spec: Some(to_struct(template_spec())),
        parameters: vec![
            pb::TemplateParameter {
                name: "hot".into(),
                description: "hot threshold".into(),
                default_value: Some(value(json!(70))),
            },
            pb::TemplateParameter {
                name: "countries".into(),
                description: "countries served".into(),
                default_value: None,
            },
            pb::TemplateParameter {
                name: "competitors".into(),
                description: "competitor domains".into(),
                // Not `[]`: an exclusion needs at least one domain, and CreateTemplate now
                // validates the spec with its defaults.
                default_value: Some(value(json!(["competitor.example"]))),
            },
            pb::TemplateParameter {
                name: "client".into(),
                description: String::new(),
                default_value: Some(value(json!("a client"))),
            },
        ],
        ..Default::default()
    };
    api.create_template(authed(
        &agency,
        pb::CreateTemplateRequest { template: Some(template.clone()) },
    ))
    .await
    .unwrap();
    // A template naming an undeclared parameter is refused with its path.
    let mut bad = template.clone();
    bad.template_id = "broken".into();
    bad.parameters.pop();
    let status = api
        .create_template(authed(&agency, pb::CreateTemplateRequest { template: Some(bad) }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("spec.description"), "{}", status.message());

    let mut targets: Vec<pb::TemplateTarget> = tenants
        .iter()
        .enumerate()
        .map(|(i, t)| pb::TemplateTarget {
            tenant_id: t.clone(),
            model_id: String::new(),
            parameters: Some(to_struct(json!({
                "countries": if i % 2 == 0 { json!(["FR", "BE"]) } else { json!(["CH", "LU"]) },
                "competitors": ["rival.example"],
                "client": t,
            }))),
        })
        .collect();
    // One tenant gets a bad threshold, one target does not exist: both are reported, the
    // others go through.
    targets[7].parameters = Some(to_struct(json!({"countries": ["FR"], "hot": "very"})));
    targets.push(pb::TemplateTarget { tenant_id: "not-a-client".into(), ..Default::default() });

    let started = Instant::now();
    let reply = api
        .apply_template(authed(
            &agency,
            pb::ApplyTemplateRequest {
                organization_id: "agency".into(),
                template_id: "b2b-standard".into(),
                targets,
                publish: true,
                comment: "Q4 rollout".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    // Reported, not asserted: the closing note of the models issue quotes it per backend.
    eprintln!("ApplyTemplate to 50 tenants (publish) on {:?}: {:?}", backend(), started.elapsed());

    assert_eq!(reply.results.len(), 51);
    let failed: Vec<_> = reply.results.iter().filter(|r| r.code != 0).collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(
        (failed[0].tenant_id.as_str(), failed[0].code),
        ("client-07", Code::InvalidArgument as i32)
    );
    assert!(
        failed[0].errors.iter().any(|e| e.path.starts_with("spec.bands")),
        "{:?}",
        failed[0].errors
    );
    assert_eq!(
        (failed[1].tenant_id.as_str(), failed[1].code),
        ("not-a-client", Code::NotFound as i32)
    );
    assert!(
        reply
            .results
            .iter()
            .filter(|r| r.code == 0)
            .all(|r| r.published && r.version == 1 && r.model_id == "default")
    );

    // Each tenant got its own parameters.
    let v = api
        .get_model_version(authed(
            &agency,
            pb::GetModelVersionRequest {
                tenant_id: "client-03".into(),
                model_id: "default".into(),
                version: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .version
        .unwrap();
    let spec = serde_json::to_string(&format!("{:?}", v.spec)).unwrap();
    assert!(spec.contains("CH") && spec.contains("client-03") && !spec.contains("${"), "{spec}");

    // One client's thresholds change: new version, diff, publish, roll back, audit trail.
    let mut changed = b2b_spec();
    changed["bands"]["thresholds"][0]["min"] = json!(60);
    let v2 = api
        .create_model_version(authed(
            &agency,
            pb::CreateModelVersionRequest {
                tenant_id: "client-03".into(),
                model_id: "default".into(),
                spec: Some(to_struct(changed)),
                comment: "hot from 60 for client 3".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .version
        .unwrap();
    let diff = api
        .diff_model_versions(authed(
            &agency,
            pb::DiffModelVersionsRequest {
                tenant_id: "client-03".into(),
                model_id: "default".into(),
                from_version: 1,
                to_version: v2.version,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let sections: Vec<_> =
        diff.changes.iter().map(|c| format!("{}:{}:{}", c.section, c.rule_id, c.field)).collect();
    assert!(sections.contains(&"bands::thresholds".to_string()), "{sections:?}");
    api.publish_model_version(authed(
        &agency,
        pb::PublishModelVersionRequest {
            tenant_id: "client-03".into(),
            model_id: "default".into(),
            version: 2,
            expected_active_version: 1,
            comment: "client asked".into(),
        },
    ))
    .await
    .unwrap();
    api.rollback_model(authed(
        &agency,
        pb::RollbackModelRequest {
            tenant_id: "client-03".into(),
            model_id: "default".into(),
            to_version: 1,
            expected_active_version: 2,
            comment: "too many hot leads".into(),
        },
    ))
    .await
    .unwrap();
    // The client itself (a tenant reader key) can read its trail, not the others'.
    let (client, _) = fixtures::token(&app, "agency", "client-03", pb::Role::Reader).await;
    let trail = app
        .tenants()
        .list_audit_events(authed(
            &client,
            pb::ListAuditEventsRequest {
                organization_id: "agency".into(),
                tenant_id: "client-03".into(),
                model_id: "default".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let actions: Vec<_> =
        trail.audit_events.iter().map(|e| (e.action.as_str(), e.reason.as_str())).collect();
    assert_eq!(
        actions,
        [
            ("model.rollback", "too many hot leads"),
            ("model.publish", "client asked"),
            ("model_version.create", "hot from 60 for client 3"),
            ("model.publish", "Q4 rollout"),
            ("model_version.create", "Q4 rollout"),
            ("model.create", "Q4 rollout"),
        ]
    );
    let status = app
        .tenants()
        .list_audit_events(authed(
            &client,
            pb::ListAuditEventsRequest {
                organization_id: "agency".into(),
                tenant_id: "client-04".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    app.stop().await;
}

/// Issue 16: CreateTemplate accepted an invalid operator and the error appeared later, tenant by
/// tenant. Now every problem is refused at creation, each at its path (not doubled), and
/// ApplyTemplate names parameters at `parameters.<name>`.
#[tokio::test]
async fn a_template_with_invalid_operators_is_refused_at_creation_listing_every_problem() {
    use tonic_types::StatusExt as _;
    let app = spawn_app().await;
    fixtures::org(&app, "agency").await;
    fixtures::tenant(&app, "agency", "client-01").await;
    let (agency, _) = fixtures::token(&app, "agency", "", pb::Role::Admin).await;
    let mut api = models(&app);
    let parameters = vec![
        pb::TemplateParameter {
            name: "hot".into(),
            description: String::new(),
            default_value: None,
        },
        pb::TemplateParameter {
            name: "countries".into(),
            description: String::new(),
            default_value: None,
        },
    ];
    let mut spec = template_spec();
    spec["description"] = json!("B2B");
    spec["exclusions"][1]["when"]["value"] = json!(["rival.example"]);
    spec["fit"][1]["when"]["op"] = json!("bigger_than");
    spec["fit"][2]["when"]["op"] = json!("matches_not");
    let template = pb::Template {
        organization_id: "agency".into(),
        template_id: "broken".into(),
        display_name: "Broken".into(),
        spec: Some(to_struct(spec.clone())),
        parameters: parameters.clone(),
        ..Default::default()
    };
    let status = api
        .create_template(authed(&agency, pb::CreateTemplateRequest { template: Some(template) }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    let details = status.get_error_details();
    let fields: Vec<&str> =
        details.bad_request().unwrap().field_violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["template.spec.fit[1].when.op", "template.spec.fit[2].when.op"]);
    for path in ["spec.fit[1].when.op", "spec.fit[2].when.op"] {
        assert!(status.message().contains(path), "{}", status.message());
    }

    // Fixed, it is accepted whatever the tenants' values will be; a missing value is named
    // once at ApplyTemplate: `parameters.countries`, not `parameters.parameters.countries`.
    spec["fit"][1]["when"]["op"] = b2b_spec()["fit"][1]["when"]["op"].clone();
    spec["fit"][2]["when"]["op"] = b2b_spec()["fit"][2]["when"]["op"].clone();
    let template = pb::Template {
        organization_id: "agency".into(),
        template_id: "fixed".into(),
        display_name: "Fixed".into(),
        spec: Some(to_struct(spec)),
        parameters,
        ..Default::default()
    };
    api.create_template(authed(&agency, pb::CreateTemplateRequest { template: Some(template) }))
        .await
        .unwrap();
    let reply = api
        .apply_template(authed(
            &agency,
            pb::ApplyTemplateRequest {
                organization_id: "agency".into(),
                template_id: "fixed".into(),
                targets: vec![pb::TemplateTarget {
                    tenant_id: "client-01".into(),
                    model_id: String::new(),
                    parameters: Some(to_struct(json!({"hot": 70, "nope": 1}))),
                }],
                publish: false,
                comment: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let paths: Vec<&str> = reply.results[0].errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["parameters.nope", "parameters.countries"], "{:?}", reply.results[0]);
    assert!(
        !reply.results[0].message.contains("parameters.parameters"),
        "{}",
        reply.results[0].message
    );
    app.stop().await;
}
