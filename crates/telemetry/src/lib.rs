//! Logs and traces for every Kelvin binary.
//!
//! Logs go to stderr (text or JSON). Traces are exported with OpenTelemetry (OTLP over gRPC)
//! only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; the other standard `OTEL_*` variables apply.
//! Incoming W3C `traceparent` headers become the parent of the call's span.

use kelvin_config::{LogFormat, TelemetrySettings};
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TracerProvider as _;
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

/// Flushes and stops trace export when dropped: keep it alive for the life of the process.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether traces are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("telemetry: flushing traces failed: {error}");
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

    let provider = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(tracer_provider(service_name)?),
        _ => None,
    };
    let otel_layer = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service_name.to_owned())));

    let (text, json) = match settings.log_format {
        LogFormat::Text => {
            (Some(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)), None)
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
    Ok(TelemetryGuard { provider })
}

fn tracer_provider(service_name: &str) -> Result<SdkTracerProvider, Error> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| Error::Exporter(e.to_string()))?;
    let resource =
        opentelemetry_sdk::Resource::builder().with_service_name(service_name.to_owned()).build();
    let provider =
        SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(provider)
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
