//! Reading scores on behalf of a principal: a lead's or company's score, rankings, a lead's
//! history, the tenant's change stream and rescore progress. Always through a [`TenantScope`].

use sea_orm::sea_query::Condition;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::entity::{
    change_counter, company_score, lead, lead_score, model, model_activation, model_version,
    score_change,
};
use crate::rows::{
    ScoreChangeRecord, StoredCompanyScore, StoredScore, change_row, company_score_row, score_row,
};
use crate::{Access, Error, Page, Result, TenantScope};

/// Which leads a ranking lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeadFilter {
    pub band: Option<String>,
    /// Minimum total, in milli-points.
    pub min_total: Option<i64>,
    pub changed_since_ms: Option<i64>,
}

/// How far rescoring a model's leads after an activation has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RescoreStatus {
    pub model_id: String,
    /// The active version (0: none published yet).
    pub version: i64,
    pub activate_time_ms: Option<i64>,
    pub total_leads: u64,
    /// Leads whose stored score is from the active version.
    pub rescored_leads: u64,
}

/// Leads of one (band, grade) cell: band, grade, count.
type BandCount = (String, String, i64);

/// Splits a ranking page key `total:id`.
fn rank_key(key: &str) -> Result<(i64, String)> {
    let (total, id) = key.split_once(':').ok_or(Error::MalformedPageToken)?;
    let total = total.parse().map_err(|_| Error::MalformedPageToken)?;
    Ok((total, id.to_owned()))
}

