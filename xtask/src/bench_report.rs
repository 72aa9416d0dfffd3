//! The bench summary: every figure of `target/bench/*.json` against its target, as
//! `summary.md`, `summary.json` and a chart, `summary.svg` (one bar per figure, scaled so that
//! the target is the same line for all; green when met).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

/// Whether a figure must be at least or at most its target.
#[derive(Clone, Copy)]
enum Goal {
    AtLeast,
    AtMost,
}

struct Figure {
    id: &'static str,
    what: &'static str,
    value: f64,
    unit: &'static str,
    goal: Goal,
    target: f64,
    detail: String,
}

impl Figure {
    fn met(&self) -> bool {
        match self.goal {
            Goal::AtLeast => self.value >= self.target,
            Goal::AtMost => self.value <= self.target,
        }
    }

    /// How far along to the target, 1 = exactly on it, more = better (capped for the chart).
    fn score(&self) -> f64 {
        let s = match self.goal {
            Goal::AtLeast => self.value / self.target,
            Goal::AtMost if self.value <= 0.0 => f64::INFINITY,
            Goal::AtMost => self.target / self.value,
        };
        if s.is_nan() { 0.0 } else { s.clamp(0.0, 2.0) }
    }

    fn target_text(&self) -> String {
        let op = match self.goal {
            Goal::AtLeast => "≥",
            Goal::AtMost => "≤",
        };
        format!("{op} {}{}", self.target, self.unit)
    }
}

