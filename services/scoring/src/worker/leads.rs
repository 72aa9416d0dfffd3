//! Scoring the leads a transaction touches, under every active model of their tenant, in
//! named steps: group the touches by tenant; read what the tenant's leads are scored from
//! ([`Inputs`]); decide which leads are rebuilt from their stored events (`rebuild`); bring
//! each lead's state up to date ([`next_state`]); score it and stage its row, its change and
//! its company's follow-up ([`Scoring::stage`]); then write everything staged.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use kelvin_cache::Namespace;
use kelvin_engine::{Company, Lead, LeadState};
use kelvin_scores::{cache_entry, engine_company, engine_event, engine_lead};
use kelvin_store::{
    ChangeCause, LeadRow, NewChange, NewWork, ScorerTxn, StoredEvent, StoredScore, WorkKind,
};

use super::Worker;
use super::queue::AfterCommit;
use super::rebuild::{self, Rebuilds};
use crate::registry::ActiveModel;

/// A lead to score now, and why.
#[derive(Debug, Default)]
pub(super) struct Touch {
    pub(super) events: Vec<StoredEvent>,
    pub(super) cause: Option<ChangeCause>,
    /// The lead's (or its company's) attributes changed, whatever else the batch holds.
    pub(super) attributes: bool,
}

/// What a tenant's touched leads are scored from, read in the scoring transaction.
pub(super) struct Inputs {
    pub(super) leads: HashMap<String, LeadRow>,
    /// The leads' companies, as the engine reads them.
    pub(super) companies: HashMap<String, Company>,
    /// Stored scores by (lead, model).
    pub(super) stored: HashMap<(String, String), StoredScore>,
}

impl Inputs {
    async fn load(txn: &ScorerTxn, tenant: &str, ids: &[String]) -> kelvin_store::Result<Self> {
        let leads: HashMap<String, _> =
            txn.leads(tenant, ids).await?.into_iter().map(|l| (l.id.clone(), l)).collect();
        let company_ids: Vec<String> = {
            let set: BTreeSet<String> =
                leads.values().filter_map(|l| l.company_id.clone()).collect();
            set.into_iter().collect()
        };
        let companies: HashMap<String, Company> = txn
            .companies(tenant, &company_ids)
            .await?
            .iter()
            .map(|c| (c.id.clone(), engine_company(c)))
            .collect();
        let stored: HashMap<(String, String), StoredScore> = txn
            .scores(tenant, ids)
            .await?
            .into_iter()
            .map(|s| ((s.lead_id.clone(), s.model_id.clone()), s))
            .collect();
        Ok(Self { leads, companies, stored })
    }
}

/// What the transaction writes once every tenant's leads are scored.
#[derive(Default)]
struct Staged {
    rows: Vec<StoredScore>,
    changes: Vec<NewChange>,
    /// Companies whose score must follow their leads': (tenant, company).
    follow_up: BTreeSet<(String, String)>,
}

/// One lead as it is scored.
struct Subject<'a> {
    lead_id: &'a str,
    row: &'a LeadRow,
    lead: Lead,
    company: Option<&'a Company>,
}

/// Scoring one tenant's leads at one instant.
struct Scoring<'a> {
    tenant: &'a str,
    /// The tenant's cache namespace, for the write-through.
    ns: &'a Namespace,
    now: i64,
    /// How far ahead `next_check` looks for a band change.
    horizon_hours: i64,
}

impl Worker {
    /// Scores the touched leads under every active model of their tenant and stages the
    /// writes in `txn`.
    pub(super) async fn score_leads(
        &self,
        txn: &ScorerTxn,
        touches: BTreeMap<(String, String), Touch>,
        now: i64,
    ) -> kelvin_store::Result<AfterCommit> {
        let mut after = AfterCommit::default();
        let mut staged = Staged::default();
        for (tenant, touched) in by_tenant(touches) {
            self.score_tenant(txn, &tenant, touched, now, &mut staged, &mut after).await?;
        }
        write_staged(txn, staged, now, &mut after).await?;
        Ok(after)
    }

