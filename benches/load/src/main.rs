//! `kelvin-bench ingest`: load benchmarks of the real service processes on PostgreSQL + Redis,
//! each figure beside a baseline measured in the same run (run by `cargo xtask bench ingest`).
//!
//! - COPY: PostgreSQL's own `COPY` of the same event rows into a table like `events` (same
//!   columns, same indexes): the ceiling for durable ingestion on this machine.
//! - B2: `IngestEvents`, 100 events a call, 4 concurrent clients: events/s, and / COPY.
//! - B3: `StreamEvents`, 100 events a message, 4 streams: events/s, and / B2.
//! - Scoring: events scored per second while B2's events drain.
//! - B4: acknowledgement to score readable at half of B2's rate (each event the first of a new
//!   lead; "readable" is the scoring process streaming the lead's change, which it does after
//!   the commit and the cache write-through): p50 / p99, beside one PostgreSQL commit.
//!
//! - B1: `GetScore` on a warm cache, 16 concurrent callers, beside an empty unary tonic service
//!   (gRPC health `Check`, this program as `kelvin-bench echo PORT`) with the same client.
//!
//! The processes: `kelvin-ingest` and `kelvin-scoring` from `--bin-dir`, plus this process's
//! in-process server (models, tenants; its scoring worker off).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::ingest_service_client::IngestServiceClient;
use kelvin_proto::v1::model_service_client::ModelServiceClient;
use kelvin_proto::v1::scoring_service_client::ScoringServiceClient;
use kelvin_proto::v1::tenant_service_client::TenantServiceClient;
use kelvin_server::{Application, Runtime};
use sea_orm::sqlx::postgres::{PgPool, PgPoolCopyExt};
use serde_json::json;
use tonic::transport::Channel;

const TENANT: &str = "bench";
const BATCH: usize = 100;
const CLIENTS: usize = 4;

struct Args {
    database_url: String,
    redis_url: String,
    bin_dir: PathBuf,
    out: PathBuf,
    smoke: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    if command != "ingest" {
        bail!(
            "usage: kelvin-bench ingest --database-url URL --redis-url URL --bin-dir DIR --out DIR [--smoke]"
        );
    }
    let (mut database_url, mut redis_url, mut bin_dir, mut out, mut smoke) =
        (None, None, None, None, false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--database-url" => database_url = args.next(),
            "--redis-url" => redis_url = args.next(),
            "--bin-dir" => bin_dir = args.next().map(PathBuf::from),
            "--out" => out = args.next().map(PathBuf::from),
            "--smoke" => smoke = true,
            other => bail!("unknown argument `{other}`"),
        }
    }
    Ok(Args {
        database_url: database_url.context("--database-url is required")?,
        redis_url: redis_url.context("--redis-url is required")?,
        bin_dir: bin_dir.context("--bin-dir is required")?,
        out: out.context("--out is required")?,
        smoke,
    })
}

