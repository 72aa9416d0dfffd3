//! `kelvin-bench`: load benchmarks of the real service processes on PostgreSQL + Redis, each
//! figure beside a baseline measured in the same run (run by `cargo xtask bench`).
//!
//! - `ingest`: B1 (GetScore on a warm cache), B2 (batch ingest), B3 (streaming ingest), B4
//!   (acknowledgement to score readable), with COPY, commit and empty-service baselines.
//! - `rescore`: B6, rescoring after a publish against reading the same events from PostgreSQL.
//! - `tenants`: B7, a quiet tenant's latency beside a noisy neighbour against alone.
//! - `memory`: B8, the scoring process's memory per lead scored.
//! - `neighbours`: B11, issue 14's noisy-neighbour findings, quiet tenant alone and beside the
//!   noisy one, on any build of the service binaries (before and after a fix).
//! - `echo PORT`: B1's baseline server.

#![allow(clippy::disallowed_methods)] // a client of the server: it reads the user's clock (clippy.toml)

mod common;
mod ingest;
mod memory;
mod neighbours;
mod rescore;
mod tenants;

use anyhow::{Context, Result, bail};

#[tokio::main]
async fn main() -> Result<()> {
    let mut argv = std::env::args().skip(1);
    let command = argv.next().unwrap_or_default();
    if command == "echo" {
        return common::echo(&argv.next().context("kelvin-bench echo PORT")?).await;
    }
    let args = common::parse_args(argv)?;
    match command.as_str() {
        "ingest" => ingest::run(&args).await,
        "rescore" => rescore::run(&args).await,
        "tenants" => tenants::run(&args).await,
        "memory" => memory::run(&args).await,
        "neighbours" => neighbours::run(&args).await,
        _ => bail!("{}", common::USAGE),
    }
}
