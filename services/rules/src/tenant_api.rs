//! `kelvin.v1.TenantService`: request validation and conversion around the store, which checks
//! every principal's reach.

use std::sync::Arc;

use kelvin_auth::TenantsClaim;
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::tenant_service_server::TenantService;
use kelvin_server::{
    ApiError, At, CallContext, MutableField, Reply, Runtime, UpdateFields, handle,
};
use kelvin_store::{
    AuditContext, AuditFilter, DisplayName, Labels, NewApiKey, NewTenant, Page, ResourceId,
    TenantPatch, key_expiry, required,
};
use tonic::Request;

use crate::convert;

/// The TenantService handlers.
pub struct TenantApi {
    runtime: Arc<Runtime>,
}

impl TenantApi {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Self { runtime }
    }
}

fn audit(ctx: &CallContext) -> AuditContext {
    AuditContext { request_id: ctx.request_id.clone(), reason: String::new() }
}

#[tonic::async_trait]
impl TenantService for TenantApi {
    async fn create_organization(
        &self,
        request: Request<pb::CreateOrganizationRequest>,
    ) -> Reply<pb::CreateOrganizationResponse> {
        handle(request, |ctx, req| async move {
            let id = ResourceId::parse_optional(&req.organization_id).at("organization_id")?;
            let display_name = DisplayName::parse(&req.display_name).at("display_name")?;
            let org = ctx
                .access(&self.runtime)
                .create_organization(id.as_ref(), &display_name, &req.request_id, &audit(&ctx))
                .await?;
            Ok(pb::CreateOrganizationResponse { organization: Some(convert::organization(org)) })
        })
        .await
    }

    async fn get_organization(
        &self,
        request: Request<pb::GetOrganizationRequest>,
    ) -> Reply<pb::GetOrganizationResponse> {
        handle(request, |ctx, req| async move {
            let id = required(&req.organization_id).at("organization_id")?;
            let org = ctx.access(&self.runtime).get_organization(id).await?;
            Ok(pb::GetOrganizationResponse { organization: Some(convert::organization(org)) })
        })
        .await
    }

