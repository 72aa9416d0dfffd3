//! The five seeds' scoring methods as example models (`examples/models/seed-*.yaml`, issue 15),
//! checked lead by lead against values computed by hand.

use std::path::PathBuf;

use kelvin_engine::{
    Company, CompiledModel, Event, HOUR_MS, Lead, LeadState, ModelSpec, Points, Score,
};
use serde_json::json;

const H: i64 = 493_000;
const AS_OF: i64 = H * HOUR_MS + 30 * 60_000;

fn at(days_ago: i64, minute: i64) -> i64 {
    (H - 24 * days_ago) * HOUR_MS + minute * 60_000
}

fn hours_ago(hours: i64) -> i64 {
    (H - hours) * HOUR_MS + 5 * 60_000
}

fn model(name: &str) -> CompiledModel {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/models").join(name);
    let text = std::fs::read_to_string(path).expect("model file");
    ModelSpec::from_yaml(&text).expect("model parses").compile().expect("model compiles")
}

fn line(s: &Score, id: &str) -> Option<Points> {
    s.contributions.iter().find(|c| c.rule_id == id).map(|c| c.points)
}

/// Full evaluation, checked against its explanation and against the incremental path.
fn score(m: &CompiledModel, lead: &Lead, events: &[Event]) -> Score {
    let s = m.score(lead, None, events, AS_OF);
    let sum: i64 = s.contributions.iter().map(|c| c.points.milli()).sum();
    assert_eq!(sum, s.total.milli());
    let inc = LeadState::from_events_of(m, lead, None, events).score(m, lead, None, AS_OF);
    assert_eq!(
        (inc.fit, inc.engagement, inc.total, &inc.band, &inc.action, &inc.grade),
        (s.fit, s.engagement, s.total, &s.band, &s.action, &s.grade)
    );
    assert_eq!(inc.disqualified, s.disqualified);
    s
}

fn whole(p: i64) -> Points {
    Points::from_whole(p)
}

fn view(id: &str, time: i64, url: &str) -> Event {
    Event::new(id, "page_view", time).with("url", url)
}

// ---------------------------------------------------------------- seed 000: HubSpot

const HUBSPOT: &str = "seed-000-hubspot-score.yaml";

fn hubspot_hot() -> (Lead, Vec<Event>) {
    let lead = Lead::from_pairs([
        ("company_size", json!(200)),
        ("industry", json!("logiciel")),
        ("country", json!("FR")),
        ("budget", json!(20_000)),
        ("project_deadline_months", json!(3)),
    ]);
    let events = vec![
        view("v1", at(2, 5), "/blog"),
        view("v2", at(1, 5), "/tarifs"),
        view("v3", at(0, 5), "/"),
        Event::new("d1", "content_download", at(0, 10)),
    ];
    (lead, events)
}

#[test]
fn seed_000_more_than_70_points_is_a_sales_call() {
    let m = model(HUBSPOT);
    let (lead, events) = hubspot_hot();
    let s = score(&m, &lead, &events);
    // Fit: size 10 + sector 10 + France 5 + budget 10 × 2 (contextual) = 20 + deadline 5 × 2
    // = 10 → 55.
    assert_eq!(line(&s, "budget"), Some(whole(20)));
    assert_eq!(line(&s, "deadline"), Some(whole(10)));
    assert_eq!(s.fit, whole(55));
    // Engagement (no decay): 3 visits 48 h, 24 h and 0 h ago, all in the last 72 h: 15;
    // pricing page 10; white paper 10 → 35.
    assert_eq!(line(&s, "visits_72h"), Some(whole(15)));
    assert_eq!(line(&s, "pricing_page"), Some(whole(10)));
    assert_eq!(line(&s, "white_paper"), Some(whole(10)));
    assert_eq!(s.engagement, whole(35));
    // Total 90 (within 0..100), more than 70: called back within 24 business hours.
    assert_eq!(s.total, whole(90));
    assert_eq!(s.band, "prioritaire");
    assert_eq!(s.action.as_deref(), Some("appel commercial sous 24h ouvrées"));
}

