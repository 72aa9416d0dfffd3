//! Organizations, tenants, API keys and the audit log through the public API.

#![allow(clippy::unwrap_used)]

use kelvin_integration_tests::{authed, days_from_now, fixtures, spawn_app};
use kelvin_proto::v1 as pb;
use tonic::Code;

#[tokio::test]
async fn organizations_and_tenants_round_trip_with_pages_and_idempotent_creates() {
    let app = spawn_app().await;
    let mut api = app.tenants();
    let token = app.admin_token.clone();

    let org = fixtures::org(&app, "acme").await;
    assert_eq!(org.organization_id, "acme");
    assert!(!org.etag.is_empty());
    // Idempotent creation: the same request id returns the first organization.
    let create = |id: &str| pb::CreateOrganizationRequest {
        organization_id: id.into(),
        display_name: "Retry".into(),
        request_id: "req-42".into(),
    };
    let first = api.create_organization(authed(&token, create(""))).await.unwrap().into_inner();
    let again = api.create_organization(authed(&token, create(""))).await.unwrap().into_inner();
    assert_eq!(first.organization, again.organization);
    let dup = api
        .create_organization(authed(
            &token,
            pb::CreateOrganizationRequest { organization_id: "acme".into(), ..Default::default() },
        ))
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);

    for i in 0..5 {
        fixtures::tenant(&app, "acme", &format!("client-{i}")).await;
    }
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = api
            .list_tenants(authed(
                &token,
                pb::ListTenantsRequest {
                    organization_id: "acme".into(),
                    page_size: 2,
                    page_token: page_token.clone(),
                    show_deleted: false,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.tenants.len() <= 2);
        seen.extend(page.tenants.into_iter().map(|t| t.tenant_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen, ["client-0", "client-1", "client-2", "client-3", "client-4"]);

    let orgs = api
        .list_organizations(authed(&token, pb::ListOrganizationsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(orgs.organizations.len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn bad_input_names_the_field_and_writes_nothing() {
    let app = spawn_app().await;
    let mut api = app.tenants();
    let token = app.admin_token.clone();
    fixtures::org(&app, "acme").await;
    let cases: Vec<(pb::CreateTenantRequest, &str)> = vec![
        (
            pb::CreateTenantRequest {
                organization_id: "acme".into(),
                tenant_id: "Bad_Id".into(),
                ..Default::default()
            },
            "tenant_id",
        ),
        (
            pb::CreateTenantRequest {
                organization_id: "".into(),
                tenant_id: "ok".into(),
                ..Default::default()
            },
            "organization_id",
        ),
        (
            pb::CreateTenantRequest {
                organization_id: "acme".into(),
                tenant_id: "ok".into(),
                display_name: "x".repeat(300),
                ..Default::default()
            },
            "display_name",
        ),
        (
            pb::CreateTenantRequest {
                organization_id: "acme".into(),
                tenant_id: "ok".into(),
                labels: [("bad key!".to_string(), "v".to_string())].into(),
                ..Default::default()
            },
            "labels",
        ),
    ];
    for (request, field) in cases {
        let status = api.create_tenant(authed(&token, request)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(field), "{field}: {}", status.message());
    }
    let err = api
        .list_tenants(authed(
            &token,
            pb::ListTenantsRequest {
                organization_id: "acme".into(),
                page_size: -1,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert!(err.message().contains("page_size"));
    let err = api
        .list_tenants(authed(
            &token,
            pb::ListTenantsRequest {
                organization_id: "acme".into(),
                page_token: "garbage!".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert!(err.message().contains("page_token"));
    let err = api
        .create_api_key(authed(
            &token,
            pb::CreateApiKeyRequest {
                organization_id: "acme".into(),
                role: pb::Role::Reader as i32,
                expire_time: Some(days_from_now(-1)),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("expire_time"), "{}", err.message());
    let err = api
        .create_api_key(authed(
            &token,
            pb::CreateApiKeyRequest {
                organization_id: "acme".into(),
                role: 0,
                expire_time: Some(days_from_now(1)),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert!(err.message().contains("role"), "{}", err.message());
    // Nothing was written: the tenant list is empty and the audit log has the org creation only.
    let tenants = api
        .list_tenants(authed(
            &token,
            pb::ListTenantsRequest {
                organization_id: "acme".into(),
                show_deleted: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(tenants.tenants.is_empty());
    let audit = api
        .list_audit_events(authed(
            &token,
            pb::ListAuditEventsRequest { organization_id: "acme".into(), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(audit.audit_events.len(), 1);
    assert_eq!(audit.audit_events[0].action, "organization.create");
    app.stop().await;
}

/// Issue 16: with no mask, UpdateTenant wiped the labels; `*` was refused (AIP-134).
#[tokio::test]
async fn update_without_a_mask_changes_what_it_sets_and_star_replaces_everything() {
    let app = spawn_app().await;
    let mut api = app.tenants();
    let token = app.admin_token.clone();
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "acme-fr").await;
    let mask = |paths: &[&str]| {
        Some(prost_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() })
    };
    let mut update = async |tenant: pb::Tenant, update_mask| {
        api.update_tenant(authed(
            &token,
            pb::UpdateTenantRequest { tenant: Some(tenant), update_mask },
        ))
        .await
        .map(|r| r.into_inner().tenant.unwrap())
    };
    let labels: std::collections::HashMap<String, String> =
        [("tier".to_string(), "gold".to_string())].into();
    let with_labels = update(
        pb::Tenant { tenant_id: "acme-fr".into(), labels: labels.clone(), ..Default::default() },
        mask(&["labels"]),
    )
    .await
    .unwrap();

    // No mask: only the display name is set, so only it changes; the labels stay.
    let renamed = update(
        pb::Tenant {
            tenant_id: "acme-fr".into(),
            display_name: "Acme France".into(),
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(renamed.display_name, "Acme France");
    assert_eq!(renamed.labels, labels);
    assert_ne!(renamed.etag, with_labels.etag);

    // `*`: full replacement, the labels the request leaves empty are cleared.
    let replaced = update(
        pb::Tenant {
            tenant_id: "acme-fr".into(),
            display_name: "Acme FR".into(),
            ..Default::default()
        },
        mask(&["*"]),
    )
    .await
    .unwrap();
    assert_eq!(replaced.display_name, "Acme FR");
    assert!(replaced.labels.is_empty(), "{:?}", replaced.labels);

    // An unknown path is refused by name, and nothing changes.
    let err = update(
        pb::Tenant { tenant_id: "acme-fr".into(), labels: labels.clone(), ..Default::default() },
        mask(&["labels", "labells"]),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("update_mask.paths[1]"), "{}", err.message());
    assert!(err.message().contains("`labells`"), "{}", err.message());
    let now = api
        .get_tenant(authed(&token, pb::GetTenantRequest { tenant_id: "acme-fr".into() }))
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    assert_eq!(now.etag, replaced.etag);
    app.stop().await;
}

#[tokio::test]
async fn update_with_field_mask_and_etag_then_soft_delete() {
    let app = spawn_app().await;
    let mut api = app.tenants();
    let token = app.admin_token.clone();
    fixtures::org(&app, "acme").await;
    let t = fixtures::tenant(&app, "acme", "acme-fr").await;

    // Only the masked field changes.
    let mut change = t.clone();
    change.display_name = "Acme France".into();
    change.labels = [("tier".to_string(), "gold".to_string())].into();
    let updated = api
        .update_tenant(authed(
            &token,
            pb::UpdateTenantRequest {
                tenant: Some(change.clone()),
                update_mask: Some(prost_types::FieldMask { paths: vec!["display_name".into()] }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    assert_eq!(updated.display_name, "Acme France");
    assert!(updated.labels.is_empty());
    assert_ne!(updated.etag, t.etag);
    // A stale etag is refused.
    let stale = api
        .update_tenant(authed(
            &token,
            pb::UpdateTenantRequest { tenant: Some(change.clone()), update_mask: None },
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let bad_mask = api
        .update_tenant(authed(
            &token,
            pb::UpdateTenantRequest {
                tenant: Some(updated.clone()),
                update_mask: Some(prost_types::FieldMask { paths: vec!["organization_id".into()] }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_mask.code(), Code::InvalidArgument);
    assert!(bad_mask.message().contains("update_mask"));

    // A tenant key works until the tenant is deleted.
    let (tenant_token, _) = fixtures::token(&app, "acme", "acme-fr", pb::Role::Reader).await;
    api.get_tenant(authed(&tenant_token, pb::GetTenantRequest { tenant_id: "acme-fr".into() }))
        .await
        .unwrap();

    let deleted = api
        .delete_tenant(authed(
            &token,
            pb::DeleteTenantRequest { tenant_id: "acme-fr".into(), etag: updated.etag.clone() },
        ))
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    assert_eq!(deleted.state, pb::TenantState::Deleted as i32);
    assert!(deleted.purge_time.unwrap().seconds > deleted.delete_time.unwrap().seconds);
    let got = api
        .get_tenant(authed(&token, pb::GetTenantRequest { tenant_id: "acme-fr".into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.tenant.unwrap().state, pb::TenantState::Deleted as i32);
    let listed = api
        .list_tenants(authed(
            &token,
            pb::ListTenantsRequest { organization_id: "acme".into(), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.tenants.is_empty());
    let err = api
        .update_tenant(authed(
            &token,
            pb::UpdateTenantRequest { tenant: Some(deleted.clone()), update_mask: None },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = api
        .get_tenant(authed(&tenant_token, pb::GetTenantRequest { tenant_id: "acme-fr".into() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "a deleted tenant's keys stop working");

    // The purge erases it for good once due.
    assert!(app.runtime.store.purge_due_tenants().await.unwrap().is_empty());
    app.runtime
        .store
        .execute_unprepared("UPDATE tenants SET purge_time = 0 WHERE id = 'acme-fr'")
        .await
        .unwrap();
    let purged = app.runtime.store.purge_due_tenants().await.unwrap();
    assert_eq!(purged.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(), ["acme-fr"]);
    let err = api
        .get_tenant(authed(&token, pb::GetTenantRequest { tenant_id: "acme-fr".into() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Every mutation left an audit row, newest first, with before and after.
    let audit = api
        .list_audit_events(authed(
            &token,
            pb::ListAuditEventsRequest {
                organization_id: "acme".into(),
                resource: "tenants/acme-fr".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let actions: Vec<_> = audit.audit_events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["tenant.purge", "tenant.delete", "tenant.update", "tenant.create"]);
    let update = &audit.audit_events[2];
    assert_eq!(update.actor, "bootstrap-admin");
    assert!(!update.request_id.is_empty());
    let name = |s: &Option<prost_types::Struct>| match s.as_ref().unwrap().fields["display_name"]
        .kind
        .clone()
    {
        Some(prost_types::value::Kind::StringValue(v)) => v,
        other => panic!("{other:?}"),
    };
    assert_eq!(name(&update.before), "Client acme-fr");
    assert_eq!(name(&update.after), "Acme France");
    app.stop().await;
}

#[tokio::test]
async fn api_keys_are_listed_without_tokens_and_revocation_is_immediate() {
    let app = spawn_app().await;
    let mut api = app.tenants();
    let token = app.admin_token.clone();
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "acme-fr").await;
    let (reader, reader_id) = fixtures::token(&app, "acme", "acme-fr", pb::Role::Reader).await;
    let (admin, _) = fixtures::token(&app, "acme", "", pb::Role::Admin).await;

    let keys = api
        .list_api_keys(authed(
            &admin,
            pb::ListApiKeysRequest { organization_id: "acme".into(), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(keys.api_keys.len(), 2);
    assert!(keys.api_keys.iter().any(|k| k.api_key_id == reader_id && k.tenant_id == "acme-fr"));

    // A reader may read but not administer.
    api.get_tenant(authed(&reader, pb::GetTenantRequest { tenant_id: "acme-fr".into() }))
        .await
        .unwrap();
    let denied = api
        .list_api_keys(authed(
            &reader,
            pb::ListApiKeysRequest { organization_id: "acme".into(), ..Default::default() },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let revoked = api
        .revoke_api_key(authed(&admin, pb::RevokeApiKeyRequest { api_key_id: reader_id.clone() }))
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap();
    assert!(revoked.revoke_time.is_some());
    let err = api
        .get_tenant(authed(&reader, pb::GetTenantRequest { tenant_id: "acme-fr".into() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let active = api
        .list_api_keys(authed(
            &admin,
            pb::ListApiKeysRequest { organization_id: "acme".into(), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(active.api_keys.len(), 1);
    let all = api
        .list_api_keys(authed(
            &admin,
            pb::ListApiKeysRequest {
                organization_id: "acme".into(),
                show_revoked: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.api_keys.len(), 2);

    // Audit filters: by actor and by time.
    let by_admin = api
        .list_audit_events(authed(
            &token,
            pb::ListAuditEventsRequest {
                organization_id: "acme".into(),
                action: "api_key.revoke".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_admin.audit_events.len(), 1);
    assert!(by_admin.audit_events[0].actor.starts_with("apikey:"));
    let future = api
        .list_audit_events(authed(
            &token,
            pb::ListAuditEventsRequest {
                organization_id: "acme".into(),
                start_time: Some(days_from_now(1)),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(future.audit_events.is_empty());
    let by_tenant = api
        .list_audit_events(authed(
            &token,
            pb::ListAuditEventsRequest {
                organization_id: "acme".into(),
                tenant_id: "acme-fr".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(by_tenant.audit_events.iter().all(|e| e.tenant_id == "acme-fr"));
    assert_eq!(by_tenant.audit_events.len(), 3, "tenant.create, api_key.create, api_key.revoke");
    app.stop().await;
}

#[tokio::test]
async fn the_request_id_is_echoed_and_recorded_on_audit_rows() {
    let app = spawn_app().await;
    let mut request = authed(
        &app.admin_token,
        pb::CreateOrganizationRequest { organization_id: "acme".into(), ..Default::default() },
    );
    request.metadata_mut().insert("x-request-id", "req-7f3a".parse().unwrap());
    let reply = app.tenants().create_organization(request).await.unwrap();
    assert_eq!(reply.metadata().get("x-request-id").unwrap(), "req-7f3a");
    // Without one, the server makes one up and still returns it.
    let reply = app
        .tenants()
        .get_organization(authed(
            &app.admin_token,
            pb::GetOrganizationRequest { organization_id: "acme".into() },
        ))
        .await
        .unwrap();
    assert!(!reply.metadata().get("x-request-id").unwrap().is_empty());
    let audit = app
        .tenants()
        .list_audit_events(authed(
            &app.admin_token,
            pb::ListAuditEventsRequest { organization_id: "acme".into(), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(audit.audit_events[0].request_id, "req-7f3a");
    app.stop().await;
}
