//! Proof of worth: the universal holdout never receives a treatment, repeat purchase and the incentives
//! orders redeemed (a recovery message's in a later session included) are counted the same whatever
//! order the events arrive in, the heterogeneity test holds its false-positive rate under the null, and
//! the impact report is written from the holdout's units.

use checkout_domain::decision::config::DecisionConfig;
use checkout_domain::decision::engine::{decide, ArmReason, Features, Inputs};
use checkout_domain::decision::policy::{Action, Arm, PolicyConfig};
use checkout_domain::decision::request::parse_request;
use checkout_domain::event::*;
use checkout_domain::experiment::config::Experiment;
use checkout_domain::experiment::evaluation::{repeat_purchase, ImpactSettings};
use checkout_domain::experiment::holdout::UniversalHoldout;
use checkout_domain::experiment::impact::{evaluate_impact, impact_keys};
use checkout_domain::features::updater::FeatureUpdater;
use checkout_domain::features::{Doc, Key};
use checkout_domain::ingest::LogEntry;
use checkout_domain::memory::{Faults, MemoryFeatureStore, MemoryLog, MemoryObjectStore};
use checkout_domain::model::registry::fallback_model;
use checkout_domain::ports::BatchSink;
use checkout_domain::stats::analysis::Settings;
use checkout_domain::stats::breakdown::{breakdown, Slices};
use checkout_domain::stats::tally::{Design, MetricDef, MetricKind, Role, Tally};
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()
}

fn request(session: &str, placement: &str) -> checkout_domain::decision::request::DecisionRequest {
    let body = format!(
        r#"{{"session_id": "{session}", "user_id": "raw", "placement": "{placement}", "context": {{"device": "mobile",
            "cart": {{"currency": "EUR", "items": [{{"product_id": "p", "quantity": 2, "unit_price_minor": 7999,
            "unit_cost_minor": 2000}}]}}}}}}"#
    );
    parse_request(body.as_bytes()).expect("valid request")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Over random holdout settings, configs that treat as much as they can (every unit treated by
    /// default, an experiment whose treatment takes almost everyone, exploration) and random users,
    /// placements and times: a member of the holdout always gets control's `none`, outside every
    /// experiment, logged as `holdout`; everyone else is logged as `served`.
    #[test]
    fn the_holdout_never_receives_a_treatment(
        share in 0.01f64..0.5,
        seed in "[a-z]{1,8}",
        treat_weight in 0.5f64..0.99,
        epsilon in 0.0f64..1.0,
        kill in any::<bool>(),
        users in prop::collection::vec("[a-z0-9]{1,12}", 1..40),
        placement in prop::sample::select(vec!["cart", "checkout", "post_purchase"]),
        minutes in 0i64..100_000,
    ) {
        let model = fallback_model().expect("model");
        let holdout = UniversalHoldout { share, seed: Some(seed), ..UniversalHoldout::default() };
        let experiment: Experiment = serde_json::from_value(serde_json::json!({
            "id": "push", "variations": ["control", "treatment"], "placement": placement,
            "status": "running", "weights": [1.0 - treat_weight, treat_weight]
        })).expect("experiment");
        let config = DecisionConfig {
            kill_switch: kill,
            default_arm: Arm::Treatment,
            policy: PolicyConfig { epsilon, ..PolicyConfig::default() },
            experiments: vec![experiment],
            holdout: holdout.clone(),
            ..DecisionConfig::default()
        };
        config.validate().expect("valid config");
        let now = t0() + Duration::minutes(minutes);
        for (i, unit) in users.iter().enumerate() {
            let id = format!("d{i}");
            let d = decide(&request("s", placement), Ok(&Features::default()), Inputs {
                decision_id: &id, now, unit: Some(unit), model: &model, config: &config,
                policy: None, shadow: None, risk_model: None,
            });
            let EventBody::DecisionServed(served) = &d.event.body else { panic!("not a decision") };
            let tag = served.holdout.as_ref().expect("every known user is tagged");
            if holdout.is_member(unit) {
                prop_assert_eq!(d.response.arm, Arm::Control);
                prop_assert!(kill || d.response.arm_reason == ArmReason::Holdout);
                prop_assert_eq!(&d.response.actions[0].action, &Action::None);
                prop_assert_eq!(d.response.actions.len(), 1, "no alternative offered");
                prop_assert!(d.response.experiment.is_none());
                prop_assert_eq!(served.action.as_str(), "none");
                prop_assert_eq!(tag.variant.as_str(), HOLDOUT_VARIANT);
            } else {
                prop_assert_eq!(tag.variant.as_str(), SERVED_VARIANT);
            }
        }
    }
}

