//! SimulateScore: a spec (given or stored) scored against a lead (given inline, or stored with
//! its company and events), within `limits.max_simulation_work`, on the bounded pool.

use kelvin_proto::v1 as pb;
use kelvin_server::{ApiError, ApiResult, At, CallContext};

use super::ModelApi;
use super::spec::{check_spec, rule_count};
use crate::convert::{self, struct_json};

impl ModelApi {
    /// SimulateScore, start to end (nothing is stored).
    pub(super) async fn simulate(
        &self,
        ctx: CallContext,
        req: pb::SimulateScoreRequest,
    ) -> ApiResult<pb::SimulateScoreResponse> {
        let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
        let (spec, version) = match req.spec {
            Some(spec) => {
                let json = struct_json(spec);
                self.check_size("spec", &json)?;
                (json, 0)
            }
            None => {
                let model_id = kelvin_store::required(&req.model_id).at("model_id")?;
                if req.version < 0 {
                    return Err(ApiError::invalid("version", "must not be negative"));
                }
                let stored = access.get_model_version(&scope, model_id, req.version).await?;
                (stored.spec, stored.version)
            }
        };
        // A lead named by id alone (no attributes, no events given) is the stored lead, with
        // its company and every stored event.
        let stored_lead = match &req.lead {
            Some(l)
                if !l.lead_id.is_empty()
                    && l.attributes.is_none()
                    && l.enriched.is_none()
                    && req.company.is_none()
                    && req.events.is_empty() =>
            {
                Some(access.export_lead(&scope, &l.lead_id).await?)
            }
            _ => None,
        };
        let (lead, company, events) = match stored_lead {
            Some(export) => {
                let lead = kelvin_scores::engine_lead(&export.lead);
                let company = export.company.as_ref().map(kelvin_scores::engine_company);
                let events = export.events.iter().map(kelvin_scores::engine_event).collect();
                (lead, company, events)
            }
            None => inline_lead(req.lead, req.company, req.events)?,
        };
        // Bounded work: refused before any evaluation, whatever the spec or lead.
        let work = rule_count(&spec).saturating_mul(events.len().max(1) as u64);
        if work > self.limits.max_simulation_work {
            return Err(ApiError::invalid(
                "events",
                format!(
                    "{} event(s) × {} rule(s) is more than the {} a simulation may evaluate",
                    events.len(),
                    rule_count(&spec),
                    self.limits.max_simulation_work
                ),
            ));
        }
        let as_of = match req.as_of {
            Some(t) => convert::millis("as_of", &t)?,
            None => self.runtime.clock.now_ms(),
        };
        let score = self
            .heavy
            .run(&ctx, &req.tenant_id, move || {
                let checked = check_spec("spec", spec)?;
                Ok(checked.compiled.score(&lead, company.as_ref(), &events, as_of))
            })
            .await?;
        Ok(pb::SimulateScoreResponse {
            score: Some(kelvin_scores::score_pb(score, version, as_of)),
        })
    }
}

/// The lead, company and events given inline in a SimulateScore request.
fn inline_lead(
    lead: Option<pb::LeadInput>,
    company: Option<pb::CompanyInput>,
    inputs: Vec<pb::EventInput>,
) -> Result<
    (kelvin_engine::Lead, Option<kelvin_engine::Company>, Vec<kelvin_engine::Event>),
    ApiError,
> {
    // Enriched attributes first, explicit ones over them: the lead's own word wins.
    let input = lead.unwrap_or_default();
    let mut attributes = input.enriched.map(kelvin_proto::convert::struct_json).unwrap_or_default();
    attributes.extend(input.attributes.map(kelvin_proto::convert::struct_json).unwrap_or_default());
    let lead = kelvin_engine::Lead { attributes: attributes.into_iter().collect() };
    let company = company.map(|c| kelvin_engine::Company {
        attributes: c
            .attributes
            .map(kelvin_proto::convert::struct_json)
            .unwrap_or_default()
            .into_iter()
            .collect(),
    });
    let mut events = Vec::with_capacity(inputs.len());
    for (i, e) in inputs.into_iter().enumerate() {
        let time =
            e.time.ok_or_else(|| ApiError::invalid(format!("events[{i}].time"), "is required"))?;
        if e.r#type.is_empty() {
            return Err(ApiError::invalid(format!("events[{i}].type"), "is required"));
        }
        events.push(kelvin_engine::Event {
            id: if e.event_id.is_empty() { format!("event-{i}") } else { e.event_id },
            kind: e.r#type,
            time_ms: convert::millis(&format!("events[{i}].time"), &time)?,
            properties: e
                .properties
                .map(kelvin_proto::convert::struct_json)
                .unwrap_or_default()
                .into_iter()
                .collect(),
        });
    }
    Ok((lead, company, events))
}
