//! The codec of every service and client: prost, plus one check of every request at the door.
//!
//! Every text field of every request message, at any depth (including the strings and keys of
//! `google.protobuf.Struct` documents such as model specs and event properties), is checked
//! before the message reaches a handler: valid UTF-8 and no control characters other than tab
//! and line breaks. A NUL that PostgreSQL refuses, or an escape sequence that rewrites an
//! operator's terminal, can therefore never be stored, whatever the handler forgets. The walk
//! reads the wire format with the contract's own descriptors, so a new field of a new RPC is
//! checked without anyone writing code for it. Malformed messages are INVALID_ARGUMENT (the
//! caller's fault), not INTERNAL.

use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::sync::OnceLock;

use prost::bytes::Buf as _;
use prost::{Message, Name};
use prost_types::field_descriptor_proto::{Label, Type};
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

/// Nesting deeper than this is refused (prost's own recursion limit is 100).
const MAX_DEPTH: u32 = 100;

/// A text field that fails the check: its path in the request and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: String,
    pub reason: String,
}

impl Violation {
    fn into_status(self) -> Status {
        use tonic_types::{ErrorDetails, FieldViolation, StatusExt as _};
        let message = format!("invalid {}: {}", self.path, self.reason);
        let details =
            ErrorDetails::with_bad_request(vec![FieldViolation::new(self.path, self.reason)]);
        Status::with_error_details(tonic::Code::InvalidArgument, message, details)
    }
}

/// Why a text value is refused, if it is.
pub fn text_problem(text: &str) -> Option<String> {
    let (at, c) = text.char_indices().find(|(_, c)| is_forbidden(*c))?;
    Some(format!("must not contain control characters (U+{:04X} at byte {at})", u32::from(c)))
}

/// Control characters other than tab, line feed and carriage return (C0, DEL and C1).
pub fn is_forbidden(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

#[derive(Debug, Clone)]
enum Kind {
    Text,
    Message(String),
    Other,
}

#[derive(Debug)]
struct Field {
    name: String,
    kind: Kind,
    repeated: bool,
}

#[derive(Debug, Default)]
struct MessageInfo {
    fields: HashMap<u32, Field>,
    map_entry: bool,
}

/// The contract's messages (by full name, without the leading dot) and the request types.
#[derive(Debug, Default)]
struct Schema {
    messages: HashMap<String, MessageInfo>,
    requests: HashSet<String>,
    /// Paths (`/kelvin.v1.Service/Method`) of client- or server-streaming methods.
    streaming: HashSet<String>,
}

/// Whether the method at `path` (`/package.Service/Method`) streams requests or responses.
pub fn is_streaming(path: &str) -> bool {
    schema().streaming.contains(path)
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut schema = Schema::default();
        // The descriptor set is generated at build time from the same contract; it decodes.
        let Ok(set) = prost_types::FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET) else {
            return schema;
        };
        for file in &set.file {
            let package = file.package();
            for m in &file.message_type {
                add_message(&mut schema, package, m);
            }
            for service in &file.service {
                for method in &service.method {
                    schema.requests.insert(method.input_type().trim_start_matches('.').to_owned());
                    if method.client_streaming() || method.server_streaming() {
                        schema.streaming.insert(format!(
                            "/{package}.{}/{}",
                            service.name(),
                            method.name()
                        ));
                    }
                }
            }
        }
        schema
    })
}

fn add_message(schema: &mut Schema, scope: &str, m: &prost_types::DescriptorProto) {
    let full = if scope.is_empty() { m.name().to_owned() } else { format!("{scope}.{}", m.name()) };
    let mut info = MessageInfo {
        map_entry: m.options.as_ref().is_some_and(|o| o.map_entry()),
        ..MessageInfo::default()
    };
    for f in &m.field {
        let kind = match f.r#type() {
            Type::String => Kind::Text,
            Type::Message => Kind::Message(f.type_name().trim_start_matches('.').to_owned()),
            _ => Kind::Other,
        };
        let Ok(number) = u32::try_from(f.number()) else { continue };
        info.fields.insert(
            number,
            Field { name: f.name().to_owned(), kind, repeated: f.label() == Label::Repeated },
        );
    }
    for nested in &m.nested_type {
        add_message(schema, &full, nested);
    }
    schema.messages.insert(full, info);
}

/// Checks every text field of an encoded request of type `message` (full name). Messages that
/// are not request types of the contract are not checked.
pub fn check_request(message: &str, bytes: &[u8]) -> Result<(), Violation> {
    let schema = schema();
    if !schema.requests.contains(message) {
        return Ok(());
    }
    let mut path = String::new();
    walk(schema, message, bytes, &mut path, 0)
}

fn malformed(path: &str) -> Violation {
    Violation {
        path: if path.is_empty() { "request".into() } else { path.to_owned() },
        reason: "is not a well-formed protobuf message".into(),
    }
}

fn varint(bytes: &mut &[u8], path: &str) -> Result<u64, Violation> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first().ok_or_else(|| malformed(path))?;
        *bytes = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(malformed(path))
}

