//! Every text field of every RPC, with nasty text (issue 14): control characters, escape
//! sequences, invalid UTF-8 (lone surrogates), 1 MB strings, long unicode. Whatever the field,
//! the answer is a clear status, never INTERNAL or UNKNOWN or a broken connection, and no
//! tenant's work stalls: the scoring queue drains and another tenant's event is still scored.
//!
//! The RPCs and their fields come from the contract's descriptors, so a new RPC or a new field
//! is covered without anyone listing it here. Requests are built and encoded by hand (raw
//! protobuf bytes) because invalid UTF-8 cannot be put in a Rust `String`. Both backends.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // tests build the timestamps a server checks from the wall clock (clippy.toml)

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kelvin_integration_tests::json::{b2b_spec, to_struct};
use kelvin_integration_tests::raw::RawCodec;
use kelvin_integration_tests::{TestApp, authed, eventually, fixtures, spawn_app};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::ingest_service_client::IngestServiceClient;
use kelvin_proto::v1::scoring_service_client::ScoringServiceClient;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use prost::Message as _;
use prost_types::field_descriptor_proto::Type;
use prost_types::{DescriptorProto, FileDescriptorSet};
use serde_json::json;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(60);
/// A unary call that takes longer than this is stalled.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

const ORG: &str = "fuzz-org";
const TENANT: &str = "fuzz-t";
const CALM_ORG: &str = "calm-org";
const CALM: &str = "calm-t";
/// The tenant of `Delete*` RPCs, made to be deleted (an empty etag deletes unconditionally).
const DOOMED: &str = "doomed-t";

// ---- The contract, read from its descriptors ---------------------------------------------

/// One RPC of the contract.
#[derive(Debug, Clone)]
struct Method {
    /// `/kelvin.v1.Service/Method`.
    path: String,
    input: String,
    server_streaming: bool,
}

struct Contract {
    messages: HashMap<String, DescriptorProto>,
    methods: Vec<Method>,
}

fn add_messages(out: &mut HashMap<String, DescriptorProto>, scope: &str, m: &DescriptorProto) {
    let full = format!("{scope}.{}", m.name());
    for nested in &m.nested_type {
        add_messages(out, &full, nested);
    }
    out.insert(full, m.clone());
}