#[test]
fn members_are_reached_and_not_treated_in_bulk() {
    // The property test above over one large population: members exist and none is treated, while
    // the served are treated (so the check is not vacuous).
    let model = fallback_model().expect("model");
    let config = DecisionConfig {
        default_arm: Arm::Treatment,
        ..DecisionConfig::default()
    };
    let now = t0();
    let (mut members, mut treated_members, mut treated_served) = (0, 0, 0);
    for i in 0..4_000 {
        let unit = format!("user-{i}");
        let id = format!("d{i}");
        let d = decide(
            &request("s", "cart"),
            Ok(&Features::default()),
            Inputs {
                decision_id: &id,
                now,
                unit: Some(&unit),
                model: &model,
                config: &config,
                policy: None,
                shadow: None,
                risk_model: None,
            },
        );
        let treated = d.response.actions[0].action != Action::None;
        if config.holdout.is_member(&unit) {
            members += 1;
            treated_members += usize::from(treated);
        } else {
            treated_served += usize::from(treated);
        }
    }
    assert!((150..=250).contains(&members), "{members} members of 4,000");
    assert_eq!(treated_members, 0);
    assert!(
        treated_served > 1_000,
        "{treated_served} served were treated"
    );
}

// ------------------------------------------------------------------------------- repeat purchase

fn log_entry(e: &Event) -> LogEntry {
    LogEntry::of(e, (e.occurred_at + Duration::days(400)).timestamp()).expect("encodes")
}

fn ev(id: &str, session: &str, user: &str, at: DateTime<Utc>, body: EventBody) -> Event {
    Event {
        event_id: id.into(),
        schema_version: 6,
        occurred_at: at,
        session_id: session.into(),
        user_id: Some(user.into()),
        context: Context {
            device: Some(Device {
                kind: DeviceType::Mobile,
                os: None,
                browser: None,
                id: None,
            }),
            country: Some("DE".into()),
            ..Context::default()
        },
        body,
    }
}

fn decision(id: &str, variant: &str) -> EventBody {
    EventBody::DecisionServed(Box::new(DecisionServed {
        decision_id: id.into(),
        placement: "cart".into(),
        action: "none".into(),
        propensity: 1.0,
        model_id: "m".into(),
        model_version: "1".into(),
        feature_schema_version: 1,
        rules_version: "r".into(),
        feature_hash: "h".into(),
        degraded: true,
        action_key: Some("none".into()),
        policy: Some(PolicyRef {
            id: "control".into(),
            version: "r".into(),
        }),
        eligible: vec![ActionProbability {
            action: "none".into(),
            probability: 1.0,
            cost_minor: 0,
        }],
        holdout: Some(HoldoutServed {
            id: "universal-holdout".into(),
            variant: variant.into(),
        }),
        ..DecisionServed::default()
    }))
}

