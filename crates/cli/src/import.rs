//! Bulk import of leads, companies and events from CSV exports, mapped by a small YAML file
//! (HubSpot and Salesforce mappings ship in `examples/mappings/`). Streamed in batches, with a
//! progress bar (rate and ETA), a checkpoint after every acknowledged batch so an interrupted
//! import resumes where it stopped (ingestion is idempotent, so a replayed batch never counts
//! twice), and a rejects file naming the line, the field and the reason of every bad row.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use kelvin_proto::convert::{json_struct, timestamp};
use kelvin_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Events,
    Leads,
    Companies,
}

/// How a value is read from its column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    #[default]
    String,
    Number,
    Bool,
}

/// One mapped column: its header, type, value translations and whether it may be empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ColumnSpec {
    Header(String),
    Full {
        column: String,
        #[serde(default, rename = "type")]
        kind: ValueType,
        #[serde(default)]
        values: BTreeMap<String, String>,
        #[serde(default)]
        optional: bool,
    },
}

impl ColumnSpec {
    fn column(&self) -> &str {
        match self {
            ColumnSpec::Header(h) | ColumnSpec::Full { column: h, .. } => h,
        }
    }

    fn optional(&self) -> bool {
        matches!(self, ColumnSpec::Full { optional: true, .. })
    }
}

/// A mapping file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub kind: Kind,
    /// The item's own fields (`event_id`, `lead_id`, `type`, `time`; `lead_id`, `company_id`;
    /// `company_id`).
    pub fields: BTreeMap<String, ColumnSpec>,
    #[serde(default)]
    pub attributes: BTreeMap<String, ColumnSpec>,
    #[serde(default)]
    pub enriched: BTreeMap<String, ColumnSpec>,
    #[serde(default)]
    pub properties: BTreeMap<String, ColumnSpec>,
}

const BUILTIN: &[(&str, &str)] = &[
    ("hubspot-events", include_str!("../../../examples/mappings/hubspot-events.yaml")),
    ("hubspot-contacts", include_str!("../../../examples/mappings/hubspot-contacts.yaml")),
    ("salesforce-events", include_str!("../../../examples/mappings/salesforce-events.yaml")),
    ("salesforce-leads", include_str!("../../../examples/mappings/salesforce-leads.yaml")),
];

impl Mapping {
    /// A built-in mapping by name, or a mapping file.
    pub fn load(name_or_path: &str) -> Result<Self> {
        let text = match BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            Some((_, text)) => (*text).to_owned(),
            None => std::fs::read_to_string(name_or_path).with_context(|| {
                let names: Vec<_> = BUILTIN.iter().map(|(n, _)| *n).collect();
                format!(
                    "`{name_or_path}` is neither a mapping file nor a built-in mapping ({})",
                    names.join(", ")
                )
            })?,
        };
        let mapping: Mapping = serde_saphyr::from_str(&text)
            .map_err(|e| anyhow::anyhow!("mapping `{name_or_path}`: {e}"))?;
        let required: &[&str] = match mapping.kind {
            Kind::Events => &["event_id", "lead_id", "type", "time"],
            Kind::Leads => &["lead_id"],
            Kind::Companies => &["company_id"],
        };
        for f in required {
            if !mapping.fields.contains_key(*f) {
                bail!("mapping `{name_or_path}`: fields.{f} is required for {:?}", mapping.kind);
            }
        }
        Ok(mapping)
    }
}

/// Column positions of a mapping in one file.
struct Resolved<'a> {
    mapping: &'a Mapping,
    index: BTreeMap<String, usize>,
}

impl<'a> Resolved<'a> {
    fn new(mapping: &'a Mapping, headers: &csv::StringRecord) -> Result<Self> {
        let mut index = BTreeMap::new();
        let mut missing = Vec::new();
        let all = mapping
            .fields
            .values()
            .chain(mapping.attributes.values())
            .chain(mapping.enriched.values())
            .chain(mapping.properties.values());
        for spec in all {
            match headers.iter().position(|h| h.trim() == spec.column()) {
                Some(i) => {
                    index.insert(spec.column().to_owned(), i);
                }
                None if spec.optional() => {}
                None => missing.push(spec.column().to_owned()),
            }
        }
        if !missing.is_empty() {
            bail!(
                "the file has no column {}",
                missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
            );
        }
        Ok(Self { mapping, index })
    }

