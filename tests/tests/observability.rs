//! Observability end to end, against `kelvin-ingest` and `kelvin-scoring` processes:
//! - one event, one trace: the ingest process's call span (with its store calls) and the scoring
//!   process's span that applies the event share the caller's trace id, as received by an
//!   in-process OTLP collector, which also receives their metrics;
//! - the Prometheus `/metrics` endpoint, scraped after traffic, counts what happened.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kelvin_integration_tests::json::{b2b_spec, to_struct};
use kelvin_integration_tests::process::{Running, binary, free_port};
use kelvin_integration_tests::{
    Backend, backend, eventually, fixtures, spawn_app_with, wait_serving,
};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::ingest_service_client::IngestServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::resource::v1::Resource;
use tonic::transport::Channel;

/// (service name, span name, trace id) of every span received.
type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

#[derive(Clone, Default)]
struct Collector {
    spans: Received,
    /// (service name, metric name) of every metric received.
    metrics: Arc<Mutex<Vec<(String, String)>>>,
}

fn service_name(resource: Option<&Resource>) -> String {
    resource
        .iter()
        .flat_map(|r| r.attributes.iter())
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| match kv.value.as_ref().and_then(|v| v.value.clone()) {
            Some(Value::StringValue(s)) => Some(s),
            _ => None,
        })
        .unwrap_or_default()
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut metrics = self.metrics.lock().unwrap();
        for rm in request.into_inner().resource_metrics {
            let service = service_name(rm.resource.as_ref());
            for sm in rm.scope_metrics {
                for m in sm.metrics {
                    metrics.push((service.clone(), m.name));
                }
            }
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse { partial_success: None }))
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = service_name(rs.resource.as_ref());
            for ss in rs.scope_spans {
                for span in ss.spans {
                    spans.push((service.clone(), span.name, span.trace_id));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_events_trace_spans_its_ingestion_and_its_scoring() {
    // The collector.
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .add_service(MetricsServiceServer::new(collector.clone()))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(server);

    // Tenant and model through an in-process server (no scoring worker of its own); ingest and
    // scoring as separate processes exporting traces.
    let app = spawn_app_with(|c| c.scoring.worker = false).await;
    fixtures::org(&app, "agency").await;
    fixtures::tenant(&app, "agency", "traced").await;
    fixtures::publish(app.channel.clone(), &app.admin_token, "traced", "default", b2b_spec()).await;
    let key = std::fs::read_to_string(app.runtime.config.signing_key_path()).unwrap();
    let url = app.runtime.config.effective_database_url();
    let mut processes = Vec::new();
    let mut ports = Vec::new();
    for name in ["kelvin-ingest", "kelvin-scoring"] {
        let port = free_port();
        let mut command = Command::new(binary(name));
        command
            .args(["serve", "--database-url", &url, "--listen", &format!("127.0.0.1:{port}")])
            .env_remove("KELVIN_CONFIG")
            .env("KELVIN_AUTH__SIGNING_KEY", &key)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"))
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env("OTEL_METRIC_EXPORT_INTERVAL", "200");
        if backend() == Backend::Postgres {
            command.env("KELVIN_CACHE__REDIS_URL", std::env::var("KELVIN_TEST_REDIS_URL").unwrap());
        }
        processes.push(Running::spawn(&mut command));
        ports.push(port);
    }
    let ingest_channel =
        Channel::from_shared(format!("http://127.0.0.1:{}", ports[0])).unwrap().connect_lazy();
    wait_serving(ingest_channel.clone(), "").await;
    let scoring_channel =
        Channel::from_shared(format!("http://127.0.0.1:{}", ports[1])).unwrap().connect_lazy();
    wait_serving(scoring_channel, "").await;

    // The caller's trace.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = kelvin_integration_tests::authed(
        &app.admin_token,
        pb::IngestEventsRequest {
            tenant_id: "traced".into(),
            events: vec![pb::EventInput {
                event_id: "e1".into(),
                lead_id: "ana".into(),
                r#type: "page_view".into(),
                time: Some(prost_types::Timestamp { seconds: 1_763_000_000, nanos: 0 }),
                properties: Some(to_struct(serde_json::json!({"url": "/pricing"}))),
            }],
        },
    );
    request
        .metadata_mut()
        .insert("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01").parse().unwrap());
    IngestServiceClient::new(ingest_channel).ingest_events(request).await.unwrap();

    let wanted: Vec<u8> =
        (0..16).map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).unwrap()).collect();
    let (ingest_spans, scoring_spans) =
        eventually(Duration::from_secs(30), "both spans", || async {
            let spans = collector.spans.lock().unwrap().clone();
            let of = |service: &str| -> Vec<String> {
                spans
                    .iter()
                    .filter(|(s, _, t)| s == service && *t == wanted)
                    .map(|(_, n, _)| n.clone())
                    .collect()
            };
            let (ingest, scoring) = (of("kelvin-ingest"), of("kelvin-scoring"));
            (!ingest.is_empty() && scoring.contains(&"score_events".to_owned()))
                .then_some((ingest, scoring))
        })
        .await;
    assert!(
        ingest_spans.iter().any(|n| n.ends_with("IngestService/IngestEvents")),
        "{ingest_spans:?}"
    );
    assert!(scoring_spans.iter().any(|n| n == "score_events"), "{scoring_spans:?}");
    // The ingest call's store calls are in its trace.
    assert!(ingest_spans.iter().any(|n| n == "store.ingest_events"), "{ingest_spans:?}");
    // The scoring batch shows its store and cache calls.
    let batch_calls = eventually(Duration::from_secs(30), "scoring batch spans", || async {
        let spans = collector.spans.lock().unwrap().clone();
        let names: BTreeSet<String> = spans
            .into_iter()
            .filter(|(s, _, _)| s == "kelvin-scoring")
            .map(|(_, n, _)| n)
            .collect();
        ["score_batch", "store.consume", "cache.set_many"]
            .iter()
            .all(|n| names.contains(*n))
            .then_some(names)
    })
    .await;
    // Background polls never start traces of their own.
    assert!(!batch_calls.contains("store.work"), "{batch_calls:?}");
    // Metrics arrive by OTLP too.
    eventually(Duration::from_secs(30), "OTLP metrics", || async {
        let metrics = collector.metrics.lock().unwrap().clone();
        let has =
            |service: &str, name: &str| metrics.iter().any(|(s, n)| s == service && n == name);
        (has("kelvin-ingest", "kelvin.ingest.events")
            && has("kelvin-ingest", "rpc.server.call.duration")
            && has("kelvin-scoring", "kelvin.scoring.lag"))
        .then_some(())
    })
    .await;
    drop(processes);
    app.stop().await;
}

