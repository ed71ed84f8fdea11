//! The archive's SQL readout against the evaluator's own path, on data made to hit every rule: the
//! same events projected by the real feature updater into experiment units (in memory) and archived
//! as Parquet and read with `sql/experiment_readout.sql` (DuckDB from the dev virtualenv) must give the
//! same report, field for field but the data's source (lift by cohort, the time effects and the
//! long-run tail included), for a decision-API experiment, a recovery experiment, and the decision-API
//! experiment stopped with a tail.
//!
//! The events: half the users' decisions v6 with a cohort (device, country, visitor type, each
//! sometimes missing, and different between a user's two exposures), the rest v1 (cohort `unknown`);
//! users exposed once, to two variants (contaminated), first exposed after the window;
//! orders in the 30 days before the exposure and before that, after it, within and after the 7-day
//! window, some in another currency; opt-outs before and after; decisions of anonymous sessions; users
//! past retention; every archived row twice (Firehose delivers at least once); and five exposed shoppers
//! erased after the projection: gone from the units, still in the archive, their sessions listed under
//! erasures/ (sql/erased_sessions.sql), which the SQL leaves out.

use checkout_ai::archive::{differences, report_from_archive, write_archive};
use checkout_domain::archive::ArchiveRow;
use checkout_domain::event::Event;
use checkout_domain::experiment::config::Experiment;
use checkout_domain::experiment::evaluation::UnitFold;
use checkout_domain::features::erase::{erase, sessions_of, ErasureCounts};
use checkout_domain::features::updater::FeatureUpdater;
use checkout_domain::features::ItemPageMode;
use checkout_domain::ingest::LogEntry;
use checkout_domain::memory::{Faults, MemoryFeatureStore, MemoryLog};
use checkout_domain::ports::BatchSink;
use checkout_domain::stats::analysis::Settings;
use checkout_domain::stats::report::Report;
use chrono::{DateTime, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};

const T0: i64 = 1_700_000_000;

