//! Stored models, versions, diffs and templates as the contract's messages.

use kelvin_proto::v1 as pb;
use kelvin_store::{ModelVersionRecord, ScoringModel, TemplateRecord};

use crate::convert::{self, pb_value, timestamp};
use crate::diff::{self, Change};

pub(super) fn model_pb(m: ScoringModel) -> pb::Model {
    pb::Model {
        tenant_id: m.tenant_id,
        model_id: m.id,
        display_name: m.display_name,
        active_version: m.active_version,
        latest_version: m.latest_version,
        create_time: Some(timestamp(m.create_time_ms)),
        update_time: Some(timestamp(m.update_time_ms)),
        etag: m.etag,
    }
}

pub(super) fn version_pb(v: ModelVersionRecord) -> pb::ModelVersion {
    pb::ModelVersion {
        tenant_id: v.tenant_id,
        model_id: v.model_id,
        version: v.version,
        state: if v.publish_time_ms.is_some() {
            pb::ModelVersionState::Published
        } else {
            pb::ModelVersionState::Draft
        } as i32,
        spec: convert::json_struct(v.spec),
        spec_sha256: v.spec_sha256,
        creator: v.creator,
        create_time: Some(timestamp(v.create_time_ms)),
        publish_time: v.publish_time_ms.map(timestamp),
        active: v.active,
        comment: v.comment,
    }
}

pub(super) fn change_pb(c: Change) -> pb::ModelChange {
    pb::ModelChange {
        section: c.section,
        rule_id: c.rule_id,
        kind: match c.kind {
            diff::Kind::Added => pb::ChangeKind::Added,
            diff::Kind::Removed => pb::ChangeKind::Removed,
            diff::Kind::Changed => pb::ChangeKind::Changed,
        } as i32,
        field: c.field,
        before: c.before.map(pb_value),
        after: c.after.map(pb_value),
    }
}

pub(super) fn template_pb(t: TemplateRecord) -> pb::Template {
    pb::Template {
        organization_id: t.org_id,
        template_id: t.id,
        display_name: t.display_name,
        spec: convert::json_struct(t.spec),
        parameters: t
            .parameters
            .into_iter()
            .map(|p| pb::TemplateParameter {
                name: p.name,
                description: p.description,
                default_value: p.default.map(pb_value),
            })
            .collect(),
        creator: t.creator,
        create_time: Some(timestamp(t.create_time_ms)),
    }
}
