//! `kelvin-bench neighbours`: B11, the noisy-neighbour findings of issue 14 measured on the
//! real service processes. For each finding, a quiet tenant's latency alone, then beside a
//! noisy tenant, in the same run; the noisy tenant's outcomes by gRPC code; CPU and memory of
//! the process under test where the finding is about them.
//!
//! - 3: SimulateScore on `kelvin-rules`: the noisy tenant runs regex-heavy simulations just
//!   under `limits.max_simulation_work`; the quiet tenant runs small ones.
//! - 5: GetScore on `kelvin-scoring` flooded at 4× its measured capacity; the quiet tenant's
//!   goodput, latency and errors, the process's RSS before, at its peak and after the flood.
//! - 7: on SQLite (`kelvin up`), one tenant's 1,000-lead UpsertLeads against a quiet tenant's
//!   one-lead writes.
//! - 11: idle WatchScoreChanges streams on `kelvin-scoring`: the process's CPU with none, with
//!   many spread over tenants and keys (within the per-replica limits), and with many on one
//!   key (what the limits refuse), beside the quiet tenant's GetScore.
//!
//! Every process is started from the binaries' directory (`--bin-dir`, or the environment's
//! `KELVIN_BENCH_BIN_DIR`) and sets itself up (`kelvin up` migrates its own schema and writes
//! its admin token), so the same client drives older binaries: a before-and-after of a fix.
//! Traffic goes to 127.0.0.1 only; every loop is bounded in count and time.

mod cluster;
mod load;
mod simulations;

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::ingest_service_client::IngestServiceClient;
use kelvin_proto::v1::model_service_client::ModelServiceClient;
use kelvin_proto::v1::scoring_service_client::ScoringServiceClient;
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::common::{self, Args, authed, connect, rss};
use cluster::Cluster;
use load::{Calls, closed_loops, cpu_during, paced};
use simulations::{heavy_simulation, small_simulation};

/// Sizes of one run: the full benchmark, or the smoke run's seconds.
struct Sizes {
    /// Seconds of each quiet-tenant phase.
    secs: f64,
    /// Finding 3: rules and events of one noisy simulation (rules × events stays under the
    /// default `limits.max_simulation_work`, 2,000,000), and the noisy callers.
    sim_rules: usize,
    sim_events: usize,
    /// Finding 5: seconds of the capacity measurement and of the flood.
    capacity_secs: f64,
    flood_secs: f64,
    /// Finding 7: leads per noisy UpsertLeads, noisy callers.
    upsert_leads: usize,
    upsert_tasks: usize,
    /// Finding 11: tenants × keys × streams per key within the limits, streams on one key.
    stream_tenants: usize,
    stream_keys: usize,
    streams_per_key: usize,
    streams_one_key: usize,
    /// Pause for the processes to settle between phases, and before the RSS after the flood.
    settle_secs: f64,
    rss_wait_secs: f64,
}

const FULL: Sizes = Sizes {
    secs: 10.0,
    sim_rules: 390,
    sim_events: 5_000,
    capacity_secs: 3.0,
    flood_secs: 10.0,
    upsert_leads: 1_000,
    upsert_tasks: 4,
    stream_tenants: 5,
    stream_keys: 4,
    streams_per_key: 50,
    streams_one_key: 1_000,
    settle_secs: 1.0,
    rss_wait_secs: 3.0,
};

const SMOKE: Sizes = Sizes {
    secs: 0.5,
    sim_rules: 40,
    sim_events: 100,
    capacity_secs: 0.3,
    flood_secs: 0.5,
    upsert_leads: 100,
    upsert_tasks: 2,
    stream_tenants: 2,
    stream_keys: 2,
    streams_per_key: 5,
    streams_one_key: 60,
    settle_secs: 0.2,
    rss_wait_secs: 0.3,
};

/// Noisy SimulateScore callers (finding 3): two keys of the noisy tenant, two callers each.
const SIM_TASKS: usize = 4;
/// Quiet calls a second in findings 3, 7 and 11; in finding 5, `QUIET_READS`.
const QUIET_RATE: f64 = 10.0;
const QUIET_READS: f64 = 50.0;
/// The flood of finding 5, in multiples of the measured capacity.
const FLOOD_FACTOR: f64 = 4.0;
/// Deadline of every call of finding 5 (what a client with a 1 s budget sets).
const READ_DEADLINE: Duration = Duration::from_secs(1);
/// Deadline of other calls: long enough that slowness shows as latency, not as an error.
const CALL_DEADLINE: Duration = Duration::from_secs(60);
/// Connections the flood and the streams are spread over (HTTP/2 streams per connection).
const CONNECTIONS: usize = 8;
const STREAMS_PER_CONNECTION: usize = 50;

