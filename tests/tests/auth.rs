//! Authentication end to end: every forgery gets UNAUTHENTICATED, roles get PERMISSION_DENIED.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // tests build the timestamps a server checks from the wall clock (clippy.toml)

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kelvin_auth::{Claims, Role, TenantsClaim};
use kelvin_integration_tests::{TestApp, authed, fixtures, spawn_app};
use kelvin_proto::v1 as pb;
use tonic::Code;

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn platform_claims(jti: &str) -> Claims {
    Claims {
        sub: "mallory".into(),
        iss: "kelvin".into(),
        aud: "kelvin".into(),
        exp: now() + 600,
        iat: now(),
        jti: Some(jti.into()),
        org: "*".into(),
        tenants: TenantsClaim::All,
        role: Role::Admin,
    }
}

async fn call(app: &TestApp, token: &str) -> tonic::Status {
    app.tenants()
        .list_organizations(authed(token, pb::ListOrganizationsRequest::default()))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn forged_tokens_are_unauthenticated() {
    let app = spawn_app().await;
    let signer = &app.runtime.signer;
    let kid = signer.kid().to_owned();
    // A real, active key id: forgeries reuse it so that only the forgery itself can fail them.
    let jti = {
        let claims =
            jsonwebtoken::dangerous::insecure_decode::<Claims>(&app.admin_token).unwrap().claims;
        claims.jti.unwrap()
    };
    let pem = std::fs::read_to_string(app.runtime.config.signing_key_path()).unwrap();
    let public =
        ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).unwrap().verifying_key().to_bytes();
    let header = |alg: Algorithm, kid: &str| {
        let mut h = Header::new(alg);
        h.kid = Some(kid.to_owned());
        h
    };
    let with = |f: &dyn Fn(&mut Claims)| {
        let mut c = platform_claims(&jti);
        f(&mut c);
        signer.sign(&c).unwrap()
    };
    let other_pem = kelvin_auth::generate_ed25519_pem().unwrap();

    let forgeries: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#)),
                URL_SAFE_NO_PAD.encode(serde_json::to_vec(&platform_claims(&jti)).unwrap())
            ),
        ),
        (
            "wrong key",
            jsonwebtoken::encode(
                &header(Algorithm::EdDSA, &kid),
                &platform_claims(&jti),
                &EncodingKey::from_ed_pem(other_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        ),
        (
            "HS256 signed with the Ed25519 public key",
            jsonwebtoken::encode(
                &header(Algorithm::HS256, &kid),
                &platform_claims(&jti),
                &EncodingKey::from_secret(&public),
            )
            .unwrap(),
        ),
        ("expired", with(&|c| c.exp = now() - 3600)),
        ("wrong audience", with(&|c| c.aud = "another-service".into())),
        ("wrong issuer", with(&|c| c.iss = "evil-issuer".into())),
        (
            "unknown kid",
            jsonwebtoken::encode(
                &header(Algorithm::EdDSA, "ed-unknown"),
                &platform_claims(&jti),
                &EncodingKey::from_ed_pem(other_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        ),
        ("unknown key id (jti)", with(&|c| c.jti = Some("key-never-issued".into()))),
        ("garbage", "not.a.jwt".into()),
    ];
    // The genuine token passes, so each failure below is the forgery's.
    app.tenants()
        .list_organizations(authed(&app.admin_token, pb::ListOrganizationsRequest::default()))
        .await
        .unwrap();
    for (name, token) in forgeries {
        let status = call(&app, &token).await;
        assert_eq!(status.code(), Code::Unauthenticated, "{name}: {status:?}");
    }
    // Missing or malformed authorization metadata.
    let status = app
        .tenants()
        .list_organizations(pb::ListOrganizationsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("authorization"));
    let mut request = tonic::Request::new(pb::ListOrganizationsRequest::default());
    request.metadata_mut().insert("authorization", "Basic Zm9vOmJhcg==".parse().unwrap());
    assert_eq!(
        app.tenants().list_organizations(request).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    app.stop().await;
}

#[tokio::test]
async fn a_revoked_key_is_rejected_at_once() {
    let app = spawn_app().await;
    fixtures::org(&app, "acme").await;
    let (token, id) = fixtures::token(&app, "acme", "", pb::Role::Reader).await;
    app.tenants()
        .get_organization(authed(
            &token,
            pb::GetOrganizationRequest { organization_id: "acme".into() },
        ))
        .await
        .unwrap();
    app.tenants()
        .revoke_api_key(authed(&app.admin_token, pb::RevokeApiKeyRequest { api_key_id: id }))
        .await
        .unwrap();
    let status = app
        .tenants()
        .get_organization(authed(
            &token,
            pb::GetOrganizationRequest { organization_id: "acme".into() },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("revoked"));
    app.stop().await;
}

#[tokio::test]
async fn roles_outside_the_permission_table_are_denied() {
    let app = spawn_app().await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "acme-fr").await;
    let mut api = app.tenants();
    for role in [pb::Role::Editor, pb::Role::Ingest, pb::Role::Reader] {
        let (token, _) = fixtures::token(&app, "acme", "acme-fr", role).await;
        let status = api
            .update_tenant(authed(
                &token,
                pb::UpdateTenantRequest {
                    tenant: Some(pb::Tenant { tenant_id: "acme-fr".into(), ..Default::default() }),
                    update_mask: None,
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{role:?}");
        let read = api
            .get_tenant(authed(&token, pb::GetTenantRequest { tenant_id: "acme-fr".into() }))
            .await;
        assert_eq!(read.is_ok(), role != pb::Role::Ingest, "{role:?} reading a tenant");
    }
    app.stop().await;
}

/// Issue 16: grpcurl could not show validation errors ("google.rpc.BadRequest is not
/// recognized"): reflection serves the error-detail types, and every file they import.
#[tokio::test]
async fn reflection_serves_the_error_detail_types() {
    use prost::Message as _;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let app = spawn_app().await;
    let mut reflection = ServerReflectionClient::new(app.channel.clone());
    let mut ask = async |request: MessageRequest| {
        let request =
            ServerReflectionRequest { host: String::new(), message_request: Some(request) };
        let mut replies = reflection
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        match replies.message().await.unwrap().unwrap().message_response {
            Some(MessageResponse::FileDescriptorResponse(files)) => files
                .file_descriptor_proto
                .iter()
                .map(|b| prost_types::FileDescriptorProto::decode(b.as_slice()).unwrap())
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        }
    };
    for symbol in [
        "google.rpc.BadRequest",
        "google.rpc.RetryInfo",
        "google.rpc.ErrorInfo",
        "google.rpc.Status",
    ] {
        let files = ask(MessageRequest::FileContainingSymbol(symbol.into())).await;
        let name = symbol.rsplit('.').next().unwrap();
        let file = files
            .iter()
            .find(|f| f.message_type.iter().any(|m| m.name() == name))
            .unwrap_or_else(|| panic!("{symbol} not in {files:?}"));
        assert_eq!(file.package(), "google.rpc");
        // What grpcurl asks next: the files it imports (google/protobuf/duration.proto, ...).
        for dependency in &file.dependency {
            let files = ask(MessageRequest::FileByFilename(dependency.clone())).await;
            assert!(files.iter().any(|f| f.name() == dependency), "{dependency}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn health_and_reflection_need_no_token() {
    let app = spawn_app().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest { service: "kelvin.v1.TenantService".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(app.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("{reply:?}")
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in
        ["kelvin.v1.TenantService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"]
    {
        assert!(names.contains(&expected), "{names:?}");
    }
    app.stop().await;
}
