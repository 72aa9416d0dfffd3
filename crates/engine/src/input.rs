//! What the engine scores: leads, companies and events.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Milliseconds since the Unix epoch (UTC). The engine never reads a clock.
pub type Timestamp = i64;

/// A lead (contact). Explicit (form) and enriched attributes share one map: a model reads both
/// as `lead.<attr>`; name enriched attributes distinctly (e.g. `email_validity`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lead {
    /// Attribute values (`null` counts as absent).
    #[serde(default)]
    pub attributes: BTreeMap<String, Value>,
}

/// A company (account); read as `company.<attr>`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Company {
    /// Attribute values (`null` counts as absent).
    #[serde(default)]
    pub attributes: BTreeMap<String, Value>,
}

/// Something a lead did.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Idempotency id (unique per tenant; the engine does not deduplicate).
    pub id: String,
    /// Event type (`page_view`, `email_open`, ...), read as `event.type`; serialized as
    /// `type` (`kind` is accepted too).
    #[serde(rename = "type", alias = "kind")]
    pub kind: String,
    /// When it happened, ms since the Unix epoch.
    pub time_ms: Timestamp,
    /// Properties (`url`, `title`, `link`, ...), read as `event.<property>`.
    #[serde(default)]
    pub properties: BTreeMap<String, Value>,
}

impl Lead {
    /// A lead from `(name, value)` pairs.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<Value>,
    {
        Lead { attributes: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }
}

impl Company {
    /// A company from `(name, value)` pairs.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<Value>,
    {
        Company { attributes: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }
}

impl Event {
    /// An event without properties.
    pub fn new(id: impl Into<String>, kind: impl Into<String>, time_ms: Timestamp) -> Self {
        Event { id: id.into(), kind: kind.into(), time_ms, properties: BTreeMap::new() }
    }

    /// Adds a property.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }
}