fn take<'a>(bytes: &mut &'a [u8], n: u64, path: &str) -> Result<&'a [u8], Violation> {
    let n = usize::try_from(n).map_err(|_| malformed(path))?;
    if bytes.len() < n {
        return Err(malformed(path));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

/// Skips a value of `wire_type` (groups included, up to their end tag).
fn skip(
    bytes: &mut &[u8],
    wire_type: u64,
    number: u64,
    path: &str,
    depth: u32,
) -> Result<(), Violation> {
    match wire_type {
        0 => varint(bytes, path).map(drop),
        1 => take(bytes, 8, path).map(drop),
        2 => {
            let n = varint(bytes, path)?;
            take(bytes, n, path).map(drop)
        }
        5 => take(bytes, 4, path).map(drop),
        3 => {
            if depth >= MAX_DEPTH {
                return Err(malformed(path));
            }
            loop {
                let key = varint(bytes, path)?;
                let (n, wt) = (key >> 3, key & 7);
                if wt == 4 {
                    return if n == number { Ok(()) } else { Err(malformed(path)) };
                }
                skip(bytes, wt, n, path, depth + 1)?;
            }
        }
        _ => Err(malformed(path)),
    }
}

/// How a field's path segment is written: transparent for the wrappers of
/// `google.protobuf.Struct` documents, so a spec's band label reads `spec.bands[0].label`.
fn segment(path: &mut String, message: &str, field: &Field, index: Option<usize>) {
    match (message, field.name.as_str()) {
        ("google.protobuf.Struct", "fields")
        | ("google.protobuf.Value", "struct_value" | "list_value" | "string_value")
        | ("google.protobuf.ListValue", "values") => {}
        _ => {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&field.name);
        }
    }
    if let Some(i) = index
        && !(message == "google.protobuf.Struct" && field.name == "fields")
    {
        path.push_str(&format!("[{i}]"));
    }
}

fn walk(
    schema: &Schema,
    message: &str,
    mut bytes: &[u8],
    path: &mut String,
    depth: u32,
) -> Result<(), Violation> {
    if depth > MAX_DEPTH {
        return Err(Violation { path: path.clone(), reason: "is nested too deeply".into() });
    }
    let info = schema.messages.get(message);
    let mut counts: HashMap<u32, usize> = HashMap::new();
    let mut map_key: Option<String> = None;
    while !bytes.is_empty() {
        let key = varint(&mut bytes, path)?;
        let (number, wire_type) = (key >> 3, key & 7);
        let field = u32::try_from(number).ok().and_then(|n| Some((n, info?.fields.get(&n)?)));
        let Some((n, field)) = field.filter(|_| wire_type == 2) else {
            skip(&mut bytes, wire_type, number, path, depth)?;
            continue;
        };
        let len = varint(&mut bytes, path)?;
        let value = take(&mut bytes, len, path)?;
        let index = field.repeated.then(|| {
            let c = counts.entry(n).or_default();
            *c += 1;
            *c - 1
        });
        let mark = path.len();
        let entry = info.is_some_and(|i| i.map_entry);
        if entry && n == 1 {
            // A map key: checked here, then named in the path of its value.
            let key = std::str::from_utf8(value).map_err(|_| Violation {
                path: format!("{path}[key]"),
                reason: "is not valid UTF-8".into(),
            })?;
            if let Some(reason) = text_problem(key) {
                return Err(Violation { path: format!("{path}[key]"), reason });
            }
            map_key = Some(key.to_owned());
            continue;
        }
        if entry {
            if let Some(k) = &map_key {
                path.push('.');
                push_key(path, k);
            }
        } else {
            segment(path, message, field, index);
        }
        match &field.kind {
            Kind::Text => {
                let text = std::str::from_utf8(value).map_err(|_| Violation {
                    path: path.clone(),
                    reason: "is not valid UTF-8".into(),
                })?;
                if let Some(reason) = text_problem(text) {
                    return Err(Violation { path: path.clone(), reason });
                }
            }
            Kind::Message(inner) => walk(schema, inner, value, path, depth + 1)?,
            Kind::Other => {}
        }
        path.truncate(mark);
    }
    Ok(())
}

/// The longest map key (a document's own key) a path quotes, in characters: a path is sent
/// back in the status, and a caller's 1 MB key must not be.
const MAX_KEY_CHARS: usize = 64;

/// Appends `key` to `path`, cut to `MAX_KEY_CHARS` characters with an ellipsis.
fn push_key(path: &mut String, key: &str) {
    match key.char_indices().nth(MAX_KEY_CHARS) {
        None => path.push_str(key),
        Some((at, _)) => {
            path.push_str(&key[..at]);
            path.push('…');
        }
    }
}

/// The codec named in the generated code (`codec_path`): prost's, with [`check_request`] on
/// every decoded request and decode errors answered as INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct CheckedCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for CheckedCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for CheckedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Name + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder(PhantomData)
    }
}

/// Decodes `U`, checking it first when it is a request of the contract.
#[derive(Debug, Clone)]
pub struct CheckedDecoder<U>(PhantomData<U>);

