//! TLS on every listener (`server.tls`): a client that trusts the CA gets in, a plaintext
//! client does not, kelvinctl connects with `--ca-file`, mTLS wants a client certificate, and
//! `kelvin up` serves metrics over TLS too, with a plaintext health-only listener for probes.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use kelvin_integration_tests::process::{Running, binary, free_port};
use kelvin_integration_tests::{authed, test_config, wait_serving};
use kelvin_proto::v1 as pb;
use kelvin_server::{Application, Runtime};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// A throwaway CA, a server certificate for 127.0.0.1 and localhost, and a client certificate,
/// as PEM files in `dir`.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client_cert: String,
    client_key: String,
}

fn pki(dir: &Path) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "Kelvin test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, "kelvin test");
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &ca).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (cert, key) =
        leaf(vec!["localhost".into(), "127.0.0.1".into()], ExtendedKeyUsagePurpose::ServerAuth);
    let (client_cert, client_key) =
        leaf(vec!["client.test".into()], ExtendedKeyUsagePurpose::ClientAuth);
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca: write("ca.pem", &ca.pem()),
        cert: write("tls.crt", &cert),
        key: write("tls.key", &key),
        client_cert,
        client_key,
    }
}

/// An in-process server with `change` applied to its test configuration.
struct Server {
    addr: std::net::SocketAddr,
    token: String,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(change: impl FnOnce(&mut kelvin_config::Config)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    change(&mut config);
    let runtime = Arc::new(Runtime::start(config).await.unwrap());
    let token = runtime.bootstrap_token.clone().unwrap();
    let app = Application::build(runtime, kelvin::ALL_SERVICES).await.unwrap();
    let addr = app.local_addr();
    let task = tokio::spawn(async move {
        app.run_until_stopped(std::future::pending()).await.unwrap();
    });
    Server { addr, token, task, _dir: dir }
}

fn tls_channel(port: u16, tls: ClientTlsConfig) -> Channel {
    Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_lazy()
}

fn trusting(ca: &Path) -> ClientTlsConfig {
    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()))
}

/// Whether a health check over `channel` answers at all (within 5 s).
async fn answers(channel: Channel) -> bool {
    let mut health = HealthClient::new(channel);
    let check = health.check(HealthCheckRequest { service: String::new() });
    matches!(tokio::time::timeout(Duration::from_secs(5), check).await, Ok(Ok(_)))
}

