//! The traffic of B11: a quiet tenant's calls at a fixed rate (open loop, so a slow answer
//! never thins its own sample), a noisy tenant's closed loops or flood, outcome counts by gRPC
//! code, and the CPU time of a process.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tonic_types::StatusExt;

use crate::common::percentile;

/// Outcomes of a series of calls: every call's latency (ms, whatever its outcome) and its code.
#[derive(Default)]
pub struct Calls {
    latencies: Vec<f64>,
    ok_latencies: Vec<f64>,
    /// Calls by gRPC code name (`Ok`, `ResourceExhausted`...).
    pub codes: BTreeMap<String, u64>,
    /// Refusals that carried a `google.rpc.RetryInfo`.
    pub with_retry_info: u64,
}

impl Calls {
    pub fn record(&mut self, ms: f64, outcome: &Result<(), tonic::Status>) {
        self.latencies.push(ms);
        let code = match outcome {
            Ok(()) => {
                self.ok_latencies.push(ms);
                "Ok".to_owned()
            }
            Err(status) => {
                if status.get_details_retry_info().is_some() {
                    self.with_retry_info += 1;
                }
                format!("{:?}", status.code())
            }
        };
        *self.codes.entry(code).or_default() += 1;
    }

    pub fn merge(&mut self, other: Calls) {
        self.latencies.extend(other.latencies);
        self.ok_latencies.extend(other.ok_latencies);
        for (code, n) in other.codes {
            *self.codes.entry(code).or_default() += n;
        }
        self.with_retry_info += other.with_retry_info;
    }

    pub fn total(&self) -> u64 {
        self.codes.values().sum()
    }

    pub fn ok(&self) -> u64 {
        self.codes.get("Ok").copied().unwrap_or_default()
    }

    /// Percentile `p` of every call's latency, in ms.
    pub fn p(&mut self, p: f64) -> f64 {
        self.latencies.sort_by(f64::total_cmp);
        percentile(&self.latencies, p)
    }

    /// Percentile `p` of the successful calls' latency, in ms.
    pub fn ok_p(&mut self, p: f64) -> f64 {
        self.ok_latencies.sort_by(f64::total_cmp);
        percentile(&self.ok_latencies, p)
    }

    /// `Ok 120, ResourceExhausted 30 (30 with RetryInfo)`.
    pub fn outcome_text(&self) -> String {
        let mut parts: Vec<String> = self.codes.iter().map(|(c, n)| format!("{c} {n}")).collect();
        if parts.is_empty() {
            parts.push("no calls".into());
        }
        let mut text = parts.join(", ");
        if self.with_retry_info > 0 {
            text.push_str(&format!(" ({} with RetryInfo)", self.with_retry_info));
        }
        text
    }

    pub fn json(&mut self) -> Value {
        json!({
            "calls": self.total(),
            "p50_ms": self.p(0.5),
            "p99_ms": self.p(0.99),
            "ok_p99_ms": self.ok_p(0.99),
            "codes": self.codes,
            "with_retry_info": self.with_retry_info,
        })
    }
}

/// `rate` calls a second for `secs`, each started on schedule whether or not the ones before
/// it have answered (open loop), at most `rate × secs` calls in all.
pub async fn paced<F, Fut>(rate: f64, secs: f64, call: F) -> Result<Calls>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
{
    let total = (rate * secs).ceil() as usize;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    let mut sent = 0;
    while sent < total {
        // Every call due by now (a late timer sends the ones it missed at once).
        let due = ((started.elapsed().as_secs_f64() * rate) as usize + 1).min(total);
        while sent < due {
            let fut = call(sent);
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                let outcome = fut.await;
                (t.elapsed().as_secs_f64() * 1000.0, outcome)
            }));
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut calls = Calls::default();
    for task in tasks {
        let (ms, outcome) = task.await.context("a call's task failed")?;
        calls.record(ms, &outcome);
    }
    Ok(calls)
}

/// `tasks` callers, each calling again as soon as answered until `stop`; a refused caller
/// waits the delay its RetryInfo asks for (at most 1 s; 50 ms without one), like a client
/// library would, instead of spinning on refusals.
pub async fn closed_loops<F, Fut>(tasks: usize, stop: Instant, call: F) -> Result<Calls>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send,
{
    let mut handles = Vec::new();
    for task in 0..tasks {
        let call = call.clone();
        handles.push(tokio::spawn(async move {
            let mut calls = Calls::default();
            let mut i = 0;
            while Instant::now() < stop {
                let t = Instant::now();
                let outcome = call(task, i).await;
                calls.record(t.elapsed().as_secs_f64() * 1000.0, &outcome);
                i += 1;
                if let Err(status) = outcome {
                    let wait = status
                        .get_details_retry_info()
                        .and_then(|r| r.retry_delay)
                        .unwrap_or(Duration::from_millis(50))
                        .min(Duration::from_secs(1));
                    tokio::time::sleep(wait).await;
                }
            }
            calls
        }));
    }
    let mut all = Calls::default();
    for h in handles {
        all.merge(h.await.context("a noisy caller failed")?);
    }
    Ok(all)
}

/// Clock ticks a second of `/proc/PID/stat` times (`getconf CLK_TCK`; 100 on Linux if absent).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU seconds process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) and its closing parenthesis:
    // state is field 3, utime 14 and stime 15.
    let rest = stat.rsplit_once(')').context("malformed /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11).context("no utime")?.parse::<f64>()?
        + fields.get(12).context("no stime")?.parse::<f64>()?;
    Ok(ticks / clock_ticks())
}

/// CPU of process `pid` while `work` runs, in % of one core (200 % = both cores of this
/// machine), with `work`'s result.
pub async fn cpu_during<T>(pid: u32, work: impl Future<Output = T>) -> Result<(f64, T)> {
    let (cpu0, t0) = (cpu_seconds(pid)?, Instant::now());
    let out = work.await;
    let used = cpu_seconds(pid)? - cpu0;
    Ok((100.0 * used / t0.elapsed().as_secs_f64(), out))
}
