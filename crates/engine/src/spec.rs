//! The model format: the serde types that are the single source of truth for a model version.
//!
//! JSON and YAML map 1:1 onto these types (the gRPC contract carries a model as a
//! `google.protobuf.Struct`, i.e. JSON). Every struct denies unknown fields. Parsing only checks
//! the shape; [`ModelSpec::validate`] and [`ModelSpec::compile`] check the meaning.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where and why a model document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ParseError {
    /// Path of the offending element, e.g. `engagement[2].cap.pionts` (`.` for the document root).
    pub path: String,
    /// What is wrong, lowercase.
    pub message: String,
}

/// One scoring model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Free text shown to people; never interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Default time decay of engagement rules that do not set their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay: Option<DecaySpec>,
    /// Fit rules: conditions on lead (and company) attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fit: Vec<FitRule>,
    /// Disqualifiers: a match forces the band `disqualified`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclusions: Vec<Exclusion>,
    /// Engagement rules: points per matching event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub engagement: Vec<EngagementRule>,
    /// How fit and engagement make the total.
    #[serde(default)]
    pub combination: Combination,
    /// Bands: thresholds on the total, or a fit-grade × engagement-grade matrix.
    pub bands: Bands,
    /// Company (account) scoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<CompanySpec>,
    /// Named groups of rules with a weight each (a rule joins one with `group`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub groups: std::collections::BTreeMap<String, RuleGroup>,
}

/// A group of rules weighted together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    /// Multiplies the points of every rule of the group.
    pub weight: f64,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A condition: exactly one of `all`, `any`, `not`, or a test (`field` + `op` [+ `value`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Every sub-condition holds (an empty list is rejected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<Vec<Condition>>,
    /// At least one sub-condition holds (an empty list is rejected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<Condition>>,
    /// The sub-condition does not hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<Condition>>,
    /// `lead.<attr>`, `company.<attr>`, `event.type` or `event.<property>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Operator name, see `docs/model-format.md`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// Operand of the operator (absent for `exists`, `is_true`, `free_email`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

/// Points when a condition on lead/company attributes holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitRule {
    /// Unique among all rules of the model.
    pub id: String,
    /// Free text shown in explanations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Condition on `lead.*` / `company.*` fields.
    pub when: Condition,
    /// Points, positive or negative, at most 3 decimals.
    pub points: f64,
    /// Multiplies the rule's points (seed 004's weighted criteria): `2` doubles them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// A group of `groups` whose weight also multiplies the points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// A disqualifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclusion {
    /// Unique among all rules of the model.
    pub id: String,
    /// Reason given to sales when this exclusion disqualifies a lead.
    pub reason: String,
    /// Condition on `lead.*` / `company.*` fields.
    pub when: Condition,
    /// Points the exclusion also counts in the total (seed 004's "email does not exist:
    /// −1000"), after every bound: the lead is disqualified and ranks below the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<f64>,
    /// Multiplies the rule's points (seed 004's weighted criteria): `2` doubles them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// A group of `groups` whose weight also multiplies the points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// Points per matching event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngagementRule {
    /// Unique among all rules of the model.
    pub id: String,
    /// Free text shown in explanations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Condition on `event.*` fields only.
    pub when: Condition,
    /// Points per award (per matching event, or per qualifying window).
    pub points: f64,
    /// Bound on the (decayed) points of this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<Cap>,
    /// Frequency window: award points when at least `count` events fall in one window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowSpec>,
    /// Overrides the model's decay for this rule (`{type: none}` disables it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay: Option<DecaySpec>,
    /// Award at most once per lead (the earliest award counts).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub once: bool,
    /// Multiplies the points of each award (a cap bounds the weighted points).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// A group of `groups` whose weight also multiplies the points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// At most `points` (in magnitude) from one rule, in total or per period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cap {
    /// Positive bound on the magnitude of the rule's points.
    pub points: f64,
    /// Period (`"7d"`, `"24h"`): the bound applies per epoch-aligned period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per: Option<String>,
}

/// Frequency window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// Minimum number of matching events in one window (>= 2).
    pub count: u32,
    /// Window length (`"72h"`), whole hours.
    pub within: String,
    /// How windows are drawn (default `sliding`); see `docs/model-format.md`.
    #[serde(default, skip_serializing_if = "WindowKind::is_sliding")]
    pub kind: WindowKind,
}

/// How a frequency window is drawn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// "At least `count` matching events within any `within` hours": an award, dated at the
    /// event that completes it, each time `count` events not already used by an award fall
    /// within `within` hours.
    #[default]
    Sliding,
    /// Epoch-aligned blocks of `within` hours, one award per block that holds `count` events
    /// (the meaning of `window` before sliding windows; kept for stored models).
    Tumbling,
    /// "At least `count` matching events in the last `within` hours": one award, dated at
    /// `as_of`, that holds only while the last `within` hours before `as_of` hold `count`
    /// events (HubSpot's "in the last X days").
    Rolling,
}

impl WindowKind {
    fn is_sliding(&self) -> bool {
        *self == Self::Sliding
    }
}

