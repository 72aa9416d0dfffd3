//! A lead's score in the cache: its key in the tenant's namespace and its bytes (the contract's
//! `LeadScore`, protobuf-encoded), and the erasure mark that hides a lead's cached scores.
//!
//! The partition's scoring worker is the only writer of a lead's score keys (write-through
//! after each commit); reads that miss refill them only where no write-through landed
//! (`SET NX`). Both go through [`cache_entry`] and [`decode_lead_score`].

use kelvin_cache::Namespace;
use kelvin_proto::v1 as pb;
use kelvin_store::StoredScore;
use prost::Message;

/// The cache key of a lead's score under a model (in the tenant's namespace). The model id's
/// length keeps `("a:b", "c")` and `("a", "b:c")` apart.
pub fn score_key(model_id: &str, lead_id: &str) -> String {
    format!("score:{}:{model_id}:{lead_id}", model_id.len())
}

/// The cache entry of a stored score: namespace, key and encoded `LeadScore`.
pub fn cache_entry(ns: Namespace, s: &StoredScore) -> (Namespace, String, Vec<u8>) {
    (ns, score_key(&s.model_id, &s.lead_id), crate::lead_score(s).encode_to_vec())
}

/// A cached score as the contract's `LeadScore`; `None` when the bytes do not decode (the read
/// then goes to the store).
pub fn decode_lead_score(bytes: &[u8]) -> Option<pb::LeadScore> {
    pb::LeadScore::decode(bytes).ok()
}

/// The cache key of a lead's erasure mark, in its tenant's namespace. EraseLead sets it before
/// its transaction; score reads that find it ignore the lead's cached scores and read the store.
/// It closes the window between EraseLead's reply and the scoring worker dropping the cached
/// scores, and it masks a write-through or refill that lands after that drop.
pub fn erased_key(lead_id: &str) -> String {
    format!("erased:{lead_id}")
}

/// How long an erasure mark lives: longer than any cached score written before the erasure
/// committed (a write-through or a refill lands at most one call after the mark), so no such
/// score can outlive it.
pub fn erased_ttl(cache_ttl_seconds: u64) -> std::time::Duration {
    std::time::Duration::from_secs(cache_ttl_seconds.max(1).saturating_mul(2))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn stored() -> StoredScore {
        StoredScore {
            tenant_id: "acme".into(),
            model_id: "default".into(),
            lead_id: "lead-1".into(),
            company_id: Some("co".into()),
            model_version: 3,
            fit: 12_500,
            engagement: 4_000,
            total: 16_500,
            band: "warm".into(),
            grade: "B".into(),
            action: "call".into(),
            disqualification_rule: String::new(),
            disqualification: String::new(),
            state: vec![1, 2, 3],
            event_count: 7,
            as_of_ms: 1_700_000_000_000,
            next_check_ms: None,
            update_time_ms: 1_700_000_000_500,
        }
    }

    /// What the worker writes through is what a read decodes: the stored score as the
    /// contract's `LeadScore`, under the key reads look up.
    #[test]
    fn a_written_entry_reads_back_as_the_stored_score() {
        let s = stored();
        let ns = Namespace::tenant("acme", 1);
        let (_, key, bytes) = cache_entry(ns, &s);
        assert_eq!(key, score_key("default", "lead-1"));
        let read = decode_lead_score(&bytes).unwrap();
        assert_eq!(read, crate::lead_score(&s));
        assert_eq!(read.score.unwrap().total, 16.5);
        assert_eq!(decode_lead_score(&[0xff, 0xff]), None);
    }

    #[test]
    fn keys_of_different_models_and_leads_never_collide() {
        assert_ne!(score_key("a:b", "c"), score_key("a", "b:c"));
        assert_ne!(score_key("m", "l"), erased_key("l"));
    }
}
