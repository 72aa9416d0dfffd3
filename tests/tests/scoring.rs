//! ScoringService and the scoring worker in one process (SQLite, or PostgreSQL + Redis): scores
//! follow events and attributes, explanations add up and match a full recomputation, rankings,
//! company scores, history, the resumable change stream, decay crossing a band with no event,
//! rescoring after a publish, cache flushes and erasure.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // tests build the timestamps a server checks from the wall clock (clippy.toml)

use std::collections::BTreeMap;
use std::time::Duration;

use kelvin_cache::Namespace;
use kelvin_integration_tests::json::{b2b_spec, to_struct};
use kelvin_integration_tests::{TestApp, authed, eventually, fixtures, spawn_app};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::ingest_service_client::IngestServiceClient;
use kelvin_proto::v1::scoring_service_client::ScoringServiceClient;
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;

const T: &str = "acme-fr";
const WAIT: Duration = Duration::from_secs(20);

fn scoring(app: &TestApp) -> ScoringServiceClient<Channel> {
    ScoringServiceClient::new(app.channel.clone())
}

fn ingest(app: &TestApp) -> IngestServiceClient<Channel> {
    IngestServiceClient::new(app.channel.clone())
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn event(id: &str, lead: &str, kind: &str, url: &str, seconds: i64) -> pb::EventInput {
    pb::EventInput {
        event_id: id.into(),
        lead_id: lead.into(),
        r#type: kind.into(),
        time: Some(prost_types::Timestamp { seconds, nanos: 0 }),
        properties: Some(to_struct(json!({ "url": url }))),
    }
}

/// The cache namespace of tenant `T` (its incarnation is its creation time).
async fn tenant_ns(app: &TestApp) -> Namespace {
    let t = app
        .tenants()
        .get_tenant(authed(&app.admin_token, pb::GetTenantRequest { tenant_id: T.into() }))
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap()
        .create_time
        .unwrap();
    Namespace::tenant(T, t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

async fn setup() -> TestApp {
    let app = spawn_app().await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", T).await;
    app
}

async fn send(app: &TestApp, events: Vec<pb::EventInput>) {
    let reply = ingest(app)
        .ingest_events(authed(
            &app.admin_token,
            pb::IngestEventsRequest { tenant_id: T.into(), events },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.results.iter().all(|r| r.status == pb::ItemStatus::Accepted as i32));
}

async fn upsert_lead(app: &TestApp, lead: &str, company: &str, attributes: serde_json::Value) {
    ingest(app)
        .upsert_leads(authed(
            &app.admin_token,
            pb::UpsertLeadsRequest {
                tenant_id: T.into(),
                leads: vec![pb::LeadInput {
                    lead_id: lead.into(),
                    attributes: Some(to_struct(attributes)),
                    company_id: company.into(),
                    enriched: None,
                }],
            },
        ))
        .await
        .unwrap();
}

async fn score(app: &TestApp, lead: &str) -> Option<pb::LeadScore> {
    match scoring(app)
        .get_score(authed(
            &app.admin_token,
            pb::GetScoreRequest {
                tenant_id: T.into(),
                lead_id: lead.into(),
                model_id: String::new(),
            },
        ))
        .await
    {
        Ok(reply) => reply.into_inner().score,
        Err(status) if status.code() == Code::NotFound => None,
        Err(status) => panic!("GetScore: {status:?}"),
    }
}

/// Waits until `lead`'s score satisfies `check`.
async fn score_where(
    app: &TestApp,
    lead: &str,
    what: &str,
    check: impl Fn(&pb::Score) -> bool,
) -> pb::LeadScore {
    eventually(WAIT, what, || async {
        score(app, lead).await.filter(|s| s.score.as_ref().is_some_and(&check))
    })
    .await
}

async fn explain(app: &TestApp, lead: &str) -> pb::LeadScore {
    scoring(app)
        .explain_score(authed(
            &app.admin_token,
            pb::ExplainScoreRequest {
                tenant_id: T.into(),
                lead_id: lead.into(),
                model_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .score
        .unwrap()
}

async fn wait_idle(app: &TestApp) {
    eventually(WAIT, "the scoring queue to drain", || async {
        (app.runtime.store.pending_scoring_work().await.unwrap() == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_follow_events_and_attributes_and_explanations_add_up() {
    let app = setup().await;
    fixtures::publish(app.channel.clone(), &app.admin_token, T, "default", b2b_spec()).await;
    let now = now_s();
    upsert_lead(
        &app,
        "ana",
        "globex",
        json!({"country": "FR", "company_size": 120, "job_title": "Head of Sales"}),
    )
    .await;
    // Fit 10 + 20 + 15 = 45: warm.
    let first = score_where(&app, "ana", "ana's fit score", |s| s.fit == 45.0).await;
    assert_eq!(first.score.as_ref().unwrap().band, "warm");
    assert_eq!(first.company_id, "globex");

    send(
        &app,
        vec![
            event("e1", "ana", "page_view", "https://acme.example/pricing", now - 3600),
            event("e2", "ana", "form_submit", "https://acme.example/demo", now - 1800),
            event("e3", "bob", "page_view", "https://acme.example/blog", now - 60),
        ],
    )
    .await;
    let hot = score_where(&app, "ana", "ana to turn hot", |s| s.band == "hot").await;
    let total = hot.score.as_ref().unwrap().total;
    assert!(total >= 70.0, "{total}");
    score_where(&app, "bob", "bob's first score", |_| true).await;

    // The explanation is a full recomputation from the stored events at the stored time: the
    // same total, contributions adding up to it, naming their events.
    let explained = explain(&app, "ana").await;
    let s = explained.score.unwrap();
    assert_eq!(s.total, total);
    let sum: f64 = s.contributions.iter().map(|c| c.points).sum();
    assert!((sum - s.total).abs() < 1e-6, "contributions {sum} vs total {}", s.total);
    let form = s.contributions.iter().find(|c| c.rule_id == "form_submit").unwrap();
    assert_eq!(form.event_ids, ["e2"]);

    // A change of attributes moves the score with no event: a student loses 50 points.
    upsert_lead(&app, "ana", "", json!({"job_title": "student"})).await;
    let cooled = score_where(&app, "ana", "ana's student penalty", |s| s.total < total).await;
    assert_eq!(cooled.company_id, "globex", "an empty company id leaves the company unchanged");

    // BatchGetScores keeps request order and lists the missing.
    let batch = scoring(&app)
        .batch_get_scores(authed(
            &app.admin_token,
            pb::BatchGetScoresRequest {
                tenant_id: T.into(),
                lead_ids: vec!["bob".into(), "nobody".into(), "ana".into()],
                model_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = batch.scores.iter().map(|s| s.lead_id.as_str()).collect();
    assert_eq!(ids, ["bob", "ana"]);
    assert_eq!(batch.missing_lead_ids, ["nobody"]);

    // Bad input names its field.
    let err = scoring(&app)
        .get_score(authed(
            &app.admin_token,
            pb::GetScoreRequest { tenant_id: T.into(), ..Default::default() },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("lead_id"), "{}", err.message());
    let err = scoring(&app)
        .batch_get_scores(authed(
            &app.admin_token,
            pb::BatchGetScoresRequest {
                tenant_id: T.into(),
                lead_ids: vec!["x".into(); 1001],
                model_id: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert!(err.message().contains("lead_ids"), "{}", err.message());
    let err = scoring(&app)
        .get_score(authed(
            &app.admin_token,
            pb::GetScoreRequest {
                tenant_id: T.into(),
                lead_id: "ana".into(),
                model_id: "nope".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rankings_companies_and_history() {
    let app = setup().await;
    fixtures::publish(app.channel.clone(), &app.admin_token, T, "default", b2b_spec()).await;
    ingest(&app)
        .upsert_companies(authed(
            &app.admin_token,
            pb::UpsertCompaniesRequest {
                tenant_id: T.into(),
                companies: vec![pb::CompanyInput {
                    company_id: "globex".into(),
                    attributes: Some(to_struct(json!({"industry": "software", "employees": 200}))),
                }],
            },
        ))
        .await
        .unwrap();
    let now = now_s();
    // Leads with 0..=9 pricing views (10 points each, capped at 30) and one form each for
    // the first five: a spread of totals.
    for i in 0..10 {
        upsert_lead(&app, &format!("lead-{i}"), "globex", json!({"country": "FR"})).await;
        let mut events: Vec<_> = (0..i)
            .map(|k| {
                event(
                    &format!("v-{i}-{k}"),
                    &format!("lead-{i}"),
                    "page_view",
                    "/pricing",
                    now - 100 * k,
                )
            })
            .collect();
        if i < 5 {
            events.push(event(
                &format!("f-{i}"),
                &format!("lead-{i}"),
                "form_submit",
                "/demo",
                now,
            ));
        }
        if !events.is_empty() {
            send(&app, events).await;
        }
    }
    wait_idle(&app).await;

    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = scoring(&app)
            .list_leads(authed(
                &app.admin_token,
                pb::ListLeadsRequest {
                    tenant_id: T.into(),
                    page_size: 3,
                    page_token: token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        all.extend(page.scores);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(all.len(), 10);
    let totals: Vec<f64> = all.iter().map(|s| s.score.as_ref().unwrap().total).collect();
    assert!(totals.windows(2).all(|w| w[0] >= w[1]), "ranked: {totals:?}");
    // Filters: band and minimum score.
    let warm = scoring(&app)
        .list_leads(authed(
            &app.admin_token,
            pb::ListLeadsRequest {
                tenant_id: T.into(),
                band: "warm".into(),
                min_score: Some(35.0),
                page_size: 100,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .scores;
    let expected = all
        .iter()
        .filter(|s| {
            let s = s.score.as_ref().unwrap();
            s.band == "warm" && s.total >= 35.0
        })
        .count();
    assert!(expected > 0);
    assert_eq!(warm.len(), expected);
    let err = scoring(&app)
        .list_leads(authed(
            &app.admin_token,
            pb::ListLeadsRequest {
                tenant_id: T.into(),
                page_token: "garbage".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert!(err.message().contains("page_token"), "{}", err.message());

    // The company: its own fit (10 + 20) plus its best lead (max), bounded at 100.
    let best = totals[0];
    let company = eventually(WAIT, "the company score", || async {
        let reply = scoring(&app)
            .get_company_score(authed(
                &app.admin_token,
                pb::GetCompanyScoreRequest {
                    tenant_id: T.into(),
                    company_id: "globex".into(),
                    model_id: String::new(),
                },
            ))
            .await
            .ok()?
            .into_inner()
            .score?;
        (reply.lead_count == 10 && reply.leads == best).then_some(reply)
    })
    .await;
    assert_eq!(company.fit, 30.0);
    assert_eq!(company.total, (30.0 + best).min(100.0));
    let companies = scoring(&app)
        .list_companies(authed(
            &app.admin_token,
            pb::ListCompaniesRequest { tenant_id: T.into(), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner()
        .scores;
    assert_eq!(companies.len(), 1);

    // History: lead-4 went cold/warm → hot (fit 10 + 30 pricing + 15 burst + 20 form...).
    let history = scoring(&app)
        .get_score_history(authed(
            &app.admin_token,
            pb::GetScoreHistoryRequest {
                tenant_id: T.into(),
                lead_id: "lead-4".into(),
                include_score_changes: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .changes;
    assert!(!history.is_empty());
    assert!(history.windows(2).all(|w| w[0].cursor > w[1].cursor), "newest first");
    assert_eq!(history.last().unwrap().previous_band, "", "the first score has no previous band");
    assert_eq!(
        history[0].total,
        all.iter().find(|s| s.lead_id == "lead-4").unwrap().score.as_ref().unwrap().total
    );
    app.stop().await;
}

/// Collects changes from a WatchScoreChanges stream until `n` arrived.
async fn take_changes(
    stream: &mut tonic::Streaming<pb::WatchScoreChangesResponse>,
    n: usize,
) -> Vec<pb::ScoreChange> {
    let mut out = Vec::new();
    while out.len() < n {
        let next = tokio::time::timeout(WAIT, stream.message()).await.expect("a change in time");
        out.push(next.unwrap().unwrap().change.unwrap());
    }
    out
}

async fn watch(app: &TestApp, after: i64) -> tonic::Streaming<pb::WatchScoreChangesResponse> {
    scoring(app)
        .watch_score_changes(authed(
            &app.admin_token,
            pb::WatchScoreChangesRequest {
                tenant_id: T.into(),
                after_cursor: after,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_resuming_from_its_cursor_gets_every_change_exactly_once() {
    let app = setup().await;
    fixtures::publish(app.channel.clone(), &app.admin_token, T, "default", b2b_spec()).await;
    let now = now_s();
    let mut stream = watch(&app, -1).await;
    // Round one: 20 events over 5 leads, one call each.
    for i in 0..20 {
        send(
            &app,
            vec![event(&format!("a{i}"), &format!("l{}", i % 5), "email_click", "/", now - i)],
        )
        .await;
    }
    wait_idle(&app).await;
    let mut seen = Vec::new();
    // Read a few, then "crash" (drop the stream) with the cursor of the last one read.
    seen.extend(take_changes(&mut stream, 3).await);
    drop(stream);
    // More changes while the consumer is away.
    for i in 0..20 {
        send(
            &app,
            vec![event(&format!("b{i}"), &format!("l{}", i % 5), "email_open", "/", now - i)],
        )
        .await;
    }
    wait_idle(&app).await;
    // The stream's head: everything from the start, until it goes quiet.
    let mut everything = watch(&app, -1).await;
    let mut head = 0;
    while let Ok(Some(Ok(m))) =
        tokio::time::timeout(Duration::from_millis(700), everything.message())
            .await
            .map(|r| r.transpose())
    {
        head = m.change.unwrap().cursor;
    }
    drop(everything);
    // Each round changed every lead's score at least once (the worker may apply several events
    // of a lead in one transaction, which is one change).
    assert!(head >= 10, "every lead's score changed in each round: {head}");
    let cursor = seen.last().unwrap().cursor;
    let mut resumed = watch(&app, cursor).await;
    seen.extend(take_changes(&mut resumed, (head - cursor) as usize).await);
    // Nothing more arrives.
    assert!(tokio::time::timeout(Duration::from_millis(500), resumed.message()).await.is_err());

    let cursors: Vec<i64> = seen.iter().map(|c| c.cursor).collect();
    assert_eq!(cursors, (1..=head).collect::<Vec<_>>(), "every change once, in order");
    // Each lead's changes chain: a change starts where the previous one ended.
    let mut last: BTreeMap<String, f64> = BTreeMap::new();
    for c in &seen {
        if let Some(prev) = last.get(&c.lead_id) {
            assert_eq!(c.previous_total, *prev, "{c:?}");
        }
        last.insert(c.lead_id.clone(), c.total);
    }
    for (lead, total) in last {
        assert_eq!(score(&app, &lead).await.unwrap().score.unwrap().total, total);
    }
    // Bad cursors are refused by name.
    let err = scoring(&app)
        .watch_score_changes(authed(
            &app.admin_token,
            pb::WatchScoreChangesRequest {
                tenant_id: T.into(),
                after_cursor: -5,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert!(err.message().contains("after_cursor"), "{}", err.message());
    app.stop().await;
}

/// Issue 16: a disqualification named its reason only; it names its exclusion's id too, in the
/// stored score (GetScore, through the cache too) and in the explanation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disqualification_names_its_exclusion_rule() {
    let app = setup().await;
    fixtures::publish(app.channel.clone(), &app.admin_token, T, "default", b2b_spec()).await;
    upsert_lead(&app, "eve", "rivalsoft", json!({"email": "eve@rivalsoft.example"})).await;
    let stored = score_where(&app, "eve", "eve disqualified", |s| s.band == "disqualified").await;
    let stored = stored.score.unwrap();
    assert_eq!(
        (stored.disqualification_rule_id.as_str(), stored.disqualification_reason.as_str()),
        ("competitor", "email domain of a competitor")
    );
    let explained = explain(&app, "eve").await.score.unwrap();
    assert_eq!(explained.disqualification_rule_id, "competitor");
    // A lead that is not disqualified names no rule.
    upsert_lead(&app, "ana", "globex", json!({"country": "FR"})).await;
    let ana = score_where(&app, "ana", "ana's score", |s| s.fit > 0.0).await.score.unwrap();
    assert_eq!((ana.disqualification_rule_id.as_str(), ana.band.is_empty()), ("", false));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decay_crossing_a_band_threshold_notifies_with_no_new_event() {
    let app = setup().await;
    let spec = json!({
        "engagement": [
            {"id": "demo", "when": {"field": "event.type", "op": "eq", "value": "demo_request"},
             "points": 80, "decay": {"type": "expire", "duration": "48h"}}
        ],
        "bands": {"thresholds": [
            {"label": "hot", "min": 70}, {"label": "warm", "min": 30}, {"label": "cold"}
        ]}
    });
    fixtures::publish(app.channel.clone(), &app.admin_token, T, "default", spec).await;
    let mut stream = watch(&app, 0).await;
    send(&app, vec![event("d1", "carol", "demo_request", "/demo", now_s())]).await;
    let first = take_changes(&mut stream, 1).await.remove(0);
    assert_eq!((first.band.as_str(), first.cause), ("hot", pb::ChangeCause::Events as i32));

    // Three days later, with no new event, the demo request has expired: carol is cold.
    app.runtime.clock.advance(Duration::from_secs(72 * 3600));
    let change = take_changes(&mut stream, 1).await.remove(0);
    assert_eq!(change.lead_id, "carol");
    assert_eq!((change.previous_band.as_str(), change.band.as_str()), ("hot", "cold"));
    assert_eq!(change.cause, pb::ChangeCause::Time as i32);
    let now = score(&app, "carol").await.unwrap().score.unwrap();
    assert_eq!((now.band.as_str(), now.total), ("cold", 0.0));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_rescores_every_lead_in_the_background() {
    let app = setup().await;
    let v1 =
        fixtures::publish(app.channel.clone(), &app.admin_token, T, "default", b2b_spec()).await;
    let now = now_s();
    let events: Vec<_> = (0..300)
        .map(|i| {
            event(&format!("e{i}"), &format!("lead-{}", i % 150), "content_download", "/", now - i)
        })
        .collect();
    send(&app, events).await;
    wait_idle(&app).await;
    let before = score(&app, "lead-7").await.unwrap().score.unwrap();
    assert_eq!(before.model_version, v1);

    // v2 doubles the content download.
    let mut spec = b2b_spec();
    for rule in spec["engagement"].as_array_mut().unwrap() {
        if rule["id"] == "content_download" {
            rule["points"] = json!(30);
        }
    }
    let v2 = fixtures::publish(app.channel.clone(), &app.admin_token, T, "default", spec).await;
    let status = eventually(WAIT, "the rescore to finish", || async {
        let s = scoring(&app)
            .get_rescore_status(authed(
                &app.admin_token,
                pb::GetRescoreStatusRequest { tenant_id: T.into(), model_id: String::new() },
            ))
            .await
            .unwrap()
            .into_inner();
        // Reads keep working meanwhile.
        assert!(score(&app, "lead-7").await.is_some());
        s.done.then_some(s)
    })
    .await;
    assert_eq!((status.model_version, status.total_leads, status.rescored_leads), (v2, 150, 150));
    let after = score(&app, "lead-7").await.unwrap().score.unwrap();
    assert_eq!(after.model_version, v2);
    assert!(after.engagement > before.engagement);
    // The rescore shows in the history with its cause.
    let history = scoring(&app)
        .get_score_history(authed(
            &app.admin_token,
            pb::GetScoreHistoryRequest {
                tenant_id: T.into(),
                lead_id: "lead-7".into(),
                include_score_changes: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .changes;
    assert_eq!(history[0].cause, pb::ChangeCause::Rescore as i32);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_cache_changes_no_score_and_refills() {
    let app = setup().await;
    fixtures::publish(app.channel.clone(), &app.admin_token, T, "default", b2b_spec()).await;
    let now = now_s();
    let events: Vec<_> = (0..100)
        .map(|i| event(&format!("e{i}"), &format!("lead-{}", i % 25), "email_click", "/", now - i))
        .collect();
    send(&app, events).await;
    wait_idle(&app).await;
    let leads: Vec<String> = (0..25).map(|i| format!("lead-{i}")).collect();
    let mut before = Vec::new();
    for l in &leads {
        before.push(score(&app, l).await.unwrap());
    }
    let ns = tenant_ns(&app).await;
    let key = |l: &str| format!("score:7:default:{l}");
    assert!(app.runtime.cache.get(&ns, &key("lead-3")).await.unwrap().is_some(), "written through");
    // Flush: every key of this server in Redis (what FLUSHDB does to it; not FLUSHDB itself,
    // which would also wipe the keys of the tests running beside this one, erasure marks
    // included), the tenant's namespace in process.
    match std::env::var("KELVIN_TEST_REDIS_URL") {
        Ok(url) if app.runtime.cache.backend() == "redis" => {
            let client = redis::Client::open(url).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let pattern = format!("{}:*", app.runtime.config.cache.key_prefix);
            let keys: Vec<String> =
                redis::cmd("KEYS").arg(&pattern).query_async(&mut conn).await.unwrap();
            assert!(!keys.is_empty(), "{pattern}");
            redis::cmd("DEL").arg(&keys).exec_async(&mut conn).await.unwrap();
        }
        _ => {
            app.runtime.cache.clear_namespace(&ns).await.unwrap();
        }
    }
    assert!(app.runtime.cache.get(&ns, &key("lead-3")).await.unwrap().is_none());
    for (l, b) in leads.iter().zip(&before) {
        assert_eq!(&score(&app, l).await.unwrap(), b, "{l} unchanged after the flush");
        assert!(app.runtime.cache.get(&ns, &key(l)).await.unwrap().is_some(), "{l} refilled");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_leaves_nothing_of_the_lead_in_the_store_or_the_cache() {
    let app = setup().await;
    fixtures::publish(app.channel.clone(), &app.admin_token, T, "default", b2b_spec()).await;
    upsert_lead(&app, "dora", "globex", json!({"country": "FR", "email": "dora@example.com"}))
        .await;
    send(&app, vec![event("x1", "dora", "form_submit", "/demo", now_s())]).await;
    score_where(&app, "dora", "dora's score", |s| s.engagement > 0.0).await;
    wait_idle(&app).await;
    let ns = tenant_ns(&app).await;
    assert!(app.runtime.cache.get(&ns, "score:7:default:dora").await.unwrap().is_some());

    ingest(&app)
        .erase_lead(authed(
            &app.admin_token,
            pb::EraseLeadRequest { tenant_id: T.into(), lead_id: "dora".into() },
        ))
        .await
        .unwrap();
    wait_idle(&app).await;
    let footprint = app.runtime.store.lead_footprint(T, "dora").await.unwrap();
    assert!(footprint.iter().all(|(_, n)| *n == 0), "{footprint:?}");
    assert!(app.runtime.cache.get(&ns, "score:7:default:dora").await.unwrap().is_none());
    assert!(score(&app, "dora").await.is_none());
    app.stop().await;
}

/// Issue 14: EraseLead used to return before the scoring worker dropped the lead's cached
/// score, which reads served until then; a write-through of a batch committed before the
/// erasure could also land after the drop. Here the stale entry is put back after EraseLead
/// returns (as such a late write-through would): it must never be served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_lead_is_not_found_at_once_whatever_the_cache_holds() {
    let app = setup().await;
    fixtures::publish(app.channel.clone(), &app.admin_token, T, "default", b2b_spec()).await;
    send(
        &app,
        vec![
            event("y1", "erin", "form_submit", "/demo", now_s()),
            event("y2", "frank", "form_submit", "/demo", now_s()),
        ],
    )
    .await;
    score_where(&app, "erin", "erin's score", |s| s.engagement > 0.0).await;
    score_where(&app, "frank", "frank's score", |s| s.engagement > 0.0).await;
    wait_idle(&app).await;
    let ns = tenant_ns(&app).await;
    let key = "score:7:default:erin";
    let stale = app.runtime.cache.get(&ns, key).await.unwrap().expect("erin's score is cached");

    ingest(&app)
        .erase_lead(authed(
            &app.admin_token,
            pb::EraseLeadRequest { tenant_id: T.into(), lead_id: "erin".into() },
        ))
        .await
        .unwrap();
    // A write-through that lands after the reply (or before the worker's drop).
    app.runtime.cache.set(&ns, key, &stale, Some(Duration::from_secs(3600))).await.unwrap();
    assert!(score(&app, "erin").await.is_none(), "GetScore right after EraseLead");
    let batch = scoring(&app)
        .batch_get_scores(authed(
            &app.admin_token,
            pb::BatchGetScoresRequest {
                tenant_id: T.into(),
                lead_ids: vec!["erin".into(), "frank".into()],
                model_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.missing_lead_ids, ["erin"]);
    assert_eq!(batch.scores.iter().map(|s| s.lead_id.as_str()).collect::<Vec<_>>(), ["frank"]);
    // The worker's drop has happened; a late write-through after it changes nothing either.
    wait_idle(&app).await;
    app.runtime.cache.set(&ns, key, &stale, Some(Duration::from_secs(3600))).await.unwrap();
    assert!(score(&app, "erin").await.is_none(), "GetScore after a late write-through");
    // A lead created again under the same id is scored and served (from the store).
    send(&app, vec![event("y3", "erin", "webinar_attended", "/w", now_s())]).await;
    let again = score_where(&app, "erin", "erin's new score", |s| s.engagement > 0.0).await;
    assert_ne!(again.score.unwrap().total, 0.0);
    app.stop().await;
}

/// The bant-grid sample model, as JSON.
fn bant_grid() -> serde_json::Value {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/models/bant-grid.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    kelvin_engine::ModelSpec::from_yaml(&text).unwrap().to_json_value()
}

/// Issue 15: the fit × engagement grade and the band's action are part of every score: stored
/// scores (GetScore, ListLeads), explanations, and every change of the history and the stream.
#[tokio::test]
async fn grade_and_action_are_in_every_score_and_change() {
    let app = setup().await;
    fixtures::publish(app.channel.clone(), &app.admin_token, T, "default", bant_grid()).await;
    // Fit 100 (grade A) and one demo request (40 points: grade 2): A2, hot.
    upsert_lead(
        &app,
        "ada",
        "",
        json!({"budget": 60000, "decision_maker": true, "need": "urgent", "timeline_months": 2}),
    )
    .await;
    send(&app, vec![event("g1", "ada", "demo_request", "/demo", now_s() - 60)]).await;
    let stored = score_where(&app, "ada", "ada is A2", |s| s.grade == "A2").await;
    let s = stored.score.unwrap();
    assert_eq!(s.band, "hot");
    assert_eq!(s.action, "sales call within 24 business hours");
    let explained = explain(&app, "ada").await.score.unwrap();
    assert_eq!((explained.grade.as_str(), explained.action.as_str()), ("A2", s.action.as_str()));
    let listed = scoring(&app)
        .list_leads(authed(
            &app.admin_token,
            pb::ListLeadsRequest { tenant_id: T.into(), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner();
    let row = listed.scores.iter().find(|l| l.lead_id == "ada").unwrap();
    assert_eq!(row.score.as_ref().unwrap().grade, "A2");

    // The change stream says where the lead went, grade and action included.
    let mut stream = watch(&app, -1).await;
    let mut last = None;
    while let Ok(Some(Some(m))) =
        tokio::time::timeout(Duration::from_secs(2), stream.message()).await.map(|m| m.ok())
    {
        let change = m.change.unwrap();
        if change.lead_id == "ada" {
            last = Some(change);
        }
    }
    let change = last.expect("a change of ada");
    assert_eq!(change.grade, "A2");
    assert_eq!(change.band, "hot");
    assert_eq!(change.action, "sales call within 24 business hours");
    app.stop().await;
}

async fn band_counts(app: &TestApp, as_of: Option<prost_types::Timestamp>) -> Vec<(String, i64)> {
    scoring(app)
        .get_band_counts(authed(
            &app.admin_token,
            pb::GetBandCountsRequest { tenant_id: T.into(), model_id: String::new(), as_of },
        ))
        .await
        .unwrap()
        .into_inner()
        .counts
        .into_iter()
        .map(|c| (c.band, c.leads))
        .collect()
}

/// Issue 15 (seed 000: "how many leads are over 70 points now?"): leads per band now, and as of
/// a past time from the change history.
#[tokio::test]
async fn band_counts_now_and_as_of_a_past_time() {
    let app = setup().await;
    fixtures::publish(app.channel.clone(), &app.admin_token, T, "default", b2b_spec()).await;
    let now = now_s();
    // Three leads with one form submission (20 points: cold), one with three (60: warm).
    let mut events: Vec<_> = (0..3)
        .map(|i| event(&format!("f{i}"), &format!("l{i}"), "form_submit", "/", now))
        .collect();
    events
        .extend((0..3).map(|i| event(&format!("w{i}"), "warm-lead", "form_submit", "/", now - i)));
    send(&app, events).await;
    wait_idle(&app).await;
    let before = prost_types::Timestamp { seconds: now_s() + 1, nanos: 0 };
    assert_eq!(band_counts(&app, None).await, [("cold".to_owned(), 3), ("warm".to_owned(), 1)]);
    // Later, one more lead turns warm.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    send(
        &app,
        (1..3).map(|i| event(&format!("g{i}"), "l0", "form_submit", "/", now_s() - i)).collect(),
    )
    .await;
    wait_idle(&app).await;
    assert_eq!(band_counts(&app, None).await, [("cold".to_owned(), 2), ("warm".to_owned(), 2)]);
    // As of the earlier moment: as it was.
    assert_eq!(
        band_counts(&app, Some(before)).await,
        [("cold".to_owned(), 3), ("warm".to_owned(), 1)]
    );
    // A model that does not exist is NOT_FOUND, naming the model.
    let status = scoring(&app)
        .get_band_counts(authed(
            &app.admin_token,
            pb::GetBandCountsRequest { tenant_id: T.into(), model_id: "nope".into(), as_of: None },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("model"), "{}", status.message());
    app.stop().await;
}

/// Issue 15 (seed 001): an engagement rule that tests a lead attribute too. When the attribute
/// changes, the lead is rescored from all its events: past awards follow the new value.
#[tokio::test]
async fn an_attribute_change_rescores_engagement_rules_that_read_it() {
    let app = setup().await;
    let spec = json!({
        "engagement": [
            { "id": "pricing", "points": 10,
              "when": { "field": "event.url", "op": "contains", "value": "/pricing" } },
            { "id": "students_on_job_offers", "points": -10,
              "when": { "all": [
                  { "field": "event.url", "op": "contains", "value": "/jobs" },
                  { "field": "lead.student", "op": "is_true" } ] } }
        ],
        "bands": { "thresholds": [ { "label": "warm", "min": 15 }, { "label": "cold" } ] }
    });
    fixtures::publish(app.channel.clone(), &app.admin_token, T, "default", spec).await;
    upsert_lead(&app, "sam", "", json!({ "student": true })).await;
    let now = now_s();
    send(
        &app,
        vec![
            event("s1", "sam", "page_view", "/pricing", now - 30),
            event("s2", "sam", "page_view", "/pricing", now - 20),
            event("s3", "sam", "page_view", "/jobs/intern", now - 10),
        ],
    )
    .await;
    score_where(&app, "sam", "a student: 20 - 10", |s| s.total == 10.0).await;
    // No longer a student: the job offer read earlier no longer costs anything.
    upsert_lead(&app, "sam", "", json!({ "student": false })).await;
    let s = score_where(&app, "sam", "rescored: 20", |s| s.total == 20.0).await;
    assert_eq!(s.score.unwrap().band, "warm");
    let explained = explain(&app, "sam").await.score.unwrap();
    assert_eq!(explained.total, 20.0);
    assert!(explained.contributions.iter().all(|c| c.rule_id != "students_on_job_offers"));
    app.stop().await;
}

/// Issue 16 ("misleads"): a band the model does not have (`Hot` for `hot`) is INVALID_ARGUMENT
/// naming the model's bands, not an empty page; a score asked under a model that does not exist
/// says the model is missing.
#[tokio::test]
async fn unknown_bands_and_models_are_named() {
    let app = setup().await;
    fixtures::publish(app.channel.clone(), &app.admin_token, T, "default", b2b_spec()).await;
    send(&app, vec![event("u1", "lead-u", "form_submit", "/", now_s())]).await;
    score_where(&app, "lead-u", "scored", |_| true).await;
    let list = |band: &str, model: &str| {
        let mut api = scoring(&app);
        let request = authed(
            &app.admin_token,
            pb::ListLeadsRequest {
                tenant_id: T.into(),
                band: band.into(),
                model_id: model.into(),
                ..Default::default()
            },
        );
        async move { api.list_leads(request).await }
    };
    let status = list("Hot", "").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("band") && status.message().contains("hot, "),
        "{}",
        status.message()
    );
    assert!(list("cold", "").await.is_ok());
    assert!(list("disqualified", "").await.is_ok());
    let status = list("", "nope").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("model `nope`"), "{}", status.message());
    let status = scoring(&app)
        .get_score(authed(
            &app.admin_token,
            pb::GetScoreRequest {
                tenant_id: T.into(),
                lead_id: "lead-u".into(),
                model_id: "nope".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("model `nope`"), "{}", status.message());
    app.stop().await;
}
