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

/// When the external issuer's keys are fetched again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksRefresh {
    /// Age after which the document is fetched again before it is trusted: a key the issuer
    /// removed stops verifying within this delay.
    pub every: Duration,
    /// An unknown kid (or a failed fetch) fetches the document at most this often, so forged
    /// kids cannot hammer the issuer.
    pub unknown_kid_min: Duration,
}

impl Default for JwksRefresh {
    fn default() -> Self {
        Self { every: Duration::from_secs(300), unknown_kid_min: Duration::from_secs(30) }
    }
}

/// One verification key: exactly one algorithm.
#[derive(Clone)]
pub(crate) struct ExternalKey {
    pub(crate) algorithm: Algorithm,
    pub(crate) key: DecodingKey,
}

struct State {
    keys: HashMap<String, ExternalKey>,
    /// When `keys` were fetched.
    fetched: Instant,
    /// The last fetch attempt, and whether it failed.
    attempted: Instant,
    failed: bool,
}

/// The external issuer's keys, fetched again when stale or on an unknown kid.
pub(crate) struct ExternalKeys {
    source: JwksSource,
    refresh: JwksRefresh,
    state: RwLock<State>,
    /// Held while fetching, so concurrent verifications wait for one fetch instead of each
    /// starting their own.
    fetching: Mutex<()>,
}

impl ExternalKeys {
    pub(crate) async fn load(source: JwksSource, refresh: JwksRefresh) -> Result<Self> {
        let keys = fetch(&source).await?;
        let now = Instant::now();
        Ok(Self {
            source,
            refresh,
            state: RwLock::new(State { keys, fetched: now, attempted: now, failed: false }),
            fetching: Mutex::new(()),
        })
    }

    /// The key named `kid`. A stale document is fetched again first (keys the issuer removed are
    /// dropped); an unknown kid fetches it early, rate-limited (issuers rotate by publishing the
    /// new key first). While the issuer cannot be reached the last document is kept, and fetches
    /// are retried at the rate limit.
    pub(crate) async fn get(&self, kid: &str) -> Option<ExternalKey> {
        if matches!(self.source, JwksSource::Inline(_)) {
            return self.state.read().await.keys.get(kid).cloned();
        }
        {
            let state = self.state.read().await;
            if state.fetched.elapsed() < self.refresh.every
                && let Some(key) = state.keys.get(kid)
            {
                return Some(key.clone());
            }
        }
        let _fetching = self.fetching.lock().await;
        // Another verification may have fetched while this one waited.
        let (stale, may_fetch, known) = {
            let state = self.state.read().await;
            let stale = state.fetched.elapsed() >= self.refresh.every;
            let known = state.keys.get(kid).cloned();
            if !stale && known.is_some() {
                return known;
            }
            let rate_limited = state.attempted.elapsed() < self.refresh.unknown_kid_min;
            // A due refresh after a successful fetch is never rate-limited; an unknown kid, or a
            // retry after a failure, is.
            let may_fetch = if stale && !state.failed { true } else { !rate_limited };
            (stale, may_fetch, known)
        };
        if !may_fetch {
            // Stale but rate-limited after a failure: the last document still answers.
            return if stale { known } else { None };
        }
        let result = fetch(&self.source).await;
        let mut state = self.state.write().await;
        state.attempted = Instant::now();
        match result {
            Ok(fresh) => {
                state.keys = fresh;
                state.fetched = state.attempted;
                state.failed = false;
                state.keys.get(kid).cloned()
            }
            Err(error) => {
                tracing::warn!(%error, "cannot refresh the external issuer's JWKS; keeping the last one");
                state.failed = true;
                known
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
