//! Mapping files: which CSV column holds which field of an event, lead or company, how a value
//! is read (type, value translations) and the built-in HubSpot and Salesforce mappings.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};
use kelvin_proto::convert::{json_struct, timestamp};
use kelvin_proto::v1 as pb;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Item;
use super::checkpoint::sha256_hex;
use super::clock::TimeReader;

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
    ("hubspot-events", include_str!("../../../../examples/mappings/hubspot-events.yaml")),
    ("hubspot-contacts", include_str!("../../../../examples/mappings/hubspot-contacts.yaml")),
    ("salesforce-events", include_str!("../../../../examples/mappings/salesforce-events.yaml")),
    ("salesforce-leads", include_str!("../../../../examples/mappings/salesforce-leads.yaml")),
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
pub(super) struct Resolved<'a> {
    mapping: &'a Mapping,
    index: BTreeMap<String, usize>,
}

impl<'a> Resolved<'a> {
    pub(super) fn new(mapping: &'a Mapping, headers: &csv::StringRecord) -> Result<Self> {
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

/// The item of a data row; an error is the field and the reason.
pub(super) fn item(r: &Resolved<'_>, row: &csv::StringRecord) -> Result<Item, (String, String)> {
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
