//! The permission table: which roles may call which RPC. One place, checked against the contract
//! by a test so that no RPC can ship without an entry.
//!
//! Roles only say what kind of call is allowed; which organizations and tenants a call may touch
//! is decided by the principal's reach (resources out of reach answer NOT_FOUND).

use crate::Role;

/// Who may call one RPC.
#[derive(Debug, Clone, Copy)]
pub struct Permission {
    /// Full gRPC method path, e.g. `/kelvin.v1.TenantService/CreateTenant`.
    pub method: &'static str,
    pub roles: &'static [Role],
}

const ADMIN: &[Role] = &[Role::Admin];
const AUTHORS: &[Role] = &[Role::Admin, Role::Editor];
const SENDERS: &[Role] = &[Role::Admin, Role::Ingest];
const READERS: &[Role] = &[Role::Admin, Role::Editor, Role::Reader];

/// Every RPC of the contract and the roles allowed to call it.
pub const PERMISSIONS: &[Permission] = &[
    // Organizations: creation is further limited to the platform operator.
    Permission { method: "/kelvin.v1.TenantService/CreateOrganization", roles: ADMIN },
    Permission { method: "/kelvin.v1.TenantService/GetOrganization", roles: READERS },
    Permission { method: "/kelvin.v1.TenantService/ListOrganizations", roles: READERS },
    // Tenants: creation and deletion further need an organization-wide token.
    Permission { method: "/kelvin.v1.TenantService/CreateTenant", roles: ADMIN },
    Permission { method: "/kelvin.v1.TenantService/GetTenant", roles: READERS },
    Permission { method: "/kelvin.v1.TenantService/ListTenants", roles: READERS },
    Permission { method: "/kelvin.v1.TenantService/UpdateTenant", roles: ADMIN },
    Permission { method: "/kelvin.v1.TenantService/DeleteTenant", roles: ADMIN },
    // API keys: organization-wide keys further need an organization-wide admin.
    Permission { method: "/kelvin.v1.TenantService/CreateApiKey", roles: ADMIN },
    Permission { method: "/kelvin.v1.TenantService/ListApiKeys", roles: ADMIN },
    Permission { method: "/kelvin.v1.TenantService/RevokeApiKey", roles: ADMIN },
    Permission { method: "/kelvin.v1.TenantService/ListAuditEvents", roles: READERS },
    // Scoring models: editors draft, validate and simulate; admins publish and roll back;
    // everyone who reads may look at models, versions and diffs.
    Permission { method: "/kelvin.v1.ModelService/CreateModel", roles: AUTHORS },
    Permission { method: "/kelvin.v1.ModelService/GetModel", roles: READERS },
    Permission { method: "/kelvin.v1.ModelService/ListModels", roles: READERS },
    Permission { method: "/kelvin.v1.ModelService/CreateModelVersion", roles: AUTHORS },
    Permission { method: "/kelvin.v1.ModelService/GetModelVersion", roles: READERS },
    Permission { method: "/kelvin.v1.ModelService/ListModelVersions", roles: READERS },
    Permission { method: "/kelvin.v1.ModelService/ValidateModel", roles: AUTHORS },
    Permission { method: "/kelvin.v1.ModelService/DiffModelVersions", roles: READERS },
    Permission { method: "/kelvin.v1.ModelService/PublishModelVersion", roles: ADMIN },
    Permission { method: "/kelvin.v1.ModelService/RollbackModel", roles: ADMIN },
    Permission { method: "/kelvin.v1.ModelService/SimulateScore", roles: AUTHORS },
    // Templates belong to the organization: further limited to organization-wide tokens.
    Permission { method: "/kelvin.v1.ModelService/CreateTemplate", roles: ADMIN },
    Permission { method: "/kelvin.v1.ModelService/ListTemplates", roles: AUTHORS },
    Permission { method: "/kelvin.v1.ModelService/ApplyTemplate", roles: ADMIN },
    // Ingestion: ingest keys send data; only admins erase or export a lead (personal data).
    Permission { method: "/kelvin.v1.IngestService/UpsertLeads", roles: SENDERS },
    Permission { method: "/kelvin.v1.IngestService/UpsertCompanies", roles: SENDERS },
    Permission { method: "/kelvin.v1.IngestService/IngestEvents", roles: SENDERS },
    Permission { method: "/kelvin.v1.IngestService/StreamEvents", roles: SENDERS },
    Permission { method: "/kelvin.v1.IngestService/RecordOutcomes", roles: SENDERS },
    Permission { method: "/kelvin.v1.IngestService/EraseLead", roles: ADMIN },
    Permission { method: "/kelvin.v1.IngestService/ExportLead", roles: ADMIN },
    // ScoringService: every reader of the tenant reads its scores.
    Permission { method: "/kelvin.v1.ScoringService/GetScore", roles: READERS },
    Permission { method: "/kelvin.v1.ScoringService/BatchGetScores", roles: READERS },
    Permission { method: "/kelvin.v1.ScoringService/ExplainScore", roles: READERS },
    Permission { method: "/kelvin.v1.ScoringService/ListLeads", roles: READERS },
    Permission { method: "/kelvin.v1.ScoringService/GetCompanyScore", roles: READERS },
    Permission { method: "/kelvin.v1.ScoringService/ListCompanies", roles: READERS },
    Permission { method: "/kelvin.v1.ScoringService/GetScoreHistory", roles: READERS },
    Permission { method: "/kelvin.v1.ScoringService/WatchScoreChanges", roles: READERS },
    Permission { method: "/kelvin.v1.ScoringService/GetRescoreStatus", roles: READERS },
    Permission { method: "/kelvin.v1.ScoringService/ListDeadLetters", roles: READERS },
    Permission { method: "/kelvin.v1.ScoringService/GetBandCounts", roles: READERS },
    // Retrying failed work changes what is scored: the model's authors decide.
    Permission { method: "/kelvin.v1.ScoringService/RetryDeadLetters", roles: AUTHORS },
];

/// The roles allowed to call `method`, or `None` when the method is not in the table (such a
/// call is refused).
pub fn permission_for(method: &str) -> Option<&'static [Role]> {
    PERMISSIONS.iter().find(|p| p.method == method).map(|p| p.roles)
}