    /// One tenant's touched leads: read, rebuild or absorb, score, stage.
    async fn score_tenant(
        &self,
        txn: &ScorerTxn,
        tenant: &str,
        touched: Vec<(String, Touch)>,
        now: i64,
        staged: &mut Staged,
        after: &mut AfterCommit,
    ) -> kelvin_store::Result<()> {
        let models = self.registry.models(tenant);
        let Some(ns) = self.registry.namespace(tenant).filter(|_| !models.is_empty()) else {
            // Nothing to score with; the first activation rescores every lead.
            return Ok(());
        };
        let ids: Vec<String> = touched.iter().map(|(l, _)| l.clone()).collect();
        let inputs = Inputs::load(txn, tenant, &ids).await?;
        let mut rebuilds = Rebuilds::load(txn, tenant, models, &touched, &inputs.stored).await?;
        let scoring = Scoring {
            tenant,
            ns: &ns,
            now,
            horizon_hours: i64::try_from(self.settings().horizon_days).unwrap_or(400) * 24,
        };
        let mut absorbed: HashMap<String, HashSet<i64>> = HashMap::new();
        for (lead_id, touch) in touched {
            let Some(row) = inputs.leads.get(&lead_id) else {
                continue; // erased meanwhile
            };
            let subject = Subject {
                lead_id: &lead_id,
                row,
                lead: engine_lead(row),
                company: row.company_id.as_ref().and_then(|c| inputs.companies.get(c)),
            };
            let full = rebuilds.take(&lead_id);
            if let Some(seqs) = full.as_deref().and_then(|all| rebuild::absorbed_seqs(all, &touch))
            {
                absorbed.insert(lead_id.clone(), seqs);
            }
            for m in models {
                let old = inputs.stored.get(&(lead_id.clone(), m.model_id.clone()));
                let state = next_state(m, &subject, full.as_deref(), old, &touch);
                let cache_write = scoring.stage(&subject, m, old, state, touch.cause, staged);
                after.cache_writes.push(cache_write);
            }
        }
        rebuild::consume_absorbed(txn, tenant, &absorbed, after).await
    }
}

/// The touches grouped by tenant, each tenant's leads in id order.
fn by_tenant(touches: BTreeMap<(String, String), Touch>) -> BTreeMap<String, Vec<(String, Touch)>> {
    let mut by_tenant: BTreeMap<String, Vec<(String, Touch)>> = BTreeMap::new();
    for ((tenant, lead), touch) in touches {
        by_tenant.entry(tenant).or_default().push((lead, touch));
    }
    by_tenant
}

/// The lead's state under `m` once this batch is applied, and the number of events in it:
/// rebuilt from `full` (its whole stored history) when it is rebuilt, else the stored state
/// with the batch's events absorbed, else (no stored score) built from the batch's events.
fn next_state(
    m: &ActiveModel,
    subject: &Subject<'_>,
    full: Option<&[StoredEvent]>,
    old: Option<&StoredScore>,
    touch: &Touch,
) -> (LeadState, i64) {
    let (lead, company) = (&subject.lead, subject.company);
    match (full, old) {
        (Some(all), _) => {
            let events: Vec<_> = all.iter().map(engine_event).collect();
            let s = LeadState::from_events_of(&m.compiled, lead, company, &events);
            (s, all.len() as i64)
        }
        (_, Some(o)) => {
            let mut s = LeadState::from_bytes(&o.state).unwrap_or_default();
            for e in &touch.events {
                s.absorb_of(&m.compiled, lead, company, &engine_event(e));
            }
            (s, o.event_count + touch.events.len() as i64)
        }
        (_, None) => {
            let events: Vec<_> = touch.events.iter().map(engine_event).collect();
            let s = LeadState::from_events_of(&m.compiled, lead, company, &events);
            (s, events.len() as i64)
        }
    }
}

impl Scoring<'_> {
    /// Scores `subject` under `m` from its up-to-date `state` and stages its stored score, its
    /// change (when the total, band, grade or version moved) and its company's follow-up.
    /// Returns the score's cache write-through.
    fn stage(
        &self,
        subject: &Subject<'_>,
        m: &ActiveModel,
        old: Option<&StoredScore>,
        (mut state, count): (LeadState, i64),
        cause: Option<ChangeCause>,
        staged: &mut Staged,
    ) -> (Namespace, String, Vec<u8>) {
        let (lead, company, now) = (&subject.lead, subject.company, self.now);
        state.prune(&m.compiled, now);
        state.shrink_to_fit();
        let score = state.score(&m.compiled, lead, company, now);
        let next_check =
            state.next_band_change(&m.compiled, lead, company, now, self.horizon_hours);
        let grade = score.grade.clone().unwrap_or_default();
        let action = score.action.clone().unwrap_or_default();
        let changed = old.is_none_or(|o| {
            o.total != score.total.0
                || o.band != score.band
                || o.grade != grade
                || o.model_version != m.version
        });
        let company_changed = old.is_none_or(|o| o.company_id != subject.row.company_id);
        if let Some(c) = &subject.row.company_id
            && (changed || company_changed)
        {
            staged.follow_up.insert((self.tenant.to_owned(), c.clone()));
        }
        let row = StoredScore {
            tenant_id: self.tenant.to_owned(),
            model_id: m.model_id.clone(),
            lead_id: subject.lead_id.to_owned(),
            company_id: subject.row.company_id.clone(),
            model_version: m.version,
            fit: score.fit.0,
            engagement: score.engagement.0,
            total: score.total.0,
            band: score.band.clone(),
            grade,
            action,
            disqualification_rule: score
                .disqualified
                .as_ref()
                .map(|d| d.rule_id.clone())
                .unwrap_or_default(),
            disqualification: score.disqualified.map(|d| d.reason).unwrap_or_default(),
            state: state.to_bytes(),
            event_count: count,
            as_of_ms: now,
            next_check_ms: next_check,
            update_time_ms: if changed { now } else { old.map_or(now, |o| o.update_time_ms) },
        };
        if changed {
            staged.changes.push(change(&row, old, cause));
        }
        let cache_write = cache_entry(self.ns.clone(), &row);
        staged.rows.push(row);
        cache_write
    }
}

