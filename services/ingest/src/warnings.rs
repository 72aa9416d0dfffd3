//! Warnings on ingested items: a value that an active model's numeric rule reads but cannot read
//! as a number (`"60 000 €"`) would make that rule silently never hold. The item is stored all
//! the same; its result says so (issue 16).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kelvin_engine::{ModelSpec, NumericRead, Subject, reads_as_number};
use kelvin_proto::v1 as pb;
use kelvin_store::{Access, Page, TenantScope};

/// How long a tenant's active versions are reused before they are read again: a publish shows
/// in warnings within this time.
const TTL: Duration = Duration::from_secs(5);
/// Tenants whose reads are kept; past that the map starts over (a cold read is one query).
const MAX_TENANTS: usize = 10_000;

/// The numeric reads of one active model version.
#[derive(Debug)]
pub struct ModelReads {
    model_id: String,
    version: i64,
    reads: Vec<NumericRead>,
}

/// The numeric reads of a tenant's active models.
pub type ActiveReads = Arc<Vec<Arc<ModelReads>>>;

/// Per tenant, the numeric reads of its active models (see [`TTL`]).
#[derive(Debug, Default)]
pub struct NumericReads {
    tenants: Mutex<HashMap<String, (Instant, ActiveReads)>>,
}

impl NumericReads {
    /// The tenant's active models' numeric reads. Warnings are advice: when the models cannot
    /// be read (the store is busy), there are none, and ingestion goes on.
    pub async fn of(&self, access: &Access<'_>, scope: &TenantScope) -> ActiveReads {
        let tenant = scope.tenant_id();
        let previous = match self.tenants.lock() {
            Ok(map) => map.get(tenant).cloned(),
            Err(_) => None,
        };
        if let Some((at, reads)) = &previous
            && at.elapsed() < TTL
        {
            return reads.clone();
        }
        let fresh = match load(access, scope, previous.as_ref().map(|(_, r)| r.as_slice())).await {
            Ok(reads) => Arc::new(reads),
            Err(error) => {
                tracing::warn!(%error, tenant, "reading active models for ingest warnings failed");
                return previous.map(|(_, r)| r).unwrap_or_default();
            }
        };
        if let Ok(mut map) = self.tenants.lock() {
            if map.len() >= MAX_TENANTS && !map.contains_key(tenant) {
                map.clear();
            }
            map.insert(tenant.to_owned(), (Instant::now(), fresh.clone()));
        }
        fresh
    }
}

/// Reads the tenant's active versions, compiling only those not in `previous`.
async fn load(
    access: &Access<'_>,
    scope: &TenantScope,
    previous: Option<&[Arc<ModelReads>]>,
) -> kelvin_store::Result<Vec<Arc<ModelReads>>> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page =
            Page::parse(1000, &token).map_err(|_| kelvin_store::Error::MalformedPageToken)?;
        let (models, next) = access.list_models(scope, &page).await?;
        for m in models.into_iter().filter(|m| m.active_version > 0) {
            let known = previous.and_then(|p| {
                p.iter().find(|r| r.model_id == m.id && r.version == m.active_version).cloned()
            });
            if let Some(known) = known {
                out.push(known);
                continue;
            }
            let version = access.get_model_version(scope, &m.id, m.active_version).await?;
            // A stored version was valid when stored; one that no longer compiles reads nothing.
            let reads = ModelSpec::from_json_value(version.spec)
                .ok()
                .and_then(|s| s.compile().ok())
                .map(|c| c.numeric_reads())
                .unwrap_or_default();
            out.push(Arc::new(ModelReads { model_id: m.id, version: m.active_version, reads }));
        }
        if next.is_empty() {
            return Ok(out);
        }
        token = next;
    }
}

/// Whether any active model reads a value of `subject` as a number (else no item is looked at).
pub fn reads_any(models: &[Arc<ModelReads>], subject: Subject) -> bool {
    models.iter().any(|m| m.reads.iter().any(|r| r.subject == subject))
}

/// Warnings for the values of one item: `values` are (its path prefix, e.g.
/// `leads[2].attributes`, and the values there) of the item's `subject`.
pub fn check(
    models: &[Arc<ModelReads>],
    subject: Subject,
    values: &[(String, Option<&prost_types::Struct>)],
) -> Vec<pb::ItemWarning> {
    let mut out = Vec::new();
    for m in models {
        for read in m.reads.iter().filter(|r| r.subject == subject) {
            for (prefix, fields) in values {
                let Some(value) = fields.and_then(|f| f.fields.get(&read.name)) else { continue };
                let value = kelvin_proto::convert::value_json(value.clone());
                if !reads_as_number(&value) {
                    out.push(pb::ItemWarning {
                        field: format!("{prefix}.{}", read.name),
                        message: format!(
                            "rule `{}` of model `{}` compares `{}` as a number, and {} is not \
                             one: the rule will not hold for this value",
                            read.rule_id,
                            m.model_id,
                            read.name,
                            shown(&value),
                        ),
                        model_id: m.model_id.clone(),
                        rule_id: read.rule_id.clone(),
                    });
                }
            }
        }
    }
    out
}

/// The value as JSON, cut to 40 characters.
fn shown(value: &serde_json::Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}
