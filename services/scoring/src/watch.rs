//! The change streams of one process share one watcher, so that an idle stream costs nothing.
//!
//! The watcher knows the change head (latest change number) of every tenant with a live stream:
//! local scoring commits move it at once ([`Watcher::advance`]), and one shared poll reads the
//! heads of all watched tenants in one query, for commits made by other replicas. A stream
//! sleeps until its tenant's head passes its cursor, then reads what is new. Every
//! [`WATCH_REAUTH`] the watcher re-checks each (tenant, API key) with live streams once, and
//! ends their streams if the key or the tenant is no longer valid, or if the check itself fails
//! (fail closed). It also holds the per-tenant and per-key stream limits: a stream takes a
//! [`Slot`], released when the stream ends or its client goes away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kelvin_auth::Principal;
use kelvin_server::{ApiError, Runtime};
use tokio::sync::watch;

/// When a stream refused for a limit is asked to try again (a slot frees when a stream ends).
const STREAM_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// How often the watcher reads the heads of watched tenants (changes committed by workers in
/// other processes; local commits advance them at once).
pub(crate) const WATCH_POLL: Duration = Duration::from_millis(200);
/// How often each (tenant, API key) with live streams is re-checked.
pub(crate) const WATCH_REAUTH: Duration = Duration::from_secs(5);

/// The outcome of the last re-check of a stream's key and tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Valid,
    /// The key was revoked or expired, or the tenant is gone or out of reach.
    Revoked,
    /// The store could not answer: the stream ends rather than outlive a revocation.
    Unknown,
}

#[derive(Debug)]
struct TenantEntry {
    head: watch::Sender<i64>,
    streams: usize,
}

#[derive(Debug)]
struct Group {
    principal: Principal,
    verdict: watch::Sender<Verdict>,
    streams: usize,
}

#[derive(Debug, Default)]
struct State {
    tenants: HashMap<String, TenantEntry>,
    /// Live streams per API key (or actor).
    keys: HashMap<String, usize>,
    /// (tenant, key): one re-check serves every stream of the group.
    groups: HashMap<(String, String), Group>,
}

/// The per-process change watcher (see the module documentation).
#[derive(Debug)]
pub(crate) struct Watcher {
    max_per_tenant: usize,
    max_per_key: usize,
    state: Mutex<State>,
}

/// A stream's admission: the receivers it sleeps on; dropping it frees the stream's place.
#[derive(Debug)]
pub(crate) struct Slot {
    watcher: Arc<Watcher>,
    tenant: String,
    key: String,
    /// The tenant's change head: every change up to it is committed.
    pub head: watch::Receiver<i64>,
    pub verdict: watch::Receiver<Verdict>,
}

/// Who a stream counts against for the per-key limit.
fn key_of(principal: &Principal) -> String {
    match principal.api_key_id() {
        Some(id) => format!("key:{id}"),
        None => format!("actor:{}", principal.actor()),
    }
}

