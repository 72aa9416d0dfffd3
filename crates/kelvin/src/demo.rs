//! `kelvin demo`: what Kelvin does, in one command. Starts an embedded server (or uses a
//! running one), creates an agency with two client tenants, publishes the brief's sample model,
//! streams a synthetic 90-day history (deterministic), then shows the band distribution, the
//! hottest leads with their explanations, and what a second model version changes.

#![allow(clippy::disallowed_methods)] // a client of the server: it reads the user's clock (clippy.toml)

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::ingest_service_client::IngestServiceClient;
use kelvin_proto::v1::model_service_client::ModelServiceClient;
use kelvin_proto::v1::scoring_service_client::ScoringServiceClient;
use kelvin_proto::v1::tenant_service_client::TenantServiceClient;
use serde_json::{Value, json};
use tonic::transport::Channel;

/// The brief's sample model.
const MODEL: &str = include_str!("../../../examples/models/b2b-saas.yaml");
const BANDS: [&str; 4] = ["hot", "warm", "cold", "disqualified"];

/// What the demo is asked to do.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// A running Kelvin (`http://host:port`) and an admin token; `None`: start one here.
    pub endpoint: Option<(String, String)>,
    pub leads: usize,
    pub seed: u64,
}

/// SplitMix64: a small deterministic generator (same seed, same history).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The kinds of people the seed articles describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Persona {
    /// A few page views, then gone.
    Visitor,
    /// Reads the blog and the newsletter.
    Curious,
    /// Pricing, case studies, a demo request: ready to talk to sales.
    HotBuyer,
    /// Downloads everything, will never buy.
    Student,
    /// Looks at pricing from a competitor's address.
    Competitor,
}

fn persona(rng: &mut Rng) -> Persona {
    match rng.below(100) {
        0..40 => Persona::Visitor,
        40..72 => Persona::Curious,
        72..82 => Persona::HotBuyer,
        82..94 => Persona::Student,
        _ => Persona::Competitor,
    }
}

fn object(value: Value) -> Option<prost_types::Struct> {
    match value {
        Value::Object(map) => Some(kelvin_proto::convert::json_struct(map)),
        _ => None,
    }
}

