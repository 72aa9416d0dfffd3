//! Scoring-engine benchmark: Kelvin vs GoRules zen-engine vs the `cel` crate vs hand-written
//! Rust, on the same 12-rule model and the same lead with 50 events (see README.md).
//!
//! `cargo run --release -- [--smoke] [--out DIR]`; `cargo xtask bench engine` runs it.

mod model;
mod peers;

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kelvin_engine::{CompiledModel, Event, Lead, LeadState};
use serde_json::json;

use model::{AS_OF, Outcome};
use peers::{Cel, Zen};

/// How long and how often to measure.
struct Plan {
    smoke: bool,
    /// Target duration of one round of one implementation.
    round: Duration,
    rounds: usize,
    warm_up: Duration,
    /// Leads of the equivalence check.
    check_leads: u64,
}

const FULL: Plan = Plan {
    smoke: false,
    round: Duration::from_millis(100),
    rounds: 21,
    warm_up: Duration::from_millis(300),
    check_leads: 500,
};
const SMOKE: Plan = Plan {
    smoke: true,
    round: Duration::from_millis(2),
    rounds: 3,
    warm_up: Duration::ZERO,
    check_leads: 20,
};

/// One timed workload: `run` does `units` units of work (evaluations or events) per call.
struct Bench<'a> {
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    units: u64,
    run: Box<dyn FnMut() + 'a>,
    iters: u64,
    samples: Vec<f64>,
}

/// Median, min and max nanoseconds per unit.
#[derive(Clone, Copy)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

impl Bench<'_> {
    fn stats(&self) -> Stats {
        let mut s = self.samples.clone();
        s.sort_by(f64::total_cmp);
        Stats { median: s[s.len() / 2], min: s[0], max: s[s.len() - 1] }
    }

    fn round(&mut self) -> Duration {
        let start = Instant::now();
        for _ in 0..self.iters {
            (self.run)();
        }
        start.elapsed()
    }

    /// Picks the iteration count so that a round takes about `plan.round`, then warms up.
    fn calibrate(&mut self, plan: &Plan) {
        self.iters = 1;
        loop {
            let took = self.round();
            if took >= plan.round / 8 || self.iters >= 1 << 40 {
                let per = took.as_secs_f64() / self.iters as f64;
                self.iters = ((plan.round.as_secs_f64() / per.max(1e-12)) as u64).max(1);
                break;
            }
            self.iters *= 2;
        }
        let start = Instant::now();
        while start.elapsed() < plan.warm_up {
            self.round();
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("engine bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args() -> Result<(&'static Plan, PathBuf), String> {
    let mut plan = &FULL;
    let mut out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => plan = &SMOKE,
            "--out" => out = args.next().ok_or("--out needs a directory")?.into(),
            other => {
                return Err(format!("unknown argument `{other}` (expected --smoke, --out DIR)"));
            }
        }
    }
    Ok((plan, out))
}

fn kelvin_outcome(s: &kelvin_engine::Score) -> Outcome {
    Outcome { fit: s.fit.0, engagement: s.engagement.0, total: s.total.0, band: s.band.clone() }
}

/// Every implementation on one lead; an error names the first disagreement.
fn check_one(
    model: &CompiledModel,
    zen: &Zen,
    cel: &Cel,
    lead: &Lead,
    events: &[Event],
) -> Result<Outcome, String> {
    let kelvin = kelvin_outcome(&model.score(lead, None, events, AS_OF));
    let state = LeadState::from_events(model, events);
    let json = model::to_json(lead, events);
    let results = [
        ("kelvin incremental", kelvin_outcome(&state.score(model, lead, None, AS_OF))),
        ("hand-written", peers::hand_written(lead, events, AS_OF)),
        ("zen-engine", Zen::outcome(&zen.eval(&Zen::input(&json))?)?),
        ("cel", Cel::outcome(&cel.eval(&Cel::input(&json)?)?)?),
    ];
    for (name, got) in results {
        if got != kelvin {
            return Err(format!(
                "{name} disagrees with Kelvin:\n  kelvin: {kelvin:?}\n  {name}: {got:?}\n  input: {json}"
            ));
        }
    }
    Ok(kelvin)
}

