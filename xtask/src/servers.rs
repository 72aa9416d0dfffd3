//! Throwaway PostgreSQL and Redis servers on free loopback ports, in a temp dir of their own.
//!
//! [`Services`] is a guard: dropping it stops both servers and removes the dir, so they go away
//! when tests fail or xtask returns an error. A watchdog shell (its own process group, so ctrl-c
//! does not reach it) holds the read end of a pipe only we write to; if xtask dies without
//! dropping the guard (ctrl-c, SIGKILL, CI timeout), the pipe closes and the watchdog cleans up.

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use crate::cmd::{describe, output, run};
use crate::tools::ServerTools;

/// Runs after xtask's end, whatever the cause: `$1` dir, `$2` pg_ctl, `$3` runuser or empty.
const WATCHDOG: &str = r#"
while read -r _; do :; done
if [ -f "$1/data/postmaster.pid" ]; then
  if [ -n "$3" ]; then
    "$3" -u postgres -- "$2" -D "$1/data" -m immediate -w -s stop
  else
    "$2" -D "$1/data" -m immediate -w -s stop
  fi
fi
if [ -f "$1/redis.pid" ]; then kill "$(cat "$1/redis.pid")"; sleep 1; fi
rm -rf "$1"
"#;

/// Running PostgreSQL and Redis; both stop when this is dropped.
pub struct Services {
    dir: PathBuf,
    pg_ctl: PathBuf,
    runuser: Option<PathBuf>,
    watchdog: Option<Child>,
    pg_port: Option<u16>,
    redis_port: Option<u16>,
    /// PostgreSQL flushes every commit to disk (benchmarks); tests turn that off for speed.
    durable: bool,
}

impl Services {
    /// Starts both servers; whatever did start is stopped again if the other fails.
    pub fn start(tools: &ServerTools) -> Result<Self> {
        Self::start_with(tools, false)
    }

    /// [`Services::start`] with PostgreSQL's `fsync` and `synchronous_commit` on when
    /// `durable` (what benchmarks measure against).
    pub fn start_with(tools: &ServerTools, durable: bool) -> Result<Self> {
        let dir = make_dir(tools.runuser.is_some())?;
        let mut services = Self {
            dir,
            pg_ctl: tools.pg_ctl(),
            runuser: tools.runuser.clone(),
            watchdog: None,
            pg_port: None,
            redis_port: None,
            durable,
        };
        services.watchdog = Some(services.spawn_watchdog()?);
        services.start_postgres(tools)?;
        services.start_redis(tools)?;
        Ok(services)
    }

