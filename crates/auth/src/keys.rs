//! Kelvin's own signing key: generated once, loaded from PEM (Ed25519) or a shared secret (HS256).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::DecodePrivateKey;
use hmac::{Hmac, Mac};
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
    /// Pseudo-random key extracted from the private key material (HKDF-Extract), from which
    /// [`SigningKey::derive_secret`] expands secrets for other uses; never used to sign.
    derivation: [u8; 32],
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
    Ok(ed25519_pkcs8_pem(&seed))
}

/// The DER prefix of an RFC 8410 PKCS#8 v1 Ed25519 private key: SEQUENCE { version 0,
/// AlgorithmIdentifier { 1.3.101.112 }, OCTET STRING { OCTET STRING (32 bytes) } }. Followed by
/// the 32-byte seed, it is exactly what `openssl genpkey -algorithm ed25519` writes.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// PKCS#8 v1 DER of the Ed25519 key with `seed`. The v2 form (with the public key) that the
/// `pkcs8` crate writes is refused by OpenSSL 3 and Python `cryptography`.
fn ed25519_pkcs8_der(seed: &[u8; 32]) -> Vec<u8> {
    let mut der = ED25519_PKCS8_PREFIX.to_vec();
    der.extend_from_slice(seed);
    der
}

/// PKCS#8 v1 PEM (`BEGIN PRIVATE KEY`, 64-column base64) of the Ed25519 key with `seed`.
fn ed25519_pkcs8_pem(seed: &[u8; 32]) -> String {
    let body = STANDARD.encode(ed25519_pkcs8_der(seed));
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `message` under `key`.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
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
        // Re-encoded as v1 DER: keys written as v1 (OpenSSL) or v2 (older Kelvin) sign alike.
        let encoding = EncodingKey::from_ed_der(&ed25519_pkcs8_der(&key.to_bytes()));
        let decoding = DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(public))?;
        Ok(Self {
            kid: format!("ed-{}", short_hash(&public)),
            algorithm: Algorithm::EdDSA,
            encoding,
            decoding,
            derivation: hmac_sha256(b"kelvin-key-derivation", &key.to_bytes()),
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
            derivation: hmac_sha256(b"kelvin-key-derivation", secret),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// A 32-byte secret for the use named by `label`, derived from this key's private material
    /// (HKDF-SHA256 expand of one block): distinct labels give independent secrets, and none
    /// reveals the key. It changes when the signing key is replaced.
    pub fn derive_secret(&self, label: &str) -> [u8; 32] {
        let mut info = label.as_bytes().to_vec();
        info.push(1);
        hmac_sha256(&self.derivation, &info)
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
