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
    /// How `fields.time` is written, in strftime syntax (`%d/%m/%Y %H:%M`). Without it: RFC 3339,
    /// `YYYY-MM-DD HH:MM:SS` or Unix milliseconds.
    #[serde(default)]
    pub time_format: Option<String>,
    /// The zone of times written without an offset: an IANA name (`Europe/Paris`), `UTC`, or a
    /// fixed offset (`+02:00`). Without it, such times are UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// How times are read, from `time_format` and `time_zone`.
    #[serde(skip)]
    clock: TimeReader,
    /// Where the mapping came from and the SHA-256 of its text: a checkpoint names both, so a
    /// resume with another mapping is refused.
    #[serde(skip)]
    pub source: String,
    #[serde(skip)]
    pub sha256: String,
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
        let mut mapping: Mapping = serde_saphyr::from_str(&text)
            .map_err(|e| anyhow::anyhow!("mapping `{name_or_path}`: {e}"))?;
        mapping.clock =
            TimeReader::new(mapping.time_format.as_deref(), mapping.time_zone.as_deref())
                .map_err(|e| anyhow::anyhow!("mapping `{name_or_path}`: {e}"))?;
        mapping.source = name_or_path.to_owned();
        mapping.sha256 = sha256_hex(text.as_bytes());
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

/// The zone of times written without an offset.
#[derive(Debug, Clone, Copy, Default)]
enum Zone {
    #[default]
    Utc,
    Fixed(chrono::FixedOffset),
    Iana(chrono_tz::Tz),
}

impl Zone {
    fn parse(name: &str) -> Result<Self, String> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("utc") || name == "Z" {
            return Ok(Zone::Utc);
        }
        if let Some(sign @ ('+' | '-')) = name.chars().next() {
            // `+HH`, `+HHMM` or `+HH:MM`.
            let rest = &name[1..];
            let digits = |t: &str| t.len() == 2 && t.bytes().all(|b| b.is_ascii_digit());
            let (h, m) = match (rest.get(..2), rest.get(2..)) {
                (Some(h), Some("")) if digits(h) => (h.parse::<i32>().ok(), Some(0)),
                (Some(h), Some(m)) if digits(h) => {
                    let m = m.strip_prefix(':').unwrap_or(m);
                    (h.parse::<i32>().ok(), if digits(m) { m.parse::<i32>().ok() } else { None })
                }
                _ => (None, None),
            };
            let offset = match (h, m) {
                (Some(h), Some(m)) if h <= 23 && m <= 59 => {
                    let secs = (h * 3600 + m * 60) * if sign == '-' { -1 } else { 1 };
                    chrono::FixedOffset::east_opt(secs)
                }
                _ => None,
            };
            return offset.map(Zone::Fixed).ok_or_else(|| {
                format!("time_zone: `{name}` is not an offset like `+02:00` or `-0530`")
            });
        }
        name.parse::<chrono_tz::Tz>().map(Zone::Iana).map_err(|_| {
            format!(
                "time_zone: `{name}` is not a time zone (an IANA name like `Europe/Paris`, `UTC`, or an offset like `+02:00`)"
            )
        })
    }

    /// Unix milliseconds of a local time in this zone. A time skipped by a daylight-saving
    /// change is refused; a repeated one is the earlier instant.
    fn millis(&self, local: chrono::NaiveDateTime, raw: &str) -> Result<i64, String> {
        use chrono::TimeZone as _;
        let t = match self {
            Zone::Utc => Some(local.and_utc().timestamp_millis()),
            Zone::Fixed(o) => {
                o.from_local_datetime(&local).earliest().map(|t| t.timestamp_millis())
            }
            Zone::Iana(tz) => {
                tz.from_local_datetime(&local).earliest().map(|t| t.timestamp_millis())
            }
        };
        t.ok_or_else(|| {
            format!("`{raw}` does not exist in {} (a daylight-saving gap)", self.name())
        })
    }

    fn name(&self) -> String {
        match self {
            Zone::Utc => "UTC".into(),
            Zone::Fixed(o) => o.to_string(),
            Zone::Iana(tz) => tz.name().into(),
        }
    }
}

/// Reads the `time` column: with the mapping's strftime format when it has one, and the
/// mapping's zone for times without an offset.
#[derive(Debug, Clone, Default)]
struct TimeReader {
    format: Option<String>,
    zone: Zone,
}

impl TimeReader {
    /// Checks the mapping's `time_format` and `time_zone`; errors name the field.
    fn new(format: Option<&str>, zone: Option<&str>) -> Result<Self, String> {
        let zone = zone.map(Zone::parse).transpose()?.unwrap_or_default();
        if let Some(f) = format {
            use chrono::format::{Item, StrftimeItems};
            if f.trim().is_empty() || StrftimeItems::new(f).any(|i| matches!(i, Item::Error)) {
                return Err(format!(
                    "time_format: `{f}` is not a strftime format (e.g. `%d/%m/%Y %H:%M`)"
                ));
            }
            if !f.contains("%s")
                && !(["%Y", "%y", "%G", "%F", "%D", "%x", "%c", "%+"].iter().any(|d| f.contains(d)))
            {
                return Err(format!("time_format: `{f}` has no year (`%Y`, `%y`, `%F`...)"));
            }
        }
        Ok(Self { format: format.map(str::to_owned), zone })
    }