fn contract() -> Contract {
    let set = FileDescriptorSet::decode(kelvin_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut messages = HashMap::new();
    let mut methods = Vec::new();
    for file in &set.file {
        let scope = format!(".{}", file.package());
        for m in &file.message_type {
            add_messages(&mut messages, &scope, m);
        }
        for service in &file.service {
            for method in &service.method {
                methods.push(Method {
                    path: format!("/{}.{}/{}", file.package(), service.name(), method.name()),
                    input: method.input_type().to_owned(),
                    server_streaming: method.server_streaming(),
                });
            }
        }
    }
    methods.sort_by(|a, b| a.path.cmp(&b.path));
    Contract { messages, methods }
}

// ---- Requests as trees of wire values ------------------------------------------------------

#[derive(Debug, Clone)]
enum Wire {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    /// A text field: raw bytes, so that they need not be UTF-8.
    Text(Vec<u8>),
    Message(Vec<Field>),
}

#[derive(Debug, Clone)]
struct Field {
    number: u32,
    name: String,
    value: Wire,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn encode(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        let key = u64::from(f.number) << 3;
        match &f.value {
            Wire::Varint(v) => {
                put_varint(&mut out, key);
                put_varint(&mut out, *v);
            }
            Wire::Fixed64(v) => {
                put_varint(&mut out, key | 1);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Wire::Fixed32(v) => {
                put_varint(&mut out, key | 5);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Wire::Text(bytes) => {
                put_varint(&mut out, key | 2);
                put_varint(&mut out, bytes.len() as u64);
                out.extend_from_slice(bytes);
            }
            Wire::Message(inner) => {
                let bytes = encode(inner);
                put_varint(&mut out, key | 2);
                put_varint(&mut out, bytes.len() as u64);
                out.extend_from_slice(&bytes);
            }
        }
    }
    out
}

fn field(number: u32, name: &str, value: Wire) -> Field {
    Field { number, name: name.to_owned(), value }
}

fn text(s: &str) -> Wire {
    Wire::Text(s.as_bytes().to_vec())
}

/// A JSON value as a `google.protobuf.Value`.
fn json_value(v: &serde_json::Value) -> Vec<Field> {
    use serde_json::Value as J;
    vec![match v {
        J::Null => field(1, "null_value", Wire::Varint(0)),
        J::Number(n) => field(2, "number_value", Wire::Fixed64(n.as_f64().unwrap().to_bits())),
        J::String(s) => field(3, "string_value", text(s)),
        J::Bool(b) => field(4, "bool_value", Wire::Varint(u64::from(*b))),
        J::Object(m) => field(5, "struct_value", Wire::Message(json_struct(m))),
        J::Array(a) => field(
            6,
            "list_value",
            Wire::Message(
                a.iter().map(|v| field(1, "values", Wire::Message(json_value(v)))).collect(),
            ),
        ),
    }]
}

/// A JSON object as a `google.protobuf.Struct`: map entries of key and value.
fn json_struct(m: &serde_json::Map<String, serde_json::Value>) -> Vec<Field> {
    m.iter()
        .map(|(k, v)| {
            field(
                1,
                "fields",
                Wire::Message(vec![
                    field(1, "key", text(k)),
                    field(2, "value", Wire::Message(json_value(v))),
                ]),
            )
        })
        .collect()
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Builds valid-looking requests from descriptors, so that each call reaches its handler (a
/// real tenant, a published model, a fresh event id) and the one nasty field is what is tested.
struct Builder<'a> {
    contract: &'a Contract,
    /// Makes ids of creates and events unique per request.
    serial: usize,
    /// The tenant the request names.
    tenant: &'static str,
}

impl Builder<'_> {
    fn text_for(&self, name: &str) -> String {
        match name {
            "tenant_id" | "id" => self.tenant.into(),
            "organization_id" => ORG.into(),
            "model_id" => "default".into(),
            "lead_id" | "lead_ids" => "lead-1".into(),
            "company_id" => "company-1".into(),
            "event_id" | "outcome_id" | "request_id" => format!("fz-{}", self.serial),
            "type" => "page_view".into(),
            "currency" => "EUR".into(),
            // A stale etag: updates and deletes of the tenant never apply.
            "etag" => "v999999".into(),
            "paths" => "display_name".into(),
            "template_id" => "tpl".into(),
            "page_token" => String::new(),
            "key" => "team".into(),
            _ => "fuzz text".into(),
        }
    }

    fn document(name: &str) -> serde_json::Value {
        match name {
            "spec" => b2b_spec(),
            "attributes" => json!({"country": "FR", "company_size": 120, "job_title": "Head"}),
            "properties" => json!({"url": "/pricing", "title": "Pricing"}),
            "parameters" => json!({"hot": 70, "label": "hot"}),
            _ => json!({"k": "v", "nested": {"list": ["a", 1]}}),
        }
    }

    fn message(&self, type_name: &str, depth: u32) -> Vec<Field> {
        let descriptor = &self.contract.messages[type_name];
        let mut out = Vec::new();
        for f in &descriptor.field {
            let number = u32::try_from(f.number()).unwrap();
            let name = f.name();
            let value = match f.r#type() {
                Type::String => text(&self.text_for(name)),
                Type::Message => match f.type_name() {
                    ".google.protobuf.Timestamp" => {
                        let at =
                            if name.contains("expire") { now_s() + 86_400 } else { now_s() - 60 };
                        Wire::Message(vec![field(1, "seconds", Wire::Varint(at as u64))])
                    }
                    ".google.protobuf.Duration" => {
                        Wire::Message(vec![field(1, "seconds", Wire::Varint(60))])
                    }
                    ".google.protobuf.Struct" => {
                        let serde_json::Value::Object(m) = Self::document(name) else {
                            unreachable!()
                        };
                        Wire::Message(json_struct(&m))
                    }
                    ".google.protobuf.Value" => Wire::Message(json_value(&json!("fuzz"))),
                    other if depth < 6 => Wire::Message(self.message(other, depth + 1)),
                    _ => continue,
                },
                Type::Int32 | Type::Int64 | Type::Uint32 | Type::Uint64 | Type::Enum => {
                    Wire::Varint(1)
                }
                Type::Sint32 | Type::Sint64 => Wire::Varint(2),
                Type::Double => Wire::Fixed64(1.0f64.to_bits()),
                Type::Float => Wire::Fixed32(1.0f32.to_bits()),
                Type::Fixed64 | Type::Sfixed64 => Wire::Fixed64(1),
                Type::Fixed32 | Type::Sfixed32 => Wire::Fixed32(1),
                // Flags stay off; bytes are not text.
                Type::Bool | Type::Bytes | Type::Group => continue,
            };
            // One element is enough for a repeated field, one entry for a map.
            out.push(field(number, name, value));
        }
        out
    }
}

/// The text fields of a request, depth first, with their paths (for failure messages).
fn text_paths(fields: &[Field], prefix: &str, out: &mut Vec<String>) {
    for f in fields {
        let path = if prefix.is_empty() { f.name.clone() } else { format!("{prefix}.{}", f.name) };
        match &f.value {
            Wire::Text(_) => out.push(path),
            Wire::Message(inner) => text_paths(inner, &path, out),
            _ => {}
        }
    }
}

/// Replaces the `target`-th text field (depth first) with `bytes`; returns whether it did.
fn replace_text(fields: &mut [Field], target: &mut usize, bytes: &[u8]) -> bool {
    for f in fields {
        let done = match &mut f.value {
            Wire::Text(t) if *target == 0 => {
                *t = bytes.to_vec();
                true
            }
            Wire::Text(_) => {
                *target -= 1;
                false
            }
            Wire::Message(inner) => replace_text(inner, target, bytes),
            _ => false,
        };
        if done {
            return true;
        }
    }
    false
}

// ---- Nasty text --------------------------------------------------------------------------

fn mb_ascii() -> Vec<u8> {
    vec![b'a'; 1 << 20]
}

fn mb_unicode() -> Vec<u8> {
    "é日🎉".repeat((1 << 20) / 9).into_bytes()
}

/// Valid text just over what a PostgreSQL index entry holds (2704 bytes), under most size
/// limits.
fn over_index_limit() -> Vec<u8> {
    "é".repeat(1500).into_bytes()
}

/// One piece of nasty text, as raw bytes.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => "[a-z0-9-]{1,12}".prop_map(String::into_bytes),
        2 => any::<String>().prop_map(String::into_bytes),
        1 => Just(b"\0".to_vec()),
        1 => Just(b"\x1b[2J\x1b]0;owned\x07".to_vec()),
        1 => Just("\u{85}\u{9b}31m".as_bytes().to_vec()),
        1 => Just(b"\x7f\x08\x0b\x0c".to_vec()),
        1 => Just(b"\t\r\n".to_vec()),
        // A lone surrogate (U+D800) as UTF-8 would write it: invalid UTF-8.
        1 => Just(b"\xed\xa0\x80".to_vec()),
        1 => Just(b"\xff\xfe\xc0\x80\xe2\x82".to_vec()),
        1 => Just(b"%_'\"\\;--".to_vec()),
        1 => Just("\u{202e}\u{200b}\u{feff}\u{fffd}".as_bytes().to_vec()),
        1 => Just("ﷺ".repeat(5000).into_bytes()),
        1 => Just(over_index_limit()),
        1 => Just(mb_ascii()),
        1 => Just(mb_unicode()),
    ]
}

