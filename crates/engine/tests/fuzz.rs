//! Fuzz-style properties of the model format (issue 14): random JSON documents, mutations of
//! the sample models and of their YAML text. Reading and validating never panic; a document is
//! either accepted (then it compiles, scores and round-trips) or refused with paths. Bounded
//! case counts: this runs in CI on every run.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use kelvin_engine::{Company, Event, HOUR_MS, Lead, ModelSpec};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

const MODELS: [&str; 3] = ["b2b-saas.yaml", "b2c-ecommerce.yaml", "bant-grid.yaml"];

fn yaml(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/models").join(name);
    std::fs::read_to_string(path).expect("model file")
}

fn sample(name: &str) -> Value {
    ModelSpec::from_yaml(&yaml(name)).expect("model parses").to_json_value()
}

/// Words the format knows, so that random documents get past the first unknown field now
/// and then.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "fit",
            "exclusions",
            "engagement",
            "bands",
            "thresholds",
            "matrix",
            "combination",
            "company",
            "decay",
            "when",
            "all",
            "any",
            "not",
            "field",
            "op",
            "value",
            "points",
            "id",
            "cap",
            "window",
            "min",
            "label",
            "eq",
            "in",
            "matches",
            "gt",
            "half_life",
            "event.type",
            "lead.country",
            "url",
            "page_view",
            "bounds",
            "method",
            "weights",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,8}",
    ]
}

fn json_tree() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        word().prop_map(Value::String),
        "[\\x00-\\x1f(|)*+?.\\[\\]{}\\\\]{0,12}".prop_map(Value::String),
        (1usize..20_000).prop_map(|n| Value::String("(a+)+".repeat(n / 5))),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(word(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every node of `value` but the root, as JSON pointers.
fn nodes(value: &Value, path: String, out: &mut Vec<String>) {
    if !path.is_empty() {
        out.push(path.clone());
    }
    match value {
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                nodes(v, format!("{path}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                nodes(v, format!("{path}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Replace(Index, Value),
    Remove(Index),
    Duplicate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), json_tree()).prop_map(|(i, v)| Edit::Replace(i, v)),
        any::<Index>().prop_map(Edit::Remove),
        any::<Index>().prop_map(Edit::Duplicate),
    ]
}

fn apply(doc: &mut Value, edit: &Edit) {
    let mut paths = Vec::new();
    nodes(doc, String::new(), &mut paths);
    if paths.is_empty() {
        return;
    }
    let (Edit::Replace(at, _) | Edit::Remove(at) | Edit::Duplicate(at)) = edit;
    let path = at.get::<String>(&paths).clone();
    let (parent, last) = path.rsplit_once('/').unwrap_or(("", ""));
    let copy = doc.pointer(&path).cloned();
    match (edit, doc.pointer_mut(parent)) {
        (Edit::Replace(_, v), Some(_)) => {
            if let Some(slot) = doc.pointer_mut(&path) {
                *slot = v.clone();
            }
        }
        (Edit::Remove(_), Some(Value::Object(map))) => {
            map.remove(&last.replace("~1", "/").replace("~0", "~"));
        }
        (Edit::Remove(_), Some(Value::Array(items))) => {
            if let Ok(i) = last.parse::<usize>()
                && i < items.len()
            {
                items.remove(i);
            }
        }
        (Edit::Duplicate(_), Some(Value::Array(items))) => items.extend(copy),
        _ => {}
    }
}

/// Reads `doc` and checks what the engine does with it; never panics is the first property.
fn check(doc: Value) -> Result<(), TestCaseError> {
    let spec = match ModelSpec::from_json_value(doc) {
        Ok(spec) => spec,
        Err(e) => {
            prop_assert!(!e.path.is_empty() && !e.message.is_empty(), "{:?}", e);
            return Ok(());
        }
    };
    // What was read is written back the same.
    prop_assert_eq!(&ModelSpec::from_json_value(spec.to_json_value()).unwrap(), &spec);
    match spec.compile() {
        Ok(model) => {
            let lead = Lead::from_pairs([("country", "FR"), ("job_title", "CEO")]);
            let company = Company::from_pairs([("industry", "software")]);
            let now = 490_000 * HOUR_MS;
            let events: Vec<Event> = (0..20)
                .map(|i| {
                    Event::new(
                        format!("e{i}"),
                        ["page_view", "form_submit"][i % 2],
                        now - i as i64 * HOUR_MS,
                    )
                    .with("url", "/pricing")
                })
                .collect();
            let score = model.score(&lead, Some(&company), &events, now);
            let sum: i64 = score.contributions.iter().map(|c| c.points.milli()).sum();
            prop_assert_eq!(sum, score.total.milli(), "contributions add up: {:?}", score);
        }
        Err(errors) => {
            prop_assert!(!errors.is_empty());
            for e in errors {
                prop_assert!(!e.path.is_empty() && !e.message.is_empty(), "{:?}", e);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_documents_are_accepted_or_refused_with_paths(doc in json_tree()) {
        check(doc)?;
    }

    #[test]
    fn mutated_sample_models_are_accepted_or_refused_with_paths(
        model in proptest::sample::select(&MODELS[..]),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let mut doc = sample(model);
        for e in &edits {
            apply(&mut doc, e);
        }
        check(doc)?;
    }

    #[test]
    fn mutated_yaml_text_never_panics(
        model in proptest::sample::select(&MODELS[..]),
        cuts in prop::collection::vec((any::<Index>(), "\\PC{0,3}|[\\x00-\\x1f:\\-\\[\\]{}&*!|>'\"%@`]{1,3}"), 1..4),
    ) {
        let mut text = yaml(model);
        for (at, insert) in cuts {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            text.insert_str(i, &insert);
        }
        match ModelSpec::from_yaml(&text) {
            Ok(spec) => check(spec.to_json_value())?,
            Err(e) => prop_assert!(!e.message.is_empty(), "{:?}", e),
        }
    }
}
