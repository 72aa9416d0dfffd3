//! The claims of a Kelvin token.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Role;

/// The `tenants` claim: a list of tenant ids, or `"*"` for every tenant of the organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantsClaim {
    All,
    Only(Vec<String>),
}

impl Serialize for TenantsClaim {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TenantsClaim::All => s.serialize_str("*"),
            TenantsClaim::Only(list) => list.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for TenantsClaim {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Star(String),
            List(Vec<String>),
        }
        match Raw::deserialize(d)? {
            Raw::Star(s) if s == "*" => Ok(TenantsClaim::All),
            Raw::Star(s) => Err(serde::de::Error::custom(format!(
                "tenants must be a list or \"*\", got \"{s}\""
            ))),
            Raw::List(list) => Ok(TenantsClaim::Only(list)),
        }
    }
}

/// Every claim Kelvin reads. `exp`, `iss`, `aud` and `sub` are also enforced by the verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The actor.
    pub sub: String,
    pub iss: String,
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    #[serde(default)]
    pub iat: u64,
    /// Token id: for Kelvin-minted tokens, the API key id (checked for revocation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Organization id, or `"*"` for the platform operator.
    pub org: String,
    pub tenants: TenantsClaim,
    pub role: Role,
}
