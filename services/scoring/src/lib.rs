//! The scoring service: the scoring worker (stored events in, scores, history and change
//! notifications out) and `ScoringService` (scores, explanations, rankings, history, the change
//! stream, rescore progress).
//!
//! ```text
//! scoring_queue ──worker (owned partitions)──▶ lead_scores, company_scores, score_changes
//!                        │ after commit                 │
//!                        ▼                              ▼
//!                 cache (write-through)  ◀──read-through── ScoringService ──▶ clients
//! ```

mod api;
mod dead_letters;
mod registry;
mod watch;
mod worker;

use std::sync::Arc;

use kelvin_proto::v1::scoring_service_server::ScoringServiceServer;
use kelvin_server::{Mount, Runtime};

pub use api::ScoringApi;

/// Name of the binary and of its telemetry service.
pub const SERVICE_NAME: &str = "kelvin-scoring";

/// The model `model_id` means when a request leaves it empty.
pub const DEFAULT_MODEL: &str = "default";

/// What the worker and the API of one process share.
#[derive(Debug)]
pub(crate) struct Hub {
    /// The change heads of watched tenants (advanced by local commits at once) and the stream
    /// limits.
    pub watcher: Arc<watch::Watcher>,
}

/// Mounts `ScoringService` and, unless `scoring.worker` is off, starts the scoring worker.
pub fn mount(runtime: &Arc<Runtime>, mount: &mut Mount) {
    let hub = Arc::new(Hub { watcher: Arc::new(watch::Watcher::new(&runtime.config.scoring)) });
    tokio::spawn(hub.watcher.clone().run(runtime.clone()));
    if runtime.config.scoring.worker {
        worker::spawn(runtime.clone(), hub.clone());
    }
    let limits = mount.limits().clone();
    mount.add(
        ScoringServiceServer::new(ScoringApi::new(runtime.clone(), hub))
            .max_decoding_message_size(limits.max_request_bytes)
            .max_encoding_message_size(limits.max_response_bytes),
    );
}
