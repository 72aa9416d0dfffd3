//! The processes of one B11 run: a `kelvin up` that sets itself up, and service binaries
//! beside it on the same store and cache, all from the binaries' directory under test.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::ingest_service_client::IngestServiceClient;
use kelvin_proto::v1::scoring_service_client::ScoringServiceClient;
use kelvin_proto::v1::tenant_service_client::TenantServiceClient;
use tonic::transport::Channel;

use super::LEADS;
use crate::common::{self, Args, Processes, authed, connect, free_port};

/// A `kelvin up` process that set itself up (its schema, key and admin token in a directory
/// of its own), and the service processes started beside it on the same store.
pub(super) struct Cluster {
    pub(super) admin: Channel,
    token: String,
    key: String,
    database_url: String,
    redis_url: Option<String>,
    processes: std::sync::Mutex<Processes>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub(super) async fn up(
        args: &Args,
        database_url: Option<&str>,
        redis_url: Option<&str>,
    ) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let mut cmd = Command::new(args.bin_dir.join("kelvin"));
        cmd.arg("up")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--listen", &format!("127.0.0.1:{port}")]);
        if let Some(url) = database_url {
            cmd.args(["--database-url", url]);
        }
        env(&mut cmd, redis_url);
        // It prints its first-start admin token; the bench reads it from the file.
        cmd.stdout(Stdio::null());
        let child = cmd.spawn().context("cannot start kelvin up")?;
        let processes = Processes(vec![child]);
        let admin = connect(port).await?;
        let read = |name: &str| {
            std::fs::read_to_string(dir.path().join(name))
                .with_context(|| format!("kelvin up wrote no {name}"))
        };
        let token = read("admin-token")?.trim().to_owned();
        let key = read("signing-key.pem")?;
        TenantServiceClient::new(admin.clone())
            .create_organization(authed(
                &token,
                pb::CreateOrganizationRequest {
                    organization_id: "bench".into(),
                    display_name: "Bench".into(),
                    request_id: String::new(),
                },
            ))
            .await?;
        Ok(Self {
            admin,
            token,
            key,
            database_url: database_url.unwrap_or_default().to_owned(),
            redis_url: redis_url.map(str::to_owned),
            processes: std::sync::Mutex::new(processes),
            _dir: dir,
        })
    }

    /// Starts service binary `name` on this cluster's store and cache; its pid and port.
    pub(super) fn spawn(&self, args: &Args, name: &str) -> Result<(u32, u16)> {
        let port = free_port()?;
        let mut cmd = Command::new(args.bin_dir.join(name));
        cmd.args([
            "serve",
            "--database-url",
            &self.database_url,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("KELVIN_AUTH__SIGNING_KEY", &self.key);
        env(&mut cmd, self.redis_url.as_deref());
        let child = cmd.spawn().with_context(|| format!("cannot start {name}"))?;
        let pid = child.id();
        self.processes.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.0.push(child);
        Ok((pid, port))
    }

    /// Tenant `id` with no model (a stream tenant).
    pub(super) async fn bare_tenant(&self, id: &str) -> Result<()> {
        common::create_bench_tenant(&self.admin, &self.token, id).await
    }

    /// Tenant `id` with the sample model `default`, version 1 published.
    pub(super) async fn tenant(&self, id: &str) -> Result<()> {
        self.bare_tenant(id).await?;
        common::create_sample_model(&self.admin, &self.token, id).await?;
        common::publish_first_version(&self.admin, &self.token, id).await
    }

    /// A new admin API key of tenant `id`: its token. Each key is a caller of its own for the
    /// per-key limits.
    pub(super) async fn key(&self, id: &str) -> Result<String> {
        let reply = TenantServiceClient::new(self.admin.clone())
            .create_api_key(authed(
                &self.token,
                pb::CreateApiKeyRequest {
                    organization_id: "bench".into(),
                    tenant_id: id.into(),
                    role: pb::Role::Admin as i32,
                    display_name: format!("{id} bench"),
                    expire_time: Some(prost_types::Timestamp {
                        seconds: common::now_s() + 30 * 86_400,
                        nanos: 0,
                    }),
                },
            ))
            .await?;
        Ok(reply.into_inner().token)
    }

    /// Ingests events for `LEADS` leads of `tenant` and waits (at most 60 s) until the
    /// scoring process serves each lead's score.
    pub(super) async fn scored_leads(&self, scoring: &Channel, tenant: &str) -> Result<()> {
        IngestServiceClient::new(self.admin.clone())
            .ingest_events(authed(
                &self.token,
                pb::IngestEventsRequest {
                    tenant_id: tenant.into(),
                    events: common::events(tenant, LEADS * 2, 2),
                },
            ))
            .await?;
        let mut client = ScoringServiceClient::new(scoring.clone());
        let deadline = Instant::now() + Duration::from_secs(60);
        for i in 0..LEADS {
            loop {
                let reply = client
                    .get_score(authed(
                        &self.token,
                        pb::GetScoreRequest {
                            tenant_id: tenant.into(),
                            lead_id: format!("{tenant}-lead-{i}"),
                            model_id: String::new(),
                        },
                    ))
                    .await;
                if reply.is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{tenant}-lead-{i} was not scored within 60 s: {reply:?}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }
}

/// The environment of every process of the bench: no config file, no telemetry export,
/// warnings only, the default limits and quotas of the binaries under test.
fn env(cmd: &mut Command, redis_url: Option<&str>) {
    cmd.env_remove("KELVIN_CONFIG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    if let Some(url) = redis_url {
        cmd.env("KELVIN_CACHE__REDIS_URL", url);
    }
}