fn run() -> Result<(), String> {
    let (plan, out_dir) = parse_args()?;
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let model = CompiledModel::from_yaml(model::KELVIN_MODEL).map_err(|e| format!("model: {e}"))?;
    let zen = Zen::new()?;
    let cel = Cel::new()?;
    // For information only: the full sample model (decay, window, exclusions; Kelvin only).
    let b2b = CompiledModel::from_yaml(include_str!("../../../examples/models/b2b-saas.yaml"))
        .map_err(|e| format!("examples/models/b2b-saas.yaml: {e}"))?;

    // 1. Same scores everywhere, before any timing.
    let inputs = model::check_inputs(plan.check_leads);
    let mut bands = std::collections::BTreeMap::<String, u32>::new();
    let mut clamped = 0;
    for (lead, events) in &inputs {
        let o = check_one(&model, &zen, &cel, lead, events)?;
        *bands.entry(o.band.clone()).or_default() += 1;
        clamped += u32::from(o.total != o.fit + o.engagement);
    }
    let (lead, events) = model::bench_input();
    let expected = check_one(&model, &zen, &cel, &lead, &events)?;
    println!(
        "equivalence: {} random leads (0-80 events, some after as_of; bands {bands:?}, {clamped} \
         with a bounded total) + the bench lead: all 5 implementations agree",
        inputs.len()
    );
    println!(
        "bench lead: {} events, fit {} + engagement {} -> total {} ({})",
        events.len(),
        expected.fit as f64 / 1000.0,
        expected.engagement as f64 / 1000.0,
        expected.total as f64 / 1000.0,
        expected.band
    );

    // 2. State size.
    let mut state = LeadState::from_events(&model, &events);
    let state_absorbed = std::mem::size_of::<LeadState>() + state.heap_bytes();
    let entries = state.len();
    state.shrink_to_fit();
    let state_shrunk = std::mem::size_of::<LeadState>() + state.heap_bytes();

    // 3. Timing: rounds of every workload interleaved, median per unit.
    let json = model::to_json(&lead, &events);
    let zen_input = Zen::input(&json);
    let cel_input = Cel::input(&json)?;
    let n = events.len() as u64;
    let mut benches = vec![
        Bench {
            key: "kelvin_full",
            label: "Kelvin CompiledModel::score (full)",
            unit: "eval",
            units: 1,
            run: Box::new(|| {
                black_box(model.score(black_box(&lead), None, black_box(&events), AS_OF));
            }),
            iters: 0,
            samples: Vec::new(),
        },
        Bench {
            key: "kelvin_absorb",
            label: "Kelvin LeadState::absorb (50 events into a new state)",
            unit: "event",
            units: n,
            run: Box::new(|| {
                let mut s = LeadState::new();
                for e in black_box(&events) {
                    s.absorb(&model, e);
                }
                black_box(s);
            }),
            iters: 0,
            samples: Vec::new(),
        },
        Bench {
            key: "kelvin_state_score",
            label: "Kelvin LeadState::score (from state)",
            unit: "eval",
            units: 1,
            run: Box::new(|| {
                black_box(black_box(&state).score(&model, black_box(&lead), None, AS_OF));
            }),
            iters: 0,
            samples: Vec::new(),
        },
        Bench {
            key: "kelvin_b2b_full",
            label: "(info) Kelvin score, full b2b-saas.yaml (23 rules, half-life, window; not comparable)",
            unit: "eval",
            units: 1,
            run: Box::new(|| {
                black_box(b2b.score(black_box(&lead), None, black_box(&events), AS_OF));
            }),
            iters: 0,
            samples: Vec::new(),
        },
        Bench {
            key: "zen",
            label: "zen-engine Decision::evaluate (compiled)",
            unit: "eval",
            units: 1,
            run: Box::new(|| {
                black_box(zen.eval(black_box(&zen_input)).ok());
            }),
            iters: 0,
            samples: Vec::new(),
        },
        Bench {
            key: "cel",
            label: "cel Program::execute (compiled)",
            unit: "eval",
            units: 1,
            run: Box::new(|| {
                black_box(cel.eval(black_box(&cel_input)).ok());
            }),
            iters: 0,
            samples: Vec::new(),
        },
        Bench {
            key: "hand",
            label: "hand-written Rust",
            unit: "eval",
            units: 1,
            run: Box::new(|| {
                black_box(peers::hand_written(black_box(&lead), black_box(&events), AS_OF));
            }),
            iters: 0,
            samples: Vec::new(),
        },
    ];
    let started = Instant::now();
    for b in &mut benches {
        b.calibrate(plan);
    }
    for _ in 0..plan.rounds {
        for b in &mut benches {
            let took = b.round();
            b.samples.push(took.as_nanos() as f64 / (b.iters * b.units) as f64);
        }
    }
    let measured_in = started.elapsed();
    // zen takes its input by value (a shallow `Variable` clone per call): make sure the timed
    // calls neither changed it nor drifted from the checked outcome.
    if zen_input.to_value() != json || Zen::outcome(&zen.eval(&zen_input)?)? != expected {
        return Err("zen-engine: the shared input changed during the timed calls".into());
    }
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let stat = |key: &str| benches.iter().find(|b| b.key == key).map(|b| b.stats());
    let get = |key: &str| stat(key).ok_or_else(|| format!("no bench {key}"));
    let (kelvin, absorb, zen_s, cel_s, hand) =
        (get("kelvin_full")?, get("kelvin_absorb")?, get("zen")?, get("cel")?, get("hand")?);

    // 4. Report.
    let per_s = |ns: f64| 1e9 / ns;
    let ratios = json!({
        "kelvin_vs_zen": { "value": zen_s.median / kelvin.median, "target": ">= 20",
            "met": zen_s.median / kelvin.median >= 20.0,
            "meaning": "Kelvin full evaluations/s divided by compiled zen-engine evaluations/s" },
        "kelvin_vs_cel": { "value": cel_s.median / kelvin.median, "target": null, "met": null,
            "meaning": "Kelvin full evaluations/s divided by compiled CEL evaluations/s" },
        "hand_vs_kelvin": { "value": kelvin.median / hand.median, "target": "<= 20",
            "met": kelvin.median / hand.median <= 20.0,
            "meaning": "hand-written Rust evaluations/s divided by Kelvin full evaluations/s" },
        "incremental_ns_per_event": { "value": absorb.median, "target": "< 1000",
            "met": absorb.median < 1000.0,
            "meaning": "LeadState::absorb, median ns per event (50 events into a new state)" },
        "state_bytes": { "value": state_absorbed, "target": "< 256", "met": state_absorbed < 256,
            "meaning": "size_of::<LeadState>() + heap_bytes() after absorbing the 50 events",
            "after_shrink_to_fit": state_shrunk, "entries": entries },
    });
    let machine = machine();
    let date = utc_now();
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| implementation | evaluations/s | ns/unit (median) | min..max ns | vs Kelvin full |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|---:|");
    for b in &benches {
        let s = b.stats();
        let (rate, vs) = if b.unit == "eval" {
            (format!("{:.0}", per_s(s.median)), format!("{:.2}x", kelvin.median / s.median))
        } else {
            (format!("{:.0} events/s", per_s(s.median)), "-".to_owned())
        };
        let _ = writeln!(
            table,
            "| {} | {rate} | {:.0} ns/{} | {:.0}..{:.0} | {vs} |",
            b.label, s.median, b.unit, s.min, s.max
        );
    }
    let mut targets = String::new();
    let _ = writeln!(targets, "| target | measured | goal | met |");
    let _ = writeln!(targets, "|---|---:|---:|---|");
    let yes = |b: bool| if b { "yes" } else { "NO" };
    let rz = zen_s.median / kelvin.median;
    let rh = kelvin.median / hand.median;
    let _ = writeln!(
        targets,
        "| Kelvin / zen-engine (evals/s) | {rz:.1}x ({:.0} vs {:.0} evals/s) | >= 20x | {} |",
        per_s(kelvin.median),
        per_s(zen_s.median),
        yes(rz >= 20.0)
    );
    let _ = writeln!(
        targets,
        "| hand-written / Kelvin (evals/s) | {rh:.1}x ({:.0} vs {:.0} evals/s) | <= 20x | {} |",
        per_s(hand.median),
        per_s(kelvin.median),
        yes(rh <= 20.0)
    );
    let _ = writeln!(
        targets,
        "| incremental update | {:.0} ns/event | < 1000 ns | {} |",
        absorb.median,
        yes(absorb.median < 1000.0)
    );
    let _ = writeln!(
        targets,
        "| per-lead state | {state_absorbed} B ({entries} entries; {state_shrunk} B after shrink_to_fit) | < 256 B | {} |",
        yes(state_absorbed < 256)
    );
    let _ = writeln!(
        targets,
        "| (info) Kelvin / CEL (evals/s) | {:.1}x ({:.0} vs {:.0} evals/s) | - | - |",
        cel_s.median / kelvin.median,
        per_s(kelvin.median),
        per_s(cel_s.median)
    );
    let mode = if plan.smoke {
        " — SMOKE RUN (tiny iteration counts, figures not meaningful)"
    } else {
        ""
    };
    let header = format!(
        "# Scoring-engine benchmark{mode}\n\n{date} — {} × {} — load average {} before, {} after — \
         {} rounds of ~{} ms per implementation, interleaved, median — measured in {:.1} s\n",
        machine["nproc"],
        machine["cpu"].as_str().unwrap_or("?"),
        load_before.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        load_after.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        plan.rounds,
        plan.round.as_millis(),
        measured_in.as_secs_f64(),
    );
    let model_line = format!(
        "Model: 12 rules (5 fit, 7 engagement, 5 capped), sum bounded 0..100, 3 bands, no decay. \
         Lead: 50 events in 10 visits over 60 days; total {} ({}). Equivalence checked on {} \
         more leads first.\n",
        expected.total as f64 / 1000.0,
        expected.band,
        inputs.len()
    );
    println!("\n{header}\n{model_line}\n{table}\n{targets}");

    let report = json!({
        "date": date,
        "smoke": plan.smoke,
        "machine": machine,
        "load_average": { "before": load_before.trim(), "after": load_after.trim() },
        "method": { "rounds": plan.rounds, "round_ms": plan.round.as_millis() as u64,
            "warm_up_ms": plan.warm_up.as_millis() as u64, "statistic": "median ns per unit over rounds",
            "interleaved": true },
        "model": { "rules": 12, "fit": 5, "engagement": 7, "capped": 5, "decay": "none",
            "combination": "sum, total bounded 0..100", "bands": ["hot", "warm", "cold"] },
        "lead": { "events": events.len(), "expected": { "fit": expected.fit, "engagement": expected.engagement,
            "total": expected.total, "band": expected.band } },
        "equivalence_checked_leads": inputs.len() + 1,
        "results": benches.iter().map(|b| {
            let s = b.stats();
            (b.key.to_owned(), json!({ "label": b.label, "unit": b.unit, "ns_per_unit": s.median,
                "ns_min": s.min, "ns_max": s.max, "per_second": per_s(s.median), "iters_per_round": b.iters }))
        }).collect::<serde_json::Map<_, _>>(),
        "ratios": ratios,
    });
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let json_path = out_dir.join("engine.json");
    let md_path = out_dir.join("engine.md");
    let pretty = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&json_path, pretty + "\n")
        .map_err(|e| format!("{}: {e}", json_path.display()))?;
    let md = format!(
        "{header}\n{model_line}\n## Throughput\n\n{table}\n## Targets\n\n{targets}\n\
         See benches/engine-peers/README.md for what is measured and what differs between engines.\n"
    );
    std::fs::write(&md_path, md).map_err(|e| format!("{}: {e}", md_path.display()))?;
    println!("wrote {} and {}", json_path.display(), md_path.display());
    Ok(())
}

fn machine() -> serde_json::Value {
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    json!({ "nproc": nproc, "cpu": cpu, "os": std::env::consts::OS, "arch": std::env::consts::ARCH })
}

/// `YYYY-MM-DDTHH:MM:SSZ` from the system clock (days-to-civil, no date crate).
fn utc_now() -> String {
    let secs =
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}