/// The change from `old` to the new `row`: a rescore when the version moved, else for the
/// touch's cause (events by default).
fn change(row: &StoredScore, old: Option<&StoredScore>, cause: Option<ChangeCause>) -> NewChange {
    let cause = if old.is_some_and(|o| o.model_version != row.model_version) {
        ChangeCause::Rescore
    } else {
        cause.unwrap_or(ChangeCause::Events)
    };
    NewChange {
        tenant_id: row.tenant_id.clone(),
        lead_id: row.lead_id.clone(),
        model_id: row.model_id.clone(),
        model_version: row.model_version,
        previous_band: old.map(|o| o.band.clone()).unwrap_or_default(),
        band: row.band.clone(),
        previous_grade: old.map(|o| o.grade.clone()).unwrap_or_default(),
        grade: row.grade.clone(),
        action: row.action.clone(),
        previous_total: old.map_or(0, |o| o.total),
        total: row.total,
        cause,
        time_ms: row.as_of_ms,
    }
}

/// Writes what every tenant staged: the scores, the changes (numbered per tenant; local
/// streams wake at the new heads after the commit) and the companies' follow-up work.
async fn write_staged(
    txn: &ScorerTxn,
    staged: Staged,
    now: i64,
    after: &mut AfterCommit,
) -> kelvin_store::Result<()> {
    after.scored = staged.rows.len();
    after.changes = staged.changes.len();
    txn.put_scores(staged.rows).await?;
    for c in txn.append_changes(staged.changes).await? {
        let head = after.heads.entry(c.tenant_id).or_default();
        *head = (*head).max(c.change_no);
    }
    let work: Vec<NewWork> = staged
        .follow_up
        .into_iter()
        .map(|(tenant_id, company)| NewWork {
            tenant_id,
            kind: WorkKind::Company,
            subject_id: company,
            event_seq: None,
            trace_parent: None,
        })
        .collect();
    txn.enqueue(work, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(version: i64, total: i64, band: &str) -> StoredScore {
        StoredScore {
            tenant_id: "acme".into(),
            model_id: "default".into(),
            lead_id: "lead".into(),
            company_id: None,
            model_version: version,
            fit: total,
            engagement: 0,
            total,
            band: band.into(),
            grade: String::new(),
            action: String::new(),
            disqualification_rule: String::new(),
            disqualification: String::new(),
            state: Vec::new(),
            event_count: 0,
            as_of_ms: 1_000,
            next_check_ms: None,
            update_time_ms: 1_000,
        }
    }

    /// A change is a rescore when the version moved, whatever touched the lead; otherwise it
    /// has the touch's cause (events when none is known), and it carries the previous score.
    #[test]
    fn a_change_says_why_and_what_it_was() {
        let old = row(1, 10_000, "cold");
        let rescored = change(&row(2, 50_000, "hot"), Some(&old), Some(ChangeCause::Time));
        assert_eq!(rescored.cause, ChangeCause::Rescore);
        assert_eq!((rescored.previous_band.as_str(), rescored.band.as_str()), ("cold", "hot"));
        assert_eq!(
            (rescored.previous_total, rescored.total, rescored.time_ms),
            (10_000, 50_000, 1_000)
        );
        let timed = change(&row(1, 5_000, "cold"), Some(&old), Some(ChangeCause::Time));
        assert_eq!(timed.cause, ChangeCause::Time);
        let first = change(&row(1, 5_000, "cold"), None, None);
        assert_eq!(
            (first.cause, first.previous_total, first.previous_band.as_str()),
            (ChangeCause::Events, 0, "")
        );
    }
}