#[test]
fn seed_000_exactly_70_is_not_more_than_70() {
    let m = model(HUBSPOT);
    let lead = Lead::from_pairs([
        ("company_size", json!(200)),
        ("country", json!("FR")),
        ("csp", json!("CSP+")),
        ("budget", json!(20_000)),
    ]);
    let events =
        [view("v1", at(2, 5), "/blog"), view("v2", at(1, 5), "/tarifs"), view("v3", at(0, 5), "/")];
    let s = score(&m, &lead, &events);
    // Fit: size 10 + France 5 + CSP+ (inferred budget) 5 × 2 = 10 + budget 20 → 45.
    assert_eq!(line(&s, "csp_plus"), Some(whole(10)));
    assert_eq!(s.fit, whole(45));
    // Engagement: 3 visits in 72 h 15 + pricing 10 → 25. Total 70: not "plus de 70 points",
    // and not "moins de 30": the middle band.
    assert_eq!(s.engagement, whole(25));
    assert_eq!(s.total, whole(70));
    assert_eq!(s.band, "intermediaire");
    assert_eq!(s.action.as_deref(), Some("nurturing marketing"));
}

#[test]
fn seed_000_visits_in_the_last_72_hours_roll() {
    let m = model(HUBSPOT);
    let lead = Lead::from_pairs([("country", json!("FR")), ("budget", json!(10_000))]);
    // Fit: France 5 + budget 10 × 2 = 25.
    // Visits 71 h, 24 h and 0 h ago: the 72 hours up to as_of's hour are hours H-71..H, all
    // three are in: 15. Total 40: middle band.
    let inside = [
        view("a", hours_ago(71), "/"),
        view("b", hours_ago(24), "/"),
        view("c", hours_ago(0), "/"),
    ];
    let s = score(&m, &lead, &inside);
    assert_eq!(s.fit, whole(25));
    assert_eq!(line(&s, "visits_72h"), Some(whole(15)));
    assert_eq!((s.total, s.band.as_str()), (whole(40), "intermediaire"));
    // The first visit 72 h ago (hour H-72) has left the window: 2 visits, no points. Total
    // 25: less than 30, automated email.
    let outside = [
        view("a", hours_ago(72), "/"),
        view("b", hours_ago(24), "/"),
        view("c", hours_ago(0), "/"),
    ];
    let s = score(&m, &lead, &outside);
    assert_eq!(line(&s, "visits_72h"), None);
    assert_eq!((s.total, s.band.as_str()), (whole(25), "froid"));
    assert_eq!(s.action.as_deref(), Some("relance par email automatisé"));
}

#[test]
fn seed_000_points_are_subtracted_and_the_total_bounded_at_0() {
    let m = model(HUBSPOT);
    let lead =
        Lead::from_pairs([("job_title", json!("Stagiaire marketing")), ("country", json!("FR"))]);
    let events =
        [Event::new("o1", "email_open", at(0, 1)), Event::new("o2", "email_open", at(0, 2))];
    let s = score(&m, &lead, &events);
    // Fit: intern −10 + France 5 = −5. Engagement: 2 opens × 1 = 2. Sum −3, bounded to 0
    // (bound:total +3): less than 30.
    assert_eq!(line(&s, "intern"), Some(whole(-10)));
    assert_eq!(s.fit, whole(-5));
    assert_eq!(s.engagement, whole(2));
    assert_eq!(line(&s, "bound:total"), Some(whole(3)));
    assert_eq!(s.total, whole(0));
    assert_eq!(s.band, "froid");
}

