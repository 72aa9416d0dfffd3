//! The shared server: graceful drain, health following its dependencies, message limits,
//! external issuers, HS256.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // tests build the timestamps a server checks from the wall clock (clippy.toml)

use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kelvin_auth::{Claims, Role, TenantsClaim};
use kelvin_config::{ExternalIssuer, Secret, SigningAlgorithm};
use kelvin_integration_tests::process::{Running, free_port};
use kelvin_integration_tests::{
    ServingStatus, authed, fixtures, spawn_app, spawn_app_with, wait_status,
};
use kelvin_proto::v1 as pb;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;

fn list_services() -> ServerReflectionRequest {
    ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    }
}

#[tokio::test]
async fn shutdown_reports_not_serving_and_lets_in_flight_calls_finish() {
    let mut app = spawn_app().await;
    // An in-flight call: a reflection stream that stays open across the shutdown signal.
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let mut reflection = ServerReflectionClient::new(app.channel.clone());
    sender.send(list_services()).await.unwrap();
    let mut replies = reflection
        .server_reflection_info(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await
        .unwrap()
        .into_inner();
    assert!(replies.message().await.unwrap().is_some());
    // A health watcher, open across the signal too, sees NOT_SERVING.
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
    let mut watch = health
        .watch(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().status, ServingStatus::Serving as i32);

    app.signal_stop();
    assert_eq!(watch.message().await.unwrap().unwrap().status, ServingStatus::NotServing as i32);
    drop(watch);
    drop(health);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!app.is_stopped(), "the server waits for the open call");
    // The open call is still served after the signal...
    sender.send(list_services()).await.unwrap();
    assert!(replies.message().await.unwrap().is_some());
    // ...and once it ends, the server stops.
    drop(sender);
    assert!(replies.message().await.unwrap().is_none());
    drop(replies);
    drop(reflection);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !app.is_stopped() {
        assert!(tokio::time::Instant::now() < deadline, "server did not stop after draining");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}

fn start_redis(port: u16, dir: &std::path::Path) -> Running {
    Running::spawn(
        Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(dir.join("redis.log")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// Redis is a cache: killed, health stays SERVING (degraded, logged) and calls keep working from
/// the store; restarted, it is used again (issue 14, finding 8: NOT_SERVING here turned a cache
/// outage into a full outage behind the chart's readiness probe).
async fn health_stays_serving_when_redis_dies() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut redis = start_redis(port, dir.path());
    let url = format!("redis://127.0.0.1:{port}");
    // Wait until Redis accepts connections.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "redis-server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let app = spawn_app_with(|c| c.cache.redis_url = Some(Secret::new(url))).await;
    assert_eq!(app.runtime.cache.backend(), "redis");

    redis.child.kill().unwrap();
    redis.child.wait().unwrap();
    // Several probes (200 ms apart in tests) with Redis gone.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for service in ["", "kelvin.v1.TenantService"] {
        let status = tonic_health::pb::health_client::HealthClient::new(app.channel.clone())
            .check(tonic_health::pb::HealthCheckRequest { service: service.into() })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?} with Redis down");
    }
    fixtures::org(&app, "acme").await;

    let _redis = start_redis(port, dir.path());
    wait_status(app.channel.clone(), "kelvin.v1.TenantService", ServingStatus::Serving).await;
    app.stop().await;
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let app = spawn_app_with(|c| c.server.max_request_bytes = 2048).await;
    fixtures::org(&app, "acme").await;
    let status = app
        .tenants()
        .create_tenant(authed(
            &app.admin_token,
            pb::CreateTenantRequest {
                organization_id: "acme".into(),
                tenant_id: "big".into(),
                labels: (0..64).map(|i| (format!("k{i}"), "v".repeat(100))).collect(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    app.stop().await;
}

/// Serves `body` over plain HTTP on a free port, for `requests` requests, from a thread.
fn serve_http(body: String, requests: usize) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(reply.as_bytes()).unwrap();
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_document_is_fetched_from_its_url() {
    let pem = kelvin_auth::generate_ed25519_pem().unwrap();
    let public =
        ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).unwrap().verifying_key().to_bytes();
    let jwks = format!(
        r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"idp-url","alg":"EdDSA","x":"{}"}}]}}"#,
        URL_SAFE_NO_PAD.encode(public)
    );
    let url = serve_http(jwks, 1);
    let app = spawn_app_with(|c| {
        c.auth.external = Some(ExternalIssuer {
            issuer: "https://idp.example".into(),
            audience: Some("kelvin-api".into()),
            jwks_file: None,
            jwks_url: Some(url),
            jwks_refresh_seconds: 300,
            jwks_unknown_kid_refresh_seconds: 30,
        });
    })
    .await;
    fixtures::org(&app, "acme").await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("idp-url".into());
    let claims = Claims {
        sub: "bob@acme".into(),
        iss: "https://idp.example".into(),
        aud: "kelvin-api".into(),
        exp: now + 600,
        iat: now,
        jti: None,
        org: "acme".into(),
        tenants: TenantsClaim::All,
        role: Role::Reader,
    };
    let token =
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_pem(pem.as_bytes()).unwrap())
            .unwrap();
    app.tenants()
        .get_organization(authed(
            &token,
            pb::GetOrganizationRequest { organization_id: "acme".into() },
        ))
        .await
        .unwrap();
    app.stop().await;
}