    /// Unix milliseconds of `raw`.
    fn parse(&self, raw: &str) -> Result<i64, String> {
        match &self.format {
            Some(f) => self.parse_with(f, raw),
            None => self.parse_default(raw),
        }
    }

    fn parse_with(&self, format: &str, raw: &str) -> Result<i64, String> {
        use chrono::format::{Parsed, StrftimeItems, parse};
        let mut parsed = Parsed::new();
        parse(&mut parsed, raw, StrftimeItems::new(format))
            .map_err(|e| format!("`{raw}` does not match time_format `{format}`: {e}"))?;
        // An offset (or a Unix time) in the value wins over the mapping's zone.
        if parsed.offset().is_some() || parsed.timestamp().is_some() {
            return parsed
                .to_datetime()
                .map(|t| t.timestamp_millis())
                .map_err(|e| format!("`{raw}` does not match time_format `{format}`: {e}"));
        }
        let date = parsed
            .to_naive_date()
            .map_err(|e| format!("`{raw}` does not match time_format `{format}`: {e}"))?;
        // A format without a time of day means midnight.
        let time = if parsed.hour_div_12().is_some() || parsed.hour_mod_12().is_some() {
            parsed
                .to_naive_time()
                .map_err(|e| format!("`{raw}` does not match time_format `{format}`: {e}"))?
        } else {
            chrono::NaiveTime::MIN
        };
        self.zone.millis(date.and_time(time), raw)
    }

