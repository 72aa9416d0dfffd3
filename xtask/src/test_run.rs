//! `cargo xtask test`: the one command that runs every test the way CI does.
//!
//! The workspace's tests run twice, once per storage backend (SQLite, then PostgreSQL), against
//! servers started here, so a developer needs nothing but this command. Both passes always run;
//! the closing summary counts the libtest result lines of both, and the very last line is
//! `total: N passed, M failed` for whoever reads the log's end.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::chart::check_chart;
use crate::cmd::{cargo, describe, run};
use crate::lint::cargo_deny;
use crate::packaging::check_packaging;
use crate::phase;
use crate::servers::Services;
use crate::tidy::check_tidy;
use crate::tools::{Apt, buf_lint, ensure_buf, ensure_server_tools, ensure_venv};

/// Threads per test binary when `KELVIN_TEST_THREADS` is not set.
const DEFAULT_THREADS: u32 = 4;

pub fn test(root: &Path) -> Result<ExitCode> {
    let threads = test_threads()?;
    let (tools, venv, buf) = phase("install", || {
        let mut apt = Apt::new()?;
        let tools = ensure_server_tools(&mut apt)?;
        let venv = ensure_venv(root)?;
        let buf = ensure_buf(root)?;
        Ok((tools, venv, buf))
    })?;
    phase("buf lint", || buf_lint(root, &buf))?;
    phase("chart", || check_chart(root, &venv))?;
    phase("packaging", || check_packaging(root))?;
    phase("tidy", || check_tidy(root))?;
    phase("cargo deny", || cargo_deny(root, &venv))?;
    // The code's own rules (clippy.toml: one clock on the server; the workspace's lints) and
    // its format, so that CI refuses what `cargo xtask lint` would.
    phase("rustfmt", || {
        run(cargo().args(["fmt", "--all", "--check"]).current_dir(root))
            .context("code is not formatted: run `cargo fmt --all`")
    })?;
    phase("clippy", || {
        run(cargo()
            .args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])
            .current_dir(root))
        .context("clippy found problems (clippy.toml, [workspace.lints])")
    })?;
    // Built once up front so that compiler output is not mixed into the passes' test output.
    // `--bins`: the integration tests run the real binaries as processes.
    phase("build", || {
        run(cargo().args(["build", "--workspace", "--bins", "--tests"]).current_dir(root))
            .context("the workspace's tests do not build")
    })?;

    let (passes, smoke_ok) = {
        let services = phase("start servers", || Services::start(&tools))?;
        let env = PassEnv { root, venv: &venv, services: &services, threads };
        let passes = vec![run_pass(&env, Backend::Sqlite), run_pass(&env, Backend::Postgres)];
        // The load benchmarks in smoke mode (tiny sizes, debug build) so that they cannot rot.
        let smoke = phase("bench smoke", || crate::bench::load_smoke(root, &services));
        if let Err(error) = &smoke {
            eprintln!("xtask: bench smoke failed: {error:#}");
        }
        if passes.iter().any(|p| !p.ok()) || smoke.is_err() {
            services.print_log_tails(40);
        }
        (passes, smoke.is_ok())
        // `services` drops here: servers stop before the summary, so it stays the last output.
    };

    print_summary(&passes);
    let ok = passes.iter().all(PassResult::ok) && smoke_ok;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn test_threads() -> Result<u32> {
    match std::env::var("KELVIN_TEST_THREADS") {
        Err(_) => Ok(DEFAULT_THREADS),
        Ok(text) => match text.trim().parse() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!("KELVIN_TEST_THREADS must be a positive number, not {text:?}"),
        },
    }
}

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// What both passes share.
struct PassEnv<'a> {
    root: &'a Path,
    venv: &'a Path,
    services: &'a Services,
    threads: u32,
}

/// Sums of libtest's `test result:` lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Self) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
    }
}

struct PassResult {
    backend: Backend,
    counts: Counts,
    /// Test binaries (and doc-test runs) that reported a result line.
    suites: u64,
    /// cargo's exit status, or why cargo could not be run.
    status: Result<ExitStatus, String>,
    elapsed: Duration,
}

impl PassResult {
    fn ok(&self) -> bool {
        self.status.as_ref().is_ok_and(ExitStatus::success)
            && self.counts.failed == 0
            && self.counts.passed > 0
    }

    fn cargo_column(&self) -> String {
        match &self.status {
            Ok(status) if status.success() => "ok".into(),
            Ok(status) => status.code().map_or_else(|| status.to_string(), |c| format!("exit {c}")),
            Err(_) => "not run".into(),
        }
    }
}

fn run_pass(env: &PassEnv<'_>, backend: Backend) -> PassResult {
    let started = Instant::now();
    eprintln!("xtask: pass {}: starting", backend.name());
    let mut counts = Counts::default();
    let mut suites = 0;
    let status = run_cargo_test(env, backend, |line| {
        if let Some(found) = parse_result_line(line) {
            counts += found;
            suites += 1;
        }
    })
    .map_err(|e| format!("{e:#}"));
    if let Err(e) = &status {
        eprintln!("xtask: pass {}: {e}", backend.name());
    }
    let elapsed = started.elapsed();
    eprintln!("xtask: pass {} took {:.1}s", backend.name(), elapsed.as_secs_f64());
    PassResult { backend, counts, suites, status, elapsed }
}