fn at(secs: i64) -> String {
    Utc.timestamp_opt(T0 + secs, 0)
        .single()
        .expect("valid")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn event(id: &str, session: &str, user: Option<&str>, secs: i64, kind: &str, data: Value) -> Value {
    let mut e = json!({
        // The oldest version that has the event type: the archive takes every version.
        "event_id": id, "event_type": kind,
        "schema_version": if kind == "consent_changed" { 4 } else { 1 },
        "occurred_at": at(secs),
        "session_id": session, "data": data
    });
    if let Some(u) = user {
        e["user_id"] = json!(u);
    }
    e
}

fn decision(id: &str, experiment: &str, variant: &str, placement: &str) -> Value {
    json!({"decision_id": id, "placement": placement, "action": "none", "experiment_id": experiment,
           "variant": variant, "propensity": 1.0, "model_id": "m", "model_version": "v1",
           "feature_schema_version": 1, "rules_version": "r", "feature_hash": "ab", "degraded": false})
}

/// A schema v6 decision with a cohort: the request's device type and country (either may be missing),
/// the visitor type it saw (or none).
fn v6_decision(
    id: &str,
    session: &str,
    user: &str,
    secs: i64,
    data: Value,
    rng: &mut StdRng,
) -> Value {
    let mut data = data;
    data["degraded"] = json!(true);
    data["action_key"] = json!("none");
    data["policy"] = json!({"id": "control", "version": "r"});
    data["eligible"] = json!([{"action": "none", "probability": 1.0, "cost_minor": 0}]);
    if data["placement"] == "recovery" {
        data["recovery"] = json!({"abandoned_at": at(secs - 3_600), "step": 0});
    }
    if let Some(v) = [Some("new"), Some("returning"), None][rng.random_range(0..3)] {
        data["visitor_type"] = json!(v);
    }
    let mut e = event(id, session, Some(user), secs, "decision_served", data);
    e["schema_version"] = json!(6);
    let mut context = json!({});
    if let Some(d) = [Some("mobile"), Some("desktop"), Some("tablet"), None][rng.random_range(0..4)]
    {
        context["device"] = json!({"type": d});
    }
    if let Some(c) = [Some("DE"), Some("US"), Some("FR"), None][rng.random_range(0..4)] {
        context["country"] = json!(c);
    }
    e["context"] = context;
    e
}

fn order(id: &str, minor: i64, currency: &str) -> Value {
    json!({"order_id": id, "total": {"amount_minor": minor, "currency": currency},
           "lines": [{"product_id": "p-1", "quantity": 1,
                      "unit_price_minor": minor}]})
}

/// The events, each with its retention (epoch seconds).
fn events(seed: u64) -> Vec<(Value, i64)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    let day = 86_400;
    let keep = |secs: i64| T0 + secs + 90 * day;
    for u in 0..400 {
        let user = format!("u_{u:04}");
        // Some users are past retention at the read.
        let expires = |secs: i64| if u % 37 == 0 { T0 } else { keep(secs) };
        let first = rng.random_range(0..20 * day);
        for (experiment, placement) in [("exp-api", "cart"), ("exp-rec", "recovery")] {
            let variant = if rng.random_bool(0.5) {
                "control"
            } else {
                "treatment"
            };
            let s = format!("{user}-{experiment}-s1");
            let d = format!("{s}-d1");
            // Half the users' decisions are v6, with a cohort (which may differ between the two).
            let cohorts = u % 2 == 0;
            let make = |id: &str, session: &str, secs: i64, data: Value, rng: &mut StdRng| {
                if cohorts {
                    v6_decision(id, session, &user, secs, data, rng)
                } else {
                    event(id, session, Some(&user), secs, "decision_served", data)
                }
            };
            out.push((
                make(
                    &d,
                    &s,
                    first,
                    decision(&d, experiment, variant, placement),
                    &mut rng,
                ),
                expires(first),
            ));
            // A second exposure: the same variant, or (1 in 10) the other one.
            let other = if u % 10 == 3 {
                if variant == "control" {
                    "treatment"
                } else {
                    "control"
                }
            } else {
                variant
            };
            let later = first + rng.random_range(60..3 * day);
            let d2 = format!("{s}-d2");
            out.push((
                make(
                    &d2,
                    &format!("{user}-{experiment}-s2"),
                    later,
                    decision(&d2, experiment, other, placement),
                    &mut rng,
                ),
                expires(later),
            ));
        }
        // Orders around the first exposure.
        for k in 0..rng.random_range(0..6) {
            let offset = rng.random_range(-45 * day..20 * day);
            let currency = if rng.random_bool(0.08) { "EUR" } else { "USD" };
            let minor = rng.random_range(100..50_000);
            let s = format!("{user}-o{k}");
            let id = format!("{s}-order");
            out.push((
                event(
                    &id,
                    &s,
                    Some(&user),
                    first + offset,
                    "order_placed",
                    order(&id, minor, currency),
                ),
                expires(first + offset),
            ));
        }
        // Opt-outs, before or after.
        if rng.random_bool(0.2) {
            let offset = rng.random_range(-5 * day..5 * day);
            let s = format!("{user}-c");
            out.push((
                event(
                    &format!("{s}-consent"),
                    &s,
                    Some(&user),
                    first + offset,
                    "consent_changed",
                    json!({"granted": false, "channel": "email"}),
                ),
                expires(first + offset),
            ));
        }
    }
    // Decisions of anonymous sessions are no unit.
    for k in 0..20 {
        let id = format!("anon-{k}");
        out.push((
            event(
                &id,
                &format!("anon-s{k}"),
                None,
                k * 100,
                "decision_served",
                decision(&id, "exp-api", "treatment", "cart"),
            ),
            keep(0),
        ));
    }
    out
}

fn experiment(id: &str, placement: &str, more: Value) -> Experiment {
    let mut e = json!({
        "id": id, "variations": ["control", "treatment"], "placement": placement, "status": "running"
    });
    e.as_object_mut()
        .expect("object")
        .extend(more.as_object().expect("object").clone());
    serde_json::from_value(e).expect("experiment")
}

