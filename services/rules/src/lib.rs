//! The rules service: organizations, tenants, API keys and the audit log (`TenantService`), and
//! scoring models with their versions and templates (`ModelService`).

mod convert;
mod diff;
mod model_api;
mod purge;
mod template;
mod tenant_api;

use std::sync::Arc;

use kelvin_proto::v1::model_service_server::ModelServiceServer;
use kelvin_proto::v1::tenant_service_server::TenantServiceServer;
use kelvin_server::{Mount, Runtime};

pub use model_api::ModelApi;
pub use tenant_api::TenantApi;

/// Name of the binary and of its telemetry service.
pub const SERVICE_NAME: &str = "kelvin-rules";

/// Mounts the rules service's gRPC services and starts its background work (tenant purge).
pub fn mount(runtime: &Arc<Runtime>, mount: &mut Mount) {
    let limits = mount.limits().clone();
    mount.add(
        TenantServiceServer::new(TenantApi::new(runtime.clone()))
            .max_decoding_message_size(limits.max_request_bytes)
            .max_encoding_message_size(limits.max_response_bytes),
    );
    mount.add(
        ModelServiceServer::new(ModelApi::new(runtime.clone()))
            .max_decoding_message_size(limits.max_request_bytes)
            .max_encoding_message_size(limits.max_response_bytes),
    );
    purge::spawn(runtime.clone());
}
