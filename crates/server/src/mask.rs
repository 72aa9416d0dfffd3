//! The one reading of an `Update*` request's field mask, after AIP-134, shared by every update
//! RPC so that none of them gets it wrong on its own:
//!
//! - no mask (or an empty one): the fields the request sets (non-default values), so a client
//!   that sends only a new display name does not wipe the labels;
//! - `*` alone: full replacement, every mutable field takes the request's value (empty included);
//! - otherwise the named fields, each of which must be a mutable field of the resource: an
//!   unknown or immutable path is INVALID_ARGUMENT naming it.

use crate::error::{ApiError, ApiResult};

/// One mutable field of a resource, as an update request carries it.
#[derive(Debug, Clone, Copy)]
pub struct MutableField {
    /// Its path in the mask (`display_name`).
    pub path: &'static str,
    /// Whether the request sets it (a non-default value): what "no mask" updates.
    pub set: bool,
}

impl MutableField {
    pub fn new(path: &'static str, set: bool) -> Self {
        Self { path, set }
    }
}

/// The fields an update changes (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateFields(Vec<&'static str>);

impl UpdateFields {
    /// Reads `mask` (the paths of the request's `update_mask`, `None` when absent) against the
    /// resource's mutable `fields`.
    pub fn resolve(mask: Option<&[String]>, fields: &[MutableField]) -> ApiResult<Self> {
        let paths = mask.unwrap_or_default();
        if paths.is_empty() {
            return Ok(Self(fields.iter().filter(|f| f.set).map(|f| f.path).collect()));
        }
        let names = || fields.iter().map(|f| f.path).collect::<Vec<_>>().join(", ");
        let mut chosen = Vec::new();
        for (i, path) in paths.iter().enumerate() {
            let field = format!("update_mask.paths[{i}]");
            if path == "*" {
                if paths.len() > 1 {
                    return Err(ApiError::invalid(
                        field,
                        "`*` (full replacement) cannot be combined with other paths",
                    ));
                }
                return Ok(Self(fields.iter().map(|f| f.path).collect()));
            }
            let Some(f) = fields.iter().find(|f| f.path == path) else {
                return Err(ApiError::invalid(
                    field,
                    format!("`{path}` is not a mutable field ({}, or `*` for all)", names()),
                ));
            };
            if !chosen.contains(&f.path) {
                chosen.push(f.path);
            }
        }
        Ok(Self(chosen))
    }

    /// Whether the update changes `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.0.contains(&path)
    }

    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fields(name_set: bool, labels_set: bool) -> [MutableField; 2] {
        [MutableField::new("display_name", name_set), MutableField::new("labels", labels_set)]
    }

    fn paths(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_mask_means_the_fields_the_request_sets() {
        let f = UpdateFields::resolve(None, &fields(true, false)).unwrap();
        assert!(f.contains("display_name") && !f.contains("labels"));
        let empty = paths(&[]);
        let f = UpdateFields::resolve(Some(&empty), &fields(false, true)).unwrap();
        assert!(!f.contains("display_name") && f.contains("labels"));
        assert!(UpdateFields::resolve(None, &fields(false, false)).unwrap().is_empty());
    }

    #[test]
    fn star_replaces_every_mutable_field() {
        let star = paths(&["*"]);
        let f = UpdateFields::resolve(Some(&star), &fields(false, false)).unwrap();
        assert!(f.contains("display_name") && f.contains("labels"));
        let mixed = paths(&["labels", "*"]);
        let err = UpdateFields::resolve(Some(&mixed), &fields(true, true)).unwrap_err();
        assert!(err.to_string().contains("update_mask.paths[1]"), "{err}");
    }

    #[test]
    fn named_paths_only_and_unknown_ones_are_refused_by_name() {
        let named = paths(&["labels", "labels"]);
        let f = UpdateFields::resolve(Some(&named), &fields(true, true)).unwrap();
        assert!(!f.contains("display_name") && f.contains("labels"));
        let unknown = paths(&["labels", "tenant_id"]);
        let err = UpdateFields::resolve(Some(&unknown), &fields(true, true)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("update_mask.paths[1]") && text.contains("`tenant_id`"), "{text}");
        assert!(text.contains("display_name, labels"), "{text}");
    }
}