#[test]
fn seed_000_companies_are_scored_too() {
    let m = model(HUBSPOT);
    let company = Company::from_pairs([("employees", json!(300)), ("industry", json!("logiciel"))]);
    let hot = Lead::from_pairs([("country", json!("FR")), ("budget", json!(10_000))]);
    let visits = [
        view("a", hours_ago(48), "/"),
        view("b", hours_ago(24), "/"),
        view("c", hours_ago(0), "/"),
    ];
    let a = score(&m, &hot, &visits);
    let b = score(&m, &Lead::default(), &[]);
    // Contacts: France 5 + budget 20 + 3 visits in 72 h 15 = 40; an empty lead 0.
    assert_eq!((a.total, b.total), (whole(40), whole(0)));
    // Company: size 20 + sector 10 = 30, + its best contact 40 = 70: not more than 70.
    let c = m.score_company(&company, &[a.clone(), b]).expect("model scores companies");
    assert_eq!((c.fit, c.leads, c.total), (whole(30), whole(40), whole(70)));
    assert_eq!(c.band.as_deref(), Some("compte_a_suivre"));
    // With the first test's contact at 90: 30 + 90 = 120, bounded to 100 (max of 90 and 40).
    let (lead, events) = hubspot_hot();
    let best = score(&m, &lead, &events);
    assert_eq!(best.total, whole(90));
    let c = m.score_company(&company, &[a, best]).expect("model scores companies");
    assert_eq!(c.total, whole(100));
    assert_eq!(c.band.as_deref(), Some("compte_prioritaire"));
    assert_eq!(c.action.as_deref(), Some("appel commercial sous 24h ouvrées"));
}

// ---------------------------------------------------------------- seed 001: Synolia

const SYNOLIA: &str = "seed-001-synolia-temperatures.yaml";

fn synolia_manager() -> Lead {
    Lead::from_pairs([
        ("job_title", json!("Directeur commercial")),
        ("company_size", json!(200)),
        ("industry", json!("retail")),
        ("phone", json!("+33 1 23 45 67 89")),
        ("company_name", json!("Acme")),
        ("country", json!("FR")),
    ])
}

#[test]
fn seed_001_attending_the_webinar_makes_the_lead_hot() {
    let m = model(SYNOLIA);
    let events = [
        view("p", at(1, 0), "/tarifs"),
        Event::new("r", "webinar_registered", at(5, 0)),
        Event::new("w", "webinar_attended", at(2, 0)),
    ];
    let s = score(&m, &synolia_manager(), &events);
    // Fit: phone 5 + company 5 + job title 15 + size 10 + sector 10 = 45.
    assert_eq!(s.fit, whole(45));
    // Engagement (no decay): pricing 10 + registered 5 + attended 15 = 30. Total 75: chaud.
    assert_eq!(line(&s, "webinar_attended"), Some(whole(15)));
    assert_eq!(s.engagement, whole(30));
    assert_eq!(s.total, whole(75));
    assert_eq!(s.band, "chaud");
    assert_eq!(s.action.as_deref(), Some("transmettre aux commerciaux"));
}

#[test]
fn seed_001_a_no_show_and_the_homepage_stay_warm() {
    let m = model(SYNOLIA);
    let events = [
        Event::new("r", "webinar_registered", at(5, 0)),
        view("h1", at(3, 0), "/"),
        view("h2", at(2, 0), "/"),
        view("h3", at(1, 0), "/"),
    ];
    let s = score(&m, &synolia_manager(), &events);
    // Fit 45. Engagement: registered but absent 5 (against 20 for one who came) + homepage
    // 3 × 1 = 3 → 8. Total 53: tiède (30..60).
    assert_eq!(line(&s, "homepage"), Some(whole(3)));
    assert_eq!(s.engagement, whole(8));
    assert_eq!(s.total, whole(53));
    assert_eq!(s.band, "tiede");
    assert_eq!(s.action.as_deref(), Some("nurturing marketing"));
}

#[test]
fn seed_001_a_student_reading_job_offers_is_devalued() {
    let m = model(SYNOLIA);
    let lead = Lead::from_pairs([
        ("job_title", json!("Étudiant en master")),
        ("country", json!("FR")),
        ("phone", json!("0600000000")),
    ]);
    let mut events: Vec<Event> =
        (0..4).map(|i| view(&format!("j{i}"), at(i, 0), "/emploi/stage")).collect();
    events.push(view("h", at(0, 1), "/"));
    let s = score(&m, &lead, &events);
    // Fit: student −20 (case-folded "Étudiant") + phone 5 = −15.
    assert_eq!(line(&s, "student"), Some(whole(-20)));
    assert_eq!(s.fit, whole(-15));
    // Engagement: 4 job-offer views × −5 = −20, capped at −15; homepage 1 → −14.
    assert_eq!(line(&s, "job_offers"), Some(whole(-15)));
    assert_eq!(s.engagement, whole(-14));
    // Total −29: froid.
    assert_eq!(s.total, whole(-29));
    assert_eq!(s.band, "froid");
    // The same pages read by someone who is not a student cost nothing.
    let recruiter =
        Lead::from_pairs([("job_title", json!("Responsable RH")), ("country", json!("FR"))]);
    let s = score(&m, &recruiter, &events);
    assert_eq!(line(&s, "job_offers"), None);
}

