//! The relational store: SQLite (embedded default) or PostgreSQL through sea-orm.
//!
//! Every read and write goes through an [`Access`], obtained from [`Store::access`] with a
//! verified [`Principal`]. `Access` checks the principal's reach on every call, so a query that
//! forgets its tenant cannot be written by accident: rows out of reach are reported exactly like
//! rows that do not exist. Tenant-owned data is reached through a [`TenantScope`], which only
//! `Access` can produce. Every mutation writes its audit row in the same transaction.

mod access;
mod api_keys;
mod audit;
mod dead_letters;
mod entity;
mod erasure;
mod error;
mod export;
mod ingest;
mod input;
#[cfg(test)]
mod layout_tests;
mod migration;
mod models;
mod organizations;
mod page;
mod purge;
mod queue;
mod rows;
mod scores;
mod scoring;
mod sql;
mod templates;
mod tenants;
#[cfg(any(test, feature = "testing"))]
mod testing;
mod types;

use std::path::Path;
use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend};
use sea_orm_migration::MigratorTrait;

pub use access::{Access, TenantScope};
pub use audit::AuditContext;
pub use dead_letters::DeadLetter;
pub use error::{Error, Result};
pub use export::{ExportItem, LeadExport, LeadExportPage};
pub use ingest::{CompanyUpsert, LeadUpsert, NewEvent, NewOutcome, Written};
pub use input::{DisplayName, Invalid, Labels, ResourceId, key_expiry, required};
pub use kelvin_auth::Principal;
pub use models::{Activation, ActivationKind, ModelVersionRecord, ScoringModel, canonical_json};
pub use page::{Page, PageField, PageInvalid};
pub use queue::{NewWork, PARTITIONS, WorkItem, WorkKind, partition_of};
pub use rows::{
    ActiveVersion, ChangeCause, CompanyRow, LeadRow, NewChange, ScoreChangeRecord,
    StoredCompanyScore, StoredEvent, StoredScore,
};
pub use scores::{LeadFilter, RescoreStatus};
pub use scoring::{ScorerDb, ScorerTxn};
pub use templates::{NewTemplate, TemplateParam, TemplateRecord};
pub use types::{
    ApiKey, ApiKeyState, AuditEvent, AuditFilter, NewApiKey, NewTenant, Organization, Tenant,
    TenantPatch, TenantState,
};

/// A pool of connections to the relational store.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// Statements run on `db` since it was opened (see [`Store::statements`]).
    statements: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Kept to open the scoring worker's dedicated session; never printed (it may hold a
    /// password).
    url: std::sync::Arc<str>,
    /// Key of the HMAC naming erased leads in audit rows (see [`Store::with_pseudonym_key`]).
    pseudonym_key: std::sync::Arc<[u8]>,
    /// The server's one clock (see [`Store::with_clock`]): timestamps and expiry checks.
    clock: kelvin_clock::Clock,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend()).finish_non_exhaustive()
    }
}

/// Creates the SQLite file `file` (and its directory, 0700) readable by its owner only (0600)
/// before SQLite opens it: SQLite gives its `-wal` and `-shm` files the database file's mode,
/// and would otherwise create all three with the umask's (often 0644). A file that exists
/// already is tightened to 0600 when others can read it.
fn private_database_file(file: &Path) -> Result<()> {
    let cannot = |what: &Path, e: std::io::Error| {
        Error::Config(format!("cannot create `{}`: {e}", what.display()))
    };
    if let Some(parent) = file.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        let mut dir = std::fs::DirBuilder::new();
        dir.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
        dir.create(parent).map_err(|e| cannot(parent, e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(file) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(meta) = std::fs::metadata(file)
                    && meta.permissions().mode() & 0o077 != 0
                    && let Err(error) =
                        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                {
                    tracing::warn!(file = %file.display(), %error, "cannot make the database file private (0600)");
                }
            }
        }
        Err(e) => return Err(cannot(file, e)),
    }
    Ok(())
}

