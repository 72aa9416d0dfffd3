//! `kelvinctl orgs`, `tenants` and `keys`: organizations, their tenants and API keys.

use anyhow::{Context as _, Result, bail};
use kelvin_proto::convert::timestamp;
use kelvin_proto::v1 as pb;
use serde_json::Value;

use super::Kelvin;
use crate::output::{self, Format};
use crate::resources as res;
use crate::{KeyCmd, OrgCmd, TenantCmd};

pub(super) async fn org_cmd(k: &Kelvin, cmd: OrgCmd, format: Format) -> Result<()> {
    match cmd {
        OrgCmd::Create { id, name } => {
            let o = k
                .tenants()
                .create_organization(k.req(pb::CreateOrganizationRequest {
                    organization_id: id,
                    display_name: name,
                    request_id: String::new(),
                })?)
                .await?
                .into_inner()
                .organization
                .unwrap_or_default();
            output::print(
                format,
                &res::organization(o),
                &[("ORGANIZATION", "organization_id"), ("NAME", "display_name")],
            )
        }
        OrgCmd::List => {
            let orgs = k
                .list_all(None, |page_token, page_size| async move {
                    let request = pb::ListOrganizationsRequest { page_size, page_token };
                    let r = k.tenants().list_organizations(k.req(request)?).await?.into_inner();
                    Ok((r.organizations, r.next_page_token))
                })
                .await?;
            let rows: Vec<Value> = orgs.into_iter().map(res::organization).collect();
            output::print(
                format,
                &Value::Array(rows),
                &[
                    ("ORGANIZATION", "organization_id"),
                    ("NAME", "display_name"),
                    ("CREATED", "create_time"),
                ],
            )
        }
    }
}

fn role(name: &str) -> Result<pb::Role> {
    Ok(match name {
        "admin" => pb::Role::Admin,
        "editor" => pb::Role::Editor,
        "ingest" => pb::Role::Ingest,
        "reader" => pb::Role::Reader,
        other => bail!("unknown role `{other}` (admin, editor, ingest, reader)"),
    })
}

const TENANT_COLUMNS: &[output::Column] = &[
    ("TENANT", "tenant_id"),
    ("ORGANIZATION", "organization_id"),
    ("NAME", "display_name"),
    ("STATE", "state"),
];

pub(super) async fn tenant_cmd(k: &Kelvin, cmd: TenantCmd, format: Format) -> Result<()> {
    let t = match cmd {
        TenantCmd::Create { org, id, name, labels } => {
            let mut map = std::collections::HashMap::new();
            for l in labels {
                let (key, value) =
                    l.split_once('=').with_context(|| format!("label `{l}` is not key=value"))?;
                map.insert(key.to_owned(), value.to_owned());
            }
            k.tenants()
                .create_tenant(k.req(pb::CreateTenantRequest {
                    organization_id: org,
                    tenant_id: id,
                    display_name: name,
                    labels: map,
                    request_id: String::new(),
                })?)
                .await?
                .into_inner()
                .tenant
        }
        TenantCmd::List { org } => {
            let request = pb::ListTenantsRequest { organization_id: org, ..Default::default() };
            let tenants = k
                .list_all(None, |page_token, page_size| {
                    let request =
                        pb::ListTenantsRequest { page_size, page_token, ..request.clone() };
                    async move {
                        let r = k.tenants().list_tenants(k.req(request)?).await?.into_inner();
                        Ok((r.tenants, r.next_page_token))
                    }
                })
                .await?;
            let rows: Vec<Value> = tenants.into_iter().map(res::tenant).collect();
            return output::print(format, &Value::Array(rows), TENANT_COLUMNS);
        }
        TenantCmd::Get { id } => {
            k.tenants()
                .get_tenant(k.req(pb::GetTenantRequest { tenant_id: id })?)
                .await?
                .into_inner()
                .tenant
        }
        TenantCmd::Delete { id } => {
            k.tenants()
                .delete_tenant(
                    k.req(pb::DeleteTenantRequest { tenant_id: id, etag: String::new() })?,
                )
                .await?
                .into_inner()
                .tenant
        }
    };
    output::print(format, &res::tenant(t.unwrap_or_default()), TENANT_COLUMNS)
}

const KEY_COLUMNS: &[output::Column] = &[
    ("KEY", "api_key_id"),
    ("TENANT", "tenant_id"),
    ("ROLE", "role"),
    ("NAME", "display_name"),
    ("EXPIRES", "expire_time"),
    ("REVOKED", "revoke_time"),
];

pub(super) async fn key_cmd(k: &Kelvin, cmd: KeyCmd, format: Format) -> Result<()> {
    match cmd {
        KeyCmd::Create { org, tenant, role: r, name, days } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as i64;
            let reply = k
                .tenants()
                .create_api_key(k.req(pb::CreateApiKeyRequest {
                    organization_id: org,
                    tenant_id: tenant,
                    role: role(&r)? as i32,
                    display_name: name,
                    expire_time: Some(timestamp(now + days * 86_400_000)),
                })?)
                .await?
                .into_inner();
            let mut value = res::api_key(reply.api_key.unwrap_or_default());
            value["token"] = Value::String(reply.token);
            output::print(
                format,
                &value,
                &[("KEY", "api_key_id"), ("ROLE", "role"), ("TOKEN", "token")],
            )
        }
        KeyCmd::List { org, tenant, show_revoked } => {
            let request = pb::ListApiKeysRequest {
                organization_id: org,
                tenant_id: tenant,
                show_revoked,
                ..Default::default()
            };
            let keys = k
                .list_all(None, |page_token, page_size| {
                    let request =
                        pb::ListApiKeysRequest { page_size, page_token, ..request.clone() };
                    async move {
                        let r = k.tenants().list_api_keys(k.req(request)?).await?.into_inner();
                        Ok((r.api_keys, r.next_page_token))
                    }
                })
                .await?;
            let rows: Vec<Value> = keys.into_iter().map(res::api_key).collect();
            output::print(format, &Value::Array(rows), KEY_COLUMNS)
        }
        KeyCmd::Revoke { id } => {
            let key = k
                .tenants()
                .revoke_api_key(k.req(pb::RevokeApiKeyRequest { api_key_id: id })?)
                .await?
                .into_inner()
                .api_key;
            output::print(format, &res::api_key(key.unwrap_or_default()), KEY_COLUMNS)
        }
    }
}