/// A recovery message's decision (step 0, an hour after the abandonment) offering 10% off, at a logged
/// cost of 700 on a EUR 60 cart.
fn recovery_incentive(id: &str, at: DateTime<Utc>) -> EventBody {
    let mut d = match decision(id, SERVED_VARIANT) {
        EventBody::DecisionServed(d) => d,
        _ => unreachable!(),
    };
    d.placement = "recovery".into();
    d.action = "percent_discount".into();
    d.action_key = Some("percent_discount_10".into());
    d.eligible = vec![ActionProbability {
        action: "percent_discount_10".into(),
        probability: 1.0,
        cost_minor: 700,
    }];
    d.cart = Some(DecisionCart {
        currency: "EUR".into(),
        value_minor: 6_000,
        margin_minor: 2_400,
        margin_known: true,
    });
    d.recovery = Some(RecoveryStep {
        abandoned_at: at - Duration::hours(1),
        step: 0,
    });
    EventBody::DecisionServed(d)
}

fn order(id: &str, total: i64) -> EventBody {
    EventBody::OrderPlaced(OrderPlaced {
        order_id: id.into(),
        total: Money {
            amount_minor: total,
            currency: "EUR".into(),
        },
        lines: vec![OrderLine {
            product_id: "p".into(),
            quantity: 1,
            unit_price_minor: total,
        }],
        email: None,
    })
}

/// Four users: `a` orders again 10 days after their first order (a repeat), `b` 40 days after (not
/// one); `b`'s first exposure is after an earlier order, which does not count. `c` gets a recovery
/// message's incentive in the abandoned session and orders twice in later sessions, 2 and 3 days after
/// it: the first order redeems it, the second does not. `d` redeems theirs in the same session, so an
/// order 2 days later redeems nothing; a second message's incentive lapses 8 days before `d`'s last
/// order, which redeems nothing either.
fn history() -> Vec<Event> {
    let t = t0();
    let h = Duration::hours;
    let days = Duration::days;
    vec![
        ev("c1", "sc1", "c", t, decision("dc", SERVED_VARIANT)),
        ev(
            "c2",
            "sc1",
            "c",
            t + h(2),
            recovery_incentive("rc", t + h(2)),
        ),
        ev("c3", "sc2", "c", t + days(2), order("oc1", 5_400)),
        ev("c4", "sc3", "c", t + days(3), order("oc2", 2_000)),
        ev("d1", "sd1", "d", t, decision("dd", SERVED_VARIANT)),
        ev(
            "d2",
            "sd1",
            "d",
            t + h(2),
            recovery_incentive("rd", t + h(2)),
        ),
        ev("d3", "sd1", "d", t + h(3), order("od1", 5_400)),
        ev("d4", "sd2", "d", t + days(2), order("od2", 2_000)),
        ev(
            "d5",
            "sd3",
            "d",
            t + days(20),
            recovery_incentive("rd2", t + days(20)),
        ),
        ev("d6", "sd4", "d", t + days(28), order("od3", 1_000)),
        ev("a1", "sa1", "a", t, decision("da", SERVED_VARIANT)),
        ev(
            "a2",
            "sa1",
            "a",
            t + Duration::hours(1),
            order("oa1", 5_000),
        ),
        ev(
            "a3",
            "sa2",
            "a",
            t + Duration::days(10),
            order("oa2", 3_000),
        ),
        ev(
            "a4",
            "sa3",
            "a",
            t + Duration::days(60),
            order("oa3", 1_000),
        ),
        ev("b0", "sb0", "b", t - Duration::days(3), order("ob0", 2_000)),
        ev("b1", "sb1", "b", t, decision("db", HOLDOUT_VARIANT)),
        ev(
            "b2",
            "sb1",
            "b",
            t + Duration::hours(2),
            order("ob1", 4_000),
        ),
        ev(
            "b3",
            "sb2",
            "b",
            t + Duration::days(40),
            order("ob2", 4_000),
        ),
    ]
}

