//! sea-orm entities. Timestamps are Unix milliseconds (`i64`) so that SQLite and PostgreSQL store
//! and compare them identically.

pub mod api_key;
pub mod audit_event;
pub mod change_counter;
pub mod company;
pub mod company_score;
pub mod event;
pub mod lead;
pub mod lead_score;
pub mod model;
pub mod model_activation;
pub mod model_version;
pub mod organization;
pub mod outcome;
pub mod score_change;
pub mod scoring_dead_letter;
pub mod scoring_failure;
pub mod scoring_queue;
pub mod template;
pub mod tenant;
