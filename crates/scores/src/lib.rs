//! Scores between the store, the engine, the cache and the contract, in one place: stored rows
//! as the engine's inputs, engine and stored scores as the contract's messages, and the cache
//! encoding of a lead's score (its key and bytes).
//!
//! The scoring worker writes scores through to the cache with [`cache_entry`]; every read path
//! (the scoring service, a refill after a miss) decodes them with [`decode_lead_score`]. Both
//! sides use this crate, so neither imports the other's internals and the two can never
//! disagree on the encoding.

mod cache;
mod contract;
mod engine;

pub use cache::{cache_entry, decode_lead_score, erased_key, erased_ttl, score_key};
pub use contract::{change, company_score, lead_score, points, score_pb};
pub use engine::{engine_company, engine_event, engine_lead, score_summary};
