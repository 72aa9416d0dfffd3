//! One behavioural suite, run against both backends so they cannot drift apart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use kelvin_cache::{Cache, CacheConfig, MemoryCache, Namespace, RedisCache};

fn tenant(id: &str) -> Namespace {
    Namespace::Tenant(id.to_owned())
}

fn keys(ks: &[&str]) -> Vec<String> {
    ks.iter().map(|k| (*k).to_owned()).collect()
}

// ---------------------------------------------------------------- the cases

async fn roundtrip(c: &dyn Cache) {
    let ns = tenant("acme");
    c.set(&ns, "score:1", b"42", None).await.unwrap();
    assert_eq!(c.get(&ns, "score:1").await.unwrap(), Some(b"42".to_vec()));
}

async fn missing_key(c: &dyn Cache) {
    assert_eq!(c.get(&tenant("acme"), "nope").await.unwrap(), None);
    assert_eq!(c.get(&Namespace::System, "nope").await.unwrap(), None);
}

async fn overwrite(c: &dyn Cache) {
    let ns = tenant("acme");
    c.set(&ns, "k", b"one", None).await.unwrap();
    c.set(&ns, "k", b"two", None).await.unwrap();
    assert_eq!(c.get(&ns, "k").await.unwrap(), Some(b"two".to_vec()));
}

async fn delete(c: &dyn Cache) {
    let ns = tenant("acme");
    c.set(&ns, "k", b"v", None).await.unwrap();
    assert!(c.delete(&ns, "k").await.unwrap());
    assert_eq!(c.get(&ns, "k").await.unwrap(), None);
    assert!(!c.delete(&ns, "k").await.unwrap());
    assert!(!c.delete(&ns, "never-set").await.unwrap());
}

async fn set_if_absent_never_overwrites(c: &dyn Cache) {
    let ns = tenant("acme");
    let ttl = Duration::from_secs(60);
    assert!(c.set_if_absent(&ns, "k", b"refill", ttl).await.unwrap());
    assert!(!c.set_if_absent(&ns, "k", b"older refill", ttl).await.unwrap());
    assert_eq!(c.get(&ns, "k").await.unwrap(), Some(b"refill".to_vec()));
    // A write-through replaces it; a late refill does not undo that.
    c.set(&ns, "k", b"write-through", Some(ttl)).await.unwrap();
    assert!(!c.set_if_absent(&ns, "k", b"late refill", ttl).await.unwrap());
    assert_eq!(c.get(&ns, "k").await.unwrap(), Some(b"write-through".to_vec()));
    // Expired entries count as absent.
    c.set(&ns, "short", b"v", Some(Duration::from_millis(50))).await.unwrap();
    wait_until_gone(c, &ns, "short").await;
    assert!(c.set_if_absent(&ns, "short", b"again", ttl).await.unwrap());
    assert!(!c.set_if_absent(&ns, "zero", b"v", Duration::ZERO).await.unwrap());
    assert_eq!(c.get(&ns, "zero").await.unwrap(), None);
}

async fn set_many_spans_namespaces(c: &dyn Cache) {
    let entries = vec![
        (tenant("a"), "k".to_owned(), b"1".to_vec()),
        (tenant("b"), "k".to_owned(), b"2".to_vec()),
        (tenant("a"), "j".to_owned(), b"3".to_vec()),
    ];
    c.set_many(&entries, Duration::from_secs(60)).await.unwrap();
    assert_eq!(c.get(&tenant("a"), "k").await.unwrap(), Some(b"1".to_vec()));
    assert_eq!(c.get(&tenant("b"), "k").await.unwrap(), Some(b"2".to_vec()));
    assert_eq!(c.get(&tenant("a"), "j").await.unwrap(), Some(b"3".to_vec()));
    c.set_many(&[], Duration::from_secs(1)).await.unwrap();
}

