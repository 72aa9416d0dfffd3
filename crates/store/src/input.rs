//! Validated request values (ids, display names, labels, pages), parsed at the service edge.
//!
//! A parse error carries only the reason: the service that parsed the value names the request
//! field it came from, so the store never spells a protobuf field path.

use std::collections::BTreeMap;

/// Why a value was refused. `suffix` locates the bad part inside the value (`[key]` of a label
/// map), appended to the field path the caller names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Invalid {
    pub suffix: String,
    pub reason: &'static str,
}

impl Invalid {
    fn new(reason: &'static str) -> Self {
        Self { suffix: String::new(), reason }
    }
}

/// A value that must be present: `value`, or "is required" when it is empty. For lookups by an
/// id the caller gives, whose format is not checked (an unknown id is NOT_FOUND).
pub fn required(value: &str) -> Result<&str, Invalid> {
    if value.is_empty() { Err(Invalid::new("is required")) } else { Ok(value) }
}

/// The longest an API key lives.
const MAX_KEY_LIFETIME_MS: i64 = 2 * 366 * 24 * 3600 * 1000;

/// An API key's expiry (milliseconds since the epoch): after `now_ms`, at most 2 years ahead.
pub fn key_expiry(expire_time_ms: i64, now_ms: i64) -> Result<i64, Invalid> {
    if expire_time_ms <= now_ms {
        return Err(Invalid::new("must be in the future"));
    }
    if expire_time_ms > now_ms + MAX_KEY_LIFETIME_MS {
        return Err(Invalid::new("must be at most 2 years ahead"));
    }
    Ok(expire_time_ms)
}

/// A resource id: 1-63 characters of `[a-z0-9-]`, starting with a letter, not ending with `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId(String);

impl ResourceId {
    /// A required id; empty is refused as "is required".
    pub fn parse(id: &str) -> Result<Self, Invalid> {
        if id.is_empty() {
            return Err(Invalid::new("is required"));
        }
        Self::parse_format(id)
    }

    /// An optional id: empty means "generate one" (`None`).
    pub fn parse_optional(id: &str) -> Result<Option<Self>, Invalid> {
        if id.is_empty() { Ok(None) } else { Self::parse_format(id).map(Some) }
    }

    fn parse_format(id: &str) -> Result<Self, Invalid> {
        let ok = !id.is_empty()
            && id.len() <= 63
            && id.starts_with(|c: char| c.is_ascii_lowercase())
            && !id.ends_with('-')
            && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(Self(id.to_owned()))
        } else {
            Err(Invalid::new(
                "must be 1-63 characters of [a-z0-9-], start with a letter and not end with '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for ResourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A display name: at most 200 characters, no control characters (empty is allowed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(name: &str) -> Result<Self, Invalid> {
        if name.chars().count() > 200 {
            return Err(Invalid::new("must be at most 200 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(Invalid::new("must not contain control characters"));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Labels: at most 64, keys 1-63 characters of `[A-Za-z0-9-_./]`, values at most 256
/// characters. A bad entry is located by the suffix `[key]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    pub fn parse(labels: &BTreeMap<String, String>) -> Result<Self, Invalid> {
        if labels.len() > 64 {
            return Err(Invalid::new("at most 64 labels"));
        }
        for (k, v) in labels {
            let key_ok = !k.is_empty()
                && k.len() <= 63
                && k.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
            let reason = if !key_ok {
                "keys are 1-63 characters of [A-Za-z0-9-_./]"
            } else if v.chars().count() > 256 {
                "values are at most 256 characters"
            } else {
                continue;
            };
            return Err(Invalid { suffix: format!("[{k}]"), reason });
        }
        Ok(Self(labels.clone()))
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    pub fn into_map(self) -> BTreeMap<String, String> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn values_keep_todays_rules_and_reasons() {
        assert_eq!(ResourceId::parse("").unwrap_err().reason, "is required");
        assert_eq!(ResourceId::parse_optional("").unwrap(), None);
        assert!(ResourceId::parse("Acme").unwrap_err().reason.starts_with("must be 1-63"));
        assert!(ResourceId::parse("acme-").is_err());
        assert_eq!(ResourceId::parse("acme-1").unwrap().as_str(), "acme-1");
        assert!(DisplayName::parse(&"x".repeat(201)).is_err());
        assert!(DisplayName::parse("a\nb").is_err());
        let bad: BTreeMap<_, _> = [("a b".to_owned(), String::new())].into();
        let e = Labels::parse(&bad).unwrap_err();
        assert_eq!(
            (e.suffix.as_str(), e.reason),
            ("[a b]", "keys are 1-63 characters of [A-Za-z0-9-_./]")
        );
    }
}
