//! One event, one trace: the ingest process's call span and the scoring process's span that
//! applies the event share the caller's trace id, as received by an in-process OTLP collector.

#![allow(clippy::unwrap_used)]

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
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tonic::transport::Channel;

/// (service name, span name, trace id) of every span received.
type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

#[derive(Clone, Default)]
struct Collector {
    spans: Received,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref().and_then(|v| v.value.clone()) {
                    Some(Value::StringValue(s)) => Some(s),
                    _ => None,
                })
                .unwrap_or_default();
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
            .env("OTEL_BSP_SCHEDULE_DELAY", "100");
        if backend() == Backend::Postgres {
            command.env("KELVIN_CACHE__REDIS_URL", std::env::var("KELVIN_TEST_REDIS_URL").unwrap());
        }
        processes.push(Running::spawn(&mut command));
        ports.push(port);
    }
    let ingest_channel =
        Channel::from_shared(format!("http://127.0.0.1:{}", ports[0])).unwrap().connect_lazy();
    wait_serving(ingest_channel.clone(), "").await;

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
    drop(processes);
    app.stop().await;
}
