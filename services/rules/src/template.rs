//! Template rendering: `${name}` placeholders in a spec replaced by parameter values.

use std::collections::BTreeMap;

use kelvin_store::TemplateParam;
use serde_json::Value;

/// A problem at a path of the template or of the parameters.
pub type Violation = (String, String);

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks a template's parameter list and that its spec names only declared parameters.
pub fn check(spec: &Value, params: &[TemplateParam]) -> Vec<Violation> {
    let mut problems = Vec::new();
    for (i, p) in params.iter().enumerate() {
        if !is_name(&p.name) {
            problems.push((
                format!("parameters[{i}].name"),
                "must be 1-63 characters of [A-Za-z0-9_], starting with a letter".into(),
            ));
        }
        if params[..i].iter().any(|q| q.name == p.name) {
            problems.push((
                format!("parameters[{i}].name"),
                format!("duplicate parameter `{}`", p.name),
            ));
        }
    }
    let mut used = Vec::new();
    placeholders(spec, "spec", &mut used);
    for (path, name) in used {
        if !params.iter().any(|p| p.name == name) {
            problems.push((path, format!("`${{{name}}}` is not a declared parameter")));
        }
    }
    problems
}

fn placeholders(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                let after = &rest[start + 2..];
                match after.find('}') {
                    Some(end) => {
                        out.push((path.to_owned(), after[..end].to_owned()));
                        rest = &after[end + 1..];
                    }
                    None => break,
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                placeholders(v, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                placeholders(v, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// The spec with every placeholder replaced, in one pass: a parameter's value is never scanned
/// for placeholders itself, so values that name other parameters (`${b}`) stay as written
/// instead of expanding again and again. A string that is exactly one placeholder takes the
/// value with its JSON type; placeholders inside longer strings are replaced by the value's text.
///
/// The rendered spec, as compact JSON, is at most `max_bytes`: rendering stops as soon as it
/// would pass the limit, naming the parameter whose value did, so a few short values repeated
/// across a template never allocate more than the limit.
pub fn render(
    spec: &Value,
    params: &[TemplateParam],
    values: &serde_json::Map<String, Value>,
    max_bytes: usize,
) -> Result<Value, Vec<Violation>> {
    let mut problems = Vec::new();
    for name in values.keys() {
        if !params.iter().any(|p| &p.name == name) {
            problems.push((format!("parameters.{name}"), "not a parameter of the template".into()));
        }
    }
    let mut resolved = BTreeMap::new();
    for p in params {
        match values.get(&p.name).or(p.default.as_ref()) {
            Some(v) => {
                resolved.insert(p.name.as_str(), Resolved::new(v));
            }
            None => problems.push((format!("parameters.{}", p.name), "is required".into())),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut renderer = Renderer { values: &resolved, left: max_bytes };
    renderer.value(spec).map_err(|culprit| {
        let field = culprit.map_or_else(|| "parameters".to_owned(), |n| format!("parameters.{n}"));
        vec![(field, format!("the rendered spec would be larger than {max_bytes} bytes"))]
    })
}

/// A parameter's value, with what it costs in the output.
struct Resolved<'a> {
    value: &'a Value,
    /// The text spliced into longer strings.
    text: std::borrow::Cow<'a, str>,
    /// Bytes of `text` once escaped in a JSON string.
    text_len: usize,
    /// Bytes of `value` as compact JSON.
    json_len: usize,
}

impl<'a> Resolved<'a> {
    fn new(value: &'a Value) -> Self {
        let text = match value {
            Value::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
            other => std::borrow::Cow::Owned(other.to_string()),
        };
        Self { value, text_len: escaped_len(&text), text, json_len: json_len(value) }
    }
}

/// The placeholder-free walk of [`render`]; errors name the parameter that passed the limit
/// (none: the template's own text did).
struct Renderer<'a> {
    values: &'a BTreeMap<&'a str, Resolved<'a>>,
    left: usize,
}

impl Renderer<'_> {
    fn spend(&mut self, bytes: usize, culprit: Option<&str>) -> Result<(), Option<String>> {
        self.left = self.left.checked_sub(bytes).ok_or_else(|| culprit.map(str::to_owned))?;
        Ok(())
    }

    fn value(&mut self, value: &Value) -> Result<Value, Option<String>> {
        match value {
            Value::String(s) => self.string(s),
            Value::Array(items) => {
                self.spend(2 + items.len().saturating_sub(1), None)?;
                items.iter().map(|v| self.value(v)).collect::<Result<_, _>>().map(Value::Array)
            }
            Value::Object(map) => {
                self.spend(2 + map.len().saturating_sub(1), None)?;
                let mut out = serde_json::Map::new();
                for (k, v) in map {
                    self.spend(escaped_len(k) + 3, None)?;
                    out.insert(k.clone(), self.value(v)?);
                }
                Ok(Value::Object(out))
            }
            other => {
                self.spend(json_len(other), None)?;
                Ok(other.clone())
            }
        }
    }

    fn string(&mut self, s: &str) -> Result<Value, Option<String>> {
        if let Some(name) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}'))
            && let Some(v) = self.values.get(name)
        {
            self.spend(v.json_len, Some(name))?;
            return Ok(v.value.clone());
        }
        self.spend(2, None)?;
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            let after = &rest[start + 2..];
            let found = after
                .find('}')
                .and_then(|end| self.values.get_key_value(&after[..end]).map(|kv| (end, kv)));
            match found {
                Some((end, (name, v))) => {
                    self.spend(escaped_len(&rest[..start]), None)?;
                    self.spend(v.text_len, Some(name))?;
                    out.push_str(&rest[..start]);
                    out.push_str(&v.text);
                    rest = &after[end + 1..];
                }
                None => {
                    // Not a placeholder: keep `${` and look again just after it.
                    self.spend(escaped_len(&rest[..start + 2]), None)?;
                    out.push_str(&rest[..start + 2]);
                    rest = after;
                }
            }
        }
        self.spend(escaped_len(rest), None)?;
        out.push_str(rest);
        Ok(Value::String(out))
    }
}

/// Probe values for a parameter with no default, by kind: the first kind under which no problem
/// touches the parameter's places is kept. Two values of each kind: a problem is reported only
/// if it shows with both, so a probe's own value (a threshold of 1 below the next band's) never
/// makes one up.
const PROBES: [[fn() -> Value; 2]; 4] = [
    [|| Value::from(1), || Value::from(1_000_000)],
    [|| Value::from("x"), || Value::from("y")],
    [|| Value::from(vec!["x"]), || Value::from(vec!["y"])],
    [|| Value::from(true), || Value::from(false)],
];

/// Most validation runs one template takes (each parses and compiles the spec once).
const MAX_RUNS: usize = 32;

/// Validates a template's spec as a model: rendered with each parameter's default, and with
/// probe values for the parameters without one (see [`PROBES`]). Every problem of the model is
/// listed at its path in the template (`spec.fit[0].when.op`); problems at the places of a
/// parameter without a default are left to ApplyTemplate, which knows the tenant's value.
pub fn validate(spec: &Value, params: &[TemplateParam], max_bytes: usize) -> Vec<Violation> {
    let mut used = Vec::new();
    placeholders(spec, "spec", &mut used);
    let open: Vec<&str> =
        params.iter().filter(|p| p.default.is_none()).map(|p| p.name.as_str()).collect();
    // Where each open parameter appears (paths relative to the spec, as the engine names them).
    let places = |name: &str| -> Vec<String> {
        used.iter()
            .filter(|(_, n)| n == name)
            .map(|(path, _)| {
                path.strip_prefix("spec").unwrap_or(path).trim_start_matches('.').to_owned()
            })
            .collect()
    };
    let open_places: Vec<(&str, Vec<String>)> = open.iter().map(|n| (*n, places(n))).collect();
    let run = |kinds: &BTreeMap<&str, usize>, variant: usize| -> Vec<Violation> {
        let values: serde_json::Map<String, Value> = kinds
            .iter()
            .map(|(name, kind)| ((*name).to_owned(), PROBES[*kind][variant]()))
            .collect();
        match render(spec, params, &values, max_bytes) {
            Ok(rendered) => model_problems(rendered),
            // Only the size limit can refuse probe values: the template's spec is too big.
            Err(problems) => problems.into_iter().map(|(_, m)| (".".to_owned(), m)).collect(),
        }
    };
    let touches = |problem: &str, places: &[String]| {
        places.iter().any(|p| {
            p.is_empty()
                || problem == p
                || problem
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
    };
    let mut kinds: BTreeMap<&str, usize> = open.iter().map(|n| (*n, 0)).collect();
    let mut runs = 0;
    for (name, places) in &open_places {
        for kind in 0..PROBES.len() {
            if runs >= MAX_RUNS {
                break;
            }
            kinds.insert(name, kind);
            runs += 1;
            if !run(&kinds, 0).iter().any(|(path, _)| touches(path, places)) {
                break;
            }
            if kind + 1 == PROBES.len() {
                kinds.insert(name, 0);
            }
        }
    }
    // Undeclared placeholders ([`check`] reports them) stay as text: whatever they break is
    // theirs, not the template's.
    let undeclared =
        used.iter().filter(|(_, n)| !params.iter().any(|p| &p.name == n)).map(|(_, n)| n.as_str());
    let all_places: Vec<String> =
        open_places.into_iter().flat_map(|(_, p)| p).chain(undeclared.flat_map(places)).collect();
    let first = run(&kinds, 0);
    let second: Vec<String> = if kinds.is_empty() {
        first.iter().map(|(p, _)| p.clone()).collect()
    } else {
        run(&kinds, 1).into_iter().map(|(p, _)| p).collect()
    };
    first
        .into_iter()
        .filter(|(path, _)| second.contains(path) && !touches(path, &all_places))
        .map(|(path, message)| {
            let path = if path == "." { "spec".to_owned() } else { format!("spec.{path}") };
            (path, message)
        })
        .collect()
}

/// Every problem of `json` as a model: its parse error, or all of its compile errors, at
/// engine paths (`fit[0].when.op`).
fn model_problems(json: Value) -> Vec<Violation> {
    match kelvin_engine::ModelSpec::from_json_value(json) {
        Err(e) => vec![(e.path, e.message)],
        Ok(spec) => match spec.compile() {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| (e.path, e.message)).collect(),
        },
    }
}

/// Bytes of `s` inside a JSON string, escaped as serde_json escapes it (quotes excluded).
pub fn escaped_len(s: &str) -> usize {
    s.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum()
}

/// Bytes of `value` as compact JSON (`serde_json::to_string`), without building the text.
pub fn json_len(value: &Value) -> usize {
    match value {
        Value::Null => 4,
        Value::Bool(b) => {
            if *b {
                4
            } else {
                5
            }
        }
        Value::Number(n) => n.to_string().len(),
        Value::String(s) => escaped_len(s) + 2,
        Value::Array(items) => {
            2 + items.len().saturating_sub(1) + items.iter().map(json_len).sum::<usize>()
        }
        Value::Object(map) => {
            2 + map.len().saturating_sub(1)
                + map.iter().map(|(k, v)| escaped_len(k) + 3 + json_len(v)).sum::<usize>()
        }
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn params() -> Vec<TemplateParam> {
        vec![
            TemplateParam {
                name: "hot".into(),
                description: String::new(),
                default: Some(json!(70)),
            },
            TemplateParam { name: "countries".into(), description: String::new(), default: None },
        ]
    }

    #[test]
    fn whole_placeholders_keep_their_type_and_inner_ones_become_text() {
        let spec = json!({"min": "${hot}", "value": "${countries}", "label": "hot from ${hot}"});
        let values = json!({"countries": ["FR", "BE"]}).as_object().unwrap().clone();
        let out = render(&spec, &params(), &values, 1 << 20).unwrap();
        assert_eq!(out, json!({"min": 70, "value": ["FR", "BE"], "label": "hot from 70"}));
    }

    #[test]
    fn missing_unknown_and_undeclared_parameters_are_reported_with_paths() {
        let err = render(
            &json!({}),
            &params(),
            &json!({"nope": 1}).as_object().unwrap().clone(),
            1 << 20,
        )
        .unwrap_err();
        assert_eq!(err.len(), 2);
        assert!(err.iter().any(|(p, _)| p == "parameters.nope"));
        assert!(err.iter().any(|(p, m)| p == "parameters.countries" && m == "is required"));
        let problems = check(&json!({"fit": [{"points": "${pts}"}]}), &params());
        assert_eq!(
            problems,
            [(
                "spec.fit[0].points".to_string(),
                "`${pts}` is not a declared parameter".to_string()
            )]
        );
    }

    fn chain() -> (Vec<TemplateParam>, serde_json::Map<String, Value>) {
        // Issue 14, finding 2: each value names the next parameter twice. Expanded again and
        // again, 24 of them made 64 Mi characters out of a 600-byte request.
        let names: Vec<String> = (0..24).map(|i| format!("p{i:02}")).collect();
        let params = names
            .iter()
            .map(|n| TemplateParam { name: n.clone(), description: String::new(), default: None })
            .collect();
        let values = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let next = names.get(i + 1).map_or("end".to_owned(), |m| format!("${{{m}}}"));
                (n.clone(), json!(format!("{next}{next}")))
            })
            .collect();
        (params, values)
    }

    #[test]
    fn values_naming_parameters_are_not_expanded_again() {
        let (params, values) = chain();
        let out = render(&json!({"description": "${p00} and ${p01}"}), &params, &values, 1 << 20)
            .unwrap();
        assert_eq!(out, json!({"description": "${p01}${p01} and ${p02}${p02}"}));
    }

    #[test]
    fn a_rendering_over_the_limit_is_refused_naming_the_parameter() {
        let params = params();
        let values = json!({"countries": "x".repeat(100)}).as_object().unwrap().clone();
        let spec = json!({"a": "${countries}", "b": ["${countries}", "${hot}"]});
        let fits = render(&spec, &params, &values, 1 << 20).unwrap();
        let size = serde_json::to_string(&fits).unwrap().len();
        assert_eq!(json_len(&fits), size);
        assert_eq!(render(&spec, &params, &values, size).unwrap(), fits);
        // `hot` is last and takes 2 bytes: 10 fewer and the second `countries` passes the limit.
        let err = render(&spec, &params, &values, size - 10).unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].0, "parameters.countries", "{err:?}");
        assert!(err[0].1.contains("larger than"), "{err:?}");
    }

    fn open(name: &str) -> TemplateParam {
        TemplateParam { name: name.into(), description: String::new(), default: None }
    }

    /// Issue 16: an invalid operator was accepted at creation and refused tenant by tenant.
    #[test]
    fn validation_lists_every_problem_of_the_model_at_its_template_path() {
        let spec = json!({
            "fit": [
                {"id": "country", "when": {"field": "lead.country", "op": "in", "value": "${countries}"}, "points": 10},
                {"id": "size", "when": {"field": "lead.company_size", "op": "bigger", "value": 100}, "points": 10},
                {"id": "title", "when": {"field": "lead.job_title", "op": "matches_not", "value": "x"}, "points": "${title_points}"}
            ],
            "bands": {"thresholds": [
                {"label": "hot", "min": "${hot}"}, {"label": "warm", "min": 30}, {"label": "cold"}
            ]}
        });
        let params = vec![params().remove(0), open("countries"), open("title_points")];
        let problems = validate(&spec, &params, 1 << 20);
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["spec.fit[1].when.op", "spec.fit[2].when.op"], "{problems:?}");
        // A valid template has no problem, whatever kind its open parameters turn out to be.
        let mut fixed = spec.clone();
        fixed["fit"][1]["when"]["op"] = json!("gte");
        fixed["fit"][2]["when"]["op"] = json!("eq");
        assert_eq!(validate(&fixed, &params, 1 << 20), []);
        // A bad default is the template's problem.
        let mut cold = params.clone();
        cold[0].default = Some(json!("very"));
        let problems = validate(&fixed, &cold, 1 << 20);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].0.starts_with("spec.bands.thresholds[0]"), "{problems:?}");
    }

    #[test]
    fn json_len_is_the_length_of_compact_json() {
        let v = json!({"q\"\\": ["\n\u{1}\u{7f}é", null, true, false, -1.5, 12, {}], "": []});
        assert_eq!(json_len(&v), serde_json::to_string(&v).unwrap().len());
    }
}
