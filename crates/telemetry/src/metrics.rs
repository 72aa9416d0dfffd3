//! Kelvin's metrics: one set of OpenTelemetry instruments, read two ways — pushed by OTLP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and pulled from a Prometheus `/metrics` endpoint when
//! `telemetry.metrics_listen` is.
//!
//! The Prometheus side is a [`ManualReader`] rendered to the text exposition format on each
//! scrape: no second registry, so both exports always agree.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

/// Latency buckets, in seconds: from a cache hit (sub-millisecond) to a slow import batch.
const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Scoring lag buckets, in seconds: from a few milliseconds behind to minutes behind.
const LAG_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0];

/// Every instrument Kelvin records. Names follow OpenTelemetry conventions; the Prometheus
/// endpoint shows them with `.` → `_`, the unit appended and `_total` on counters.
#[derive(Debug)]
pub struct Instruments {
    /// `rpc.server.call.duration` (s) by `rpc.method` and `rpc.grpc.status_code`.
    pub rpc_duration: Histogram<f64>,
    /// `kelvin.ingest.events` by `tenant` and `outcome` (accepted, duplicate, rejected,
    /// throttled).
    pub ingest_events: Counter<u64>,
    /// `kelvin.cache.lookups` by `result` (hit, miss, error): the hit ratio's two halves.
    pub cache_lookups: Counter<u64>,
    /// `kelvin.scoring.events` by `tenant`: events absorbed into stored scores.
    pub scored_events: Counter<u64>,
    /// `kelvin.scoring.lag` (s): from a work item's enqueue to the commit that applied it.
    pub scoring_lag: Histogram<f64>,
    /// `kelvin.scoring.queue.oldest_age` (s): age of the oldest work not applied yet, 0 when
    /// the queue is empty; an alert on it catches a scorer that stopped.
    pub queue_oldest_age: Gauge<f64>,
    /// `kelvin.rescore.progress` (0..1) by `tenant` and `model`: share of a running rescore
    /// pass done by this replica; 1 once finished.
    pub rescore_progress: Gauge<f64>,
    /// `kelvin.rescore.leads` by `tenant`: leads rescored after a model activation.
    pub rescored_leads: Counter<u64>,
    /// `kelvin.scoring.failures` by `tenant` and `outcome` (`retry`: the attempt is counted
    /// and the work stays queued; `dead_letter`: moved out of the queue; `skipped`: a time
    /// re-evaluation or rescore of one lead failed and was set aside).
    pub scoring_failures: Counter<u64>,
    /// `kelvin.dependency.up` by `dependency` (`store`, `cache`): 1 when the last health probe
    /// got an answer. A cache at 0 is a degraded service (reads go to the store), not an outage.
    pub dependency_up: Gauge<u64>,
}

/// The process's instruments, bound to the meter provider installed by [`crate::init`] (a
/// no-op provider when `init` was not called, as in in-process tests).
pub fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = opentelemetry::global::meter("kelvin");
        Instruments {
            rpc_duration: meter
                .f64_histogram("rpc.server.call.duration")
                .with_unit("s")
                .with_description("Duration of gRPC calls, to the response headers")
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build(),
            ingest_events: meter
                .u64_counter("kelvin.ingest.events")
                .with_description("Events received, by tenant and outcome")
                .build(),
            cache_lookups: meter
                .u64_counter("kelvin.cache.lookups")
                .with_description("Cache lookups, by result")
                .build(),
            scored_events: meter
                .u64_counter("kelvin.scoring.events")
                .with_description("Events absorbed into stored scores, by tenant")
                .build(),
            scoring_lag: meter
                .f64_histogram("kelvin.scoring.lag")
                .with_unit("s")
                .with_description("Time from enqueued work to the commit of its score")
                .with_boundaries(LAG_BUCKETS.to_vec())
                .build(),
            queue_oldest_age: meter
                .f64_gauge("kelvin.scoring.queue.oldest_age")
                .with_unit("s")
                .with_description("Age of the oldest scoring work not applied yet")
                .build(),
            rescore_progress: meter
                .f64_gauge("kelvin.rescore.progress")
                .with_description("Share of the running rescore pass done by this replica")
                .build(),
            rescored_leads: meter
                .u64_counter("kelvin.rescore.leads")
                .with_description("Leads rescored after a model activation, by tenant")
                .build(),
            scoring_failures: meter
                .u64_counter("kelvin.scoring.failures")
                .with_description("Scoring work that failed, by tenant and outcome")
                .build(),
            dependency_up: meter
                .u64_gauge("kelvin.dependency.up")
                .with_description("1 when the store or the cache answered the last health probe")
                .build(),
        }
    })
}

