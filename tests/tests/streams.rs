//! WatchScoreChanges at scale (issue 14): idle streams cost the store nothing, streams are
//! limited per tenant and per API key, a stream follows changes committed by another replica
//! exactly once and in order, and a revoked key's stream ends.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // tests build the timestamps a server checks from the wall clock (clippy.toml)

use std::sync::Arc;
use std::time::Duration;

use kelvin_integration_tests::json::{b2b_spec, to_struct};
use kelvin_integration_tests::{TestApp, authed, eventually, fixtures, spawn_app_with};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::ingest_service_client::IngestServiceClient;
use kelvin_proto::v1::scoring_service_client::ScoringServiceClient;
use kelvin_server::{Application, Runtime};
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;

const T: &str = "acme-fr";
const WAIT: Duration = Duration::from_secs(20);

type Changes = tonic::Streaming<pb::WatchScoreChangesResponse>;

fn scoring(app: &TestApp) -> ScoringServiceClient<Channel> {
    ScoringServiceClient::new(app.channel.clone())
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn open(
    app: &TestApp,
    token: &str,
    tenant: &str,
    after: i64,
) -> Result<Changes, tonic::Status> {
    scoring(app)
        .watch_score_changes(authed(
            token,
            pb::WatchScoreChangesRequest {
                tenant_id: tenant.into(),
                after_cursor: after,
                ..Default::default()
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn setup(change: impl FnOnce(&mut kelvin_config::Config)) -> TestApp {
    let app = spawn_app_with(change).await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", T).await;
    app
}

async fn send(app: &TestApp, kind: &str, from: usize, n: usize) {
    let events = (from..from + n)
        .map(|i| pb::EventInput {
            event_id: format!("e{i}"),
            lead_id: format!("lead-{}", i % 4),
            r#type: kind.into(),
            time: Some(prost_types::Timestamp { seconds: now_s() - 60, nanos: 0 }),
            properties: Some(to_struct(json!({"url": "/"}))),
        })
        .collect();
    let reply = IngestServiceClient::new(app.channel.clone())
        .ingest_events(authed(
            &app.admin_token,
            pb::IngestEventsRequest { tenant_id: T.into(), events },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted as usize, n);
}

async fn wait_idle(app: &TestApp) {
    eventually(WAIT, "the scoring queue to drain", || async {
        (app.runtime.store.pending_scoring_work().await.unwrap() == 0).then_some(())
    })
    .await;
}

async fn head(app: &TestApp) -> i64 {
    app.runtime.store.change_heads(&[T.to_owned()]).await.unwrap().get(T).copied().unwrap_or(0)
}

/// The cursors of the next `n` changes of `stream`.
async fn take(stream: &mut Changes, n: usize) -> Vec<i64> {
    let mut out = Vec::new();
    while out.len() < n {
        let next = tokio::time::timeout(WAIT, stream.message()).await.expect("a change in time");
        out.push(next.unwrap().unwrap().change.unwrap().cursor);
    }
    out
}

/// Issue 14: each idle stream used to read the store every 200 ms (1,000 idle streams took
/// most of two cores). Statements over the same wait, with 1 and with 41 idle streams open,
/// must not grow with the number of streams (they did by about ten per stream before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_do_not_read_the_store() {
    // No worker: its polls would blur the count; the store work left is the health probe and
    // the watcher's one shared poll.
    let app = setup(|c| c.scoring.worker = false).await;
    let mut streams = vec![open(&app, &app.admin_token, T, 0).await.unwrap()];
    let window = Duration::from_secs(2);
    let statements_over_window = || async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = app.runtime.store.statements();
        tokio::time::sleep(window).await;
        app.runtime.store.statements() - before
    };
    let one = statements_over_window().await;
    for _ in 0..40 {
        streams.push(open(&app, &app.admin_token, T, 0).await.unwrap());
    }
    let many = statements_over_window().await;
    assert!(many < one + 20, "{many} statements with 41 idle streams, {one} with one");
    // They are still streams: nothing was sent, none ended.
    for s in &mut streams {
        assert!(tokio::time::timeout(Duration::from_millis(10), s.message()).await.is_err());
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_the_tenant_or_key_limit_are_refused_at_once_and_freed_on_close() {
    let app = setup(|c| {
        c.scoring.max_streams_per_tenant = 3;
        c.scoring.max_streams_per_key = 2;
    })
    .await;
    fixtures::tenant(&app, "acme", "acme-be").await;
    let (a, _) = fixtures::token(&app, "acme", T, pb::Role::Reader).await;
    let (b, _) = fixtures::token(&app, "acme", T, pb::Role::Reader).await;
    let (c, _) = fixtures::token(&app, "acme", "acme-be", pb::Role::Reader).await;

    let mut a_streams =
        vec![open(&app, &a, T, 0).await.unwrap(), open(&app, &a, T, 0).await.unwrap()];
    let err = open(&app, &a, T, 0).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("scoring.max_streams_per_key"), "{}", err.message());
    let _b1 = open(&app, &b, T, 0).await.unwrap();
    let err = open(&app, &b, T, 0).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("scoring.max_streams_per_tenant"), "{}", err.message());
    // Another tenant is not affected.
    let _c1 = open(&app, &c, "acme-be", 0).await.unwrap();

    // A client going away frees its place (the server notices the closed stream).
    drop(a_streams.pop());
    let _b2 = eventually(WAIT, "a freed stream slot", || async {
        match open(&app, &b, T, 0).await {
            Ok(s) => Some(s),
            Err(e) if e.code() == Code::ResourceExhausted => None,
            Err(e) => panic!("{e:?}"),
        }
    })
    .await;
    let err = open(&app, &a, T, 0).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "the tenant is full again");
    app.stop().await;
}

/// A second replica on the same store and cache, whose worker scores everything: its commits
/// reach the first one's streams only through the store.
async fn second_replica(
    app: &TestApp,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let mut config = app.runtime.config.clone();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.scoring.worker = true;
    let runtime = Arc::new(Runtime::start(config).await.unwrap());
    let server = Application::build(runtime, kelvin::ALL_SERVICES).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run_until_stopped(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_gets_every_change_of_another_replica_once_in_order() {
    let app = setup(|c| c.scoring.worker = false).await;
    let (stop, task) = second_replica(&app).await;
    fixtures::publish(app.channel.clone(), &app.admin_token, T, "default", b2b_spec()).await;
    let mut stream = open(&app, &app.admin_token, T, -1).await.unwrap();
    let mut seen = Vec::new();
    // Kinds whose points are not capped yet: every event of every round changes a score.
    for (round, kind) in ["email_click", "content_download", "email_open"].iter().enumerate() {
        for call in 0..4 {
            send(&app, kind, round * 100 + call * 5, 5).await;
        }
        wait_idle(&app).await;
        let head = head(&app).await;
        assert!(head > *seen.last().unwrap_or(&0), "round {round} changed scores");
        seen.extend(take(&mut stream, (head - seen.last().unwrap_or(&0)) as usize).await);
        // Nothing more, until the next round (the stream sleeps in between).
        assert!(tokio::time::timeout(Duration::from_millis(500), stream.message()).await.is_err());
    }
    let head = head(&app).await;
    assert_eq!(seen, (1..=head).collect::<Vec<_>>(), "every change once, in order");
    let _ = stop.send(());
    task.await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_keys_stream_ends_unauthenticated() {
    let app = setup(|_| {}).await;
    let (reader, id) = fixtures::token(&app, "acme", T, pb::Role::Reader).await;
    let mut stream = open(&app, &reader, T, 0).await.unwrap();
    let mut kept = open(&app, &app.admin_token, T, 0).await.unwrap();
    app.tenants()
        .revoke_api_key(authed(&app.admin_token, pb::RevokeApiKeyRequest { api_key_id: id }))
        .await
        .unwrap();
    let end = tokio::time::timeout(WAIT, stream.message()).await.expect("the stream ends");
    assert_eq!(end.unwrap_err().code(), Code::Unauthenticated);
    // Another key's stream on the same tenant goes on.
    assert!(tokio::time::timeout(Duration::from_millis(200), kept.message()).await.is_err());
    app.stop().await;
}

/// The 5 s re-check used to treat a store error as "still valid" (`unwrap_or(true)`), so a key
/// revoked during a store outage kept streaming. It fails closed now: the stream ends with
/// UNAVAILABLE and the client resumes from its cursor once the store answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_when_its_key_cannot_be_rechecked() {
    let app = setup(|_| {}).await;
    let (reader, _) = fixtures::token(&app, "acme", T, pb::Role::Reader).await;
    let mut stream = open(&app, &reader, T, 0).await.unwrap();
    // A real store failure, limited to the key lookup: the keys' table is out of the way.
    app.runtime
        .store
        .execute_unprepared("ALTER TABLE api_keys RENAME TO api_keys_away")
        .await
        .unwrap();
    let end = tokio::time::timeout(WAIT, stream.message()).await.expect("the stream ends");
    let status = end.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("after_cursor"), "{}", status.message());
    app.runtime
        .store
        .execute_unprepared("ALTER TABLE api_keys_away RENAME TO api_keys")
        .await
        .unwrap();
    app.stop().await;
}