/// Kind of time decay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecayKind {
    /// No decay.
    None,
    /// Exponential: half the weight every `duration`.
    HalfLife,
    /// Linear to zero at `duration`.
    Linear,
    /// Full weight until `duration`, then nothing.
    Expire,
}

/// Time decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecaySpec {
    /// Kind of decay.
    #[serde(rename = "type")]
    pub kind: DecayKind,
    /// Duration (`"30d"`), whole hours; required unless `type: none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

/// Optional lower and upper bounds (points).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// Lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// Weights of fit and engagement; they must sum to 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    /// Weight of fit, 0..=1, at most 3 decimals.
    pub fit: f64,
    /// Weight of engagement, 0..=1, at most 3 decimals.
    pub engagement: f64,
}

/// How fit and engagement are combined.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// total = fit + engagement.
    #[default]
    Sum,
    /// total = fit × w.fit + engagement × w.engagement.
    Weights(Weights),
}

/// Combination of fit and engagement into the total.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Combination {
    /// Bounds on fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<Bounds>,
    /// Bounds on engagement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engagement: Option<Bounds>,
    /// `sum` (default) or `{weights: {fit, engagement}}`.
    #[serde(default)]
    pub method: Method,
    /// Bounds on the total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<Bounds>,
}

/// One band of a threshold list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// Band name (`hot`); `disqualified` is reserved.
    pub label: String,
    /// Lowest total of this band (inclusive); the last band has none and catches the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Exclusive lower bound, instead of `min`: `above: 70` is "more than 70 points".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// What the band stands for (`sales call within 24 business hours`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// One grade of a matrix axis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grade {
    /// Grade name (`A`, `1`).
    pub grade: String,
    /// Lowest score of this grade (inclusive); the last grade has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Exclusive lower bound, instead of `min`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
}

/// Fit-grade × engagement-grade matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    /// Grades of fit, highest first.
    pub fit_grades: Vec<Grade>,
    /// Grades of engagement, highest first.
    pub engagement_grades: Vec<Grade>,
    /// Label of each cell, keyed by fit grade then engagement grade (`A1`).
    pub cells: BTreeMap<String, String>,
    /// Action of each label.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub actions: BTreeMap<String, String>,
}

/// Bands of the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bands {
    /// Ordered thresholds on the total, highest first.
    Thresholds(Vec<Threshold>),
    /// Matrix of fit grade × engagement grade.
    Matrix(Matrix),
}

/// How a company aggregates its leads' totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// Best lead.
    Max,
    /// Sum of the leads (or of the top `top`).
    Sum,
    /// Mean of the top `top` leads.
    MeanTopN,
}

/// Leads part of company scoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadsAggregate {
    /// Aggregate function.
    pub aggregate: Aggregate,
    /// Number of best leads considered (required for `mean_top_n`, optional for `sum`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<u32>,
}

/// Company (account) scoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompanySpec {
    /// Fit rules on `company.*` fields only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fit: Vec<FitRule>,
    /// Aggregate of the company's leads' totals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leads: Option<LeadsAggregate>,
    /// Bounds on the company total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<Bounds>,
    /// Bands of the company total (same form as lead thresholds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bands: Option<Vec<Threshold>>,
}

/// Largest model document accepted, in bytes (1 MiB).
pub const MAX_MODEL_BYTES: usize = 1 << 20;

fn check_size(text: &str) -> Result<(), ParseError> {
    if text.len() > MAX_MODEL_BYTES {
        return Err(ParseError {
            path: ".".to_owned(),
            message: format!("model document larger than {MAX_MODEL_BYTES} bytes"),
        });
    }
    Ok(())
}

impl ModelSpec {
    /// Reads a model from YAML (same shape as JSON).
    pub fn from_yaml(text: &str) -> Result<Self, ParseError> {
        check_size(text)?;
        // YAML 1.2 booleans only: `NO` (Norway), `Y`, `on` stay strings.
        let options = serde_saphyr::options! {
            strict_booleans: true,
            with_snippet: false,
        };
        let value: serde_json::Value =
            serde_saphyr::from_str_with_options(text, options).map_err(|e| ParseError {
                path: ".".to_owned(),
                message: first_line(&e.to_string()),
            })?;
        Self::from_json_value(value)
    }

    /// Reads a model from JSON text.
    pub fn from_json(text: &str) -> Result<Self, ParseError> {
        check_size(text)?;
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ParseError { path: ".".to_owned(), message: e.to_string() })?;
        Self::from_json_value(value)
    }

    /// Reads a model from a JSON value (what a `google.protobuf.Struct` converts to).
    pub fn from_json_value(value: serde_json::Value) -> Result<Self, ParseError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            // A key that is the empty string prints as an empty path: never leave a refusal
            // without a path.
            let path = match e.path().to_string() {
                p if p.is_empty() => ".".to_owned(),
                p => p,
            };
            ParseError { path, message: e.into_inner().to_string() }
        })
    }

    /// The model as a JSON value (round-trips through [`ModelSpec::from_json_value`]).
    pub fn to_json_value(&self) -> serde_json::Value {
        // Serializing these plain data types into a `Value` cannot fail (string keys only,
        // no non-finite floats are produced by parsing JSON or YAML).
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_owned()
}
