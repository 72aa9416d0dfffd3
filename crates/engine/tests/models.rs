//! The example models on disk parse, validate, compile and round-trip through JSON.

use std::path::PathBuf;

use kelvin_engine::{Bands, ModelSpec};

/// Every file of `examples/models/` (checked against the directory below).
const EXAMPLES: [&str; 8] = [
    "b2b-saas.yaml",
    "b2c-ecommerce.yaml",
    "bant-grid.yaml",
    "seed-000-hubspot-score.yaml",
    "seed-001-synolia-temperatures.yaml",
    "seed-002-five-criteria.yaml",
    "seed-003-fit-engagement-weighted.yaml",
    "seed-004-spreadsheet-grid.yaml",
];

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/models").join(name)
}

fn load(name: &str) -> ModelSpec {
    let text = std::fs::read_to_string(path(name)).expect("example model readable");
    ModelSpec::from_yaml(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_example_model_is_valid() {
    for name in EXAMPLES {
        let spec = load(name);
        assert_eq!(spec.validate(), Vec::new(), "{name}");
        assert!(spec.compile().is_ok(), "{name}");
    }
}

#[test]
fn the_list_names_every_example_model() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/models");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .expect("examples/models readable")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".json"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = EXAMPLES.iter().map(|s| (*s).to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn b2b_model_has_the_shape_of_the_brief() {
    let spec = load("b2b-saas.yaml");
    assert_eq!(spec.fit.len(), 9);
    assert_eq!(spec.exclusions.len(), 2);
    assert_eq!(spec.engagement.len(), 12);
    let Bands::Thresholds(t) = &spec.bands else {
        panic!("b2b bands are thresholds");
    };
    let labels: Vec<_> = t.iter().map(|t| (t.label.as_str(), t.min)).collect();
    assert_eq!(labels, [("hot", Some(70.0)), ("warm", Some(30.0)), ("cold", None)]);
    assert!(spec.company.is_some());
}

#[test]
fn bant_grid_is_a_matrix() {
    let spec = load("bant-grid.yaml");
    let Bands::Matrix(m) = &spec.bands else {
        panic!("bant bands are a matrix");
    };
    assert_eq!(m.cells.len(), 16);
}

#[test]
fn yaml_and_json_map_one_to_one() {
    for name in EXAMPLES {
        let spec = load(name);
        let json = spec.to_json_value();
        let text = serde_json::to_string(&json).expect("json text");
        let back = ModelSpec::from_json(&text).expect("json parses back");
        assert_eq!(back, spec, "{name}");
        let again = ModelSpec::from_json_value(json.clone()).expect("value parses back");
        assert_eq!(again.to_json_value(), json, "{name}");
    }
}
