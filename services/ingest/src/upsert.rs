//! UpsertLeads and UpsertCompanies share one path (batch limit, reach, quota, warnings on what
//! the tenant's models read, validation, one transaction for the batch: see
//! `IngestApi::upsert`); an [`Upserted`] kind says only what differs between them.

use std::future::Future;

use kelvin_engine::Subject;
use kelvin_proto::v1 as pb;
use kelvin_store::{Access, CompanyUpsert, LeadUpsert, TenantScope};
use prost_types::Struct;

use crate::validate::{self, Rejection};

/// An item kind that UpsertLeads or UpsertCompanies writes.
pub(crate) trait Upserted: Sized + Send {
    /// The request's field holding the items, as error paths name it.
    const FIELD: &'static str;
    /// What the models' rules call such an item, for the warnings of results.
    const SUBJECT: Subject;
    /// A valid item, as the store writes it.
    type Valid: Send;

    /// The item's id, echoed in its result.
    fn id(&self) -> String;

    /// The item's documents the models may read, each with its path (`leads[2].attributes`).
    fn documents(&self, index: usize) -> Vec<(String, Option<&Struct>)>;

    /// The item validated (every rejection names its field path), or why not.
    fn validate(self, index: usize, max_bytes: usize) -> Result<Self::Valid, Rejection>;

    /// Writes valid items in one transaction.
    fn write<'s>(
        access: &'s Access<'_>,
        scope: &'s TenantScope,
        valid: Vec<Self::Valid>,
    ) -> impl Future<Output = kelvin_store::Result<()>> + Send + 's;
}

impl Upserted for pb::LeadInput {
    const FIELD: &'static str = "leads";
    const SUBJECT: Subject = Subject::Lead;
    type Valid = LeadUpsert;

    fn id(&self) -> String {
        self.lead_id.clone()
    }

    fn documents(&self, i: usize) -> Vec<(String, Option<&Struct>)> {
        vec![
            (format!("leads[{i}].attributes"), self.attributes.as_ref()),
            (format!("leads[{i}].enriched"), self.enriched.as_ref()),
        ]
    }

    fn validate(self, i: usize, max_bytes: usize) -> Result<LeadUpsert, Rejection> {
        validate::lead(i, self, max_bytes)
    }

    fn write<'s>(
        access: &'s Access<'_>,
        scope: &'s TenantScope,
        valid: Vec<LeadUpsert>,
    ) -> impl Future<Output = kelvin_store::Result<()>> + Send + 's {
        access.upsert_leads(scope, valid)
    }
}

impl Upserted for pb::CompanyInput {
    const FIELD: &'static str = "companies";
    const SUBJECT: Subject = Subject::Company;
    type Valid = CompanyUpsert;

    fn id(&self) -> String {
        self.company_id.clone()
    }

    fn documents(&self, i: usize) -> Vec<(String, Option<&Struct>)> {
        vec![(format!("companies[{i}].attributes"), self.attributes.as_ref())]
    }

    fn validate(self, i: usize, max_bytes: usize) -> Result<CompanyUpsert, Rejection> {
        validate::company(i, self, max_bytes)
    }

    fn write<'s>(
        access: &'s Access<'_>,
        scope: &'s TenantScope,
        valid: Vec<CompanyUpsert>,
    ) -> impl Future<Output = kelvin_store::Result<()>> + Send + 's {
        access.upsert_companies(scope, valid)
    }
}