/// One lead of the history: its attributes and events (times in Unix seconds).
fn lead(rng: &mut Rng, id: &str, now: i64) -> (Persona, pb::LeadInput, Vec<pb::EventInput>) {
    let p = persona(rng);
    let countries = ["FR", "FR", "BE", "CH", "LU", "DE", "US"];
    let industries = ["software", "retail", "manufacturing", "banking", "education"];
    let titles =
        ["Head of Marketing", "CEO", "Sales Director", "Developer", "Analyst", "Consultant"];
    let (title, email, size, budget, timeline) = match p {
        Persona::HotBuyer => (
            *rng.pick(&["Head of Sales", "VP Marketing", "CEO", "Director of Operations"]),
            format!("{id}@client{}.example", rng.below(500)),
            50 + rng.below(450),
            if rng.below(2) == 0 { 80_000 } else { 30_000 },
            1 + rng.below(3),
        ),
        Persona::Student => (
            *rng.pick(&["student", "étudiante", "intern", "stagiaire"]),
            format!("{id}@university.example"),
            1 + rng.below(5),
            0,
            24,
        ),
        Persona::Competitor => ("Product Manager", format!("{id}@rivalsoft.example"), 200, 0, 12),
        _ => (
            *rng.pick(&titles),
            format!("{id}@company{}.example", rng.below(2000)),
            5 + rng.below(2000),
            rng.below(4) * 20_000,
            2 + rng.below(12),
        ),
    };
    let input = pb::LeadInput {
        lead_id: id.to_owned(),
        attributes: object(json!({
            "country": rng.pick(&countries), "industry": rng.pick(&industries),
            "job_title": title, "email": email, "company_size": size,
            "budget": budget, "timeline_months": timeline,
        })),
        company_id: String::new(),
        enriched: object(json!({
            "email_validity": if rng.below(40) == 0 { "fail" } else { "pass" },
        })),
    };
    // (type, url) of what each persona does, and how many times.
    let (count, menu): (u64, &[(&str, &str)]) = match p {
        Persona::Visitor => {
            (1 + rng.below(3), &[("page_view", "/"), ("page_view", "/blog/scoring-101")])
        }
        Persona::Curious => (
            4 + rng.below(12),
            &[
                ("page_view", "/blog/lead-scoring"),
                ("page_view", "/docs/getting-started"),
                ("email_open", ""),
                ("email_click", "/blog/newsletter"),
                ("webinar_registered", ""),
                ("page_view", "/case-studies/acme"),
            ],
        ),
        Persona::HotBuyer => (
            8 + rng.below(12),
            &[
                ("page_view", "/pricing"),
                ("page_view", "/case-studies/globex"),
                ("content_download", "/whitepaper"),
                ("webinar_attended", ""),
                ("email_click", "/pricing"),
                ("form_submit", "/demo"),
            ],
        ),
        Persona::Student => (
            6 + rng.below(10),
            &[
                ("content_download", "/ebook"),
                ("page_view", "/blog/lead-scoring"),
                ("email_open", ""),
            ],
        ),
        Persona::Competitor => {
            (3 + rng.below(5), &[("page_view", "/pricing"), ("content_download", "/datasheet")])
        }
    };
    // Hot buyers are active lately; others anywhere in the last 90 days.
    let window = if p == Persona::HotBuyer { 14 } else { 90 } * 86_400;
    let events = (0..count)
        .map(|i| {
            let (kind, url) = rng.pick(menu);
            pb::EventInput {
                event_id: format!("{id}-{i}"),
                lead_id: id.to_owned(),
                r#type: (*kind).to_owned(),
                time: Some(prost_types::Timestamp {
                    seconds: now - rng.below(window as u64) as i64,
                    nanos: 0,
                }),
                properties: object(json!({ "url": url })),
            }
        })
        .collect();
    (p, input, events)
}

struct Demo {
    channel: Channel,
    token: String,
}