fn read(out: &Path, name: &str) -> Option<Value> {
    let text = std::fs::read_to_string(out.join(format!("{name}.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

fn num(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

fn figures(out: &Path) -> Vec<Figure> {
    let mut figures = Vec::new();
    if let Some(i) = read(out, "ingest") {
        figures.push(Figure {
            id: "B1",
            what: "GetScore, warm cache / empty tonic service",
            value: num(&i, "b1_over_echo"),
            unit: "",
            goal: Goal::AtLeast,
            target: 0.7,
            detail: format!(
                "{:.0} vs {:.0} req/s",
                num(&i, "b1_requests_per_s"),
                num(&i, "echo_requests_per_s")
            ),
        });
        figures.push(Figure {
            id: "B2",
            what: "batch ingest / PostgreSQL COPY",
            value: num(&i, "b2_over_copy"),
            unit: "",
            goal: Goal::AtLeast,
            target: 0.5,
            detail: format!(
                "{:.0} vs {:.0} events/s",
                num(&i, "b2_events_per_s"),
                num(&i, "copy_rows_per_s")
            ),
        });
        figures.push(Figure {
            id: "B3",
            what: "streaming ingest / batch ingest",
            value: num(&i, "b3_over_b2"),
            unit: "",
            goal: Goal::AtLeast,
            target: 1.2,
            detail: format!(
                "{:.0} vs {:.0} events/s",
                num(&i, "b3_events_per_s"),
                num(&i, "b2_events_per_s")
            ),
        });
        let baseline = num(&i, "b1_p50_ms") + num(&i, "commit_p50_ms");
        figures.push(Figure {
            id: "B4",
            what: "ack → readable p99 / (B1 p50 + one commit)",
            value: num(&i, "b4_p99_ms") / baseline,
            unit: "",
            goal: Goal::AtMost,
            target: 5.0,
            detail: format!("{:.1} ms vs {baseline:.2} ms", num(&i, "b4_p99_ms")),
        });
    }
    if let Some(e) = read(out, "engine") {
        let ratio = e.pointer("/ratios/kelvin_vs_zen/value").and_then(Value::as_f64);
        figures.push(Figure {
            id: "B5",
            what: "engine evaluations/s / compiled zen-engine",
            value: ratio.unwrap_or(f64::NAN),
            unit: "",
            goal: Goal::AtLeast,
            target: 20.0,
            detail: "see engine.md".into(),
        });
    }
    if let Some(r) = read(out, "rescore") {
        figures.push(Figure {
            id: "B6",
            what: "rescore after publish / reading the events",
            value: num(&r, "b6_over_read"),
            unit: "",
            goal: Goal::AtLeast,
            target: 0.3,
            detail: format!(
                "{:.0} vs {:.0} leads/s",
                num(&r, "b6_leads_per_s"),
                num(&r, "read_leads_per_s")
            ),
        });
    }
    if let Some(t) = read(out, "tenants") {
        figures.push(Figure {
            id: "B7",
            what: "quiet tenant p99 beside a 10× neighbour / alone",
            value: num(&t, "b7_ingest_p99_ratio"),
            unit: "",
            goal: Goal::AtMost,
            target: 1.5,
            detail: format!(
                "{:.2} vs {:.2} ms",
                num(&t, "crowded_ingest_p99_ms"),
                num(&t, "alone_ingest_p99_ms")
            ),
        });
    }
    if let Some(n) = read(out, "neighbours") {
        // Issue 14's findings: the quiet tenant's p99 beside the noisy one against alone, with
        // B7's target.
        let findings: [(&'static str, &'static str, &'static str); 4] = [
            ("B11.3", "f3", "quiet p99 beside expensive SimulateScore / alone"),
            ("B11.5", "f5", "quiet p99 beside a 4× capacity flood / alone"),
            ("B11.7", "f7", "quiet write p99 beside 1,000-lead upserts (SQLite) / alone"),
            ("B11.11", "f11", "quiet p99 beside idle change streams / alone"),
        ];
        for (id, key, what) in findings {
            let f = n.get(key).cloned().unwrap_or_default();
            let p99 = |phase: &str| f.pointer(&format!("/{phase}/p99_ms")).and_then(Value::as_f64);
            figures.push(Figure {
                id,
                what,
                value: num(&f, "p99_ratio"),
                unit: "",
                goal: Goal::AtMost,
                target: 1.5,
                detail: format!(
                    "{:.1} vs {:.1} ms",
                    p99("quiet_beside").unwrap_or(f64::NAN),
                    p99("quiet_alone").unwrap_or(f64::NAN)
                ),
            });
        }
        let f5 = n.get("f5").cloned().unwrap_or_default();
        figures.push(Figure {
            id: "B11.5'",
            what: "quiet goodput beside a 4× capacity flood",
            value: num(&f5, "quiet_goodput_beside"),
            unit: "",
            goal: Goal::AtLeast,
            target: 0.99,
            detail: format!("alone {:.2}", num(&f5, "quiet_goodput_alone")),
        });
    }
    if let Some(m) = read(out, "memory") {
        figures.push(Figure {
            id: "B8",
            what: "scorer RSS growth per lead",
            value: num(&m, "b8_bytes_per_lead"),
            unit: " B",
            goal: Goal::AtMost,
            target: 512.0,
            detail: format!("{} leads", num(&m, "leads")),
        });
    }
    figures
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// One bar per figure; the dashed line is every target (score 1), the axis ends at 2× better.
fn svg(figures: &[Figure]) -> String {
    const LEFT: f64 = 330.0;
    const WIDTH: f64 = 300.0;
    const ROW: f64 = 30.0;
    let height = 50.0 + ROW * figures.len() as f64 + 30.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="900" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">Kelvin benchmarks: each figure against its target (dashed line; bar length = how far along, capped at 2×)</text>"#
    );
    for (i, f) in figures.iter().enumerate() {
        let y = 40.0 + ROW * i as f64;
        let bar = f.score() / 2.0 * WIDTH;
        let color = if f.met() { "#2e7d32" } else { "#e65100" };
        let _ =
            writeln!(s, r#"<text x="10" y="{:.0}">{} {}</text>"#, y + 18.0, f.id, escape(f.what));
        let _ = writeln!(
            s,
            r#"<rect x="{LEFT}" y="{:.0}" width="{bar:.1}" height="20" fill="{color}"/>"#,
            y + 4.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.0}" y="{:.0}">{:.2}{} (target {}) {}</text>"#,
            LEFT + WIDTH + 10.0,
            y + 18.0,
            f.value,
            f.unit,
            escape(&f.target_text()),
            if f.met() { "met" } else { "missed" }
        );
    }
    let bottom = 40.0 + ROW * figures.len() as f64;
    let _ = writeln!(
        s,
        r##"<line x1="{x:.0}" y1="34" x2="{x:.0}" y2="{bottom:.0}" stroke="#333" stroke-dasharray="4 3"/>"##,
        x = LEFT + WIDTH / 2.0
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.0}" y="{:.0}" text-anchor="middle">target</text>"#,
        LEFT + WIDTH / 2.0,
        bottom + 16.0
    );
    s.push_str("</svg>\n");
    s
}

/// Writes the summary of whatever reports `out` holds.
pub fn write(out: &Path) -> Result<()> {
    let figures = figures(out);
    let mut md = String::from(
        "| id | figure | value | target | met | detail |\n|---|---|---|---|---|---|\n",
    );
    for f in &figures {
        let _ = writeln!(
            md,
            "| {} | {} | {:.2}{} | {} | {} | {} |",
            f.id,
            f.what,
            f.value,
            f.unit,
            f.target_text(),
            if f.met() { "yes" } else { "no" },
            f.detail
        );
    }
    let json: Vec<Value> = figures
        .iter()
        .map(|f| {
            json!({
                "id": f.id, "figure": f.what, "value": f.value, "target": f.target_text(),
                "met": f.met(), "detail": f.detail,
            })
        })
        .collect();
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("summary.md"), &md).context("writing summary.md")?;
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(&json)?)?;
    std::fs::write(out.join("summary.svg"), svg(&figures)).context("writing summary.svg")?;
    eprintln!("{md}");
    Ok(())
}
