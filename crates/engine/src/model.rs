//! The compiled form of a model, [`CompiledModel`]: what scoring reads (rules with their
//! conditions compiled, points in milli-points, bands as ladders). `compile.rs` builds it from
//! a [`ModelSpec`] and reports every [`ValidationError`].

use std::collections::BTreeMap;

use crate::condition::Cond;
use crate::fixed::Decay;
use crate::spec::{Aggregate, ModelSpec};

/// A problem in a model, with the path of the element it is about.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, thiserror::Error,
)]
#[error("{path}: {message}")]
pub struct ValidationError {
    /// Path of the element, e.g. `engagement[2].cap.points`, `bands.thresholds[1].min`.
    pub path: String,
    /// What is wrong, lowercase, no trailing period.
    pub message: String,
}

impl ValidationError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError { path: path.into(), message: message.into() }
    }
}

/// Most rules in one section (fit, exclusions, engagement, company fit).
pub const MAX_RULES: usize = 1000;
/// Longest duration accepted (100 years), in hours.
pub const MAX_DURATION_HOURS: i64 = 100 * 366 * 24;
/// Label reserved for disqualified leads.
pub const DISQUALIFIED: &str = "disqualified";

#[derive(Debug, Clone)]
pub(crate) struct CFit {
    pub id: String,
    /// Points after the rule's weight.
    pub points: i64,
    pub cond: Cond,
    /// The weight applied (rule × group), in thousandths, for the explanation.
    pub weight: Option<i64>,
}

