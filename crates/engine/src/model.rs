//! Validation and compilation of a [`ModelSpec`] into a [`CompiledModel`].

use std::collections::{BTreeMap, BTreeSet};

use crate::condition::{self, Cond, Reads};
use crate::fixed::{Decay, to_milli};
use crate::spec::{
    Aggregate, Bands, Bounds, DecayKind, DecaySpec, FitRule, Method, ModelSpec, Threshold,
};

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

/// One rung of a ladder as written: label, `min`, `above`, action.
type Rung = (String, Option<f64>, Option<f64>, Option<String>);

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

    /// Number of engagement rules (what [`crate::LeadState`] keeps counts for).
    /// Whether an engagement condition reads lead or company attributes: a change of those
    /// must rescore the lead from all its events (past awards follow the current attributes).
    pub fn engagement_reads_attributes(&self) -> bool {
        self.engagement.iter().any(|r| r.reads_attributes)
    }

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

impl ModelSpec {
    /// Every problem of the model, in document order (empty when the model is valid).
    pub fn validate(&self) -> Vec<ValidationError> {
        match self.compile() {
            Ok(_) => Vec::new(),
            Err(errors) => errors,
        }
    }

    /// Validates and compiles the model (regexes are compiled here, once).
    pub fn compile(&self) -> Result<CompiledModel, Vec<ValidationError>> {
        let mut cx = Compiler::default();
        let out = cx.model(self);
        match out {
            Some(m) if cx.errors.is_empty() => Ok(m),
            _ => Err(cx.errors),
        }
    }
}

/// Gives every engagement rule whose condition only holds for some event types a
/// [`TypeFilter`], and returns the sorted types they name (none when there are more than 64:
/// then every rule evaluates its whole condition on every event).
fn index_event_types(rules: &mut [CEngagement]) -> Vec<String> {
    let splits: Vec<_> = rules.iter().map(|r| r.cond.split_event_types()).collect();
    let names: BTreeSet<&str> =
        splits.iter().flatten().flat_map(|(types, _)| types.iter().copied()).collect();
    if names.len() > 64 {
        return Vec::new();
    }
    let names: Vec<String> = names.into_iter().map(str::to_owned).collect();
    let filters: Vec<Option<TypeFilter>> = splits
        .into_iter()
        .map(|split| {
            split.map(|(types, rest)| TypeFilter {
                mask: types.iter().fold(0, |m, t| {
                    m | names.binary_search_by(|n| n.as_str().cmp(t)).map_or(0, |i| 1 << i)
                }),
                rest,
            })
        })
        .collect();
    for (rule, filter) in rules.iter_mut().zip(filters) {
        rule.types = filter;
    }
    names
}

#[derive(Default)]
struct Compiler {
    errors: Vec<ValidationError>,
    ids: BTreeMap<String, String>,
    /// Weights of `groups`, in thousandths.
    groups: BTreeMap<String, i64>,
}

/// Largest weight of a rule or group.
const MAX_WEIGHT: f64 = 1000.0;

/// `points` (milli) times `weight` (thousandths), rounded half to even.
fn weighted(points: i64, weight: Option<i64>) -> i64 {
    match weight {
        None => points,
        Some(w) => crate::fixed::div_round_half_even(i128::from(points) * i128::from(w), 1000)
            .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
    }
}