/// Shorthand for one attribute.
pub fn kv(key: &'static str, value: impl Into<opentelemetry::Value>) -> KeyValue {
    KeyValue::new(key, value)
}

/// The pull side of the meter provider: a [`ManualReader`] shared between the provider and the
/// `/metrics` endpoint.
#[derive(Debug, Clone)]
pub struct PrometheusReader(Arc<ManualReader>);

impl PrometheusReader {
    pub(crate) fn new() -> Self {
        Self(Arc::new(ManualReader::builder().with_temporality(Temporality::Cumulative).build()))
    }

    /// Collects every instrument and renders the Prometheus text exposition format.
    pub fn render(&self) -> Result<String, String> {
        let mut metrics = ResourceMetrics::default();
        self.0.collect(&mut metrics).map_err(|e| e.to_string())?;
        Ok(render(&metrics))
    }
}

impl MetricReader for PrometheusReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// `rpc.server.call.duration` + `s` → `rpc_server_call_duration_seconds`.
fn metric_name(name: &str, unit: &str) -> String {
    let mut out = sanitize(name);
    let suffix = match unit {
        "s" => "seconds",
        "ms" => "milliseconds",
        "By" => "bytes",
        _ => "",
    };
    if !suffix.is_empty() && !out.ends_with(suffix) {
        out.push('_');
        out.push_str(suffix);
    }
    out
}

fn sanitize(name: &str) -> String {
    let mut out: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn escape(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

fn labels<'a>(
    attributes: impl Iterator<Item = &'a KeyValue>,
    extra: Option<(&str, &str)>,
) -> String {
    let mut pairs: Vec<(String, String)> =
        attributes.map(|kv| (sanitize(kv.key.as_str()), escape(&kv.value.as_str()))).collect();
    pairs.sort();
    if let Some((k, v)) = extra {
        pairs.push((k.to_owned(), escape(v)));
    }
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{{{}}}", inner.join(","))
}

fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

trait AsF64: Copy {
    fn as_f64(self) -> f64;
}
impl AsF64 for f64 {
    fn as_f64(self) -> f64 {
        self
    }
}
impl AsF64 for u64 {
    fn as_f64(self) -> f64 {
        self as f64
    }
}
impl AsF64 for i64 {
    fn as_f64(self) -> f64 {
        self as f64
    }
}

fn write_data<T: AsF64>(out: &mut String, name: &str, help: &str, data: &MetricData<T>) {
    match data {
        MetricData::Gauge(g) => {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for p in g.data_points() {
                let _ = writeln!(
                    out,
                    "{name}{} {}",
                    labels(p.attributes(), None),
                    number(p.value().as_f64())
                );
            }
        }
        MetricData::Sum(s) => {
            let (full, kind) = if s.is_monotonic() {
                (format!("{name}_total"), "counter")
            } else {
                (name.to_owned(), "gauge")
            };
            let _ = writeln!(out, "# HELP {full} {help}\n# TYPE {full} {kind}");
            for p in s.data_points() {
                let _ = writeln!(
                    out,
                    "{full}{} {}",
                    labels(p.attributes(), None),
                    number(p.value().as_f64())
                );
            }
        }
        MetricData::Histogram(h) => {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for p in h.data_points() {
                let attributes: Vec<&KeyValue> = p.attributes().collect();
                let mut cumulative = 0u64;
                let bounds: Vec<f64> = p.bounds().collect();
                for (i, count) in p.bucket_counts().enumerate() {
                    cumulative += count;
                    let le = bounds.get(i).copied().unwrap_or(f64::INFINITY);
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {cumulative}",
                        labels(attributes.iter().copied(), Some(("le", &number(le))))
                    );
                }
                let plain = labels(attributes.iter().copied(), None);
                let _ = writeln!(out, "{name}_sum{plain} {}", number(p.sum().as_f64()));
                let _ = writeln!(out, "{name}_count{plain} {}", p.count());
            }
        }
        MetricData::ExponentialHistogram(_) => {}
    }
}

/// Renders collected metrics in the Prometheus text exposition format (version 0.0.4).
fn render(metrics: &ResourceMetrics) -> String {
    let mut out = String::new();
    for scope in metrics.scope_metrics() {
        for metric in scope.metrics() {
            let name = metric_name(metric.name(), metric.unit());
            let help = metric.description().replace('\n', " ");
            match metric.data() {
                AggregatedMetrics::F64(d) => write_data(&mut out, &name, &help, d),
                AggregatedMetrics::U64(d) => write_data(&mut out, &name, &help, d),
                AggregatedMetrics::I64(d) => write_data(&mut out, &name, &help, d),
            }
        }
    }
    out
}

