//! Validation errors carry the exact path of what they are about.

use kelvin_engine::{ModelSpec, ParseError, ValidationError};

/// A small valid model; tests splice broken parts into it.
fn with(parts: &str) -> String {
    let mut doc = String::from(parts);
    if !parts.contains("bands:") {
        doc.push_str(
            "\nbands:\n  thresholds:\n    - { label: hot, min: 70 }\n    - { label: cold }\n",
        );
    }
    doc
}

fn errors(yaml: &str) -> Vec<ValidationError> {
    ModelSpec::from_yaml(&with(yaml)).unwrap_or_else(|e| panic!("parses: {e}")).validate()
}

fn paths(yaml: &str) -> Vec<String> {
    errors(yaml).into_iter().map(|e| e.path).collect()
}

fn parse_error(yaml: &str) -> ParseError {
    match ModelSpec::from_yaml(&with(yaml)) {
        Ok(_) => panic!("expected a parse error"),
        Err(e) => e,
    }
}

const VIEW: &str = "{ field: event.type, op: eq, value: page_view }";

#[test]
fn the_base_model_is_valid() {
    assert_eq!(errors(""), Vec::new());
}

#[test]
fn unknown_fields_are_rejected_with_their_path() {
    let e = parse_error(&format!(
        "engagement:\n  - id: a\n    when: {VIEW}\n    points: 1\n    cap: {{ pionts: 3 }}\n"
    ));
    assert_eq!(e.path, "engagement[0].cap.pionts");
    assert!(e.message.contains("unknown field `pionts`"), "{e}");
    let e = parse_error(
        "fit:\n  - id: a\n    when: { field: lead.x, op: exists, vlaue: 1 }\n    points: 1\n",
    );
    assert_eq!(e.path, "fit[0].when.vlaue");
    let e = parse_error("colour: blue\n");
    assert_eq!(e.path, "colour");
    // An empty key would print as an empty path (found by tests/fuzz.rs): the root instead.
    let e = ModelSpec::from_json("{\"\": null}").expect_err("unknown field");
    assert_eq!(e.path, ".");
}

#[test]
fn wrong_types_are_rejected_with_their_path() {
    let e =
        parse_error("fit:\n  - id: a\n    when: { field: lead.x, op: exists }\n    points: ten\n");
    assert_eq!(e.path, "fit[0].points");
    let e = parse_error("decay: { type: quadratic, duration: 3d }\n");
    assert_eq!(e.path, "decay.type");
    let e = ModelSpec::from_json("{\"bands\": {\"thresholds\": []}, \"fit\": 3}").expect_err("bad");
    assert_eq!(e.path, "fit");
}

#[test]
fn duplicate_rule_ids() {
    let errs = errors(&format!(
        "fit:\n  - {{ id: a, when: {{ field: lead.x, op: exists }}, points: 1 }}\n\
         engagement:\n  - {{ id: b, when: {VIEW}, points: 1 }}\n  - {{ id: a, when: {VIEW}, points: 1 }}\n"
    ));
    assert_eq!(
        errs,
        [ValidationError {
            path: "engagement[1].id".into(),
            message: "duplicate rule id `a` (first used at fit[0].id)".into()
        }]
    );
}

#[test]
fn thresholds_must_be_sorted_and_end_with_a_catch_all() {
    let p = paths(
        "bands:\n  thresholds:\n    - { label: warm, min: 30 }\n    - { label: hot, min: 70 }\n    - { label: cold }\n",
    );
    assert_eq!(p, ["bands.thresholds[1].min"]);
    let p = paths(
        "bands:\n  thresholds:\n    - { label: hot, min: 70 }\n    - { label: warm, min: 70 }\n    - { label: cold }\n",
    );
    assert_eq!(p, ["bands.thresholds[1].min"]);
    let p = paths(
        "bands:\n  thresholds:\n    - { label: hot, min: 70 }\n    - { label: cold, min: 0 }\n",
    );
    assert_eq!(p, ["bands.thresholds[1].min"]);
    let p = paths("bands:\n  thresholds:\n    - { label: hot, min: 70 }\n    - { label: hot }\n");
    assert_eq!(p, ["bands.thresholds[1].label"]);
    let p = paths("bands:\n  thresholds:\n    - { label: disqualified }\n");
    assert_eq!(p, ["bands.thresholds[0].label"]);
    let p = paths("bands:\n  thresholds: []\n");
    assert_eq!(p, ["bands.thresholds"]);
}