/// Runs `cargo test` for one backend, echoing its stdout line by line while `scan` reads it.
fn run_cargo_test(
    env: &PassEnv<'_>,
    backend: Backend,
    mut scan: impl FnMut(&str),
) -> Result<ExitStatus> {
    let mut cmd = cargo();
    cmd.current_dir(env.root)
        .args(["test", "--workspace", "--no-fail-fast", "--"])
        .arg(format!("--test-threads={}", env.threads))
        .env("KELVIN_TEST_BACKEND", backend.name())
        // The cache crate's shared suite needs Redis whatever the relational backend.
        .env("KELVIN_TEST_REDIS_URL", env.services.redis_url())
        .env("KELVIN_TEST_PYTHON", env.venv.join("bin/python"))
        .env("KELVIN_REPO_ROOT", env.root);
    let grpcurl: PathBuf = env.venv.join("bin/grpcurl");
    if grpcurl.exists() {
        cmd.env("KELVIN_TEST_GRPCURL", grpcurl);
    }
    match backend {
        Backend::Postgres => cmd.env("KELVIN_TEST_DATABASE_URL", env.services.database_url()),
        Backend::Sqlite => cmd.env_remove("KELVIN_TEST_DATABASE_URL"),
    };
    let what = describe(&cmd);
    eprintln!("xtask: pass {}: {what}", backend.name());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{what}`"))?;
    let stdout = child.stdout.take().context("cargo test's stdout was not captured")?;
    let mut echo = std::io::stdout().lock();
    let mut read_error = None;
    for line in BufReader::new(stdout).split(b'\n') {
        match line {
            Ok(line) => {
                // Echo failures must not stop the scan (or leave cargo blocked on a full pipe).
                let _ = echo
                    .write_all(&line)
                    .and_then(|()| echo.write_all(b"\n"))
                    .and_then(|()| echo.flush());
                scan(&String::from_utf8_lossy(&line));
            }
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
    }
    // Wait even after a read error, so that no cargo outlives its pass.
    let status = child.wait().with_context(|| format!("could not wait for `{what}`"))?;
    match read_error {
        Some(e) => Err(e).context("could not read cargo test's output"),
        None => Ok(status),
    }
}

/// Counts from a libtest line such as
/// `test result: ok. 12 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s`.
fn parse_result_line(line: &str) -> Option<Counts> {
    let line = strip_ansi(line);
    let rest = line.trim().strip_prefix("test result: ")?;
    let (verdict, fields) = rest.split_once(". ")?;
    if verdict != "ok" && verdict != "FAILED" {
        return None;
    }
    let mut counts = Counts::default();
    let (mut saw_passed, mut saw_failed) = (false, false);
    for field in fields.split(';') {
        let Some((number, word)) = field.trim().split_once(' ') else { continue };
        let Ok(n) = number.parse::<u64>() else { continue };
        match word {
            "passed" => (counts.passed, saw_passed) = (n, true),
            "failed" => (counts.failed, saw_failed) = (n, true),
            "ignored" => counts.ignored = n,
            _ => {}
        }
    }
    (saw_passed && saw_failed).then_some(counts)
}

/// Drops terminal colour sequences (`ESC [ ... m`) in case a test binary was told to colour.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The table of both passes, then, as the very last line, the grand total.
fn print_summary(passes: &[PassResult]) {
    let mut total = Counts::default();
    for pass in passes {
        total += pass.counts;
        if pass.counts.passed + pass.counts.failed == 0 {
            eprintln!("xtask: pass {} ran no tests", pass.backend.name());
        }
        if let Err(e) = &pass.status {
            eprintln!("xtask: pass {} could not run: {e}", pass.backend.name());
        }
    }
    // stderr first, so nothing can land after the total line.
    let _ = std::io::stderr().flush();
    let mut lines = vec![
        String::new(),
        "xtask: summary".to_owned(),
        format!(
            "{:<10} {:>8} {:>8} {:>8} {:>7}  {:<8} {:>8}",
            "pass", "passed", "failed", "ignored", "suites", "cargo", "time"
        ),
    ];
    for pass in passes {
        lines.push(format!(
            "{:<10} {:>8} {:>8} {:>8} {:>7}  {:<8} {:>7.1}s",
            pass.backend.name(),
            pass.counts.passed,
            pass.counts.failed,
            pass.counts.ignored,
            pass.suites,
            pass.cargo_column(),
            pass.elapsed.as_secs_f64(),
        ));
    }
    lines.push(format!("total: {} passed, {} failed", total.passed, total.failed));
    let mut out = std::io::stdout().lock();
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::{Counts, parse_result_line};

    #[test]
    fn parses_ok_and_failed_result_lines() {
        let ok = "test result: ok. 12 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; \
                  finished in 0.01s";
        assert_eq!(parse_result_line(ok), Some(Counts { passed: 12, failed: 0, ignored: 3 }));
        let failed = "test result: FAILED. 7 passed; 2 failed; 0 ignored; 0 measured; \
                      0 filtered out; finished in 1.50s";
        assert_eq!(parse_result_line(failed), Some(Counts { passed: 7, failed: 2, ignored: 0 }));
    }

    #[test]
    fn parses_coloured_lines_and_ignores_others() {
        let coloured = "test result: \u{1b}[32mok\u{1b}[0m. 1 passed; 0 failed; 0 ignored; \
                        0 measured; 0 filtered out; finished in 0.00s";
        assert_eq!(parse_result_line(coloured), Some(Counts { passed: 1, failed: 0, ignored: 0 }));
        assert_eq!(parse_result_line("test foo ... ok"), None);
        assert_eq!(parse_result_line("running 12 tests"), None);
        assert_eq!(parse_result_line("total: 3 passed, 0 failed"), None);
    }
}
