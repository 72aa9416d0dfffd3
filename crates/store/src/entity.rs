//! sea-orm entities. Timestamps are Unix milliseconds (`i64`) so that SQLite and PostgreSQL store
//! and compare them identically.

pub mod api_key;
pub mod audit_event;
pub mod organization;
pub mod tenant;
