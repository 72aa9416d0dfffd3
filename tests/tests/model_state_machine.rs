//! A state-machine property test of ModelService: random sequences of create / draft / publish /
//! rollback / apply-template across several tenants, checked after every step against a simple
//! model of what must be true.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use kelvin_integration_tests::json::{b2b_spec, to_struct, value};
use kelvin_integration_tests::{TestApp, authed, fixtures, spawn_app};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::model_service_client::ModelServiceClient;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;

const TENANTS: usize = 3;
const MODELS: [&str; 2] = ["default", "product-x"];

#[derive(Debug, Clone)]
enum Op {
    CreateModel { t: usize, m: usize },
    Draft { t: usize, m: usize, hot: i64 },
    Publish { t: usize, m: usize, pick: usize, stale: bool },
    Rollback { t: usize, m: usize, pick: usize, stale: bool },
    Apply { tenants: Vec<usize>, publish: bool, hot: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    let t = 0..TENANTS;
    let m = 0..MODELS.len();
    prop_oneof![
        (t.clone(), m.clone()).prop_map(|(t, m)| Op::CreateModel { t, m }),
        // Few thresholds, so that applies often meet a version with their spec (unchanged, or
        // a draft reused).
        (t.clone(), m.clone(), 58i64..63).prop_map(|(t, m, hot)| Op::Draft { t, m, hot }),
        (t.clone(), m.clone(), 0usize..8, proptest::bool::weighted(0.2))
            .prop_map(|(t, m, pick, stale)| Op::Publish { t, m, pick, stale }),
        (t.clone(), m.clone(), 0usize..8, proptest::bool::weighted(0.2))
            .prop_map(|(t, m, pick, stale)| Op::Rollback { t, m, pick, stale }),
        (
            proptest::sample::subsequence((0..TENANTS).collect::<Vec<_>>(), 1..=TENANTS),
            any::<bool>(),
            60i64..63
        )
            .prop_map(|(tenants, publish, hot)| Op::Apply { tenants, publish, hot }),
    ]
}

/// What must be true of one model.
#[derive(Debug, Clone, Default)]
struct Expected {
    active: i64,
    /// Per version (index 0 = version 1): the spec as first seen, and whether published.
    versions: Vec<(Option<prost_types::Struct>, bool)>,
    /// Per version: the hot threshold it was made with (the only part of a spec that varies).
    hots: Vec<i64>,
}

struct World<'a> {
    app: &'a TestApp,
    tenants: Vec<String>,
    /// A tenant-limited admin token per tenant.
    tokens: Vec<String>,
    models: BTreeMap<(usize, usize), Expected>,
    audit_rows: Vec<usize>,
}

fn api(app: &TestApp) -> ModelServiceClient<Channel> {
    ModelServiceClient::new(app.channel.clone())
}

fn spec(hot: i64) -> prost_types::Struct {
    let mut spec = b2b_spec();
    spec["bands"]["thresholds"][0]["min"] = json!(hot);
    to_struct(spec)
}

fn check(cond: bool, message: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if cond { Ok(()) } else { Err(TestCaseError::fail(message())) }
}

fn code<T>(r: &Result<T, tonic::Status>) -> Code {
    r.as_ref().map(|_| Code::Ok).unwrap_or_else(tonic::Status::code)
}

