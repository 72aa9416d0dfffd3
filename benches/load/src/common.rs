//! What every load bench shares: arguments, the in-process admin server, the service
//! processes, workload generators, latency statistics and the PostgreSQL baselines.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::model_service_client::ModelServiceClient;
use kelvin_proto::v1::tenant_service_client::TenantServiceClient;
use kelvin_server::{Application, Runtime};
use sea_orm::sqlx::postgres::{PgPool, PgPoolCopyExt};
use serde_json::json;
use tonic::transport::Channel;

/// The tenant of the single-tenant benches.
pub const TENANT: &str = "bench";

pub struct Args {
    pub database_url: String,
    pub redis_url: String,
    pub bin_dir: PathBuf,
    pub out: PathBuf,
    pub smoke: bool,
}

pub const USAGE: &str = "usage: kelvin-bench ingest|rescore|tenants|memory|neighbours --database-url URL --redis-url URL --bin-dir DIR --out DIR [--smoke]\n       kelvin-bench echo PORT\n(env KELVIN_BENCH_BIN_DIR: the service binaries' directory, over --bin-dir)";

pub fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args> {
    let (mut database_url, mut redis_url, mut bin_dir, mut out, mut smoke) =
        (None, None, None, None, false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--database-url" => database_url = args.next(),
            "--redis-url" => redis_url = args.next(),
            "--bin-dir" => bin_dir = args.next().map(PathBuf::from),
            "--out" => out = args.next().map(PathBuf::from),
            "--smoke" => smoke = true,
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    let args = Args {
        database_url: database_url.context("--database-url is required")?,
        redis_url: redis_url.context("--redis-url is required")?,
        // The service binaries under test may be another build's (e.g. before a fix).
        bin_dir: std::env::var_os("KELVIN_BENCH_BIN_DIR")
            .map(PathBuf::from)
            .or(bin_dir)
            .context("--bin-dir is required")?,
        out: out.context("--out is required")?,
        smoke,
    };
    std::fs::create_dir_all(&args.out)?;
    Ok(args)
}

/// The in-process server on a fresh database: it bootstraps the schema and the admin token and
/// serves tenants and models; its scoring worker is off (scoring processes score).
pub struct Setup {
    pub runtime: Arc<Runtime>,
    pub token: String,
    pub admin: Channel,
    key: String,
    _dir: tempfile::TempDir,
}

impl Setup {
    pub async fn start(args: &Args) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut config = kelvin::embedded_defaults();
        config.listen = "127.0.0.1:0".parse()?;
        config.data_dir = dir.path().to_path_buf();
        config.database_url = Some(kelvin_config::Secret::new(args.database_url.clone()));
        config.scoring.worker = false;
        let runtime = Arc::new(Runtime::start(config).await?);
        let token = runtime.bootstrap_token.clone().context("the bench needs a fresh database")?;
        let app = Application::build(runtime.clone(), kelvin::ALL_SERVICES).await?;
        let admin_port = app.local_addr().port();
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        let admin = connect(admin_port).await?;
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
        let key = std::fs::read_to_string(runtime.config.signing_key_path())?;
        Ok(Self { runtime, token, admin, key, _dir: dir })
    }

    /// Creates tenant `id` with the sample B2B model `default` (a first version, unpublished).
    pub async fn tenant(&self, id: &str) -> Result<()> {
        create_bench_tenant(&self.admin, &self.token, id).await?;
        create_sample_model(&self.admin, &self.token, id).await
    }

    /// Publishes version 1 of tenant `id`'s model.
    pub async fn publish(&self, id: &str) -> Result<()> {
        publish_first_version(&self.admin, &self.token, id).await
    }

    /// Starts service binary `name` (release, from `--bin-dir`) on `port`, on the bench's
    /// PostgreSQL and Redis, with no ingest quota.
    pub fn spawn(&self, args: &Args, name: &str, port: u16) -> Result<Child> {
        Command::new(args.bin_dir.join(name))
            .args([
                "serve",
                "--database-url",
                &args.database_url,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .env_remove("KELVIN_CONFIG")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env("KELVIN_AUTH__SIGNING_KEY", &self.key)
            .env("KELVIN_CACHE__REDIS_URL", &args.redis_url)
            .env("KELVIN_INGEST__EVENTS_PER_SECOND", "1000000000")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {name}"))
    }
}

/// Writes `<out>/<name>.json` and `<out>/<name>.md`, and prints the Markdown.
pub fn report(args: &Args, name: &str, json: &serde_json::Value, md: &str) -> Result<()> {
    std::fs::write(args.out.join(format!("{name}.json")), serde_json::to_string_pretty(json)?)?;
    std::fs::write(args.out.join(format!("{name}.md")), md)?;
    println!("{md}");
    Ok(())
}

/// A bearer-token request.
pub fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// `n` events of phase `tag`: 10 per lead, spread over 30 days.
pub fn events(tag: &str, n: usize, per_lead: usize) -> Vec<pb::EventInput> {
    let kinds = ["page_view", "email_open", "email_click", "content_download", "form_submit"];
    let urls = ["/pricing", "/blog/post", "/case-studies/acme", "/docs"];
    let now = now_s();
    (0..n)
        .map(|i| pb::EventInput {
            event_id: format!("{tag}-{i}"),
            lead_id: format!("{tag}-lead-{}", i / per_lead),
            r#type: kinds[(i / 3) % kinds.len()].into(),
            time: Some(prost_types::Timestamp {
                seconds: now - ((i * 7919) % (30 * 86_400)) as i64,
                nanos: 0,
            }),
            properties: Some(kelvin_proto::convert::json_struct(
                json!({ "url": urls[i % urls.len()] }).as_object().cloned().unwrap_or_default(),
            )),
        })
        .collect()
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub struct Processes(pub Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub async fn connect(port: u16) -> Result<Channel> {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))?.connect_lazy();
    let mut health = HealthClient::new(channel.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = health.check(HealthCheckRequest { service: String::new() }).await;
        if status.is_ok_and(|s| s.into_inner().status == ServingStatus::Serving as i32) {
            return Ok(channel);
        }
        if Instant::now() > deadline {
            bail!("port {port} did not come up");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn drain(runtime: &Runtime, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    while runtime.store.pending_scoring_work().await? > 0 {
        if Instant::now() > deadline {
            bail!("scoring did not drain within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// `kelvin-bench echo PORT`: B1's baseline, an empty tonic unary service (gRPC health `Check`)
/// in a process of its own, like the scoring service it is compared with.
pub async fn echo(port: &str) -> Result<()> {
    let (_reporter, health) = tonic_health::server::health_reporter();
    tonic::transport::Server::builder()
        .add_service(health)
        .serve(format!("127.0.0.1:{port}").parse()?)
        .await?;
    Ok(())
}

/// Latencies (ms, sorted) and calls/s of `calls` run by `clients` concurrent tasks for `secs`.
pub async fn closed_loop<F, Fut>(clients: usize, secs: f64, call: F) -> Result<(f64, Vec<f64>)>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = c;
            while Instant::now() < deadline {
                let t = Instant::now();
                call(i).await?;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                i += clients;
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    Ok((rate, all))
}

pub fn kelvin_engine_spec() -> Result<prost_types::Struct> {
    let yaml = include_str!("../../../examples/models/b2b-saas.yaml");
    let spec = kelvin_engine::ModelSpec::from_yaml(yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
    match spec.to_json_value() {
        serde_json::Value::Object(map) => Ok(kelvin_proto::convert::json_struct(map)),
        _ => bail!("the sample model is not an object"),
    }
}

pub async fn runtime_pool(url: &str) -> Result<PgPool> {
    Ok(PgPool::connect(url).await?)
}

/// COPY of `n` event rows into a table like `events` (same columns and indexes): rows/s.
pub async fn copy_baseline(pool: &PgPool, n: usize) -> Result<f64> {
    use sea_orm::sqlx::Executor;
    pool.execute("DROP TABLE IF EXISTS bench_copy").await?;
    pool.execute("CREATE TABLE bench_copy (LIKE events INCLUDING ALL)").await?;
    let rows = events("copy", n, 10);
    let now = now_s() * 1000;
    let mut text = String::with_capacity(n * 120);
    for e in &rows {
        let props =
            e.properties.clone().map(kelvin_proto::convert::struct_json).unwrap_or_default();
        let time = e.time.as_ref().map_or(0, |t| t.seconds * 1000);
        text.push_str(&format!(
            "{TENANT}\t{}\t{}\t{}\t{time}\t{}\t{now}\n",
            e.event_id,
            e.lead_id,
            e.r#type,
            serde_json::Value::Object(props).to_string().replace('\\', "\\\\")
        ));
    }
    let started = Instant::now();
    let mut copy = pool
        .copy_in_raw(
            "COPY bench_copy (tenant_id, event_id, lead_id, kind, time, properties, ingest_time) FROM STDIN",
        )
        .await?;
    for chunk in text.as_bytes().chunks(1 << 20) {
        copy.send(chunk).await?;
    }
    let copied = copy.finish().await?;
    let rate = copied as f64 / started.elapsed().as_secs_f64();
    pool.execute("DROP TABLE bench_copy").await?;
    Ok(rate)
}

/// The median time of one single-row INSERT committed on its own, in ms.
pub async fn commit_baseline(pool: &PgPool) -> Result<f64> {
    use sea_orm::sqlx::Executor;
    let mut conn = pool.acquire().await?;
    conn.execute("CREATE TEMP TABLE bench_commit (id bigint)").await?;
    let mut times = Vec::new();
    for i in 0..300 {
        let started = Instant::now();
        sea_orm::sqlx::query("INSERT INTO bench_commit (id) VALUES ($1)")
            .bind(i as i64)
            .execute(&mut *conn)
            .await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    conn.execute("DROP TABLE bench_commit").await?;
    times.sort_by(f64::total_cmp);
    Ok(percentile(&times, 0.5))
}

/// Writes `leads` leads of `tenant` with `per_lead` events each straight into `leads` and
/// `events` by COPY, without scoring work: the state a database is in when a model is first
/// published over history imported earlier. Returns the events written.
pub async fn seed(pool: &PgPool, tenant: &str, leads: usize, per_lead: usize) -> Result<usize> {
    use sea_orm::sqlx::Executor;
    let now = now_s() * 1000;
    let titles = ["Head of Growth", "VP Marketing", "Student", "CEO", "Engineer"];
    let mut text = String::with_capacity(leads * 120);
    for i in 0..leads {
        text.push_str(&format!(
            "{tenant}\tlead-{i:07}\t{{\"email\":\"lead{i}@company{}.com\",\"job_title\":\"{}\"}}\t{{}}\t{now}\t{now}\n",
            i % 1000,
            titles[i % titles.len()]
        ));
    }
    copy_rows(
        pool,
        "COPY leads (tenant_id, id, attributes, enriched, create_time, update_time) FROM STDIN",
        &text,
    )
    .await?;
    let kinds = ["page_view", "email_open", "email_click", "content_download", "form_submit"];
    let urls = ["/pricing", "/blog/post", "/case-studies/acme", "/docs"];
    let mut written = 0;
    // In slices, so the text of 2M events is never held at once.
    for start in (0..leads).step_by(10_000) {
        let mut text = String::with_capacity(10_000 * per_lead * 110);
        for i in start..(start + 10_000).min(leads) {
            for j in 0..per_lead {
                let k = i * per_lead + j;
                let time = now - ((k * 7919) % (30 * 86_400)) as i64 * 1000;
                text.push_str(&format!(
                    "{tenant}\tseed-{k}\tlead-{i:07}\t{}\t{time}\t{{\"url\":\"{}\"}}\t{now}\n",
                    kinds[(k / 3) % kinds.len()],
                    urls[k % urls.len()]
                ));
                written += 1;
            }
        }
        copy_rows(
            pool,
            "COPY events (tenant_id, event_id, lead_id, kind, time, properties, ingest_time) FROM STDIN",
            &text,
        )
        .await?;
    }
    pool.execute("ANALYZE leads").await?;
    pool.execute("ANALYZE events").await?;
    Ok(written)
}

async fn copy_rows(pool: &PgPool, statement: &str, text: &str) -> Result<u64> {
    let mut copy = pool.copy_in_raw(statement).await?;
    for chunk in text.as_bytes().chunks(1 << 20) {
        copy.send(chunk).await?;
    }
    Ok(copy.finish().await?)
}

impl Setup {
    /// Publishes version 1 of `tenant`'s model, reads its rescore status from the scoring
    /// service every `every` until the pass is done (at most `limit`), checks that exactly
    /// `events` events were absorbed, and returns the seconds from the publish to done.
    pub async fn publish_and_rescore(
        &self,
        scoring: &Channel,
        tenant: &str,
        events: usize,
        every: Duration,
        limit: Duration,
    ) -> Result<f64> {
        use kelvin_proto::v1::scoring_service_client::ScoringServiceClient;
        let mut client = ScoringServiceClient::new(scoring.clone());
        let published = Instant::now();
        self.publish(tenant).await?;
        loop {
            let status = client
                .get_rescore_status(authed(
                    &self.token,
                    pb::GetRescoreStatusRequest {
                        tenant_id: tenant.into(),
                        model_id: "default".into(),
                    },
                ))
                .await?
                .into_inner();
            if status.done {
                break;
            }
            if published.elapsed() > limit {
                bail!(
                    "rescore of {tenant} not done within {limit:?}: {} of {} leads",
                    status.rescored_leads,
                    status.total_leads
                );
            }
            tokio::time::sleep(every).await;
        }
        let secs = published.elapsed().as_secs_f64();
        let absorbed = self.runtime.store.scored_event_count(tenant, "default").await?;
        if absorbed != events as i64 {
            bail!("the rescore absorbed {absorbed} events, {events} stored");
        }
        Ok(secs)
    }
}

/// Resident set size and its peak of process `pid`, in bytes (Linux `/proc`).
pub fn rss(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
        let kb: u64 =
            line.split_whitespace().nth(1).context("malformed /proc status line")?.parse()?;
        Ok(kb * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// When the scoring process first streamed a change of each lead (by lead id).
pub type Seen = Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>>;

/// Follows `tenant`'s score changes from now on; abort the task when done.
pub async fn watch_changes(
    scoring: &Channel,
    token: &str,
    tenant: &str,
) -> Result<(Seen, tokio::task::JoinHandle<()>)> {
    use kelvin_proto::v1::scoring_service_client::ScoringServiceClient;
    let mut watch = ScoringServiceClient::new(scoring.clone())
        .watch_score_changes(authed(
            token,
            pb::WatchScoreChangesRequest {
                tenant_id: tenant.into(),
                after_cursor: 0,
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    let seen = Seen::default();
    let task = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Ok(Some(m)) = watch.message().await {
                if let Some(c) = m.change
                    && let Ok(mut s) = seen.lock()
                {
                    s.entry(c.lead_id).or_insert_with(Instant::now);
                }
            }
        })
    };
    Ok((seen, task))
}

/// Acknowledgement-to-readable latencies in ms, sorted, of `acked` (lead, acknowledged at),
/// once every lead has been seen (at most `limit`).
pub async fn readable_latencies(
    seen: &Seen,
    acked: &[(String, Instant)],
    limit: Duration,
) -> Result<Vec<f64>> {
    let deadline = Instant::now() + limit;
    loop {
        let s = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
        if acked.iter().all(|(l, _)| s.contains_key(l)) {
            let mut latencies: Vec<f64> = acked
                .iter()
                .filter_map(|(l, at)| {
                    s.get(l).map(|t| t.saturating_duration_since(*at).as_secs_f64() * 1000.0)
                })
                .collect();
            latencies.sort_by(f64::total_cmp);
            return Ok(latencies);
        }
        if Instant::now() > deadline {
            bail!("not every lead was scored within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates tenant `id` of the organization `bench`, with no model.
pub async fn create_bench_tenant(admin: &Channel, token: &str, id: &str) -> Result<()> {
    TenantServiceClient::new(admin.clone())
        .create_tenant(authed(
            token,
            pb::CreateTenantRequest {
                organization_id: "bench".into(),
                tenant_id: id.into(),
                display_name: id.into(),
                ..Default::default()
            },
        ))
        .await?;
    Ok(())
}

/// Creates tenant `id`'s model `default` with the sample B2B spec as version 1 (unpublished),
/// through a rules endpoint `admin` with an admin `token`.
pub async fn create_sample_model(admin: &Channel, token: &str, id: &str) -> Result<()> {
    let mut models = ModelServiceClient::new(admin.clone());
    models
        .create_model(authed(
            token,
            pb::CreateModelRequest {
                tenant_id: id.into(),
                model_id: "default".into(),
                display_name: "default".into(),
            },
        ))
        .await?;
    models
        .create_model_version(authed(
            token,
            pb::CreateModelVersionRequest {
                tenant_id: id.into(),
                model_id: "default".into(),
                spec: Some(kelvin_engine_spec()?),
                comment: "bench".into(),
            },
        ))
        .await?;
    Ok(())
}

/// Publishes version 1 of tenant `id`'s model `default`.
pub async fn publish_first_version(admin: &Channel, token: &str, id: &str) -> Result<()> {
    ModelServiceClient::new(admin.clone())
        .publish_model_version(authed(
            token,
            pb::PublishModelVersionRequest {
                tenant_id: id.into(),
                model_id: "default".into(),
                version: 1,
                expected_active_version: 0,
                comment: "bench".into(),
            },
        ))
        .await?;
    Ok(())
}
