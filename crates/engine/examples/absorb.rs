//! Rough timing of `LeadState::absorb` and scoring on the B2B sample model:
//! `cargo run --release -p kelvin-engine --example absorb`.

use std::hint::black_box;
use std::time::Instant;

use kelvin_engine::{Event, HOUR_MS, Lead, LeadState, ModelSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/models/b2b-saas.yaml");
    let model = ModelSpec::from_yaml(&std::fs::read_to_string(path)?)?
        .compile()
        .map_err(|e| format!("{e:?}"))?;
    let kinds = ["page_view", "email_open", "email_click", "form_submit", "social_comment"];
    let urls = ["/pricing", "/case-studies/x", "/blog/y", "/"];
    let events: Vec<Event> = (0..10_000i64)
        .map(|i| {
            Event::new(format!("e{i}"), kinds[(i % 5) as usize], 490_000 * HOUR_MS + i * 97_000)
                .with("url", urls[(i % 4) as usize])
                .with("sentiment", "negative")
        })
        .collect();
    let rounds = 20;
    let start = Instant::now();
    let mut state = LeadState::new();
    for _ in 0..rounds {
        state = LeadState::new();
        for e in &events {
            state.absorb(&model, black_box(e));
        }
    }
    let per_event = start.elapsed() / (rounds * events.len() as u32);
    // Typical leads: a fresh state every 20 events.
    let start = Instant::now();
    let mut small = 0usize;
    for _ in 0..rounds {
        for chunk in events.chunks(20) {
            let mut s = LeadState::new();
            for e in chunk {
                s.absorb(&model, black_box(e));
            }
            small = small.max(std::mem::size_of::<LeadState>() + s.heap_bytes());
        }
    }
    let per_event_small = start.elapsed() / (rounds * events.len() as u32);
    println!(
        "absorb into 20-event states: {per_event_small:?} per event; largest state {small} bytes"
    );
    let lead = Lead::from_pairs([("country", "FR"), ("job_title", "CEO")]);
    let start = Instant::now();
    let score = state.score(&model, &lead, None, 500_000 * HOUR_MS);
    let score_time = start.elapsed();
    println!(
        "absorb: {per_event:?} per event; state: {} entries, {} bytes; score: {score_time:?}, total {}",
        state.len(),
        std::mem::size_of::<LeadState>() + state.heap_bytes(),
        score.total
    );
    Ok(())
}
