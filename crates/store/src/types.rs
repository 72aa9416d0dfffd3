//! The resources the store hands out (plain data, independent of sea-orm and of the contract).

use std::collections::BTreeMap;

use kelvin_auth::Role;
use serde::Serialize;

use crate::{DisplayName, Labels, ResourceId};

/// A generated id: `prefix` and 12 random hex digits.
pub(crate) fn generated_id(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..12])
}

/// The etag of a row at `version` (organizations and tenants).
pub(crate) fn etag(version: i64) -> String {
    format!("v{version}")
}

/// An organization (agency).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Organization {
    pub id: String,
    pub display_name: String,
    pub create_time_ms: i64,
    pub update_time_ms: i64,
    pub etag: String,
}

/// Lifecycle of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantState {
    Active,
    Deleted,
}

/// A client company of an organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub id: String,
    pub org_id: String,
    pub display_name: String,
    pub labels: BTreeMap<String, String>,
    pub state: TenantState,
    pub create_time_ms: i64,
    pub update_time_ms: i64,
    pub delete_time_ms: Option<i64>,
    pub purge_time_ms: Option<i64>,
    pub etag: String,
}

/// What CreateTenant asks for.
#[derive(Debug, Clone, Default)]
pub struct NewTenant {
    pub org_id: String,
    /// `None`: generated.
    pub id: Option<ResourceId>,
    pub display_name: DisplayName,
    pub labels: Labels,
    pub request_id: String,
}

/// What UpdateTenant changes (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct TenantPatch {
    pub display_name: Option<DisplayName>,
    pub labels: Option<Labels>,
    /// When non-empty, must equal the current etag.
    pub etag: String,
}

/// An API key's metadata (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: String,
    /// `None` for the platform operator's keys.
    pub org_id: Option<String>,
    /// `None` for an organization-wide key.
    pub tenant_id: Option<String>,
    pub role: Role,
    pub display_name: String,
    pub creator: String,
    pub create_time_ms: i64,
    pub expire_time_ms: i64,
    pub revoke_time_ms: Option<i64>,
}

/// What CreateApiKey stores; the id is chosen by the caller because the token (minted before the
/// row is written) carries it as `jti`.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: String,
    pub org_id: String,
    pub tenant_id: Option<String>,
    pub role: Role,
    pub display_name: DisplayName,
    /// Checked by the caller ([`crate::key_expiry`]).
    pub expire_time_ms: i64,
}

/// Whether a Kelvin API key may be used, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyState {
    Active,
    /// No such key: the token was not minted by this deployment.
    Unknown,
    Revoked,
    Expired,
    /// The key's tenant is deleted.
    TenantInactive,
}

impl NewApiKey {
    /// A fresh key id.
    pub fn new_id() -> String {
        format!("key-{}", uuid::Uuid::now_v7().simple())
    }
}

/// One audited mutation.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: String,
    pub org_id: Option<String>,
    pub tenant_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub request_id: String,
    pub reason: String,
    pub time_ms: i64,
}

/// ListAuditEvents filters (empty / `None`: any).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub org_id: String,
    pub tenant_id: String,
    pub actor: String,
    pub resource: String,
    pub action: String,
    /// A scoring model's events (needs `tenant_id`).
    pub model_id: String,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
}
