//! Rule-by-rule differences between two model specs (their JSON form).
//!
//! Rules are matched by `id` within their section; a changed rule reports each changed field
//! (`points`, `when`, `cap`, `decay`, ...). Other sections report their changed sub-fields
//! (`bands.thresholds`, `combination.total`, ...).

use serde::Serialize;
use serde_json::{Map, Value};

/// Sections holding lists of rules with ids, as JSON pointers into the spec.
const RULE_SECTIONS: &[(&str, &[&str])] = &[
    ("fit", &["fit"]),
    ("exclusions", &["exclusions"]),
    ("engagement", &["engagement"]),
    ("company.fit", &["company", "fit"]),
];

/// How something changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Added,
    Removed,
    Changed,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub section: String,
    /// Empty outside rule sections.
    pub rule_id: String,
    pub kind: Kind,
    /// Empty when a whole rule or section was added or removed.
    pub field: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

fn rules(list: Option<&Value>) -> Vec<(String, &Map<String, Value>)> {
    list.and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_object)
                .map(|o| (o.get("id").and_then(Value::as_str).unwrap_or_default().to_owned(), o))
                .collect()
        })
        .unwrap_or_default()
}

fn kind(before: Option<&Value>, after: Option<&Value>) -> Kind {
    match (before, after) {
        (None, Some(_)) => Kind::Added,
        (Some(_), None) => Kind::Removed,
        _ => Kind::Changed,
    }
}

/// Field-level differences of two JSON objects (missing on either side included).
fn field_changes<'a>(
    before: &'a Map<String, Value>,
    after: &'a Map<String, Value>,
) -> Vec<(&'a str, Option<&'a Value>, Option<&'a Value>)> {
    let mut keys: Vec<&str> = before.keys().chain(after.keys()).map(String::as_str).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (b, a) = (before.get(k), after.get(k));
            (b != a).then_some((k, b, a))
        })
        .collect()
}

/// Every difference from `before` to `after`, in a stable order: rule sections first (rules in
/// the order of `after`, then removed ones), then the other sections by name.
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    let mut changes = Vec::new();
    for (section, path) in RULE_SECTIONS {
        let old = rules(at(before, path));
        let new = rules(at(after, path));
        for (id, rule) in &new {
            match old.iter().find(|(old_id, _)| old_id == id) {
                None => changes.push(Change {
                    section: (*section).into(),
                    rule_id: id.clone(),
                    kind: Kind::Added,
                    field: String::new(),
                    before: None,
                    after: Some(Value::Object((*rule).clone())),
                }),
                Some((_, old_rule)) => {
                    for (field, b, a) in field_changes(old_rule, rule) {
                        changes.push(Change {
                            section: (*section).into(),
                            rule_id: id.clone(),
                            kind: kind(b, a),
                            field: field.into(),
                            before: b.cloned(),
                            after: a.cloned(),
                        });
                    }
                }
            }
        }
        for (id, rule) in &old {
            if !new.iter().any(|(new_id, _)| new_id == id) {
                changes.push(Change {
                    section: (*section).into(),
                    rule_id: id.clone(),
                    kind: Kind::Removed,
                    field: String::new(),
                    before: Some(Value::Object((*rule).clone())),
                    after: None,
                });
            }
        }
    }
    let empty = Map::new();
    let (old, new) = (before.as_object().unwrap_or(&empty), after.as_object().unwrap_or(&empty));
    for (section, b, a) in field_changes(old, new) {
        if matches!(section, "fit" | "exclusions" | "engagement") {
            continue;
        }
        match (b, a) {
            (Some(Value::Object(b)), Some(Value::Object(a))) => {
                for (field, fb, fa) in field_changes(b, a) {
                    if section == "company" && field == "fit" {
                        continue;
                    }
                    changes.push(Change {
                        section: section.into(),
                        rule_id: String::new(),
                        kind: kind(fb, fa),
                        field: field.into(),
                        before: fb.cloned(),
                        after: fa.cloned(),
                    });
                }
            }
            _ => changes.push(Change {
                section: section.into(),
                rule_id: String::new(),
                kind: kind(b, a),
                field: String::new(),
                before: b.cloned(),
                after: a.cloned(),
            }),
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn rules_are_matched_by_id_and_fields_compared() {
        let before = json!({
            "fit": [{"id": "country", "points": 10, "when": {"field": "lead.country", "op": "in", "value": ["FR"]}},
                    {"id": "student", "points": -50, "when": {"field": "lead.title", "op": "contains", "value": "student"}}],
            "engagement": [{"id": "pricing", "points": 10, "cap": {"points": 30}}],
            "bands": {"thresholds": [{"label": "hot", "min": 70}]},
            "combination": {"method": "sum"}
        });
        let after = json!({
            "fit": [{"id": "country", "points": 15, "when": {"field": "lead.country", "op": "in", "value": ["FR"]}},
                    {"id": "size", "points": 20, "when": {"field": "company.size", "op": "gte", "value": 50}}],
            "engagement": [{"id": "pricing", "points": 10}],
            "bands": {"thresholds": [{"label": "hot", "min": 60}]},
            "combination": {"method": "sum"}
        });
        let changes = diff(&before, &after);
        let summary: Vec<_> = changes
            .iter()
            .map(|c| format!("{}:{}:{:?}:{}", c.section, c.rule_id, c.kind, c.field))
            .collect();
        assert_eq!(
            summary,
            [
                "fit:country:Changed:points",
                "fit:size:Added:",
                "fit:student:Removed:",
                "engagement:pricing:Removed:cap",
                "bands::Changed:thresholds",
            ]
        );
        assert_eq!(changes[0].before, Some(json!(10)));
        assert_eq!(changes[0].after, Some(json!(15)));
        assert!(diff(&after, &after).is_empty());
    }
}
