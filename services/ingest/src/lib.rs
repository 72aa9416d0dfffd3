//! The ingest service (`IngestService`): leads, companies, events and outcomes, validated,
//! deduplicated and durably stored before the reply, within per-tenant quotas.

mod ingest_api;
mod quota;
mod upsert;
mod validate;
mod warnings;

use std::sync::Arc;

use kelvin_proto::v1::ingest_service_server::IngestServiceServer;
use kelvin_server::{Mount, Runtime};

pub use ingest_api::IngestApi;

/// Name of the binary and of its telemetry service.
pub const SERVICE_NAME: &str = "kelvin-ingest";

/// Mounts `IngestService`.
pub fn mount(runtime: &Arc<Runtime>, mount: &mut Mount) {
    let limits = mount.limits().clone();
    mount.add(
        IngestServiceServer::new(IngestApi::new(runtime.clone()))
            .max_decoding_message_size(limits.max_request_bytes)
            .max_encoding_message_size(limits.max_response_bytes),
    );
}
