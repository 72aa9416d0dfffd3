//! The authenticated caller and its reach.

use serde::{Deserialize, Serialize};

/// What a token may do; the permission table maps each RPC to the roles allowed to call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Editor,
    Ingest,
    Reader,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Ingest => "ingest",
            Role::Reader => "reader",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "editor" => Some(Role::Editor),
            "ingest" => Some(Role::Ingest),
            "reader" => Some(Role::Reader),
            _ => None,
        }
    }
}

/// Which organizations a principal reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgReach {
    /// The platform operator (`org: "*"`): every organization.
    Platform,
    /// One organization.
    Org(String),
}

/// Which tenants of its organization(s) a principal reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantReach {
    /// Every tenant (`tenants: "*"`): an agency-wide or platform token.
    All,
    /// Only these tenants.
    Only(Vec<String>),
}

/// An authenticated caller. Only the [`crate::Verifier`] builds one, so holding a `Principal`
/// proves that a token was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    actor: String,
    org: OrgReach,
    tenants: TenantReach,
    role: Role,
    api_key_id: Option<String>,
}

impl Principal {
    pub(crate) fn new(
        actor: String,
        org: OrgReach,
        tenants: TenantReach,
        role: Role,
        api_key_id: Option<String>,
    ) -> Self {
        Self { actor, org, tenants, role, api_key_id }
    }

    /// The token subject, recorded as the actor of audit events.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    pub fn org(&self) -> &OrgReach {
        &self.org
    }

    pub fn tenants(&self) -> &TenantReach {
        &self.tenants
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The Kelvin API key this token belongs to (checked for revocation); `None` for tokens of
    /// an external issuer.
    pub fn api_key_id(&self) -> Option<&str> {
        self.api_key_id.as_deref()
    }

    pub fn is_platform(&self) -> bool {
        self.org == OrgReach::Platform
    }

    /// True when the principal reaches every tenant of `org` (agency-wide or platform token).
    pub fn is_org_wide(&self, org: &str) -> bool {
        self.reaches_org(org) && self.tenants == TenantReach::All
    }

    pub fn reaches_org(&self, org: &str) -> bool {
        match &self.org {
            OrgReach::Platform => true,
            OrgReach::Org(own) => own == org,
        }
    }

    /// True when the principal may see tenant `tenant` of organization `org`.
    pub fn reaches_tenant(&self, org: &str, tenant: &str) -> bool {
        self.reaches_org(org)
            && match &self.tenants {
                TenantReach::All => true,
                TenantReach::Only(list) => list.iter().any(|t| t == tenant),
            }
    }
}