    /// RFC 3339, `YYYY-MM-DD HH:MM:SS` (in the mapping's zone, UTC by default) or Unix ms.
    fn parse_default(&self, raw: &str) -> Result<i64, String> {
        if let Ok(ms) = raw.parse::<i64>() {
            return Ok(ms);
        }
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
            return Ok(t.timestamp_millis());
        }
        match chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S") {
            Ok(local) => self.zone.millis(local, raw),
            Err(_) => Err(format!(
                "`{raw}` is not a time (RFC 3339, `YYYY-MM-DD HH:MM:SS` {}, or Unix ms)",
                self.zone.name()
            )),
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a file, read in blocks.
fn file_sha256(path: &Path) -> Result<String> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
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
            let time =
                r.mapping.clock.parse(&r.text(row, "time")?).map_err(|e| ("time".to_owned(), e))?;
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

/// Progress saved after every acknowledged batch, with what it is the progress of: resuming
/// into another tenant, or with another file or mapping, would skip rows that were never sent
/// there.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    /// Empty in checkpoints of older kelvinctl versions, which are refused.
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub file_sha256: String,
    #[serde(default)]
    pub mapping: String,
    #[serde(default)]
    pub mapping_sha256: String,
    /// Data rows (after the header) fully handled.
    pub rows: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

/// Refuses to resume from a checkpoint of another tenant, file content or mapping, naming
/// each difference.
fn check_resumable(saved: &Checkpoint, now: &Checkpoint, path: &Path) -> Result<()> {
    let start_over = "import without --resume to start over";
    if saved.tenant.is_empty() || saved.file_sha256.is_empty() || saved.mapping_sha256.is_empty() {
        bail!(
            "cannot resume: the checkpoint {} comes from an older kelvinctl and does not say which tenant, file and mapping it is for; {start_over}",
            path.display()
        );
    }
    let mut differences = Vec::new();
    if saved.tenant != now.tenant {
        differences.push(format!(
            "tenant: the checkpoint is for `{}`, not `{}`",
            saved.tenant, now.tenant
        ));
    }
    if saved.file_sha256 != now.file_sha256 {
        differences.push(format!(
            "file: its content changed since the checkpoint (SHA-256 {} then, {} now)",
            short(&saved.file_sha256),
            short(&now.file_sha256)
        ));
    }
    if saved.mapping_sha256 != now.mapping_sha256 {
        differences.push(format!(
            "mapping: the checkpoint is for `{}` (SHA-256 {}), not `{}` (SHA-256 {})",
            saved.mapping,
            short(&saved.mapping_sha256),
            now.mapping,
            short(&now.mapping_sha256)
        ));
    }
    if !differences.is_empty() {
        bail!("cannot resume from {}: {}; {start_over}", path.display(), differences.join("; "));
    }
    Ok(())
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
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
    pub tenant: String,
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
    let fresh = Checkpoint {
        tenant: opts.tenant.clone(),
        file_sha256: file_sha256(&opts.file)?,
        mapping: opts.mapping.source.clone(),
        mapping_sha256: opts.mapping.sha256.clone(),
        ..Checkpoint::default()
    };
    let mut done = if opts.resume && checkpoint_file.exists() {
        let saved: Checkpoint = serde_json::from_slice(&std::fs::read(&checkpoint_file)?)
            .with_context(|| format!("unreadable checkpoint {}", checkpoint_file.display()))?;
        check_resumable(&saved, &fresh, &checkpoint_file)?;
        saved
    } else {
        fresh
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ms(rfc3339: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_millis()
    }

    #[test]
    fn a_mapping_format_and_iana_zone_read_local_times() {
        let r = TimeReader::new(Some("%d/%m/%Y %H:%M"), Some("Europe/Paris")).unwrap();
        // Summer time (UTC+2), then winter time (UTC+1).
        assert_eq!(r.parse("20/10/2026 10:00"), Ok(ms("2026-10-20T08:00:00Z")));
        assert_eq!(r.parse("02/11/2026 10:00"), Ok(ms("2026-11-02T09:00:00Z")));
        // The hour skipped by the spring change does not exist; the repeated one is the first.
        assert!(r.parse("29/03/2026 02:30").unwrap_err().contains("daylight-saving gap"));
        assert_eq!(r.parse("25/10/2026 02:30"), Ok(ms("2026-10-25T00:30:00Z")));
        let err = r.parse("2026-11-02 10:00").unwrap_err();
        assert!(err.contains("does not match time_format `%d/%m/%Y %H:%M`"), "{err}");
    }

    #[test]
    fn fixed_offsets_dates_alone_and_offsets_in_values() {
        let r = TimeReader::new(Some("%d/%m/%Y"), Some("-05:00")).unwrap();
        assert_eq!(r.parse("02/11/2026"), Ok(ms("2026-11-02T05:00:00Z")));
        let r = TimeReader::new(Some("%Y-%m-%d %H:%M %z"), Some("+0530")).unwrap();
        assert_eq!(r.parse("2026-11-02 10:00 +0100"), Ok(ms("2026-11-02T09:00:00Z")));
        // Without a format, the zone applies to `YYYY-MM-DD HH:MM:SS` only.
        let r = TimeReader::new(None, Some("+02")).unwrap();
        assert_eq!(r.parse("2026-11-02 10:00:00"), Ok(ms("2026-11-02T08:00:00Z")));
        assert_eq!(r.parse("2026-11-02T10:00:00Z"), Ok(ms("2026-11-02T10:00:00Z")));
        assert_eq!(r.parse("1793527200000"), Ok(1793527200000));
        let r = TimeReader::default();
        assert_eq!(r.parse("2026-11-02 10:00:00"), Ok(ms("2026-11-02T10:00:00Z")));
    }

    #[test]
    fn bad_formats_and_zones_name_the_mapping_field() {
        for zone in ["Europe/Pariss", "+25:00", "+2:0", "local"] {
            let err = TimeReader::new(None, Some(zone)).unwrap_err();
            assert!(err.starts_with("time_zone: "), "{zone}: {err}");
        }
        for format in ["%d/%m/%Y %Q", "", "%H:%M"] {
            let err = TimeReader::new(Some(format), None).unwrap_err();
            assert!(err.starts_with("time_format: "), "{format:?}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.yaml");
        std::fs::write(
            &path,
            "kind: events\nfields: { event_id: a, lead_id: b, type: c, time: d }\ntime_zone: Mars/Olympus\n",
        )
        .unwrap();
        let err = Mapping::load(path.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains("time_zone: `Mars/Olympus`"), "{err}");
    }

    fn checkpoint(tenant: &str, file: &str, mapping: &str) -> Checkpoint {
        Checkpoint {
            tenant: tenant.into(),
            file_sha256: file.into(),
            mapping: "hubspot-events".into(),
            mapping_sha256: mapping.into(),
            rows: 300,
            ..Checkpoint::default()
        }
    }

    #[test]
    fn a_checkpoint_resumes_only_its_tenant_file_and_mapping() {
        let path = Path::new("x.csv.kelvin-import");
        let saved = checkpoint("acme-fr", "f1", "m1");
        assert!(check_resumable(&saved, &checkpoint("acme-fr", "f1", "m1"), path).is_ok());
        let err = check_resumable(&saved, &checkpoint("acme-de", "f2", "m2"), path)
            .unwrap_err()
            .to_string();
        for part in
            ["tenant: the checkpoint is for `acme-fr`, not `acme-de`", "file: ", "mapping: "]
        {
            assert!(err.contains(part), "{part}: {err}");
        }
        let old: Checkpoint =
            serde_json::from_str(r#"{"rows":300,"accepted":300,"duplicates":0,"rejected":0}"#)
                .unwrap();
        let err = check_resumable(&old, &saved, path).unwrap_err().to_string();
        assert!(err.contains("older kelvinctl"), "{err}");
    }
}