    pub fn database_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.pg_port.unwrap_or_default())
    }

    /// Creates database `name` (dropping an older one) and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String> {
        let port = self.pg_port.unwrap_or_default().to_string();
        for program in ["dropdb", "createdb"] {
            let mut cmd = Command::new(self.pg_ctl.with_file_name(program));
            cmd.args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres"]);
            if program == "dropdb" {
                cmd.arg("--if-exists");
            }
            output(cmd.arg(name)).with_context(|| format!("{program} {name} failed"))?;
        }
        Ok(format!("postgres://postgres@127.0.0.1:{port}/{name}"))
    }

    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.redis_port.unwrap_or_default())
    }

    fn pg_log(&self) -> PathBuf {
        self.dir.join("pg.log")
    }

    fn redis_log(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// Prints the last `lines` lines of both servers' logs, to explain failed tests.
    pub fn print_log_tails(&self, lines: usize) {
        for log in [self.pg_log(), self.redis_log()] {
            print_log(&log, lines);
        }
    }

    fn spawn_watchdog(&self) -> Result<Child> {
        Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("xtask-watchdog")
            .arg(&self.dir)
            .arg(&self.pg_ctl)
            .arg(self.runuser.as_deref().unwrap_or(Path::new("")))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("could not start the server watchdog (sh)")
    }

    /// A command for PostgreSQL's `program`, as the `postgres` user when we are root.
    fn pg_command(&self, program: &Path) -> Command {
        let mut cmd = match &self.runuser {
            Some(runuser) => {
                let mut cmd = Command::new(runuser);
                cmd.args(["-u", "postgres", "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        // The postgres user may not be allowed into our working directory.
        cmd.current_dir(&self.dir);
        cmd
    }

    fn start_postgres(&mut self, tools: &ServerTools) -> Result<()> {
        let data = self.dir.join("data");
        let mut initdb = self.pg_command(&tools.initdb());
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ]);
        output(&mut initdb).context("initdb failed")?;

        let port = free_port()?;
        let dir = self.dir.to_str().context("the temp dir's path is not UTF-8")?;
        if dir.contains('\'') {
            bail!("the temp dir's path {dir} contains a quote");
        }
        // pg_ctl hands -o to a shell, hence the quotes around the socket dir.
        let durability = if self.durable {
            "-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
        } else {
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        };
        let options = format!(
            "-p {port} -k '{dir}' -c listen_addresses=127.0.0.1 {durability} -c max_connections=300"
        );
        let mut pg_ctl = self.pg_command(&self.pg_ctl);
        pg_ctl.arg("-D").arg(&data).arg("-l").arg(self.pg_log()).args(["-w", "-s", "-o"]);
        pg_ctl.arg(options).arg("start");
        // Set before starting: a half-started server is still stopped by Drop.
        self.pg_port = Some(port);
        if let Err(e) = output(&mut pg_ctl) {
            print_log(&self.pg_log(), 200);
            return Err(e.context("PostgreSQL did not start"));
        }
        eprintln!("xtask: PostgreSQL on 127.0.0.1:{port}");
        Ok(())
    }

    fn start_redis(&mut self, tools: &ServerTools) -> Result<()> {
        let port = free_port()?;
        let mut redis = Command::new(&tools.redis_server);
        redis
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--daemonize", "yes"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .arg("--pidfile")
            .arg(self.dir.join("redis.pid"))
            .arg("--logfile")
            .arg(self.redis_log());
        self.redis_port = Some(port);
        let started = run(&mut redis).and_then(|()| wait_for_redis(port));
        if let Err(e) = started {
            print_log(&self.redis_log(), 200);
            return Err(e.context("Redis did not start"));
        }
        eprintln!("xtask: Redis on 127.0.0.1:{port}");
        Ok(())
    }

    fn stop_postgres(&mut self) -> Result<()> {
        if self.pg_port.take().is_none() || !self.dir.join("data/postmaster.pid").exists() {
            return Ok(());
        }
        let data = self.dir.join("data");
        let mut fast = self.pg_command(&self.pg_ctl);
        fast.arg("-D").arg(&data).args(["-m", "fast", "-w", "-s", "stop"]);
        if output(&mut fast).is_ok() {
            return Ok(());
        }
        let mut immediate = self.pg_command(&self.pg_ctl);
        immediate.arg("-D").arg(&data).args(["-m", "immediate", "-w", "-s", "stop"]);
        output(&mut immediate).map(drop).context("could not stop PostgreSQL")
    }

    fn stop_redis(&mut self) -> Result<()> {
        if self.redis_port.take().is_none() {
            return Ok(());
        }
        let pidfile = self.dir.join("redis.pid");
        let Ok(text) = fs::read_to_string(&pidfile) else {
            return Ok(()); // never got as far as running
        };
        let pid: u32 = text.trim().parse().with_context(|| format!("bad {}", pidfile.display()))?;
        run(Command::new("kill").arg(pid.to_string())).context("could not stop Redis")?;
        if wait_until(Duration::from_secs(10), || !process_alive(pid)) {
            return Ok(());
        }
        let mut kill = Command::new("kill");
        kill.args(["-KILL", &pid.to_string()]);
        eprintln!("xtask: Redis ignored SIGTERM: {}", describe(&kill));
        run(&mut kill).context("could not kill Redis")
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        let started = Instant::now();
        if let Err(e) = self.stop_postgres() {
            eprintln!("xtask: {e:#}");
        }
        if let Err(e) = self.stop_redis() {
            eprintln!("xtask: {e:#}");
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("xtask: could not remove {}: {e}", self.dir.display());
        }
        // Everything is stopped: the watchdog (blocked in `read`, no children) has nothing to do.
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        eprintln!("xtask: servers stopped in {:.1}s", started.elapsed().as_secs_f64());
    }
}

/// A new empty dir under the system temp dir that the `postgres` user can use when we are root.
fn make_dir(for_postgres: bool) -> Result<PathBuf> {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("kelvin-xtask-{}-{nanos}", std::process::id()));
    fs::create_dir(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("could not chmod {}", dir.display()))?;
    if for_postgres {
        // The postgres user must be able to walk down to the dir ...
        for parent in dir.ancestors().skip(1) {
            let mode = fs::metadata(parent)
                .with_context(|| format!("could not stat {}", parent.display()))?
                .permissions()
                .mode();
            if mode & 0o001 == 0 {
                eprintln!("xtask: making {} traversable for the postgres user", parent.display());
                fs::set_permissions(parent, fs::Permissions::from_mode(mode | 0o001))
                    .with_context(|| format!("could not chmod {}", parent.display()))?;
            }
        }
        // ... and write in it (data dir, socket, log).
        run(Command::new("chown").arg("postgres:postgres").arg(&dir))
            .with_context(|| format!("could not hand {} to the postgres user", dir.display()))?;
    }
    Ok(dir)
}

/// A loopback port that was free a moment ago (the OS picks it; we release it at once).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("no free loopback port")?;
    Ok(listener.local_addr().context("no local address for a bound socket")?.port())
}

/// Polls Redis with PING until it answers +PONG, for at most 10 s.
fn wait_for_redis(port: u16) -> Result<()> {
    let pong = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.write_all(b"PING\r\n")?;
        let mut reply = [0u8; 7];
        let n = stream.read(&mut reply)?;
        Ok(reply[..n].starts_with(b"+PONG"))
    };
    if wait_until(Duration::from_secs(10), || pong().unwrap_or(false)) {
        Ok(())
    } else {
        bail!("Redis on port {port} did not answer PING with +PONG within 10 s")
    }
}

/// Checks `ready` every 50 ms until it holds (true) or `limit` has passed (false).
fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(50));
    }
}

/// Whether `pid` runs; a zombie (here PID 1 may never reap it) counts as gone.
fn process_alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may hold spaces.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

fn print_log(log: &Path, lines: usize) {
    match fs::read_to_string(log) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            eprintln!("xtask: ---- last {} lines of {} ----", tail.len(), log.display());
            for line in tail {
                eprintln!("{line}");
            }
            eprintln!("xtask: ---- end of {} ----", log.display());
        }
        Err(e) => eprintln!("xtask: no log {}: {e}", log.display()),
    }
}
