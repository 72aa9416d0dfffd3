//! Kelvin's own signing key: generated once, loaded from PEM (Ed25519) or a shared secret (HS256).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use sha2::{Digest, Sha256};

use crate::{Claims, Error, Result};

/// A key Kelvin signs tokens with, with its `kid` and its one algorithm.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// A fresh Ed25519 private key as PKCS#8 PEM.
pub fn generate_ed25519_pem() -> Result<String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Error::Key(format!("no randomness: {e}")))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let pem = key
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| Error::Key(format!("cannot encode key: {e}")))?;
    Ok(pem.to_string())
}

fn short_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    URL_SAFE_NO_PAD.encode(&digest[..12])
}

impl SigningKey {
    /// An Ed25519 key from PKCS#8 PEM; the kid is derived from the public key.
    pub fn ed25519_from_pem(pem: &str) -> Result<Self> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| Error::Key(format!("not a PKCS#8 Ed25519 private key: {e}")))?;
        let public = key.verifying_key().to_bytes();
        let encoding = EncodingKey::from_ed_pem(pem.as_bytes())?;
        let decoding = DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(public))?;
        Ok(Self {
            kid: format!("ed-{}", short_hash(&public)),
            algorithm: Algorithm::EdDSA,
            encoding,
            decoding,
        })
    }

    /// An HS256 key from a shared secret (at least 32 bytes).
    pub fn hs256(secret: &[u8]) -> Result<Self> {
        if secret.len() < 32 {
            return Err(Error::Key("an HS256 secret needs at least 32 bytes".into()));
        }
        // The kid must not reveal the secret: hash it with a label.
        let mut input = b"kelvin-hs256-kid:".to_vec();
        input.extend_from_slice(secret);
        Ok(Self {
            kid: format!("hs-{}", short_hash(&input)),
            algorithm: Algorithm::HS256,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub(crate) fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }

    /// Signs `claims` with this key, naming it in the `kid` header.
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }
}