#[tokio::test]
async fn tokens_of_an_external_issuer_are_trusted_through_its_jwks() {
    let dir = tempfile::tempdir().unwrap();
    let pem = kelvin_auth::generate_ed25519_pem().unwrap();
    let public =
        ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).unwrap().verifying_key().to_bytes();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(
        &jwks,
        format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"idp-2026","alg":"EdDSA","x":"{}"}}]}}"#,
            URL_SAFE_NO_PAD.encode(public)
        ),
    )
    .unwrap();
    let app = spawn_app_with(|c| {
        c.auth.external = Some(ExternalIssuer {
            issuer: "https://idp.example".into(),
            audience: None,
            jwks_file: Some(jwks),
            jwks_url: None,
            jwks_refresh_seconds: 300,
            jwks_unknown_kid_refresh_seconds: 30,
        });
    })
    .await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "acme-fr").await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("idp-2026".into());
    let claims = Claims {
        sub: "alice@acme".into(),
        iss: "https://idp.example".into(),
        aud: "kelvin".into(),
        exp: now + 600,
        iat: now,
        jti: None,
        org: "acme".into(),
        tenants: TenantsClaim::Only(vec!["acme-fr".into()]),
        role: Role::Reader,
    };
    let token =
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_pem(pem.as_bytes()).unwrap())
            .unwrap();
    let tenant = app
        .tenants()
        .get_tenant(authed(&token, pb::GetTenantRequest { tenant_id: "acme-fr".into() }))
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    assert_eq!(tenant.organization_id, "acme");
    // Same key, Kelvin's issuer: refused.
    let forged = jsonwebtoken::encode(
        &header,
        &Claims { iss: "kelvin".into(), ..claims },
        &EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let status = app
        .tenants()
        .get_tenant(authed(&forged, pb::GetTenantRequest { tenant_id: "acme-fr".into() }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    app.stop().await;
}

#[tokio::test]
async fn hs256_deployments_bootstrap_and_verify() {
    let app = spawn_app_with(|c| {
        c.auth.signing_algorithm = SigningAlgorithm::HS256;
        c.auth.hs256_secret = Some(Secret::new("a-shared-secret-of-at-least-32-bytes!"));
    })
    .await;
    assert_eq!(app.runtime.signer.algorithm(), Algorithm::HS256);
    fixtures::org(&app, "acme").await;
    let (token, _) = fixtures::token(&app, "acme", "", pb::Role::Reader).await;
    app.tenants()
        .get_organization(authed(
            &token,
            pb::GetOrganizationRequest { organization_id: "acme".into() },
        ))
        .await
        .unwrap();
    app.stop().await;
}