#[test]
fn seed_001_a_competitor_outside_the_zone_is_cold_despite_interest() {
    let m = model(SYNOLIA);
    let lead = Lead::from_pairs([
        ("email", json!("veille@concurrent.example")),
        ("country", json!("US")),
        ("job_title", json!("Directeur marketing")),
        ("company_size", json!(100)),
    ]);
    let events: Vec<Event> = (0..4).map(|i| view(&format!("p{i}"), at(i, 0), "/tarifs")).collect();
    let s = score(&m, &lead, &events);
    // Fit: out of zone −30 + competitor −50 + job title 15 + size 10 = −55.
    assert_eq!(line(&s, "out_of_zone"), Some(whole(-30)));
    assert_eq!(line(&s, "competitor"), Some(whole(-50)));
    assert_eq!(s.fit, whole(-55));
    // Engagement: pricing 4 × 10 = 40, capped at 30. Total −25: froid, and not disqualified
    // (the article devalues, it does not exclude).
    assert_eq!(s.engagement, whole(30));
    assert_eq!(s.total, whole(-25));
    assert_eq!(s.band, "froid");
    assert!(s.disqualified.is_none());
    // A lead without a country is not "outside the zone" (`not_in` is false on a missing
    // field): 0, froid.
    let s = score(&m, &Lead::default(), &[]);
    assert_eq!((s.total, s.band.as_str()), (whole(0), "froid"));
}

// ---------------------------------------------------------------- seed 002: five criteria

const FIVE: &str = "seed-002-five-criteria.yaml";

#[test]
fn seed_002_high_value_pages_frequency_and_nurturing() {
    let m = model(FIVE);
    let lead = Lead::from_pairs([
        ("country", json!("FR")),
        ("postal_code", json!("75008")),
        ("company_size", json!(100)),
        ("industry", json!("logiciel")),
        ("decision_maker", json!(true)),
        ("newsletter", json!(true)),
    ]);
    let events = [
        view("t", at(0, 1), "/tarifs"),
        view("c", at(0, 2), "/cas-clients/acme"),
        view("q", at(0, 3), "/qui-sommes-nous"),
        Event::new("k", "email_click", at(0, 4)).with("campaign", "nurturing"),
    ];
    let s = score(&m, &lead, &events);
    // Fit: metropolitan France 10 + size 10 + sector 10 + newsletter 5 = 35 (a decision maker
    // loses nothing).
    assert_eq!(line(&s, "metropolitan_france"), Some(whole(10)));
    assert_eq!(s.fit, whole(35));
    // Engagement, all aged 0 (weight 1): Tarifs + Cas clients 2 × 10 = 20; Qui sommes-nous 1;
    // 3 visits within 24 h (one hour) 10; click 5 + nurturing 5 → 41.
    assert_eq!(line(&s, "high_value_pages"), Some(whole(20)));
    assert_eq!(line(&s, "about_page"), Some(whole(1)));
    assert_eq!(line(&s, "frequent_visits"), Some(whole(10)));
    assert_eq!(line(&s, "nurturing_click"), Some(whole(5)));
    assert_eq!(s.engagement, whole(41));
    // Total 76: prioritaire.
    assert_eq!(s.total, whole(76));
    assert_eq!(s.band, "prioritaire");
    assert_eq!(s.action.as_deref(), Some("priorité commerciale"));
}

