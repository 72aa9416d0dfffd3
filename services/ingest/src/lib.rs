//! The ingest service. Its gRPC API arrives with the ingestion and scoring issue; until then the
//! binary runs the shared server (health, reflection, authentication) so deployments, probes and
//! the chart can be exercised end to end.

/// Name of the binary and of its telemetry service.
pub const SERVICE_NAME: &str = "kelvin-ingest";
