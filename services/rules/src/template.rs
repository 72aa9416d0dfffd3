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

/// The spec with every placeholder replaced. A string that is exactly one placeholder takes the
/// value with its JSON type; placeholders inside longer strings are replaced by the value's text.
pub fn render(
    spec: &Value,
    params: &[TemplateParam],
    values: &serde_json::Map<String, Value>,
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
                resolved.insert(p.name.clone(), v.clone());
            }
            None => problems.push((format!("parameters.{}", p.name), "is required".into())),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(substitute(spec, &resolved))
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn substitute(value: &Value, values: &BTreeMap<String, Value>) -> Value {
    match value {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}'))
                && let Some(v) = values.get(name)
            {
                return v.clone();
            }
            let mut out = s.clone();
            for (name, v) in values {
                out = out.replace(&format!("${{{name}}}"), &text(v));
            }
            Value::String(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, values)).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), substitute(v, values))).collect())
        }
        other => other.clone(),
    }
}

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
        let out = render(&spec, &params(), &values).unwrap();
        assert_eq!(out, json!({"min": 70, "value": ["FR", "BE"], "label": "hot from 70"}));
    }

    #[test]
    fn missing_unknown_and_undeclared_parameters_are_reported_with_paths() {
        let err = render(&json!({}), &params(), &json!({"nope": 1}).as_object().unwrap().clone())
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
}