async fn project(order: &[usize], batch: usize) -> Vec<checkout_domain::features::ExperimentUnit> {
    let all: Vec<LogEntry> = history().iter().map(log_entry).collect();
    let u = FeatureUpdater::new(
        MemoryLog::new(25, Faults::default()),
        MemoryFeatureStore::default(),
    );
    for chunk in order.chunks(batch) {
        let refs: Vec<&LogEntry> = chunk.iter().map(|i| &all[*i]).collect();
        assert!(u.log.put(&refs).await.expect("log put").is_empty());
        let sessions: Vec<String> = refs.iter().map(|e| e.session_id.clone()).collect();
        assert!(u.update(&sessions).await.failed.is_empty());
    }
    ["a", "b", "c", "d"]
        .iter()
        .map(|user| {
            match u
                .store
                .docs()
                .get(&Key::experiment_unit("universal-holdout", user))
            {
                Some(Doc::ExperimentUnit(x)) => x.clone(),
                other => panic!("no unit for {user}: {other:?}"),
            }
        })
        .collect()
}

#[tokio::test]
async fn repeat_purchase_is_the_same_in_every_arrival_order() {
    let n = history().len();
    let mut rng = StdRng::seed_from_u64(21);
    let mut orders: Vec<Vec<usize>> = vec![(0..n).collect(), (0..n).rev().collect()];
    for _ in 0..20 {
        let mut o: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            o.swap(i, rng.random_range(0..=i));
        }
        orders.push(o);
    }
    let mut first = None;
    for (k, o) in orders.iter().enumerate() {
        let units = project(o, 1 + k % 3).await;
        let [a, b, c, d] = [&units[0], &units[1], &units[2], &units[3]];
        let incentives = |u: &checkout_domain::features::ExperimentUnit| -> Vec<i64> {
            u.orders.iter().map(|o| o.incentive_minor).collect()
        };
        assert_eq!(
            incentives(c),
            [700, 0],
            "c redeemed the message in a later session, once"
        );
        assert_eq!(
            incentives(d),
            [700, 0, 0],
            "d redeemed it in the session; the second lapsed"
        );
        assert_eq!(incentives(a), [0, 0, 0]);
        assert!(repeat_purchase(&a.orders), "a ordered again within 30 days");
        assert!(
            !repeat_purchase(&b.orders),
            "b's second order came 40 days later"
        );
        assert_eq!((a.orders.len(), b.orders.len()), (3, 2));
        assert_eq!(
            b.orders_before, 1,
            "b's earlier order is the covariate, not an order after"
        );
        assert_eq!(
            (a.variant.as_str(), b.variant.as_str()),
            (SERVED_VARIANT, HOLDOUT_VARIANT)
        );
        assert_eq!(
            (
                a.cohort.value("device"),
                a.cohort.value("visitor"),
                a.cohort.value("country")
            ),
            ("mobile", "unknown", "DE")
        );
        match &first {
            None => first = Some(units),
            Some(f) => assert_eq!(f, &units, "arrival order {o:?} changed the units"),
        }
    }
}

// ------------------------------------------------------------------------- heterogeneity under the null

fn conversion_design() -> Design {
    Design {
        experiment_id: "aa".into(),
        variants: vec!["control".into(), "treatment".into()],
        weights: vec![0.5, 0.5],
        metrics: vec![MetricDef {
            name: "conversion".into(),
            kind: MetricKind::Proportion,
            role: Role::Goal,
            inverse: false,
            covariate: None,
            source: "simulated".into(),
        }],
    }
}