/// `GET /metrics` over plain HTTP/1.1.
async fn scrape(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.to_owned()
}

/// The value of the series `name` whose labels include `labels`, if exactly one matches.
fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            let (metric, rest) = key.split_once('{').unwrap_or((key, "}"));
            let have = rest.strip_suffix('}')?;
            (metric == name && labels.iter().all(|(k, v)| have.contains(&format!("{k}=\"{v}\""))))
                .then(|| value.parse().unwrap())
        })
        .collect();
    (found.len() == 1).then(|| found[0])
}

fn event(id: &str, lead: &str, kind: &str) -> pb::EventInput {
    pb::EventInput {
        event_id: id.into(),
        lead_id: lead.into(),
        r#type: kind.into(),
        time: Some(prost_types::Timestamp { seconds: 1_763_000_000, nanos: 0 }),
        properties: Some(to_struct(serde_json::json!({"url": "/pricing"}))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoints_count_traffic_after_the_fact() {
    use kelvin_proto::v1::scoring_service_client::ScoringServiceClient;

    let app = spawn_app_with(|c| c.scoring.worker = false).await;
    fixtures::org(&app, "agency").await;
    fixtures::tenant(&app, "agency", "metered").await;
    fixtures::publish(app.channel.clone(), &app.admin_token, "metered", "default", b2b_spec())
        .await;
    let key = std::fs::read_to_string(app.runtime.config.signing_key_path()).unwrap();
    let url = app.runtime.config.effective_database_url();
    let mut processes = Vec::new();
    let (mut grpc, mut metrics) = (Vec::new(), Vec::new());
    for name in ["kelvin-ingest", "kelvin-scoring"] {
        let (port, metrics_port) = (free_port(), free_port());
        let mut command = Command::new(binary(name));
        command
            .args(["serve", "--database-url", &url, "--listen", &format!("127.0.0.1:{port}")])
            .env_remove("KELVIN_CONFIG")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env("KELVIN_AUTH__SIGNING_KEY", &key)
            .env("KELVIN_TELEMETRY__METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"));
        if backend() == Backend::Postgres {
            command.env("KELVIN_CACHE__REDIS_URL", std::env::var("KELVIN_TEST_REDIS_URL").unwrap());
        }
        processes.push(Running::spawn(&mut command));
        grpc.push(Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect_lazy());
        metrics.push(metrics_port);
    }
    wait_serving(grpc[0].clone(), "").await;
    wait_serving(grpc[1].clone(), "").await;

    // Traffic: 3 events accepted, then 1 duplicate and 1 rejected (no type).
    let mut ingest = IngestServiceClient::new(grpc[0].clone());
    let events = vec![
        event("e1", "ana", "page_view"),
        event("e2", "ana", "page_view"),
        event("e3", "bob", "page_view"),
    ];
    let request = pb::IngestEventsRequest { tenant_id: "metered".into(), events };
    ingest
        .ingest_events(kelvin_integration_tests::authed(&app.admin_token, request))
        .await
        .unwrap();
    let events = vec![event("e1", "ana", "page_view"), event("e4", "ana", "")];
    let request = pb::IngestEventsRequest { tenant_id: "metered".into(), events };
    let reply = ingest
        .ingest_events(kelvin_integration_tests::authed(&app.admin_token, request))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((reply.accepted, reply.duplicates, reply.rejected), (0, 1, 1));

    // Reads: ana's score once scored (a cache hit after write-through), a lead that does not
    // exist (a miss, then NOT_FOUND).
    let mut scoring = ScoringServiceClient::new(grpc[1].clone());
    let get = |lead: &str| {
        kelvin_integration_tests::authed(
            &app.admin_token,
            pb::GetScoreRequest {
                tenant_id: "metered".into(),
                lead_id: lead.into(),
                model_id: String::new(),
            },
        )
    };
    eventually(Duration::from_secs(30), "ana scored", || {
        let mut scoring = scoring.clone();
        let request = get("ana");
        async move { scoring.get_score(request).await.ok() }
    })
    .await;
    let missing = scoring.get_score(get("nobody")).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    // A new version: the scorer rescores and reports its progress.
    fixtures::publish(app.channel.clone(), &app.admin_token, "metered", "default", b2b_spec())
        .await;

    let text = scrape(metrics[0]).await;
    let events = |outcome| {
        series(&text, "kelvin_ingest_events_total", &[("tenant", "metered"), ("outcome", outcome)])
    };
    assert_eq!(events("accepted"), Some(3.0), "{text}");
    assert_eq!(events("duplicate"), Some(1.0), "{text}");
    assert_eq!(events("rejected"), Some(1.0), "{text}");
    assert!(text.contains("# TYPE rpc_server_call_duration_seconds histogram"), "{text}");
    let ingest_calls = series(
        &text,
        "rpc_server_call_duration_seconds_count",
        &[("rpc_method", "/kelvin.v1.IngestService/IngestEvents"), ("rpc_grpc_status_code", "0")],
    );
    assert_eq!(ingest_calls, Some(2.0), "{text}");
    assert!(
        text.contains(r#"rpc_method="/kelvin.v1.IngestService/IngestEvents",le="+Inf"} 2"#),
        "{text}"
    );

    // The first read of ana may have refilled the cache rather than hit it: read until a hit
    // shows (write-through or refill, the entry is there by now).
    let text = eventually(Duration::from_secs(30), "scoring metrics", || async {
        scoring.clone().get_score(get("ana")).await.unwrap();
        let text = scrape(metrics[1]).await;
        let hits = series(&text, "kelvin_cache_lookups_total", &[("result", "hit")]);
        let progress = series(
            &text,
            "kelvin_rescore_progress",
            &[("tenant", "metered"), ("model", "default")],
        );
        let rescored = series(&text, "kelvin_rescore_leads_total", &[("tenant", "metered")]);
        (progress == Some(1.0) && rescored.is_some_and(|n| n >= 1.0) && hits.is_some())
            .then_some(text)
    })
    .await;
    assert_eq!(
        series(&text, "kelvin_scoring_events_total", &[("tenant", "metered")]),
        Some(3.0),
        "{text}"
    );
    let lagged = series(&text, "kelvin_scoring_lag_seconds_count", &[]).unwrap_or(0.0);
    assert!(lagged >= 3.0, "{text}");
    assert!(series(&text, "kelvin_scoring_queue_oldest_age_seconds", &[]).is_some(), "{text}");
    let lookups =
        |result| series(&text, "kelvin_cache_lookups_total", &[("result", result)]).unwrap_or(0.0);
    assert!(lookups("hit") >= 1.0, "{text}");
    assert!(lookups("miss") >= 1.0, "{text}");
    let not_found = series(
        &text,
        "rpc_server_call_duration_seconds_count",
        &[("rpc_method", "/kelvin.v1.ScoringService/GetScore"), ("rpc_grpc_status_code", "5")],
    );
    // At least the call above (the wait for ana may have met NOT_FOUND too).
    assert!(not_found.is_some_and(|n| n >= 1.0), "{text}");

    // Anything but /metrics is not found.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", metrics[1])).await.unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    }
    drop(processes);
    app.stop().await;
}