impl Demo {
    fn req<T>(&self, message: T) -> Result<tonic::Request<T>> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert("authorization", format!("Bearer {}", self.token).parse()?);
        Ok(request)
    }

    fn scoring(&self) -> ScoringServiceClient<Channel> {
        ScoringServiceClient::new(self.channel.clone())
    }

    async fn publish(
        &self,
        tenant: &str,
        spec: Value,
        expected: i64,
        comment: &str,
    ) -> Result<i64> {
        let mut models = ModelServiceClient::new(self.channel.clone());
        if expected == 0 {
            models
                .create_model(self.req(pb::CreateModelRequest {
                    tenant_id: tenant.into(),
                    model_id: "default".into(),
                    display_name: "Default".into(),
                })?)
                .await?;
        }
        let version = models
            .create_model_version(self.req(pb::CreateModelVersionRequest {
                tenant_id: tenant.into(),
                model_id: "default".into(),
                spec: object(spec),
                comment: comment.into(),
            })?)
            .await?
            .into_inner()
            .version
            .context("no version in the reply")?
            .version;
        models
            .publish_model_version(self.req(pb::PublishModelVersionRequest {
                tenant_id: tenant.into(),
                model_id: "default".into(),
                version,
                expected_active_version: expected,
                comment: comment.into(),
            })?)
            .await?;
        Ok(version)
    }

    /// Leads per band.
    async fn distribution(&self, tenant: &str) -> Result<BTreeMap<&'static str, usize>> {
        let mut out = BTreeMap::new();
        for band in BANDS {
            let mut count = 0;
            let mut token = String::new();
            loop {
                let page = self
                    .scoring()
                    .list_leads(self.req(pb::ListLeadsRequest {
                        tenant_id: tenant.into(),
                        band: band.into(),
                        page_size: 1000,
                        page_token: token.clone(),
                        ..Default::default()
                    })?)
                    .await?
                    .into_inner();
                count += page.scores.len();
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            out.insert(band, count);
        }
        Ok(out)
    }

    /// Waits until every lead is scored with the active version and the change stream is quiet.
    async fn settle(&self, tenant: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let status = self
                .scoring()
                .get_rescore_status(self.req(pb::GetRescoreStatusRequest {
                    tenant_id: tenant.into(),
                    model_id: String::new(),
                })?)
                .await?
                .into_inner();
            if status.done {
                break;
            }
            eprint!(
                "\r  {tenant}: {}/{} leads scored with version {}   ",
                status.rescored_leads, status.total_leads, status.model_version
            );
            if Instant::now() > deadline {
                bail!("scoring did not catch up within 10 minutes");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // Then until no change arrives for a second.
        let mut stream = self
            .scoring()
            .watch_score_changes(self.req(pb::WatchScoreChangesRequest {
                tenant_id: tenant.into(),
                after_cursor: 0,
                ..Default::default()
            })?)
            .await?
            .into_inner();
        while let Ok(Ok(Some(_))) =
            tokio::time::timeout(Duration::from_secs(1), stream.message()).await
        {}
        eprintln!("\r  {tenant}: every lead scored{:30}", "");
        Ok(())
    }

    async fn change_head(&self, tenant: &str) -> Result<i64> {
        // The last change: replay from the start until quiet.
        let mut stream = self
            .scoring()
            .watch_score_changes(self.req(pb::WatchScoreChangesRequest {
                tenant_id: tenant.into(),
                after_cursor: -1,
                band_changes_only: false,
                ..Default::default()
            })?)
            .await?
            .into_inner();
        let mut head = 0;
        while let Ok(Ok(Some(m))) =
            tokio::time::timeout(Duration::from_millis(500), stream.message()).await
        {
            head = m.change.map_or(head, |c| c.cursor);
        }
        Ok(head)
    }
}

fn print_distribution(tenant: &str, d: &BTreeMap<&'static str, usize>) {
    let total: usize = d.values().sum();
    println!("\n{tenant}: {total} leads");
    for band in BANDS {
        let n = d.get(band).copied().unwrap_or(0);
        let pct = if total == 0 { 0.0 } else { 100.0 * n as f64 / total as f64 };
        let bar = "█".repeat((pct / 2.0).round() as usize);
        println!("  {band:<13} {n:>6}  {pct:>5.1} %  {bar}");
    }
}