#[test]
fn matrix_cells_must_cover_every_grade_pair() {
    let p = paths(
        "bands:\n  matrix:\n    fit_grades: [{ grade: A, min: 50 }, { grade: B }]\n    \
         engagement_grades: [{ grade: \"1\", min: 10 }, { grade: \"2\" }]\n    \
         cells: { A1: hot, A2: warm, B1: warm, C9: cold }\n    actions: { tepid: x }\n",
    );
    assert_eq!(p, ["bands.matrix.cells", "bands.matrix.cells.C9", "bands.matrix.actions.tepid"]);
    let e = errors(
        "bands:\n  matrix:\n    fit_grades: [{ grade: A, min: 50 }, { grade: B }]\n    \
         engagement_grades: [{ grade: \"1\" }]\n    cells: { A1: hot }\n",
    );
    assert_eq!(e[0].message, "missing cell `B1`");
}

#[test]
fn decay_needs_a_duration() {
    assert_eq!(paths("decay: { type: half_life }\n"), ["decay.duration"]);
    assert_eq!(paths("decay: { type: none, duration: 3d }\n"), ["decay.duration"]);
    assert_eq!(paths("decay: { type: linear, duration: 90m }\n"), ["decay.duration"]);
    assert_eq!(paths("decay: { type: expire, duration: 0d }\n"), ["decay.duration"]);
    let p = paths(&format!(
        "engagement:\n  - id: a\n    when: {VIEW}\n    points: 1\n    decay: {{ type: half_life }}\n"
    ));
    assert_eq!(p, ["engagement[0].decay.duration"]);
}

#[test]
fn caps_must_be_positive() {
    let p = paths(&format!(
        "engagement:\n  - {{ id: ok, when: {VIEW}, points: 1 }}\n  - {{ id: a, when: {VIEW}, points: 1 }}\n  \
         - id: b\n    when: {VIEW}\n    points: 1\n    cap: {{ points: 0 }}\n  \
         - id: c\n    when: {VIEW}\n    points: 1\n    cap: {{ points: -3, per: 1x }}\n"
    ));
    assert_eq!(
        p,
        ["engagement[2].cap.points", "engagement[3].cap.points", "engagement[3].cap.per"]
    );
}

#[test]
fn fit_rules_and_exclusions_cannot_read_events() {
    let e = errors(&format!("fit:\n  - {{ id: a, when: {VIEW}, points: 1 }}\n"));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].path, "fit[0].when");
    assert!(e[0].message.contains("only engagement rules read events"));
    let p = paths(&format!("exclusions:\n  - {{ id: a, reason: r, when: {{ not: {VIEW} }} }}\n"));
    assert_eq!(p, ["exclusions[0].when"]);
}

#[test]
fn engagement_rules_must_read_events_and_may_read_attributes_too() {
    let p = paths(
        "engagement:\n  - { id: a, when: { field: lead.country, op: eq, value: FR }, points: 1 }\n",
    );
    assert_eq!(p, ["engagement[0].when"]);
    // An event and an attribute in one rule ("a student who reads job offers") is allowed.
    let e = errors(&format!(
        "engagement:\n  - id: a\n    when: {{ all: [{VIEW}, {{ field: company.size, op: gt, value: 3 }}] }}\n    points: 1\n"
    ));
    assert!(e.is_empty(), "{e:?}");
}

#[test]
fn windows_need_two_events_and_a_whole_number_of_hours() {
    let p = paths(&format!(
        "engagement:\n  - id: a\n    when: {VIEW}\n    points: 1\n    window: {{ count: 1, within: 72h }}\n  \
         - id: b\n    when: {VIEW}\n    points: 1\n    window: {{ count: 3, within: 3 days }}\n"
    ));
    assert_eq!(p, ["engagement[0].window.count", "engagement[1].window.within"]);
}

#[test]
fn unknown_operators_and_fields() {
    let p = paths(
        "fit:\n  - id: a\n    when:\n      all:\n        - { field: lead.x, op: like, value: y }\n        - { field: person.x, op: exists }\n        - { field: x, op: exists }\n    points: 1\n",
    );
    assert_eq!(
        p,
        ["fit[0].when.all[0].op", "fit[0].when.all[1].field", "fit[0].when.all[2].field"]
    );
}

