//! `cargo xtask bench [engine|ingest|rescore|tenants|memory|neighbours]... [--smoke]`: benchmarks, not
//! tests. `cargo xtask test` runs only the load benches' smoke mode ([`load_smoke`]).
//!
//! The load benches (`kelvin-bench`, `benches/load`) run the release service binaries against
//! PostgreSQL with fsync on and Redis, started once, each bench on a database of its own.
//! Every run ends with `target/bench/summary.{md,json,svg}`.
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
const BENCHES: &[&str] = &["engine", "ingest", "rescore", "tenants", "memory", "neighbours"];

/// The benches `kelvin-bench` runs against the service processes (each on a fresh database).
const LOAD_BENCHES: &[&str] = &["ingest", "rescore", "tenants", "memory", "neighbours"];

pub fn bench(root: &Path, args: &[&str]) -> Result<ExitCode> {
    let started = std::time::Instant::now();
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
    let load: Vec<&str> = LOAD_BENCHES.iter().copied().filter(|b| selected(b)).collect();
    if !load.is_empty() {
        load_benches(root, &out, &load, smoke)?;
    }
    phase("bench report", || crate::bench_report::write(&out))?;
    eprintln!(
        "xtask: reports in {} ({:.1} min in all)",
        out.display(),
        started.elapsed().as_secs_f64() / 60.0
    );
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

/// Every load bench in smoke mode with the debug binaries `cargo xtask test` built, against its
/// PostgreSQL (a database per bench) and Redis.
pub fn load_smoke(root: &Path, services: &Services) -> Result<()> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let out = target.join("bench").join("smoke");
    for bench in LOAD_BENCHES {
        run_load(root, &target.join("debug"), services, bench, &out, true)?;
    }
    crate::bench_report::write(&out)
}

/// `kelvin-bench BENCH` on a fresh database `bench_BENCH`.
fn run_load(
    root: &Path,
    bin_dir: &Path,
    services: &Services,
    bench: &str,
    out: &Path,
    smoke: bool,
) -> Result<()> {
    let url = services.create_database(&format!("bench_{bench}"))?;
    let mut cmd = std::process::Command::new(bin_dir.join("kelvin-bench"));
    cmd.arg(bench)
        .arg("--database-url")
        .arg(url)
        .arg("--redis-url")
        .arg(services.redis_url())
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--out")
        .arg(out)
        .env("RUST_LOG", "warn")
        .current_dir(root);
    if smoke {
        cmd.arg("--smoke");
    }
    run(&mut cmd).with_context(|| format!("kelvin-bench {bench} failed"))
}

/// Builds the services and `kelvin-bench` in release, starts PostgreSQL (fsync on) and Redis
/// once, and runs each selected load bench on a database of its own. `kelvin-bench` takes the
/// service binaries from `KELVIN_BENCH_BIN_DIR` when set (`neighbours` runs on any build).
fn load_benches(root: &Path, out: &Path, benches: &[&str], smoke: bool) -> Result<()> {
    let mut apt = Apt::new()?;
    let tools = ensure_server_tools(&mut apt)?;
    phase("release build", || {
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
                "-p",
                "kelvin-rules",
                "-p",
                "kelvin",
            ])
            .current_dir(root))
        .context("the release build failed")
    })?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin_dir = target.join("release");
    let services = Services::start_with(&tools, true)?;
    for bench in benches {
        let result = phase(&format!("{bench} bench"), || {
            run_load(root, &bin_dir, &services, bench, out, smoke)
        });
        if result.is_err() {
            services.print_log_tails(40);
            return result;
        }
    }
    Ok(())
}
