//! Nothing lost, nothing counted twice, with processes killed (`SIGKILL`) in the middle of a
//! 100k-event ingest.
//!
//! PostgreSQL + Redis: the ingest binary and two scoring binaries run as separate processes;
//! the scoring replicas are killed several times (the survivor takes their partitions over, a
//! restarted one takes its share back) and the ingest process once. SQLite: the embedded
//! `kelvin up` process, which ingests and scores, is killed several times.
//!
//! Afterwards: every acknowledged event is stored; every stored event is absorbed exactly once
//! into the scores (the per-lead event counts add up to the events stored); every lead's stored
//! score equals a full recomputation from its events; and flushing Redis changes no score read
//! while the cache refills.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // tests build the timestamps a server checks from the wall clock (clippy.toml)

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kelvin_integration_tests::json::{b2b_spec, to_struct};
use kelvin_integration_tests::process::{Running, binary, free_port};
use kelvin_integration_tests::{
    Backend, TestApp, authed, backend, eventually, fixtures, spawn_app_with,
};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::ingest_service_client::IngestServiceClient;
use kelvin_proto::v1::scoring_service_client::ScoringServiceClient;
use serde_json::json;
use tonic::transport::Channel;

const T: &str = "chaos";
const EVENTS: usize = 100_000;
const LEADS: usize = 1_000;
const BATCH: usize = 500;

/// The processes under test and how to (re)start them.
struct Cluster {
    url: String,
    key_pem: String,
    data_dir: std::path::PathBuf,
    redis_prefix: String,
    ingest_port: u16,
    scoring_ports: Vec<u16>,
    ingest: Option<Running>,
    scoring: Vec<Option<Running>>,
}

impl Cluster {
    fn command(&self, binary_name: &str, port: u16) -> Command {
        let mut command = Command::new(binary(binary_name));
        if binary_name == "kelvin" {
            command.arg("up").arg("--data-dir").arg(&self.data_dir);
        } else {
            command.arg("serve");
        }
        command
            .args(["--database-url", &self.url, "--listen", &format!("127.0.0.1:{port}")])
            .env_remove("KELVIN_CONFIG")
            .env("KELVIN_AUTH__SIGNING_KEY", &self.key_pem)
            .env("KELVIN_INGEST__EVENTS_PER_SECOND", "100000000")
            .env("KELVIN_CACHE__KEY_PREFIX", &self.redis_prefix);
        if backend() == Backend::Postgres {
            command.env("KELVIN_CACHE__REDIS_URL", std::env::var("KELVIN_TEST_REDIS_URL").unwrap());
        }
        command
    }

    fn start_ingest(&mut self) {
        let name = if backend() == Backend::Postgres { "kelvin-ingest" } else { "kelvin" };
        self.ingest = Some(Running::spawn(&mut self.command(name, self.ingest_port)));
    }

    fn start_scoring(&mut self, i: usize) {
        if backend() == Backend::Postgres {
            let port = self.scoring_ports[i];
            self.scoring[i] = Some(Running::spawn(&mut self.command("kelvin-scoring", port)));
        }
    }

    /// SIGKILL, then wait for the process to be gone.
    fn kill(process: &mut Option<Running>) {
        if let Some(mut p) = process.take() {
            p.child.kill().unwrap();
            p.child.wait().unwrap();
        }
    }

    /// The endpoint serving ScoringService.
    fn scoring_endpoint(&self) -> u16 {
        if backend() == Backend::Postgres { self.scoring_ports[0] } else { self.ingest_port }
    }
}

fn channel(port: u16) -> Channel {
    Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect_lazy()
}

fn batches() -> Vec<Vec<pb::EventInput>> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64;
    let kinds = ["page_view", "email_open", "email_click", "content_download", "form_submit"];
    let urls = ["/pricing", "/blog/post", "/case-studies/acme", "/docs"];
    (0..EVENTS)
        .map(|i| pb::EventInput {
            event_id: format!("ev-{i}"),
            lead_id: format!("lead-{}", i % LEADS),
            r#type: kinds[(i / 7) % kinds.len()].into(),
            // Spread over 60 days back, so decay and windows matter.
            time: Some(prost_types::Timestamp {
                seconds: now - ((i * 7919) % (60 * 86_400)) as i64,
                nanos: 0,
            }),
            properties: Some(to_struct(json!({ "url": urls[i % urls.len()] }))),
        })
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(<[_]>::to_vec)
        .collect()
}