impl World<'_> {
    fn token(&self, t: usize) -> &str {
        &self.tokens[t]
    }

    async fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op.clone() {
            Op::CreateModel { t, m } => {
                let r = api(self.app)
                    .create_model(authed(
                        self.token(t),
                        pb::CreateModelRequest {
                            tenant_id: self.tenants[t].clone(),
                            model_id: MODELS[m].into(),
                            display_name: String::new(),
                        },
                    ))
                    .await;
                let exists = self.models.contains_key(&(t, m));
                check(code(&r) == if exists { Code::AlreadyExists } else { Code::Ok }, || {
                    format!("{op:?}: {r:?}")
                })?;
                if !exists {
                    self.models.insert((t, m), Expected::default());
                    self.audit_rows[t] += 1;
                }
            }
            Op::Draft { t, m, hot } => {
                let r = api(self.app)
                    .create_model_version(authed(
                        self.token(t),
                        pb::CreateModelVersionRequest {
                            tenant_id: self.tenants[t].clone(),
                            model_id: MODELS[m].into(),
                            spec: Some(spec(hot)),
                            comment: String::new(),
                        },
                    ))
                    .await;
                match self.models.get_mut(&(t, m)) {
                    None => check(code(&r) == Code::NotFound, || format!("{op:?}: {r:?}"))?,
                    Some(e) => {
                        let v = r
                            .map_err(|s| TestCaseError::fail(format!("{op:?}: {s:?}")))?
                            .into_inner()
                            .version
                            .unwrap();
                        check(v.version == e.versions.len() as i64 + 1, || {
                            format!("{op:?}: version {}", v.version)
                        })?;
                        e.versions.push((v.spec, false));
                        e.hots.push(hot);
                        self.audit_rows[t] += 1;
                    }
                }
            }
            Op::Publish { t, m, pick, stale } | Op::Rollback { t, m, pick, stale } => {
                let rollback = matches!(op, Op::Rollback { .. });
                let e = self.models.get(&(t, m)).cloned();
                let n = e.as_ref().map_or(0, |e| e.versions.len());
                let version = if n == 0 { 1 } else { (pick % n) as i64 + 1 };
                let active = e.as_ref().map_or(0, |e| e.active);
                let expected_active = if stale { active + 7 } else { active };
                let (tenant_id, model_id) = (self.tenants[t].clone(), MODELS[m].to_owned());
                let r = if rollback {
                    api(self.app)
                        .rollback_model(authed(
                            self.token(t),
                            pb::RollbackModelRequest {
                                tenant_id,
                                model_id,
                                to_version: version,
                                expected_active_version: expected_active,
                                comment: "prop".into(),
                            },
                        ))
                        .await
                        .map(|_| ())
                } else {
                    api(self.app)
                        .publish_model_version(authed(
                            self.token(t),
                            pb::PublishModelVersionRequest {
                                tenant_id,
                                model_id,
                                version,
                                expected_active_version: expected_active,
                                comment: "prop".into(),
                            },
                        ))
                        .await
                        .map(|_| ())
                };
                let want = match &e {
                    None => Code::NotFound,
                    Some(_) if n == 0 => Code::NotFound,
                    Some(_) if stale => Code::Aborted,
                    Some(_) if version == active => Code::FailedPrecondition,
                    Some(e) if rollback && !e.versions[version as usize - 1].1 => {
                        Code::FailedPrecondition
                    }
                    Some(_) => Code::Ok,
                };
                check(code(&r) == want, || format!("{op:?}: want {want:?}, got {r:?}"))?;
                if want == Code::Ok {
                    let e = self.models.get_mut(&(t, m)).unwrap();
                    e.active = version;
                    e.versions[version as usize - 1].1 = true;
                    self.audit_rows[t] += 1;
                }
            }
            Op::Apply { tenants, publish, hot } => {
                let targets = tenants
                    .iter()
                    .map(|&t| pb::TemplateTarget {
                        tenant_id: self.tenants[t].clone(),
                        model_id: "default".into(),
                        parameters: Some(to_struct(json!({"hot": hot}))),
                    })
                    .collect();
                let reply = api(self.app)
                    .apply_template(authed(
                        &self.app.admin_token,
                        pb::ApplyTemplateRequest {
                            organization_id: "prop".into(),
                            template_id: "tpl".into(),
                            targets,
                            publish,
                            comment: "prop".into(),
                        },
                    ))
                    .await
                    .map_err(|s| TestCaseError::fail(format!("{op:?}: {s:?}")))?
                    .into_inner();
                for (result, &t) in reply.results.iter().zip(&tenants) {
                    check(result.code == 0, || format!("{op:?}: {result:?}"))?;
                    let e = self.models.entry((t, 0)).or_insert_with(|| {
                        self.audit_rows[t] += 1;
                        Expected::default()
                    });
                    // The active version already has this spec: nothing happens.
                    if e.active > 0 && e.hots[e.active as usize - 1] == hot {
                        check(
                            result.unchanged && result.published && result.version == e.active,
                            || format!("{op:?}: unchanged expected, got {result:?}"),
                        )?;
                        continue;
                    }
                    // A draft newer than the active version with this spec is reused.
                    let latest = e.versions.len() as i64;
                    let reuse = latest > e.active && e.hots[latest as usize - 1] == hot;
                    let version = if reuse { latest } else { latest + 1 };
                    check(!result.unchanged && result.version == version, || {
                        format!("{op:?}: version {version} expected, got {result:?}")
                    })?;
                    if !reuse {
                        e.versions.push((None, false));
                        e.hots.push(hot);
                        self.audit_rows[t] += 1;
                    }
                    if publish {
                        e.active = version;
                        e.versions[version as usize - 1].1 = true;
                        self.audit_rows[t] += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// Every invariant, for the tenants in `touched` (the others did not change).
    async fn invariants(&mut self, touched: &[usize]) -> Result<(), TestCaseError> {
        for &t in touched {
            for (m, model_id) in MODELS.iter().enumerate() {
                let Some(e) = self.models.get_mut(&(t, m)) else { continue };
                let model = api(self.app)
                    .get_model(authed(
                        &self.tokens[t],
                        pb::GetModelRequest {
                            tenant_id: self.tenants[t].clone(),
                            model_id: (*model_id).into(),
                        },
                    ))
                    .await
                    .map_err(|s| TestCaseError::fail(format!("get_model: {s:?}")))?
                    .into_inner()
                    .model
                    .unwrap();
                check(model.active_version == e.active, || {
                    format!("{t}/{model_id}: active {} vs {}", model.active_version, e.active)
                })?;
                let versions = api(self.app)
                    .list_model_versions(authed(
                        &self.tokens[t],
                        pb::ListModelVersionsRequest {
                            tenant_id: self.tenants[t].clone(),
                            model_id: (*model_id).into(),
                            page_size: 1000,
                            page_token: String::new(),
                        },
                    ))
                    .await
                    .map_err(|s| TestCaseError::fail(format!("list versions: {s:?}")))?
                    .into_inner()
                    .versions;
                check(versions.len() == e.versions.len(), || {
                    format!("{t}/{model_id}: {} versions", versions.len())
                })?;
                let actives = versions.iter().filter(|v| v.active).count();
                check(actives == usize::from(e.active > 0), || {
                    format!("{t}/{model_id}: {actives} active versions")
                })?;
                for v in &versions {
                    let slot = &mut e.versions[v.version as usize - 1];
                    let published = v.state == pb::ModelVersionState::Published as i32;
                    check(published == slot.1, || {
                        format!("{t}/{model_id}@{}: published {published}", v.version)
                    })?;
                    match &slot.0 {
                        // Versions never change once written, published or not.
                        Some(seen) => check(v.spec.as_ref() == Some(seen), || {
                            format!("{t}/{model_id}@{} changed", v.version)
                        })?,
                        None => slot.0 = v.spec.clone(),
                    }
                }
            }
            let audit = self
                .app
                .tenants()
                .list_audit_events(authed(
                    &self.app.admin_token,
                    pb::ListAuditEventsRequest {
                        organization_id: "prop".into(),
                        tenant_id: self.tenants[t].clone(),
                        page_size: 1000,
                        ..Default::default()
                    },
                ))
                .await
                .map_err(|s| TestCaseError::fail(format!("audit: {s:?}")))?
                .into_inner()
                .audit_events;
            // Rows of this case: everything but the tenant's creation and its key.
            let model_rows = audit.iter().filter(|e| e.action.starts_with("model")).count();
            check(model_rows == self.audit_rows[t], || {
                format!("tenant {t}: {model_rows} audit rows, expected {}", self.audit_rows[t])
            })?;
            // Nothing is visible across tenants.
            let other = (t + 1) % TENANTS;
            let status = api(self.app)
                .list_models(authed(
                    &self.tokens[t],
                    pb::ListModelsRequest {
                        tenant_id: self.tenants[other].clone(),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap_err();
            check(status.code() == Code::NotFound, || {
                format!("tenant {t} sees tenant {other}: {status:?}")
            })?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_model_lifecycles_keep_every_invariant() {
    let app = spawn_app().await;
    fixtures::org(&app, "prop").await;
    let mut template_spec = b2b_spec();
    template_spec["bands"]["thresholds"][0]["min"] = json!("${hot}");
    api(&app)
        .create_template(authed(
            &app.admin_token,
            pb::CreateTemplateRequest {
                template: Some(pb::Template {
                    organization_id: "prop".into(),
                    template_id: "tpl".into(),
                    spec: Some(to_struct(template_spec)),
                    parameters: vec![pb::TemplateParameter {
                        name: "hot".into(),
                        description: String::new(),
                        default_value: Some(value(json!(70))),
                    }],
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();

    let handle = tokio::runtime::Handle::current();
    let case = AtomicUsize::new(0);
    let mut runner =
        TestRunner::new(Config { cases: 24, failure_persistence: None, ..Config::default() });
    let result = runner.run(&proptest::collection::vec(op(), 1..14), |ops| {
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                let n = case.fetch_add(1, Ordering::Relaxed);
                let mut tenants = Vec::new();
                let mut tokens = Vec::new();
                for t in 0..TENANTS {
                    let id = format!("c{n}-t{t}");
                    fixtures::tenant(&app, "prop", &id).await;
                    tokens.push(fixtures::token(&app, "prop", &id, pb::Role::Admin).await.0);
                    tenants.push(id);
                }
                let mut world = World {
                    app: &app,
                    tenants,
                    tokens,
                    models: BTreeMap::new(),
                    audit_rows: vec![0; TENANTS],
                };
                for op in &ops {
                    world.step(op).await?;
                    let touched = match op {
                        Op::CreateModel { t, .. }
                        | Op::Draft { t, .. }
                        | Op::Publish { t, .. }
                        | Op::Rollback { t, .. } => vec![*t],
                        Op::Apply { tenants, .. } => tenants.clone(),
                    };
                    world.invariants(&touched).await?;
                }
                world.invariants(&(0..TENANTS).collect::<Vec<_>>()).await?;
                Ok(())
            })
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    app.stop().await;
}