pub async fn run(args: &Args) -> Result<()> {
    let size = if args.smoke { &SMOKE } else { &FULL };
    let started = utc_now();
    let mut report = json!({ "smoke": args.smoke, "bin_dir": args.bin_dir, "started": started });
    let mut md = format!(
        "Binaries: `{}`. Started {started}.\n\n| finding | quiet tenant's call | alone p50 / p99 | beside the noisy tenant p50 / p99 | p99 ratio | quiet outcomes beside | noisy tenant's outcomes |\n|---|---|---|---|---:|---|---|\n",
        args.bin_dir.display()
    );
    let mut notes = String::new();

    let pg = Cluster::up(args, Some(&args.database_url), Some(&args.redis_url)).await?;
    for t in [QUIET, NOISY] {
        pg.tenant(t).await?;
    }
    let quiet = pg.key(QUIET).await?;
    let noisy = [pg.key(NOISY).await?, pg.key(NOISY).await?];

    let (f3, line, note) = finding3(&pg, args, size, &quiet, &noisy).await?;
    report["f3"] = f3;
    md.push_str(&line);
    notes.push_str(&note);

    let (scoring_pid, scoring_port) = pg.spawn(args, "kelvin-scoring")?;
    let scoring = connect(scoring_port).await?;
    for t in [QUIET, NOISY] {
        pg.scored_leads(&scoring, t).await?;
    }
    let (f5, line, note) =
        finding5(&scoring, scoring_pid, scoring_port, size, &quiet, &noisy[0]).await?;
    report["f5"] = f5;
    md.push_str(&line);
    notes.push_str(&note);

    let (f11, line, note) =
        finding11(&pg, &scoring, scoring_pid, scoring_port, size, &quiet).await?;
    report["f11"] = f11;
    md.push_str(&line);
    notes.push_str(&note);
    drop(pg);

    let sqlite_dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", sqlite_dir.path().join("kelvin.db").display());
    let lite = Cluster::up(args, Some(&url), None).await?;
    let (f7, line, note) = finding7(&lite, size).await?;
    report["f7"] = f7;
    md.push_str(&line);
    notes.push_str(&note);
    drop(lite);

    md.push('\n');
    md.push_str(&notes);
    common::report(args, "neighbours", &report, &md)
}

const QUIET: &str = "quiet";
const NOISY: &str = "noisy";

