//! Conversions between the store's resources and the contract's messages.

use kelvin_auth::Role;
use kelvin_proto::v1 as pb;
use kelvin_server::ApiError;
use prost_types::{Struct, Timestamp};

pub(crate) use kelvin_proto::convert::timestamp;

/// Unix milliseconds of `ts`, or INVALID_ARGUMENT naming `field`.
pub(crate) fn millis(field: &str, ts: &Timestamp) -> Result<i64, ApiError> {
    kelvin_proto::convert::millis(ts)
        .ok_or_else(|| ApiError::invalid(field, "out of range or malformed"))
}

pub(crate) fn role_to_pb(role: Role) -> pb::Role {
    match role {
        Role::Admin => pb::Role::Admin,
        Role::Editor => pb::Role::Editor,
        Role::Ingest => pb::Role::Ingest,
        Role::Reader => pb::Role::Reader,
    }
}

pub(crate) fn role_from_pb(field: &str, value: i32) -> Result<Role, ApiError> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        Ok(pb::Role::Editor) => Ok(Role::Editor),
        Ok(pb::Role::Ingest) => Ok(Role::Ingest),
        Ok(pb::Role::Reader) => Ok(Role::Reader),
        Ok(pb::Role::Unspecified) => Err(ApiError::invalid(field, "is required")),
        Err(_) => Err(ApiError::invalid(field, format!("unknown role {value}"))),
    }
}

pub(crate) fn organization(o: kelvin_store::Organization) -> pb::Organization {
    pb::Organization {
        organization_id: o.id,
        display_name: o.display_name,
        create_time: Some(timestamp(o.create_time_ms)),
        update_time: Some(timestamp(o.update_time_ms)),
        etag: o.etag,
    }
}

pub(crate) fn tenant(t: kelvin_store::Tenant) -> pb::Tenant {
    pb::Tenant {
        tenant_id: t.id,
        organization_id: t.org_id,
        display_name: t.display_name,
        labels: t.labels.into_iter().collect(),
        state: match t.state {
            kelvin_store::TenantState::Active => pb::TenantState::Active,
            kelvin_store::TenantState::Deleted => pb::TenantState::Deleted,
        } as i32,
        create_time: Some(timestamp(t.create_time_ms)),
        update_time: Some(timestamp(t.update_time_ms)),
        delete_time: t.delete_time_ms.map(timestamp),
        purge_time: t.purge_time_ms.map(timestamp),
        etag: t.etag,
    }
}

pub(crate) fn api_key(k: kelvin_store::ApiKey) -> pb::ApiKey {
    pb::ApiKey {
        api_key_id: k.id,
        organization_id: k.org_id.unwrap_or_default(),
        tenant_id: k.tenant_id.unwrap_or_default(),
        role: role_to_pb(k.role) as i32,
        display_name: k.display_name,
        create_time: Some(timestamp(k.create_time_ms)),
        expire_time: Some(timestamp(k.expire_time_ms)),
        revoke_time: k.revoke_time_ms.map(timestamp),
        creator: k.creator,
    }
}

pub(crate) fn audit_event(e: kelvin_store::AuditEvent) -> pb::AuditEvent {
    pb::AuditEvent {
        audit_event_id: e.id,
        organization_id: e.org_id.unwrap_or_default(),
        tenant_id: e.tenant_id.unwrap_or_default(),
        actor: e.actor,
        action: e.action,
        resource: e.resource,
        before: e.before.and_then(json_struct),
        after: e.after.and_then(json_struct),
        time: Some(timestamp(e.time_ms)),
        request_id: e.request_id,
        reason: e.reason,
    }
}

/// A JSON object as a `google.protobuf.Struct` (other JSON values are not objects: `None`).
pub(crate) fn json_struct(value: serde_json::Value) -> Option<Struct> {
    match value {
        serde_json::Value::Object(map) => Some(kelvin_proto::convert::json_struct(map)),
        _ => None,
    }
}

/// A `google.protobuf.Struct` as a JSON object value.
pub(crate) fn struct_json(s: Struct) -> serde_json::Value {
    serde_json::Value::Object(kelvin_proto::convert::struct_json(s))
}

pub(crate) use kelvin_proto::convert::{json_value as pb_value, value_json};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bad_timestamps_name_their_field() {
        let bad = Timestamp { seconds: 0, nanos: -1 };
        assert!(millis("expire_time", &bad).unwrap_err().to_string().contains("expire_time"));
    }

    #[test]
    fn json_objects_become_structs() {
        let s =
            json_struct(serde_json::json!({"a": 1, "b": [true, null], "c": {"d": "e"}})).unwrap();
        assert_eq!(s.fields.len(), 3);
        assert!(json_struct(serde_json::json!(3)).is_none());
    }
}