fn nasty() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(piece(), 0..4).prop_map(|pieces| {
        let mut out = pieces.concat();
        // At most a little over 2 MB: the request stays under the transport's message limit
        // most of the time, and the larger ones check that limit's answer too.
        out.truncate((2 << 20) + 7);
        out
    })
}

// ---- Calls -------------------------------------------------------------------------------

/// Codes that say the server, not the caller, failed (or the connection broke).
const SERVER_FAULTS: [Code; 6] = [
    Code::Internal,
    Code::Unknown,
    Code::DataLoss,
    Code::Unavailable,
    Code::Unimplemented,
    Code::Cancelled,
];

/// Sends one request (as a stream of one message, which serves unary and streaming RPCs
/// alike) and returns its code; `Err` says what went wrong if the server failed or stalled.
async fn call(app: &TestApp, method: &Method, body: Vec<u8>) -> Result<Code, String> {
    let mut grpc = tonic::client::Grpc::new(app.channel.clone())
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    grpc.ready().await.map_err(|e| format!("channel not ready: {e}"))?;
    let path = tonic::codegen::http::uri::PathAndQuery::try_from(method.path.as_str()).unwrap();
    let request = authed(&app.admin_token, tokio_stream::once(body));
    let answer = async {
        let mut stream = match grpc.streaming(request, path, RawCodec).await {
            Ok(reply) => reply.into_inner(),
            Err(status) => return Err(status),
        };
        if method.server_streaming {
            // A watch that started may wait for changes as long as it likes.
            return match tokio::time::timeout(Duration::from_millis(300), stream.message()).await {
                Ok(Err(status)) => Err(status),
                _ => Ok(()),
            };
        }
        while stream.message().await?.is_some() {}
        Ok(())
    };
    match tokio::time::timeout(CALL_TIMEOUT, answer).await {
        Err(_) => Err(format!("{} stalled for {CALL_TIMEOUT:?}", method.path)),
        Ok(Ok(())) => Ok(Code::Ok),
        Ok(Err(status)) if SERVER_FAULTS.contains(&status.code()) => {
            Err(format!("{}: {:?}: {}", method.path, status.code(), status.message()))
        }
        Ok(Err(status)) if status.message().len() > 2048 => Err(format!(
            "{}: the message echoes {} bytes: {}…",
            method.path,
            status.message().len(),
            status.message().chars().take(100).collect::<String>()
        )),
        Ok(Err(status)) => Ok(status.code()),
    }
}