/// Finding 3: expensive simulations of one tenant against a quiet tenant's small ones.
async fn finding3(
    pg: &Cluster,
    args: &Args,
    size: &Sizes,
    quiet: &str,
    noisy: &[String; 2],
) -> Result<(Value, String, String)> {
    let (_, port) = pg.spawn(args, "kelvin-rules")?;
    let rules = connect(port).await?;
    let quiet_call = |_| {
        let mut client = ModelServiceClient::new(rules.clone());
        let request = with_deadline(authed(quiet, small_simulation(QUIET)), CALL_DEADLINE);
        async move { client.simulate_score(request).await.map(drop) }
    };
    paced(QUIET_RATE, size.secs.min(1.0), quiet_call).await?; // warm-up
    let mut alone = paced(QUIET_RATE, size.secs, quiet_call).await?;
    let (heavy, regexes) = heavy_simulation(size.sim_rules, size.sim_events)?;
    let heavy = std::sync::Arc::new(heavy);
    let stop = Instant::now() + Duration::from_secs_f64(size.secs + 0.5);
    let noise = {
        let (rules, noisy, heavy) = (rules.clone(), noisy.clone(), heavy.clone());
        tokio::spawn(closed_loops(SIM_TASKS, stop, move |task, _| {
            let mut client = ModelServiceClient::new(rules.clone());
            let request =
                with_deadline(authed(&noisy[task % noisy.len()], (*heavy).clone()), CALL_DEADLINE);
            async move { client.simulate_score(request).await.map(drop) }
        }))
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut beside = paced(QUIET_RATE, size.secs, quiet_call).await?;
    let mut noise = noise.await??;
    require_some(&alone, "finding 3, quiet tenant alone")?;
    let work = size.sim_rules * size.sim_events;
    let row = row(
        "3 — expensive SimulateScore",
        &format!("SimulateScore, 3 events, {QUIET_RATE}/s"),
        &mut alone,
        &mut beside,
        &format!(
            "{SIM_TASKS} callers on 2 keys, {} rules ({regexes} regex) × {} events ({work} rule-events) each: {}",
            size.sim_rules,
            size.sim_events,
            noise.outcome_text()
        ),
    );
    let json = json!({
        "quiet_alone": alone.json(), "quiet_beside": beside.json(), "noisy": noise.json(),
        "noisy_rules": size.sim_rules, "noisy_events": size.sim_events,
        "p99_ratio": beside.p(0.99) / alone.p(0.99),
    });
    Ok((json, row, String::new()))
}

/// Finding 5: a flood at 4× capacity, the quiet tenant's goodput and the process's memory.
async fn finding5(
    scoring: &Channel,
    pid: u32,
    port: u16,
    size: &Sizes,
    quiet: &str,
    noisy: &str,
) -> Result<(Value, String, String)> {
    // The noisy tenant's connections, each with its own HTTP/2 streams.
    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS {
        channels.push(connect(port).await?);
    }
    let read = |channel: &Channel, token: &str, tenant: &str, i: usize| {
        let mut client = ScoringServiceClient::new(channel.clone());
        let request = with_deadline(
            authed(
                token,
                pb::GetScoreRequest {
                    tenant_id: tenant.into(),
                    lead_id: format!("{tenant}-lead-{}", i % LEADS),
                    model_id: String::new(),
                },
            ),
            READ_DEADLINE,
        );
        async move { client.get_score(request).await.map(drop) }
    };
    // Capacity: what 16 closed-loop callers get through.
    let stop = Instant::now() + Duration::from_secs_f64(size.capacity_secs);
    let capacity = {
        let (channels, noisy) = (channels.clone(), noisy.to_owned());
        closed_loops(16, stop, move |task, i| read(&channels[task % CONNECTIONS], &noisy, NOISY, i))
            .await?
    };
    let capacity_rate = capacity.ok() as f64 / size.capacity_secs;
    settle(size).await;
    let quiet_call = |i| read(scoring, quiet, QUIET, i);
    let mut alone = paced(QUIET_READS, size.secs, quiet_call).await?;
    let (rss_before, _) = rss(pid)?;
    let flood_rate = (FLOOD_FACTOR * capacity_rate).max(100.0);
    let flood = {
        let (channels, noisy) = (channels.clone(), noisy.to_owned());
        let secs = size.flood_secs;
        tokio::spawn(async move {
            paced(flood_rate, secs, move |i| read(&channels[i % CONNECTIONS], &noisy, NOISY, i))
                .await
        })
    };
    let mut beside = paced(QUIET_READS, size.flood_secs, quiet_call).await?;
    let mut flood = flood.await??;
    let (rss_end, _) = rss(pid)?;
    tokio::time::sleep(Duration::from_secs_f64(size.rss_wait_secs)).await;
    let (rss_after, rss_peak) = rss(pid)?;
    require_some(&alone, "finding 5, quiet tenant alone")?;
    let goodput = |c: &Calls| c.ok() as f64 / c.total().max(1) as f64;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let row = row(
        "5 — flood at 4× capacity",
        &format!("GetScore, {QUIET_READS}/s, 1 s deadline"),
        &mut alone,
        &mut beside,
        &format!(
            "{flood_rate:.0} calls/s ({FLOOD_FACTOR}× the {capacity_rate:.0}/s measured), 1 s deadline: {}",
            flood.outcome_text()
        ),
    );
    let note = format!(
        "Finding 5: quiet goodput {:.0} % alone, {:.0} % beside the flood; noisy goodput {:.0} % ({:.0} ok calls/s). `kelvin-scoring` RSS {:.1} MiB before the flood, {:.1} MiB as it ended, {:.1} MiB {:.1} s later (peak {:.1} MiB).\n\n",
        100.0 * goodput(&alone),
        100.0 * goodput(&beside),
        100.0 * goodput(&flood),
        flood.ok() as f64 / size.flood_secs,
        mib(rss_before),
        mib(rss_end),
        mib(rss_after),
        size.rss_wait_secs,
        mib(rss_peak),
    );
    let json = json!({
        "capacity_per_s": capacity_rate, "flood_per_s": flood_rate,
        "quiet_alone": alone.json(), "quiet_beside": beside.json(), "noisy": flood.json(),
        "quiet_goodput_alone": goodput(&alone), "quiet_goodput_beside": goodput(&beside),
        "noisy_goodput": goodput(&flood),
        "rss_before_bytes": rss_before, "rss_end_bytes": rss_end,
        "rss_after_bytes": rss_after, "rss_peak_bytes": rss_peak,
        "p99_ratio": beside.p(0.99) / alone.p(0.99),
    });
    Ok((json, row, note))
}

/// Finding 11: idle change streams, the scoring process's CPU and the quiet tenant's reads.
async fn finding11(
    pg: &Cluster,
    scoring: &Channel,
    pid: u32,
    port: u16,
    size: &Sizes,
    quiet: &str,
) -> Result<(Value, String, String)> {
    let quiet_call = |i| {
        let mut client = ScoringServiceClient::new(scoring.clone());
        let request = with_deadline(
            authed(
                quiet,
                pb::GetScoreRequest {
                    tenant_id: QUIET.into(),
                    lead_id: format!("{QUIET}-lead-{}", i % LEADS),
                    model_id: String::new(),
                },
            ),
            CALL_DEADLINE,
        );
        async move { client.get_score(request).await.map(drop) }
    };
    let mut groups = Vec::new();
    for t in 0..size.stream_tenants {
        let tenant = format!("streams-{t}");
        pg.bare_tenant(&tenant).await?;
        for _ in 0..size.stream_keys {
            groups.push((tenant.clone(), pg.key(&tenant).await?));
        }
    }
    // Settled after the flood of finding 5.
    settle(size).await;
    let (cpu_idle, alone) = cpu_during(pid, paced(QUIET_RATE, size.secs, quiet_call)).await?;
    let mut alone = alone?;

    let mut spread = Streams::default();
    for (tenant, token) in &groups {
        spread.open(port, token, tenant, size.streams_per_key).await?;
    }
    settle(size).await;
    let (cpu_spread, beside) = cpu_during(pid, paced(QUIET_RATE, size.secs, quiet_call)).await?;
    let mut beside = beside?;
    let spread_opened = spread.open.len();
    drop(spread.open);
    settle(size).await;

    let (tenant, token) = groups.first().context("no stream tenant")?;
    let mut one_key = Streams::default();
    one_key.open(port, token, tenant, size.streams_one_key).await?;
    settle(size).await;
    let (cpu_one_key, ()) =
        cpu_during(pid, tokio::time::sleep(Duration::from_secs_f64(size.secs))).await?;
    let one_key_opened = one_key.open.len();
    drop(one_key.open);
    require_some(&alone, "finding 11, quiet tenant alone")?;

    let spread_asked = size.stream_tenants * size.stream_keys * size.streams_per_key;
    let row = row(
        "11 — idle change streams",
        &format!("GetScore, {QUIET_RATE}/s"),
        &mut alone,
        &mut beside,
        &format!(
            "{spread_asked} WatchScoreChanges over {} tenants × {} keys: {}",
            size.stream_tenants,
            size.stream_keys,
            spread.outcomes.outcome_text()
        ),
    );
    let note = format!(
        "Finding 11: `kelvin-scoring` CPU (% of one core, over {:.1} s) with no stream {cpu_idle:.1} %, with {spread_opened} idle streams open (of {spread_asked} asked, {} tenants × {} keys) {cpu_spread:.1} %, with {one_key_opened} open of {} asked on one key {cpu_one_key:.1} % (one key's streams: {}).\n\n",
        size.secs,
        size.stream_tenants,
        size.stream_keys,
        size.streams_one_key,
        one_key.outcomes.outcome_text()
    );
    let json = json!({
        "quiet_alone": alone.json(), "quiet_beside": beside.json(),
        "cpu_idle_pct": cpu_idle, "cpu_spread_pct": cpu_spread, "cpu_one_key_pct": cpu_one_key,
        "spread_asked": spread_asked, "spread_opened": spread_opened,
        "spread_outcomes": spread.outcomes.json(),
        "one_key_asked": size.streams_one_key, "one_key_opened": one_key_opened,
        "one_key_outcomes": one_key.outcomes.json(),
        "p99_ratio": beside.p(0.99) / alone.p(0.99),
    });
    Ok((json, row, note))
}

/// Finding 7: on SQLite, big UpsertLeads of one tenant against a quiet tenant's small writes.
async fn finding7(lite: &Cluster, size: &Sizes) -> Result<(Value, String, String)> {
    for t in [QUIET, NOISY] {
        lite.tenant(t).await?;
    }
    let quiet = lite.key(QUIET).await?;
    let quiet = quiet.as_str();
    let noisy = lite.key(NOISY).await?;
    let upsert = |channel: &Channel, token: &str, tenant: &str, tag: String, n: usize| {
        let mut client = IngestServiceClient::new(channel.clone());
        let leads = (0..n)
            .map(|i| pb::LeadInput {
                lead_id: format!("{tag}-{i}"),
                attributes: Some(kelvin_proto::convert::json_struct(
                    json!({ "country": "FR", "job_title": "VP Marketing", "company_size": 120 })
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                )),
                ..Default::default()
            })
            .collect();
        let request = with_deadline(
            authed(token, pb::UpsertLeadsRequest { tenant_id: tenant.into(), leads }),
            CALL_DEADLINE,
        );
        async move { client.upsert_leads(request).await.map(drop) }
    };
    let admin = &lite.admin;
    let quiet_call =
        |phase: &'static str| move |i| upsert(admin, quiet, QUIET, format!("{phase}-{i}"), 1);
    paced(QUIET_RATE, size.secs.min(1.0), quiet_call("warm")).await?;
    let mut alone = paced(QUIET_RATE, size.secs, quiet_call("alone")).await?;
    let stop = Instant::now() + Duration::from_secs_f64(size.secs + 0.5);
    let noise = {
        let (channel, n) = (admin.clone(), size.upsert_leads);
        tokio::spawn(closed_loops(size.upsert_tasks, stop, move |task, i| {
            upsert(&channel, &noisy, NOISY, format!("n-{task}-{i}"), n)
        }))
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut beside = paced(QUIET_RATE, size.secs, quiet_call("beside")).await?;
    let mut noise = noise.await??;
    require_some(&alone, "finding 7, quiet tenant alone")?;
    let row = row(
        "7 — big upserts on SQLite",
        &format!("UpsertLeads, 1 lead, {QUIET_RATE}/s (`kelvin up`, SQLite)"),
        &mut alone,
        &mut beside,
        &format!(
            "{} callers of UpsertLeads × {} leads: {} ({:.0} leads/s written)",
            size.upsert_tasks,
            size.upsert_leads,
            noise.outcome_text(),
            (noise.ok() as usize * size.upsert_leads) as f64 / (size.secs + 0.5)
        ),
    );
    let json = json!({
        "quiet_alone": alone.json(), "quiet_beside": beside.json(), "noisy": noise.json(),
        "noisy_leads_per_call": size.upsert_leads,
        "p99_ratio": beside.p(0.99) / alone.p(0.99),
    });
    Ok((json, row, String::new()))
}

async fn settle(size: &Sizes) {
    tokio::time::sleep(Duration::from_secs_f64(size.settle_secs)).await;
}

/// One line of the table.
fn row(finding: &str, call: &str, alone: &mut Calls, beside: &mut Calls, noisy: &str) -> String {
    format!(
        "| {finding} | {call} | {:.1} / {:.1} ms | {:.1} / {:.1} ms | {:.2} | {} | {noisy} |\n",
        alone.p(0.5),
        alone.p(0.99),
        beside.p(0.5),
        beside.p(0.99),
        beside.p(0.99) / alone.p(0.99),
        beside.outcome_text(),
    )
}

/// A phase the bench cannot read without: its quiet tenant alone answered nothing.
fn require_some(calls: &Calls, what: &str) -> Result<()> {
    if calls.ok() == 0 {
        bail!("{what}: no call succeeded ({})", calls.outcome_text());
    }
    Ok(())
}

fn with_deadline<T>(mut request: tonic::Request<T>, deadline: Duration) -> tonic::Request<T> {
    request.set_timeout(deadline);
    request
}

/// Leads of each tenant that the reads of findings 5 and 11 ask for.
const LEADS: usize = 10;

/// Open change streams and the outcomes of asking for them.
#[derive(Default)]
struct Streams {
    open: Vec<tonic::Streaming<pb::WatchScoreChangesResponse>>,
    outcomes: Calls,
}

impl Streams {
    /// Asks for `n` streams of `tenant` with `token`, on connections of their own.
    async fn open(&mut self, port: u16, token: &str, tenant: &str, n: usize) -> Result<()> {
        let mut pending = Vec::with_capacity(n);
        let mut channel = None;
        for i in 0..n {
            if i % STREAMS_PER_CONNECTION == 0 {
                channel = Some(connect(port).await?);
            }
            let channel = channel.clone().context("no connection")?;
            let request = authed(
                token,
                pb::WatchScoreChangesRequest {
                    tenant_id: tenant.into(),
                    after_cursor: 0,
                    ..Default::default()
                },
            );
            pending.push(async move {
                let t = Instant::now();
                let reply = ScoringServiceClient::new(channel).watch_score_changes(request).await;
                (t.elapsed().as_secs_f64() * 1000.0, reply)
            });
        }
        for (ms, reply) in futures::future::join_all(pending).await {
            match reply {
                Ok(stream) => {
                    self.outcomes.record(ms, &Ok(()));
                    self.open.push(stream.into_inner());
                }
                Err(status) => self.outcomes.record(ms, &Err(status)),
            }
        }
        Ok(())
    }
}

/// UTC now as `YYYY-MM-DDTHH:MM:SSZ` (from `date`, so the bench needs no clock crate).
fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}
