//! `kelvinctl import`: runs the CSV import (`crate::import`) and sends its batches, backing
//! off and retrying a batch of events when the server says when to (quota or shedding).

use anyhow::Result;
use kelvin_proto::v1 as pb;
use serde_json::json;
use tonic::Code;

use super::Kelvin;
use crate::ImportArgs;
use crate::output::{self, Format};

pub(super) async fn import_cmd(k: &Kelvin, args: ImportArgs, format: Format) -> Result<()> {
    let ImportArgs { tenant, file, mapping, rejects, batch, resume, max_rows } = args;
    let mapping = crate::import::Mapping::load(&mapping)?;
    let rejects = rejects.unwrap_or_else(|| {
        let mut name = file.as_os_str().to_owned();
        name.push(".rejects.csv");
        std::path::PathBuf::from(name)
    });
    let opts = crate::import::Options {
        tenant: tenant.clone(),
        file,
        mapping,
        rejects: rejects.clone(),
        batch,
        resume,
        max_rows,
    };
    let k = k.clone();
    let send = move |items: Vec<crate::import::Item>| {
        let (k, tenant) = (k.clone(), tenant.clone());
        Box::pin(async move {
            use crate::import::Item;
            let mut events = Vec::new();
            let mut leads = Vec::new();
            let mut companies = Vec::new();
            for item in items {
                match item {
                    Item::Event(e) => events.push(e),
                    Item::Lead(l) => leads.push(l),
                    Item::Company(c) => companies.push(c),
                }
            }
            let mut results = Vec::new();
            if !events.is_empty() {
                // Over the tenant's quota (or a server restarting): back off and retry
                // the same batch; ingestion is idempotent.
                let mut delay = std::time::Duration::from_millis(50);
                let reply = loop {
                    let request = pb::IngestEventsRequest {
                        tenant_id: tenant.clone(),
                        events: events.clone(),
                    };
                    match k.ingest().ingest_events(k.req(request)?).await {
                        // Quotas and shedding say when to retry (RetryInfo); a batch
                        // over the size limit is INVALID_ARGUMENT and is not retried.
                        Err(s)
                            if matches!(s.code(), Code::Unavailable | Code::ResourceExhausted)
                                && delay < std::time::Duration::from_secs(30) =>
                        {
                            use tonic_types::StatusExt as _;
                            let asked = s
                                .get_details_retry_info()
                                .and_then(|r| r.retry_delay)
                                .unwrap_or(delay);
                            tokio::time::sleep(asked.max(delay)).await;
                            delay *= 2;
                        }
                        other => break other?,
                    }
                };
                results.extend(reply.into_inner().results);
            }
            if !leads.is_empty() {
                results.extend(
                    k.ingest()
                        .upsert_leads(
                            k.req(pb::UpsertLeadsRequest { tenant_id: tenant.clone(), leads })?,
                        )
                        .await?
                        .into_inner()
                        .results,
                );
            }
            if !companies.is_empty() {
                results.extend(
                    k.ingest()
                        .upsert_companies(k.req(pb::UpsertCompaniesRequest {
                            tenant_id: tenant.clone(),
                            companies,
                        })?)
                        .await?
                        .into_inner()
                        .results,
                );
            }
            anyhow::Ok(results)
        })
            as std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<Vec<pb::ItemResult>>> + Send>,
            >
    };
    let (done, warnings, seconds) = crate::import::run(opts, send).await?;
    let summary = json!({
        "rows": done.rows, "accepted": done.accepted, "duplicates": done.duplicates, "rejected": done.rejected,
        "warned": done.warned, "warnings": warnings,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "rows_per_second": if seconds > 0.0 { (done.rows as f64 / seconds).round() } else { 0.0 },
        "rejects_file": rejects.display().to_string(),
    });
    output::print(
        format,
        &summary,
        &[
            ("ROWS", "rows"),
            ("ACCEPTED", "accepted"),
            ("DUPLICATES", "duplicates"),
            ("REJECTED", "rejected"),
            ("WARNINGS", "warned"),
            ("ROWS/S", "rows_per_second"),
            ("REJECTS", "rejects_file"),
        ],
    )?;
    if format == Format::Table && done.warned > 0 {
        println!();
        super::events::print_warnings(&summary["warnings"])?;
    }
    if done.rejected > 0 {
        return Err(super::PartlyRejected {
            rejected: done.rejected,
            total: done.rows,
            unit: "row(s)",
            listed: format!("line, field and reason in {}", rejects.display()),
        }
        .into());
    }
    Ok(())
}
