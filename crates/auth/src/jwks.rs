//! Keys of an external issuer, from a JWKS document on disk or at a URL.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::{Mutex, RwLock};

use crate::{Error, Result};

/// Where the JWKS document comes from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// A document already in memory (tests, or keys passed through a secret).
    Inline(String),
    File(PathBuf),
    Url(String),
}

/// An unknown kid triggers a refetch at most this often, so forged kids cannot hammer the issuer.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// One verification key: exactly one algorithm.
#[derive(Clone)]
pub(crate) struct ExternalKey {
    pub(crate) algorithm: Algorithm,
    pub(crate) key: DecodingKey,
}

/// The external issuer's keys, refreshed on demand.
pub(crate) struct ExternalKeys {
    source: JwksSource,
    keys: RwLock<HashMap<String, ExternalKey>>,
    last_fetch: Mutex<Instant>,
}

impl ExternalKeys {
    pub(crate) async fn load(source: JwksSource) -> Result<Self> {
        let keys = fetch(&source).await?;
        Ok(Self { source, keys: RwLock::new(keys), last_fetch: Mutex::new(Instant::now()) })
    }

    /// The key named `kid`, refetching the document (rate-limited) when it is unknown: issuers
    /// rotate keys by publishing the new one first.
    pub(crate) async fn get(&self, kid: &str) -> Option<ExternalKey> {
        if let Some(key) = self.keys.read().await.get(kid) {
            return Some(key.clone());
        }
        if matches!(self.source, JwksSource::Inline(_)) {
            return None;
        }
        let mut last = self.last_fetch.lock().await;
        if last.elapsed() < MIN_REFRESH_INTERVAL {
            return None;
        }
        *last = Instant::now();
        match fetch(&self.source).await {
            Ok(fresh) => {
                let found = fresh.get(kid).cloned();
                *self.keys.write().await = fresh;
                found
            }
            Err(error) => {
                tracing::warn!(%error, "cannot refresh the external issuer's JWKS");
                None
            }
        }
    }
}

async fn fetch(source: &JwksSource) -> Result<HashMap<String, ExternalKey>> {
    let text = match source {
        JwksSource::Inline(text) => text.clone(),
        JwksSource::File(path) => tokio::fs::read_to_string(path)
            .await
            .map_err(|e| Error::Key(format!("cannot read JWKS `{}`: {e}", path.display())))?,
        JwksSource::Url(url) => {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| Error::Key(format!("http client: {e}")))?;
            client
                .get(url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| Error::Key(format!("cannot fetch JWKS `{url}`: {e}")))?
                .text()
                .await
                .map_err(|e| Error::Key(format!("cannot read JWKS `{url}`: {e}")))?
        }
    };
    parse(&text)
}

/// Parses a JWKS document. Keys without a kid, or whose single algorithm cannot be told, are
/// refused: a key must never verify under an algorithm its owner did not intend.
pub(crate) fn parse(text: &str) -> Result<HashMap<String, ExternalKey>> {
    let set: JwkSet = serde_json::from_str(text)
        .map_err(|e| Error::Key(format!("invalid JWKS document: {e}")))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            return Err(Error::Key("a JWKS key has no kid".into()));
        };
        let algorithm = algorithm_of(jwk)
            .ok_or_else(|| Error::Key(format!("JWKS key `{kid}` has no usable algorithm")))?;
        let key = DecodingKey::from_jwk(jwk)?;
        if keys.insert(kid.clone(), ExternalKey { algorithm, key }).is_some() {
            return Err(Error::Key(format!("JWKS key id `{kid}` appears twice")));
        }
    }
    Ok(keys)
}

fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    let declared = jwk.common.key_algorithm.and_then(|a| Algorithm::try_from(a).ok());
    let implied = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Some(Algorithm::EdDSA)
        }
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        // Symmetric keys have no place in a public key set.
        AlgorithmParameters::OctetKey(_) => return None,
        _ => None,
    };
    match (declared, implied) {
        (Some(d), Some(i)) if d != i => None,
        (Some(d), _) => Some(d),
        (None, i) => i,
    }
}