/// 2,000 A/A experiments, each with four cohorts of unequal size and conversion rate (the same in both
/// arms: no effect anywhere, so no heterogeneity): the Q test rejects at about alpha.
#[test]
fn the_heterogeneity_test_holds_its_false_positive_rate_under_the_null() {
    let settings = Settings::default();
    let cohorts = [(400usize, 0.20), (900, 0.12), (1_600, 0.08), (3_000, 0.05)];
    let mut rng = StdRng::seed_from_u64(2_000);
    let runs = 2_000;
    let mut rejected = 0;
    for _ in 0..runs {
        let mut slices = Slices::new(conversion_design());
        let mut overall = Tally::new(conversion_design());
        for (c, (n, p)) in cohorts.iter().enumerate() {
            let value = format!("c{c}");
            for arm in 0..2 {
                for _ in 0..*n {
                    let x = f64::from(u8::from(rng.random_bool(*p)));
                    for t in [&mut overall, slices.get("device", &value)] {
                        t.unit(arm);
                        t.observe(0, arm, x, 0.0);
                    }
                }
            }
        }
        let all = checkout_domain::stats::analysis::compare(&overall, &settings);
        let b = breakdown(&slices, &["device"], &all, &settings);
        let h = &b.dimensions[0].heterogeneity[0];
        assert_eq!((h.cohorts, h.df), (4, 3));
        rejected += usize::from(h.p_value < settings.alpha);
    }
    let rate = rejected as f64 / runs as f64;
    println!(
        "heterogeneity false-positive rate: {rate:.4} over {runs} A/A runs (alpha {})",
        settings.alpha
    );
    assert!(
        (rate - settings.alpha).abs() <= 0.01,
        "false-positive rate {rate} is not within 1 point of {}",
        settings.alpha
    );
}

/// A real interaction is found and the opposite cohort flagged: mobile loses what desktop gains.
#[test]
fn an_opposite_cohort_with_a_real_interaction_is_flagged() {
    let settings = Settings::default();
    let mut rng = StdRng::seed_from_u64(7);
    let mut slices = Slices::new(conversion_design());
    let mut overall = Tally::new(conversion_design());
    for (value, n, rates) in [
        ("desktop", 20_000, [0.10, 0.13]),
        ("mobile", 8_000, [0.10, 0.07]),
        ("tablet", 3_000, [0.10, 0.11]),
    ] {
        for (arm, p) in rates.iter().enumerate() {
            for _ in 0..n {
                let x = f64::from(u8::from(rng.random_bool(*p)));
                for t in [&mut overall, slices.get("device", value)] {
                    t.unit(arm);
                    t.observe(0, arm, x, 0.0);
                }
            }
        }
    }
    let all = checkout_domain::stats::analysis::compare(&overall, &settings);
    assert!(all[0].comparisons[0].effect > 0.0);
    let b = breakdown(&slices, &["device"], &all, &settings);
    let h = &b.dimensions[0].heterogeneity[0];
    assert!(h.significant, "{h:?}");
    assert_eq!(h.flagged, ["mobile"]);
    // A cohort below the minimum sample is shown as too small, without numbers.
    let mut small = slices.clone();
    let t = small.get("device", "tv");
    t.unit(0);
    t.unit(1);
    let b = breakdown(&small, &["device"], &all, &settings);
    let tv = b.dimensions[0]
        .cohorts
        .iter()
        .find(|c| c.value == "tv")
        .unwrap();
    assert!(tv.too_small && tv.metrics.is_empty());
}

// ----------------------------------------------------------------------------------- impact report

/// The history, projected by the real updater in one batch.
async fn projected_history() -> FeatureUpdater<MemoryLog, MemoryFeatureStore> {
    let all: Vec<LogEntry> = history().iter().map(log_entry).collect();
    let u = FeatureUpdater::new(
        MemoryLog::new(25, Faults::default()),
        MemoryFeatureStore::default(),
    );
    let refs: Vec<&LogEntry> = all.iter().collect();
    u.log.put(&refs).await.expect("log put");
    let sessions: Vec<String> = all.iter().map(|e| e.session_id.clone()).collect();
    assert!(u.update(&sessions).await.failed.is_empty());
    u
}

