//! Conditions: compiled from [`crate::spec::Condition`] once, evaluated many times. This file
//! holds the compiled form and its evaluation; `condition/compile.rs` builds it.

mod compile;

use std::collections::BTreeMap;

pub(crate) use compile::compile;
use regex::Regex;
use serde_json::Value;

use crate::input::Event;

/// Deepest nesting of `all` / `any` / `not` groups.
pub const MAX_DEPTH: usize = 8;
/// Longest regex pattern, in bytes.
pub const MAX_REGEX_LEN: usize = 512;
/// Compiled size limit of one regex, in bytes.
pub const REGEX_SIZE_LIMIT: usize = 64 * 1024;
/// Most values in one `in` / `not_in` / `email_domain_in` list.
pub const MAX_LIST_LEN: usize = 1000;

/// Every operator name the model format knows.
pub const OPERATORS: &[&str] = &[
    "eq",
    "ne",
    "in",
    "not_in",
    "contains",
    "starts_with",
    "ends_with",
    "matches",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "exists",
    "is_true",
    "email_domain_in",
    "free_email",
];

/// Domains of free webmail providers used by `free_email`.
pub const FREE_EMAIL_DOMAINS: &[&str] = &[
    "163.com",
    "aol.com",
    "free.fr",
    "gmail.com",
    "gmx.com",
    "gmx.de",
    "gmx.fr",
    "googlemail.com",
    "hotmail.co.uk",
    "hotmail.com",
    "hotmail.fr",
    "icloud.com",
    "laposte.net",
    "live.com",
    "live.fr",
    "mac.com",
    "mail.com",
    "mail.ru",
    "me.com",
    "msn.com",
    "orange.fr",
    "outlook.com",
    "outlook.fr",
    "proton.me",
    "protonmail.com",
    "qq.com",
    "sfr.fr",
    "tutanota.com",
    "wanadoo.fr",
    "web.de",
    "yahoo.co.uk",
    "yahoo.com",
    "yahoo.fr",
    "yandex.com",
    "yandex.ru",
    "zoho.com",
];

/// Which fields a condition reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Reads {
    pub lead: bool,
    pub company: bool,
    pub event: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldRef {
    Lead(String),
    Company(String),
    EventType,
    EventProp(String),
}

#[derive(Debug, Clone)]
pub(crate) enum Scalar {
    Str(String),
    Num(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone)]
pub(crate) enum Test {
    Eq(Scalar),
    Ne(Scalar),
    In(Vec<Scalar>),
    NotIn(Vec<Scalar>),
    Contains(Scalar),
    StartsWith(String),
    EndsWith(String),
    Matches(Regex),
    Cmp(CmpOp, f64),
    Between(f64, f64),
    Exists(bool),
    IsTrue,
    EmailDomainIn(Vec<String>),
    FreeEmail,
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub(crate) enum Cond {
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
    Leaf(FieldRef, Test),
}

/// What a condition is evaluated against.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ctx<'a> {
    pub lead: Option<&'a BTreeMap<String, Value>>,
    pub company: Option<&'a BTreeMap<String, Value>>,
    pub event: Option<&'a Event>,
}

enum View<'a> {
    Str(&'a str),
    Json(&'a Value),
}

impl Cond {
    pub(crate) fn eval(&self, ctx: &Ctx<'_>) -> bool {
        match self {
            Cond::All(cs) => cs.iter().all(|c| c.eval(ctx)),
            Cond::Any(cs) => cs.iter().any(|c| c.eval(ctx)),
            Cond::Not(c) => !c.eval(ctx),
            Cond::Leaf(field, test) => {
                let view = match field {
                    FieldRef::Lead(k) => ctx.lead.and_then(|m| m.get(k)).map(View::Json),
                    FieldRef::Company(k) => ctx.company.and_then(|m| m.get(k)).map(View::Json),
                    FieldRef::EventType => ctx.event.map(|e| View::Str(e.kind.as_str())),
                    FieldRef::EventProp(k) => {
                        ctx.event.and_then(|e| e.properties.get(k)).map(View::Json)
                    }
                };
                let view = match view {
                    Some(View::Json(Value::Null)) | None => None,
                    v => v,
                };
                match test {
                    Test::Exists(want) => view.is_some() == *want,
                    _ => view.is_some_and(|v| test.holds(&v)),
                }
            }
        }
    }
}

impl Cond {
    /// The fields this condition compares as numbers (`gt`, `gte`, `lt`, `lte`, `between`).
    pub(crate) fn numeric_fields<'a>(&'a self, out: &mut Vec<&'a FieldRef>) {
        match self {
            Cond::All(cs) | Cond::Any(cs) => cs.iter().for_each(|c| c.numeric_fields(out)),
            Cond::Not(c) => c.numeric_fields(out),
            Cond::Leaf(field, Test::Cmp(..) | Test::Between(..)) => out.push(field),
            Cond::Leaf(..) => {}
        }
    }
}

