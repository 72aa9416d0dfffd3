//! `cargo xtask services`: the test servers for a developer's own runs (`cargo run`, a single
//! `cargo test`), up until stdin closes or xtask is interrupted.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::os::unix::fs::FileTypeExt as _;
use std::process::ExitCode;
use std::thread::sleep;
use std::time::Duration;

use anyhow::Result;

use crate::phase;
use crate::servers::Services;
use crate::tools::{Apt, ensure_server_tools};

pub fn services() -> Result<ExitCode> {
    let tools = phase("install", || ensure_server_tools(&mut Apt::new()?))?;
    let services = phase("start servers", || Services::start(&tools))?;
    // Only the exports go to stdout, so they can be pasted or `eval`ed from a captured copy.
    let mut out = std::io::stdout().lock();
    writeln!(out, "export KELVIN_DATABASE_URL={}", services.database_url())?;
    writeln!(out, "export KELVIN_CACHE__REDIS_URL={}", services.redis_url())?;
    out.flush()?;
    drop(out);
    wait_for_stop();
    drop(services);
    Ok(ExitCode::SUCCESS)
}

/// Returns when stdin closes. When stdin cannot close by itself (`/dev/null`, a file), it waits
/// for a signal instead; the servers' watchdog stops them when xtask is killed or interrupted.
fn wait_for_stop() {
    let stdin = std::io::stdin();
    let closable = stdin.is_terminal()
        || std::fs::metadata("/dev/stdin")
            .is_ok_and(|m| m.file_type().is_fifo() || m.file_type().is_socket());
    if closable {
        eprintln!("xtask: servers up; close stdin (ctrl-d) or press ctrl-c to stop them");
        let mut sink = [0u8; 4096];
        let mut stdin = stdin.lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    } else {
        eprintln!(
            "xtask: servers up; stdin is not interactive: stop with ctrl-c or `kill {}`",
            std::process::id()
        );
        loop {
            sleep(Duration::from_secs(3600));
        }
    }
}
