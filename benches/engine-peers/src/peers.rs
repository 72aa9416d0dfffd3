//! The same 12-rule model for GoRules zen-engine (a compiled JDM decision), for the `cel` crate
//! (compiled programs) and as a hand-written Rust function.

use std::collections::HashMap;
use std::sync::Arc;

use kelvin_engine::{Event, HOUR_MS, Lead, Timestamp, Value};
use zen_engine::model::GraphContent;
use zen_engine::{Decision, Variable};

use crate::model::Outcome;

fn band(total: i64) -> &'static str {
    if total >= 70_000 {
        "hot"
    } else if total >= 30_000 {
        "warm"
    } else {
        "cold"
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-written Rust: the ceiling. Same input types as Kelvin (`Lead`, `&[Event]`).

/// The model as a plain function over Kelvin's input types.
pub fn hand_written(lead: &Lead, events: &[Event], as_of: Timestamp) -> Outcome {
    let attr = |k: &str| lead.attributes.get(k);
    let num = |k: &str| attr(k).and_then(Value::as_f64);
    let text = |k: &str| attr(k).and_then(Value::as_str);
    let mut fit = 0;
    if matches!(text("country"), Some("FR" | "BE" | "CH" | "LU")) {
        fit += 10_000;
    }
    if let Some(size) = num("company_size") {
        if (50.0..=500.0).contains(&size) {
            fit += 20_000;
        }
        if size < 10.0 {
            fit -= 10_000;
        }
    }
    if matches!(text("industry"), Some("software" | "retail" | "manufacturing")) {
        fit += 10_000;
    }
    if num("budget").is_some_and(|b| b >= 50_000.0) {
        fit += 25_000;
    }

    let cutoff = (as_of.div_euclid(HOUR_MS) + 1) * HOUR_MS;
    let (mut pricing, mut other, mut download, mut webinar, mut open, mut click, mut unsub) =
        (0i64, 0i64, 0i64, 0i64, 0i64, 0i64, 0i64);
    for e in events {
        if e.time_ms >= cutoff {
            continue;
        }
        match e.kind.as_str() {
            "page_view" => match e.properties.get("url").and_then(Value::as_str) {
                Some(url) if url.contains("/pricing") => pricing += 1,
                Some(_) => other += 1,
                None => {}
            },
            "content_download" => download += 1,
            "webinar_attended" => webinar += 1,
            "email_open" => open += 1,
            "email_click" => click += 1,
            "unsubscribe" => unsub += 1,
            _ => {}
        }
    }
    let engagement = (pricing * 10_000).min(30_000)
        + (other * 1_000).min(10_000)
        + (download * 15_000).min(45_000)
        + webinar * 15_000
        + (open * 1_000).min(10_000)
        + (click * 3_000).min(15_000)
        - unsub * 20_000;
    let total = (fit + engagement).clamp(0, 100_000);
    Outcome { fit, engagement, total, band: band(total).to_owned() }
}

// ---------------------------------------------------------------------------------------------
// GoRules zen-engine: a JDM graph — input → fit decision table (collect) + engagement
// expression node → total expression node → output — compiled once with `Decision::compile`.

/// The JDM decision (points in milli-points, like Kelvin's).
pub fn zen_jdm() -> serde_json::Value {
    let count = |cond: &str| format!("count(events, #.time_ms < $.cutoff and {cond})");
    let capped =
        |cond: &str, points: i64, cap: i64| format!("min([{} * {points}, {cap}])", count(cond));
    let exprs = [
        ("cutoff", "(floor(as_of / 3600000) + 1) * 3600000".to_owned()),
        (
            "pricing_page",
            capped("#.type == 'page_view' and contains(#.url, '/pricing')", 10_000, 30_000),
        ),
        (
            "other_page",
            capped("#.type == 'page_view' and not contains(#.url, '/pricing')", 1_000, 10_000),
        ),
        ("content_download", capped("#.type == 'content_download'", 15_000, 45_000)),
        ("webinar_attended", format!("{} * 15000", count("#.type == 'webinar_attended'"))),
        ("email_open", capped("#.type == 'email_open'", 1_000, 10_000)),
        ("email_click", capped("#.type == 'email_click'", 3_000, 15_000)),
        ("unsubscribe", format!("{} * -20000", count("#.type == 'unsubscribe'"))),
        (
            "engagement",
            "$.pricing_page + $.other_page + $.content_download + $.webinar_attended \
             + $.email_open + $.email_click + $.unsubscribe"
                .to_owned(),
        ),
    ];
    let expressions: Vec<serde_json::Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| serde_json::json!({"id": format!("x{i}"), "key": k, "value": v}))
        .collect();
    let rule = |id: &str, cells: &[(&str, &str)], points: &str| {
        let mut r = serde_json::Map::new();
        r.insert("_id".into(), id.into());
        for col in ["country", "size", "industry", "budget"] {
            r.insert(col.into(), "".into());
        }
        for (col, v) in cells {
            r.insert((*col).into(), (*v).into());
        }
        r.insert("points".into(), points.into());
        serde_json::Value::Object(r)
    };
    serde_json::json!({
        "nodes": [
            {"id": "in", "name": "request", "type": "inputNode", "content": {}},
            {"id": "fit", "name": "fit", "type": "decisionTableNode", "content": {
                "hitPolicy": "collect",
                "outputPath": "fit_rules",
                "inputs": [
                    {"id": "country", "name": "country", "field": "lead.country"},
                    {"id": "size", "name": "company size", "field": "lead.company_size"},
                    {"id": "industry", "name": "industry", "field": "lead.industry"},
                    {"id": "budget", "name": "budget", "field": "lead.budget"}
                ],
                "outputs": [{"id": "points", "name": "points", "field": "points"}],
                "rules": [
                    rule("country_served", &[("country", r#""FR", "BE", "CH", "LU""#)], "10000"),
                    rule("company_size_mid", &[("size", "[50..500]")], "20000"),
                    rule("company_size_tiny", &[("size", "< 10")], "-10000"),
                    rule("target_industry", &[("industry", r#""software", "retail", "manufacturing""#)], "10000"),
                    rule("bant_budget", &[("budget", ">= 50000")], "25000")
                ]
            }},
            {"id": "eng", "name": "engagement", "type": "expressionNode", "content": {"expressions": expressions}},
            {"id": "total", "name": "total", "type": "expressionNode", "content": {"expressions": [
                {"id": "t0", "key": "fit", "value": "sum(map(fit_rules, #.points))"},
                {"id": "t1", "key": "engagement", "value": "engagement"},
                {"id": "t2", "key": "total", "value": "max([0, min([100000, $.fit + $.engagement])])"},
                {"id": "t3", "key": "band", "value": "$.total >= 70000 ? 'hot' : ($.total >= 30000 ? 'warm' : 'cold')"}
            ]}},
            {"id": "out", "name": "response", "type": "outputNode", "content": {}}
        ],
        "edges": [
            {"id": "e1", "sourceId": "in", "targetId": "fit"},
            {"id": "e2", "sourceId": "in", "targetId": "eng"},
            {"id": "e3", "sourceId": "fit", "targetId": "total"},
            {"id": "e4", "sourceId": "eng", "targetId": "total"},
            {"id": "e5", "sourceId": "total", "targetId": "out"}
        ]
    })
}

/// The compiled zen decision.
pub struct Zen {
    decision: Decision,
}

impl Zen {
    pub fn new() -> Result<Self, String> {
        let content: GraphContent =
            serde_json::from_value(zen_jdm()).map_err(|e| format!("zen JDM: {e}"))?;
        let mut decision = Decision::from(Arc::new(content));
        decision.compile();
        decision.validate().map_err(|e| format!("zen JDM invalid: {e:?}"))?;
        Ok(Zen { decision })
    }

    /// The zen input for a lead (built once per lead, outside the timed loop).
    pub fn input(json: &serde_json::Value) -> Variable {
        Variable::from(json.clone())
    }

    /// Evaluates the decision (zen's `evaluate` is async; it never awaits I/O here).
    pub fn eval(&self, input: &Variable) -> Result<Variable, String> {
        futures::executor::block_on(self.decision.evaluate(input.clone()))
            .map(|r| r.result)
            .map_err(|e| format!("zen evaluation failed: {e:?}"))
    }

    pub fn outcome(result: &Variable) -> Result<Outcome, String> {
        outcome_of_json(&result.to_value(), "zen")
    }
}

fn outcome_of_json(v: &serde_json::Value, who: &str) -> Result<Outcome, String> {
    let int = |k: &str| {
        let n = v
            .get(k)
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| format!("{who}: no number `{k}` in {v}"))?;
        if n.fract() != 0.0 {
            return Err(format!("{who}: `{k}` = {n} is not a whole number of milli-points"));
        }
        Ok(n as i64)
    };
    Ok(Outcome {
        fit: int("fit")?,
        engagement: int("engagement")?,
        total: int("total")?,
        band: v
            .get("band")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| format!("{who}: no band in {v}"))?
            .to_owned(),
    })
}

// ---------------------------------------------------------------------------------------------
// CEL (`cel` crate): four programs compiled once. CEL has no `let`, so the hour cutoff and the
// fit/engagement sums are computed by their own programs and passed on as variables.

pub struct Cel {
    cutoff: cel::Program,
    fit: cel::Program,
    engagement: cel::Program,
    outcome: cel::Program,
}

/// A lead's CEL context: `lead`, `events`, `as_of` and the `min` / `max` functions, built once
/// per lead (outside the timed loop).
pub struct CelInput {
    root: cel::Context<'static, 'static>,
}

fn cel_value(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => cel::Value::Int(i),
            None => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(a) => cel::Value::List(Arc::new(a.iter().map(cel_value).collect())),
        Value::Object(m) => {
            let map: HashMap<String, cel::Value> =
                m.iter().map(|(k, v)| (k.clone(), cel_value(v))).collect();
            cel::Value::from(map)
        }
    }
}

impl Cel {
    pub fn new() -> Result<Self, String> {
        let compile =
            |src: &str| cel::Program::compile(src).map_err(|e| format!("CEL `{src}`: {e}"));
        let count = |cond: &str| format!("size(events.filter(e, e.time_ms < cutoff && {cond}))");
        let capped =
            |cond: &str, points: i64, cap: i64| format!("min({} * {points}, {cap})", count(cond));
        let engagement = [
            capped(r#"e.type == "page_view" && e.url.contains("/pricing")"#, 10_000, 30_000),
            capped(r#"e.type == "page_view" && !e.url.contains("/pricing")"#, 1_000, 10_000),
            capped(r#"e.type == "content_download""#, 15_000, 45_000),
            format!("{} * 15000", count(r#"e.type == "webinar_attended""#)),
            capped(r#"e.type == "email_open""#, 1_000, 10_000),
            capped(r#"e.type == "email_click""#, 3_000, 15_000),
            format!("{} * -20000", count(r#"e.type == "unsubscribe""#)),
        ]
        .join(" + ");
        let fit = r#"(lead.country in ["FR", "BE", "CH", "LU"] ? 10000 : 0)
            + (lead.company_size >= 50 && lead.company_size <= 500 ? 20000 : 0)
            + (lead.company_size < 10 ? -10000 : 0)
            + (lead.industry in ["software", "retail", "manufacturing"] ? 10000 : 0)
            + (lead.budget >= 50000 ? 25000 : 0)"#;
        let total = "max(0, min(100000, fit + engagement))";
        let outcome = format!(
            r#"{{"fit": fit, "engagement": engagement, "total": {total},
                "band": {total} >= 70000 ? "hot" : ({total} >= 30000 ? "warm" : "cold")}}"#
        );
        Ok(Cel {
            cutoff: compile("(as_of / 3600000 + 1) * 3600000")?,
            fit: compile(fit)?,
            engagement: compile(&engagement)?,
            outcome: compile(&outcome)?,
        })
    }

    pub fn input(json: &serde_json::Value) -> Result<CelInput, String> {
        let mut root = cel::Context::default();
        root.add_function("min", cel::functions::min).map_err(|e| format!("CEL min: {e:?}"))?;
        root.add_function("max", cel::functions::max).map_err(|e| format!("CEL max: {e:?}"))?;
        root.add_variable_from_value("lead", cel_value(&json["lead"]));
        root.add_variable_from_value("events", cel_value(&json["events"]));
        root.add_variable_from_value("as_of", cel_value(&json["as_of"]));
        Ok(CelInput { root })
    }

    /// Runs the programs in a scope of the lead's context.
    pub fn eval(&self, input: &CelInput) -> Result<cel::Value, String> {
        let err = |e: cel::ExecutionError| format!("CEL evaluation failed: {e}");
        let mut ctx = input.root.new_inner_scope();
        let cutoff = self.cutoff.execute(&ctx).map_err(err)?;
        ctx.add_variable_from_value("cutoff", cutoff);
        let fit = self.fit.execute(&ctx).map_err(err)?;
        let engagement = self.engagement.execute(&ctx).map_err(err)?;
        ctx.add_variable_from_value("fit", fit);
        ctx.add_variable_from_value("engagement", engagement);
        self.outcome.execute(&ctx).map_err(err)
    }

    pub fn outcome(v: &cel::Value) -> Result<Outcome, String> {
        let cel::Value::Map(m) = v else { return Err(format!("CEL: not a map: {v:?}")) };
        let get = |k: &str| {
            m.get(&cel::objects::Key::from(k.to_owned()))
                .cloned()
                .ok_or_else(|| format!("CEL: no `{k}`"))
        };
        let int = |k: &str| match get(k)? {
            cel::Value::Int(i) => Ok(i),
            other => Err(format!("CEL: `{k}` is not an int: {other:?}")),
        };
        let band = match get("band")? {
            cel::Value::String(s) => s.as_str().to_owned(),
            other => return Err(format!("CEL: band is not a string: {other:?}")),
        };
        Ok(Outcome { fit: int("fit")?, engagement: int("engagement")?, total: int("total")?, band })
    }
}
