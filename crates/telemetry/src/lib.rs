//! Logs, traces and metrics for every Kelvin binary.
//!
//! Logs go to stderr (text or JSON). Traces and metrics are exported with OpenTelemetry (OTLP
//! over gRPC) only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; the other standard `OTEL_*`
//! variables apply. Metrics are also readable by Prometheus ([`metrics::serve`]). Incoming W3C
//! `traceparent` headers become the parent of the call's span.

pub mod metrics;

use kelvin_config::{LogFormat, TelemetrySettings};
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid log filter: {0}")]
    Filter(String),
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
    #[error("a global subscriber is already installed: {0}")]
    AlreadyInstalled(String),
}

/// Flushes and stops trace and metric export when dropped: keep it alive for the life of the
/// process.
#[must_use = "dropping the guard stops trace and metric export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    meters: Option<SdkMeterProvider>,
    prometheus: metrics::PrometheusReader,
}

impl TelemetryGuard {
    /// Whether traces are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// What the Prometheus endpoint reads.
    pub fn prometheus(&self) -> metrics::PrometheusReader {
        self.prometheus.clone()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("telemetry: flushing traces failed: {error}");
        }
        if let Some(meters) = self.meters.take()
            && let Err(error) = meters.shutdown()
        {
            eprintln!("telemetry: flushing metrics failed: {error}");
        }
    }
}

/// Default directives appended to the configured filter: sqlx logs every statement at INFO.
const QUIET_DEPENDENCIES: &str = "sqlx=warn,sea_orm=warn,h2=warn,hyper=warn,tower=warn";

/// Installs the global subscriber for `service_name`.
pub fn init(service_name: &str, settings: &TelemetrySettings) -> Result<TelemetryGuard, Error> {
    let directives = std::env::var("RUST_LOG")
        .unwrap_or_else(|_| format!("{},{QUIET_DEPENDENCIES}", settings.log_filter));
    let filter = EnvFilter::try_new(&directives).map_err(|e| Error::Filter(e.to_string()))?;

    let otlp = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok_and(|e| !e.is_empty());
    let provider = if otlp { Some(tracer_provider(service_name)?) } else { None };
    let prometheus = metrics::PrometheusReader::new();
    let meters = meter_provider(service_name, otlp, prometheus.clone())?;
    let otel_layer = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service_name.to_owned())));

    let (text, json) = match settings.log_format {
        LogFormat::Text => {
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(colour(std::io::IsTerminal::is_terminal(&std::io::stderr())))
                .with_writer(std::io::stderr);
            (Some(layer), None)
        }
        LogFormat::Json => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            ),
        ),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .with(otel_layer)
        .try_init()
        .map_err(|e| Error::AlreadyInstalled(e.to_string()))?;
    Ok(TelemetryGuard { provider, meters: Some(meters), prometheus })
}

/// Whether text logs get ANSI colours: only on a terminal, and never when `NO_COLOR` is set
/// to anything non-empty (<https://no-color.org>); a file or a log collector gets plain text.
fn colour(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The global meter provider: always read by the Prometheus reader, and pushed by OTLP when an
/// endpoint is configured (`OTEL_METRIC_EXPORT_INTERVAL`, 60 s by default).
fn meter_provider(
    service_name: &str,
    otlp: bool,
    prometheus: metrics::PrometheusReader,
) -> Result<SdkMeterProvider, Error> {
    let resource =
        opentelemetry_sdk::Resource::builder().with_service_name(service_name.to_owned()).build();
    let mut builder = SdkMeterProvider::builder().with_resource(resource).with_reader(prometheus);
    if otlp {
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .build()
            .map_err(|e| Error::Exporter(e.to_string()))?;
        builder = builder
            .with_reader(opentelemetry_sdk::metrics::PeriodicReader::builder(exporter).build());
    }
    let provider = builder.build();
    opentelemetry::global::set_meter_provider(provider.clone());
    Ok(provider)
}

fn tracer_provider(service_name: &str) -> Result<SdkTracerProvider, Error> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| Error::Exporter(e.to_string()))?;
    let resource =
        opentelemetry_sdk::Resource::builder().with_service_name(service_name.to_owned()).build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .with_sampler(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(NoOrphanCalls)))
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(provider)
}

/// Samples every trace except one that would start at a store or cache call: those belong in
/// the trace of the RPC or scoring batch that made them, and background polls (the scorer's
/// idle reads, the purge sweeper) would otherwise export a trace several times a second.
#[derive(Debug, Clone)]
struct NoOrphanCalls;

impl opentelemetry_sdk::trace::ShouldSample for NoOrphanCalls {
    fn should_sample(
        &self,
        _parent: Option<&opentelemetry::Context>,
        _trace_id: opentelemetry::trace::TraceId,
        name: &str,
        _kind: &opentelemetry::trace::SpanKind,
        _attributes: &[opentelemetry::KeyValue],
        _links: &[opentelemetry::trace::Link],
    ) -> opentelemetry_sdk::trace::SamplingResult {
        let orphan_call = name.starts_with("store.") || name.starts_with("cache.");
        opentelemetry_sdk::trace::SamplingResult {
            decision: if orphan_call {
                opentelemetry_sdk::trace::SamplingDecision::Drop
            } else {
                opentelemetry_sdk::trace::SamplingDecision::RecordAndSample
            },
            attributes: Vec::new(),
            trace_state: opentelemetry::trace::TraceState::default(),
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Makes the caller's trace (W3C `traceparent` in `headers`) the parent of `span`.
pub fn set_remote_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    if headers.contains_key("traceparent") {
        let cx = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderExtractor(headers))
        });
        let _ = span.set_parent(cx);
    }
}

/// The current span's trace as a W3C `traceparent`, to store with work that another process
/// continues (an event's scoring); `None` when traces are not exported.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    let mut carrier = std::collections::HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
    carrier.remove("traceparent")
}

/// Makes the trace of a stored W3C `traceparent` the parent of `span`.
pub fn set_stored_parent(span: &tracing::Span, traceparent: &str) {
    let mut carrier = std::collections::HashMap::new();
    carrier.insert("traceparent".to_owned(), traceparent.to_owned());
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
    let _ = span.set_parent(cx);
}
