//! `cargo xtask packaging`, also a phase of `cargo xtask test`: the checks that keep the ways
//! Kelvin is shipped true, because no Rust test would notice them break.
//!
//! - **Docker build context**: the files `docker build` sends (the repository minus
//!   `.dockerignore`, with Docker's own matching rules) are copied to a scratch directory where
//!   `cargo metadata --locked --offline` must resolve the workspace: a member excluded by
//!   `.dockerignore` (as `benches/` once was) fails here, not in an operator's image build.
//! - **Compiler version**: the workspace's `rust-version` is not older than what any locked
//!   dependency declares, and the Dockerfile's builder image is not older than `rust-version`.
//! - **License**: the `license` the crates declare has its text at the root.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::cmd::{cargo, output};
use crate::phase;

pub fn packaging(root: &Path) -> Result<ExitCode> {
    phase("packaging", || check_packaging(root))?;
    Ok(ExitCode::SUCCESS)
}

pub fn check_packaging(root: &Path) -> Result<()> {
    let metadata = metadata(root)?;
    let declared = workspace_rust_version(&metadata)?;
    check_dependencies_rust_version(&metadata, declared)?;
    check_dockerfile_rust_version(root, declared)?;
    check_license(root, &metadata)?;
    check_docker_context(root)?;
    eprintln!(
        "xtask: packaging: rust-version {}.{} holds for every locked dependency and the \
         Dockerfile; the Docker build context resolves the workspace; LICENSE present",
        declared.0, declared.1
    );
    Ok(())
}

fn metadata(dir: &Path) -> Result<serde_json::Value> {
    let out = output(
        cargo()
            .args(["metadata", "--format-version", "1", "--locked", "--offline"])
            .current_dir(dir),
    )?;
    serde_json::from_slice(&out.stdout).context("cargo metadata printed something that is not JSON")
}

/// `major.minor[.patch]` as a comparable pair (a patch never changes what a compiler accepts
/// for our purpose, and `rust-version` is conventionally `major.minor`).
type Version = (u32, u32);

fn parse_version(text: &str) -> Result<Version> {
    let mut parts = text.trim().split('.');
    let mut next = |what: &str| -> Result<u32> {
        parts
            .next()
            .with_context(|| format!("{what} missing in version {text:?}"))?
            .parse()
            .with_context(|| format!("{what} of version {text:?} is not a number"))
    };
    Ok((next("major")?, next("minor")?))
}

fn packages(metadata: &serde_json::Value) -> impl Iterator<Item = &serde_json::Value> {
    metadata["packages"].as_array().into_iter().flatten()
}

/// The `rust-version` every workspace member declares (they inherit one value).
fn workspace_rust_version(metadata: &serde_json::Value) -> Result<Version> {
    let mut seen = BTreeMap::new();
    for p in packages(metadata).filter(|p| p["source"].is_null()) {
        let name = p["name"].as_str().unwrap_or("?");
        let Some(text) = p["rust_version"].as_str() else {
            bail!("workspace member {name} declares no rust-version (use rust-version.workspace)");
        };
        seen.insert(parse_version(text)?, name.to_owned());
    }
    match seen.len() {
        1 => Ok(*seen.keys().next().context("no workspace members")?),
        0 => bail!("cargo metadata listed no workspace members"),
        _ => bail!("workspace members declare different rust-versions: {seen:?}"),
    }
}

fn check_dependencies_rust_version(metadata: &serde_json::Value, declared: Version) -> Result<()> {
    let newer: Vec<String> = packages(metadata)
        .filter(|p| !p["source"].is_null())
        .filter_map(|p| {
            let v = parse_version(p["rust_version"].as_str()?).ok()?;
            (v > declared).then(|| {
                format!(
                    "{} {} needs {}.{}",
                    p["name"].as_str().unwrap_or("?"),
                    p["version"].as_str().unwrap_or("?"),
                    v.0,
                    v.1
                )
            })
        })
        .collect();
    if !newer.is_empty() {
        bail!(
            "Cargo.toml declares rust-version {}.{} but locked dependencies need more: {}; \
             raise [workspace.package] rust-version (and the Dockerfile's RUST_VERSION)",
            declared.0,
            declared.1,
            newer.join(", ")
        );
    }
    Ok(())
}

fn check_dockerfile_rust_version(root: &Path, declared: Version) -> Result<()> {
    let text = fs::read_to_string(root.join("Dockerfile")).context("reading Dockerfile")?;
    let arg = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("ARG RUST_VERSION="))
        .context("the Dockerfile has no `ARG RUST_VERSION=` line")?;
    let image = parse_version(arg)?;
    if image < declared {
        bail!(
            "the Dockerfile builds with Rust {arg} but Cargo.toml's rust-version is {}.{}",
            declared.0,
            declared.1
        );
    }
    Ok(())
}

fn check_license(root: &Path, metadata: &serde_json::Value) -> Result<()> {
    let licenses: Vec<&str> = packages(metadata)
        .filter(|p| p["source"].is_null())
        .filter_map(|p| p["license"].as_str())
        .collect();
    if licenses.iter().any(|l| *l != "Apache-2.0") {
        bail!("workspace members declare licenses {licenses:?}; LICENSE holds Apache-2.0 only");
    }
    let text = fs::read_to_string(root.join("LICENSE")).context("the repository has no LICENSE")?;
    if !text.contains("Apache License") || !text.contains("Version 2.0, January 2004") {
        bail!("LICENSE is not the Apache License 2.0 text the crates declare");
    }
    Ok(())
}

