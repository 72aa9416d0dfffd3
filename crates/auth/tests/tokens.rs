//! Minting and strict verification of tokens, and the forgeries that must fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)] // tests build the timestamps a server checks from the wall clock (clippy.toml)

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kelvin_auth::{
    Claims, JwksSource, OrgReach, Role, SigningKey, TenantReach, TenantsClaim, TokenOrigin,
    Verifier, generate_ed25519_pem,
};

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn claims() -> Claims {
    Claims {
        sub: "alice".into(),
        iss: "kelvin".into(),
        aud: "kelvin".into(),
        exp: now() + 600,
        iat: now(),
        jti: Some("key-1".into()),
        org: "acme".into(),
        tenants: TenantsClaim::Only(vec!["acme-fr".into()]),
        role: Role::Editor,
    }
}

fn setup() -> (String, SigningKey, Verifier) {
    let pem = generate_ed25519_pem().unwrap();
    let key = SigningKey::ed25519_from_pem(&pem).unwrap();
    let verifier = Verifier::new("kelvin", "kelvin").with_key(&key);
    (pem, key, verifier)
}

async fn rejected(verifier: &Verifier, token: &str) -> String {
    match verifier.verify(token).await {
        Ok(v) => panic!("token accepted: {v:?}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_minted_token_verifies_into_its_principal() {
    let (_, key, verifier) = setup();
    let token = key.sign(&claims()).unwrap();
    let verified = verifier.verify(&token).await.unwrap();
    assert_eq!(verified.origin, TokenOrigin::Kelvin);
    let p = verified.principal;
    assert_eq!(p.actor(), "alice");
    assert_eq!(p.org(), &OrgReach::Org("acme".into()));
    assert_eq!(p.tenants(), &TenantReach::Only(vec!["acme-fr".into()]));
    assert_eq!(p.role(), Role::Editor);
    assert_eq!(p.api_key_id(), Some("key-1"));
    assert!(p.reaches_tenant("acme", "acme-fr"));
    assert!(!p.reaches_tenant("acme", "acme-de"));
    assert!(!p.reaches_tenant("other", "acme-fr"));
    assert!(!p.is_org_wide("acme"));
}

#[tokio::test]
async fn hs256_keys_work_too() {
    let key = SigningKey::hs256(&[7u8; 32]).unwrap();
    let verifier = Verifier::new("kelvin", "kelvin").with_key(&key);
    let token = key.sign(&claims()).unwrap();
    assert!(verifier.verify(&token).await.is_ok());
    assert!(SigningKey::hs256(b"short").is_err());
}

#[tokio::test]
async fn forgeries_are_rejected() {
    let (pem, key, verifier) = setup();
    // alg none.
    let header =
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#, key.kid()));
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
    rejected(&verifier, &format!("{header}.{body}.")).await;
    // Another Ed25519 key claiming our kid.
    let other = SigningKey::ed25519_from_pem(&generate_ed25519_pem().unwrap()).unwrap();
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(key.kid().into());
    let forged = jsonwebtoken::encode(
        &h,
        &claims(),
        &EncodingKey::from_ed_pem(generate_ed25519_pem().unwrap().as_bytes()).unwrap(),
    )
    .unwrap();
    assert!(rejected(&verifier, &forged).await.contains("signature"));
    let _ = other;
    // HS256 signed with the Ed25519 public key (algorithm confusion).
    let public =
        ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).unwrap().verifying_key().to_bytes();
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some(key.kid().into());
    let forged = jsonwebtoken::encode(&h, &claims(), &EncodingKey::from_secret(&public)).unwrap();
    assert!(rejected(&verifier, &forged).await.contains("algorithm"));
    // Expired, wrong audience, wrong issuer.
    let mut c = claims();
    c.exp = now() - 3600;
    assert!(rejected(&verifier, &key.sign(&c).unwrap()).await.contains("expired"));
    let mut c = claims();
    c.aud = "someone-else".into();
    assert!(rejected(&verifier, &key.sign(&c).unwrap()).await.contains("audience"));
    let mut c = claims();
    c.iss = "evil".into();
    assert!(rejected(&verifier, &key.sign(&c).unwrap()).await.contains("issuer"));
    // Unknown kid; no kid.
    let token = other.sign(&claims()).unwrap();
    assert!(rejected(&verifier, &token).await.contains("unknown key id"));
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = None;
    let token =
        jsonwebtoken::encode(&h, &claims(), &EncodingKey::from_ed_pem(pem.as_bytes()).unwrap())
            .unwrap();
    assert!(rejected(&verifier, &token).await.contains("kid"));
    // Missing sub; garbage; a Kelvin token without jti; a platform token limited to tenants.
    let mut value = serde_json::to_value(claims()).unwrap();
    value.as_object_mut().unwrap().remove("sub");
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(key.kid().into());
    let token =
        jsonwebtoken::encode(&h, &value, &EncodingKey::from_ed_pem(pem.as_bytes()).unwrap())
            .unwrap();
    rejected(&verifier, &token).await;
    rejected(&verifier, "not-a-jwt").await;
    let mut c = claims();
    c.jti = None;
    assert!(rejected(&verifier, &key.sign(&c).unwrap()).await.contains("jti"));
    let mut c = claims();
    c.org = "*".into();
    assert!(rejected(&verifier, &key.sign(&c).unwrap()).await.contains("platform"));
}

#[tokio::test]
async fn an_external_issuer_is_trusted_through_its_jwks() {
    let (_, own, _) = setup();
    let pem = generate_ed25519_pem().unwrap();
    let public =
        ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).unwrap().verifying_key().to_bytes();
    let jwks = format!(
        r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"idp-1","alg":"EdDSA","x":"{}"}}]}}"#,
        URL_SAFE_NO_PAD.encode(public)
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, &jwks).unwrap();
    let verifier = Verifier::new("kelvin", "kelvin")
        .with_key(&own)
        .with_external_issuer("https://idp.example", "kelvin", JwksSource::File(path))
        .await
        .unwrap();
    let mut c = claims();
    c.iss = "https://idp.example".into();
    c.jti = None;
    c.tenants = TenantsClaim::All;
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some("idp-1".into());
    let token =
        jsonwebtoken::encode(&h, &c, &EncodingKey::from_ed_pem(pem.as_bytes()).unwrap()).unwrap();
    let verified = verifier.verify(&token).await.unwrap();
    assert_eq!(verified.origin, TokenOrigin::External);
    assert!(verified.principal.is_org_wide("acme"));
    // The external key does not accept Kelvin's issuer, nor Kelvin's key the external one.
    c.iss = "kelvin".into();
    let token =
        jsonwebtoken::encode(&h, &c, &EncodingKey::from_ed_pem(pem.as_bytes()).unwrap()).unwrap();
    assert!(rejected(&verifier, &token).await.contains("issuer"));
    // A JWKS key with an algorithm contradicting its curve is refused.
    let bad = jwks.replace(r#""alg":"EdDSA""#, r#""alg":"ES256""#);
    assert!(
        Verifier::new("kelvin", "kelvin")
            .with_external_issuer("x", "kelvin", JwksSource::Inline(bad))
            .await
            .is_err()
    );
}