impl Watcher {
    pub(crate) fn new(settings: &kelvin_config::ScoringSettings) -> Self {
        Self {
            max_per_tenant: settings.max_streams_per_tenant,
            max_per_key: settings.max_streams_per_key,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned lock still holds consistent counts.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a stream of `principal` on `tenant` (whose reach was checked), whose head is at
    /// least `head`; RESOURCE_EXHAUSTED when the tenant or the key is at its limit.
    pub(crate) fn admit(
        self: &Arc<Self>,
        principal: &Principal,
        tenant: &str,
        head: i64,
    ) -> Result<Slot, ApiError> {
        let key = key_of(principal);
        let mut state = self.state();
        let open = state.tenants.get(tenant).map_or(0, |t| t.streams);
        if open >= self.max_per_tenant {
            return Err(ApiError::Throttled {
                message: format!(
                    "tenant `{tenant}` has {open} open score change streams on this replica, the \
                     limit (scoring.max_streams_per_tenant is {})",
                    self.max_per_tenant
                ),
                retry_after: STREAM_RETRY,
            });
        }
        let open = state.keys.get(&key).copied().unwrap_or(0);
        if open >= self.max_per_key {
            return Err(ApiError::Throttled {
                message: format!(
                    "this API key has {open} open score change streams on this replica, the limit \
                     (scoring.max_streams_per_key is {})",
                    self.max_per_key
                ),
                retry_after: STREAM_RETRY,
            });
        }
        let entry = state
            .tenants
            .entry(tenant.to_owned())
            .or_insert_with(|| TenantEntry { head: watch::channel(head).0, streams: 0 });
        entry.streams += 1;
        entry.head.send_if_modified(|h| advance(h, head));
        let head = entry.head.subscribe();
        *state.keys.entry(key.clone()).or_default() += 1;
        let group = state.groups.entry((tenant.to_owned(), key.clone())).or_insert_with(|| Group {
            principal: principal.clone(),
            verdict: watch::channel(Verdict::Valid).0,
            streams: 0,
        });
        group.streams += 1;
        let verdict = group.verdict.subscribe();
        Ok(Slot { watcher: self.clone(), tenant: tenant.to_owned(), key, head, verdict })
    }

    /// `tenant`'s changes up to `head` are committed (a no-op for tenants nobody watches).
    pub(crate) fn advance(&self, tenant: &str, head: i64) {
        if let Some(entry) = self.state().tenants.get(tenant) {
            entry.head.send_if_modified(|h| advance(h, head));
        }
    }

    fn release(&self, tenant: &str, key: &str) {
        let mut state = self.state();
        if let Some(entry) = state.tenants.get_mut(tenant) {
            entry.streams -= 1;
            if entry.streams == 0 {
                state.tenants.remove(tenant);
            }
        }
        if let Some(n) = state.keys.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                state.keys.remove(key);
            }
        }
        let group = (tenant.to_owned(), key.to_owned());
        if let Some(g) = state.groups.get_mut(&group) {
            g.streams -= 1;
            if g.streams == 0 {
                state.groups.remove(&group);
            }
        }
    }

    /// The shared poll and re-check, until the process stops.
    pub(crate) async fn run(self: Arc<Self>, runtime: Arc<Runtime>) {
        let mut stopping = runtime.stopping();
        let mut poll = tokio::time::interval(WATCH_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_check = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = poll.tick() => {}
                _ = stopping.changed() => return,
            }
            if *stopping.borrow() {
                return;
            }
            let tenants: Vec<String> = self.state().tenants.keys().cloned().collect();
            if tenants.is_empty() {
                continue;
            }
            match runtime.store.change_heads(&tenants).await {
                Ok(heads) => {
                    for (tenant, head) in heads {
                        self.advance(&tenant, head);
                    }
                }
                Err(error) => tracing::warn!(%error, "reading change heads failed; retrying"),
            }
            if last_check.elapsed() >= WATCH_REAUTH {
                last_check = tokio::time::Instant::now();
                self.recheck(&runtime).await;
            }
        }
    }

    /// Re-checks each (tenant, key) with live streams once.
    async fn recheck(&self, runtime: &Runtime) {
        let groups: Vec<((String, String), Principal)> =
            self.state().groups.iter().map(|(k, g)| (k.clone(), g.principal.clone())).collect();
        for ((tenant, key), principal) in groups {
            let verdict = check(runtime, &principal, &tenant).await;
            if verdict != Verdict::Valid
                && let Some(g) = self.state().groups.get(&(tenant, key))
            {
                g.verdict.send_replace(verdict);
            }
        }
    }
}

/// Whether `principal`'s key is still active and `tenant` still in its reach.
async fn check(runtime: &Runtime, principal: &Principal, tenant: &str) -> Verdict {
    use kelvin_store::Error;
    if let Some(id) = principal.api_key_id() {
        match runtime.store.api_key_is_active(id).await {
            Ok(true) => {}
            Ok(false) => return Verdict::Revoked,
            Err(error) => {
                tracing::warn!(%error, "re-checking a streaming API key failed; ending its streams");
                return Verdict::Unknown;
            }
        }
    }
    match runtime.store.access(principal).tenant_scope(tenant).await {
        Ok(_) => Verdict::Valid,
        Err(Error::NotFound { .. } | Error::PermissionDenied(_)) => Verdict::Revoked,
        Err(error) => {
            tracing::warn!(%error, "re-checking a streamed tenant failed; ending its streams");
            Verdict::Unknown
        }
    }
}

/// Moves a head forward only: heads from the shared poll may lag a local commit.
fn advance(current: &mut i64, head: i64) -> bool {
    if head > *current {
        *current = head;
        true
    } else {
        false
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.watcher.release(&self.tenant, &self.key);
    }
}
