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
use crate::servers::Services;
use crate::tools::{Apt, ensure_server_tools};

/// Every bench, in the order `cargo xtask bench` runs them.
const BENCHES: &[&str] = &["engine", "ingest"];

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
    if selected("ingest") {
        phase("ingest bench", || ingest(root, &out, smoke))?;
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

/// `kelvin-bench ingest --smoke` with the debug binaries `cargo xtask test` built, against its
/// PostgreSQL (a database of its own) and Redis.
pub fn ingest_smoke(root: &Path, services: &Services) -> Result<()> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin_dir = target.join("debug");
    let url = services.create_database("bench_smoke")?;
    let out = target.join("bench").join("smoke");
    run(std::process::Command::new(bin_dir.join("kelvin-bench"))
        .arg("ingest")
        .arg("--database-url")
        .arg(url)
        .arg("--redis-url")
        .arg(services.redis_url())
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--out")
        .arg(out)
        .arg("--smoke")
        .env("RUST_LOG", "warn")
        .current_dir(root))
    .context("kelvin-bench ingest --smoke failed")
}

/// Builds the services and `kelvin-bench` in release, starts PostgreSQL (fsync on) and Redis,
/// and runs `kelvin-bench ingest` (COPY baseline, B2, B3, scoring throughput, B4).
fn ingest(root: &Path, out: &Path, smoke: bool) -> Result<()> {
    let mut apt = Apt::new()?;
    let tools = ensure_server_tools(&mut apt)?;
    run(cargo()
        .args([
            "build",
            "--release",
            "-p",
            "kelvin-bench",
            "-p",
            "kelvin-ingest",
            "-p",
            "kelvin-scoring",
        ])
        .current_dir(root))
    .context("the release build failed")?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin_dir = target.join("release");
    let services = Services::start_with(&tools, true)?;
    let mut cmd = std::process::Command::new(bin_dir.join("kelvin-bench"));
    cmd.arg("ingest")
        .arg("--database-url")
        .arg(services.database_url())
        .arg("--redis-url")
        .arg(services.redis_url())
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--out")
        .arg(out);
    if smoke {
        cmd.arg("--smoke");
    }
    let result = run(cmd.current_dir(root)).context("the ingest bench failed");
    if result.is_err() {
        services.print_log_tails(40);
    }
    result
}
