//! Company scores: recomputed from their leads' stored scores; a company whose attributes
//! changed also sends its leads to be rescored (fit rules may read the company).

use std::collections::BTreeSet;

use kelvin_engine::Score;
use kelvin_scores::{engine_company, score_summary};
use kelvin_store::{NewWork, ScorerTxn, StoredCompanyScore, WorkKind};

use super::Worker;

impl Worker {
    /// Recomputes company scores from their leads' stored scores; companies whose attributes
    /// changed also send their leads to be rescored (fit rules may read the company).
    pub(super) async fn score_companies(
        &self,
        txn: &ScorerTxn,
        companies: BTreeSet<(String, String, bool)>,
        now: i64,
    ) -> kelvin_store::Result<()> {
        let mut fan_out = Vec::new();
        for (tenant, company_id, attributes_changed) in companies {
            let company = txn
                .companies(&tenant, std::slice::from_ref(&company_id))
                .await?
                .first()
                .map(engine_company)
                .unwrap_or_default();
            for m in self.registry.models(&tenant) {
                let members = txn.company_member_scores(&tenant, &m.model_id, &company_id).await?;
                let scores: Vec<Score> = members.iter().map(score_summary).collect();
                let key = (tenant.as_str(), m.model_id.as_str(), company_id.as_str());
                let computed =
                    m.compiled.score_company(&company, &scores).map(|cs| StoredCompanyScore {
                        tenant_id: tenant.clone(),
                        model_id: m.model_id.clone(),
                        company_id: company_id.clone(),
                        model_version: m.version,
                        fit: cs.fit.0,
                        leads: cs.leads.0,
                        total: cs.total.0,
                        band: cs.band.unwrap_or_default(),
                        lead_count: i32::try_from(members.len()).unwrap_or(i32::MAX),
                        update_time_ms: now,
                    });
                txn.put_company_score(key, computed).await?;
            }
            if attributes_changed {
                for lead in txn.company_lead_ids(&tenant, &company_id).await? {
                    fan_out.push(NewWork {
                        tenant_id: tenant.clone(),
                        kind: WorkKind::Lead,
                        subject_id: lead,
                        event_seq: None,
                        trace_parent: None,
                    });
                }
            }
        }
        txn.enqueue(fan_out, now).await
    }
}
