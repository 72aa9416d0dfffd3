//! `kelvinctl events send`: events from a JSON-lines file, in batches, with every rejected
//! event listed by line.

use std::io::BufRead;

use anyhow::{Context as _, Result};
use kelvin_proto::convert::{json_struct, timestamp};
use kelvin_proto::v1 as pb;
use serde_json::{Value, json};

use super::Kelvin;
use crate::output::{self, Format};

pub(super) async fn send_events(
    k: &Kelvin,
    tenant: &str,
    file: &std::path::Path,
    batch: usize,
    format: Format,
) -> Result<()> {
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?,
        ))
    };
    let (mut accepted, mut duplicates) = (0i64, 0i64);
    let mut rejects: Vec<Value> = Vec::new();
    let mut warnings: Vec<Value> = Vec::new();
    let mut pending: Vec<(usize, pb::EventInput)> = Vec::new();
    let mut lines = reader.lines().enumerate().peekable();
    while lines.peek().is_some() || !pending.is_empty() {
        while pending.len() < batch.max(1) {
            let Some((n, line)) = lines.next() else { break };
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match parse_event(&line) {
                Ok(e) => pending.push((n + 1, e)),
                Err((field, reason)) => {
                    rejects.push(json!({"line": n + 1, "field": field, "reason": reason}))
                }
            }
        }
        if pending.is_empty() {
            break;
        }
        let (numbers, events): (Vec<usize>, Vec<pb::EventInput>) =
            std::mem::take(&mut pending).into_iter().unzip();
        let reply = k
            .ingest()
            .ingest_events(k.req(pb::IngestEventsRequest { tenant_id: tenant.into(), events })?)
            .await?
            .into_inner();
        accepted += i64::from(reply.accepted);
        duplicates += i64::from(reply.duplicates);
        for (r, n) in reply.results.into_iter().zip(numbers) {
            warnings.extend(r.warnings.iter().map(|w| warning_json(n as u64, w)));
            if r.status == pb::ItemStatus::Rejected as i32 {
                // The server names the field by batch position (`events[3].time`); the line
                // says which event.
                let field = field_in_item(&r.field).to_owned();
                rejects.push(json!({"line": n, "field": field, "reason": r.reason}));
            }
        }
    }
    rejects.sort_by_key(|r| r["line"].as_u64());
    let rejected = rejects.len();
    let summary = json!({
        "accepted": accepted, "duplicates": duplicates, "rejected": rejected, "rejects": rejects,
        "warned": warnings.len(), "warnings": warnings,
    });
    output::print(
        format,
        &summary,
        &[
            ("ACCEPTED", "accepted"),
            ("DUPLICATES", "duplicates"),
            ("REJECTED", "rejected"),
            ("WARNINGS", "warned"),
        ],
    )?;
    if format == Format::Table && !warnings.is_empty() {
        println!();
        print_warnings(&summary["warnings"])?;
    }
    if rejected > 0 {
        if format == Format::Table {
            println!();
            output::print(
                format,
                &summary["rejects"],
                &[("LINE", "line"), ("FIELD", "field"), ("REASON", "reason")],
            )?;
        }
        return Err(PartlyRejected {
            rejected: rejected as u64,
            total: accepted as u64 + duplicates as u64 + rejected as u64,
            unit: "event(s)",
            listed: "listed with their line, field and reason".into(),
        }
        .into());
    }
    Ok(())
}

/// Some events or rows were rejected (the others were sent): `kelvinctl` exits with
/// [`PartlyRejected::EXIT_CODE`] rather than 1, so scripts can tell it from a failed call.
#[derive(Debug, thiserror::Error)]
#[error("{rejected} of {total} {unit} rejected ({listed})")]
pub struct PartlyRejected {
    pub rejected: u64,
    pub total: u64,
    /// What was counted: `event(s)`, `row(s)`.
    pub unit: &'static str,
    /// Where the rejects are shown.
    pub listed: String,
}

/// The field of an item result without its batch position: `events[3].time` → `time`; the
/// line number says which item.
pub(crate) fn field_in_item(field: &str) -> &str {
    match field.split_once("].") {
        Some((_, f)) => f,
        None => field,
    }
}

/// A value stored although an active model's rule cannot read it (`"60 000 €"` for a numeric
/// rule), by line.
pub(crate) fn warning_json(line: u64, w: &pb::ItemWarning) -> Value {
    json!({
        "line": line, "field": field_in_item(&w.field), "model": w.model_id, "rule": w.rule_id,
        "message": w.message,
    })
}

pub(super) fn print_warnings(warnings: &Value) -> Result<()> {
    eprintln!("stored with warnings (a rule of an active model cannot read these values):");
    output::print(
        Format::Table,
        warnings,
        &[
            ("LINE", "line"),
            ("FIELD", "field"),
            ("MODEL", "model"),
            ("RULE", "rule"),
            ("WARNING", "message"),
        ],
    )
}

impl PartlyRejected {
    pub const EXIT_CODE: u8 = 3;
}

/// An event of a JSON line; an error is the field and the reason.
fn parse_event(line: &str) -> Result<pb::EventInput, (String, String)> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| (String::new(), format!("not JSON: {e}")))?;
    let text = |k: &str| value.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let time =
        time::OffsetDateTime::parse(&text("time"), &time::format_description::well_known::Rfc3339)
            .map_err(|e| ("time".to_owned(), format!("not an RFC 3339 time: {e}")))?;
    let ms = (time.unix_timestamp_nanos() / 1_000_000) as i64;
    Ok(pb::EventInput {
        event_id: text("event_id"),
        lead_id: text("lead_id"),
        r#type: text("type"),
        time: Some(timestamp(ms)),
        properties: value.get("properties").and_then(Value::as_object).cloned().map(json_struct),
    })
}
