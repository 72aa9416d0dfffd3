//! `kelvin-bench ingest`: B1–B4, load benchmarks of the real service processes on PostgreSQL + Redis,
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

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::ingest_service_client::IngestServiceClient;
use kelvin_proto::v1::scoring_service_client::ScoringServiceClient;
use serde_json::json;

use crate::common::{
    self, Args, Processes, Setup, TENANT, authed, closed_loop, commit_baseline, connect,
    copy_baseline, drain, events, free_port, percentile, runtime_pool,
};

const BATCH: usize = 100;
const CLIENTS: usize = 4;

pub async fn run(args: &Args) -> Result<()> {
    let (n, b4_seconds) = if args.smoke { (2_000, 2) } else { (200_000, 15) };
    let setup = Setup::start(args).await?;
    setup.tenant(TENANT).await?;
    setup.publish(TENANT).await?;
    let (runtime, token) = (&setup.runtime, setup.token.clone());

    // The service processes.
    let (ingest_port, scoring_port) = (free_port()?, free_port()?);
    let mut children = Vec::new();
    for (name, port) in [("kelvin-ingest", ingest_port), ("kelvin-scoring", scoring_port)] {
        children.push(setup.spawn(args, name, port)?);
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
    drain(runtime, Duration::from_secs(600)).await?;
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
    drain(runtime, Duration::from_secs(600)).await?;

    // B4: acknowledgement to readable at half of B2's rate, 10 events (10 new leads) a call.
    let rate = (b2 / 2.0).max(20.0);
    let calls = ((rate * b4_seconds as f64) / 10.0).ceil() as usize;
    let period = Duration::from_secs_f64(10.0 / rate);
    let (seen, watcher) = common::watch_changes(&scoring_channel, &token, TENANT).await?;
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
    let latencies =
        common::readable_latencies(&seen, &acked, Duration::from_secs(60)).await.context("B4")?;
    watcher.abort();
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
    common::report(args, "ingest", &report, &md)
}