    /// The value of `spec` in `row`: `None` when empty; an error names the field.
    fn value(
        &self,
        row: &csv::StringRecord,
        name: &str,
        spec: &ColumnSpec,
    ) -> Result<Option<Value>, (String, String)> {
        let Some(raw) = self.index.get(spec.column()).and_then(|i| row.get(*i)).map(str::trim)
        else {
            return Ok(None);
        };
        if raw.is_empty() {
            return Ok(None);
        }
        let (kind, values) = match spec {
            ColumnSpec::Header(_) => (ValueType::String, None),
            ColumnSpec::Full { kind, values, .. } => (*kind, Some(values)),
        };
        let raw = match values.and_then(|v| (!v.is_empty()).then_some(v)) {
            Some(v) => v.get(raw).map(String::as_str).ok_or_else(|| {
                (name.to_owned(), format!("unknown value `{raw}` in column `{}`", spec.column()))
            })?,
            None => raw,
        };
        Ok(Some(match kind {
            ValueType::String => Value::String(raw.to_owned()),
            ValueType::Number => raw
                .replace([',', ' '], "")
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(|n| {
                    if n.as_f64().is_some_and(|f| f.fract() == 0.0) {
                        Value::from(n.as_f64().unwrap_or_default() as i64)
                    } else {
                        Value::Number(n)
                    }
                })
                .ok_or_else(|| (name.to_owned(), format!("`{raw}` is not a number")))?,
            ValueType::Bool => match raw.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Value::Bool(true),
                "false" | "no" | "0" => Value::Bool(false),
                _ => return Err((name.to_owned(), format!("`{raw}` is not a boolean"))),
            },
        }))
    }

    fn text(&self, row: &csv::StringRecord, field: &str) -> Result<String, (String, String)> {
        match self.mapping.fields.get(field) {
            Some(spec) => match self.value(row, field, spec)? {
                Some(Value::String(s)) => Ok(s),
                Some(other) => Ok(other.to_string()),
                None if spec.optional() => Ok(String::new()),
                None => Err((field.to_owned(), format!("column `{}` is empty", spec.column()))),
            },
            None => Ok(String::new()),
        }
    }

    fn map(
        &self,
        row: &csv::StringRecord,
        specs: &BTreeMap<String, ColumnSpec>,
    ) -> Result<Map<String, Value>, (String, String)> {
        let mut out = Map::new();
        for (name, spec) in specs {
            if let Some(v) = self.value(row, name, spec)? {
                out.insert(name.clone(), v);
            }
        }
        Ok(out)
    }
}

/// Parses `2026-11-01T10:00:00Z`, `2026-11-01 10:00:00` (UTC) or Unix milliseconds.
fn parse_time(raw: &str) -> Result<i64, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(ms) = raw.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = time::OffsetDateTime::parse(raw, &Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(raw, &format)
        .map(|t| t.assume_utc().unix_timestamp() * 1000)
        .map_err(|_| {
            format!("`{raw}` is not a time (RFC 3339, `YYYY-MM-DD HH:MM:SS` UTC, or Unix ms)")
        })
}

/// An item ready to send.
pub enum Item {
    Event(pb::EventInput),
    Lead(pb::LeadInput),
    Company(pb::CompanyInput),
}

fn item(r: &Resolved<'_>, row: &csv::StringRecord) -> Result<Item, (String, String)> {
    Ok(match r.mapping.kind {
        Kind::Events => {
            let time = parse_time(&r.text(row, "time")?).map_err(|e| ("time".to_owned(), e))?;
            Item::Event(pb::EventInput {
                event_id: r.text(row, "event_id")?,
                lead_id: r.text(row, "lead_id")?,
                r#type: r.text(row, "type")?,
                time: Some(timestamp(time)),
                properties: Some(json_struct(r.map(row, &r.mapping.properties)?)),
            })
        }
        Kind::Leads => Item::Lead(pb::LeadInput {
            lead_id: r.text(row, "lead_id")?,
            company_id: r.text(row, "company_id")?,
            attributes: Some(json_struct(r.map(row, &r.mapping.attributes)?)),
            enriched: Some(json_struct(r.map(row, &r.mapping.enriched)?)),
        }),
        Kind::Companies => Item::Company(pb::CompanyInput {
            company_id: r.text(row, "company_id")?,
            attributes: Some(json_struct(r.map(row, &r.mapping.attributes)?)),
        }),
    })
}

/// Progress saved after every acknowledged batch.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    /// Data rows (after the header) fully handled.
    pub rows: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

