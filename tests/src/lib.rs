//! Shared helpers of the integration tests: `spawn_app` starts the all-in-one server on a free
//! port against the backend under test, with a fresh database per test.
//!
//! The backend comes from the environment that `cargo xtask test` sets:
//! `KELVIN_TEST_BACKEND` (`sqlite`, the default, or `postgres`), `KELVIN_TEST_DATABASE_URL` (a
//! PostgreSQL admin URL, one database is created per test) and `KELVIN_TEST_REDIS_URL` (Redis,
//! used with PostgreSQL; every test gets its own key prefix).

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]
#![allow(clippy::disallowed_methods)] // tests build the timestamps a server checks from the wall clock (clippy.toml)

use std::sync::{Arc, Once};
use std::time::Duration;

use kelvin_config::{Config, Secret};
use kelvin_proto::v1::tenant_service_client::TenantServiceClient;
use kelvin_server::{Application, Runtime};
use tokio::sync::oneshot;
use tonic::transport::Channel;
pub use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The store the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backend selected by `KELVIN_TEST_BACKEND`.
pub fn backend() -> Backend {
    match std::env::var("KELVIN_TEST_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres,
        Ok("sqlite") | Err(_) => Backend::Sqlite,
        Ok(other) => panic!("KELVIN_TEST_BACKEND must be sqlite or postgres, not {other}"),
    }
}

fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("info,sqlx=warn")
                .with_test_writer()
                .try_init();
        }
    });
}

/// A fresh, empty database URL for one test.
pub async fn fresh_database_url(dir: &std::path::Path) -> String {
    match backend() {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.join("kelvin.db").display()),
        Backend::Postgres => {
            let admin = std::env::var("KELVIN_TEST_DATABASE_URL").expect(
                "KELVIN_TEST_BACKEND=postgres needs KELVIN_TEST_DATABASE_URL: run `cargo xtask test`",
            );
            let name = format!("kelvin_t_{}", uuid::Uuid::new_v4().simple());
            let store = kelvin_store::Store::connect(&admin).await.unwrap();
            store.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
            let (base, _) = admin.rsplit_once('/').unwrap();
            format!("{base}/{name}")
        }
    }
}

/// The configuration of a test server: port 0, a temporary data directory, a fresh database,
/// Redis with a unique prefix on the PostgreSQL backend.
pub async fn test_config(dir: &std::path::Path) -> Config {
    let mut config = kelvin::embedded_defaults();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.data_dir = dir.to_path_buf();
    config.database_url = Some(Secret::new(fresh_database_url(dir).await));
    config.server.health_check_interval_ms = 200;
    config.server.shutdown_grace_seconds = 5;
    if backend() == Backend::Postgres {
        let redis = std::env::var("KELVIN_TEST_REDIS_URL")
            .expect("the postgres backend needs KELVIN_TEST_REDIS_URL: run `cargo xtask test`");
        config.cache.redis_url = Some(Secret::new(redis));
        config.cache.key_prefix = format!("kelvin-test-{}", uuid::Uuid::new_v4().simple());
    }
    config
}

