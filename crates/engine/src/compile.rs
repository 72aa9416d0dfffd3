//! Validation and compilation of a [`ModelSpec`] into a [`CompiledModel`]: every problem is
//! reported with the path of its element, in document order. Bands and grades (ladders and
//! the matrix) are compiled in `compile/bands.rs`.

mod bands;

use std::collections::{BTreeMap, BTreeSet};

use crate::condition::{self, Cond, Reads};
use crate::fixed::{Decay, to_milli};
use crate::model::{
    CBounds, CCap, CCompany, CEngagement, CExclusion, CFit, CWindow, CompiledModel,
    MAX_DURATION_HOURS, MAX_RULES, TypeFilter, ValidationError,
};
use crate::spec::{
    Aggregate, Bounds, CompanySpec, DecayKind, DecaySpec, EngagementRule, FitRule, Method,
    ModelSpec,
};

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
        let engagement = collect(
            spec.engagement
                .iter()
                .enumerate()
                .map(|(i, r)| self.engagement_rule(r, &format!("engagement[{i}]"), default_decay)),
        );
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
            Some(cs) => self.company(cs).map(Some),
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

    /// An engagement rule at `path`; `default_decay` is the model's `decay` (`None`: invalid).
    fn engagement_rule(
        &mut self,
        r: &EngagementRule,
        path: &str,
        default_decay: Option<Decay>,
    ) -> Option<CEngagement> {
        self.id(&r.id, path);
        let weight = self.rule_weight(r.weight, r.group.as_deref(), path);
        let points = self
            .points(r.points, &format!("{path}.points"), true)
            .zip(weight)
            .map(|(p, w)| weighted(p, w));
        let weight = weight.flatten();
        let mut reads = Reads::default();
        let cond =
            condition::compile(&r.when, &format!("{path}.when"), 0, &mut reads, &mut self.errors);
        // `lead.*` / `company.*` may be read beside `event.*` ("a student who reads job
        // offers"): the lead is then rescored from all its events when they change.
        let reads_attributes = reads.lead || reads.company;
        if cond.is_some() && !reads.event {
            self.err(
                format!("{path}.when"),
                "an engagement condition must read at least one `event.*` field",
            );
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
                    (Some(m), Some(per_hours)) if m > 0 => Some(Some(CCap { milli: m, per_hours })),
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
    }

    /// The `company` section.
    fn company(&mut self, cs: &CompanySpec) -> Option<CCompany> {
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
                    self.err("company.leads.top", "`top` applies only to `sum` and `mean_top_n`");
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
        Some(CCompany { fit: fit?, leads: leads?, total: total?, bands: bands? })
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
