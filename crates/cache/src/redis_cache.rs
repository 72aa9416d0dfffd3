//! Redis backend: the shared hot-score cache when Redis is configured.

use std::fmt::Write as _;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::{Cache, Error, Namespace, Result};

/// Bound on establishing one TCP/handshake attempt, so a down Redis fails fast.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on each command: a slow cache is worse than a miss.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Hard cap on `connect` as a whole (attempts plus backoff).
const CONNECT_DEADLINE: Duration = Duration::from_secs(5);
/// Keys per SCAN step when clearing a namespace.
const SCAN_COUNT: usize = 500;
/// Largest PX we send; Redis rejects expiry times that overflow its clock.
const MAX_TTL_MS: u64 = i64::MAX as u64 / 4;

/// Redis-backed cache. Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    key_prefix: String,
}

impl std::fmt::Debug for RedisCache {
    // Hand-written: the connection's Debug would print the URL, password included.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache").field("key_prefix", &self.key_prefix).finish_non_exhaustive()
    }
}

impl RedisCache {
    /// Connects and verifies the server answers, failing within a few seconds
    /// when Redis is unreachable.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self> {
        if key_prefix.is_empty() {
            return Err(Error::Config("redis key_prefix must not be empty".to_owned()));
        }
        // The URL is not echoed: it may carry a password.
        let client = redis::Client::open(url)
            .map_err(|e| Error::Config(format!("invalid redis url: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            // Few retries: callers fall back to the store rather than wait on a down cache.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(1));
        let conn = tokio::time::timeout(
            CONNECT_DEADLINE,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| {
            redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "timed out connecting to redis",
            ))
        })??;
        let cache = Self { conn, key_prefix: key_prefix.to_owned() };
        cache.ping().await?;
        Ok(cache)
    }

    /// Prefix shared by every key of `ns`; unique per namespace because the tenant
    /// id is escaped to contain no ':'.
    fn ns_prefix(&self, ns: &Namespace) -> String {
        match ns {
            Namespace::System => format!("{}:sys:", self.key_prefix),
            Namespace::Tenant(id) => format!("{}:t:{}:", self.key_prefix, escape_tenant(id)),
        }
    }

    fn full_key(&self, ns: &Namespace, key: &str) -> String {
        let mut k = self.ns_prefix(ns);
        k.push_str(key);
        k
    }
}

/// Percent-escapes the separator, the escape char itself and glob metacharacters,
/// so no tenant id can spell out (or glob-match) another namespace's prefix.
fn escape_tenant(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for c in id.chars() {
        match c {
            ':' | '%' | '*' | '?' | '[' | ']' | '\\' => {
                let _ = write!(out, "%{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Escapes glob metacharacters so SCAN MATCH treats `s` literally.
fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[async_trait::async_trait]
impl Cache for RedisCache {
    async fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("GET").arg(self.full_key(ns, key)).query_async(&mut conn).await?)
    }

    async fn get_many(&self, ns: &Namespace, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let prefix = self.ns_prefix(ns);
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(format!("{prefix}{key}"));
        }
        let mut conn = self.conn.clone();
        Ok(cmd.query_async(&mut conn).await?)
    }

    async fn set(
        &self,
        ns: &Namespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<()> {
        let full = self.full_key(ns, key);
        let mut conn = self.conn.clone();
        match ttl {
            // PX 0 is an error in Redis; an already-expired write just removes the key.
            Some(t) if t.is_zero() => {
                redis::cmd("UNLINK").arg(full).exec_async(&mut conn).await?;
            }
            Some(t) => {
                // Round up so sub-millisecond ttls don't become "no ttl".
                let ms = t.as_nanos().div_ceil(1_000_000);
                let ms = u64::try_from(ms).unwrap_or(MAX_TTL_MS).min(MAX_TTL_MS);
                redis::cmd("SET")
                    .arg(full)
                    .arg(value)
                    .arg("PX")
                    .arg(ms)
                    .exec_async(&mut conn)
                    .await?;
            }
            None => {
                redis::cmd("SET").arg(full).arg(value).exec_async(&mut conn).await?;
            }
        }
        Ok(())
    }

    async fn set_if_absent(
        &self,
        ns: &Namespace,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool> {
        if ttl.is_zero() {
            return Ok(false);
        }
        let ms =
            u64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(MAX_TTL_MS).min(MAX_TTL_MS);
        let mut conn = self.conn.clone();
        let reply: Option<String> = redis::cmd("SET")
            .arg(self.full_key(ns, key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ms)
            .query_async(&mut conn)
            .await?;
        Ok(reply.is_some())
    }

    async fn set_many(
        &self,
        entries: &[(Namespace, String, Vec<u8>)],
        ttl: Duration,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let ms = u64::try_from(ttl.as_nanos().div_ceil(1_000_000))
            .unwrap_or(MAX_TTL_MS)
            .clamp(1, MAX_TTL_MS);
        let mut pipe = redis::pipe();
        for (ns, key, value) in entries {
            pipe.cmd("SET").arg(self.full_key(ns, key)).arg(value).arg("PX").arg(ms).ignore();
        }
        let mut conn = self.conn.clone();
        pipe.exec_async(&mut conn).await?;
        Ok(())
    }

    async fn delete(&self, ns: &Namespace, key: &str) -> Result<bool> {
        let mut conn = self.conn.clone();
        let removed: u64 =
            redis::cmd("UNLINK").arg(self.full_key(ns, key)).query_async(&mut conn).await?;
        Ok(removed > 0)
    }

    async fn clear_namespace(&self, ns: &Namespace) -> Result<u64> {
        let pattern = format!("{}*", escape_glob(&self.ns_prefix(ns)));
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut removed: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK").arg(keys).query_async(&mut conn).await?;
                removed += n;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        Ok(removed)
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_escape_removes_separators_and_globs() {
        assert_eq!(escape_tenant("acme-1"), "acme-1");
        assert_eq!(escape_tenant("a:b"), "a%3Ab");
        assert_eq!(escape_tenant("%3A"), "%253A");
        assert_eq!(escape_tenant("*?[]\\"), "%2A%3F%5B%5D%5C");
    }

    #[test]
    fn glob_escape_is_literal() {
        assert_eq!(escape_glob("kelvin:t:a%2A:"), "kelvin:t:a%2A:");
        assert_eq!(escape_glob("p*[x]?\\"), "p\\*\\[x\\]\\?\\\\");
    }
}
