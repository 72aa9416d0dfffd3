//! Bands and grades: threshold ladders (`min` / `above`, highest first) and the fit ×
//! engagement matrix, compiled with every ordering and naming problem reported.

use std::collections::BTreeSet;

use super::Compiler;
use crate::model::{CBands, CThreshold, DISQUALIFIED};
use crate::spec::{Bands, Threshold};

/// One rung of a ladder as written: label, `min`, `above`, action.
type Rung = (String, Option<f64>, Option<f64>, Option<String>);

impl Compiler {
    /// Ordered thresholds: highest first, strictly decreasing mins, the last one without min.
    pub(super) fn thresholds(
        &mut self,
        ts: &[Threshold],
        path: &str,
        what: &str,
    ) -> Option<Vec<CThreshold>> {
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

    pub(super) fn bands(&mut self, bands: &Bands) -> Option<CBands> {
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
