//! The binaries as users and Kubernetes run them: `kelvin up` on a fresh data directory, each
//! service binary alone, `migrate`, `--dump-config`, SIGTERM, and clients in other languages.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // tests build the timestamps a server checks from the wall clock (clippy.toml)

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kelvin_integration_tests::process::{Running, binary, free_port};
use kelvin_integration_tests::{Backend, authed, backend, fresh_database_url, wait_serving};
use kelvin_proto::v1 as pb;
use tonic::transport::Channel;

/// Backend settings for a spawned process: the database URL flag and, with PostgreSQL, Redis.
async fn backend_env(dir: &Path, command: &mut Command) {
    command.arg("--database-url").arg(fresh_database_url(dir).await);
    if backend() == Backend::Postgres {
        command
            .env("KELVIN_CACHE__REDIS_URL", std::env::var("KELVIN_TEST_REDIS_URL").unwrap())
            .env(
                "KELVIN_CACHE__KEY_PREFIX",
                format!("kelvin-test-{}", uuid::Uuid::new_v4().simple()),
            );
    }
}

fn repo_root() -> PathBuf {
    std::env::var("KELVIN_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

fn python() -> PathBuf {
    PathBuf::from(std::env::var("KELVIN_TEST_PYTHON").expect(
        "KELVIN_TEST_PYTHON is not set: run the suite with `cargo xtask test`, which installs the Python client tools",
    ))
}

async fn connect(port: u16) -> Channel {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect_lazy();
    wait_serving(channel.clone(), "").await;
    channel
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kelvin_up_bootstraps_once_serves_clients_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut command = Command::new(binary("kelvin"));
    command
        .arg("up")
        .arg("--data-dir")
        .arg(&data)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env_remove("KELVIN_CONFIG")
        .stdout(Stdio::piped());
    if backend() == Backend::Postgres {
        backend_env(dir.path(), &mut command).await;
    }
    let mut server = Running::spawn(&mut command);
    let stdout = server.child.stdout.take().unwrap();
    let token = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("eyJ"))
            .expect("the first start prints the admin token")
    })
    .await
    .unwrap();
    let channel = connect(port).await;

    // The token is also in a file only its owner can read.
    let file = data.join("admin-token");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(data.join("signing-key.pem")).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The generated key is standard PKCS#8: operators' tools read it.
    let pkey = Command::new("openssl")
        .args(["pkey", "-noout", "-in"])
        .arg(data.join("signing-key.pem"))
        .output()
        .unwrap();
    assert!(pkey.status.success(), "openssl pkey: {}", String::from_utf8_lossy(&pkey.stderr));

    // A Python client generated from proto/ creates and lists resources (reflection v1alpha too).
    let output = Command::new(python())
        .arg(repo_root().join("tests/python/client_test.py"))
        .arg(format!("127.0.0.1:{port}"))
        .arg(&token)
        .arg(repo_root().join("proto"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python client failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // grpcurl lists the services through reflection.
    let grpcurl = python().parent().unwrap().join("grpcurl");
    let output = Command::new(&grpcurl)
        .args(["-plaintext", &format!("127.0.0.1:{port}"), "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "grpcurl: {}", String::from_utf8_lossy(&output.stderr));
    // grpcurl 1.8 speaks reflection v1alpha; v1 is checked by the Rust client in auth.rs.
    for service in [
        "kelvin.v1.TenantService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(listed.contains(service), "grpcurl list: {listed}");
    }

    let mut api = pb::tenant_service_client::TenantServiceClient::new(channel.clone());
    let orgs = api
        .list_organizations(authed(&token, pb::ListOrganizationsRequest::default()))
        .await
        .unwrap();
    assert_eq!(orgs.into_inner().organizations.len(), 1, "the Python client's organization");
    drop(api);
    drop(channel);

    let status = server.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");

    // A second start keeps the key and the token, and prints no new token.
    let mut server = Running::spawn(command.stdout(Stdio::piped()));
    let channel = connect(port).await;
    let mut api = pb::tenant_service_client::TenantServiceClient::new(channel);
    api.list_organizations(authed(&token, pb::ListOrganizationsRequest::default())).await.unwrap();
    // `kelvin admin-token` mints another with the same data directory and store.
    let same_store: Vec<std::ffi::OsString> =
        command.get_args().skip(1).map(ToOwned::to_owned).collect();
    let output = Command::new(binary("kelvin"))
        .arg("admin-token")
        .args(&same_store)
        .args(["--ttl", "1h"])
        .env_remove("KELVIN_CONFIG")
        .output()
        .unwrap();
    let (second, _) = minted(&output);
    api.list_organizations(authed(&second, pb::ListOrganizationsRequest::default())).await.unwrap();
    assert!(server.terminate().success());
    let mut printed = String::new();
    std::io::Read::read_to_string(&mut server.child.stdout.take().unwrap(), &mut printed).unwrap();
    assert!(!printed.contains("eyJ"), "the token is shown once: {printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_binary_runs_alone_after_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let key = kelvin_auth::generate_ed25519_pem().unwrap();
    let url = fresh_database_url(dir.path()).await;
    // Serving on an unmigrated schema is refused with a clear message.
    let refused = Command::new(binary("kelvin-rules"))
        .args(["serve", "--database-url", &url, "--listen", "127.0.0.1:0"])
        .env("KELVIN_AUTH__SIGNING_KEY", &key)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("migrate"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let migrated = Command::new(binary("kelvin-rules"))
        .args(["migrate", "--database-url", &url])
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let again = Command::new(binary("kelvin-rules"))
        .args(["migrate", "--database-url", &url])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("applied 0 migrations"));

    for (name, service) in [
        ("kelvin-rules", "kelvin.v1.TenantService"),
        ("kelvin-ingest", "kelvin.v1.IngestService"),
        ("kelvin-scoring", ""),
    ] {
        let port = free_port();
        let mut command = Command::new(binary(name));
        command
            .args(["serve", "--database-url", &url, "--listen", &format!("127.0.0.1:{port}")])
            .env("KELVIN_AUTH__SIGNING_KEY", &key);
        if backend() == Backend::Postgres {
            command.env("KELVIN_CACHE__REDIS_URL", std::env::var("KELVIN_TEST_REDIS_URL").unwrap());
        }
        let mut server = Running::spawn(&mut command);
        let channel = connect(port).await;
        wait_serving(channel.clone(), service).await;
        drop(channel);
        let status = server.terminate();
        assert!(status.success(), "{name} after SIGTERM: {status:?}");
    }
}

#[test]
fn dump_config_shows_layers_and_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kelvin.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:7000\"\n[cache]\nkey_prefix = \"from-file\"\n")
        .unwrap();
    let output = Command::new(binary("kelvin-scoring"))
        .arg("--dump-config")
        .arg("--config")
        .arg(&file)
        .args(["--database-url", "postgres://kelvin:s3cret@db/kelvin"])
        .env("KELVIN_CACHE__REDIS_URL", "redis://:hunter2@cache:6379")
        .env("KELVIN_CACHE__KEY_PREFIX", "from-env")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let dump = String::from_utf8(output.stdout).unwrap();
    assert!(dump.contains("127.0.0.1:7000"), "{dump}");
    assert!(dump.contains("from-env"), "{dump}");
    assert!(!dump.contains("s3cret") && !dump.contains("hunter2"), "{dump}");
    assert!(dump.contains("[redacted]"), "{dump}");
}

/// A typo in the config file stops a service at start-up, naming the key and the file, instead
/// of serving with the default the operator meant to change.
#[test]
fn a_typo_in_the_config_file_stops_the_binary_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kelvin.toml");
    // Otherwise valid: without the typo check it would migrate and serve.
    std::fs::write(&file, "migrate_on_start = true\n[auth]\ngenerate_missing_key = true\n[ingest]\nmax_batches = 10\n").unwrap();
    let mut child = Command::new(binary("kelvin-scoring"))
        .arg("--config")
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .env_remove("KELVIN_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded only for the failure this test guards against: a server that starts anyway.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kelvin-scoring started despite an unknown key in its config file");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("unknown key `ingest.max_batches`"), "{stderr}");
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
}