/// A bearer-token request.
fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// `n` events of phase `tag`: 10 per lead, spread over 30 days.
fn events(tag: &str, n: usize, per_lead: usize) -> Vec<pb::EventInput> {
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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Processes(Vec<Child>);

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

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn connect(port: u16) -> Result<Channel> {
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

async fn drain(runtime: &Runtime, limit: Duration) -> Result<()> {
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
async fn echo(port: &str) -> Result<()> {
    let (_reporter, health) = tonic_health::server::health_reporter();
    tonic::transport::Server::builder()
        .add_service(health)
        .serve(format!("127.0.0.1:{port}").parse()?)
        .await?;
    Ok(())
}

/// Latencies (ms, sorted) and calls/s of `calls` run by `clients` concurrent tasks for `secs`.
async fn closed_loop<F, Fut>(clients: usize, secs: f64, call: F) -> Result<(f64, Vec<f64>)>
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

#[tokio::main]
async fn main() -> Result<()> {
    if std::env::args().nth(1).as_deref() == Some("echo") {
        return echo(&std::env::args().nth(2).context("kelvin-bench echo PORT")?).await;
    }
    let args = parse_args()?;
    let (n, b4_seconds) = if args.smoke { (2_000, 2) } else { (200_000, 15) };
    std::fs::create_dir_all(&args.out)?;

    // The in-process server: bootstraps the database and the admin token, serves the model
    // and tenant services; its scoring worker is off (the scoring process scores).
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
    let mut tenants = TenantServiceClient::new(admin.clone());
    tenants
        .create_organization(authed(
            &token,
            pb::CreateOrganizationRequest {
                organization_id: "bench".into(),
                display_name: "Bench".into(),
                request_id: String::new(),
            },
        ))
        .await?;
    tenants
        .create_tenant(authed(
            &token,
            pb::CreateTenantRequest {
                organization_id: "bench".into(),
                tenant_id: TENANT.into(),
                display_name: "Bench".into(),
                ..Default::default()
            },
        ))
        .await?;
    let spec = kelvin_engine_spec()?;
    let mut models = ModelServiceClient::new(admin.clone());
    models
        .create_model(authed(
            &token,
            pb::CreateModelRequest {
                tenant_id: TENANT.into(),
                model_id: "default".into(),
                display_name: "default".into(),
            },
        ))
        .await?;
    models
        .create_model_version(authed(
            &token,
            pb::CreateModelVersionRequest {
                tenant_id: TENANT.into(),
                model_id: "default".into(),
                spec: Some(spec),
                comment: "bench".into(),
            },
        ))
        .await?;
    models
        .publish_model_version(authed(
            &token,
            pb::PublishModelVersionRequest {
                tenant_id: TENANT.into(),
                model_id: "default".into(),
                version: 1,
                expected_active_version: 0,
                comment: "bench".into(),
            },
        ))
        .await?;

    // The service processes.
    let key = std::fs::read_to_string(runtime.config.signing_key_path())?;
    let (ingest_port, scoring_port) = (free_port()?, free_port()?);
    let mut children = Vec::new();
    for (name, port) in [("kelvin-ingest", ingest_port), ("kelvin-scoring", scoring_port)] {
        let child = Command::new(args.bin_dir.join(name))
            .args([
                "serve",
                "--database-url",
                &args.database_url,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .env_remove("KELVIN_CONFIG")
            .env("KELVIN_AUTH__SIGNING_KEY", &key)
            .env("KELVIN_CACHE__REDIS_URL", &args.redis_url)
            .env("KELVIN_INGEST__EVENTS_PER_SECOND", "1000000000")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        children.push(child);
    }
    let _processes = Processes(children);
    let ingest_channel = connect(ingest_port).await?;
    let scoring_channel = connect(scoring_port).await?;

    let pool = runtime_pool(&args.database_url).await?;
    let copy = copy_baseline(&pool, n).await?;
    eprintln!("bench: COPY {:.0} rows/s", copy);
    let commit = commit_baseline(&pool).await?;
    eprintln!("bench: one commit p50 {:.2} ms", commit);

    // B2: unary batches.
    let b2_events = events("b2", n, 10);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for part in 0..CLIENTS {
        let mine: Vec<Vec<pb::EventInput>> =
            b2_events.chunks(BATCH).skip(part).step_by(CLIENTS).map(<[_]>::to_vec).collect();
        let mut client = IngestServiceClient::new(ingest_channel.clone());
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            for batch in mine {
                let reply = client
                    .ingest_events(authed(
                        &token,
                        pb::IngestEventsRequest { tenant_id: TENANT.into(), events: batch },
                    ))
                    .await?
                    .into_inner();
                if reply.results.iter().any(|r| r.status != pb::ItemStatus::Accepted as i32) {
                    bail!("an event was not accepted");
                }
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let b2_secs = started.elapsed().as_secs_f64();
    let b2 = n as f64 / b2_secs;
    eprintln!("bench: B2 {b2:.0} events/s");
    drain(&runtime, Duration::from_secs(600)).await?;
    let scoring_rate = n as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "bench: scoring kept up at {scoring_rate:.0} events/s (B2's events, ingest start to drained)"
    );

    // B3: streams.
    let b3_events = events("b3", n, 10);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for part in 0..CLIENTS {
        let mine: Vec<Vec<pb::EventInput>> =
            b3_events.chunks(BATCH).skip(part).step_by(CLIENTS).map(<[_]>::to_vec).collect();
        let mut client = IngestServiceClient::new(ingest_channel.clone());
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let count = mine.len();
            let (tx, rx) = tokio::sync::mpsc::channel(32);
            let sender = tokio::spawn(async move {
                for (i, batch) in mine.into_iter().enumerate() {
                    let message = pb::StreamEventsRequest {
                        tenant_id: TENANT.into(),
                        events: batch,
                        sequence: i as i64,
                    };
                    if tx.send(message).await.is_err() {
                        break;
                    }
                }
            });
            let mut acks = client
                .stream_events(authed(&token, tokio_stream::wrappers::ReceiverStream::new(rx)))
                .await?
                .into_inner();
            let mut acked = 0;
            while acked < count {
                let ack = acks.message().await?.context("the stream ended early")?;
                if ack.accepted as usize != ack.results.len() {
                    bail!("an event was not accepted");
                }
                acked += 1;
            }
            sender.await?;
            Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let b3 = n as f64 / started.elapsed().as_secs_f64();
    eprintln!("bench: B3 {b3:.0} events/s");
    drain(&runtime, Duration::from_secs(600)).await?;

    // B4: acknowledgement to readable at half of B2's rate, 10 events (10 new leads) a call.
    let rate = (b2 / 2.0).max(20.0);
    let calls = ((rate * b4_seconds as f64) / 10.0).ceil() as usize;
    let period = Duration::from_secs_f64(10.0 / rate);
    let mut watch = ScoringServiceClient::new(scoring_channel.clone())
        .watch_score_changes(authed(
            &token,
            pb::WatchScoreChangesRequest {
                tenant_id: TENANT.into(),
                after_cursor: 0,
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    let seen = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<String, Instant>::new()));
    let watcher = {
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
    let b4_events = events("b4", calls * 10, 1);
    let mut acked: Vec<(String, Instant)> = Vec::new();
    let mut client = IngestServiceClient::new(ingest_channel.clone());
    let mut ticker = tokio::time::interval(period);
    for batch in b4_events.chunks(10) {
        ticker.tick().await;
        client
            .ingest_events(authed(
                &token,
                pb::IngestEventsRequest { tenant_id: TENANT.into(), events: batch.to_vec() },
            ))
            .await?;
        let at = Instant::now();
        acked.extend(batch.iter().map(|e| (e.lead_id.clone(), at)));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut latencies = loop {
        let s = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
        if acked.iter().all(|(l, _)| s.contains_key(l)) {
            break acked
                .iter()
                .filter_map(|(l, at)| {
                    s.get(l).map(|t| t.saturating_duration_since(*at).as_secs_f64() * 1000.0)
                })
                .collect::<Vec<_>>();
        }
        if Instant::now() > deadline {
            bail!("B4: not every lead was scored within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    watcher.abort();
    latencies.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    eprintln!("bench: B4 p50 {p50:.1} ms, p99 {p99:.1} ms at {rate:.0} events/s");

    // B1: GetScore on a warm cache (leads scored in B2, written through) against an empty
    // unary tonic service in its own process, same client, 16 concurrent callers.
    let b1_secs = if args.smoke { 1.0 } else { 10.0 };
    let echo_port = free_port()?;
    let echo_child = Command::new(std::env::current_exe()?)
        .args(["echo", &echo_port.to_string()])
        .stdin(Stdio::null())
        .spawn()?;
    let _echo = Processes(vec![echo_child]);
    let echo_channel = connect(echo_port).await?;
    let leads: Arc<Vec<String>> =
        Arc::new((0..(n / 10).min(1000)).map(|i| format!("b2-lead-{i}")).collect());
    for lead in leads.iter() {
        ScoringServiceClient::new(scoring_channel.clone())
            .get_score(authed(
                &token,
                pb::GetScoreRequest {
                    tenant_id: TENANT.into(),
                    lead_id: lead.clone(),
                    model_id: String::new(),
                },
            ))
            .await?;
    }
    let (b1, b1_lat) = {
        let (channel, token, leads) = (scoring_channel.clone(), token.clone(), leads.clone());
        closed_loop(16, b1_secs, move |i| {
            let mut client = ScoringServiceClient::new(channel.clone());
            let request = authed(
                &token,
                pb::GetScoreRequest {
                    tenant_id: TENANT.into(),
                    lead_id: leads[i % leads.len()].clone(),
                    model_id: String::new(),
                },
            );
            async move {
                client.get_score(request).await?;
                Ok(())
            }
        })
        .await?
    };
    let (echo_rate, echo_lat) = closed_loop(16, b1_secs, move |_| {
        let mut client = tonic_health::pb::health_client::HealthClient::new(echo_channel.clone());
        async move {
            client.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await?;
            Ok(())
        }
    })
    .await?;
    let (b1_p50, b1_p99) = (percentile(&b1_lat, 0.5), percentile(&b1_lat, 0.99));
    let (echo_p50, echo_p99) = (percentile(&echo_lat, 0.5), percentile(&echo_lat, 0.99));
    eprintln!(
        "bench: B1 {b1:.0} req/s (p50 {b1_p50:.2} ms, p99 {b1_p99:.2} ms); echo {echo_rate:.0} req/s (p50 {echo_p50:.2} ms, p99 {echo_p99:.2} ms)"
    );

    let report = json!({
        "b1_requests_per_s": b1,
        "b1_p50_ms": b1_p50,
        "b1_p99_ms": b1_p99,
        "echo_requests_per_s": echo_rate,
        "echo_p50_ms": echo_p50,
        "echo_p99_ms": echo_p99,
        "b1_over_echo": b1 / echo_rate,
        "machine_cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "events": n,
        "copy_rows_per_s": copy,
        "commit_p50_ms": commit,
        "b2_events_per_s": b2,
        "b2_over_copy": b2 / copy,
        "b3_events_per_s": b3,
        "b3_over_b2": b3 / b2,
        "scoring_events_per_s": scoring_rate,
        "b4_rate_events_per_s": rate,
        "b4_p50_ms": p50,
        "b4_p99_ms": p99,
        "b4_samples": latencies.len(),
        "smoke": args.smoke,
    });
    std::fs::write(args.out.join("ingest.json"), serde_json::to_string_pretty(&report)?)?;
    let md = format!(
        "| figure | value | baseline (same run) | ratio |\n|---|---|---|---|\n\
         | B1 GetScore, warm cache, 16 callers | {b1:.0} req/s, p50 {b1_p50:.2} ms, p99 {b1_p99:.2} ms | empty unary tonic service {echo_rate:.0} req/s, p50 {echo_p50:.2} ms, p99 {echo_p99:.2} ms | {:.2} |\n\
         | B2 batch ingest (100/call, {CLIENTS} clients) | {b2:.0} events/s | COPY {copy:.0} rows/s | {:.2} |\n\
         | B3 streaming ingest ({CLIENTS} streams) | {b3:.0} events/s | B2 {b2:.0} events/s | {:.2} |\n\
         | scoring throughput | {scoring_rate:.0} events/s | COPY {copy:.0} rows/s | {:.2} |\n\
         | B4 ack → readable p50 at {rate:.0} events/s | {p50:.1} ms | one commit {commit:.2} ms | |\n\
         | B4 ack → readable p99 | {p99:.1} ms | | |\n",
        b1 / echo_rate,
        b2 / copy,
        b3 / b2,
        scoring_rate / copy
    );
    std::fs::write(args.out.join("ingest.md"), &md)?;
    println!("{md}");
    Ok(())
}

fn kelvin_engine_spec() -> Result<prost_types::Struct> {
    let yaml = include_str!("../../../examples/models/b2b-saas.yaml");
    let spec = kelvin_engine::ModelSpec::from_yaml(yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
    match spec.to_json_value() {
        serde_json::Value::Object(map) => Ok(kelvin_proto::convert::json_struct(map)),
        _ => bail!("the sample model is not an object"),
    }
}

async fn runtime_pool(url: &str) -> Result<PgPool> {
    Ok(PgPool::connect(url).await?)
}

/// COPY of `n` event rows into a table like `events` (same columns and indexes): rows/s.
async fn copy_baseline(pool: &PgPool, n: usize) -> Result<f64> {
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
async fn commit_baseline(pool: &PgPool) -> Result<f64> {
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