impl<U: Message + Default + Name> Decoder for CheckedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        let name = U::full_name();
        let request = schema().requests.contains(&name);
        if request {
            check_request(&name, &bytes).map_err(Violation::into_status)?;
        }
        U::decode(bytes).map(Some).map_err(|e| {
            if request {
                Status::invalid_argument(format!("malformed request message: {e}"))
            } else {
                Status::internal(format!("malformed response message: {e}"))
            }
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::v1 as pb;

    fn json(v: serde_json::Value) -> prost_types::Struct {
        match v {
            serde_json::Value::Object(m) => crate::convert::json_struct(m),
            _ => panic!("an object"),
        }
    }

    #[test]
    fn every_request_type_of_the_contract_is_known() {
        let s = schema();
        assert!(s.requests.contains("kelvin.v1.IngestEventsRequest"));
        assert!(s.requests.len() > 40, "{}", s.requests.len());
        for r in &s.requests {
            assert!(s.messages.contains_key(r), "{r}");
        }
        assert!(s.messages.contains_key("google.protobuf.Struct"));
    }

    #[test]
    fn a_nul_in_a_nested_struct_is_named_by_its_path() {
        let req = pb::IngestEventsRequest {
            tenant_id: "t".into(),
            events: vec![
                pb::EventInput { event_id: "ok".into(), ..Default::default() },
                pb::EventInput {
                    event_id: "e".into(),
                    properties: Some(json(serde_json::json!({"page": {"urls": ["a", "b\u{0}"]}}))),
                    ..Default::default()
                },
            ],
        };
        let err = check_request("kelvin.v1.IngestEventsRequest", &req.encode_to_vec()).unwrap_err();
        assert_eq!(err.path, "events[1].properties.page.urls[1]");
        assert!(err.reason.contains("U+0000"), "{}", err.reason);
    }

    #[test]
    fn map_keys_and_top_level_strings_are_checked() {
        let req = pb::IngestEventsRequest { tenant_id: "t\u{1b}[2J".into(), events: vec![] };
        let err = check_request("kelvin.v1.IngestEventsRequest", &req.encode_to_vec()).unwrap_err();
        assert_eq!(err.path, "tenant_id");
        let req = pb::IngestEventsRequest {
            tenant_id: "t".into(),
            events: vec![pb::EventInput {
                properties: Some(json(serde_json::json!({"bad\u{7f}key": 1}))),
                ..Default::default()
            }],
        };
        let err = check_request("kelvin.v1.IngestEventsRequest", &req.encode_to_vec()).unwrap_err();
        assert_eq!(err.path, "events[0].properties[key]");
    }

    /// Finding 12: the path named a caller's map key whole, so a 1 MB key came back in the
    /// status message.
    #[test]
    fn a_long_map_key_is_cut_in_the_path() {
        let key = "k".repeat(1 << 20);
        let req = pb::IngestEventsRequest {
            tenant_id: "t".into(),
            events: vec![pb::EventInput {
                properties: Some(json(serde_json::json!({ key.clone(): "v\u{0}" }))),
                ..Default::default()
            }],
        };
        let err = check_request("kelvin.v1.IngestEventsRequest", &req.encode_to_vec()).unwrap_err();
        assert_eq!(err.path, format!("events[0].properties.{}…", &key[..MAX_KEY_CHARS]));
        assert!(err.into_status().message().len() < 200);
    }

    #[test]
    fn tabs_newlines_and_unicode_pass() {
        let req = pb::IngestEventsRequest {
            tenant_id: "tenant-é-日本".into(),
            events: vec![pb::EventInput {
                properties: Some(json(serde_json::json!({"note": "a\tb\r\nc 🎉"}))),
                ..Default::default()
            }],
        };
        check_request("kelvin.v1.IngestEventsRequest", &req.encode_to_vec()).unwrap();
    }

    #[test]
    fn invalid_utf8_and_truncated_messages_are_refused() {
        // Field 1 (tenant_id), length 2, bytes 0xff 0xfe.
        let err =
            check_request("kelvin.v1.IngestEventsRequest", &[0x0a, 2, 0xff, 0xfe]).unwrap_err();
        assert_eq!(err.path, "tenant_id");
        assert!(err.reason.contains("UTF-8"));
        let err = check_request("kelvin.v1.IngestEventsRequest", &[0x0a, 9, b'a']).unwrap_err();
        assert!(err.reason.contains("well-formed"));
    }

    #[test]
    fn streaming_methods_are_known_from_the_contract() {
        assert!(is_streaming("/kelvin.v1.ScoringService/WatchScoreChanges"));
        assert!(is_streaming("/kelvin.v1.IngestService/StreamEvents"));
        assert!(!is_streaming("/kelvin.v1.ScoringService/GetScore"));
    }

    #[test]
    fn responses_are_not_checked() {
        let resp = pb::GetScoreResponse::default();
        check_request("kelvin.v1.GetScoreResponse", &[0x0a, 1, 0]).unwrap();
        drop(resp);
    }
}