#[derive(Debug, Clone)]
pub(crate) struct CExclusion {
    pub id: String,
    pub reason: String,
    pub cond: Cond,
    /// Milli-points added to the total when it matches (0: none), after the weight.
    pub points: i64,
    pub weight: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct CCap {
    pub milli: i64,
    pub per_hours: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct CWindow {
    pub count: u32,
    pub hours: i64,
    pub kind: crate::spec::WindowKind,
}

#[derive(Debug, Clone)]
pub(crate) struct CEngagement {
    pub id: String,
    pub points: i64,
    pub cond: Cond,
    pub cap: Option<CCap>,
    pub window: Option<CWindow>,
    pub decay: Decay,
    pub once: bool,
    /// The weight applied to `points` (rule × group), in thousandths.
    pub weight: Option<i64>,
    /// The condition reads lead or company attributes too.
    pub reads_attributes: bool,
    /// Set when `cond` can only hold for some event types (see [`CompiledModel::event_types`]).
    pub types: Option<TypeFilter>,
}

/// An engagement rule's event types, as bits over [`CompiledModel::event_types`], and what
/// remains of its condition for an event of one of them (`None`: it holds).
#[derive(Debug, Clone)]
pub(crate) struct TypeFilter {
    pub mask: u64,
    pub rest: Option<Cond>,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CBounds {
    pub min: Option<i64>,
    pub max: Option<i64>,
}

impl CBounds {
    pub(crate) fn apply(self, x: i64) -> i64 {
        let x = self.min.map_or(x, |m| x.max(m));
        self.max.map_or(x, |m| x.min(m))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CThreshold {
    pub label: String,
    pub min: Option<i64>,
    pub action: Option<String>,
}

/// First threshold whose min is at or below `x`; the last one catches the rest.
pub(crate) fn pick(thresholds: &[CThreshold], x: i64) -> Option<&CThreshold> {
    thresholds.iter().find(|t| t.min.is_none_or(|m| x >= m)).or(thresholds.last())
}

#[derive(Debug, Clone)]
pub(crate) enum CBands {
    Thresholds(Vec<CThreshold>),
    Matrix {
        fit: Vec<CThreshold>,
        engagement: Vec<CThreshold>,
        /// `cells[f][e]` = (grade, label).
        cells: Vec<Vec<(String, String)>>,
        actions: BTreeMap<String, String>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct CCompany {
    pub fit: Vec<CFit>,
    pub leads: Option<(Aggregate, Option<u32>)>,
    pub total: CBounds,
    pub bands: Option<Vec<CThreshold>>,
}

/// A validated model, ready to score. Cheap to share (`Arc`) between threads.
#[derive(Debug, Clone)]
pub struct CompiledModel {
    pub(crate) spec: ModelSpec,
    pub(crate) fit: Vec<CFit>,
    pub(crate) exclusions: Vec<CExclusion>,
    pub(crate) engagement: Vec<CEngagement>,
    pub(crate) fit_bounds: CBounds,
    pub(crate) engagement_bounds: CBounds,
    /// Weights of fit and engagement in thousandths (sum 1000), or plain sum.
    pub(crate) weights: Option<(i64, i64)>,
    pub(crate) total_bounds: CBounds,
    pub(crate) bands: CBands,
    pub(crate) company: Option<CCompany>,
    /// Sorted event types named by the engagement rules' type filters (at most 64; bit `i` of
    /// a [`TypeFilter::mask`] is `event_types[i]`).
    pub(crate) event_types: Vec<String>,
}

impl CompiledModel {
    /// The model this was compiled from.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Whether an engagement condition reads lead or company attributes: a change of those
    /// must rescore the lead from all its events (past awards follow the current attributes).
    pub fn engagement_reads_attributes(&self) -> bool {
        self.engagement.iter().any(|r| r.reads_attributes)
    }

    /// Number of engagement rules (what [`crate::LeadState`] keeps counts for).
    pub fn engagement_rule_count(&self) -> usize {
        self.engagement.len()
    }

    /// Every value the model compares as a number, with the first rule that does (in model
    /// order: fit, exclusions, engagement, company fit), one entry per field.
    pub fn numeric_reads(&self) -> Vec<NumericRead> {
        use crate::condition::FieldRef;
        let rules = self
            .fit
            .iter()
            .map(|r| (&r.id, &r.cond))
            .chain(self.exclusions.iter().map(|r| (&r.id, &r.cond)))
            .chain(self.engagement.iter().map(|r| (&r.id, &r.cond)))
            .chain(self.company.iter().flat_map(|c| c.fit.iter().map(|r| (&r.id, &r.cond))));
        let mut out: Vec<NumericRead> = Vec::new();
        for (rule_id, cond) in rules {
            let mut fields = Vec::new();
            cond.numeric_fields(&mut fields);
            for field in fields {
                let (subject, name) = match field {
                    FieldRef::Lead(k) => (Subject::Lead, k),
                    FieldRef::Company(k) => (Subject::Company, k),
                    FieldRef::EventProp(k) => (Subject::Event, k),
                    FieldRef::EventType => continue,
                };
                if !out.iter().any(|r| r.subject == subject && &r.name == name) {
                    out.push(NumericRead { subject, name: name.clone(), rule_id: rule_id.clone() });
                }
            }
        }
        out
    }
}

/// What a value belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A lead attribute (`lead.<name>`), explicit or enriched.
    Lead,
    /// A company attribute (`company.<name>`).
    Company,
    /// An event property (`event.<name>`).
    Event,
}

/// A value a model compares as a number (see [`CompiledModel::numeric_reads`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumericRead {
    pub subject: Subject,
    /// Attribute or property name.
    pub name: String,
    /// The first rule that reads it.
    pub rule_id: String,
}

#[cfg(test)]
mod numeric_read_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::reads_as_number;

    #[test]
    fn numeric_reads_name_each_field_once_with_its_first_rule() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/models/b2b-saas.yaml"
        ))
        .unwrap();
        let model = ModelSpec::from_yaml(&text).unwrap().compile().unwrap();
        let all = model.numeric_reads();
        let reads: Vec<(Subject, &str, &str)> =
            all.iter().map(|r| (r.subject, r.name.as_str(), r.rule_id.as_str())).collect();
        assert!(reads.contains(&(Subject::Lead, "company_size", "company_size_mid")), "{reads:?}");
        assert!(reads.iter().any(|r| r.1 == "budget"), "{reads:?}");
        assert!(reads.iter().any(|r| r.0 == Subject::Company && r.1 == "employees"), "{reads:?}");
        assert_eq!(reads.iter().filter(|r| r.1 == "company_size").count(), 1);
        assert!(!reads.iter().any(|r| r.1 == "country"), "{reads:?}");
    }

    #[test]
    fn what_numeric_tests_can_read() {
        use serde_json::json;
        for ok in [json!(60000), json!("60000"), json!(" 1.5 "), json!(null), json!([1, "2"])] {
            assert!(reads_as_number(&ok), "{ok}");
        }
        for bad in [json!("60 000 €"), json!("big"), json!(true), json!({"a": 1}), json!([1, "x"])]
        {
            assert!(!reads_as_number(&bad), "{bad}");
        }
    }
}
