//! `kelvinctl scores`: current scores, rankings, explanations, history, band counts, dead
//! letters and rescore progress.

use anyhow::{Context as _, Result, bail};
use kelvin_proto::convert::timestamp;
use kelvin_proto::v1 as pb;
use serde_json::{Value, json};

use super::Kelvin;
use crate::ScoreCmd;
use crate::output::{self, Format};
use crate::resources as res;

const SCORE_COLUMNS: &[output::Column] = &[
    ("LEAD", "lead_id"),
    ("TOTAL", "total"),
    ("BAND", "band"),
    ("GRADE", "grade"),
    ("ACTION", "action"),
    ("FIT", "fit"),
    ("ENGAGEMENT", "engagement"),
    ("VERSION", "model_version"),
    ("UPDATED", "update_time"),
];

const SCORE_CHANGE_COLUMNS: &[output::Column] = &[
    ("CURSOR", "cursor"),
    ("TIME", "time"),
    ("LEAD", "lead_id"),
    ("FROM", "previous_band"),
    ("TO", "band"),
    ("GRADE", "grade"),
    ("TOTAL", "total"),
    ("CAUSE", "cause"),
    ("ACTION", "action"),
];

pub(super) async fn scores_cmd(k: &Kelvin, cmd: ScoreCmd, format: Format) -> Result<()> {
    match cmd {
        ScoreCmd::Get { tenant, model, leads } => {
            let reply = k
                .scoring()
                .batch_get_scores(k.req(pb::BatchGetScoresRequest {
                    tenant_id: tenant,
                    lead_ids: leads,
                    model_id: model,
                })?)
                .await?
                .into_inner();
            for missing in &reply.missing_lead_ids {
                eprintln!("no score for lead `{missing}` (unknown, or not scored yet)");
            }
            let rows: Vec<Value> = reply.scores.into_iter().map(res::lead_score).collect();
            output::print(format, &Value::Array(rows), SCORE_COLUMNS)?;
            if !reply.missing_lead_ids.is_empty() {
                bail!("{} lead(s) without a score", reply.missing_lead_ids.len());
            }
            Ok(())
        }
        ScoreCmd::Top { tenant, model, band, min, limit } => {
            let request = pb::ListLeadsRequest {
                tenant_id: tenant,
                model_id: model,
                band,
                min_score: min,
                ..Default::default()
            };
            let scores = k
                .list_all(Some(limit as usize), |page_token, page_size| {
                    let request = pb::ListLeadsRequest { page_size, page_token, ..request.clone() };
                    async move {
                        let r = k.scoring().list_leads(k.req(request)?).await?.into_inner();
                        Ok((r.scores, r.next_page_token))
                    }
                })
                .await?;
            let rows: Vec<Value> = scores.into_iter().map(res::lead_score).collect();
            output::print(format, &Value::Array(rows), SCORE_COLUMNS)
        }
        ScoreCmd::Explain { tenant, model, lead } => {
            let reply = k
                .scoring()
                .explain_score(k.req(pb::ExplainScoreRequest {
                    tenant_id: tenant,
                    lead_id: lead,
                    model_id: model,
                })?)
                .await?
                .into_inner()
                .score
                .unwrap_or_default();
            let contributions = reply.score.clone().unwrap_or_default().contributions;
            let mut value = res::lead_score(reply);
            let lines: Vec<Value> = contributions.into_iter().map(res::contribution).collect();
            if format == Format::Table {
                let grade = value["grade"].as_str().unwrap_or_default();
                let action = value["action"].as_str().unwrap_or_default();
                println!(
                    "lead {}: total {} ({}{}{}), fit {}, engagement {}, model version {}, as of {}",
                    value["lead_id"].as_str().unwrap_or_default(),
                    value["total"],
                    value["band"].as_str().unwrap_or_default(),
                    if grade.is_empty() { String::new() } else { format!(", grade {grade}") },
                    if action.is_empty() { String::new() } else { format!(": {action}") },
                    value["fit"],
                    value["engagement"],
                    value["model_version"],
                    value["as_of"].as_str().unwrap_or_default(),
                );
                let reason = value["disqualification"].as_str().unwrap_or_default();
                if !reason.is_empty() {
                    let rule = value["disqualification_rule"].as_str().unwrap_or_default();
                    println!("disqualified by exclusion `{rule}`: {reason}");
                }
                return output::print(
                    format,
                    &Value::Array(lines),
                    &[
                        ("RULE", "rule_id"),
                        ("KIND", "kind"),
                        ("POINTS", "points"),
                        ("EVENTS", "events"),
                        ("DECAY / CAP", "detail"),
                    ],
                );
            }
            value["contributions"] = Value::Array(lines);
            output::print(format, &value, &[])
        }
        ScoreCmd::History { tenant, model, all, lead } => {
            let request = pb::GetScoreHistoryRequest {
                tenant_id: tenant,
                lead_id: lead,
                model_id: model,
                include_score_changes: all,
                ..Default::default()
            };
            let changes = k
                .list_all(None, |page_token, page_size| {
                    let request =
                        pb::GetScoreHistoryRequest { page_size, page_token, ..request.clone() };
                    async move {
                        let r = k.scoring().get_score_history(k.req(request)?).await?.into_inner();
                        Ok((r.changes, r.next_page_token))
                    }
                })
                .await?;
            let rows: Vec<Value> = changes.into_iter().map(res::score_change).collect();
            output::print(format, &Value::Array(rows), SCORE_CHANGE_COLUMNS)
        }
        ScoreCmd::Bands { tenant, model, at } => {
            let as_of = match at {
                Some(text) => {
                    let t = time::OffsetDateTime::parse(
                        &text,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .with_context(|| format!("--at {text:?} is not an RFC 3339 time"))?;
                    Some(timestamp(i64::try_from(t.unix_timestamp_nanos() / 1_000_000)?))
                }
                None => None,
            };
            let reply = k
                .scoring()
                .get_band_counts(k.req(pb::GetBandCountsRequest {
                    tenant_id: tenant,
                    model_id: model,
                    as_of,
                })?)
                .await?
                .into_inner();
            let total = reply.total_leads.max(1) as f64;
            let rows: Vec<Value> = reply
                .counts
                .into_iter()
                .map(|c| {
                    json!({
                        "band": c.band, "grade": c.grade, "leads": c.leads,
                        "share": format!("{:.1} %", 100.0 * c.leads as f64 / total),
                    })
                })
                .collect();
            output::print(
                format,
                &Value::Array(rows),
                &[("BAND", "band"), ("GRADE", "grade"), ("LEADS", "leads"), ("SHARE", "share")],
            )
        }
        ScoreCmd::DeadLetters { tenant } => {
            let dead_letters = k
                .list_all(None, |page_token, page_size| {
                    let request = pb::ListDeadLettersRequest {
                        tenant_id: tenant.clone(),
                        page_size,
                        page_token,
                    };
                    async move {
                        let r = k.scoring().list_dead_letters(k.req(request)?).await?.into_inner();
                        Ok((r.dead_letters, r.next_page_token))
                    }
                })
                .await?;
            let rows: Vec<Value> = dead_letters.into_iter().map(res::dead_letter).collect();
            output::print(
                format,
                &Value::Array(rows),
                &[
                    ("ID", "dead_letter_id"),
                    ("KIND", "kind"),
                    ("SUBJECT", "subject_id"),
                    ("ATTEMPTS", "attempts"),
                    ("DEAD SINCE", "dead_time"),
                    ("ERROR", "error"),
                ],
            )
        }
        ScoreCmd::Retry { tenant, ids } => {
            let reply = k
                .scoring()
                .retry_dead_letters(
                    k.req(pb::RetryDeadLettersRequest { tenant_id: tenant, dead_letter_ids: ids })?,
                )
                .await?
                .into_inner();
            output::print(format, &json!({ "retried": reply.retried }), &[("RETRIED", "retried")])
        }
        ScoreCmd::Rescore { tenant, model } => {
            let reply = k
                .scoring()
                .get_rescore_status(
                    k.req(pb::GetRescoreStatusRequest { tenant_id: tenant, model_id: model })?,
                )
                .await?
                .into_inner();
            output::print(
                format,
                &res::rescore_status(reply),
                &[
                    ("MODEL", "model_id"),
                    ("VERSION", "model_version"),
                    ("RESCORED", "rescored_leads"),
                    ("LEADS", "total_leads"),
                    ("DONE", "done"),
                ],
            )
        }
    }
}