impl Store {
    /// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://...`). For SQLite the parent
    /// directory is created, WAL journaling and a busy timeout are set.
    pub async fn connect(url: &str) -> Result<Self> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .sqlx_logging(false)
            .connect_timeout(Duration::from_secs(5))
            // Bounded: with the store down, a call fails in seconds (and at once once the
            // health probe has seen it), never after a long wait.
            .acquire_timeout(Duration::from_secs(5));
        if let Some(path) = url.strip_prefix("sqlite://") {
            let (file, query) = path.split_once('?').unwrap_or((path, ""));
            let read_only = query.split('&').any(|p| p == "mode=ro");
            if !file.is_empty() && !file.starts_with(":memory:") && !read_only {
                private_database_file(Path::new(file))?;
            }
            options.max_connections(8).map_sqlx_sqlite_opts(|o| {
                use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
        } else {
            options.max_connections(16);
        }
        let mut db = Database::connect(options).await?;
        let statements = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = statements.clone();
        db.set_metric_callback(move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        Ok(Self {
            db,
            statements,
            url: url.into(),
            pseudonym_key: random_key(),
            clock: kelvin_clock::Clock::default(),
        })
    }

    /// Sets the secret key of the HMAC that names erased leads in audit rows. Until set, a
    /// random per-process key is used: the rows hold no guessable hash, but nobody can later
    /// check which lead a row names.
    /// Reads time from `clock` (the server shares one, so a test that moves it moves the
    /// store's timestamps and expiry checks too).
    pub fn with_clock(mut self, clock: kelvin_clock::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The clock this store reads.
    pub fn clock(&self) -> &kelvin_clock::Clock {
        &self.clock
    }

    pub fn with_pseudonym_key(mut self, key: &[u8]) -> Self {
        self.pseudonym_key = key.into();
        self
    }

    /// The pseudonym of lead `lead_id` of tenant `tenant_id` in erasure audit rows: the first
    /// 16 bytes of HMAC-SHA256(key, `tenant/lead`), hex. An operator holding the key can tell
    /// whether a given lead was erased; without it the row reveals nothing, even for guessable
    /// ids such as e-mail addresses.
    pub fn lead_pseudonym(&self, tenant_id: &str, lead_id: &str) -> String {
        erasure::lead_pseudonym(&self.pseudonym_key, tenant_id, lead_id)
    }

    /// How many statements this store's pool has run since it was opened: what a workload
    /// costs the database (tests check with it that idle change streams cost nothing).
    pub fn statements(&self) -> u64 {
        self.statements.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<()> {
        migration::Migrator::up(&self.db, None).await?;
        Ok(())
    }

    /// Names of the migrations not applied yet.
    pub async fn pending_migrations(&self) -> Result<Vec<String>> {
        Ok(migration::Migrator::get_pending_migrations(&self.db)
            .await?
            .iter()
            .map(|m| m.name().to_owned())
            .collect())
    }

    /// A round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<()> {
        self.db.ping().await?;
        Ok(())
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.db.get_database_backend() {
            DbBackend::Sqlite => "sqlite",
            DbBackend::Postgres => "postgres",
            _ => "other",
        }
    }

    /// Everything `principal` may read and change.
    pub fn access<'a>(&'a self, principal: &'a Principal) -> Access<'a> {
        Access::new(&self.db, principal, &self.pseudonym_key, &self.clock)
    }

    /// Whether the Kelvin API key `id` exists, is not revoked, not expired, and its tenant (when
    /// it has one) is not deleted. Called by authentication for every Kelvin-minted token.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.api_key_is_active", otel.kind = "client"))]
    pub async fn api_key_is_active(&self, id: &str) -> Result<bool> {
        Ok(self.api_key_state(id).await? == ApiKeyState::Active)
    }

    /// Why the Kelvin API key `id` is (not) usable: authentication tells the caller.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.api_key_state", otel.kind = "client"))]
    pub async fn api_key_state(&self, id: &str) -> Result<ApiKeyState> {
        api_keys::api_key_state(&self.db, id, self.clock.now_ms()).await
    }

    /// The change head (number of the latest change, 0 before the first) of each of `tenants`
    /// that has one. Unscoped: the scoring service's change watcher reads, in one query per
    /// poll, the heads of the tenants its streams watch; each stream checked its reach first.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.change_heads", otel.kind = "client"))]
    pub async fn change_heads(
        &self,
        tenants: &[String],
    ) -> Result<std::collections::HashMap<String, i64>> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let mut heads = std::collections::HashMap::new();
        for chunk in tenants.chunks(500) {
            let rows = entity::change_counter::Entity::find()
                .filter(entity::change_counter::Column::TenantId.is_in(chunk.iter().cloned()))
                .all(&self.db)
                .await?;
            heads.extend(rows.into_iter().map(|r| (r.tenant_id, r.last)));
        }
        Ok(heads)
    }

    /// Creates the platform operator's key (organization `*`), audited as a bootstrap event.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.create_platform_key", otel.kind = "client"))]
    pub async fn create_platform_key(&self, key: NewApiKey, actor: &str) -> Result<ApiKey> {
        api_keys::create_system_key(
            &self.db,
            NewApiKey { org_id: String::new(), ..key },
            actor,
            "bootstrap",
            self.clock.now_ms(),
        )
        .await
    }

    /// Creates an operator's admin key outside any API call (the `admin-token` command): for
    /// the platform (`org_id` empty or `*`) or for every tenant of one existing organization.
    /// Audited with `actor` and `reason` like any key, and revocable with RevokeApiKey.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.create_operator_key", otel.kind = "client"))]
    pub async fn create_operator_key(
        &self,
        key: NewApiKey,
        actor: &str,
        reason: &str,
    ) -> Result<ApiKey> {
        api_keys::create_system_key(&self.db, key, actor, reason, self.clock.now_ms()).await
    }

    /// Erases the tenants whose purge time has passed; returns their ids and incarnations.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.purge_due_tenants", otel.kind = "client"))]
    pub async fn purge_due_tenants(&self) -> Result<Vec<(String, i64)>> {
        purge::purge_due_tenants(&self.db, self.clock.now_ms()).await
    }
}

/// 32 random bytes (two v4 UUIDs, hashed).
fn random_key() -> std::sync::Arc<[u8]> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(uuid::Uuid::new_v4().as_bytes());
    hasher.update(uuid::Uuid::new_v4().as_bytes());
    hasher.finalize().to_vec().into()
}

/// Starts a transaction that will write. On SQLite it takes the write lock at once (`BEGIN
/// IMMEDIATE`), so concurrent writers queue behind the busy timeout instead of failing when a
/// read transaction tries to upgrade; PostgreSQL ignores the option.
pub(crate) async fn write_txn(
    db: &sea_orm::DatabaseConnection,
) -> Result<sea_orm::DatabaseTransaction> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    Ok(db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await?)
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_sqlite_file_and_its_directory_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("new/kelvin.db");
        private_database_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(file.parent().unwrap()), 0o700);

        // A database an earlier version left readable by others is tightened.
        let old = dir.path().join("old.db");
        std::fs::write(&old, b"").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        private_database_file(&old).unwrap();
        assert_eq!(mode(&old), 0o600);
    }
}
