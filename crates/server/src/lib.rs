//! What every Kelvin service binary shares: start-up (config, telemetry, store, cache, keys),
//! the gRPC server (health, reflection, authentication, a request id and a span per call, message
//! limits, graceful shutdown) and the one mapping of errors to gRPC statuses.
//!
//! The three services differ only in what they [`Mount`].

mod admission;
mod app;
mod bootstrap;
mod call;
mod cli;
mod context;
mod error;
mod health;
mod heavy;
mod mask;
mod tls;

pub use app::{Application, Mount, MountFn};
pub use bootstrap::{ADMIN_TOKEN_FILE, Runtime, StartError, audit_hmac_key};
pub use cli::{
    AdminTokenArgs, CommonArgs, ServiceCli, ServiceCommand, admin_token, migrate, run_service,
    serve, shutdown_signal,
};
pub use context::{CallContext, Reply, call_context, handle};
pub use error::{ApiError, ApiResult, At};
pub use heavy::HeavyWork;
pub use kelvin_clock::Clock;
pub use mask::{MutableField, UpdateFields};
pub use tls::Tls;
