//! `kelvin-bench memory`: B8. The scoring process's resident memory before and after it scores
//! a million leads (imported with one event each, then a model published): bytes per lead. The
//! scorer keeps lead state in PostgreSQL and hot scores in Redis, so its memory should not grow
//! with the number of leads.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use crate::common::{
    self, Args, Processes, Setup, TENANT, connect, free_port, rss, runtime_pool, seed,
};

pub async fn run(args: &Args) -> Result<()> {
    let leads = if args.smoke { 2_000 } else { 1_000_000 };
    let setup = Setup::start(args).await?;
    setup.tenant(TENANT).await?;
    let pool = runtime_pool(&args.database_url).await?;
    let started = Instant::now();
    let events = seed(&pool, TENANT, leads, 1).await?;
    eprintln!("bench: seeded {leads} leads in {:.1} s", started.elapsed().as_secs_f64());

    let port = free_port()?;
    let child = setup.spawn(args, "kelvin-scoring", port)?;
    let pid = child.id();
    let _scoring = Processes(vec![child]);
    let scoring = connect(port).await?;
    // Settled: connected, partitions taken, nothing to score.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (before, _) = rss(pid)?;
    let secs = setup
        .publish_and_rescore(
            &scoring,
            TENANT,
            events,
            // Rarely: each status call counts the tenant's leads and scores (2 × 1M rows).
            Duration::from_secs(5),
            Duration::from_secs(3600),
        )
        .await?;
    let (after, peak) = rss(pid)?;
    let per_lead = (after as f64 - before as f64) / leads as f64;
    let peak_per_lead = (peak as f64 - before as f64) / leads as f64;
    eprintln!(
        "bench: B8 RSS {before} → {after} bytes (peak {peak}) over {leads} leads: {per_lead:.1} B/lead ({peak_per_lead:.1} at peak); scored in {secs:.1} s"
    );
    let report = json!({
        "leads": leads,
        "rss_before_bytes": before,
        "rss_after_bytes": after,
        "rss_peak_bytes": peak,
        "b8_bytes_per_lead": per_lead,
        "b8_peak_bytes_per_lead": peak_per_lead,
        "scoring_seconds": secs,
        "leads_per_s": leads as f64 / secs,
        "smoke": args.smoke,
    });
    let md = format!(
        "| figure | value | baseline (same run) | ratio |\n|---|---|---|---|\n\
         | B8 scorer RSS growth per lead, {leads} leads scored | {per_lead:.1} B/lead ({peak_per_lead:.1} B/lead at the peak) | RSS before {:.1} MiB, after {:.1} MiB, peak {:.1} MiB | |\n",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        peak as f64 / 1048576.0
    );
    common::report(args, "memory", &report, &md)
}
