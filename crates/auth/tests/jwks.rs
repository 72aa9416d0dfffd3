//! The external issuer's keys follow its JWKS document: fetched again when stale (removed keys
//! stop verifying) and early on an unknown kid, rate-limited.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)] // tests build the timestamps a server checks from the wall clock (clippy.toml)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kelvin_auth::{
    Claims, JwksRefresh, JwksSource, Role, TenantsClaim, Verifier, generate_ed25519_pem,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An issuer key: its private PEM and its kid.
struct IdpKey {
    pem: String,
    kid: &'static str,
}

impl IdpKey {
    fn new(kid: &'static str) -> Self {
        Self { pem: generate_ed25519_pem().unwrap(), kid }
    }

    fn jwk(&self) -> String {
        let public = ed25519_dalek::SigningKey::from_pkcs8_pem(&self.pem)
            .unwrap()
            .verifying_key()
            .to_bytes();
        format!(
            r#"{{"kty":"OKP","crv":"Ed25519","kid":"{}","alg":"EdDSA","x":"{}"}}"#,
            self.kid,
            URL_SAFE_NO_PAD.encode(public)
        )
    }

    fn token(&self) -> String {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let claims = Claims {
            sub: "alice@acme".into(),
            iss: "https://idp.example".into(),
            aud: "kelvin".into(),
            exp: now + 600,
            iat: now,
            jti: None,
            org: "acme".into(),
            tenants: TenantsClaim::All,
            role: Role::Reader,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.into());
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_ed_pem(self.pem.as_bytes()).unwrap(),
        )
        .unwrap()
    }
}

fn jwks(keys: &[&IdpKey]) -> String {
    format!(r#"{{"keys":[{}]}}"#, keys.iter().map(|k| k.jwk()).collect::<Vec<_>>().join(","))
}

/// A local HTTP server answering every request with the current document, counting requests.
struct Issuer {
    url: String,
    document: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
}

impl Issuer {
    async fn start(document: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
        let document = Arc::new(Mutex::new(document));
        let hits = Arc::new(AtomicUsize::new(0));
        let (doc, count) = (document.clone(), hits.clone());
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let (doc, count) = (doc.clone(), count.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    let body = doc.lock().unwrap().clone();
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { url, document, hits }
    }

    fn publish(&self, document: String) {
        *self.document.lock().unwrap() = document;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn verifier(source: JwksSource, refresh: JwksRefresh) -> Verifier {
    Verifier::new("kelvin", "kelvin")
        .with_external_issuer_refreshing("https://idp.example", "kelvin", source, refresh)
        .await
        .unwrap()
}

async fn refused(verifier: &Verifier, token: &str) -> String {
    match verifier.verify(token).await {
        Ok(v) => panic!("token accepted: {v:?}"),
        Err(e) => e.to_string(),
    }
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn a_stale_document_is_fetched_again_and_removed_keys_stop_verifying() {
    let (old, new) = (IdpKey::new("idp-old"), IdpKey::new("idp-new"));
    let issuer = Issuer::start(jwks(&[&old])).await;
    let refresh = JwksRefresh { every: Duration::from_millis(300), unknown_kid_min: HOUR };
    let verifier = verifier(JwksSource::Url(issuer.url.clone()), refresh).await;
    verifier.verify(&old.token()).await.unwrap();

    // The issuer rotates: the old key is removed. Once the document is stale it is fetched
    // again (a stale document is never rate-limited) and the old key is refused.
    issuer.publish(jwks(&[&new]));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(refused(&verifier, &old.token()).await.contains("unknown key id"));
    assert!(issuer.hits() >= 2);
    verifier.verify(&new.token()).await.unwrap();
}

#[tokio::test]
async fn an_unknown_kid_fetches_the_document_early_at_most_once_per_interval() {
    let (old, new, newer) = (IdpKey::new("idp-1"), IdpKey::new("idp-2"), IdpKey::new("idp-3"));
    let issuer = Issuer::start(jwks(&[&old])).await;
    let refresh = JwksRefresh { every: HOUR, unknown_kid_min: HOUR };
    let verifier = verifier(JwksSource::Url(issuer.url.clone()), refresh).await;
    // The start-up fetch was less than an interval ago: a kid published since waits.
    issuer.publish(jwks(&[&new]));
    assert!(refused(&verifier, &new.token()).await.contains("unknown key id"));
    assert_eq!(issuer.hits(), 1, "rate-limited: the start-up fetch was less than an interval ago");

    let refresh = JwksRefresh { every: HOUR, unknown_kid_min: Duration::ZERO };
    let issuer = Issuer::start(jwks(&[&old])).await;
    let verifier = self::verifier(JwksSource::Url(issuer.url.clone()), refresh).await;
    issuer.publish(jwks(&[&new]));
    verifier.verify(&new.token()).await.unwrap();
    assert_eq!(issuer.hits(), 2, "the unknown kid fetched the document");
    // The fetched document replaced the old one: the removed key is gone at once.
    assert!(refused(&verifier, &old.token()).await.contains("unknown key id"));

    // Forged kids cannot make Kelvin fetch more than once per interval.
    let refresh = JwksRefresh { every: HOUR, unknown_kid_min: Duration::from_secs(2) };
    let issuer = Issuer::start(jwks(&[&old])).await;
    let verifier = self::verifier(JwksSource::Url(issuer.url.clone()), refresh).await;
    tokio::time::sleep(Duration::from_millis(2050)).await;
    issuer.publish(jwks(&[&old, &newer]));
    for _ in 0..5 {
        assert!(
            refused(&verifier, &IdpKey::new("forged").token()).await.contains("unknown key id")
        );
    }
    assert_eq!(issuer.hits(), 2, "one early fetch for five forged kids");
    // That fetch brought the newer key: it verifies without another fetch.
    verifier.verify(&newer.token()).await.unwrap();
    assert_eq!(issuer.hits(), 2);
}

#[tokio::test]
async fn a_jwks_file_changed_on_disk_is_read_again_when_stale() {
    let (old, new) = (IdpKey::new("file-old"), IdpKey::new("file-new"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(&[&old])).unwrap();
    let refresh = JwksRefresh { every: Duration::from_millis(300), unknown_kid_min: HOUR };
    let verifier = verifier(JwksSource::File(path.clone()), refresh).await;
    verifier.verify(&old.token()).await.unwrap();
    std::fs::write(&path, jwks(&[&new])).unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(refused(&verifier, &old.token()).await.contains("unknown key id"));
    verifier.verify(&new.token()).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_issuer_keeps_the_last_document() {
    let key = IdpKey::new("idp-1");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(&[&key])).unwrap();
    let refresh = JwksRefresh { every: Duration::from_millis(300), unknown_kid_min: HOUR };
    let verifier = verifier(JwksSource::File(path.clone()), refresh).await;
    std::fs::remove_file(&path).unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    // The fetch fails: nothing says the key was removed, so it still verifies.
    verifier.verify(&key.token()).await.unwrap();
}
