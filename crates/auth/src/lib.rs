//! Who is calling, and what they may do.
//!
//! Tokens are JWTs carried as `authorization: Bearer <jwt>`. Kelvin mints its own with a
//! configured key (Ed25519 preferred, HS256 allowed) and can trust an external issuer's keys from
//! a JWKS document. Verification is strict: the key is chosen by `kid`, each key has exactly one
//! algorithm, and `exp`, `iss`, `aud` and `sub` are required. A verified token becomes a
//! [`Principal`], the only way the rest of Kelvin learns who the caller is.

mod claims;
mod jwks;
mod keys;
mod permissions;
mod principal;
mod verify;

pub use claims::{Claims, TenantsClaim};
pub use jwks::{JwksRefresh, JwksSource};
pub use keys::{SigningKey, generate_ed25519_pem};
pub use permissions::{PERMISSIONS, Permission, permission_for};
pub use principal::{OrgReach, Principal, Role, TenantReach};
pub use verify::{TokenOrigin, VerifiedToken, Verifier};

/// Why a token or key was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The token is missing, malformed, forged, expired or otherwise unacceptable. The message is
    /// safe to return to the caller.
    #[error("{0}")]
    InvalidToken(String),
    /// A key or JWKS document could not be loaded.
    #[error("key material: {0}")]
    Key(String),
    #[error("jwt: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