#[test]
fn seed_002_overseas_non_decision_maker_unsubscribed_and_negative() {
    let m = model(FIVE);
    let lead = Lead::from_pairs([
        ("country", json!("FR")),
        ("postal_code", json!("97400")),
        ("decision_maker", json!(false)),
        ("company_size", json!(100)),
    ]);
    let events = [
        Event::new("o1", "email_open", at(30, 0)),
        Event::new("o2", "email_open", at(30, 1)),
        Event::new("l", "social_like", at(0, 1)),
        Event::new("n", "social_comment", at(0, 2)).with("sentiment", "negative"),
        Event::new("u", "newsletter_unsubscribe", at(30, 2)),
    ];
    let s = score(&m, &lead, &events);
    // Fit: 97400 is overseas (no points); not a decision maker −20; size 10 → −10.
    assert_eq!(line(&s, "metropolitan_france"), None);
    assert_eq!(s.fit, whole(-10));
    // Engagement: 2 opens × 2 aged 30 days (one half-life, exactly 1/2) = 2; like 2; negative
    // comment −10 (not counted as a comment); unsubscribed 30 days ago −10 (no decay) → −16.
    assert_eq!(line(&s, "email_open"), Some(whole(2)));
    assert_eq!(line(&s, "social_comment"), None);
    assert_eq!(line(&s, "negative_comment"), Some(whole(-10)));
    assert_eq!(line(&s, "unsubscribed"), Some(whole(-10)));
    assert_eq!(s.engagement, whole(-16));
    // Total −26: faible, no action.
    assert_eq!(s.total, whole(-26));
    assert_eq!(s.band, "faible");
    assert_eq!(s.action, None);
}

#[test]
fn seed_002_false_information_and_visits_in_a_short_time() {
    let m = model(FIVE);
    let lead = Lead::from_pairs([
        ("country", json!("FR")),
        ("postal_code", json!("13001")),
        ("email_validity", json!("fail")),
    ]);
    // Fit: metropolitan France 10 + false information −30 = −20.
    // Visits 23 h, 12 h and 0 h ago: newest − oldest = 23 h < 24 h, one award at hour H (age
    // 0): 10. Total −10: faible.
    let close = [
        view("a", hours_ago(23), "/blog"),
        view("b", hours_ago(12), "/blog"),
        view("c", hours_ago(0), "/"),
    ];
    let s = score(&m, &lead, &close);
    assert_eq!(line(&s, "false_information"), Some(whole(-30)));
    assert_eq!(s.fit, whole(-20));
    assert_eq!(line(&s, "frequent_visits"), Some(whole(10)));
    assert_eq!((s.total, s.band.as_str()), (whole(-10), "faible"));
    // Visits 48 h, 24 h and 0 h ago: no 3 of them within 24 h, no award. Total −20.
    let spread = [
        view("a", hours_ago(48), "/blog"),
        view("b", hours_ago(24), "/blog"),
        view("c", hours_ago(0), "/"),
    ];
    let s = score(&m, &lead, &spread);
    assert_eq!(line(&s, "frequent_visits"), None);
    assert_eq!(s.total, whole(-20));
}

// ---------------------------------------------------------------- seed 003: weighted fit + engagement

const SCALIZER: &str = "seed-003-fit-engagement-weighted.yaml";

fn ideal_profile() -> Lead {
    Lead::from_pairs([
        ("industry", json!("ecommerce")),
        ("company_size", json!(50)),
        ("job_title", json!("Directrice marketing")),
    ])
}

fn events_of(kind: &str, n: i64) -> Vec<Event> {
    (0..n).map(|i| Event::new(format!("{kind}{i}"), kind, at(i, 0))).collect()
}

#[test]
fn seed_003_ideal_profile_that_barely_engages() {
    let m = model(SCALIZER);
    let mut events = events_of("white_paper_download", 1);
    events.extend(events_of("social_like", 3));
    events.extend(events_of("social_comment", 1));
    let s = score(&m, &ideal_profile(), &events);
    // Fit: sector 30 + size 30 + function 40 = 100. Engagement: white paper 15 + likes 3 × 2
    // = 6 + comment 5 → 26.
    assert_eq!(s.fit, whole(100));
    assert_eq!(s.engagement, whole(26));
    // Lead Score 0.4 × 100 + 0.6 × 26 = 40 + 15.6 = 55.6; the `weights` line is 55.6 − 126 =
    // −70.4. à suivre (30..60).
    assert_eq!(s.total, Points::from_milli(55_600));
    assert_eq!(line(&s, "weights"), Some(Points::from_milli(-70_400)));
    assert_eq!(s.band, "a_suivre");
    assert_eq!(s.action.as_deref(), Some("nurturing"));
}