#[tokio::test]
async fn the_impact_report_reads_the_holdouts_units_and_says_too_early() {
    let u = projected_history().await;
    let reports = MemoryObjectStore::default();
    let holdout = UniversalHoldout::default();
    let end = t0() + Duration::days(70);
    let outcome = evaluate_impact(
        &u.store,
        &reports,
        &holdout,
        &ImpactSettings::default(),
        &Settings::default(),
        "EUR",
        "mem",
        end,
        end,
    )
    .await
    .expect("impact report");
    assert_eq!(outcome.outcome, "written");
    assert_eq!(outcome.units, Some(vec![1, 3]));
    let (json, html) = impact_keys("universal-holdout", end);
    let report: serde_json::Value =
        serde_json::from_slice(&reports.object(&json).expect("json")).expect("report");
    assert_eq!(report["too_early"], true);
    assert!(report["summary"].as_str().unwrap().starts_with("Too early"));
    assert_eq!(
        report["since_start"]["report"]["settings"]["test"],
        "sequential"
    );
    let metrics: Vec<&str> = report["since_start"]["report"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        metrics,
        [
            "conversion",
            "revenue_per_visitor",
            "average_order_value",
            "incentive_cost_per_visitor",
            "margin_per_visitor",
            "repeat_purchase_rate"
        ]
    );
    // The served users repeated, the held-out one did not.
    let repeat = &report["since_start"]["report"]["metrics"][5]["arms"];
    assert_eq!(repeat[0]["mean"], 0.0);
    assert_eq!(repeat[1]["mean"], 1.0);
    // The two recovery incentives redeemed (c's in a later session, d's in its own) are the served
    // arm's incentive cost, and come off its margin.
    let metric = |k: usize, arm: usize| {
        report["since_start"]["report"]["metrics"][k]["arms"][arm]["mean"]
            .as_f64()
            .unwrap()
    };
    assert_eq!((metric(3, 0), metric(3, 1)), (0.0, 1_400.0 / 3.0));
    // The margin ratio is the session's latest decision cart's: only d's first order has one (the
    // message's 40%); the others, in sessions without a decision cart, the assumed 30%.
    let margin = 0.3 * 9_000.0
        + (0.3 * 5_400.0 + 0.3 * 2_000.0 - 700.0)
        + (0.4 * 5_400.0 + 0.3 * 2_000.0 + 0.3 * 1_000.0 - 700.0);
    assert!(
        (metric(4, 1) - margin / 3.0).abs() < 1e-9,
        "{}",
        metric(4, 1)
    );
    // The rolling window (28 days) holds none: all were first seen 70 days before its end.
    assert_eq!(
        report["rolling"]["report"]["data"]["excluded_units"]["exposed_before_window"],
        4
    );
    assert_eq!(
        report["holdout"]["randomisation"]["seed"], "universal-holdout",
        "the randomisation read, its seed written out"
    );
    assert!(report["holdout"].get("reshuffled").is_none());
    let page = String::from_utf8(reports.object(&html).expect("html")).unwrap();
    assert!(page.contains("Too early") && page.contains("Lift by cohort"));
}

