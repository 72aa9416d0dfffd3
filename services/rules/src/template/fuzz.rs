//! Fuzz-style properties of the renderer (issue 14): random templates (random JSON trees and
//! the sample model with placeholders spliced in) and random values (references to other
//! parameters, control characters, huge strings). Rendering never panics, is single-pass, and
//! its output is never larger than the limit; what it renders, the engine accepts or refuses
//! with paths. Bounded case counts: this runs in CI on every run.

#![allow(clippy::unwrap_used)]

use kelvin_engine::ModelSpec;
use kelvin_store::TemplateParam;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

use super::{json_len, render};

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

fn name() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(&NAMES[..])
}

/// Strings that stress the scanner: references, near-references, control characters, huge.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,12}",
        "[a-d${}x]{0,16}",
        "[\\x00-\\x1f\"\\\\]{0,8}",
        name().prop_map(|n| format!("${{{n}}}")),
        (name(), name(), "[^$]{0,4}").prop_map(|(a, b, s)| format!("{s}${{{a}}}${{{b}}}{s}")),
        (name(), 1usize..20_000).prop_map(|(n, k)| format!("${{{n}}}").repeat(k)),
        (1usize..100_000).prop_map(|k| "\u{0}é".repeat(k)),
    ]
}

fn json_tree() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e9f64..1e9).prop_map(|f| json!(f)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{0,6}|\\PC{0,3}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn b2b() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/models/b2b-saas.yaml");
    ModelSpec::from_yaml(&std::fs::read_to_string(path).unwrap()).unwrap().to_json_value()
}

/// Every leaf of `value` (paths as JSON pointers).
fn leaves(value: &Value, path: String, out: &mut Vec<String>) {
    match value {
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                leaves(v, format!("{path}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                leaves(v, format!("{path}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        _ => out.push(path),
    }
}

/// A template: a random JSON object, or the sample model with some leaves replaced by
/// placeholders (whole or inside text) or random values.
fn template() -> impl Strategy<Value = Value> {
    let spliced = prop::collection::vec((any::<Index>(), json_tree()), 0..6).prop_map(|edits| {
        let mut spec = b2b();
        let mut paths = Vec::new();
        leaves(&spec, String::new(), &mut paths);
        for (at, value) in edits {
            if !paths.is_empty()
                && let Some(slot) = spec.pointer_mut(at.get::<String>(&paths))
            {
                *slot = value;
            }
        }
        spec
    });
    let random = prop::collection::btree_map("[a-z]{1,6}", json_tree(), 0..6)
        .prop_map(|m| Value::Object(m.into_iter().collect()));
    prop_oneof![spliced, random]
}

fn parameters() -> impl Strategy<Value = (Vec<TemplateParam>, Map<String, Value>)> {
    (
        prop::collection::vec(proptest::option::of(json_tree()), 4),
        prop::collection::vec(proptest::option::of(json_tree()), 4),
    )
        .prop_map(|(defaults, given)| {
            let params = NAMES
                .iter()
                .zip(defaults)
                .map(|(n, default)| TemplateParam {
                    name: (*n).to_owned(),
                    description: String::new(),
                    default,
                })
                .collect();
            let values =
                NAMES.iter().zip(given).filter_map(|(n, v)| Some(((*n).to_owned(), v?))).collect();
            (params, values)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// The limit is exact: a rendering is refused iff its compact JSON would pass the limit,
    /// and what is rendered is the unlimited rendering.
    #[test]
    fn renders_within_the_limit_or_refuses_naming_a_parameter(
        spec in template(),
        (params, values) in parameters(),
        limit in prop_oneof![0usize..4096, 4096usize..(1 << 20)],
    ) {
        // "Unlimited", but not so much that a case can take gigabytes.
        let full = render(&spec, &params, &values, 64 << 20);
        let limited = render(&spec, &params, &values, limit);
        let too_large = |problems: &Vec<(String, String)>| {
            problems.len() == 1
                && problems[0].0.starts_with("parameters")
                && problems[0].1.contains("larger than")
        };
        match (&full, &limited) {
            (Ok(full), Ok(out)) => {
                prop_assert_eq!(out, full);
                let size = serde_json::to_string(out).unwrap().len();
                prop_assert_eq!(json_len(out), size);
                prop_assert!(size <= limit);
            }
            (Ok(full), Err(problems)) => {
                prop_assert!(json_len(full) > limit);
                prop_assert!(too_large(problems), "{:?}", problems);
            }
            (Err(a), Err(b)) => prop_assert!(a == b || (too_large(a) && too_large(b)), "{:?} {:?}", a, b),
            (Err(a), Ok(_)) => prop_assert!(false, "refused without a limit only: {:?}", a),
        }
    }

    /// Single pass: a value is spliced as written, whatever placeholders it holds.
    #[test]
    fn a_value_is_never_expanded_again(
        (params, values) in parameters(),
        prefix in "[^$]{1,8}",
        suffix in "[^$]{0,8}",
        which in name(),
    ) {
        let spec = json!({"whole": format!("${{{which}}}"), "inside": format!("{prefix}${{{which}}}{suffix}")});
        if let Ok(out) = render(&spec, &params, &values, usize::MAX) {
            let given = params
                .iter()
                .find(|p| p.name == which)
                .and_then(|p| values.get(which).or(p.default.as_ref()))
                .unwrap();
            let text = match given {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            prop_assert_eq!(&out["whole"], given);
            prop_assert_eq!(&out["inside"], &json!(format!("{prefix}{text}{suffix}")));
        }
    }

    /// What a template renders to, the engine reads and validates without panicking, and every
    /// refusal names a path.
    #[test]
    fn rendered_specs_are_accepted_or_refused_with_paths(
        spec in template(),
        (params, values) in parameters(),
    ) {
        if let Ok(out) = render(&spec, &params, &values, 1 << 20) {
            match ModelSpec::from_json_value(out) {
                Ok(model) => {
                    if let Err(errors) = model.compile() {
                        prop_assert!(!errors.is_empty());
                        for e in errors {
                            prop_assert!(!e.path.is_empty() && !e.message.is_empty(), "{:?}", e);
                        }
                    }
                }
                Err(e) => prop_assert!(!e.message.is_empty(), "{:?}", e),
            }
        }
    }
}