/// Whether a numeric test can read `value`: a number, a string that parses as one (`"60000"`,
/// not `"60 000 €"`), or a list of those; null (no value) counts as readable. Anything else
/// silently fails every numeric test, which ingestion warns about.
pub fn reads_as_number(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.iter().all(|i| i.is_null() || Sv::of(i).as_number().is_some()),
        v => Sv::of(v).as_number().is_some(),
    }
}

/// The event types (`event.type`) a test on the type accepts: `eq` a string, or the strings of
/// an `in` list (`event.type` is always a string, so other scalars never match).
fn type_test_types(c: &Cond) -> Option<Vec<&str>> {
    fn str_of(x: &Scalar) -> Option<&str> {
        match x {
            Scalar::Str(s) => Some(s.as_str()),
            _ => None,
        }
    }
    match c {
        Cond::Leaf(FieldRef::EventType, Test::Eq(x)) => Some(str_of(x).into_iter().collect()),
        Cond::Leaf(FieldRef::EventType, Test::In(xs)) => {
            Some(xs.iter().filter_map(str_of).collect())
        }
        _ => None,
    }
}

impl Cond {
    /// For an event condition that can only hold for some event types — a test on
    /// `event.type` (`eq` / `in`), alone or as a member of a top-level `all` group — those types
    /// and what remains to check once the type is known to be one of them (`None`: nothing).
    /// `None` when no such test is found.
    pub(crate) fn split_event_types(&self) -> Option<(Vec<&str>, Option<Cond>)> {
        if let Some(types) = type_test_types(self) {
            return Some((types, None));
        }
        let Cond::All(cs) = self else { return None };
        let (i, types) = cs.iter().enumerate().find_map(|(i, c)| Some((i, type_test_types(c)?)))?;
        let mut rest: Vec<Cond> =
            cs.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, c)| c.clone()).collect();
        let rest = match rest.len() {
            0 => None,
            1 => rest.pop(),
            _ => Some(Cond::All(rest)),
        };
        Some((types, rest))
    }
}

/// A borrowed scalar: what every test but list ones compares.
#[derive(Clone, Copy)]
enum Sv<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
    Other,
}

impl<'a> Sv<'a> {
    fn of(v: &'a Value) -> Self {
        match v {
            Value::String(s) => Sv::Str(s),
            Value::Number(n) => n.as_f64().map_or(Sv::Other, Sv::Num),
            Value::Bool(b) => Sv::Bool(*b),
            _ => Sv::Other,
        }
    }

    fn as_str(self) -> Option<&'a str> {
        match self {
            Sv::Str(s) => Some(s),
            _ => None,
        }
    }

    fn as_number(self) -> Option<f64> {
        match self {
            Sv::Num(n) => Some(n),
            Sv::Str(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
            _ => None,
        }
    }
}

impl Test {
    fn holds(&self, v: &View<'_>) -> bool {
        match v {
            View::Str(s) => self.holds_scalar(Sv::Str(s)),
            View::Json(Value::Array(items)) => self.holds_list(items),
            View::Json(j) => self.holds_scalar(Sv::of(j)),
        }
    }

    fn holds_list(&self, items: &[Value]) -> bool {
        match self {
            Test::Ne(x) => !items.iter().any(|i| scalar_eq(Sv::of(i), x)),
            Test::NotIn(xs) => !items.iter().any(|i| xs.iter().any(|x| scalar_eq(Sv::of(i), x))),
            Test::Contains(x) => items.iter().any(|i| scalar_eq(Sv::of(i), x)),
            _ => items
                .iter()
                .filter(|i| !i.is_array() && !i.is_null())
                .any(|i| self.holds_scalar(Sv::of(i))),
        }
    }