fn collect<T>(items: impl Iterator<Item = Option<T>>) -> Option<Vec<T>> {
    let mut out = Vec::new();
    let mut ok = true;
    for i in items {
        match i {
            Some(x) => out.push(x),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

impl Compiler {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ValidationError::new(path, message));
    }

    fn model(&mut self, spec: &ModelSpec) -> Option<CompiledModel> {
        for (name, len) in [
            ("fit", spec.fit.len()),
            ("exclusions", spec.exclusions.len()),
            ("engagement", spec.engagement.len()),
        ] {
            if len > MAX_RULES {
                self.err(name, format!("at most {MAX_RULES} rules are allowed"));
                return None;
            }
        }
        for (name, g) in &spec.groups {
            if let Some(w) = self.weight_value(g.weight, &format!("groups.{name}.weight")) {
                self.groups.insert(name.clone(), w);
            }
        }
        let default_decay = match &spec.decay {
            Some(d) => self.decay(d, "decay"),
            None => Some(Decay::None),
        };
        let fit = collect(
            spec.fit.iter().enumerate().map(|(i, r)| self.fit_rule(r, &format!("fit[{i}]"), false)),
        );
        let exclusions = collect(spec.exclusions.iter().enumerate().map(|(i, r)| {
            let path = format!("exclusions[{i}]");
            self.id(&r.id, &path);
            if r.reason.trim().is_empty() {
                self.err(format!("{path}.reason"), "must not be empty");
            }
            let weight = self.rule_weight(r.weight, r.group.as_deref(), &path)?;
            let points = match r.points {
                Some(p) => weighted(self.points(p, &format!("{path}.points"), true)?, weight),
                None => 0,
            };
            let cond = self.attr_condition(&r.when, &format!("{path}.when"), false)?;
            Some(CExclusion { id: r.id.clone(), reason: r.reason.clone(), cond, points, weight })
        }));
        let engagement = collect(spec.engagement.iter().enumerate().map(|(i, r)| {
            let path = format!("engagement[{i}]");
            self.id(&r.id, &path);
            let weight = self.rule_weight(r.weight, r.group.as_deref(), &path);
            let points = self
                .points(r.points, &format!("{path}.points"), true)
                .zip(weight)
                .map(|(p, w)| weighted(p, w));
            let weight = weight.flatten();
            let mut reads = Reads::default();
            let cond = condition::compile(
                &r.when,
                &format!("{path}.when"),
                0,
                &mut reads,
                &mut self.errors,
            );
            // `lead.*` / `company.*` may be read beside `event.*` ("a student who reads job
            // offers"): the lead is then rescored from all its events when they change.
            let reads_attributes = reads.lead || reads.company;
            if cond.is_some() {
                if !reads.event {
                    self.err(
                        format!("{path}.when"),
                        "an engagement condition must read at least one `event.*` field",
                    );
                }
            }
            let cap = match &r.cap {
                None => Some(None),
                Some(c) => {
                    let milli = self.points(c.points, &format!("{path}.cap.points"), false);
                    if milli.is_some_and(|m| m <= 0) {
                        self.err(format!("{path}.cap.points"), "a cap must be greater than 0");
                    }
                    let per = match &c.per {
                        None => Some(None),
                        Some(p) => self.duration(p, &format!("{path}.cap.per")).map(Some),
                    };
                    match (milli, per) {
                        (Some(m), Some(per_hours)) if m > 0 => {
                            Some(Some(CCap { milli: m, per_hours }))
                        }
                        _ => None,
                    }
                }
            };
            let window = match &r.window {
                None => Some(None),
                Some(w) => {
                    let count_ok = (2..=10_000).contains(&w.count);
                    if !count_ok {
                        self.err(
                            format!("{path}.window.count"),
                            "a window needs a count from 2 to 10000",
                        );
                    }
                    let hours = self.duration(&w.within, &format!("{path}.window.within"));
                    match hours {
                        Some(h) if count_ok => {
                            Some(Some(CWindow { count: w.count, hours: h, kind: w.kind }))
                        }
                        _ => None,
                    }
                }
            };
            let decay = match &r.decay {
                Some(d) => self.decay(d, &format!("{path}.decay")),
                None => default_decay,
            };
            Some(CEngagement {
                id: r.id.clone(),
                points: points?,
                cond: cond?,
                cap: cap?,
                window: window?,
                decay: decay?,
                once: r.once,
                types: None,
                weight,
                reads_attributes,
            })
        }));
        let c = &spec.combination;
        let fit_bounds = self.bounds(c.fit.as_ref(), "combination.fit");
        let engagement_bounds = self.bounds(c.engagement.as_ref(), "combination.engagement");
        let total_bounds = self.bounds(c.total.as_ref(), "combination.total");
        let weights = match &c.method {
            Method::Sum => Some(None),
            Method::Weights(w) => {
                let p = "combination.method.weights";
                let f = self.weight(w.fit, &format!("{p}.fit"));
                let e = self.weight(w.engagement, &format!("{p}.engagement"));
                match (f, e) {
                    (Some(f), Some(e)) if f + e == 1000 => Some(Some((f, e))),
                    (Some(_), Some(_)) => {
                        self.err(p, "weights of fit and engagement must sum to 1");
                        None
                    }
                    _ => None,
                }
            }
        };
        let bands = self.bands(&spec.bands);
        let company = match &spec.company {
            None => Some(None),
            Some(cs) => {
                if cs.fit.len() > MAX_RULES {
                    self.err("company.fit", format!("at most {MAX_RULES} rules are allowed"));
                }
                let fit = collect(
                    cs.fit
                        .iter()
                        .enumerate()
                        .map(|(i, r)| self.fit_rule(r, &format!("company.fit[{i}]"), true)),
                );
                let leads = match &cs.leads {
                    None => Some(None),
                    Some(l) => match (l.aggregate, l.top) {
                        (Aggregate::MeanTopN, None) => {
                            self.err("company.leads.top", "`mean_top_n` needs `top`");
                            None
                        }
                        (Aggregate::Max, Some(_)) => {
                            self.err(
                                "company.leads.top",
                                "`top` applies only to `sum` and `mean_top_n`",
                            );
                            None
                        }
                        (_, Some(0)) => {
                            self.err("company.leads.top", "must be at least 1");
                            None
                        }
                        (a, t) => Some(Some((a, t))),
                    },
                };
                let total = self.bounds(cs.total.as_ref(), "company.total");
                let bands = match &cs.bands {
                    None => Some(None),
                    Some(t) => self.thresholds(t, "company.bands", "label").map(Some),
                };
                Some(Some(CCompany { fit: fit?, leads: leads?, total: total?, bands: bands? }))
            }
        };
        let mut engagement = engagement?;
        let event_types = index_event_types(&mut engagement);
        Some(CompiledModel {
            spec: spec.clone(),
            fit: fit?,
            exclusions: exclusions?,
            engagement,
            fit_bounds: fit_bounds?,
            engagement_bounds: engagement_bounds?,
            weights: weights?,
            total_bounds: total_bounds?,
            bands: bands?,
            company: company?,
            event_types,
        })
    }

    fn id(&mut self, id: &str, path: &str) {
        let valid = !id.is_empty()
            && id.len() <= 64
            && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            self.err(
                format!("{path}.id"),
                "a rule id is 1 to 64 characters among a-z, A-Z, 0-9, `_`, `-`, `.`",
            );
        } else if let Some(first) = self.ids.get(id) {
            let msg = format!("duplicate rule id `{id}` (first used at {first})");
            self.err(format!("{path}.id"), msg);
        } else {
            self.ids.insert(id.to_owned(), format!("{path}.id"));
        }
    }

    fn points(&mut self, x: f64, path: &str, nonzero: bool) -> Option<i64> {
        match to_milli(x) {
            Ok(0) if nonzero => {
                self.err(path, "must not be zero");
                None
            }
            Ok(m) => Some(m),
            Err(e) => {
                self.err(path, e);
                None
            }
        }
    }

    fn weight(&mut self, x: f64, path: &str) -> Option<i64> {
        match to_milli(x) {
            Ok(m) if (0..=1000).contains(&m) => Some(m),
            Ok(_) => {
                self.err(path, "a weight is between 0 and 1");
                None
            }
            Err(e) => {
                self.err(path, e);
                None
            }
        }
    }

    fn fit_rule(&mut self, r: &FitRule, path: &str, company_only: bool) -> Option<CFit> {
        self.id(&r.id, path);
        let weight = self.rule_weight(r.weight, r.group.as_deref(), path)?;
        let points = self.points(r.points, &format!("{path}.points"), true);
        let cond = self.attr_condition(&r.when, &format!("{path}.when"), company_only);
        Some(CFit { id: r.id.clone(), points: weighted(points?, weight), cond: cond?, weight })
    }

    /// A weight: positive, at most `MAX_WEIGHT`, at most 3 decimals; in thousandths.
    fn weight_value(&mut self, w: f64, path: &str) -> Option<i64> {
        if !(w > 0.0 && w <= MAX_WEIGHT) {
            self.err(path, format!("a weight is above 0 and at most {MAX_WEIGHT}"));
            return None;
        }
        match crate::fixed::to_milli(w) {
            Ok(m) if m > 0 => Some(m),
            Ok(_) => {
                self.err(path, "a weight is above 0");
                None
            }
            Err(e) => {
                self.err(path, e);
                None
            }
        }
    }

    /// The weight of a rule at `path`: its own `weight` times its `group`'s, in thousandths
    /// (`Some(None)`: unweighted; `None`: an error was recorded).
    fn rule_weight(
        &mut self,
        own: Option<f64>,
        group: Option<&str>,
        path: &str,
    ) -> Option<Option<i64>> {
        let own = match own {
            Some(w) => Some(self.weight_value(w, &format!("{path}.weight"))?),
            None => None,
        };
        let group = match group {
            Some(name) => match self.groups.get(name) {
                Some(w) => Some(*w),
                None => {
                    self.err(format!("{path}.group"), format!("no group `{name}` in `groups`"));
                    return None;
                }
            },
            None => None,
        };
        Some(match (own, group) {
            (Some(a), Some(b)) => Some(weighted(a, Some(b)).max(1)),
            (a, b) => a.or(b),
        })
    }

    /// A condition on attributes only (fit rules, exclusions, company rules).
    fn attr_condition(
        &mut self,
        c: &crate::spec::Condition,
        path: &str,
        company_only: bool,
    ) -> Option<Cond> {
        let mut reads = Reads::default();
        let cond = condition::compile(c, path, 0, &mut reads, &mut self.errors)?;
        if reads.event {
            self.err(path, "reads `event.*` fields: only engagement rules read events");
            return None;
        }
        if company_only && reads.lead {
            self.err(path, "a company rule reads only `company.*` fields");
            return None;
        }
        Some(cond)
    }

    fn duration(&mut self, s: &str, path: &str) -> Option<i64> {
        match parse_duration_hours(s) {
            Ok(h) => Some(h),
            Err(e) => {
                self.err(path, e);
                None
            }
        }
    }

    fn decay(&mut self, d: &DecaySpec, path: &str) -> Option<Decay> {
        let dpath = format!("{path}.duration");
        match (d.kind, &d.duration) {
            (DecayKind::None, None) => Some(Decay::None),
            (DecayKind::None, Some(_)) => {
                self.err(dpath, "`type: none` takes no duration");
                None
            }
            (_, None) => {
                self.err(dpath, "this decay needs a duration");
                None
            }
            (kind, Some(s)) => {
                let h = self.duration(s, &dpath)?;
                Some(match kind {
                    DecayKind::HalfLife => Decay::HalfLife(h),
                    DecayKind::Linear => Decay::Linear(h),
                    DecayKind::Expire | DecayKind::None => Decay::Expire(h),
                })
            }
        }
    }

    fn bounds(&mut self, b: Option<&Bounds>, path: &str) -> Option<CBounds> {
        let Some(b) = b else {
            return Some(CBounds::default());
        };
        let one = |x: Option<f64>, key: &str, this: &mut Self| match x {
            None => Some(None),
            Some(v) => this.points(v, &format!("{path}.{key}"), false).map(Some),
        };
        let min = one(b.min, "min", self);
        let max = one(b.max, "max", self);
        let (min, max) = (min?, max?);
        if let (Some(lo), Some(hi)) = (min, max)
            && lo > hi
        {
            self.err(format!("{path}.min"), "min must not exceed max");
            return None;
        }
        Some(CBounds { min, max })
    }

    /// Ordered thresholds: highest first, strictly decreasing mins, the last one without min.
    fn thresholds(&mut self, ts: &[Threshold], path: &str, what: &str) -> Option<Vec<CThreshold>> {
        let items: Vec<Rung> =
            ts.iter().map(|t| (t.label.clone(), t.min, t.above, t.action.clone())).collect();
        self.ladder(&items, path, what)
    }

    /// A ladder of bands or grades. `above: x` (exclusive) compiles to the inclusive bound
    /// `x + 0.001`: points are exact to the thousandth, so "more than 70" is "70.001 or more".
    fn ladder(&mut self, items: &[Rung], path: &str, what: &str) -> Option<Vec<CThreshold>> {
        if items.is_empty() {
            self.err(path, "needs at least one band");
            return None;
        }
        let before = self.errors.len();
        let mut seen = BTreeSet::new();
        let mut out = Vec::with_capacity(items.len());
        let mut last_min: Option<i64> = None;
        for (i, (label, min, above, action)) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            if label.trim().is_empty() {
                self.err(format!("{p}.{what}"), "must not be empty");
            } else if label == DISQUALIFIED {
                self.err(format!("{p}.{what}"), "`disqualified` is reserved");
            } else if !seen.insert(label.clone()) {
                self.err(format!("{p}.{what}"), format!("duplicate `{label}`"));
            }
            let is_last = i + 1 == items.len();
            // Where an ordering problem is reported: the bound the rung was given.
            let key = if above.is_some() && min.is_none() { "above" } else { "min" };
            let bound = match (min, above) {
                (Some(_), Some(_)) => {
                    self.err(format!("{p}.above"), "give `min` (inclusive) or `above`, not both");
                    None
                }
                (Some(m), None) => Some((*m, "min", 0)),
                (None, Some(a)) => Some((*a, "above", 1)),
                (None, None) => None,
            };
            let min = match (bound, is_last) {
                (None, true) => None,
                (Some((_, key, _)), true) => {
                    self.err(
                        format!("{p}.{key}"),
                        "the last band has no min: it catches every lower value",
                    );
                    None
                }
                (None, false) => {
                    if min.is_none() && above.is_none() {
                        self.err(
                            format!("{p}.min"),
                            "every band but the last needs a min (or above)",
                        );
                    }
                    None
                }
                (Some((m, key, step)), false) => {
                    self.points(m, &format!("{p}.{key}"), false).map(|m| m.saturating_add(step))
                }
            };
            if let (Some(m), Some(prev)) = (min, last_min)
                && m >= prev
            {
                self.err(
                    format!("{p}.{key}"),
                    "bands are ordered from the highest min down, without overlap",
                );
            }
            if min.is_some() {
                last_min = min;
            }
            out.push(CThreshold { label: label.clone(), min, action: action.clone() });
        }
        (self.errors.len() == before).then_some(out)
    }

    fn bands(&mut self, bands: &Bands) -> Option<CBands> {
        match bands {
            Bands::Thresholds(ts) => {
                self.thresholds(ts, "bands.thresholds", "label").map(CBands::Thresholds)
            }
            Bands::Matrix(m) => {
                let p = "bands.matrix";
                let grades = |g: &[crate::spec::Grade]| -> Vec<Rung> {
                    g.iter().map(|g| (g.grade.clone(), g.min, g.above, None)).collect()
                };
                let fit = self.ladder(&grades(&m.fit_grades), &format!("{p}.fit_grades"), "grade");
                let engagement = self.ladder(
                    &grades(&m.engagement_grades),
                    &format!("{p}.engagement_grades"),
                    "grade",
                );
                let (fit, engagement) = (fit?, engagement?);
                let before = self.errors.len();
                let mut cells = Vec::with_capacity(fit.len());
                let mut keys = BTreeSet::new();
                for f in &fit {
                    let mut row = Vec::with_capacity(engagement.len());
                    for e in &engagement {
                        let key = format!("{}{}", f.label, e.label);
                        if !keys.insert(key.clone()) {
                            self.err(
                                format!("{p}.cells"),
                                format!("cell name `{key}` is ambiguous: rename grades"),
                            );
                        }
                        match m.cells.get(&key) {
                            None => self.err(format!("{p}.cells"), format!("missing cell `{key}`")),
                            Some(label) if label.trim().is_empty() => {
                                self.err(format!("{p}.cells.{key}"), "must not be empty");
                            }
                            Some(label) if label == DISQUALIFIED => {
                                self.err(format!("{p}.cells.{key}"), "`disqualified` is reserved");
                            }
                            Some(label) => row.push((key, label.clone())),
                        }
                    }
                    cells.push(row);
                }
                for key in m.cells.keys() {
                    if !keys.contains(key) {
                        self.err(format!("{p}.cells.{key}"), "unknown cell: no such grades");
                    }
                }
                let labels: BTreeSet<&String> = m.cells.values().collect();
                for key in m.actions.keys() {
                    if !labels.contains(key) {
                        self.err(format!("{p}.actions.{key}"), "unknown label: no cell has it");
                    }
                }
                (self.errors.len() == before).then(|| CBands::Matrix {
                    fit,
                    engagement,
                    cells,
                    actions: m.actions.clone(),
                })
            }
        }
    }
}

/// Parses `"72h"`, `"30d"`, `"2w"` into whole hours (1 hour to 100 years).
pub fn parse_duration_hours(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "invalid duration `{s}`: expected a whole number of hours (`72h`), days (`30d`) or weeks (`2w`)"
        )
    };
    let unit = s.chars().last().ok_or_else(bad)?;
    let mult = match unit {
        'h' => 1,
        'd' => 24,
        'w' => 24 * 7,
        _ => return Err(bad()),
    };
    let n: i64 = s[..s.len() - 1].parse().map_err(|_| bad())?;
    let hours = n.checked_mul(mult).ok_or_else(bad)?;
    if !(1..=MAX_DURATION_HOURS).contains(&hours) {
        return Err(format!("duration `{s}` must be between 1 hour and 100 years"));
    }
    Ok(hours)
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
