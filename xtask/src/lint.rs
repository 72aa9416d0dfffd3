//! `cargo xtask lint`: the contract's buf lint, rustfmt and clippy, all run even if one fails
//! so that one go shows every problem.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cmd::{cargo, run};
use crate::phase;
use crate::tools::{buf_lint, ensure_buf};

pub fn lint(root: &Path) -> Result<ExitCode> {
    let buf = phase("install", || ensure_buf(root))?;
    let results = [
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