#[test]
fn seed_003_engagement_weighs_more_than_fit() {
    let m = model(SCALIZER);
    let lead = Lead::from_pairs([("industry", json!("logiciel")), ("company_size", json!(5000))]);
    let mut events = events_of("white_paper_download", 3);
    events.extend(events_of("social_share", 4));
    events.extend(events_of("reply", 2));
    events.extend(events_of("newsletter_open", 6));
    events.extend(events_of("email_click", 1));
    let s = score(&m, &lead, &events);
    // Fit: sector 30 (5000 employees is not an SME). Engagement: white papers 3 × 15 = 45,
    // capped 30; shares 4 × 5 = 20; replies 2 × 5 = 10; newsletter 6 × 2 = 12, capped 10;
    // click 5 → 75.
    assert_eq!(s.fit, whole(30));
    assert_eq!(line(&s, "white_paper"), Some(whole(30)));
    assert_eq!(line(&s, "newsletter_open"), Some(whole(10)));
    assert_eq!(s.engagement, whole(75));
    // 0.4 × 30 + 0.6 × 75 = 12 + 45 = 57: above the ideal profile's 55.6, although the plain
    // sum (105) is below its 126.
    assert_eq!(s.total, whole(57));
    assert_eq!(s.band, "a_suivre");
}

#[test]
fn seed_003_ideal_and_engaged_is_a_priority() {
    let m = model(SCALIZER);
    let mut events = events_of("white_paper_download", 2);
    events.extend(events_of("social_share", 2));
    let s = score(&m, &ideal_profile(), &events);
    // Fit 100; engagement: white papers 2 × 15 = 30 + shares 2 × 5 = 10 → 40.
    // 0.4 × 100 + 0.6 × 40 = 40 + 24 = 64: prioritaire.
    assert_eq!(s.engagement, whole(40));
    assert_eq!(s.total, whole(64));
    assert_eq!(s.band, "prioritaire");
    assert_eq!(s.action.as_deref(), Some("à prioriser par l'équipe commerciale"));
}

// ---------------------------------------------------------------- seed 004: spreadsheet grid

const GRID: &str = "seed-004-spreadsheet-grid.yaml";

#[test]
fn seed_004_weighted_average_of_the_five_criteria() {
    let m = model(GRID);
    let perfect = Lead::from_pairs([
        ("email", json!("jean.dupont@acme.fr")),
        ("email_validity", json!("ok")),
        ("phone_validity", json!("ok")),
        ("phone_country", json!("FR")),
        ("budget", json!(80_000)),
    ]);
    let s = score(&m, &perfect, &[]);
    // Potential: 100 × 0.15 for each of the 4 contact criteria = 60, budget ≥ 50k 100 × 0.4 =
    // 40 → 100: grade A. No behaviour: warmth 0, grade 3. A3: à qualifier.
    assert_eq!(line(&s, "email_exists"), Some(whole(15)));
    assert_eq!(line(&s, "budget_high"), Some(whole(40)));
    assert_eq!(s.fit, whole(100));
    assert_eq!(s.total, whole(100));
    assert_eq!(s.grade.as_deref(), Some("A3"));
    assert_eq!(s.band, "a_qualifier");
    assert_eq!(s.action.as_deref(), Some("qualification par le marketing"));
    let events = [
        view("v1", at(2, 0), "/blog"),
        view("v2", at(1, 0), "/tarifs"),
        view("v3", at(0, 0), "/"),
        Event::new("k", "email_click", at(0, 5)).with("link", "https://acme.example/demo"),
    ];
    let s = score(&m, &perfect, &events);
    // Warmth (no decay): visits 3 × 2 = 6 + pricing page 10 + click 3 + demo link 5 = 24:
    // grade 2. A2: prioritaire. Total 100 + 24 = 124.
    assert_eq!(line(&s, "link_nature"), Some(whole(5)));
    assert_eq!(s.engagement, whole(24));
    assert_eq!(s.total, whole(124));
    assert_eq!(s.grade.as_deref(), Some("A2"));
    assert_eq!(s.band, "prioritaire");
    assert_eq!(s.action.as_deref(), Some("appel commercial"));
}