/// Bounds of the `/metrics` listener, so that clients that connect and never finish (or never
/// read) cannot hold it: each connection serves one request, must send its headers within
/// `header_read_timeout`, is closed after `connection_timeout` whatever it does, and at most
/// `max_connections` are served at once (the others wait in the kernel's backlog).
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    pub header_read_timeout: Duration,
    pub connection_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            connection_timeout: Duration::from_secs(60),
            max_connections: 32,
        }
    }
}

/// Serves `GET /metrics` (and `HEAD`) on `listener` until the process ends, within the default
/// [`ServeLimits`].
pub async fn serve(listener: tokio::net::TcpListener, reader: PrometheusReader) {
    serve_with(listener, reader, ServeLimits::default(), None).await;
}

/// [`serve`] within `limits`, over TLS when `tls` is given (the handshake counts against
/// `connection_timeout`).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    reader: PrometheusReader,
    limits: ServeLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    loop {
        // Never closed, so acquiring only waits for a connection to end.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let reader = reader.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let connection = async move {
                match tls {
                    None => serve_connection(stream, reader, limits).await,
                    Some(tls) => match tls.accept(stream).await {
                        Ok(stream) => serve_connection(stream, reader, limits).await,
                        Err(error) => {
                            tracing::debug!(%error, "metrics endpoint: TLS handshake failed");
                        }
                    },
                }
            };
            if tokio::time::timeout(limits.connection_timeout, connection).await.is_err() {
                tracing::debug!("metrics endpoint: connection timed out");
            }
        });
    }
}

/// Serves one request on `stream` (plain TCP or TLS).
async fn serve_connection<S>(stream: S, reader: PrometheusReader, limits: ServeLimits)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
        let reader = reader.clone();
        async move { Ok::<_, std::convert::Infallible>(respond(&request, &reader)) }
    });
    let io = hyper_util::rt::TokioIo::new(stream);
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(false)
        .serve_connection(io, service);
    if let Err(error) = connection.await {
        tracing::debug!(%error, "metrics endpoint: connection ended");
    }
}