/// A running all-in-one server.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    /// The platform admin token created on first start.
    pub admin_token: String,
    pub runtime: Arc<Runtime>,
    pub channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub fn tenants(&self) -> TenantServiceClient<Channel> {
        TenantServiceClient::new(self.channel.clone())
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        self.signal_stop();
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    /// Sends the shutdown signal (like SIGTERM) without waiting.
    pub fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Whether the server task has finished.
    pub fn is_stopped(&self) -> bool {
        self.task.as_ref().is_none_or(tokio::task::JoinHandle::is_finished)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts the all-in-one server and waits until health says SERVING.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// [`spawn_app`] with the test configuration changed by `change` first.
pub async fn spawn_app_with(change: impl FnOnce(&mut Config)) -> TestApp {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    change(&mut config);
    let runtime = Arc::new(Runtime::start(config).await.unwrap());
    let admin_token = runtime.bootstrap_token.clone().expect("first start creates a token");
    let app = Application::build(runtime.clone(), kelvin::ALL_SERVICES).await.unwrap();
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        app.run_until_stopped(async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect_lazy();
    wait_status(channel.clone(), "", ServingStatus::Serving).await;
    TestApp { addr, admin_token, runtime, channel, stop: Some(stop), task: Some(task), _dir: dir }
}

/// Polls `grpc.health.v1` until `service` is SERVING (10 s at most).
pub async fn wait_serving(channel: Channel, service: &str) {
    wait_status(channel, service, ServingStatus::Serving).await;
}

/// Polls `grpc.health.v1` until `service` reports `status` (10 s at most).
pub async fn wait_status(channel: Channel, service: &str, status: ServingStatus) {
    let mut health = HealthClient::new(channel);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = health
            .check(tonic_health::pb::HealthCheckRequest { service: service.to_owned() })
            .await;
        if let Ok(r) = reply
            && r.get_ref().status == status as i32
        {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "health never reported {status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `message` with `authorization: Bearer <token>`.
pub fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// A timestamp `days` from now.
pub fn days_from_now(days: i64) -> prost_types::Timestamp {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    prost_types::Timestamp { seconds: now.as_secs() as i64 + days * 86_400, nanos: 0 }
}

/// Test fixtures built through the API.
pub mod fixtures {
    use kelvin_proto::v1 as pb;

    use super::{TestApp, authed, days_from_now};

    pub async fn org(app: &TestApp, id: &str) -> pb::Organization {
        app.tenants()
            .create_organization(authed(
                &app.admin_token,
                pb::CreateOrganizationRequest {
                    organization_id: id.into(),
                    display_name: format!("Agency {id}"),
                    request_id: String::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap()
    }

    pub async fn tenant(app: &TestApp, org: &str, id: &str) -> pb::Tenant {
        app.tenants()
            .create_tenant(authed(
                &app.admin_token,
                pb::CreateTenantRequest {
                    organization_id: org.into(),
                    tenant_id: id.into(),
                    display_name: format!("Client {id}"),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .tenant
            .unwrap()
    }

    /// A token for `tenant` of `org` (empty `tenant`: organization-wide) with `role`.
    pub async fn token(app: &TestApp, org: &str, tenant: &str, role: pb::Role) -> (String, String) {
        let reply = app
            .tenants()
            .create_api_key(authed(
                &app.admin_token,
                pb::CreateApiKeyRequest {
                    organization_id: org.into(),
                    tenant_id: tenant.into(),
                    role: role as i32,
                    display_name: format!("{role:?} key"),
                    expire_time: Some(days_from_now(30)),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        (reply.token, reply.api_key.unwrap().api_key_id)
    }

    /// Publishes `spec` as the next version of `tenant`'s model `model_id` (created when
    /// missing) over `channel`; returns the version.
    pub async fn publish(
        channel: tonic::transport::Channel,
        token: &str,
        tenant: &str,
        model_id: &str,
        spec: serde_json::Value,
    ) -> i64 {
        use kelvin_proto::v1::model_service_client::ModelServiceClient;
        let mut api = ModelServiceClient::new(channel);
        let active = match api
            .get_model(authed(
                token,
                pb::GetModelRequest { tenant_id: tenant.into(), model_id: model_id.into() },
            ))
            .await
        {
            Ok(reply) => reply.into_inner().model.unwrap().active_version,
            Err(_) => {
                api.create_model(authed(
                    token,
                    pb::CreateModelRequest {
                        tenant_id: tenant.into(),
                        model_id: model_id.into(),
                        display_name: model_id.into(),
                    },
                ))
                .await
                .unwrap();
                0
            }
        };
        let version = api
            .create_model_version(authed(
                token,
                pb::CreateModelVersionRequest {
                    tenant_id: tenant.into(),
                    model_id: model_id.into(),
                    spec: Some(super::json::to_struct(spec)),
                    comment: "test".into(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .version
            .unwrap()
            .version;
        api.publish_model_version(authed(
            token,
            pb::PublishModelVersionRequest {
                tenant_id: tenant.into(),
                model_id: model_id.into(),
                version,
                expected_active_version: active,
                comment: "test".into(),
            },
        ))
        .await
        .unwrap();
        version
    }
}

/// Polls `check` every 50 ms until it returns `Some` (`timeout` at most, then panics with
/// `what`).
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Built binaries of the workspace, run as separate processes.
pub mod process {
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    /// The path of workspace binary `name` (built by `cargo test --workspace`).
    pub fn binary(name: &str) -> PathBuf {
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
        let path = dir.join(name);
        assert!(
            path.exists(),
            "{} is not built: run the suite with `cargo xtask test` (it builds the whole workspace)",
            path.display()
        );
        path
    }

    /// A free loopback port for a child process to listen on. Taken below the kernel's
    /// ephemeral range (32768 and up), so that no outgoing connection of this or another
    /// process lands on it before the child binds it, and never the same twice in a process
    /// (tests run concurrently); the start depends on the pid so consecutive test binaries
    /// do not reuse each other's ports.
    pub fn free_port() -> u16 {
        use std::sync::atomic::{AtomicU32, Ordering};
        const LOW: u32 = 20_000;
        const SPAN: u32 = 12_000;
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let start = (std::process::id() * 97) % SPAN;
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            assert!(n < SPAN, "no free port left below 32000");
            let port = (LOW + (start + n) % SPAN) as u16;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }

    /// A child process killed when dropped.
    pub struct Running {
        pub child: Child,
    }

    impl Running {
        /// Spawns `command`; its logs show only when `TEST_LOG` is set.
        pub fn spawn(command: &mut Command) -> Self {
            if std::env::var_os("TEST_LOG").is_none() {
                command.stderr(Stdio::null());
            }
            let child = command.stdin(Stdio::null()).spawn().unwrap();
            Self { child }
        }

        /// Sends SIGTERM and waits (15 s at most) for the exit status.
        pub fn terminate(&mut self) -> std::process::ExitStatus {
            let pid = self.child.id().to_string();
            let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
            assert!(sent.success());
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            loop {
                if let Some(status) = self.child.try_wait().unwrap() {
                    return status;
                }
                assert!(std::time::Instant::now() < deadline, "process did not stop on SIGTERM");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// JSON ⇄ `google.protobuf.Struct`, for model specs.
pub mod json {
    use prost_types::value::Kind;
    use prost_types::{ListValue, Struct, Value};

    pub fn value(v: serde_json::Value) -> Value {
        use serde_json::Value as J;
        let kind = match v {
            J::Null => Kind::NullValue(0),
            J::Bool(b) => Kind::BoolValue(b),
            J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
            J::String(s) => Kind::StringValue(s),
            J::Array(a) => {
                Kind::ListValue(ListValue { values: a.into_iter().map(value).collect() })
            }
            J::Object(o) => Kind::StructValue(Struct {
                fields: o.into_iter().map(|(k, v)| (k, value(v))).collect(),
            }),
        };
        Value { kind: Some(kind) }
    }

    /// A JSON object as a Struct (panics on anything else).
    pub fn to_struct(v: serde_json::Value) -> Struct {
        match value(v).kind {
            Some(Kind::StructValue(s)) => s,
            other => panic!("not an object: {other:?}"),
        }
    }

    /// The B2B sample model of the brief, as JSON.
    pub fn b2b_spec() -> serde_json::Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/models/b2b-saas.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        kelvin_engine::ModelSpec::from_yaml(&text).unwrap().to_json_value()
    }
}

/// A TCP proxy on a free loopback port in front of `upstream`, that a test cuts (every
/// connection closed, new ones refused) and restores: a database or cache going away and
/// coming back, as the server sees it, without touching the real server other tests share.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    up: Arc<std::sync::atomic::AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: std::net::SocketAddr) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let task = {
            let (up, connections) = (up.clone(), connections.clone());
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let handle = tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    connections.lock().unwrap().push(handle);
                }
            })
        };
        Self { addr, up, connections, task }
    }

    /// `url` (`scheme://[user@]host:port/...`) with its host and port replaced by the proxy's.
    pub fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        let user = authority.rsplit_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default();
        let path = if path.is_empty() { String::new() } else { format!("/{path}") };
        format!("{scheme}://{user}{}{path}", self.addr)
    }

    /// The upstream address of `url`.
    pub fn upstream_of(url: &str) -> std::net::SocketAddr {
        let rest = url.split_once("://").unwrap().1;
        let authority = rest.split('/').next().unwrap();
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        host_port.parse().unwrap()
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

/// A codec that sends raw bytes as messages and receives raw bytes: malformed or hand-encoded
/// requests, as a misbehaving client would send them.
pub mod raw {
    /// The codec (`tonic::client::Grpc::unary(request, path, RawCodec)`).
    #[derive(Debug, Clone, Default)]
    pub struct RawCodec;

    /// Its encoder and decoder.
    #[derive(Debug, Clone, Default)]
    pub struct Raw;

    impl tonic::codec::Codec for RawCodec {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = Raw;
        type Decoder = Raw;
        fn encoder(&mut self) -> Raw {
            Raw
        }
        fn decoder(&mut self) -> Raw {
            Raw
        }
    }

    impl tonic::codec::Encoder for Raw {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn encode(
            &mut self,
            item: Vec<u8>,
            buf: &mut tonic::codec::EncodeBuf<'_>,
        ) -> Result<(), tonic::Status> {
            use prost::bytes::BufMut as _;
            buf.put_slice(&item);
            Ok(())
        }
    }

    impl tonic::codec::Decoder for Raw {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn decode(
            &mut self,
            buf: &mut tonic::codec::DecodeBuf<'_>,
        ) -> Result<Option<Vec<u8>>, tonic::Status> {
            use prost::bytes::Buf as _;
            Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
        }
    }
}
