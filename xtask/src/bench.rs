//! `cargo xtask bench [engine] [--smoke]`: benchmarks, not tests; nothing here runs in
//! `cargo xtask test`.
//!
//! The engine bench lives in `benches/engine-peers`, a workspace of its own so that its heavy
//! peer engines (GoRules zen-engine, the `cel` crate) are never compiled by ordinary builds or
//! CI. It checks that every implementation gives the same scores, measures them in one run, and
//! writes `target/bench/engine.json` and `target/bench/engine.md`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::cmd::{cargo, run};
use crate::phase;

/// Every bench, in the order `cargo xtask bench` runs them.
const BENCHES: &[&str] = &["engine"];

pub fn bench(root: &Path, args: &[&str]) -> Result<ExitCode> {
    let smoke = args.contains(&"--smoke");
    let names: Vec<&str> = args.iter().copied().filter(|a| *a != "--smoke").collect();
    if let Some(unknown) = names.iter().find(|n| !BENCHES.contains(n)) {
        bail!("unknown bench `{unknown}` (benches: {})", BENCHES.join(", "));
    }
    // No name: every bench.
    let selected = |bench: &str| names.is_empty() || names.contains(&bench);
    let out = root.join("target").join("bench");
    if selected("engine") {
        phase("engine bench", || engine(root, &out, smoke))?;
    }
    eprintln!("xtask: reports in {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// Builds (release) and runs the engine bench crate; it prints its table and writes the reports.
fn engine(root: &Path, out: &Path, smoke: bool) -> Result<()> {
    let manifest = root.join("benches").join("engine-peers").join("Cargo.toml");
    let mut cmd = cargo();
    cmd.arg("run").arg("--release").arg("--manifest-path").arg(&manifest);
    // Its own target dir under the root's `target/`, unless one is set: a build of the main
    // workspace then never waits for the bench's build lock, nor the other way round.
    if std::env::var_os("CARGO_TARGET_DIR").is_none() {
        cmd.arg("--target-dir").arg(root.join("target").join("engine-peers"));
    }
    cmd.arg("--").arg("--out").arg(out);
    if smoke {
        cmd.arg("--smoke");
    }
    run(cmd.current_dir(root)).context("the engine bench failed")
}