#[tokio::test]
async fn a_holdout_changed_by_hand_without_a_rerandomisation_gets_no_verdict_until_it_is_mended() {
    let u = projected_history().await;
    let reports = MemoryObjectStore::default();
    let run = |holdout: UniversalHoldout, hours: i64| {
        let reports = &reports;
        let store = &u.store;
        async move {
            let end = t0() + Duration::days(70) + Duration::hours(hours);
            evaluate_impact(
                store,
                reports,
                &holdout,
                &ImpactSettings::default(),
                &Settings::default(),
                "EUR",
                "mem",
                end,
                end,
            )
            .await
            .expect("impact report");
            let (json, _) = impact_keys("universal-holdout", end);
            serde_json::from_slice::<serde_json::Value>(&reports.object(&json).expect("json"))
                .expect("report")
        }
    };
    let first = UniversalHoldout::default();
    let r = run(first.clone(), 0).await;
    assert!(r["holdout"].get("reshuffled").is_none());
    // The share doubled in a config uploaded by hand: no verdict, in this window and the next.
    let wider = UniversalHoldout {
        share: 0.10,
        ..first.clone()
    };
    for hours in [1, 2] {
        let r = run(wider.clone(), hours).await;
        let why = r["holdout"]["reshuffled"].as_str().expect("reshuffled");
        assert!(why.contains("0.05 → 0.1"), "{why}");
        assert!(r["summary"].as_str().unwrap().starts_with("No verdict"));
        assert_eq!(r["too_early"], true);
        assert_eq!(
            r["holdout"]["randomisation"]["share"], 0.05,
            "the baseline kept"
        );
        let end = t0() + Duration::days(70) + Duration::hours(hours);
        let page = String::from_utf8(
            reports
                .object(&impact_keys("universal-holdout", end).1)
                .expect("html"),
        )
        .unwrap();
        assert!(
            page.contains("<div class=\"banner failed\">No verdict"),
            "the page says it first"
        );
    }
    // Re-randomised: a new seed and a new since. The report reads the new randomisation from then on.
    let since = t0() + Duration::days(70) + Duration::hours(3);
    let rerandomised = UniversalHoldout {
        seed: Some("holdout-2027".into()),
        since: Some(since),
        ..wider
    };
    let r = run(rerandomised.clone(), 3).await;
    assert!(r["holdout"].get("reshuffled").is_none(), "{}", r["holdout"]);
    assert_eq!(
        (
            &r["holdout"]["randomisation"]["share"],
            &r["holdout"]["randomisation"]["seed"]
        ),
        (&serde_json::json!(0.1), &serde_json::json!("holdout-2027"))
    );
    assert!(r["summary"].as_str().unwrap().starts_with("Too early"));
    let r = run(rerandomised, 4).await;
    assert!(r["holdout"].get("reshuffled").is_none());
}

// ------------------------------------------------------------------------- time effects and the long run

fn unit(
    i: usize,
    variant: &str,
    exposed: DateTime<Utc>,
    orders: &[(DateTime<Utc>, i64)],
) -> checkout_domain::features::ExperimentUnit {
    use checkout_domain::features::aggregate::{Cohort, Money, UnitOrder};
    let revenue: i64 = orders.iter().map(|(_, m)| m).sum();
    checkout_domain::features::ExperimentUnit {
        experiment_id: "offer".into(),
        user_id: format!("u{i}"),
        variant: variant.into(),
        first_exposure_at: exposed,
        decision_id: format!("d{i}"),
        variants_seen: 1,
        orders_after: orders.len() as u32,
        revenue_after: Money::from([("EUR".to_string(), revenue)]),
        orders_before: 0,
        revenue_before: Money::new(),
        orders_in_window: 0,
        revenue_in_window: Money::new(),
        unsubscribed_after: false,
        complete: true,
        expires_at: 4_000_000_000,
        cohort: Cohort::default(),
        orders: orders
            .iter()
            .map(|(at, m)| UnitOrder {
                at: *at,
                total_minor: *m,
                currency: "EUR".into(),
                incentive_minor: 0,
                margin_minor: None,
            })
            .collect(),
    }
}

fn offer(status: &str, end: Option<DateTime<Utc>>) -> Experiment {
    serde_json::from_value(serde_json::json!({
        "id": "offer", "variations": ["control", "treatment"], "placement": "cart", "status": status,
        "start": t0(), "end": end
    }))
    .unwrap()
}