/// `kelvin-rules admin-token` run against the store and key the servers use, with its config.
fn admin_token_command(url: &str, key: &str, args: &[&str]) -> std::process::Output {
    Command::new(binary("kelvin-rules"))
        .args(["admin-token", "--database-url", url])
        .args(args)
        .env("KELVIN_AUTH__SIGNING_KEY", key)
        .env_remove("KELVIN_CONFIG")
        .output()
        .unwrap()
}

/// The printed token (the only line on stdout) and the key id named on stderr.
fn minted(output: &std::process::Output) -> (String, String) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "admin-token failed: {stderr}");
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout holds the token alone: {stdout}");
    assert!(lines[0].starts_with("eyJ"), "{stdout}");
    let key_id = stderr
        .split_whitespace()
        .find(|w| w.starts_with("key-"))
        .unwrap_or_else(|| panic!("no key id on stderr: {stderr}"))
        .to_owned();
    (lines[0].to_owned(), key_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_gives_an_operator_key_its_first_revocable_audited_token() {
    use tonic::Code;
    let dir = tempfile::tempdir().unwrap();
    let key = kelvin_auth::generate_ed25519_pem().unwrap();
    let url = fresh_database_url(dir.path()).await;

    // Not before the schema exists, never without the servers' key.
    let early = admin_token_command(&url, &key, &[]);
    assert!(!early.status.success());
    assert!(String::from_utf8_lossy(&early.stderr).contains("migrate"));
    let migrated = Command::new(binary("kelvin-rules"))
        .args(["migrate", "--database-url", &url])
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let keyless = Command::new(binary("kelvin-rules"))
        .args(["admin-token", "--database-url", &url, "--data-dir"])
        .arg(dir.path().join("empty"))
        .env_remove("KELVIN_AUTH__SIGNING_KEY")
        .env_remove("KELVIN_CONFIG")
        .output()
        .unwrap();
    assert!(!keyless.status.success());
    assert!(String::from_utf8_lossy(&keyless.stderr).contains("no signing key"));
    assert!(!dir.path().join("empty/signing-key.pem").exists(), "no key is generated");

    let (platform, platform_key) = minted(&admin_token_command(&url, &key, &["--ttl", "1h"]));

    let port = free_port();
    let mut command = Command::new(binary("kelvin-rules"));
    command
        .args(["serve", "--database-url", &url, "--listen", &format!("127.0.0.1:{port}")])
        .env("KELVIN_AUTH__SIGNING_KEY", &key)
        .env_remove("KELVIN_CONFIG");
    if backend() == Backend::Postgres {
        command.env("KELVIN_CACHE__REDIS_URL", std::env::var("KELVIN_TEST_REDIS_URL").unwrap());
    }
    let mut server = Running::spawn(&mut command);
    let mut api = pb::tenant_service_client::TenantServiceClient::new(connect(port).await);

    // The platform token works: it creates an organization.
    api.create_organization(authed(
        &platform,
        pb::CreateOrganizationRequest {
            organization_id: "acme".into(),
            display_name: "Acme".into(),
            request_id: String::new(),
        },
    ))
    .await
    .unwrap();

    // An organization token reaches that organization only; an unknown one is refused.
    let (org_token, org_key) =
        minted(&admin_token_command(&url, &key, &["--org", "acme", "--ttl", "2h"]));
    let get = |org: &str| pb::GetOrganizationRequest { organization_id: org.into() };
    api.get_organization(authed(&org_token, get("acme"))).await.unwrap();
    let other = api
        .create_organization(authed(
            &org_token,
            pb::CreateOrganizationRequest {
                organization_id: "other".into(),
                display_name: "Other".into(),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::PermissionDenied, "{other:?}");
    let missing = admin_token_command(&url, &key, &["--org", "nope"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope"));

    // Both keys are audited like any key, with the operator as actor.
    let audit = api
        .list_audit_events(authed(
            &platform,
            pb::ListAuditEventsRequest {
                organization_id: "acme".into(),
                action: "api_key.create".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(audit.audit_events.len(), 1, "{audit:?}");
    assert_eq!(audit.audit_events[0].resource, format!("apiKeys/{org_key}"));
    assert!(audit.audit_events[0].actor.starts_with("operator:"), "{audit:?}");

    // A token signed with the right key but naming a key this server never issued is refused
    // as such, not as "revoked or expired".
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let forged = kelvin_auth::SigningKey::ed25519_from_pem(&key)
        .unwrap()
        .sign(&kelvin_auth::Claims {
            sub: "me".into(),
            iss: "kelvin".into(),
            aud: "kelvin".into(),
            exp: now + 600,
            iat: now,
            jti: Some("key-made-up".into()),
            org: "*".into(),
            tenants: kelvin_auth::TenantsClaim::All,
            role: kelvin_auth::Role::Admin,
        })
        .unwrap();
    let refused = api
        .list_organizations(authed(&forged, pb::ListOrganizationsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(refused.message().contains("not issued by this server"), "{refused:?}");

    // Revoked, the tokens are refused.
    for (token, key_id) in [(&org_token, &org_key), (&platform, &platform_key)] {
        api.revoke_api_key(authed(
            &platform,
            pb::RevokeApiKeyRequest { api_key_id: key_id.clone() },
        ))
        .await
        .unwrap();
        let refused = api.get_organization(authed(token, get("acme"))).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated);
        assert!(refused.message().contains("revoked"), "{refused:?}");
    }
    drop(api);
    assert!(server.terminate().success());
}

/// Starts `kelvin up` on a data directory it creates, with stderr to `log`, and waits until it
/// serves.
async fn kelvin_up_logging_to(data: &Path, log: &Path) -> Running {
    let port = free_port();
    let child = Command::new(binary("kelvin"))
        .arg("up")
        .arg("--data-dir")
        .arg(data)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env_remove("KELVIN_CONFIG")
        .env_remove("KELVIN_DATABASE_URL")
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let server = Running { child };
    connect(port).await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kelvin_up_keeps_its_data_directory_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = kelvin_up_logging_to(&data, &dir.path().join("kelvin.log")).await;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data directory Kelvin created");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{} is readable by others", path.display());
        files.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    files.sort();
    // The SQLite database with its WAL companions, the key and the token: all checked above.
    for expected in
        ["admin-token", "kelvin.db", "kelvin.db-shm", "kelvin.db-wal", "signing-key.pem"]
    {
        assert!(files.iter().any(|f| f == expected), "no {expected} in {files:?}");
    }
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_written_to_a_file_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("kelvin.log");
    let mut server = kelvin_up_logging_to(&dir.path().join("data"), &log).await;
    assert!(server.terminate().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("serving"), "{text}");
    assert!(!text.contains('\u{1b}'), "ANSI escape codes in a log file:\n{text:?}");
}