#[test]
fn operator_values_are_checked() {
    let p = paths(
        "fit:\n  - id: a\n    when:\n      any:\n        - { field: lead.x, op: in, value: [] }\n        \
         - { field: lead.x, op: between, value: [9, 1] }\n        - { field: lead.x, op: gt, value: big }\n        \
         - { field: lead.x, op: is_true, value: yes }\n        - { field: lead.x, op: eq }\n        \
         - { field: lead.x, op: matches, value: '(' }\n        - { field: lead.x, op: email_domain_in, value: [\"\"] }\n    points: 1\n",
    );
    let want: Vec<String> = (0..7).map(|i| format!("fit[0].when.any[{i}].value")).collect();
    assert_eq!(p, want);
}

#[test]
fn condition_shape_and_depth() {
    let p = paths(
        "fit:\n  - id: a\n    when: { all: [], }\n    points: 1\n  - id: b\n    when: { not: { field: lead.x, op: exists }, field: lead.y, op: exists }\n    points: 1\n  - id: c\n    when: {}\n    points: 1\n",
    );
    assert_eq!(p, ["fit[0].when.all", "fit[1].when", "fit[2].when"]);
    // Nine nested `not`s: one too many.
    let mut cond = String::from("{ field: lead.x, op: exists }");
    for _ in 0..9 {
        cond = format!("{{ not: {cond} }}");
    }
    let e = errors(&format!("fit:\n  - {{ id: a, when: {cond}, points: 1 }}\n"));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].path, format!("fit[0].when{}", ".not".repeat(9)));
    assert!(e[0].message.contains("at most 8"));
    // Eight is fine.
    let mut cond = String::from("{ field: lead.x, op: exists }");
    for _ in 0..8 {
        cond = format!("{{ not: {cond} }}");
    }
    assert_eq!(errors(&format!("fit:\n  - {{ id: a, when: {cond}, points: 1 }}\n")), []);
}

#[test]
fn points_weights_and_bounds() {
    let p = paths(
        "fit:\n  - { id: a, when: { field: lead.x, op: exists }, points: 0.0001 }\n  \
         - { id: b, when: { field: lead.x, op: exists }, points: 0 }\n\
         combination:\n  method: { weights: { fit: 0.5, engagement: 0.6 } }\n  total: { min: 100, max: 0 }\n",
    );
    assert_eq!(
        p,
        ["fit[0].points", "fit[1].points", "combination.total.min", "combination.method.weights"]
    );
}

#[test]
fn rule_ids_are_plain_names() {
    let p = paths(
        "fit:\n  - { id: 'bound:fit', when: { field: lead.x, op: exists }, points: 1 }\n  - { id: '', when: { field: lead.x, op: exists }, points: 1 }\n",
    );
    assert_eq!(p, ["fit[0].id", "fit[1].id"]);
}

#[test]
fn company_rules_read_company_fields_only() {
    let p = paths(
        "company:\n  fit:\n    - { id: a, when: { field: lead.x, op: exists }, points: 1 }\n  \
         leads: { aggregate: mean_top_n }\n",
    );
    assert_eq!(p, ["company.fit[0].when", "company.leads.top"]);
}

#[test]
fn regexes_are_limited_in_size() {
    // Compiles to far more than the 64 KiB limit (Unicode \w repeated).
    let e = errors(
        "fit:\n  - { id: a, when: { field: lead.x, op: matches, value: '\\w{1000}' }, points: 1 }\n",
    );
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].path, "fit[0].when.value");
    assert!(e[0].message.contains("size limit"), "{}", e[0].message);
    let long = "a".repeat(600);
    let e = errors(&format!(
        "fit:\n  - {{ id: a, when: {{ field: lead.x, op: matches, value: '{long}' }}, points: 1 }}\n"
    ));
    assert_eq!(e[0].path, "fit[0].when.value");
    assert!(e[0].message.contains("longer than 512"));
    // Case-insensitive patterns are fine.
    assert_eq!(
        errors(
            "fit:\n  - { id: a, when: { field: lead.x, op: matches, value: '(?i)^vp\\b' }, points: 1 }\n"
        ),
        []
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let e = errors(&format!(
        "decay: {{ type: half_life }}\nfit:\n  - {{ id: a, when: {VIEW}, points: 1 }}\n\
         engagement:\n  - id: a\n    when: {VIEW}\n    points: 1\n    cap: {{ points: 0 }}\n"
    ));
    let p: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        p,
        ["decay.duration", "fit[0].when", "engagement[0].id", "engagement[0].cap.points"]
    );
    assert!(ModelSpec::from_yaml(&with("")).expect("parses").compile().is_ok());
}
