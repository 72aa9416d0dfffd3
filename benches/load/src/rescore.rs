//! `kelvin-bench rescore`: B6. Leads with history and no score (imported before any model was
//! published), then a publish: leads/s from the publish to `GetRescoreStatus` done, beside
//! reading the same events from PostgreSQL alone (every event of the tenant, in the order the
//! rescore needs them: by lead, by time).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;

use crate::common::{self, Args, Processes, Setup, TENANT, connect, free_port, runtime_pool, seed};

pub async fn run(args: &Args) -> Result<()> {
    let (leads, per_lead) = if args.smoke { (500, 20) } else { (100_000, 20) };
    let setup = Setup::start(args).await?;
    setup.tenant(TENANT).await?;
    let pool = runtime_pool(&args.database_url).await?;
    let started = Instant::now();
    let events = seed(&pool, TENANT, leads, per_lead).await?;
    eprintln!(
        "bench: seeded {leads} leads, {events} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Baseline: the events alone, read twice (the second read is the figure: warm like the
    // rescore's).
    let mut read_secs = f64::INFINITY;
    for _ in 0..2 {
        let started = Instant::now();
        let rows = read_all(&pool, TENANT).await?;
        if rows != events {
            bail!("read {rows} events, {events} seeded");
        }
        read_secs = started.elapsed().as_secs_f64();
    }
    let read_rate = leads as f64 / read_secs;
    eprintln!("bench: reading {events} events: {read_secs:.2} s = {read_rate:.0} leads/s");

    let port = free_port()?;
    let _scoring = Processes(vec![setup.spawn(args, "kelvin-scoring", port)?]);
    let scoring = connect(port).await?;
    let secs = setup
        .publish_and_rescore(
            &scoring,
            TENANT,
            events,
            Duration::from_secs(1),
            Duration::from_secs(1800),
        )
        .await?;
    let rate = leads as f64 / secs;
    eprintln!("bench: B6 rescored {leads} leads in {secs:.1} s = {rate:.0} leads/s");

    let report = json!({
        "leads": leads,
        "events_per_lead": per_lead,
        "events": events,
        "b6_leads_per_s": rate,
        "b6_seconds": secs,
        "read_leads_per_s": read_rate,
        "read_seconds": read_secs,
        "b6_over_read": rate / read_rate,
        "smoke": args.smoke,
    });
    let md = format!(
        "| figure | value | baseline (same run) | ratio |\n|---|---|---|---|\n\
         | B6 rescore after publish, {leads} leads × {per_lead} events | {rate:.0} leads/s ({secs:.1} s) | reading the events from PostgreSQL {read_rate:.0} leads/s ({read_secs:.2} s) | {:.2} |\n",
        rate / read_rate
    );
    common::report(args, "rescore", &report, &md)
}

/// Streams every event of `tenant` by lead and time, decoding what the scorer decodes; returns
/// the number of rows.
async fn read_all(pool: &sea_orm::sqlx::PgPool, tenant: &str) -> Result<usize> {
    use futures::TryStreamExt;
    use sea_orm::sqlx::Row;
    let mut rows = sea_orm::sqlx::query(
        "SELECT seq, event_id, lead_id, kind, time, properties FROM events \
         WHERE tenant_id = $1 ORDER BY lead_id, time",
    )
    .bind(tenant)
    .fetch(pool);
    let mut n = 0;
    while let Some(row) = rows.try_next().await? {
        let properties: String = row.try_get("properties")?;
        let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&properties)?;
        let lead: String = row.try_get("lead_id")?;
        std::hint::black_box((parsed, lead));
        n += 1;
    }
    Ok(n)
}
