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
];

/// The roles allowed to call `method`, or `None` when the method is not in the table (such a
/// call is refused).
pub fn permission_for(method: &str) -> Option<&'static [Role]> {
    PERMISSIONS.iter().find(|p| p.method == method).map(|p| p.roles)
}
