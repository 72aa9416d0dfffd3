//! `cargo xtask tidy`, also a phase of `cargo xtask test`: the house rules a compiler does not
//! check, so that a newcomer's map stays true.
//!
//! - Every Rust source file opens with a `//!` doc comment saying what it is for.
//! - No source file outside tests and migrations is over [`MAX_LINES`] lines: a file that big
//!   holds more than one concern, and the next change will not find its place in it.
//! - Every path `ARCHITECTURE.md` names in backticks exists: a path with a `/` relative to the
//!   repository root or to the section's own directory (the first path in its heading), a bare
//!   file name (`watch.rs`) somewhere below that directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::phase;

/// Longest source file, tests and migrations aside.
const MAX_LINES: usize = 600;

/// Directories whose Rust files are ours (not `target/`, not generated code).
const SOURCE_ROOTS: &[&str] = &["crates", "services", "tests", "xtask", "benches"];

pub fn tidy(root: &Path) -> Result<ExitCode> {
    phase("tidy", || check_tidy(root))?;
    Ok(ExitCode::SUCCESS)
}

pub fn check_tidy(root: &Path) -> Result<()> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for dir in SOURCE_ROOTS {
        rust_files(&root.join(dir), &mut files)?;
    }
    files.sort();
    for file in &files {
        let text =
            fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let relative = file.strip_prefix(root).unwrap_or(file);
        if !text.trim_start().starts_with("//!") {
            problems.push(format!(
                "{}: no `//!` doc comment saying what it is for",
                relative.display()
            ));
        }
        let lines = text.lines().count();
        if lines > MAX_LINES && !is_test_or_migration(relative) {
            problems.push(format!(
                "{}: {lines} lines, over {MAX_LINES}: split it by concern",
                relative.display()
            ));
        }
    }
    let architecture =
        fs::read_to_string(root.join("ARCHITECTURE.md")).context("reading ARCHITECTURE.md")?;
    problems.extend(missing_paths(root, &architecture));
    if !problems.is_empty() {
        bail!("{} problem(s):\n  {}", problems.len(), problems.join("\n  "));
    }
    eprintln!(
        "xtask: tidy: {} Rust files documented and under {MAX_LINES} lines (tests and migrations \
         aside); every path in ARCHITECTURE.md exists",
        files.len()
    );
    Ok(())
}

/// Integration tests, the tests crate and migrations may be long: they are lists, not logic.
fn is_test_or_migration(relative: &Path) -> bool {
    relative.starts_with("tests")
        || relative
            .components()
            .any(|c| matches!(c.as_os_str().to_str(), Some("tests" | "migration")))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else { return Ok(()) };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        if entry.file_type()?.is_dir() {
            if name != "target"
                && name != "node_modules"
                && !name.to_string_lossy().starts_with('.')
            {
                rust_files(&path, out)?;
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The backticked paths of `text` that do not exist, as messages.
fn missing_paths(root: &Path, text: &str) -> Vec<String> {
    let mut section: Option<PathBuf> = None;
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let spans = backticked(line);
        if line.starts_with('#') {
            // A heading: its first path, if any, is the directory bare names resolve in.
            section = spans
                .iter()
                .find(|s| looks_like_path(s))
                .map(|s| root.join(s.trim_end_matches('/')))
                .filter(|p| p.is_dir());
        }
        for span in spans.iter().filter(|s| looks_like_path(s)) {
            let path = span.split(':').next().unwrap_or(span).trim_end_matches('/');
            let found = root.join(path).exists()
                || section.as_ref().is_some_and(|d| d.join(path).exists())
                || (!path.contains('/') && find_below(section.as_deref().unwrap_or(root), path));
            if !found {
                problems.push(format!("ARCHITECTURE.md line {}: `{span}` does not exist", n + 1));
            }
        }
    }
    problems
}

fn backticked(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// A span that names a file or directory of ours: no spaces or wildcards, not a URL, and either
/// with a `/` or a source-like extension.
fn looks_like_path(span: &str) -> bool {
    const EXTENSIONS: &[&str] = &[".rs", ".md", ".toml", ".yaml", ".proto", ".py", ".json"];
    !span.is_empty()
        && !span.contains([' ', '*', '<', '>', '{', '$', '='])
        && !span.starts_with(['/', '.', '-'])
        && !span.contains("://")
        && (span.contains('/') || EXTENSIONS.iter().any(|e| span.ends_with(e)))
}

fn find_below(dir: &Path, name: &str) -> bool {
    let Ok(entries) = fs::read_dir(dir) else { return false };
    entries.flatten().any(|entry| {
        let path = entry.path();
        entry.file_name() == name
            || (path.is_dir() && entry.file_name() != "target" && find_below(&path, name))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_from_the_root_or_the_section() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let text = "### `xtask/`\n\nSee `src/tidy.rs`, `tidy.rs` and `xtask/Cargo.toml`.\n\
                    `cargo xtask test` and `a b` are not paths.\n";
        assert!(missing_paths(root, text).is_empty(), "{:?}", missing_paths(root, text));
        let missing = missing_paths(root, "### `xtask/`\n`gone.rs` and `crates/nowhere/`\n");
        assert_eq!(missing.len(), 2, "{missing:?}");
    }
}