/// Runs the demo.
pub async fn run(options: DemoOptions) -> Result<()> {
    let mut _server = None;
    let (channel, token) = match &options.endpoint {
        Some((endpoint, token)) => {
            (Channel::from_shared(endpoint.clone())?.connect_lazy(), token.clone())
        }
        None => {
            let dir = tempfile::tempdir()?;
            let mut config = crate::embedded_defaults();
            config.listen = "127.0.0.1:0".parse()?;
            config.data_dir = dir.path().to_path_buf();
            config.ingest.events_per_second = 1_000_000;
            let runtime = std::sync::Arc::new(kelvin_server::Runtime::start(config).await?);
            let token = runtime.bootstrap_token.clone().context("a fresh server gives a token")?;
            let app = kelvin_server::Application::build(runtime, crate::ALL_SERVICES).await?;
            let addr = app.local_addr();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(app.run_until_stopped(async {
                let _ = stopped.await;
            }));
            println!("Started an embedded Kelvin on {addr} (SQLite in a temporary directory).");
            _server = Some((stop, task, dir));
            (Channel::from_shared(format!("http://{addr}"))?.connect_lazy(), token)
        }
    };
    let demo = Demo { channel, token };
    let started = Instant::now();

    // The agency and its clients, named after the seed; a server that already has them (an
    // earlier run) gets a fresh numbered suffix, so the demo reruns against one server.
    let base = format!("{:04x}", options.seed % 0xffff);
    let mut admin = TenantServiceClient::new(demo.channel.clone());
    let mut run = 1;
    let suffix = loop {
        let suffix = if run == 1 { base.clone() } else { format!("{base}-{run}") };
        let created = admin
            .create_organization(demo.req(pb::CreateOrganizationRequest {
                organization_id: format!("demo-agency-{suffix}"),
                display_name: "Demo agency".into(),
                request_id: String::new(),
            })?)
            .await;
        match created {
            Ok(_) => break suffix,
            Err(s) if s.code() == tonic::Code::AlreadyExists && run < 1000 => run += 1,
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::PermissionDenied | tonic::Code::Unauthenticated
                ) =>
            {
                return Err(anyhow::Error::new(s)
                    .context("creating the demo agency (is the token a platform admin's?)"));
            }
            Err(s) => return Err(anyhow::Error::new(s).context("creating the demo agency")),
        }
    };
    let org = format!("demo-agency-{suffix}");
    let tenants = [format!("saas-client-{suffix}"), format!("software-shop-{suffix}")];
    let spec: Value = serde_json::to_value(
        kelvin_engine::ModelSpec::from_yaml(MODEL)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .to_json_value(),
    )?;
    for t in &tenants {
        admin
            .create_tenant(demo.req(pb::CreateTenantRequest {
                organization_id: org.clone(),
                tenant_id: t.clone(),
                display_name: t.clone(),
                ..Default::default()
            })?)
            .await?;
        demo.publish(t, spec.clone(), 0, "the brief's sample model").await?;
    }
    println!(
        "Agency `{org}` with tenants {} and {}; model `default` v1 published (examples/models/b2b-saas.yaml).",
        tenants[0], tenants[1]
    );

    // The history: about `leads` leads over 90 days, 60 % for the first client.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let mut rng = Rng(options.seed);
    let mut ingest = IngestServiceClient::new(demo.channel.clone());
    let mut personas: BTreeMap<Persona, usize> = BTreeMap::new();
    let mut sent = 0usize;
    for (ti, tenant) in tenants.iter().enumerate() {
        let n =
            if ti == 0 { options.leads * 6 / 10 } else { options.leads - options.leads * 6 / 10 };
        let mut leads = Vec::new();
        let mut events = Vec::new();
        for i in 0..n {
            let (p, l, e) = lead(&mut rng, &format!("lead-{i:05}"), now);
            *personas.entry(p).or_default() += 1;
            leads.push(l);
            events.extend(e);
        }
        for chunk in leads.chunks(1000) {
            ingest
                .upsert_leads(demo.req(pb::UpsertLeadsRequest {
                    tenant_id: tenant.clone(),
                    leads: chunk.to_vec(),
                })?)
                .await?;
        }
        for chunk in events.chunks(1000) {
            ingest
                .ingest_events(demo.req(pb::IngestEventsRequest {
                    tenant_id: tenant.clone(),
                    events: chunk.to_vec(),
                })?)
                .await?;
            sent += chunk.len();
            eprint!("\r  streamed {sent} events   ");
        }
    }
    eprintln!();
    println!(
        "Streamed {sent} events of {} leads over 90 days (seed {}): {} visitors, {} curious readers, {} hot buyers, {} students, {} competitors.",
        options.leads,
        options.seed,
        personas.get(&Persona::Visitor).unwrap_or(&0),
        personas.get(&Persona::Curious).unwrap_or(&0),
        personas.get(&Persona::HotBuyer).unwrap_or(&0),
        personas.get(&Persona::Student).unwrap_or(&0),
        personas.get(&Persona::Competitor).unwrap_or(&0),
    );
    for t in &tenants {
        demo.settle(t).await?;
    }

    let first = &tenants[0];
    let before = demo.distribution(first).await?;
    print_distribution(first, &before);
    print_distribution(&tenants[1], &demo.distribution(&tenants[1]).await?);

    // The hottest leads and why.
    let top = demo
        .scoring()
        .list_leads(demo.req(pb::ListLeadsRequest {
            tenant_id: first.clone(),
            band: "hot".into(),
            page_size: 3,
            ..Default::default()
        })?)
        .await?
        .into_inner()
        .scores;
    println!("\nTop hot leads of {first}, and why:");
    for s in top {
        let explained = demo
            .scoring()
            .explain_score(demo.req(pb::ExplainScoreRequest {
                tenant_id: first.clone(),
                lead_id: s.lead_id.clone(),
                model_id: String::new(),
            })?)
            .await?
            .into_inner()
            .score
            .and_then(|s| s.score)
            .unwrap_or_default();
        let action = if explained.action.is_empty() {
            String::new()
        } else {
            format!("\n    next step: {}", explained.action)
        };
        println!(
            "\n  {}  total {:.1} ({}): fit {:.1} + engagement {:.1}{action}",
            s.lead_id, explained.total, explained.band, explained.fit, explained.engagement
        );
        for c in explained.contributions.iter().filter(|c| c.points != 0.0) {
            let detail =
                if c.detail.is_empty() { String::new() } else { format!("  ({})", c.detail) };
            let events = match c.event_ids.len() {
                0 => String::new(),
                n => format!("{n} event(s)"),
            };
            println!("    {:>7.1}  {:<22} {events:<11}{detail}", c.points, c.rule_id);
        }
    }

    // A second version: the hot threshold down from 70 to 60, pricing pages worth more.
    let head = demo.change_head(first).await?;
    let mut v2 = spec.clone();
    if let Some(t) = v2.pointer_mut("/bands/thresholds/0/min") {
        *t = json!(60);
    }
    if let Some(rules) = v2.get_mut("engagement").and_then(Value::as_array_mut) {
        for r in rules.iter_mut().filter(|r| r["id"] == "pricing_page") {
            r["points"] = json!(15);
            r["cap"]["points"] = json!(45);
        }
    }
    demo.publish(first, v2, 1, "hot from 60; pricing pages worth 15").await?;
    println!(
        "\nPublished v2 on {first}: hot from 60 instead of 70, pricing pages worth 15 (cap 45). Rescoring in the background:"
    );
    demo.settle(first).await?;
    let after = demo.distribution(first).await?;
    let mut moves: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut stream = demo
        .scoring()
        .watch_score_changes(demo.req(pb::WatchScoreChangesRequest {
            tenant_id: first.clone(),
            after_cursor: head,
            band_changes_only: true,
            ..Default::default()
        })?)
        .await?
        .into_inner();
    while let Ok(Ok(Some(m))) =
        tokio::time::timeout(Duration::from_millis(700), stream.message()).await
    {
        if let Some(c) = m.change.filter(|c| c.cause == pb::ChangeCause::Rescore as i32) {
            *moves.entry((c.previous_band, c.band)).or_default() += 1;
        }
    }
    println!("\n{first} after v2:");
    for band in BANDS {
        let (b, a) =
            (before.get(band).copied().unwrap_or(0), after.get(band).copied().unwrap_or(0));
        println!("  {band:<13} {b:>6} → {a:>6}  ({:+})", a as i64 - b as i64);
    }
    for ((from, to), n) in &moves {
        println!("  {n} lead(s) moved from {from} to {to}");
    }
    println!("\nDone in {:.1} s.", started.elapsed().as_secs_f64());
    if options.endpoint.is_some() {
        println!(
            "Explore: `kelvinctl scores top --tenant {first} --band hot`, `kelvinctl scores explain --tenant {first} LEAD`, `kelvinctl watch --tenant {first}`."
        );
    } else {
        println!(
            "The embedded server stops now (its data was temporary). To keep exploring: `kelvin up`, then `kelvin demo --endpoint http://127.0.0.1:50051 --token $(cat kelvin-data/admin-token)` and kelvinctl."
        );
    }
    if let Some((stop, task, _dir)) = _server.take() {
        let _ = stop.send(());
        let _ = task.await;
    }
    Ok(())
}
