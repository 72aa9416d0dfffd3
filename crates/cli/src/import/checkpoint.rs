//! Import checkpoints: the progress saved after every acknowledged batch, with the tenant,
//! file content and mapping it is the progress of, and the check that refuses a resume with
//! any other.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a file, read in blocks.
pub(super) fn file_sha256(path: &Path) -> Result<String> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Progress saved after every acknowledged batch, with what it is the progress of: resuming
/// into another tenant, or with another file or mapping, would skip rows that were never sent
/// there.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    /// Empty in checkpoints of older kelvinctl versions, which are refused.
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub file_sha256: String,
    #[serde(default)]
    pub mapping: String,
    #[serde(default)]
    pub mapping_sha256: String,
    /// Data rows (after the header) fully handled.
    pub rows: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Rows stored with a warning (a value an active model's rule cannot read).
    #[serde(default)]
    pub warned: u64,
}

/// Refuses to resume from a checkpoint of another tenant, file content or mapping, naming
/// each difference.
pub(super) fn check_resumable(saved: &Checkpoint, now: &Checkpoint, path: &Path) -> Result<()> {
    let start_over = "import without --resume to start over";
    if saved.tenant.is_empty() || saved.file_sha256.is_empty() || saved.mapping_sha256.is_empty() {
        bail!(
            "cannot resume: the checkpoint {} comes from an older kelvinctl and does not say which tenant, file and mapping it is for; {start_over}",
            path.display()
        );
    }
    let mut differences = Vec::new();
    if saved.tenant != now.tenant {
        differences.push(format!(
            "tenant: the checkpoint is for `{}`, not `{}`",
            saved.tenant, now.tenant
        ));
    }
    if saved.file_sha256 != now.file_sha256 {
        differences.push(format!(
            "file: its content changed since the checkpoint (SHA-256 {} then, {} now)",
            short(&saved.file_sha256),
            short(&now.file_sha256)
        ));
    }
    if saved.mapping_sha256 != now.mapping_sha256 {
        differences.push(format!(
            "mapping: the checkpoint is for `{}` (SHA-256 {}), not `{}` (SHA-256 {})",
            saved.mapping,
            short(&saved.mapping_sha256),
            now.mapping,
            short(&now.mapping_sha256)
        ));
    }
    if !differences.is_empty() {
        bail!("cannot resume from {}: {}; {start_over}", path.display(), differences.join("; "));
    }
    Ok(())
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

pub(super) fn checkpoint_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".kelvin-import");
    PathBuf::from(name)
}

pub(super) fn save(path: &Path, c: &Checkpoint) -> Result<()> {
    let tmp = path.with_extension("kelvin-import.tmp");
    std::fs::write(&tmp, serde_json::to_vec(c)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn checkpoint(tenant: &str, file: &str, mapping: &str) -> Checkpoint {
        Checkpoint {
            tenant: tenant.into(),
            file_sha256: file.into(),
            mapping: "hubspot-events".into(),
            mapping_sha256: mapping.into(),
            rows: 300,
            ..Checkpoint::default()
        }
    }

    #[test]
    fn a_checkpoint_resumes_only_its_tenant_file_and_mapping() {
        let path = Path::new("x.csv.kelvin-import");
        let saved = checkpoint("acme-fr", "f1", "m1");
        assert!(check_resumable(&saved, &checkpoint("acme-fr", "f1", "m1"), path).is_ok());
        let err = check_resumable(&saved, &checkpoint("acme-de", "f2", "m2"), path)
            .unwrap_err()
            .to_string();
        for part in
            ["tenant: the checkpoint is for `acme-fr`, not `acme-de`", "file: ", "mapping: "]
        {
            assert!(err.contains(part), "{part}: {err}");
        }
        let old: Checkpoint =
            serde_json::from_str(r#"{"rows":300,"accepted":300,"duplicates":0,"rejected":0}"#)
                .unwrap();
        let err = check_resumable(&old, &saved, path).unwrap_err().to_string();
        assert!(err.contains("older kelvinctl"), "{err}");
    }
}