fn kelvinctl(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(binary("kelvinctl"))
        .args(args)
        .env("KELVINCTL_CONFIG", config)
        .env_remove("KELVIN_ENDPOINT")
        .env_remove("KELVIN_TOKEN")
        .env_remove("KELVIN_CA_FILE")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_is_served_over_tls_to_clients_that_trust_the_ca_and_never_in_plaintext() {
    let certs = tempfile::tempdir().unwrap();
    let pki = pki(certs.path());
    let server = start(|c| {
        c.server.tls.cert_file = Some(pki.cert.clone());
        c.server.tls.key_file = Some(pki.key.clone());
    })
    .await;
    let port = server.addr.port();

    let channel = tls_channel(port, trusting(&pki.ca));
    wait_serving(channel.clone(), "").await;
    let mut tenants = pb::tenant_service_client::TenantServiceClient::new(channel.clone());
    tenants
        .list_organizations(authed(&server.token, pb::ListOrganizationsRequest::default()))
        .await
        .unwrap();

    // Plaintext (where a bearer token would cross the network readable) gets nothing.
    let plain = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect_lazy();
    assert!(!answers(plain).await, "a plaintext client was answered");
    // Nor does a client that does not trust the CA (public roots only).
    let public_roots = tls_channel(port, ClientTlsConfig::new().with_webpki_roots());
    assert!(!answers(public_roots).await, "a client without the CA was answered");

    // kelvinctl: --ca-file for the private CA, or the same saved in a context.
    let ctl_config = certs.path().join("kelvinctl.toml");
    let endpoint = format!("https://127.0.0.1:{port}");
    let ca = pki.ca.to_str().unwrap().to_owned();
    let token = server.token.clone();
    let (created, untrusted, via_context) = tokio::task::spawn_blocking(move || {
        let created = kelvinctl(
            &ctl_config,
            &[
                "--endpoint",
                &endpoint,
                "--token",
                &token,
                "--ca-file",
                &ca,
                "orgs",
                "create",
                "acme",
            ],
        );
        let untrusted =
            kelvinctl(&ctl_config, &["--endpoint", &endpoint, "--token", &token, "orgs", "list"]);
        let set = kelvinctl(
            &ctl_config,
            &[
                "context",
                "set",
                "tls",
                "--endpoint",
                &endpoint,
                "--token",
                &token,
                "--ca-file",
                &ca,
            ],
        );
        assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
        let via_context = kelvinctl(&ctl_config, &["-o", "json", "orgs", "list"]);
        (created, untrusted, via_context)
    })
    .await
    .unwrap();
    assert!(
        created.status.success(),
        "kelvinctl --ca-file: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(!untrusted.status.success(), "kelvinctl trusted a private CA without --ca-file");
    assert!(
        via_context.status.success(),
        "kelvinctl with the context's CA: {}",
        String::from_utf8_lossy(&via_context.stderr)
    );
    assert!(String::from_utf8_lossy(&via_context.stdout).contains("acme"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_wants_a_client_certificate_signed_by_the_client_ca() {
    let certs = tempfile::tempdir().unwrap();
    let pki = pki(certs.path());
    let server = start(|c| {
        c.server.tls.cert_file = Some(pki.cert.clone());
        c.server.tls.key_file = Some(pki.key.clone());
        c.server.tls.client_ca_file = Some(pki.ca.clone());
    })
    .await;
    let port = server.addr.port();
    let with_identity =
        trusting(&pki.ca).identity(Identity::from_pem(&pki.client_cert, &pki.client_key));
    let channel = tls_channel(port, with_identity);
    wait_serving(channel, "").await;
    assert!(
        !answers(tls_channel(port, trusting(&pki.ca))).await,
        "answered without a client certificate"
    );
}

#[tokio::test]
async fn unreadable_tls_files_stop_the_start_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let mut config = test_config(dir.path()).await;
    config.server.tls.cert_file = Some(pki.cert.clone());
    config.server.tls.key_file = Some(dir.path().join("missing.key"));
    let runtime = Arc::new(Runtime::start(config.clone()).await.unwrap());
    let err = Application::build(runtime, kelvin::ALL_SERVICES).await.err().unwrap().to_string();
    assert!(err.contains("server.tls.key_file") && err.contains("missing.key"), "{err}");

    // A key that is not PEM.
    std::fs::write(dir.path().join("bad.key"), "not a key").unwrap();
    config.server.tls.key_file = Some(dir.path().join("bad.key"));
    let runtime = Arc::new(Runtime::start(config).await.unwrap());
    let err = Application::build(runtime, kelvin::ALL_SERVICES).await.err().unwrap().to_string();
    assert!(err.contains("server.tls.key_file"), "{err}");
}

/// `GET /metrics` over `stream`; the raw response (empty if the connection failed).
async fn get_metrics<S>(mut stream: S) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = b"GET /metrics HTTP/1.1\r\nHost: kelvin\r\nConnection: close\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return String::new();
    }
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kelvin_up_serves_grpc_and_metrics_over_tls_and_health_alone_in_plaintext() {
    use tokio_rustls::rustls;
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let (port, metrics_port, health_port) = (free_port(), free_port(), free_port());
    let data = dir.path().join("data");
    let mut command = Command::new(binary("kelvin"));
    command
        .arg("up")
        .arg("--data-dir")
        .arg(&data)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env_remove("KELVIN_CONFIG")
        .env("KELVIN_SERVER__TLS__CERT_FILE", &pki.cert)
        .env("KELVIN_SERVER__TLS__KEY_FILE", &pki.key)
        .env("KELVIN_SERVER__HEALTH_LISTEN", format!("127.0.0.1:{health_port}"))
        .env("KELVIN_TELEMETRY__METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
        .stdout(Stdio::null());
    let mut server = Running::spawn(&mut command);

    // Probes (which cannot speak TLS) see health in plaintext on the health listener...
    let health =
        Channel::from_shared(format!("http://127.0.0.1:{health_port}")).unwrap().connect_lazy();
    wait_serving(health.clone(), "").await;
    // ...and nothing else there: no API call, so no token, crosses it.
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap().trim().to_owned();
    let refused = pb::tenant_service_client::TenantServiceClient::new(health)
        .list_organizations(authed(&token, pb::ListOrganizationsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unimplemented, "{refused:?}");

    let channel = tls_channel(port, trusting(&pki.ca));
    pb::tenant_service_client::TenantServiceClient::new(channel)
        .list_organizations(authed(&token, pb::ListOrganizationsRequest::default()))
        .await
        .unwrap();
    let plain = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect_lazy();
    assert!(!answers(plain).await, "gRPC answered in plaintext");

    // Metrics: over TLS with the CA, not in plaintext.
    let mut roots = rustls::RootCertStore::empty();
    let ca_pem = std::fs::read(&pki.ca).unwrap();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", metrics_port)).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let response = get_metrics(tls).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("# TYPE"), "{response}");
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", metrics_port)).await.unwrap();
    let response = get_metrics(tcp).await;
    assert!(!response.starts_with("HTTP/"), "metrics answered in plaintext: {response}");

    assert!(server.terminate().success());
}