fn show(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.len() > 80 {
        format!("{:?}… ({} bytes)", s.chars().take(40).collect::<String>(), bytes.len())
    } else {
        format!("{s:?}")
    }
}

/// `method`'s valid request. `Delete*` RPCs name the tenant made to be deleted, so that the
/// others keep theirs.
fn base_request(contract: &Contract, serial: &AtomicUsize, method: &Method) -> Vec<Field> {
    let tenant = if method.path.contains("/Delete") { DOOMED } else { TENANT };
    let serial = serial.fetch_add(1, Ordering::Relaxed);
    Builder { contract, serial, tenant }.message(&method.input, 0)
}

/// Sends `method`'s valid request with its `pick(n)`-th text field (of `n`) replaced by
/// `bytes`.
async fn fuzz_one(
    app: &TestApp,
    contract: &Contract,
    serial: &AtomicUsize,
    method: &Method,
    pick: impl FnOnce(usize) -> usize,
    bytes: &[u8],
) -> Result<(), TestCaseError> {
    let mut request = base_request(contract, serial, method);
    let mut paths = Vec::new();
    text_paths(&request, "", &mut paths);
    let described = if paths.is_empty() {
        "(no text field)".to_owned()
    } else {
        let i = pick(paths.len());
        assert!(replace_text(&mut request, &mut i.clone(), bytes));
        paths[i].clone()
    };
    call(app, method, encode(&request))
        .await
        .map(drop)
        .map_err(|e| TestCaseError::fail(format!("{e}\n  field {described} = {}", show(bytes))))
}

async fn setup() -> TestApp {
    let app = spawn_app().await;
    for (org, tenant) in [(ORG, TENANT), (CALM_ORG, CALM)] {
        fixtures::org(&app, org).await;
        fixtures::tenant(&app, org, tenant).await;
        fixtures::publish(app.channel.clone(), &app.admin_token, tenant, "default", b2b_spec())
            .await;
    }
    fixtures::tenant(&app, ORG, DOOMED).await;
    app
}

async fn scored(app: &TestApp, tenant: &str, lead: &str) -> bool {
    ScoringServiceClient::new(app.channel.clone())
        .get_score(authed(
            &app.admin_token,
            pb::GetScoreRequest {
                tenant_id: tenant.into(),
                lead_id: lead.into(),
                model_id: String::new(),
            },
        ))
        .await
        .is_ok()
}

