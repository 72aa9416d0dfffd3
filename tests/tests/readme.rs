//! The README's kelvinctl sequence, run top to bottom exactly as written (only the port differs)
//! against a fresh `kelvin up`, from a directory laid out like the repository's root: if a
//! README line names a file that is not shipped, collides with an earlier line or fails, this
//! test fails.
//!
//! `kelvin up` is the README's embedded server (SQLite in `./kelvin-data`), so both passes of
//! `cargo xtask test` run it on SQLite, as a new user would.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kelvin_integration_tests::process::{Running, binary, free_port};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The README's kelvinctl block: the indented code block that starts with `kelvinctl context
/// set`, one command per line.
fn readme_sequence() -> Vec<String> {
    let text = std::fs::read_to_string(repository().join("README.md")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("    kelvinctl context set "))
        .expect("the README has a kelvinctl block starting with `kelvinctl context set`");
    lines[start..]
        .iter()
        .take_while(|l| l.starts_with("    "))
        .map(|l| l.trim().to_owned())
        .collect()
}

/// The command without its trailing `# comment`.
fn without_comment(line: &str) -> &str {
    match line.find(" #") {
        Some(at) => line[..at].trim_end(),
        None => line,
    }
}

struct Shell {
    cwd: PathBuf,
    path: String,
    config: PathBuf,
    addr: String,
}

impl Shell {
    fn command(&self, line: &str) -> Command {
        let line = without_comment(line).replace("127.0.0.1:50051", &self.addr);
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(line)
            .current_dir(&self.cwd)
            .env("PATH", &self.path)
            .env("KELVINCTL_CONFIG", &self.config)
            .env_remove("KELVIN_ENDPOINT")
            .env_remove("KELVIN_TOKEN")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        command
    }

    fn run(&self, line: &str) -> Output {
        self.command(line).output().unwrap()
    }
}

fn describe(line: &str, out: &Output) -> String {
    format!(
        "README line `{line}` exited with {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_readme_kelvinctl_sequence_runs_as_written() {
    let sequence = readme_sequence();
    assert!(sequence.len() >= 10, "the README's kelvinctl block looks cut short: {sequence:?}");

    // A directory laid out like the repository's root: the README's `examples/...` paths and
    // `kelvin-data/admin-token` resolve from it, as they do for a user in a checkout.
    let dir = tempfile::tempdir().unwrap();
    // A copy, not a link: imports write their rejects and checkpoints beside their input.
    copy_dir(&repository().join("examples"), &dir.path().join("examples"));
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut up = Command::new(binary("kelvin"));
    up.args(["up", "--listen", &addr])
        .current_dir(dir.path())
        .env_remove("KELVIN_CONFIG")
        .env_remove("KELVIN_DATABASE_URL")
        .env_remove("KELVIN_DATA_DIR")
        .env_remove("KELVIN_CACHE__REDIS_URL")
        .stdout(Stdio::piped());
    let mut server = Running::spawn(&mut up);
    let stdout = server.child.stdout.take().unwrap();
    let mut stdout = BufReader::new(stdout).lines().map_while(Result::ok);
    assert!(
        stdout.any(|l| l.starts_with("eyJ")),
        "the first start of `kelvin up` prints the admin token"
    );
    // Keep draining the server's stdout so that it never blocks on a full pipe.
    std::thread::spawn(move || stdout.for_each(drop));

    let bin_dir = binary("kelvinctl").parent().unwrap().to_path_buf();
    let shell = Shell {
        cwd: dir.path().to_path_buf(),
        path: format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default()),
        config: dir.path().join("kelvinctl.toml"),
        addr,
    };
    // The server is up once its token is printed, but give the listener a moment to accept.
    wait_until(Duration::from_secs(30), "the server answers", || {
        std::net::TcpStream::connect(&shell.addr).is_ok()
    });

    for line in &sequence {
        let command = without_comment(line);
        assert!(command.starts_with("kelvinctl "), "the README's block holds `{line}`");
        if command.starts_with("kelvinctl watch ") {
            watch_shows(&shell, line, "lead-42");
        } else if command.starts_with("kelvinctl scores ") {
            // Scoring is asynchronous (the README says so): a person typing the next line sees
            // the score; the test waits for it the same way.
            let out = retry(Duration::from_secs(60), || {
                let out = shell.run(line);
                if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("lead-42")
                {
                    Ok(out)
                } else {
                    Err(describe(line, &out))
                }
            });
            assert!(String::from_utf8_lossy(&out.stdout).contains("lead-42"));
        } else {
            let out = shell.run(line);
            assert!(out.status.success(), "{}", describe(line, &out));
        }
    }

    // What the sequence did, read back: the template reached both of its tenants, every row of
    // the example files was taken and lead-42, a decision maker who asked for a demo, is hot.
    for tenant in ["acme-be", "acme-ch"] {
        let out = shell.run(&format!("kelvinctl -o json models history --tenant {tenant}"));
        assert!(out.status.success(), "{}", describe("models history", &out));
        let versions: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(versions.as_array().map(Vec::len), Some(1), "{tenant}: {versions}");
    }
    let out = shell.run("kelvinctl -o json scores get --tenant acme-fr lead-42");
    assert!(out.status.success(), "{}", describe("scores get", &out));
    let score: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let score = score.as_array().and_then(|a| a.first()).unwrap_or(&score);
    assert_eq!(score["band"], "hot", "{score}");
}

/// Runs the README's `kelvinctl watch` line (it follows live and never ends by itself) until
/// it prints `expected`, then stops it as a user would.
fn watch_shows(shell: &Shell, line: &str, expected: &str) {
    let mut command = shell.command(line);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    // `sh -c` with one command execs it, so killing the child stops kelvinctl itself.
    let mut watch = Running::spawn(&mut command);
    let stdout = watch.child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let expected_owned = expected.to_owned();
    std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(&expected_owned) {
                let _ = tx.send(Ok(seen));
                return;
            }
        }
        let _ = tx.send(Err(seen));
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(_)) => {}
        Ok(Err(seen)) => panic!("README line `{line}` ended without showing {expected}:\n{seen}"),
        Err(_) => panic!("README line `{line}` showed no {expected} within 60 s"),
    }
}

fn wait_until(timeout: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn retry<T>(timeout: Duration, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match attempt() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => panic!("{last}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