/// Polls instead of asserting after a fixed sleep, so a slow machine only slows
/// the test down rather than failing it.
async fn wait_until_gone(c: &dyn Cache, ns: &Namespace, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if c.get(ns, key).await.unwrap().is_none() {
            return;
        }
        assert!(Instant::now() < deadline, "{key} did not expire within 5s");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn ttl_expiry(c: &dyn Cache) {
    let ns = tenant("acme");
    c.set(&ns, "short", b"v", Some(Duration::from_millis(150))).await.unwrap();
    c.set(&ns, "long", b"v", Some(Duration::from_secs(600))).await.unwrap();
    c.set(&ns, "forever", b"v", None).await.unwrap();
    wait_until_gone(c, &ns, "short").await;
    assert_eq!(c.get(&ns, "long").await.unwrap(), Some(b"v".to_vec()));
    assert_eq!(c.get(&ns, "forever").await.unwrap(), Some(b"v".to_vec()));
    // An expired entry no longer "exists" for delete.
    assert!(!c.delete(&ns, "short").await.unwrap());
}

async fn overwrite_resets_ttl(c: &dyn Cache) {
    let ns = tenant("acme");
    // Persistent -> with ttl: the new ttl applies.
    c.set(&ns, "a", b"1", None).await.unwrap();
    c.set(&ns, "a", b"2", Some(Duration::from_millis(150))).await.unwrap();
    wait_until_gone(c, &ns, "a").await;
    // With ttl -> persistent: the old ttl is dropped.
    c.set(&ns, "b", b"1", Some(Duration::from_millis(150))).await.unwrap();
    c.set(&ns, "b", b"2", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(c.get(&ns, "b").await.unwrap(), Some(b"2".to_vec()));
}

async fn zero_ttl(c: &dyn Cache) {
    let ns = tenant("acme");
    c.set(&ns, "z", b"old", None).await.unwrap();
    c.set(&ns, "z", b"new", Some(Duration::ZERO)).await.unwrap();
    assert_eq!(c.get(&ns, "z").await.unwrap(), None);
}

async fn get_many_order(c: &dyn Cache) {
    let ns = tenant("acme");
    c.set(&ns, "a", b"A", None).await.unwrap();
    c.set(&ns, "c", b"C", None).await.unwrap();
    let got = c.get_many(&ns, &keys(&["c", "missing", "a", "c", "b"])).await.unwrap();
    assert_eq!(
        got,
        vec![Some(b"C".to_vec()), None, Some(b"A".to_vec()), Some(b"C".to_vec()), None]
    );
    assert_eq!(c.get_many(&ns, &[]).await.unwrap(), Vec::<Option<Vec<u8>>>::new());
    assert_eq!(c.get_many(&ns, &keys(&["a"])).await.unwrap(), vec![Some(b"A".to_vec())]);
    // Another namespace sees none of them.
    assert_eq!(c.get_many(&tenant("other"), &keys(&["a", "c"])).await.unwrap(), vec![None, None]);
}

async fn namespace_isolation(c: &dyn Cache) {
    let (a, b, sys) = (tenant("a"), tenant("b"), Namespace::System);
    c.set(&a, "k", b"from-a", None).await.unwrap();
    c.set(&b, "k", b"from-b", None).await.unwrap();
    c.set(&sys, "k", b"from-sys", None).await.unwrap();
    c.set(&a, "k2", b"a2", None).await.unwrap();
    assert_eq!(c.get(&a, "k").await.unwrap(), Some(b"from-a".to_vec()));
    assert_eq!(c.get(&b, "k").await.unwrap(), Some(b"from-b".to_vec()));
    assert_eq!(c.get(&sys, "k").await.unwrap(), Some(b"from-sys".to_vec()));

    assert_eq!(c.clear_namespace(&a).await.unwrap(), 2);
    assert_eq!(c.get(&a, "k").await.unwrap(), None);
    assert_eq!(c.get(&a, "k2").await.unwrap(), None);
    assert_eq!(c.get(&b, "k").await.unwrap(), Some(b"from-b".to_vec()));
    assert_eq!(c.get(&sys, "k").await.unwrap(), Some(b"from-sys".to_vec()));
    assert_eq!(c.clear_namespace(&a).await.unwrap(), 0);

    // Deleting in one namespace leaves the same key elsewhere alone.
    assert!(c.delete(&b, "k").await.unwrap());
    assert_eq!(c.get(&sys, "k").await.unwrap(), Some(b"from-sys".to_vec()));

    assert_eq!(c.clear_namespace(&sys).await.unwrap(), 1);
    assert_eq!(c.get(&sys, "k").await.unwrap(), None);
}

async fn clear_many_keys(c: &dyn Cache) {
    // More than one SCAN page on Redis.
    let ns = tenant("big");
    for i in 0..1_200 {
        c.set(&ns, &format!("k{i}"), b"v", None).await.unwrap();
    }
    c.set(&tenant("bigger"), "k1", b"keep", None).await.unwrap();
    assert_eq!(c.clear_namespace(&ns).await.unwrap(), 1_200);
    assert_eq!(c.get(&ns, "k7").await.unwrap(), None);
    assert_eq!(c.get(&tenant("bigger"), "k1").await.unwrap(), Some(b"keep".to_vec()));
}

async fn tricky_tenant_ids(c: &dyn Cache) {
    // "a:b"/"c" and "a"/"b:c" would share a key if ':' were not escaped.
    c.set(&tenant("a:b"), "c", b"ab", None).await.unwrap();
    c.set(&tenant("a"), "b:c", b"a", None).await.unwrap();
    assert_eq!(c.get(&tenant("a:b"), "c").await.unwrap(), Some(b"ab".to_vec()));
    assert_eq!(c.get(&tenant("a"), "b:c").await.unwrap(), Some(b"a".to_vec()));

    // A tenant named like an escape sequence is still its own namespace.
    c.set(&tenant("a%3Ab"), "c", b"pct", None).await.unwrap();
    assert_eq!(c.get(&tenant("a:b"), "c").await.unwrap(), Some(b"ab".to_vec()));
    assert_eq!(c.get(&tenant("a%3Ab"), "c").await.unwrap(), Some(b"pct".to_vec()));

    // Tenants that look like the system namespace or globs.
    c.set(&tenant("sys"), "k", b"tenant-sys", None).await.unwrap();
    c.set(&Namespace::System, "k", b"system", None).await.unwrap();
    c.set(&tenant("*"), "k", b"star", None).await.unwrap();
    c.set(&tenant("?"), "k", b"q", None).await.unwrap();
    c.set(&tenant("[ab]"), "k", b"br", None).await.unwrap();
    c.set(&tenant("b"), "k", b"b", None).await.unwrap();
    c.set(&tenant(""), "k", b"empty", None).await.unwrap();

    assert_eq!(c.clear_namespace(&tenant("*")).await.unwrap(), 1);
    assert_eq!(c.get(&tenant("*"), "k").await.unwrap(), None);
    assert_eq!(c.clear_namespace(&tenant("?")).await.unwrap(), 1);
    assert_eq!(c.clear_namespace(&tenant("[ab]")).await.unwrap(), 1);
    assert_eq!(c.clear_namespace(&tenant("")).await.unwrap(), 1);

    for (ns, key, want) in [
        (tenant("a:b"), "c", &b"ab"[..]),
        (tenant("a"), "b:c", b"a"),
        (tenant("a%3Ab"), "c", b"pct"),
        (tenant("sys"), "k", b"tenant-sys"),
        (Namespace::System, "k", b"system"),
        (tenant("b"), "k", b"b"),
    ] {
        assert_eq!(c.get(&ns, key).await.unwrap(), Some(want.to_vec()), "{ns:?}/{key}");
    }

    // Clearing "a" must not touch "a:b" (whose escaped prefix starts with "a").
    assert_eq!(c.clear_namespace(&tenant("a")).await.unwrap(), 1);
    assert_eq!(c.get(&tenant("a:b"), "c").await.unwrap(), Some(b"ab".to_vec()));
}

async fn binary_values(c: &dyn Cache) {
    let ns = tenant("acme");
    let all: Vec<u8> = (0..=255u8).collect();
    c.set(&ns, "bin", &all, None).await.unwrap();
    assert_eq!(c.get(&ns, "bin").await.unwrap(), Some(all.clone()));
    c.set(&ns, "empty", b"", None).await.unwrap();
    assert_eq!(c.get(&ns, "empty").await.unwrap(), Some(Vec::new()));
    c.set(&ns, "crlf", b"\r\n$-1\r\n\0", None).await.unwrap();
    let got = c.get_many(&ns, &keys(&["bin", "empty", "crlf"])).await.unwrap();
    assert_eq!(got, vec![Some(all), Some(Vec::new()), Some(b"\r\n$-1\r\n\0".to_vec())]);
}

async fn large_value(c: &dyn Cache) {
    let ns = tenant("acme");
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    c.set(&ns, "big", &big, None).await.unwrap();
    assert_eq!(c.get(&ns, "big").await.unwrap(), Some(big));
}

async fn unicode_keys(c: &dyn Cache) {
    let ns = tenant("zürich");
    c.set(&ns, "ключ *?[x]", b"v", None).await.unwrap();
    assert_eq!(c.get(&ns, "ключ *?[x]").await.unwrap(), Some(b"v".to_vec()));
    assert_eq!(c.clear_namespace(&ns).await.unwrap(), 1);
}

async fn ping(c: &dyn Cache) {
    c.ping().await.unwrap();
}

// ---------------------------------------------------------------- backends

fn memory() -> Arc<dyn Cache> {
    Arc::new(MemoryCache::new(10_000))
}

/// Fails (never skips) without a Redis: a green run must mean Redis was tested.
async fn redis() -> Arc<dyn Cache> {
    let url = std::env::var("KELVIN_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!("KELVIN_TEST_REDIS_URL is not set: run the suite with `cargo xtask test`")
    });
    // A fresh prefix per test keeps parallel tests (and reruns) apart.
    let prefix = format!("kelvin-test-{}", uuid::Uuid::new_v4());
    Arc::new(RedisCache::connect(&url, &prefix).await.unwrap())
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod memory_backend {
            $(
                #[tokio::test]
                async fn $case() {
                    let cache = super::memory();
                    super::$case(cache.as_ref()).await;
                }
            )*

            #[tokio::test]
            async fn backend_name() {
                assert_eq!(super::memory().backend(), "memory");
            }
        }

        mod redis_backend {
            $(
                #[tokio::test]
                async fn $case() {
                    let cache = super::redis().await;
                    super::$case(cache.as_ref()).await;
                }
            )*

            #[tokio::test]
            async fn backend_name() {
                assert_eq!(super::redis().await.backend(), "redis");
            }
        }
    };
}

