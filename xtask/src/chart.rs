//! `cargo xtask chart`: the Helm chart's checks, also a phase of `cargo xtask test`.
//!
//! `tests/helm/check_chart.py` does the work in the xtask venv (helm-python-sdk bundles the Helm
//! library, kubernetes-validate the Kubernetes schemas), so neither a helm binary nor a cluster
//! nor the network is needed: it lints `helm/kelvin`, renders every `ci/*-values.yaml`,
//! validates what it renders against the Kubernetes 1.31 schemas and checks our own rules.

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};

use crate::cmd::run;
use crate::phase;
use crate::tools::ensure_venv;

pub fn chart(root: &Path) -> Result<ExitCode> {
    let venv = phase("install", || ensure_venv(root))?;
    phase("chart", || check_chart(root, &venv))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the chart checks with the venv's python; they print one line per values file.
pub fn check_chart(root: &Path, venv: &Path) -> Result<()> {
    run(Command::new(venv.join("bin/python"))
        .arg(root.join("tests/helm/check_chart.py"))
        .current_dir(root))
    .context("the Helm chart helm/kelvin failed its checks")
}