#[test]
fn seed_004_a_medium_fish_that_is_warm_goes_to_sales() {
    let m = model(GRID);
    let unknown_phone = Lead::from_pairs([
        ("email", json!("anne@exemple.be")),
        ("email_validity", json!("ok")),
        ("phone_validity", json!("unknown")),
        ("phone_country", json!("BE")),
        ("budget", json!(20_000)),
    ]);
    let s = score(&m, &unknown_phone, &[]);
    // Email exists 15 + format 15 + phone country 15 + phone unknown 0 + budget 10k..50k
    // 50 × 0.4 = 20 → 65: grade B, not disqualified ("unknown" is not "fail"). Cold: B3,
    // faible.
    assert_eq!(line(&s, "budget_mid"), Some(whole(20)));
    assert_eq!(s.total, whole(65));
    assert!(s.disqualified.is_none());
    assert_eq!(s.grade.as_deref(), Some("B3"));
    assert_eq!(s.band, "faible");
    assert_eq!(s.action.as_deref(), Some("email automatisé"));
    let mut events = vec![view("t1", at(3, 0), "/tarifs"), view("t2", at(2, 0), "/offres/pro")];
    events.extend((0..3).map(|i| view(&format!("h{i}"), at(i, 1), "/")));
    events.extend((0..4).map(|i| Event::new(format!("o{i}"), "email_open", at(i, 2))));
    let s = score(&m, &unknown_phone, &events);
    // Warmth: visits 5 × 2 = 10 (cap 10) + pricing and offers pages 2 × 10 = 20 + opens 4 × 1
    // = 4 → 34: grade 1. B1: prioritaire. Total 65 + 34 = 99.
    assert_eq!(line(&s, "visits"), Some(whole(10)));
    assert_eq!(line(&s, "page_nature"), Some(whole(20)));
    assert_eq!(s.engagement, whole(34));
    assert_eq!(s.total, whole(99));
    assert_eq!(s.grade.as_deref(), Some("B1"));
    assert_eq!(s.band, "prioritaire");
}

#[test]
fn seed_004_minus_1000_and_minus_500_make_the_score_negative() {
    let m = model(GRID);
    let lead = Lead::from_pairs([
        ("email", json!("paul@acme.fr")),
        ("email_validity", json!("fail")),
        ("phone_validity", json!("ok")),
        ("phone_country", json!("US")),
        ("budget", json!(80_000)),
    ]);
    let s = score(&m, &lead, &[]);
    // Fit: format 15 + phone exists 15 + budget 40 = 70. Exclusions: email does not exist
    // −1000, phone country out −500 → 70 − 1500 = −1430, disqualified by the first one.
    assert_eq!(s.fit, whole(70));
    assert_eq!(line(&s, "email_fail"), Some(whole(-1000)));
    assert_eq!(line(&s, "phone_country_out"), Some(whole(-500)));
    assert_eq!(s.total, whole(-1430));
    assert_eq!(s.band, "disqualified");
    assert_eq!(s.action, None);
    assert_eq!(s.disqualified.map(|d| d.reason).as_deref(), Some("email does not exist"));
    // The grade is still given (potential 70: A; warmth 0: 3), the band is not.
    assert_eq!(s.grade.as_deref(), Some("A3"));

    let bad_format = Lead::from_pairs([
        ("email", json!("jean.dupont@")),
        ("email_validity", json!("unknown")),
        ("phone_validity", json!("ok")),
        ("phone_country", json!("FR")),
        ("budget", json!(5_000)),
    ]);
    let s = score(&m, &bad_format, &[]);
    // Fit: phone country 15 + phone exists 15 + budget < 10k 25 × 0.4 = 10 → 40. Bad format
    // −500 → −460, disqualified.
    assert_eq!(s.fit, whole(40));
    assert_eq!(s.total, whole(-460));
    assert_eq!(s.disqualified.map(|d| d.rule_id).as_deref(), Some("email_bad_format"));
}
