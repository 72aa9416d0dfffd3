//! The compiled active model versions the worker scores with, re-read on every rebalance.

use std::collections::HashMap;
use std::sync::Arc;

use kelvin_engine::CompiledModel;
use kelvin_store::{ActiveVersion, ScorerDb};

/// One active model version, compiled.
#[derive(Debug)]
pub(crate) struct ActiveModel {
    pub model_id: String,
    pub version: i64,
    pub compiled: CompiledModel,
}

/// Active models by tenant.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    by_tenant: HashMap<String, Vec<Arc<ActiveModel>>>,
    /// Incarnation of every tenant with an active model: its cache namespace.
    incarnations: HashMap<String, i64>,
}

impl Registry {
    /// The tenant's active models (empty when it has none).
    pub fn models(&self, tenant_id: &str) -> &[Arc<ActiveModel>] {
        self.by_tenant.get(tenant_id).map_or(&[], Vec::as_slice)
    }

    /// The cache namespace of a tenant with active models.
    pub fn namespace(&self, tenant_id: &str) -> Option<kelvin_cache::Namespace> {
        self.incarnations.get(tenant_id).map(|i| kelvin_cache::Namespace::tenant(tenant_id, *i))
    }

    fn version(&self, tenant_id: &str, model_id: &str) -> Option<i64> {
        self.models(tenant_id).iter().find(|m| m.model_id == model_id).map(|m| m.version)
    }

    /// Every tenant with its active `(model, version)` pairs.
    pub fn tenants(&self) -> Vec<(String, Vec<(String, i64)>)> {
        self.by_tenant
            .iter()
            .map(|(t, ms)| {
                (t.clone(), ms.iter().map(|m| (m.model_id.clone(), m.version)).collect())
            })
            .collect()
    }

    /// Whether `version` is still the active version of the model.
    pub fn is_active(&self, tenant_id: &str, model_id: &str, version: i64) -> bool {
        self.version(tenant_id, model_id) == Some(version)
    }

    /// Re-reads the active versions; compiles the new ones. Returns the models whose active
    /// version changed (or appeared): their leads need rescoring.
    pub async fn refresh(&mut self, db: &ScorerDb) -> kelvin_store::Result<Vec<ActiveVersion>> {
        let active = db.active_versions().await?;
        let mut next: HashMap<String, Vec<Arc<ActiveModel>>> = HashMap::new();
        let mut changed = Vec::new();
        let mut incarnations = HashMap::new();
        for a in active {
            incarnations.insert(a.tenant_id.clone(), a.tenant_incarnation);
            let current = self
                .models(&a.tenant_id)
                .iter()
                .find(|m| m.model_id == a.model_id && m.version == a.version)
                .cloned();
            let model = match current {
                Some(m) => m,
                None => {
                    let spec = db.model_spec(&a.tenant_id, &a.model_id, a.version).await?;
                    match CompiledModel::from_json(&spec) {
                        Ok(compiled) => {
                            changed.push(a.clone());
                            Arc::new(ActiveModel {
                                model_id: a.model_id.clone(),
                                version: a.version,
                                compiled,
                            })
                        }
                        Err(error) => {
                            // Versions are validated before they are stored; a stored spec the
                            // engine refuses (an older engine?) is skipped, loudly.
                            tracing::error!(tenant = %a.tenant_id, model = %a.model_id,
                                version = a.version, %error, "active model does not compile");
                            continue;
                        }
                    }
                }
            };
            next.entry(a.tenant_id).or_default().push(model);
        }
        self.by_tenant = next;
        self.incarnations = incarnations;
        Ok(changed)
    }
}