async fn units_report(
    store: &MemoryFeatureStore,
    e: &Experiment,
    settings: &Settings,
    window_end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Report {
    let mut fold = UnitFold::new(e, "memory".into(), window_end, now, "USD");
    fold.read_all(store, &e.id).await.expect("units");
    fold.report(settings, now)
}

#[tokio::test]
async fn the_archive_sql_readout_equals_the_evaluators_units_field_for_field() {
    let mut entries = Vec::new();
    for (v, expires) in events(20) {
        let event = Event::decode(v.to_string().as_bytes(), usize::MAX).expect("valid event");
        entries.push(LogEntry::of(&event, expires).expect("encodes"));
    }
    // The updater's way.
    let updater = FeatureUpdater::new(
        MemoryLog::new(usize::MAX, Faults::default()),
        MemoryFeatureStore::new(Faults::default()),
    );
    let refs: Vec<&LogEntry> = entries.iter().collect();
    updater.log.put(&refs).await.expect("log");
    let sessions: Vec<String> = entries.iter().map(|e| e.session_id.clone()).collect();
    let out = updater.update(&sessions).await;
    assert!(
        out.failed.is_empty(),
        "{:?}",
        out.failed.keys().collect::<Vec<_>>()
    );

    // Five exposed shoppers are erased: they leave the log and the units, but their events stay in the
    // (immutable) archive, their sessions listed under erasures/ (sql/erased_sessions.sql).
    let exposed: std::collections::BTreeSet<String> = entries
        .iter()
        .filter(|e| e.event_type == "decision_served")
        .filter_map(|e| e.user_id.clone())
        .collect();
    let mut erased_sessions = Vec::new();
    for user in exposed.iter().take(5) {
        let mut counts = ErasureCounts::default();
        let sessions = sessions_of(&updater.log, &updater.store, user, &mut counts)
            .await
            .expect("sessions");
        erase(
            &updater.log,
            &updater.store,
            user,
            &sessions,
            ItemPageMode::Stream,
            &mut counts,
        )
        .await
        .expect("erase");
        assert!(counts.experiment_units_deleted > 0, "{user} had units");
        erased_sessions.extend(sessions);
    }

    // The archive's way: every row twice, the erased ones too.
    let rows: Vec<ArchiveRow> = entries
        .iter()
        .map(|e| ArchiveRow::of(e).expect("row"))
        .collect();
    let twice: Vec<&ArchiveRow> = rows.iter().chain(rows.iter()).collect();
    let dir = std::env::temp_dir().join(format!(
        "checkout-ai-archive-readout-{}",
        std::process::id()
    ));
    let written = write_archive(&dir, twice).expect("archive");
    assert_eq!(written.parquet_rows, 2 * entries.len());
    std::fs::create_dir_all(dir.join("erasures")).expect("erasures");
    let lines: String = erased_sessions
        .iter()
        .map(|s| format!("{}\n", json!({ "session_id": s })))
        .collect();
    std::fs::write(dir.join("erasures/five-shoppers.json"), lines).expect("erasures");
    assert!(
        written.partitions > 24,
        "event-hour partitions: {}",
        written.partitions
    );

    // Cohorts of 10 units per arm have numbers, so that the cohorts' statistics are compared too.
    let settings = Settings {
        min_sample_per_arm: 10,
        ..Settings::default()
    };
    let now = Utc
        .timestamp_opt(T0 + 30 * 86_400, 0)
        .single()
        .expect("now");
    // A window that leaves some first exposures after it.
    let window_end = Utc
        .timestamp_opt(T0 + 15 * 86_400, 0)
        .single()
        .expect("end");
    let stopped =
        json!({"status": "stopped", "start": at(0), "end": at(10 * 86_400), "tail_days": 30});
    for e in [
        experiment("exp-api", "cart", json!({})),
        experiment("exp-rec", "recovery", json!({})),
        // The same units read as a stopped experiment: its long-run tail.
        experiment("exp-api", "cart", stopped),
    ] {
        let a = units_report(&updater.store, &e, &settings, window_end, now).await;
        let b = report_from_archive(&dir, &e, &settings, "USD", window_end, now).expect("readout");
        let excluded = &a.data.excluded_units;
        for reason in [
            "expired",
            "exposed_after_window",
            "multi_variant",
            "revenue_in_another_currency",
        ] {
            assert!(
                excluded.get(reason).copied().unwrap_or(0) > 0,
                "{}: no unit hit {reason}: {excluded:?}",
                e.id
            );
        }
        assert!(
            a.arms.iter().all(|arm| arm.units > 50),
            "{:?}",
            a.arms.iter().map(|x| x.units).collect::<Vec<_>>()
        );
        // Every slice is there to compare: each dimension with cohorts that have numbers, the known
        // values and `unknown` (v1 decisions, and v6 ones without the field), the placement; the days;
        // the long run once stopped.
        let cohorts = a.cohorts.as_ref().expect("lift by cohort");
        for d in &cohorts.dimensions {
            let read: Vec<&str> = d
                .cohorts
                .iter()
                .filter(|c| !c.too_small)
                .map(|c| c.value.as_str())
                .collect();
            if d.name == "placement" {
                // Every decision of an experiment is at its placement, whatever the version.
                assert_eq!(read, [e.placement.as_str()], "{}", e.id);
            } else {
                assert!(
                    read.len() >= 2 && read.contains(&"unknown"),
                    "{}: {} cohorts with numbers: {read:?}",
                    e.id,
                    d.name
                );
            }
        }
        let time = a.time.as_ref().expect("time effects");
        assert!(time.series.dimensions[0].cohorts.len() >= 14, "the days");
        assert_eq!(
            a.long_run.is_some(),
            e.status == checkout_domain::experiment::config::Status::Stopped,
            "{}: the long run",
            e.id
        );
        assert_eq!(
            differences(&a, &b).expect("json"),
            Vec::<String>::new(),
            "{}: the SQL readout differs from the units",
            e.id
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
