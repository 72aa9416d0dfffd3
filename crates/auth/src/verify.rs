//! Token verification.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::jwks::ExternalKeys;
use crate::{
    Claims, Error, JwksRefresh, JwksSource, OrgReach, Principal, Result, SigningKey, TenantReach,
    TenantsClaim,
};

/// Who issued a verified token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOrigin {
    /// Minted by Kelvin: an API key, checked for revocation by the caller of [`Verifier::verify`].
    Kelvin,
    /// Minted by the trusted external issuer.
    External,
}

/// A verified token.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub principal: Principal,
    pub origin: TokenOrigin,
}

struct Trust {
    issuer: String,
    audience: String,
}

/// Verifies bearer tokens against Kelvin's keys and, optionally, one external issuer.
pub struct Verifier {
    own: Trust,
    own_keys: HashMap<String, (Algorithm, DecodingKey)>,
    external: Option<(Trust, ExternalKeys)>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.own.issuer)
            .field("kids", &self.own_keys.keys().collect::<Vec<_>>())
            .field("external", &self.external.as_ref().map(|(t, _)| &t.issuer))
            .finish()
    }
}

impl Verifier {
    /// A verifier for Kelvin's own tokens with `issuer` and `audience`.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            own: Trust { issuer: issuer.into(), audience: audience.into() },
            own_keys: HashMap::new(),
            external: None,
        }
    }

    /// Trusts tokens signed by `key` (add the previous key too while rotating).
    pub fn with_key(mut self, key: &SigningKey) -> Self {
        self.own_keys.insert(key.kid().to_owned(), (key.algorithm(), key.decoding().clone()));
        self
    }

    /// Trusts an external issuer's keys from a JWKS document, refreshed by default every five
    /// minutes.
    pub async fn with_external_issuer(
        self,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks: JwksSource,
    ) -> Result<Self> {
        self.with_external_issuer_refreshing(issuer, audience, jwks, JwksRefresh::default()).await
    }

    /// Trusts an external issuer's keys from a JWKS document, fetched again as `refresh` says.
    pub async fn with_external_issuer_refreshing(
        mut self,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks: JwksSource,
        refresh: JwksRefresh,
    ) -> Result<Self> {
        let keys = ExternalKeys::load(jwks, refresh).await?;
        self.external = Some((Trust { issuer: issuer.into(), audience: audience.into() }, keys));
        Ok(self)
    }

    /// Verifies `token` (without the `Bearer ` prefix). Errors carry a message safe to return.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| invalid("malformed token or unsupported algorithm"))?;
        let kid = header.kid.as_deref().ok_or_else(|| invalid("token has no kid"))?;
        let (trust, algorithm, key, origin) = if let Some((alg, key)) = self.own_keys.get(kid) {
            (&self.own, *alg, key.clone(), TokenOrigin::Kelvin)
        } else if let Some((trust, keys)) = &self.external {
            let found = keys.get(kid).await.ok_or_else(|| invalid("unknown key id"))?;
            (trust, found.algorithm, found.key, TokenOrigin::External)
        } else {
            return Err(invalid("unknown key id"));
        };
        if header.alg != algorithm {
            return Err(invalid("token algorithm does not match its key"));
        }
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&trust.issuer]);
        validation.set_audience(&[&trust.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            invalid(match e.kind() {
                ErrorKind::ExpiredSignature => "token expired",
                ErrorKind::ImmatureSignature => "token not valid yet",
                ErrorKind::InvalidIssuer => "token issuer not trusted",
                ErrorKind::InvalidAudience => "token audience not accepted",
                ErrorKind::InvalidSignature => "token signature invalid",
                ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim",
                ErrorKind::Json(_) => "token claims invalid",
                _ => "token invalid",
            })
        })?;
        let claims = data.claims;
        if claims.sub.is_empty() {
            return Err(invalid("token subject is empty"));
        }
        let org = match claims.org.as_str() {
            "" => return Err(invalid("token names no organization")),
            "*" => OrgReach::Platform,
            org => OrgReach::Org(org.to_owned()),
        };
        let tenants = match claims.tenants {
            TenantsClaim::All => TenantReach::All,
            TenantsClaim::Only(list) => TenantReach::Only(list),
        };
        if org == OrgReach::Platform && tenants != TenantReach::All {
            return Err(invalid("a platform token must reach every tenant"));
        }
        let api_key_id = match origin {
            TokenOrigin::Kelvin => Some(
                claims.jti.filter(|j| !j.is_empty()).ok_or_else(|| invalid("token has no jti"))?,
            ),
            TokenOrigin::External => None,
        };
        Ok(VerifiedToken {
            principal: Principal::new(claims.sub, org, tenants, claims.role, api_key_id),
            origin,
        })
    }
}

fn invalid(message: &str) -> Error {
    Error::InvalidToken(message.to_owned())
}
