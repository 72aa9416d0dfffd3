//! sea-orm entities. Timestamps are Unix milliseconds (`i64`) so that SQLite and PostgreSQL store
//! and compare them identically.

pub mod api_key;
pub mod audit_event;
pub mod company;
pub mod event;
pub mod lead;
pub mod model;
pub mod model_activation;
pub mod model_version;
pub mod organization;
pub mod outcome;
pub mod template;
pub mod tenant;
