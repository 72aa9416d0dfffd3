//! `kelvin-bench tenants`: B7. A quiet tenant sends 200 events/s (20 calls of 10, each event a
//! new lead) alone, then again while a noisy tenant sends 10× that (200 calls/s of 10) to the
//! same ingest and scoring processes. Figures: the quiet tenant's `IngestEvents` p99 and its
//! acknowledgement-to-score-readable p99, with the neighbour against alone.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::ingest_service_client::IngestServiceClient;
use serde_json::json;
use tonic::transport::Channel;

use crate::common::{self, Args, Processes, Setup, authed, connect, events, free_port, percentile};

const QUIET: &str = "quiet";
const NOISY: &str = "noisy";
/// Quiet calls per second (10 events each); the noisy tenant makes 10× as many.
const QUIET_CALLS: u64 = 20;
const NOISY_TASKS: usize = 4;

/// Latencies of one phase, in ms, sorted.
struct Phase {
    ingest: Vec<f64>,
    fresh: Vec<f64>,
}

pub async fn run(args: &Args) -> Result<()> {
    let secs = if args.smoke { 2 } else { 20 };
    let setup = Setup::start(args).await?;
    for t in [QUIET, NOISY] {
        setup.tenant(t).await?;
        setup.publish(t).await?;
    }
    let (ingest_port, scoring_port) = (free_port()?, free_port()?);
    let _processes = Processes(vec![
        setup.spawn(args, "kelvin-ingest", ingest_port)?,
        setup.spawn(args, "kelvin-scoring", scoring_port)?,
    ]);
    let ingest = connect(ingest_port).await?;
    let scoring = connect(scoring_port).await?;
    let token = setup.token.clone();

    // The quiet tenant's changes, by lead, when the scoring process streams them.
    let (seen, watcher) = common::watch_changes(&scoring, &token, QUIET).await?;

    // Warm-up: connections, plans, caches.
    quiet_phase(&ingest, &token, "warm", 1, &seen).await?;
    let alone = quiet_phase(&ingest, &token, "alone", secs, &seen).await?;
    let stop = Instant::now() + Duration::from_secs(secs + 1);
    let mut noisy = Vec::new();
    for task in 0..NOISY_TASKS {
        let (channel, token) = (ingest.clone(), token.clone());
        noisy.push(tokio::spawn(async move { noise(channel, token, task, stop).await }));
    }
    // Let the neighbour ramp up first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let crowded = quiet_phase(&ingest, &token, "crowded", secs, &seen).await?;
    let mut noisy_calls = 0;
    for task in noisy {
        noisy_calls += task.await??;
    }
    watcher.abort();

    let figure = |v: &[f64]| (percentile(v, 0.5), percentile(v, 0.99));
    let (a50, a99) = figure(&alone.ingest);
    let (c50, c99) = figure(&crowded.ingest);
    let (fa50, fa99) = figure(&alone.fresh);
    let (fc50, fc99) = figure(&crowded.fresh);
    let noisy_rate = noisy_calls as f64 * 10.0 / (secs as f64 + 1.0);
    eprintln!(
        "bench: B7 quiet ingest p99 {c99:.2} ms beside {noisy_rate:.0} noisy events/s, {a99:.2} ms alone; freshness p99 {fc99:.1} / {fa99:.1} ms"
    );
    let report = json!({
        "quiet_events_per_s": QUIET_CALLS * 10,
        "noisy_events_per_s": noisy_rate,
        "alone_ingest_p50_ms": a50,
        "alone_ingest_p99_ms": a99,
        "crowded_ingest_p50_ms": c50,
        "crowded_ingest_p99_ms": c99,
        "b7_ingest_p99_ratio": c99 / a99,
        "alone_fresh_p50_ms": fa50,
        "alone_fresh_p99_ms": fa99,
        "crowded_fresh_p50_ms": fc50,
        "crowded_fresh_p99_ms": fc99,
        "b7_fresh_p99_ratio": fc99 / fa99,
        "seconds_per_phase": secs,
        "smoke": args.smoke,
    });
    let md = format!(
        "| figure | value | baseline (same run) | ratio |\n|---|---|---|---|\n\
         | B7 quiet tenant IngestEvents p99 ({} events/s) beside a noisy one ({noisy_rate:.0} events/s) | {c99:.2} ms (p50 {c50:.2}) | alone {a99:.2} ms (p50 {a50:.2}) | {:.2} |\n\
         | B7 quiet tenant ack → score readable p99, same phases | {fc99:.1} ms (p50 {fc50:.1}) | alone {fa99:.1} ms (p50 {fa50:.1}) | {:.2} |\n",
        QUIET_CALLS * 10,
        c99 / a99,
        fc99 / fa99
    );
    common::report(args, "tenants", &report, &md)
}

/// The quiet tenant for `secs`: `QUIET_CALLS` calls a second, 10 new leads each.
async fn quiet_phase(
    ingest: &Channel,
    token: &str,
    tag: &str,
    secs: u64,
    seen: &common::Seen,
) -> Result<Phase> {
    let calls = (secs * QUIET_CALLS) as usize;
    let all = events(&format!("quiet-{tag}"), calls * 10, 1);
    let mut client = IngestServiceClient::new(ingest.clone());
    let mut ticker = tokio::time::interval(Duration::from_millis(1000 / QUIET_CALLS));
    let mut ingest_ms = Vec::with_capacity(calls);
    let mut acked = Vec::with_capacity(calls * 10);
    for batch in all.chunks(10) {
        ticker.tick().await;
        let sent = Instant::now();
        client
            .ingest_events(authed(
                token,
                pb::IngestEventsRequest { tenant_id: QUIET.into(), events: batch.to_vec() },
            ))
            .await?;
        let at = Instant::now();
        ingest_ms.push(at.duration_since(sent).as_secs_f64() * 1000.0);
        acked.extend(batch.iter().map(|e| (e.lead_id.clone(), at)));
    }
    let fresh = common::readable_latencies(seen, &acked, Duration::from_secs(120))
        .await
        .context("B7: the quiet tenant's leads")?;
    ingest_ms.sort_by(f64::total_cmp);
    Ok(Phase { ingest: ingest_ms, fresh })
}

/// One of the noisy tenant's senders until `stop`: 10 events per call at
/// `10 × QUIET_CALLS / NOISY_TASKS` calls a second. Returns its calls.
async fn noise(channel: Channel, token: String, task: usize, stop: Instant) -> Result<u64> {
    let per_task = 10 * QUIET_CALLS / NOISY_TASKS as u64;
    let mut client = IngestServiceClient::new(channel);
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / per_task));
    let mut calls = 0u64;
    while Instant::now() < stop {
        ticker.tick().await;
        let batch = events(&format!("noisy-{task}-{calls}"), 10, 10);
        client
            .ingest_events(authed(
                &token,
                pb::IngestEventsRequest { tenant_id: NOISY.into(), events: batch },
            ))
            .await?;
        calls += 1;
    }
    Ok(calls)
}
