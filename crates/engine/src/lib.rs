//! Kelvin's scoring engine: the model language, its validation, compiled evaluation and
//! incremental per-lead state.
//!
//! **Architecture Invariant:** the engine is pure. It does no I/O, reads no clock (`as_of` is a
//! parameter), and no expression in a model can read files, the network or the process: rules
//! are data (typed conditions), never code.
//!
//! ```text
//! YAML / JSON ──ModelSpec::from_yaml/from_json──▶ ModelSpec ──compile()──▶ CompiledModel
//!                                                    │ validate(): Vec<ValidationError>
//! CompiledModel::score(lead, company, events, as_of) ─────────────────────▶ Score
//! LeadState::absorb(model, event) … LeadState::score(model, lead, company, as_of) == the same
//! ```
//!
//! Points are fixed-point `i64` milli-points ([`Points`]); see `docs/model-format.md` for the
//! format, the decay/window/cap semantics and the rounding rule.
//!
//! # API at a glance
//!
//! * Read: [`ModelSpec::from_yaml`], [`ModelSpec::from_json`], [`ModelSpec::from_json_value`]
//!   (a `google.protobuf.Struct` as JSON) → [`ParseError`] `{path, message}`;
//!   [`ModelSpec::to_json_value`] writes it back.
//! * Check: [`ModelSpec::validate`] → every [`ValidationError`] `{path, message}`;
//!   [`ModelSpec::compile`] → [`CompiledModel`] or the same errors. [`CompiledModel::from_yaml`]
//!   and friends do both, with [`Error`] telling parse from validation failures.
//! * Score: [`CompiledModel::score`] (full, with event ids in the explanation),
//!   [`CompiledModel::score_company`]; [`LeadState::absorb`] / [`LeadState::score`] /
//!   [`LeadState::prune`] for the incremental path.
//! * Inputs: [`Lead`], [`Company`], [`Event`] (attributes are [`Value`]s); [`Timestamp`] is ms
//!   since the Unix epoch.

mod compile;
mod condition;
mod eval;
mod fixed;
mod input;
mod model;
mod spec;
mod state;

pub use compile::parse_duration_hours;
pub use condition::{
    FREE_EMAIL_DOMAINS, MAX_DEPTH, MAX_LIST_LEN, MAX_REGEX_LEN, OPERATORS, REGEX_SIZE_LIMIT,
    reads_as_number,
};
pub use eval::{
    CompanyScore, Contribution, ContributionKind, Disqualification, EngagementDetail, Score,
};
pub use fixed::{HOUR_MS, MAX_POINTS_MILLI, Points};
pub use input::{Company, Event, Lead, Timestamp};
pub use model::{
    CompiledModel, DISQUALIFIED, MAX_DURATION_HOURS, MAX_RULES, NumericRead, Subject,
    ValidationError,
};
pub use serde_json::Value;
pub use spec::{
    Aggregate, Bands, Bounds, Cap, Combination, CompanySpec, Condition, DecayKind, DecaySpec,
    EngagementRule, Exclusion, FitRule, Grade, LeadsAggregate, MAX_MODEL_BYTES, Matrix, Method,
    ModelSpec, ParseError, RuleGroup, Threshold, Weights, WindowKind, WindowSpec,
};
pub use state::{LeadState, StateError};

/// Why a model could not be turned into a [`CompiledModel`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The document is not a model (syntax, unknown field, wrong type).
    #[error("invalid model document: {0}")]
    Parse(#[from] ParseError),
    /// The document is a model, but an invalid one.
    #[error("invalid model: {} problem(s), first: {}", .0.len(), .0.first().map(ToString::to_string).unwrap_or_default())]
    Invalid(Vec<ValidationError>),
}

impl From<Vec<ValidationError>> for Error {
    fn from(errors: Vec<ValidationError>) -> Self {
        Error::Invalid(errors)
    }
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl CompiledModel {
    /// Parses, validates and compiles a YAML model.
    pub fn from_yaml(text: &str) -> Result<Self> {
        Ok(ModelSpec::from_yaml(text)?.compile()?)
    }

    /// Parses, validates and compiles a JSON model.
    pub fn from_json(text: &str) -> Result<Self> {
        Ok(ModelSpec::from_json(text)?.compile()?)
    }

    /// Validates and compiles a model given as a JSON value (a `google.protobuf.Struct`).
    pub fn from_json_value(value: Value) -> Result<Self> {
        Ok(ModelSpec::from_json_value(value)?.compile()?)
    }
}