    async fn list_organizations(
        &self,
        request: Request<pb::ListOrganizationsRequest>,
    ) -> Reply<pb::ListOrganizationsResponse> {
        handle(request, |ctx, req| async move {
            let page = Page::parse(req.page_size, &req.page_token)?;
            let (orgs, next_page_token) =
                ctx.access(&self.runtime).list_organizations(&page).await?;
            Ok(pb::ListOrganizationsResponse {
                organizations: orgs.into_iter().map(convert::organization).collect(),
                next_page_token,
            })
        })
        .await
    }

    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Reply<pb::CreateTenantResponse> {
        handle(request, |ctx, req| async move {
            required(&req.organization_id).at("organization_id")?;
            let id = ResourceId::parse_optional(&req.tenant_id).at("tenant_id")?;
            let display_name = DisplayName::parse(&req.display_name).at("display_name")?;
            let labels = Labels::parse(&req.labels.into_iter().collect()).at("labels")?;
            let tenant = ctx
                .access(&self.runtime)
                .create_tenant(
                    NewTenant {
                        org_id: req.organization_id,
                        id,
                        display_name,
                        labels,
                        request_id: req.request_id,
                    },
                    &audit(&ctx),
                )
                .await?;
            Ok(pb::CreateTenantResponse { tenant: Some(convert::tenant(tenant)) })
        })
        .await
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Reply<pb::GetTenantResponse> {
        handle(request, |ctx, req| async move {
            let id = required(&req.tenant_id).at("tenant_id")?;
            let tenant = ctx.access(&self.runtime).get_tenant(id).await?;
            Ok(pb::GetTenantResponse { tenant: Some(convert::tenant(tenant)) })
        })
        .await
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Reply<pb::ListTenantsResponse> {
        handle(request, |ctx, req| async move {
            let page = Page::parse(req.page_size, &req.page_token)?;
            let org_id = required(&req.organization_id).at("organization_id")?;
            let (tenants, next_page_token) =
                ctx.access(&self.runtime).list_tenants(org_id, &page, req.show_deleted).await?;
            Ok(pb::ListTenantsResponse {
                tenants: tenants.into_iter().map(convert::tenant).collect(),
                next_page_token,
            })
        })
        .await
    }

    async fn update_tenant(
        &self,
        request: Request<pb::UpdateTenantRequest>,
    ) -> Reply<pb::UpdateTenantResponse> {
        handle(request, |ctx, req| async move {
            let tenant = req.tenant.ok_or_else(|| ApiError::invalid("tenant", "is required"))?;
            let paths = req.update_mask.map(|m| m.paths);
            let fields = UpdateFields::resolve(
                paths.as_deref(),
                &[
                    MutableField::new("display_name", !tenant.display_name.is_empty()),
                    MutableField::new("labels", !tenant.labels.is_empty()),
                ],
            )?;
            required(&tenant.tenant_id).at("tenant_id")?;
            let display_name = fields
                .contains("display_name")
                .then(|| DisplayName::parse(&tenant.display_name).at("tenant.display_name"))
                .transpose()?;
            let labels = fields
                .contains("labels")
                .then(|| Labels::parse(&tenant.labels.clone().into_iter().collect()).at("labels"))
                .transpose()?;
            let patch = TenantPatch { display_name, labels, etag: tenant.etag.clone() };
            let updated = ctx
                .access(&self.runtime)
                .update_tenant(&tenant.tenant_id, patch, &audit(&ctx))
                .await?;
            Ok(pb::UpdateTenantResponse { tenant: Some(convert::tenant(updated)) })
        })
        .await
    }

    async fn delete_tenant(
        &self,
        request: Request<pb::DeleteTenantRequest>,
    ) -> Reply<pb::DeleteTenantResponse> {
        handle(request, |ctx, req| async move {
            let purge_after_ms = i64::try_from(
                self.runtime.config.tenancy.purge_after_hours.saturating_mul(3_600_000),
            )
            .unwrap_or(i64::MAX / 2);
            required(&req.tenant_id).at("tenant_id")?;
            let tenant = ctx
                .access(&self.runtime)
                .delete_tenant(&req.tenant_id, &req.etag, purge_after_ms, &audit(&ctx))
                .await?;
            Ok(pb::DeleteTenantResponse { tenant: Some(convert::tenant(tenant)) })
        })
        .await
    }

    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Reply<pb::CreateApiKeyResponse> {
        handle(request, |ctx, req| async move {
            let role = convert::role_from_pb("role", req.role)?;
            let expire =
                req.expire_time.ok_or_else(|| ApiError::invalid("expire_time", "is required"))?;
            let expire_ms = convert::millis("expire_time", &expire)?;
            required(&req.organization_id).at("organization_id")?;
            let display_name = DisplayName::parse(&req.display_name).at("display_name")?;
            let now_ms = self.runtime.store.clock().now_ms();
            let expire_ms = key_expiry(expire_ms, now_ms).at("expire_time")?;
            let tenant_id = (!req.tenant_id.is_empty()).then(|| req.tenant_id.clone());
            let id = NewApiKey::new_id();
            let key = ctx
                .access(&self.runtime)
                .create_api_key(
                    NewApiKey {
                        id: id.clone(),
                        org_id: req.organization_id.clone(),
                        tenant_id: tenant_id.clone(),
                        role,
                        display_name,
                        expire_time_ms: expire_ms,
                    },
                    &audit(&ctx),
                )
                .await?;
            let tenants = match tenant_id {
                Some(t) => TenantsClaim::Only(vec![t]),
                None => TenantsClaim::All,
            };
            let token = self
                .runtime
                .mint(&id, &req.organization_id, tenants, role, (expire_ms / 1000) as u64)
                .map_err(|e| ApiError::Internal(format!("cannot mint token: {e}")))?;
            Ok(pb::CreateApiKeyResponse { api_key: Some(convert::api_key(key)), token })
        })
        .await
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Reply<pb::ListApiKeysResponse> {
        handle(request, |ctx, req| async move {
            let page = Page::parse(req.page_size, &req.page_token)?;
            let org_id = required(&req.organization_id).at("organization_id")?;
            let (keys, next_page_token) = ctx
                .access(&self.runtime)
                .list_api_keys(org_id, &req.tenant_id, &page, req.show_revoked)
                .await?;
            Ok(pb::ListApiKeysResponse {
                api_keys: keys.into_iter().map(convert::api_key).collect(),
                next_page_token,
            })
        })
        .await
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Reply<pb::RevokeApiKeyResponse> {
        handle(request, |ctx, req| async move {
            let id = required(&req.api_key_id).at("api_key_id")?;
            let key = ctx.access(&self.runtime).revoke_api_key(id, &audit(&ctx)).await?;
            Ok(pb::RevokeApiKeyResponse { api_key: Some(convert::api_key(key)) })
        })
        .await
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Reply<pb::ListAuditEventsResponse> {
        handle(request, |ctx, req| async move {
            let page = Page::parse(req.page_size, &req.page_token)?;
            required(&req.organization_id).at("organization_id")?;
            if !req.model_id.is_empty() && req.tenant_id.is_empty() {
                return Err(ApiError::invalid("tenant_id", "is required with model_id"));
            }
            let filter = AuditFilter {
                org_id: req.organization_id,
                tenant_id: req.tenant_id,
                actor: req.actor,
                resource: req.resource,
                action: req.action,
                model_id: req.model_id,
                start_ms: req
                    .start_time
                    .as_ref()
                    .map(|t| convert::millis("start_time", t))
                    .transpose()?,
                end_ms: req
                    .end_time
                    .as_ref()
                    .map(|t| convert::millis("end_time", t))
                    .transpose()?,
            };
            let (events, next_page_token) =
                ctx.access(&self.runtime).list_audit_events(&filter, &page).await?;
            Ok(pb::ListAuditEventsResponse {
                audit_events: events.into_iter().map(convert::audit_event).collect(),
                next_page_token,
            })
        })
        .await
    }
}