impl Access<'_> {
    /// A lead's stored score under `model_id`.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.lead_score", otel.kind = "client"))]
    pub async fn lead_score(
        &self,
        scope: &TenantScope,
        model_id: &str,
        lead_id: &str,
    ) -> Result<StoredScore> {
        let stored = lead_score::Entity::find_by_id((
            scope.tenant_id().to_owned(),
            model_id.to_owned(),
            lead_id.to_owned(),
        ))
        .one(self.db)
        .await?
        .map(score_row);
        match stored {
            Some(s) => Ok(s),
            // Say what is missing: the model, or this lead's score under it.
            None => {
                self.known_model(scope, model_id).await?;
                Err(Error::not_found(
                    "score of lead",
                    format!("{lead_id}` under model `{model_id}"),
                ))
            }
        }
    }

    /// NOT_FOUND naming the model when the tenant has no model `model_id`.
    async fn known_model(&self, scope: &TenantScope, model_id: &str) -> Result<model::Model> {
        model::Entity::find_by_id((scope.tenant_id().to_owned(), model_id.to_owned()))
            .one(self.db)
            .await?
            .ok_or_else(|| Error::not_found("model", model_id))
    }

    /// The band labels of a model's active version (and `disqualified`), to check a filter.
    async fn band_labels(&self, scope: &TenantScope, m: &model::Model) -> Result<Vec<String>> {
        let mut labels = vec!["disqualified".to_owned()];
        let Some(v) = model_version::Entity::find_by_id((
            scope.tenant_id().to_owned(),
            m.id.clone(),
            m.active_version,
        ))
        .one(self.db)
        .await?
        else {
            return Ok(labels);
        };
        let spec: serde_json::Value = serde_json::from_str(&v.spec_json).unwrap_or_default();
        let bands = &spec["bands"];
        if let Some(ts) = bands["thresholds"].as_array() {
            labels.extend(ts.iter().filter_map(|t| t["label"].as_str().map(str::to_owned)));
        }
        if let Some(cells) = bands["matrix"]["cells"].as_object() {
            labels.extend(cells.values().filter_map(|c| c.as_str().map(str::to_owned)));
        }
        labels.sort();
        labels.dedup();
        Ok(labels)
    }

    /// Stored scores of several leads under `model_id` (leads without one are left out).
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.lead_scores", otel.kind = "client"))]
    pub async fn lead_scores(
        &self,
        scope: &TenantScope,
        model_id: &str,
        lead_ids: &[String],
    ) -> Result<Vec<StoredScore>> {
        let mut out = Vec::with_capacity(lead_ids.len());
        for chunk in lead_ids.chunks(500) {
            let rows = lead_score::Entity::find()
                .filter(lead_score::Column::TenantId.eq(scope.tenant_id()))
                .filter(lead_score::Column::ModelId.eq(model_id))
                .filter(lead_score::Column::LeadId.is_in(chunk.iter().cloned()))
                .all(self.db)
                .await?;
            out.extend(rows.into_iter().map(score_row));
        }
        Ok(out)
    }

    /// Leads ranked by total (highest first, then by id), filtered; a keyset page.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.list_lead_scores", otel.kind = "client"))]
    pub async fn list_lead_scores(
        &self,
        scope: &TenantScope,
        model_id: &str,
        filter: &LeadFilter,
        page: &Page,
    ) -> Result<(Vec<StoredScore>, String)> {
        use lead_score::Column as C;
        let m = self.known_model(scope, model_id).await?;
        let mut query = lead_score::Entity::find()
            .filter(C::TenantId.eq(scope.tenant_id()))
            .filter(C::ModelId.eq(model_id));
        if let Some(band) = &filter.band {
            // A band the model does not have is a mistake (`Hot` for `hot`), not an empty page.
            let labels = self.band_labels(scope, &m).await?;
            if !labels.contains(band) {
                return Err(Error::UnknownBand {
                    model_id: model_id.to_owned(),
                    band: band.clone(),
                    bands: labels.join(", "),
                });
            }
            query = query.filter(C::Band.eq(band.as_str()));
        }
        if let Some(min) = filter.min_total {
            query = query.filter(C::Total.gte(min));
        }
        if let Some(since) = filter.changed_since_ms {
            query = query.filter(C::UpdateTime.gte(since));
        }
        if let Some(after) = &page.after {
            let (total, id) = rank_key(after)?;
            query = query.filter(
                Condition::any()
                    .add(C::Total.lt(total))
                    .add(Condition::all().add(C::Total.eq(total)).add(C::LeadId.gt(id))),
            );
        }
        let rows = query
            .order_by_desc(C::Total)
            .order_by_asc(C::LeadId)
            .limit(page.fetch_limit())
            .all(self.db)
            .await?
            .into_iter()
            .map(score_row)
            .collect();
        Ok(page.finish(rows, |s: &StoredScore| format!("{}:{}", s.total, s.lead_id)))
    }

    /// A company's stored score under `model_id`.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.company_score", otel.kind = "client"))]
    pub async fn company_score(
        &self,
        scope: &TenantScope,
        model_id: &str,
        company_id: &str,
    ) -> Result<StoredCompanyScore> {
        company_score::Entity::find_by_id((
            scope.tenant_id().to_owned(),
            model_id.to_owned(),
            company_id.to_owned(),
        ))
        .one(self.db)
        .await?
        .map(company_score_row)
        .ok_or_else(|| {
            Error::not_found("score of company", format!("{company_id}` under model `{model_id}"))
        })
    }

    /// Companies ranked by total (highest first, then by id); a keyset page.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.list_company_scores", otel.kind = "client"))]
    pub async fn list_company_scores(
        &self,
        scope: &TenantScope,
        model_id: &str,
        band: Option<&str>,
        min_total: Option<i64>,
        page: &Page,
    ) -> Result<(Vec<StoredCompanyScore>, String)> {
        use company_score::Column as C;
        let mut query = company_score::Entity::find()
            .filter(C::TenantId.eq(scope.tenant_id()))
            .filter(C::ModelId.eq(model_id));
        if let Some(band) = band {
            query = query.filter(C::Band.eq(band));
        }
        if let Some(min) = min_total {
            query = query.filter(C::Total.gte(min));
        }
        if let Some(after) = &page.after {
            let (total, id) = rank_key(after)?;
            query = query.filter(
                Condition::any()
                    .add(C::Total.lt(total))
                    .add(Condition::all().add(C::Total.eq(total)).add(C::CompanyId.gt(id))),
            );
        }
        let rows = query
            .order_by_desc(C::Total)
            .order_by_asc(C::CompanyId)
            .limit(page.fetch_limit())
            .all(self.db)
            .await?
            .into_iter()
            .map(company_score_row)
            .collect();
        Ok(page.finish(rows, |s: &StoredCompanyScore| format!("{}:{}", s.total, s.company_id)))
    }

    /// A lead's changes under `model_id`, newest first: band transitions only unless
    /// `every_change`.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.score_history", otel.kind = "client"))]
    pub async fn score_history(
        &self,
        scope: &TenantScope,
        model_id: &str,
        lead_id: &str,
        every_change: bool,
        page: &Page,
    ) -> Result<(Vec<ScoreChangeRecord>, String)> {
        use score_change::Column as C;
        let mut query = score_change::Entity::find()
            .filter(C::TenantId.eq(scope.tenant_id()))
            .filter(C::LeadId.eq(lead_id))
            .filter(C::ModelId.eq(model_id));
        if !every_change {
            query = query.filter(C::BandChanged.eq(true));
        }
        if let Some(after) = &page.after {
            let no: i64 = after.parse().map_err(|_| Error::MalformedPageToken)?;
            query = query.filter(C::ChangeNo.lt(no));
        }
        let rows = query
            .order_by_desc(C::ChangeNo)
            .limit(page.fetch_limit())
            .all(self.db)
            .await?
            .into_iter()
            .map(change_row)
            .collect();
        Ok(page.finish(rows, |c: &ScoreChangeRecord| c.change_no.to_string()))
    }

    /// Changes of the tenant after `after`, in order, at most `limit`.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.changes_after", otel.kind = "client"))]
    pub async fn changes_after(
        &self,
        scope: &TenantScope,
        after: i64,
        model_id: Option<&str>,
        band_changes_only: bool,
        limit: u64,
    ) -> Result<Vec<ScoreChangeRecord>> {
        use score_change::Column as C;
        let mut query = score_change::Entity::find()
            .filter(C::TenantId.eq(scope.tenant_id()))
            .filter(C::ChangeNo.gt(after));
        if let Some(m) = model_id {
            query = query.filter(C::ModelId.eq(m));
        }
        if band_changes_only {
            query = query.filter(C::BandChanged.eq(true));
        }
        Ok(query
            .order_by_asc(C::ChangeNo)
            .limit(limit)
            .all(self.db)
            .await?
            .into_iter()
            .map(change_row)
            .collect())
    }

    /// The number of the tenant's latest change (0 before the first).
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.change_head", otel.kind = "client"))]
    pub async fn change_head(&self, scope: &TenantScope) -> Result<i64> {
        Ok(change_counter::Entity::find_by_id(scope.tenant_id().to_owned())
            .one(self.db)
            .await?
            .map_or(0, |c| c.last))
    }

    /// How many of the tenant's leads are scored with the model's active version.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.rescore_status", otel.kind = "client"))]
    pub async fn rescore_status(
        &self,
        scope: &TenantScope,
        model_id: &str,
    ) -> Result<RescoreStatus> {
        let m = model::Entity::find_by_id((scope.tenant_id().to_owned(), model_id.to_owned()))
            .one(self.db)
            .await?
            .ok_or_else(|| Error::not_found("model", model_id))?;
        let total_leads = lead::Entity::find()
            .filter(lead::Column::TenantId.eq(scope.tenant_id()))
            .count(self.db)
            .await?;
        let rescored_leads = if m.active_version == 0 {
            0
        } else {
            lead_score::Entity::find()
                .filter(lead_score::Column::TenantId.eq(scope.tenant_id()))
                .filter(lead_score::Column::ModelId.eq(model_id))
                .filter(lead_score::Column::ModelVersion.eq(m.active_version))
                .count(self.db)
                .await?
        };
        Ok(RescoreStatus {
            model_id: m.id,
            version: m.active_version,
            activate_time_ms: activation_time(
                self.db,
                scope.tenant_id(),
                model_id,
                m.active_version,
            )
            .await?,
            total_leads,
            rescored_leads,
        })
    }

    /// Leads per (band, grade) under a model: now (its stored scores, read through the
    /// `(tenant, model, band, grade)` index), or as of `at_ms` (each lead's last score change at
    /// or before then: leads erased since are not counted). Returns the active version too.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.band_counts", otel.kind = "client"))]
    pub async fn band_counts(
        &self,
        scope: &TenantScope,
        model_id: &str,
        at_ms: Option<i64>,
    ) -> Result<(i64, Vec<BandCount>)> {
        let m = model::Entity::find_by_id((scope.tenant_id().to_owned(), model_id.to_owned()))
            .one(self.db)
            .await?
            .ok_or_else(|| Error::not_found("model", model_id))?;
        let rows: Vec<(String, String, i64)> = match at_ms {
            None => {
                lead_score::Entity::find()
                    .filter(lead_score::Column::TenantId.eq(scope.tenant_id()))
                    .filter(lead_score::Column::ModelId.eq(model_id))
                    .select_only()
                    .column(lead_score::Column::Band)
                    .column(lead_score::Column::Grade)
                    .column_as(lead_score::Column::LeadId.count(), "leads")
                    .group_by(lead_score::Column::Band)
                    .group_by(lead_score::Column::Grade)
                    .into_tuple()
                    .all(self.db)
                    .await?
            }
            Some(at) => {
                use sea_orm::{ConnectionTrait, Statement};
                let backend = self.db.get_database_backend();
                let p = |i: usize| {
                    if backend == sea_orm::DbBackend::Postgres {
                        format!("${i}")
                    } else {
                        "?".into()
                    }
                };
                let text = format!(
                    "SELECT c.band AS band, c.grade AS grade, COUNT(*) AS leads FROM score_changes c \
                     JOIN (SELECT lead_id, MAX(change_no) AS last FROM score_changes \
                           WHERE tenant_id = {} AND model_id = {} AND time <= {} GROUP BY lead_id) l \
                       ON c.lead_id = l.lead_id AND c.change_no = l.last \
                     WHERE c.tenant_id = {} AND c.model_id = {} GROUP BY c.band, c.grade",
                    p(1),
                    p(2),
                    p(3),
                    p(4),
                    p(5)
                );
                let values = vec![
                    scope.tenant_id().into(),
                    model_id.into(),
                    at.into(),
                    scope.tenant_id().into(),
                    model_id.into(),
                ];
                self.db
                    .query_all_raw(Statement::from_sql_and_values(backend, text, values))
                    .await?
                    .iter()
                    .map(|r| {
                        Ok((
                            r.try_get::<String>("", "band")?,
                            r.try_get::<String>("", "grade")?,
                            r.try_get::<i64>("", "leads")?,
                        ))
                    })
                    .collect::<Result<_>>()?
            }
        };
        Ok((m.active_version, rows))
    }
}

/// The activation time of a tenant's model version (for rescore status).
async fn activation_time<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    model_id: &str,
    version: i64,
) -> Result<Option<i64>> {
    Ok(model_activation::Entity::find()
        .filter(model_activation::Column::TenantId.eq(tenant_id))
        .filter(model_activation::Column::ModelId.eq(model_id))
        .filter(model_activation::Column::Version.eq(version))
        .order_by_desc(model_activation::Column::Id)
        .one(db)
        .await?
        .map(|a| a.time))
}