/// Treatment buys sooner during the experiment and correspondingly less after it stops: the long-run
/// section calls it a reversal (pull-forward) once the tail is read; a stopped experiment is due for its
/// tail plus a day and no longer.
#[test]
fn a_pull_forward_shows_as_a_reversal_after_the_stop() {
    use checkout_domain::experiment::evaluation::{due, UnitFold};
    use checkout_domain::stats::breakdown::Lasting;
    let stop = t0() + Duration::days(14);
    let e = offer("stopped", Some(stop));
    let mut rng = StdRng::seed_from_u64(5);
    let end_of_tail = stop + Duration::days(31);
    let mut fold = UnitFold::new(&e, "mem".into(), end_of_tail, end_of_tail, "EUR");
    for i in 0..6_000 {
        let treated = i % 2 == 1;
        let exposed = t0() + Duration::minutes(rng.random_range(0..14 * 24 * 60));
        // The same purchase probability overall (30%); treatment moves 70% of it before the stop,
        // control 40%.
        let mut orders = Vec::new();
        if rng.random_bool(0.3) {
            let early = rng.random_bool(if treated { 0.7 } else { 0.4 });
            let at = if early {
                exposed + (stop - exposed) / 2
            } else {
                stop + Duration::days(rng.random_range(1..30))
            };
            orders.push((at, 5_000));
        }
        fold.add(Ok(unit(
            i,
            if treated { "treatment" } else { "control" },
            exposed,
            &orders,
        )));
    }
    let report = fold.report(&Settings::default(), end_of_tail);
    let long = report
        .long_run
        .expect("a stopped experiment has a long-run section");
    assert!(long.tail_complete);
    assert_eq!(long.verdict, Lasting::Reversed, "{}", long.summary);
    assert!(long.metrics[0].comparisons[0].effect > 0.0, "more during");
    assert!(long.metrics[1].comparisons[0].effect < 0.0, "less after");
    // Due through the tail and one more day, not after.
    assert_eq!(
        due(std::slice::from_ref(&e), stop + Duration::days(30)).len(),
        1
    );
    assert!(due(std::slice::from_ref(&e), stop + Duration::days(32)).is_empty());
    assert!(due(&[offer("stopped", None)], stop).is_empty());
}

/// Units over thirteen days (fourteen UTC dates) with a treatment effect only in the first week: the daily series and weekday
/// breakdown are there, the reading warns that it is not a whole number of weeks, and the novelty
/// check finds the first week's effect different from the later days'.
#[test]
fn the_time_section_warns_before_whole_weeks_and_finds_a_novelty_effect() {
    use checkout_domain::experiment::evaluation::UnitFold;
    let e = offer("running", None);
    let end = t0() + Duration::days(13);
    let mut fold = UnitFold::new(&e, "mem".into(), end, end, "EUR");
    let mut rng = StdRng::seed_from_u64(9);
    for i in 0..40_000 {
        let treated = i % 2 == 1;
        let exposed = t0() + Duration::minutes(rng.random_range(0..13 * 24 * 60));
        let first_week = exposed < t0() + Duration::days(7);
        let p = if treated && first_week { 0.16 } else { 0.10 };
        let orders = if rng.random_bool(p) {
            vec![(exposed + Duration::hours(1), 4_000)]
        } else {
            vec![]
        };
        fold.add(Ok(unit(
            i,
            if treated { "treatment" } else { "control" },
            exposed,
            &orders,
        )));
    }
    let report = fold.report(&Settings::default(), end);
    let time = report.time.expect("time section");
    assert!(!time.whole_weeks);
    assert!(time
        .warning
        .as_deref()
        .unwrap()
        .contains("not a whole number of weeks"));
    assert!(report
        .recommendation
        .reasons
        .iter()
        .any(|r| r.contains("whole number of weeks")));
    let days = &time.series.dimensions[0];
    assert_eq!((days.name.as_str(), days.cohorts.len()), ("day", 14));
    assert_eq!(time.series.dimensions[1].cohorts.len(), 7, "every weekday");
    let novelty = time.novelty.expect("novelty");
    assert!(novelty.p_value.unwrap() < 0.05, "{}", novelty.summary);
    assert!(novelty.first_week.unwrap()[0] > novelty.later.unwrap()[0]);
    // At 14 days the warning is gone.
    let e = offer("running", None);
    let end = t0() + Duration::days(14) + Duration::hours(3);
    let mut fold = UnitFold::new(&e, "mem".into(), end, end, "EUR");
    fold.add(Ok(unit(0, "control", t0(), &[])));
    let t = fold.report(&Settings::default(), end).time.unwrap();
    assert!(t.whole_weeks && t.warning.is_none());
}
