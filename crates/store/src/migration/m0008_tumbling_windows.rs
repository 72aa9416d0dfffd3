//! Frequency windows became sliding by default (issue 15); every window of a model version or
//! template stored before that was an epoch-aligned tumbling window. They are written out as
//! `kind: tumbling`, so that a stored version keeps scoring exactly as it did (a score is a
//! function of its model version); a new version gets sliding windows unless it says otherwise.
//! The canonical JSON and its SHA-256 are recomputed; nothing else changes.

use sea_orm::{ConnectionTrait, Statement};
use sea_orm_migration::prelude::*;
use serde_json::Value;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Adds `kind: tumbling` to every `engagement[*].window` without a kind; whether it changed.
fn pin_windows(spec: &mut Value) -> bool {
    let mut changed = false;
    if let Some(rules) = spec.get_mut("engagement").and_then(Value::as_array_mut) {
        for rule in rules {
            if let Some(window) = rule.get_mut("window").and_then(Value::as_object_mut)
                && !window.contains_key("kind")
            {
                window.insert("kind".into(), Value::String("tumbling".into()));
                changed = true;
            }
        }
    }
    changed
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let backend = db.get_database_backend();
        let param = |i: usize| {
            if backend == sea_orm::DbBackend::Postgres { format!("${i}") } else { "?".into() }
        };
        let rows = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT tenant_id, model_id, version, spec_json FROM model_versions",
            ))
            .await?;
        for row in rows {
            let tenant: String = row.try_get("", "tenant_id")?;
            let model: String = row.try_get("", "model_id")?;
            let version: i64 = row.try_get("", "version")?;
            let text: String = row.try_get("", "spec_json")?;
            let Ok(mut spec) = serde_json::from_str::<Value>(&text) else { continue };
            if !pin_windows(&mut spec) {
                continue;
            }
            let json = crate::canonical_json(&spec);
            let sha = crate::models::sha256_hex(&json);
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "UPDATE model_versions SET spec_json = {}, spec_sha256 = {} \
                     WHERE tenant_id = {} AND model_id = {} AND version = {}",
                    param(1),
                    param(2),
                    param(3),
                    param(4),
                    param(5)
                ),
                vec![json.into(), sha.into(), tenant.into(), model.into(), version.into()],
            ))
            .await?;
        }
        let rows = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT org_id, id, spec_json FROM templates",
            ))
            .await?;
        for row in rows {
            let org: String = row.try_get("", "org_id")?;
            let id: String = row.try_get("", "id")?;
            let text: String = row.try_get("", "spec_json")?;
            let Ok(mut spec) = serde_json::from_str::<Value>(&text) else { continue };
            if !pin_windows(&mut spec) {
                continue;
            }
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "UPDATE templates SET spec_json = {} WHERE org_id = {} AND id = {}",
                    param(1),
                    param(2),
                    param(3)
                ),
                vec![crate::canonical_json(&spec).into(), org.into(), id.into()],
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // `kind: tumbling` means what a window without a kind meant before: nothing to undo.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_windows_without_a_kind_are_pinned() {
        let mut spec = serde_json::json!({ "engagement": [
            { "id": "a", "window": { "count": 3, "within": "72h" } },
            { "id": "b", "window": { "count": 3, "within": "72h", "kind": "rolling" } },
            { "id": "c" } ] });
        assert!(pin_windows(&mut spec));
        assert_eq!(spec["engagement"][0]["window"]["kind"], "tumbling");
        assert_eq!(spec["engagement"][1]["window"]["kind"], "rolling");
        assert!(spec["engagement"][2].get("window").is_none());
        assert!(!pin_windows(&mut spec));
    }
}

#[cfg(test)]
mod store_tests {
    use sea_orm::{ConnectionTrait, Database, Statement};
    use sea_orm_migration::MigratorTrait;

    /// A version stored before the migration keeps its tumbling windows (and a matching hash);
    /// templates too.
    #[tokio::test]
    async fn stored_versions_are_pinned_to_tumbling_windows() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display());
        let db = Database::connect(url).await.unwrap_or_else(|e| panic!("{e}"));
        // Every migration before this one (not "all but the last": later ones follow it).
        let before = crate::migration::Migrator::migrations()
            .iter()
            .position(|m| m.name() == "m0008_tumbling_windows")
            .unwrap_or_else(|| panic!("m0008 is listed")) as u32;
        crate::migration::Migrator::up(&db, Some(before)).await.unwrap_or_else(|e| panic!("{e}"));
        let spec = r#"{"engagement":[{"id":"burst","window":{"count":3,"within":"72h"}}]}"#;
        for sql in [
            format!(
                "INSERT INTO model_versions (tenant_id, model_id, version, spec_json, spec_sha256, creator, comment, create_time) \
                 VALUES ('t', 'm', 1, '{spec}', 'old', 'c', '', 0)"
            ),
            format!(
                "INSERT INTO templates (org_id, id, display_name, spec_json, parameters_json, creator, create_time) \
                 VALUES ('o', 'tpl', 'T', '{spec}', '[]', 'c', 0)"
            ),
        ] {
            db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        crate::migration::Migrator::up(&db, None).await.unwrap_or_else(|e| panic!("{e}"));
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT spec_json, spec_sha256 FROM model_versions",
            ))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("a row"));
        let json: String = row.try_get("", "spec_json").unwrap_or_else(|e| panic!("{e}"));
        let sha: String = row.try_get("", "spec_sha256").unwrap_or_else(|e| panic!("{e}"));
        assert!(json.contains(r#""kind":"tumbling""#), "{json}");
        assert_eq!(sha, crate::models::sha256_hex(&json));
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT spec_json FROM templates",
            ))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("a row"));
        let json: String = row.try_get("", "spec_json").unwrap_or_else(|e| panic!("{e}"));
        assert!(json.contains(r#""kind":"tumbling""#), "{json}");
    }
}
