//! Running child processes with errors that say which command failed and how.
//!
//! Every child gets a null stdin: CI has none, and `cargo xtask services` reads its own stdin to
//! know when to stop, so no child may consume it.

use std::fmt::Write as _;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};

/// `program arg arg ...` for messages (no shell quoting: it is for people, not for a shell).
pub fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let _ = write!(text, " {}", arg.to_string_lossy());
    }
    text
}

/// Runs `cmd` with inherited stdout/stderr and fails unless it exits with status 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let what = describe(cmd);
    let status =
        cmd.stdin(Stdio::null()).status().with_context(|| format!("could not start `{what}`"))?;
    if !status.success() {
        bail!("`{what}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` with captured output; on failure the error carries what it printed.
pub fn output(cmd: &mut Command) -> Result<Output> {
    let what = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("could not start `{what}`"))?;
    if !out.status.success() {
        bail!(
            "`{what}` failed ({})\n--- stdout ---\n{}--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
    }
    Ok(out)
}

/// Captured stdout of a successful `cmd`, trimmed.
pub fn stdout_of(cmd: &mut Command) -> Result<String> {
    let out = output(cmd)?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The cargo that ran us (`cargo xtask` sets `CARGO`), so nested builds use the same toolchain.
/// The variables `cargo run` set for xtask itself are removed: build scripts that watch them
/// would otherwise rebuild half the dependency graph, and again at the next plain `cargo test`.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || matches!(key, "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE")
        {
            cmd.env_remove(key);
        }
    }
    cmd
}