async fn setup() -> (TestApp, Cluster) {
    // The in-process server: bootstraps the shared database and the admin token, runs no
    // scoring worker, and serves the model service to the test.
    let app = spawn_app_with(|c| c.scoring.worker = false).await;
    fixtures::org(&app, "agency").await;
    fixtures::tenant(&app, "agency", T).await;
    fixtures::publish(app.channel.clone(), &app.admin_token, T, "default", b2b_spec()).await;
    let key_pem = std::fs::read_to_string(app.runtime.config.signing_key_path()).unwrap();
    let cluster = Cluster {
        url: app.runtime.config.effective_database_url(),
        key_pem,
        data_dir: app.runtime.config.data_dir.clone(),
        redis_prefix: format!("kelvin-chaos-{}", uuid::Uuid::new_v4().simple()),
        ingest_port: free_port(),
        scoring_ports: vec![free_port(), free_port()],
        ingest: None,
        scoring: vec![None, None],
    };
    (app, cluster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_processes_lose_no_acknowledged_event_and_count_none_twice() {
    let (app, mut cluster) = setup().await;
    cluster.start_ingest();
    cluster.start_scoring(0);
    cluster.start_scoring(1);
    let token = app.admin_token.clone();

    // Two senders, each retrying a batch until it is acknowledged.
    let acked = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let all = batches();
    let mut senders = Vec::new();
    for part in 0..2 {
        let mine: Vec<_> = all.iter().skip(part).step_by(2).cloned().collect();
        let (acked, failures, token) = (acked.clone(), failures.clone(), token.clone());
        let port = cluster.ingest_port;
        senders.push(tokio::spawn(async move {
            let mut client = IngestServiceClient::new(channel(port));
            for batch in mine {
                loop {
                    let request =
                        pb::IngestEventsRequest { tenant_id: T.into(), events: batch.clone() };
                    match client.ingest_events(authed(&token, request)).await {
                        Ok(reply) => {
                            let results = reply.into_inner().results;
                            assert!(
                                results.iter().all(|r| r.status != pb::ItemStatus::Rejected as i32)
                            );
                            acked.fetch_add(results.len(), Ordering::Relaxed);
                            break;
                        }
                        Err(_) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
        }));
    }

    // Chaos while they send: SIGKILL a scoring replica (or `kelvin up`) every ~1.5 s and bring
    // it back; once, the ingest process too.
    let mut kills = 0;
    let mut ingest_killed = false;
    while senders.iter().any(|s| !s.is_finished()) {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        if backend() == Backend::Postgres {
            let i = kills % 2;
            Cluster::kill(&mut cluster.scoring[i]);
            kills += 1;
            if !ingest_killed && acked.load(Ordering::Relaxed) > EVENTS / 3 {
                Cluster::kill(&mut cluster.ingest);
                ingest_killed = true;
                tokio::time::sleep(Duration::from_millis(300)).await;
                cluster.start_ingest();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            cluster.start_scoring(i);
        } else if kills < 4 {
            Cluster::kill(&mut cluster.ingest);
            kills += 1;
            ingest_killed = true;
            tokio::time::sleep(Duration::from_millis(300)).await;
            cluster.start_ingest();
        }
    }
    for s in senders {
        s.await.unwrap();
    }
    assert!(kills >= 3, "the run was too short to kill anything several times ({kills})");
    assert!(ingest_killed);
    eprintln!(
        "chaos: {} kills, {} failed calls retried, {} events acknowledged",
        kills,
        failures.load(Ordering::Relaxed),
        acked.load(Ordering::Relaxed)
    );
    assert!(acked.load(Ordering::Relaxed) >= EVENTS);

    // Every acknowledged event is stored, once.
    let store = &app.runtime.store;
    let principal = kelvin_auth::Verifier::new("kelvin", "kelvin")
        .with_key(&app.runtime.signer)
        .verify(&app.admin_token)
        .await
        .unwrap()
        .principal;
    let access = store.access(&principal);
    let scope = access.tenant_scope(T).await.unwrap();
    assert_eq!(access.count_events(&scope).await.unwrap(), EVENTS as u64);

    // The scorers catch up, and counted every stored event exactly once.
    eventually(Duration::from_secs(300), "the scoring queue to drain", || async {
        (store.pending_scoring_work().await.unwrap() == 0).then_some(())
    })
    .await;
    assert_eq!(store.scored_event_count(T, "default").await.unwrap(), EVENTS as i64);

    // Every stored score equals a full recomputation from the lead's events (ExplainScore
    // recomputes from the stored events at the stored score's time).
    let mut scoring = ScoringServiceClient::new(channel(cluster.scoring_endpoint()));
    let leads: Vec<String> = (0..LEADS).map(|i| format!("lead-{i}")).collect();
    let mut before = Vec::new();
    for chunk in leads.chunks(500) {
        let reply = scoring
            .batch_get_scores(authed(
                &token,
                pb::BatchGetScoresRequest {
                    tenant_id: T.into(),
                    lead_ids: chunk.to_vec(),
                    model_id: String::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(reply.missing_lead_ids.is_empty(), "{:?}", reply.missing_lead_ids);
        before.extend(reply.scores);
    }
    for s in &before {
        let explained = scoring
            .explain_score(authed(
                &token,
                pb::ExplainScoreRequest {
                    tenant_id: T.into(),
                    lead_id: s.lead_id.clone(),
                    model_id: String::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .score
            .unwrap()
            .score
            .unwrap();
        let stored = s.score.as_ref().unwrap();
        assert_eq!(
            (explained.total, &explained.band, explained.fit, explained.engagement),
            (stored.total, &stored.band, stored.fit, stored.engagement),
            "{}",
            s.lead_id
        );
    }

    // Flushing the cache changes no score, and reads refill it.
    if backend() == Backend::Postgres {
        let client = redis::Client::open(std::env::var("KELVIN_TEST_REDIS_URL").unwrap()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let pattern = format!("{}:*", cluster.redis_prefix);
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(&pattern).query_async(&mut conn).await.unwrap();
        assert!(keys.len() >= LEADS, "scores written through: {}", keys.len());
        redis::cmd("FLUSHDB").exec_async(&mut conn).await.unwrap();
        let mut after = Vec::new();
        for l in &leads {
            let reply = scoring
                .get_score(authed(
                    &token,
                    pb::GetScoreRequest {
                        tenant_id: T.into(),
                        lead_id: l.clone(),
                        model_id: String::new(),
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            after.push(reply.score.unwrap());
        }
        assert_eq!(after, before, "every score read after the flush is unchanged");
        let refilled: Vec<String> =
            redis::cmd("KEYS").arg(&pattern).query_async(&mut conn).await.unwrap();
        assert_eq!(refilled.len(), LEADS, "the cache refilled");
    }
    let distinct: BTreeSet<_> = before.iter().map(|s| s.lead_id.clone()).collect();
    assert_eq!(distinct.len(), LEADS);
    app.stop().await;
}