fn checkpoint_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".kelvin-import");
    PathBuf::from(name)
}

fn save(path: &Path, c: &Checkpoint) -> Result<()> {
    let tmp = path.with_extension("kelvin-import.tmp");
    std::fs::write(&tmp, serde_json::to_vec(c)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Options of one import.
pub struct Options {
    pub file: PathBuf,
    pub mapping: Mapping,
    pub rejects: PathBuf,
    pub batch: usize,
    pub resume: bool,
    /// Stop after this many rows in this run (resume later).
    pub max_rows: Option<u64>,
}

/// Runs an import; returns the totals (including earlier runs when resuming) and the seconds
/// this run took.
pub async fn run(
    opts: Options,
    mut send: impl FnMut(
        Vec<Item>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Vec<pb::ItemResult>>> + Send>,
    >,
) -> Result<(Checkpoint, f64)> {
    let started = Instant::now();
    let checkpoint_file = checkpoint_path(&opts.file);
    let mut done = if opts.resume && checkpoint_file.exists() {
        serde_json::from_slice(&std::fs::read(&checkpoint_file)?)
            .context("unreadable checkpoint")?
    } else {
        Checkpoint::default()
    };
    let size = std::fs::metadata(&opts.file)
        .with_context(|| format!("cannot read {}", opts.file.display()))?
        .len();
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(&opts.file)?;
    let headers = reader.headers()?.clone();
    let resolved = Resolved::new(&opts.mapping, &headers)?;
    let mut rejects = std::fs::OpenOptions::new()
        .create(true)
        .append(opts.resume)
        .write(true)
        .truncate(!opts.resume)
        .open(&opts.rejects)
        .with_context(|| format!("cannot write {}", opts.rejects.display()))?;
    if !opts.resume || done.rows == 0 {
        writeln!(rejects, "line,field,reason")?;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(size),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut record = csv::StringRecord::new();
    let mut row_number: u64 = 0;
    let mut this_run: u64 = 0;
    loop {
        let mut batch: Vec<(u64, Item)> = Vec::with_capacity(opts.batch);
        let mut batch_rejects: Vec<(u64, String, String)> = Vec::new();
        let mut end = false;
        while batch.len() < opts.batch.max(1) {
            if opts.max_rows.is_some_and(|m| this_run >= m) || !reader.read_record(&mut record)? {
                end = true;
                break;
            }
            row_number += 1;
            if row_number <= done.rows {
                continue;
            }
            this_run += 1;
            // Line numbers count the header as line 1.
            let line = row_number + 1;
            match item(&resolved, &record) {
                Ok(i) => batch.push((line, i)),
                Err((field, reason)) => batch_rejects.push((line, field, reason)),
            }
        }
        let handled = batch.len() as u64 + batch_rejects.len() as u64;
        if !batch.is_empty() {
            let (lines, items): (Vec<u64>, Vec<Item>) = batch.into_iter().unzip();
            let results = send(items).await?;
            for (line, r) in lines.into_iter().zip(results) {
                match pb::ItemStatus::try_from(r.status) {
                    Ok(pb::ItemStatus::Accepted) => done.accepted += 1,
                    Ok(pb::ItemStatus::Duplicate) => done.duplicates += 1,
                    // The server names the field by batch position (`events[3].time`); in the
                    // file, the line says which row: keep the field name alone.
                    _ => {
                        let field = match r.field.split_once("].") {
                            Some((_, f)) => f.to_owned(),
                            None => r.field,
                        };
                        batch_rejects.push((line, field, r.reason));
                    }
                }
            }
        }
        batch_rejects.sort();
        for (line, field, reason) in &batch_rejects {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record([line.to_string().as_str(), field, reason])?;
            rejects.write_all(&w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
        }
        done.rejected += batch_rejects.len() as u64;
        done.rows += handled;
        rejects.flush()?;
        save(&checkpoint_file, &done)?;
        bar.set_position(reader.position().byte());
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!("{} rows, {:.0} rows/s", done.rows, this_run as f64 / secs));
        if end {
            break;
        }
    }
    bar.finish_and_clear();
    let complete = opts.max_rows.is_none_or(|m| this_run < m);
    if complete {
        // Finished: a later import of the same file starts from scratch.
        let _ = std::fs::remove_file(&checkpoint_file);
    }
    Ok((done, started.elapsed().as_secs_f64()))
}