/// The answer to one request: the metrics for `GET`/`HEAD /metrics`, 404 elsewhere, 405 (with
/// `Allow`) for other methods.
fn respond<B>(
    request: &hyper::Request<B>,
    reader: &PrometheusReader,
) -> hyper::Response<http_body_util::Full<hyper::body::Bytes>> {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::{Method, Response, StatusCode};

    let plain = |status: StatusCode, text: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "only /metrics here\n");
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        response
            .headers_mut()
            .insert(hyper::header::ALLOW, hyper::header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match reader.render() {
        Ok(text) => {
            let mut response = Response::new(Full::new(Bytes::from(text)));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        Err(error) => {
            let mut response =
                Response::new(Full::new(Bytes::from(format!("collect failed: {error}\n"))));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::SdkMeterProvider;

    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms_in_the_exposition_format() {
        let reader = PrometheusReader::new();
        let provider = SdkMeterProvider::builder().with_reader(reader.clone()).build();
        let meter = provider.meter("test");
        let counter = meter.u64_counter("kelvin.ingest.events").build();
        counter.add(3, &[kv("tenant", "t\"1"), kv("outcome", "accepted")]);
        let gauge = meter.f64_gauge("kelvin.rescore.progress").build();
        gauge.record(0.5, &[kv("tenant", "t1")]);
        let histogram = meter
            .f64_histogram("rpc.server.call.duration")
            .with_unit("s")
            .with_boundaries(vec![0.01, 0.1])
            .build();
        histogram.record(0.005, &[kv("rpc.method", "/a/B")]);
        histogram.record(0.05, &[kv("rpc.method", "/a/B")]);
        histogram.record(5.0, &[kv("rpc.method", "/a/B")]);

        let text = reader.render().unwrap();
        assert!(text.contains("# TYPE kelvin_ingest_events_total counter"), "{text}");
        assert!(
            text.contains(r#"kelvin_ingest_events_total{outcome="accepted",tenant="t\"1"} 3"#),
            "{text}"
        );
        assert!(text.contains(r#"kelvin_rescore_progress{tenant="t1"} 0.5"#), "{text}");
        assert!(text.contains("# TYPE rpc_server_call_duration_seconds histogram"), "{text}");
        for line in [
            r#"rpc_server_call_duration_seconds_bucket{rpc_method="/a/B",le="0.01"} 1"#,
            r#"rpc_server_call_duration_seconds_bucket{rpc_method="/a/B",le="0.1"} 2"#,
            r#"rpc_server_call_duration_seconds_bucket{rpc_method="/a/B",le="+Inf"} 3"#,
            r#"rpc_server_call_duration_seconds_sum{rpc_method="/a/B"} 5.05"#,
            r#"rpc_server_call_duration_seconds_count{rpc_method="/a/B"} 3"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    /// A metrics endpoint on a free port, with one counter recorded.
    async fn endpoint(limits: ServeLimits) -> (std::net::SocketAddr, SdkMeterProvider) {
        let reader = PrometheusReader::new();
        let provider = SdkMeterProvider::builder().with_reader(reader.clone()).build();
        provider.meter("test").u64_counter("kelvin.ingest.events").build().add(1, &[]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_with(listener, reader, limits, None));
        (addr, provider)
    }

    /// Generous: only a connection that is never closed takes this long.
    const GENEROUS: Duration = Duration::from_secs(20);

    fn connect(addr: std::net::SocketAddr, request: &str) -> std::net::TcpStream {
        use std::io::Write as _;
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(GENEROUS)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        stream
    }

    /// Everything the server sends until it closes the connection; an error if it does not
    /// close it within `GENEROUS`.
    fn read_to_close(stream: &mut std::net::TcpStream) -> std::io::Result<String> {
        use std::io::Read as _;
        let mut out = Vec::new();
        stream.read_to_end(&mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    async fn exchange(addr: std::net::SocketAddr, request: &'static str) -> String {
        tokio::task::spawn_blocking(move || read_to_close(&mut connect(addr, request)).unwrap())
            .await
            .unwrap()
    }

    /// Finding 12: the listener answered POST and DELETE as GET.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_get_and_head_of_metrics_are_answered() {
        let (addr, _provider) = endpoint(ServeLimits::default()).await;
        let get =
            exchange(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(get.starts_with("HTTP/1.1 200"), "{get}");
        assert!(get.contains("kelvin_ingest_events_total 1"), "{get}");
        let head =
            exchange(addr, "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(!head.contains("kelvin_ingest_events_total"), "{head}");
        for method in ["POST", "DELETE", "PUT"] {
            let request: &'static str = match method {
                "POST" => {
                    "POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
                }
                "DELETE" => "DELETE /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                _ => {
                    "PUT /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
                }
            };
            let reply = exchange(addr, request).await;
            assert!(reply.starts_with("HTTP/1.1 405"), "{method}: {reply}");
            assert!(reply.to_ascii_lowercase().contains("allow: get, head"), "{method}: {reply}");
            assert!(!reply.contains("kelvin_ingest_events_total"), "{method}: {reply}");
        }
        let other =
            exchange(addr, "GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    }

    /// Finding 12: a client that sent half a request held its connection forever. It is
    /// closed once the header read timeout passes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_half_sent_request_is_disconnected() {
        let limits =
            ServeLimits { header_read_timeout: Duration::from_millis(300), ..Default::default() };
        let (addr, _provider) = endpoint(limits).await;
        let closed = tokio::task::spawn_blocking(move || {
            read_to_close(&mut connect(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n"))
        })
        .await
        .unwrap();
        let reply = closed.expect("the server closes a half-sent request");
        assert!(!reply.contains("kelvin_ingest_events_total"), "{reply}");
    }

    /// Finding 12: connections are bounded. With room for one, a second client is served only
    /// once the first (half-sent, so never finishing) has been disconnected.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_beyond_the_bound_wait_for_a_free_slot() {
        let limits = ServeLimits {
            header_read_timeout: Duration::from_millis(500),
            max_connections: 1,
            ..Default::default()
        };
        let (addr, _provider) = endpoint(limits).await;
        tokio::task::spawn_blocking(move || {
            let mut first = connect(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n");
            // Served first: the server holds its one slot for it.
            std::thread::sleep(Duration::from_millis(100));
            let mut second = connect(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
            let reply = read_to_close(&mut second).unwrap();
            assert!(reply.contains("kelvin_ingest_events_total 1"), "{reply}");
            // The second was answered, so the first had been closed already: its end of
            // stream is there at once.
            first.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            read_to_close(&mut first).expect("the first connection was closed before");
        })
        .await
        .unwrap();
    }
}