    fn holds_scalar(&self, v: Sv<'_>) -> bool {
        let s = v.as_str();
        match self {
            Test::Eq(x) => scalar_eq(v, x),
            Test::Ne(x) => !scalar_eq(v, x),
            Test::In(xs) => xs.iter().any(|x| scalar_eq(v, x)),
            Test::NotIn(xs) => !xs.iter().any(|x| scalar_eq(v, x)),
            Test::Contains(Scalar::Str(x)) => s.is_some_and(|s| contains_str(s, x)),
            Test::Contains(_) => false,
            Test::StartsWith(x) => s.is_some_and(|s| s.starts_with(x.as_str())),
            Test::EndsWith(x) => s.is_some_and(|s| s.ends_with(x.as_str())),
            Test::Matches(re) => s.is_some_and(|s| re.is_match(s)),
            Test::Cmp(op, x) => v.as_number().is_some_and(|n| match op {
                CmpOp::Gt => n > *x,
                CmpOp::Gte => n >= *x,
                CmpOp::Lt => n < *x,
                CmpOp::Lte => n <= *x,
            }),
            Test::Between(lo, hi) => v.as_number().is_some_and(|n| *lo <= n && n <= *hi),
            Test::Exists(_) => true,
            Test::IsTrue => matches!(v, Sv::Bool(true)),
            Test::EmailDomainIn(domains) => s.is_some_and(|s| {
                let d = email_domain(s);
                domains.iter().any(|x| {
                    d == *x || d.strip_suffix(x.as_str()).is_some_and(|p| p.ends_with('.'))
                })
            }),
            Test::FreeEmail => s.is_some_and(|s| {
                let d = email_domain(s);
                FREE_EMAIL_DOMAINS.binary_search(&d.as_str()).is_ok()
            }),
        }
    }
}

/// `haystack.contains(needle)`. Short haystacks (URLs, titles) are scanned directly: the
/// generic substring searcher's set-up and per-window comparisons cost more than the scan.
fn contains_str(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    let Some((&first, rest)) = n.split_first() else {
        return true;
    };
    if h.len() < n.len() {
        return false;
    }
    if h.len() > 256 {
        return haystack.contains(needle);
    }
    // Byte-wise matching is exact here: both are valid UTF-8, so a byte match starts and ends
    // on character boundaries.
    (0..=h.len() - n.len())
        .any(|i| h[i] == first && h[i + 1..i + n.len()].iter().zip(rest).all(|(a, b)| a == b))
}

/// The domain of an email address (after the last `@`, trimmed, lowercased); a string with
/// no `@` is taken as a domain.
pub(crate) fn email_domain(s: &str) -> String {
    let d = s.rsplit_once('@').map_or(s, |(_, d)| d);
    d.trim().trim_end_matches('.').to_lowercase()
}

fn scalar_eq(v: Sv<'_>, x: &Scalar) -> bool {
    match (v, x) {
        (Sv::Str(a), Scalar::Str(b)) => a == b,
        (Sv::Num(a), Scalar::Num(b)) => a == *b,
        (Sv::Bool(a), Scalar::Bool(b)) => a == *b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_mail_list_is_sorted() {
        let mut sorted = FREE_EMAIL_DOMAINS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, FREE_EMAIL_DOMAINS);
    }

    #[test]
    fn contains_matches_std() {
        let hays = ["", "/", "/pricing", "/pricing/enterprise", "/docs/pricin", "aaab", "été/prix"];
        let needles = ["", "/", "/pricing", "ing", "ab", "aab", "prix", "é", "x"];
        let long = "ab".repeat(200) + "/pricing";
        for h in hays.iter().copied().chain([long.as_str()]) {
            for n in needles {
                assert_eq!(contains_str(h, n), h.contains(n), "{h:?} contains {n:?}");
            }
        }
    }

    #[test]
    fn email_domains() {
        assert_eq!(email_domain("Jane.Doe@Example.COM "), "example.com");
        assert_eq!(email_domain("example.com"), "example.com");
    }
}