/// Copies the Docker build context to a scratch directory and resolves the workspace there.
fn check_docker_context(root: &Path) -> Result<()> {
    let rules = IgnoreRules::parse(
        &fs::read_to_string(root.join(".dockerignore")).context("reading .dockerignore")?,
    )?;
    let scratch = root.join("target/tmp/docker-context");
    if scratch.exists() {
        fs::remove_dir_all(&scratch).with_context(|| format!("removing {}", scratch.display()))?;
    }
    let mut copied = 0usize;
    copy_context(root, root, &scratch, &rules, &mut copied)?;
    for required in ["Cargo.toml", "Cargo.lock"] {
        if !scratch.join(required).exists() {
            bail!(".dockerignore excludes {required}, which `cargo build --locked` needs");
        }
    }
    metadata(&scratch).context(
        "the Docker build context (the repository minus .dockerignore) does not resolve the \
         workspace: a member or a file it needs is excluded",
    )?;
    fs::remove_dir_all(&scratch).ok();
    eprintln!("xtask: packaging: Docker build context: {copied} files");
    Ok(())
}

fn copy_context(
    root: &Path,
    dir: &Path,
    to: &Path,
    rules: &IgnoreRules,
    copied: &mut usize,
) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let relative = path.strip_prefix(root).context("a path outside the repository")?;
        let relative = relative.to_string_lossy().replace('\\', "/");
        let kind = entry.file_type()?;
        if kind.is_dir() {
            // An excluded directory is skipped whole unless a `!` rule could re-include
            // something below it (then the decision is per file, as Docker makes it).
            if rules.excluded(&relative) && !rules.has_exceptions() {
                continue;
            }
            copy_context(root, &path, to, rules, copied)?;
        } else if kind.is_file() && !rules.excluded(&relative) {
            let target = to.join(&relative);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::copy(&path, &target).with_context(|| format!("copying {relative}"))?;
            *copied += 1;
        }
    }
    Ok(())
}

/// `.dockerignore` with Docker's semantics (moby's patternmatcher): patterns are cleaned paths
/// relative to the context root (a leading `/` and a trailing `/` mean nothing), `*` and `?`
/// match within one path component, `**` matches any number of components, a pattern that
/// matches a directory excludes everything below it, `!` re-includes, and the last matching
/// pattern wins. Character classes are refused rather than half-supported.
struct IgnoreRules {
    rules: Vec<(bool, Vec<String>)>,
}

impl IgnoreRules {
    fn parse(text: &str) -> Result<Self> {
        let mut rules = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (include, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            if pattern.contains(['[', '\\']) {
                bail!(".dockerignore line {}: {pattern:?}: classes and escapes unsupported", n + 1);
            }
            let parts: Vec<String> = pattern
                .split('/')
                .filter(|p| !p.is_empty() && *p != ".")
                .map(str::to_owned)
                .collect();
            if !parts.is_empty() {
                rules.push((include, parts));
            }
        }
        Ok(Self { rules })
    }

    fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|(include, _)| *include)
    }

    /// Whether the context leaves out `path` (relative, `/`-separated).
    fn excluded(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        for (include, pattern) in &self.rules {
            // The path itself or any of its parent directories.
            let hit = (1..=parts.len()).any(|n| matches(pattern, &parts[..n]));
            if hit {
                excluded = !include;
            }
        }
        excluded
    }
}

fn matches(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => (0..=path.len()).any(|i| matches(rest, &path[i..])),
        Some((first, rest)) => {
            !path.is_empty() && component_matches(first, path[0]) && matches(rest, &path[1..])
        }
    }
}

/// `*` (any run of characters) and `?` (one character) within one component.
fn component_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rules(text: &str) -> IgnoreRules {
        IgnoreRules::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn docker_matching_rules() {
        let r = rules("target/\n**/target/\n*.pyc\n**/__pycache__/\nhelm/\n!helm/keep.txt\n");
        assert!(r.excluded("target"));
        assert!(r.excluded("target/debug/kelvin"));
        assert!(r.excluded("crates/cli/target/x"));
        assert!(r.excluded("a.pyc"));
        // Docker anchors patterns at the root: `*.pyc` is not `**/*.pyc`.
        assert!(!r.excluded("tests/python/a.pyc"));
        assert!(r.excluded("tests/python/__pycache__/a.cpython-311.pyc"));
        assert!(r.excluded("helm/kelvin/values.yaml"));
        assert!(!r.excluded("helm/keep.txt"));
        assert!(!r.excluded("benches/load/Cargo.toml"));
        assert!(!r.excluded("crates/target-like/src/lib.rs"));
        assert!(r.excluded("x/y/target"));
    }

    #[test]
    fn excluding_a_member_is_found() {
        // What the check guards against: the context without a workspace member.
        let r = rules("benches/\n");
        assert!(r.excluded("benches/load/Cargo.toml"));
    }

    #[test]
    fn versions_compare_by_major_and_minor() {
        assert!(parse_version("1.94.0").unwrap() > parse_version("1.85").unwrap());
        assert_eq!(parse_version("1.95").unwrap(), parse_version("1.95.1").unwrap());
        assert!(parse_version("x").is_err());
    }
}
