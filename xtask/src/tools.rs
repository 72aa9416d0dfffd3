//! Finding, and installing when missing, the programs `cargo xtask` drives: Redis and PostgreSQL
//! servers, a Python venv for the Python client tests, and buf for the protobuf contract.
//!
//! A fresh CI machine has none of them, so everything here is idempotent and cheap when the
//! tool is already there: the same command works on a new machine and on a warm one.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd::{run, stdout_of};

/// Debian's package manager, used only as root and with `apt-get update` run at most once.
pub struct Apt {
    is_root: bool,
    updated: bool,
}

impl Apt {
    pub fn new() -> Result<Self> {
        let uid = stdout_of(Command::new("id").arg("-u")).context("could not tell our user id")?;
        Ok(Self { is_root: uid == "0", updated: false })
    }

    pub fn is_root(&self) -> bool {
        self.is_root
    }

    /// Installs `package`, which provides `what`; as a non-root user says what to install.
    fn install(&mut self, package: &str, what: &str) -> Result<()> {
        if !self.is_root {
            bail!(
                "{what} not found and we are not root to install it: \
                 install the Debian package `{package}` (sudo apt-get install {package})"
            );
        }
        eprintln!("xtask: {what} not found: installing the Debian package `{package}`");
        // Another apt may be running on a shared machine: wait for its lock instead of failing.
        let lock_wait = ["-o", "DPkg::Lock::Timeout=600"];
        if !self.updated {
            run(Command::new("apt-get").args(lock_wait).arg("update"))
                .context("apt-get update failed")?;
            self.updated = true;
        }
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(lock_wait)
            .args(["install", "-y", "--no-install-recommends", package]))
        .with_context(|| format!("could not install the Debian package `{package}`"))
    }
}

/// Where the server programs are, and how to run PostgreSQL's programs as `postgres` when we
/// are root (PostgreSQL refuses to run as root).
pub struct ServerTools {
    pub redis_server: PathBuf,
    pg_bin: PathBuf,
    /// `runuser` when we are root: PostgreSQL's programs then run as `postgres`.
    pub runuser: Option<PathBuf>,
}

impl ServerTools {
    pub fn initdb(&self) -> PathBuf {
        self.pg_bin.join("initdb")
    }

    pub fn pg_ctl(&self) -> PathBuf {
        self.pg_bin.join("pg_ctl")
    }
}

/// Makes sure `redis-server`, `initdb` and `pg_ctl` (and, as root, the `postgres` user) exist.
pub fn ensure_server_tools(apt: &mut Apt) -> Result<ServerTools> {
    let redis_server = match which("redis-server") {
        Some(path) => path,
        None => {
            apt.install("redis-server", "redis-server")?;
            which("redis-server")
                .context("redis-server is still not on PATH after installing it")?
        }
    };

    let needs_user = apt.is_root() && !user_exists("postgres");
    let pg_bin = match find_pg_bin() {
        Some(dir) if !needs_user => dir,
        _ => {
            // The package brings both the programs and the `postgres` user.
            apt.install("postgresql", "PostgreSQL (initdb, pg_ctl and the postgres user)")?;
            find_pg_bin().context(
                "PostgreSQL's initdb and pg_ctl are still not found after installing `postgresql`",
            )?
        }
    };

    let runuser = if apt.is_root() {
        if !user_exists("postgres") {
            bail!("the `postgres` user does not exist: PostgreSQL cannot run as root without it");
        }
        let found = which("runuser").or_else(|| {
            ["/usr/sbin/runuser", "/sbin/runuser"].iter().map(PathBuf::from).find(|p| p.exists())
        });
        Some(found.context("runuser not found (Debian package `util-linux`)")?)
    } else {
        None
    };

    Ok(ServerTools { redis_server, pg_bin, runuser })
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb` and `pg_ctl`, else PATH's.
fn find_pg_bin() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version: Option<Vec<u32>> = name.split('.').map(|n| n.parse().ok()).collect();
            let bin = entry.path().join("bin");
            Some((version?, bin)).filter(|(_, bin)| has_both(bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let initdb = which("initdb")?;
    // Resolve symlinks (e.g. /usr/local/bin/initdb): pg_ctl finds `postgres` beside itself.
    let dir = fs::canonicalize(initdb).ok()?.parent()?.to_path_buf();
    has_both(&dir).then_some(dir)
}

fn user_exists(name: &str) -> bool {
    stdout_of(Command::new("id").args(["-u", name])).is_ok()
}

/// `program` on PATH, if there is an executable file of that name.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| {
        fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Creates (once) the venv `target/xtask/venv` and installs `tests/python/requirements.txt` in
/// it, skipping pip when the requirements are unchanged since the last successful install.
/// Returns the venv's directory.
pub fn ensure_venv(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target/xtask/venv");
    let python = venv.join("bin/python");
    let requirements = root.join("tests/python/requirements.txt");
    let wanted = fs::read(&requirements)
        .with_context(|| format!("could not read {}", requirements.display()))?;
    let stamp = venv.join(".xtask-requirements-hash");
    let wanted_hash = format!("{:016x}\n", fnv1a(&wanted));

    if !python.exists() {
        let python3 = which("python3").context("python3 not found: it is needed for the venv")?;
        // --clear: a venv whose interpreter vanished (python upgraded) is rebuilt from scratch.
        run(Command::new(python3).args(["-m", "venv", "--clear"]).arg(&venv)).with_context(
            || format!("could not create the venv {} (Debian: python3-venv)", venv.display()),
        )?;
    }
    if fs::read_to_string(&stamp).is_ok_and(|have| have == wanted_hash) {
        return Ok(venv);
    }
    run(Command::new(&python)
        .args(["-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"])
        .arg("-r")
        .arg(&requirements))
    .with_context(|| format!("pip could not install {}", requirements.display()))?;
    fs::write(&stamp, wanted_hash)
        .with_context(|| format!("could not write {}", stamp.display()))?;
    Ok(venv)
}

/// FNV-1a, 64 bits: a stable content hash for the stamp file (std's hasher may change).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Installs buf from npm into `target/xtask/node` unless it is there; returns its path.
pub fn ensure_buf(root: &Path) -> Result<PathBuf> {
    let prefix = root.join("target/xtask/node");
    let buf = prefix.join("node_modules/.bin/buf");
    if buf.exists() {
        return Ok(buf);
    }
    let npm = which("npm").context("npm not found: it is needed to install buf (@bufbuild/buf)")?;
    fs::create_dir_all(&prefix)
        .with_context(|| format!("could not create {}", prefix.display()))?;
    run(Command::new(npm)
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&prefix)
        .arg("@bufbuild/buf@1.x"))
    .context("could not install buf with npm")?;
    if !buf.exists() {
        bail!("npm installed @bufbuild/buf but {} is missing", buf.display());
    }
    Ok(buf)
}

/// `buf lint` of the contract in `proto/` (its `buf.yaml` says which rules).
pub fn buf_lint(root: &Path, buf: &Path) -> Result<()> {
    run(Command::new(buf).arg("lint").current_dir(root.join("proto")))
        .context("buf lint found problems in proto/")
}

#[cfg(test)]
mod tests {
    use super::fnv1a;

    #[test]
    fn fnv1a_matches_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
