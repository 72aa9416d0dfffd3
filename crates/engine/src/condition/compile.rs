//! Compiling a [`Condition`] of a model into a [`Cond`]: field names, operators, value types,
//! list lengths, nesting depth and bounded regexes checked, every problem reported with its
//! path.

use regex::RegexBuilder;
use serde_json::Value;

use super::{
    CmpOp, Cond, FieldRef, MAX_DEPTH, MAX_LIST_LEN, MAX_REGEX_LEN, REGEX_SIZE_LIMIT, Reads, Scalar,
    Test, email_domain,
};
use crate::ValidationError;
use crate::spec::Condition;

/// Compiles a condition found at `path`, pushing every problem to `errors`.
pub(crate) fn compile(
    c: &Condition,
    path: &str,
    depth: usize,
    reads: &mut Reads,
    errors: &mut Vec<ValidationError>,
) -> Option<Cond> {
    let err = |errors: &mut Vec<ValidationError>, p: String, m: &str| {
        errors.push(ValidationError::new(p, m));
    };
    let kinds = [
        c.all.is_some(),
        c.any.is_some(),
        c.not.is_some(),
        c.field.is_some() || c.op.is_some() || c.value.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        err(
            errors,
            path.to_owned(),
            "a condition needs exactly one of `all`, `any`, `not`, or `field` with `op`",
        );
        return None;
    }
    if let Some(list) = c.all.as_ref().or(c.any.as_ref()) {
        let key = if c.all.is_some() { "all" } else { "any" };
        if depth >= MAX_DEPTH {
            err(
                errors,
                format!("{path}.{key}"),
                &format!("conditions nest at most {MAX_DEPTH} groups deep"),
            );
            return None;
        }
        if list.is_empty() {
            err(errors, format!("{path}.{key}"), "must not be empty");
            return None;
        }
        let mut out = Vec::with_capacity(list.len());
        let mut ok = true;
        for (i, sub) in list.iter().enumerate() {
            match compile(sub, &format!("{path}.{key}[{i}]"), depth + 1, reads, errors) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        return Some(if c.all.is_some() { Cond::All(out) } else { Cond::Any(out) });
    }
    if let Some(sub) = &c.not {
        if depth >= MAX_DEPTH {
            err(
                errors,
                format!("{path}.not"),
                &format!("conditions nest at most {MAX_DEPTH} groups deep"),
            );
            return None;
        }
        return compile(sub, &format!("{path}.not"), depth + 1, reads, errors)
            .map(|s| Cond::Not(Box::new(s)));
    }
    let field = match &c.field {
        Some(f) => parse_field(f, &format!("{path}.field"), errors),
        None => {
            err(errors, format!("{path}.field"), "missing field reference");
            None
        }
    };
    if let Some(f) = &field {
        match f {
            FieldRef::Lead(_) => reads.lead = true,
            FieldRef::Company(_) => reads.company = true,
            FieldRef::EventType | FieldRef::EventProp(_) => reads.event = true,
        }
    }
    let test = match &c.op {
        Some(op) => compile_test(op, c.value.as_ref(), path, errors),
        None => {
            err(errors, format!("{path}.op"), "missing operator");
            None
        }
    };
    Some(Cond::Leaf(field?, test?))
}

fn parse_field(f: &str, path: &str, errors: &mut Vec<ValidationError>) -> Option<FieldRef> {
    let (prefix, name) = match f.split_once('.') {
        Some(x) => x,
        None => {
            errors.push(ValidationError::new(
                path,
                format!("unknown field `{f}`: expected `lead.<attr>`, `company.<attr>`, `event.type` or `event.<property>`"),
            ));
            return None;
        }
    };
    if name.is_empty() || name.len() > 128 {
        errors.push(ValidationError::new(path, "field name must be 1 to 128 characters"));
        return None;
    }
    match prefix {
        "lead" => Some(FieldRef::Lead(name.to_owned())),
        "company" => Some(FieldRef::Company(name.to_owned())),
        "event" if name == "type" => Some(FieldRef::EventType),
        "event" => Some(FieldRef::EventProp(name.to_owned())),
        _ => {
            errors.push(ValidationError::new(
                path,
                format!("unknown field prefix `{prefix}`: expected `lead`, `company` or `event`"),
            ));
            None
        }
    }
}

fn to_scalar(v: &Value) -> Option<Scalar> {
    match v {
        Value::String(s) => Some(Scalar::Str(s.clone())),
        Value::Number(n) => n.as_f64().map(Scalar::Num),
        Value::Bool(b) => Some(Scalar::Bool(*b)),
        _ => None,
    }
}

fn compile_test(
    op: &str,
    value: Option<&Value>,
    path: &str,
    errors: &mut Vec<ValidationError>,
) -> Option<Test> {
    let vpath = format!("{path}.value");
    let mut fail = |m: &str| {
        errors.push(ValidationError::new(vpath.clone(), m));
        None
    };
    let scalar_list = |v: Option<&Value>| -> Option<Vec<Scalar>> {
        let items = v?.as_array()?;
        if items.is_empty() || items.len() > MAX_LIST_LEN {
            return None;
        }
        items.iter().map(to_scalar).collect()
    };
    match op {
        "eq" | "ne" | "contains" => match value.and_then(to_scalar) {
            Some(s) => Some(match op {
                "eq" => Test::Eq(s),
                "ne" => Test::Ne(s),
                _ => Test::Contains(s),
            }),
            None => fail("expects a string, number or boolean"),
        },
        "in" | "not_in" => match scalar_list(value) {
            Some(l) => Some(if op == "in" { Test::In(l) } else { Test::NotIn(l) }),
            None => {
                fail(&format!("expects a list of 1 to {MAX_LIST_LEN} strings, numbers or booleans"))
            }
        },
        "starts_with" | "ends_with" => match value.and_then(Value::as_str) {
            Some(s) if !s.is_empty() => Some(if op == "starts_with" {
                Test::StartsWith(s.to_owned())
            } else {
                Test::EndsWith(s.to_owned())
            }),
            _ => fail("expects a non-empty string"),
        },
        "matches" => match value.and_then(Value::as_str) {
            Some(p) if p.len() > MAX_REGEX_LEN => {
                fail(&format!("regex longer than {MAX_REGEX_LEN} bytes"))
            }
            Some(p) => match RegexBuilder::new(p)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .nest_limit(32)
                .build()
            {
                Ok(re) => Some(Test::Matches(re)),
                Err(regex::Error::CompiledTooBig(_)) => fail(&format!(
                    "regex exceeds the compiled size limit of {REGEX_SIZE_LIMIT} bytes"
                )),
                Err(e) => fail(&format!(
                    "invalid regex: {}",
                    e.to_string().lines().last().unwrap_or_default().trim()
                )),
            },
            None => fail("expects a regex string"),
        },
        "gt" | "gte" | "lt" | "lte" => match value.and_then(Value::as_f64) {
            Some(x) => Some(Test::Cmp(
                match op {
                    "gt" => CmpOp::Gt,
                    "gte" => CmpOp::Gte,
                    "lt" => CmpOp::Lt,
                    _ => CmpOp::Lte,
                },
                x,
            )),
            None => fail("expects a number"),
        },
        "between" => {
            let pair = value
                .and_then(Value::as_array)
                .filter(|a| a.len() == 2)
                .and_then(|a| Some((a[0].as_f64()?, a[1].as_f64()?)));
            match pair {
                Some((lo, hi)) if lo <= hi => Some(Test::Between(lo, hi)),
                Some(_) => fail("the lower bound must not exceed the upper bound"),
                None => fail("expects a list of two numbers [low, high]"),
            }
        }
        "exists" => match value {
            None => Some(Test::Exists(true)),
            Some(Value::Bool(b)) => Some(Test::Exists(*b)),
            Some(_) => fail("expects a boolean or no value"),
        },
        "is_true" | "free_email" => match value {
            None => Some(if op == "is_true" { Test::IsTrue } else { Test::FreeEmail }),
            Some(_) => fail(&format!("`{op}` takes no value")),
        },
        "email_domain_in" => {
            let list = value.and_then(Value::as_array).and_then(|a| {
                if a.is_empty() || a.len() > MAX_LIST_LEN {
                    return None;
                }
                a.iter()
                    .map(|d| d.as_str().map(email_domain).filter(|d| !d.is_empty()))
                    .collect::<Option<Vec<_>>>()
            });
            match list {
                Some(l) => Some(Test::EmailDomainIn(l)),
                None => fail(&format!("expects a list of 1 to {MAX_LIST_LEN} non-empty domains")),
            }
        }
        _ => {
            errors.push(ValidationError::new(
                format!("{path}.op"),
                format!("unknown operator `{op}`"),
            ));
            None
        }
    }
}