suite!(
    roundtrip,
    missing_key,
    overwrite,
    delete,
    ttl_expiry,
    overwrite_resets_ttl,
    zero_ttl,
    get_many_order,
    namespace_isolation,
    clear_many_keys,
    tricky_tenant_ids,
    binary_values,
    large_value,
    unicode_keys,
    ping,
    set_if_absent_never_overwrites,
    set_many_spans_namespaces,
);

// ---------------------------------------------------------------- connect()

#[tokio::test]
async fn connect_without_url_uses_memory() {
    let cache = kelvin_cache::connect(&CacheConfig::default()).await.unwrap();
    assert_eq!(cache.backend(), "memory");
    roundtrip(cache.as_ref()).await;
}

#[tokio::test]
async fn connect_with_url_uses_redis() {
    let url = std::env::var("KELVIN_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!("KELVIN_TEST_REDIS_URL is not set: run the suite with `cargo xtask test`")
    });
    let config = CacheConfig {
        redis_url: Some(url),
        key_prefix: format!("kelvin-test-{}", uuid::Uuid::new_v4()),
        ..CacheConfig::default()
    };
    let cache = kelvin_cache::connect(&config).await.unwrap();
    assert_eq!(cache.backend(), "redis");
    roundtrip(cache.as_ref()).await;
}

#[tokio::test]
async fn connect_to_closed_port_fails_fast() {
    // Bind then drop to get a port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = CacheConfig {
        redis_url: Some(format!("redis://127.0.0.1:{port}")),
        ..CacheConfig::default()
    };
    let started = Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(15), kelvin_cache::connect(&config))
        .await
        .expect("connect hung instead of failing");
    let err = res.expect_err("connect to a closed port succeeded");
    assert!(matches!(err, kelvin_cache::Error::Redis(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn connect_rejects_bad_config() {
    let bad_url = CacheConfig { redis_url: Some("not a url".to_owned()), ..CacheConfig::default() };
    let err = kelvin_cache::connect(&bad_url).await.unwrap_err();
    assert!(matches!(err, kelvin_cache::Error::Config(_)), "{err:?}");

    let no_capacity = CacheConfig { memory_max_entries: 0, ..CacheConfig::default() };
    let err = kelvin_cache::connect(&no_capacity).await.unwrap_err();
    assert!(matches!(err, kelvin_cache::Error::Config(_)), "{err:?}");
}