/// Issue 14: nasty text in any text field of any RPC gets a clear status, never a server
/// fault, a stall or an unbounded echo; afterwards the queue drains and another tenant's event
/// is scored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nasty_text_in_any_field_of_any_rpc_gets_a_clear_status_and_stalls_no_one() {
    let app = setup().await;
    let contract = contract();
    assert!(contract.methods.len() >= 44, "{} RPCs", contract.methods.len());
    let serial = AtomicUsize::new(0);

    // The valid base requests reach their handlers: most are answered OK as they are.
    let mut refused = Vec::new();
    for method in &contract.methods {
        let request = base_request(&contract, &serial, method);
        let code = call(&app, method, encode(&request)).await.unwrap();
        if code != Code::Ok {
            refused.push(format!("{} {code:?}", method.path));
        }
    }
    // (The others are refused by their handlers: a create of what exists, a publish of the
    // active version, a stale etag... after their text passed validation.)
    assert!(refused.len() * 3 < contract.methods.len(), "base requests refused: {refused:#?}");

    // Every text field of every RPC (each distinct path once: a spec's many rules are one
    // shape), with 1 MB and with 3 KB of valid unicode (they pass the check at the door, so
    // they are what reaches handlers and the database) and with a NUL.
    let mut fields = 0;
    for method in &contract.methods {
        let request = base_request(&contract, &serial, method);
        let mut paths = Vec::new();
        text_paths(&request, "", &mut paths);
        let mut seen = std::collections::HashSet::new();
        for (i, path) in paths.iter().enumerate() {
            if !seen.insert(path) {
                continue;
            }
            for bytes in [mb_unicode(), over_index_limit(), b"a\0b".to_vec()] {
                if let Err(e) = fuzz_one(&app, &contract, &serial, method, |_| i, &bytes).await {
                    panic!("{e}");
                }
            }
            fields += 1;
        }
    }
    assert!(fields > 100, "only {fields} text fields");

    // Then random nasty text in a random field of every RPC, per case.
    let handle = tokio::runtime::Handle::current();
    let mut runner =
        TestRunner::new(Config { cases: 24, failure_persistence: None, ..Config::default() });
    let strategy = proptest::collection::vec((any::<Index>(), nasty()), contract.methods.len());
    let result = runner.run(&strategy, |inputs| {
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                for (method, (slot, bytes)) in contract.methods.iter().zip(&inputs) {
                    fuzz_one(&app, &contract, &serial, method, |n| slot.index(n), bytes).await?;
                }
                Ok(())
            })
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }

    // No tenant's work is stuck: the queue drains (the fuzzed tenant's accepted events
    // included), and a plain event of another tenant is scored.
    eventually(WAIT, "the scoring queue to drain", || async {
        (app.runtime.store.pending_scoring_work().await.unwrap() == 0).then_some(())
    })
    .await;
    for tenant in [CALM, TENANT] {
        let reply = IngestServiceClient::new(app.channel.clone())
            .ingest_events(authed(
                &app.admin_token,
                pb::IngestEventsRequest {
                    tenant_id: tenant.into(),
                    events: vec![pb::EventInput {
                        event_id: "plain-1".into(),
                        lead_id: "plain-lead".into(),
                        r#type: "page_view".into(),
                        time: Some(prost_types::Timestamp { seconds: now_s() - 60, nanos: 0 }),
                        properties: Some(to_struct(json!({ "url": "/pricing" }))),
                    }],
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.results[0].status, pb::ItemStatus::Accepted as i32, "{reply:?}");
        eventually(WAIT, "a plain event is scored", || async {
            scored(&app, tenant, "plain-lead").await.then_some(())
        })
        .await;
    }
    eventually(WAIT, "the scoring queue to drain again", || async {
        (app.runtime.store.pending_scoring_work().await.unwrap() == 0).then_some(())
    })
    .await;
}

// ---- Findings 12 -------------------------------------------------------------------------

/// Finding 12: a 1 MB id came back whole in the error message (too big for the `grpc-message`
/// header, so the caller saw a broken call instead).
#[tokio::test]
async fn a_one_megabyte_id_is_not_echoed() {
    let app = spawn_app().await;
    let id = "é".repeat(1 << 19);
    let status = app
        .tenants()
        .get_tenant(authed(&app.admin_token, pb::GetTenantRequest { tenant_id: id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{:?}", status.code());
    assert!(status.message().len() <= 1024, "{} bytes", status.message().len());
    assert!(status.message().contains("éééé…"), "{}", status.message());
}

/// Finding 12: `_` and `%` in ListAuditEvents' model filter were LIKE wildcards, so `a_c`
/// listed the events of model `abc` and `%` those of every model.
#[tokio::test]
async fn the_audit_model_filter_is_exact() {
    let app = spawn_app().await;
    fixtures::org(&app, "acme").await;
    fixtures::tenant(&app, "acme", "acme-fr").await;
    fixtures::publish(app.channel.clone(), &app.admin_token, "acme-fr", "abc", b2b_spec()).await;
    fixtures::publish(app.channel.clone(), &app.admin_token, "acme-fr", "abd", b2b_spec()).await;
    let list = |model: &'static str| {
        let mut api = app.tenants();
        let token = app.admin_token.clone();
        async move {
            api.list_audit_events(authed(
                &token,
                pb::ListAuditEventsRequest {
                    organization_id: "acme".into(),
                    tenant_id: "acme-fr".into(),
                    model_id: model.into(),
                    page_size: 100,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .audit_events
            .into_iter()
            .map(|e| e.resource)
            .collect::<Vec<_>>()
        }
    };
    let abc = list("abc").await;
    assert!(abc.len() >= 3, "create, version, publish: {abc:?}");
    assert!(abc.iter().all(|r| r.starts_with("tenants/acme-fr/models/abc")), "{abc:?}");
    for pattern in ["a_c", "ab_", "%", "ab%", "a%c", "ab", "ABC"] {
        assert_eq!(list(pattern).await, Vec::<String>::new(), "model filter {pattern:?}");
    }
}
