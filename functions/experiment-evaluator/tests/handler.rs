//! The evaluator's Lambda entry point over in-memory stores: the `events/scheduler-*.json` fixtures;
//! refusals (bad input, a future window, an experiment that is not running, an invalid config, a
//! permanent store error), which succeed with the reason listed; and transient faults (an unreachable
//! config, a failing unit store), which fail the run after writing what it could, for Lambda to retry.

use checkout_aws::Env;
use checkout_domain::decision::config::{DecisionConfig, DEFAULT_CONFIG_KEY};
use checkout_domain::experiment::evaluation::report_keys;
use checkout_domain::features::aggregate::Money;
use checkout_domain::features::{Doc, ExperimentUnit};
use checkout_domain::memory::{Faults, MemoryFeatureStore, MemoryObjectStore};
use checkout_domain::recovery::RecoveryConfig;
use chrono::{DateTime, TimeZone, Utc};
use experiment_evaluator::{Config, Function};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};

const FIXTURE: &str = include_str!("../../../events/scheduler-evaluate.json");
const FIXTURE_ONE: &str = include_str!("../../../events/scheduler-evaluate-one.json");

fn config() -> Config {
    Config::from_env(&Env::from_pairs([
        ("FEATURES_TABLE", "features"),
        ("MODELS_BUCKET", "models"),
        ("REPORTS_BUCKET", "reports"),
    ]))
    .expect("config")
}

fn decision_config() -> Vec<u8> {
    let experiments = ["checkout-offers", "express-checkout"]
        .iter()
        .map(|id| {
            serde_json::from_value(json!({"id": id, "variations": ["control", "treatment"],
                "placement": "cart", "status": "running"}))
            .unwrap()
        })
        .collect();
    DecisionConfig {
        experiments,
        // The recovery experiment has its own test.
        recovery: RecoveryConfig {
            enabled: false,
            ..RecoveryConfig::default()
        },
        ..DecisionConfig::default()
    }
    .encode()
}

fn units(experiment: &str, n: u32) -> Vec<Doc> {
    let exposed = Utc.with_ymd_and_hms(2025, 11, 20, 9, 0, 0).unwrap();
    (0..n)
        .map(|i| {
            Doc::ExperimentUnit(ExperimentUnit {
                experiment_id: experiment.into(),
                user_id: format!("p{i:04}"),
                variant: ["control", "treatment"][i as usize % 2].into(),
                first_exposure_at: exposed,
                decision_id: format!("d{i}"),
                variants_seen: 1,
                orders_after: u32::from(i.is_multiple_of(6)),
                revenue_after: Money::from([(
                    "USD".into(),
                    if i.is_multiple_of(6) { 5_000 } else { 0 },
                )]),
                orders_before: 0,
                revenue_before: Money::new(),
                orders_in_window: 0,
                revenue_in_window: Money::new(),
                unsubscribed_after: false,
                complete: true,
                expires_at: 4_000_000_000,
                cohort: Default::default(),
                orders: Vec::new(),
            })
        })
        .collect()
}

fn function(
    units_store: MemoryFeatureStore,
) -> Function<MemoryFeatureStore, MemoryObjectStore, MemoryObjectStore> {
    let config_store = MemoryObjectStore::default();
    config_store.insert(DEFAULT_CONFIG_KEY, decision_config());
    Function {
        config: config(),
        units: units_store,
        config_store,
        reports: MemoryObjectStore::default(),
        log: None,
        readout: None,
    }
}

fn event(payload: &str) -> LambdaEvent<Value> {
    LambdaEvent::new(
        serde_json::from_str(payload).expect("fixture JSON"),
        Context::default(),
    )
}

fn window_end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 11, 20, 11, 0, 0).unwrap()
}

#[tokio::test]
async fn the_scheduler_fixture_writes_a_report_per_running_experiment() {
    let store = MemoryFeatureStore::default();
    for doc in units("checkout-offers", 400)
        .into_iter()
        .chain(units("express-checkout", 350))
    {
        store.insert(doc);
    }
    let f = function(store);
    let summary = f.handle(event(FIXTURE)).await.expect("run");
    assert_eq!(summary.window_end, Some(window_end()));
    // Both experiments, then the system impact report of the default universal holdout (no units here).
    assert_eq!(summary.reports.len(), 3);
    assert_eq!(summary.reports[2].experiment_id, "universal-holdout");
    for (outcome, units) in summary.reports.iter().zip([[200, 200], [175, 175]]) {
        assert_eq!(outcome.outcome, "written");
        assert_eq!(outcome.units.as_deref(), Some(&units[..]));
        let (json_key, html_key) = report_keys(&outcome.experiment_id, window_end());
        assert_eq!(outcome.json_key, json_key);
        let report: Value = serde_json::from_slice(&f.reports.object(&json_key).unwrap()).unwrap();
        // The deployed defaults: sequential, Holm, Bayesian alongside.
        assert_eq!(report["settings"]["test"], "sequential");
        assert_eq!(report["settings"]["correction"], "holm");
        assert!(report["metrics"][0]["comparisons"][0]["bayesian"].is_object());
        assert!(f.reports.object(&html_key).is_some());
    }
    // The run's metrics: what was written, and each arm's readout from the report itself.
    let docs = experiment_evaluator::metrics(&summary).documents(window_end());
    let names = checkout_aws::emf::check_documents(
        &docs,
        experiment_evaluator::SERVICE,
        experiment_evaluator::METRICS,
    )
    .expect("valid EMF documents of the function's own metrics");
    for name in ["ExperimentsEvaluated", "SrmAlarms", "ReportFailures"] {
        assert_eq!(names[name], ["service"], "{name}");
    }
    for name in ["Units", "Conversion", "RevenuePerUser", "AverageOrderValue"] {
        assert_eq!(names[name], ["service", "experiment", "variant"], "{name}");
    }
    assert_eq!(
        docs.iter()
            .find(|d| d.get("ExperimentsEvaluated").is_some())
            .unwrap()["ExperimentsEvaluated"],
        3.0,
        "two experiments and the impact report"
    );
    let (json_key, _) = report_keys("checkout-offers", window_end());
    let report: Value = serde_json::from_slice(&f.reports.object(&json_key).unwrap()).unwrap();
    let readout = docs
        .iter()
        .find(|d| d["experiment"] == "checkout-offers" && d["variant"] == "treatment")
        .expect("the treatment arm's readout");
    assert_eq!(readout["Units"], 200.0);
    assert_eq!(
        readout["Conversion"],
        report["metrics"][0]["arms"][1]["mean"]
    );
    assert_eq!(
        readout["RevenuePerUser"],
        report["metrics"][1]["arms"][1]["mean"]
    );

    // The one-experiment fixture: already written, so nothing changes.
    let one = f.handle(event(FIXTURE_ONE)).await.expect("run one");
    assert_eq!(one.reports.len(), 1);
    assert_eq!(one.reports[0].outcome, "exists");
    let docs = experiment_evaluator::metrics(&one).documents(window_end());
    assert_eq!(
        docs.iter()
            .find(|d| d.get("ExperimentsEvaluated").is_some())
            .unwrap()["ExperimentsEvaluated"],
        0.0
    );
    assert!(!checkout_aws::emf::declared(&docs).contains_key("Conversion"));
}

/// Runs `payload` and expects a refusal: success (so Lambda does not retry it into the dead-letter
/// queue), the reason listed, nothing written.
async fn refused(
    f: &Function<MemoryFeatureStore, MemoryObjectStore, MemoryObjectStore>,
    payload: &str,
) -> experiment_evaluator::Failure {
    let summary = f
        .handle(event(payload))
        .await
        .unwrap_or_else(|e| panic!("{payload}: a refusal must not fail the run: {e}"));
    assert!(
        summary.reports.is_empty() && summary.failed.is_empty(),
        "{summary:?}"
    );
    assert_eq!(summary.refused.len(), 1, "{summary:?}");
    assert!(f.reports.keys().is_empty(), "nothing is written");
    summary.refused[0].clone()
}

#[tokio::test]
async fn a_refusal_succeeds_with_its_reason_and_is_not_retried() {
    let f = function(MemoryFeatureStore::default());
    for payload in [
        r#"{"window_end": "yesterday"}"#,
        r#"[1, 2]"#,
        r#"{"window_end": 17}"#,
    ] {
        let r = refused(&f, payload).await;
        assert_eq!(r.reason, "invalid_input", "{payload}");
        assert!(r.error.contains("invalid input"), "{payload}: {}", r.error);
    }
    let r = refused(&f, r#"{"window_end": "2999-01-01T00:00:00Z"}"#).await;
    assert_eq!(r.reason, "future_window");
    let r = refused(
        &f,
        r#"{"window_end": "2025-11-20T11:00:00Z", "experiment_id": "no-such"}"#,
    )
    .await;
    assert_eq!(
        (r.reason, r.experiment_id.as_deref()),
        ("not_running", Some("no-such"))
    );
    f.config_store
        .insert(DEFAULT_CONFIG_KEY, b"{\"format\": \"nope\"}".to_vec());
    let r = refused(&f, FIXTURE).await;
    assert_eq!(r.reason, "invalid_config");
    assert!(r.error.contains("invalid decision config"), "{}", r.error);
    // No config at all: the defaults, where only the recovery experiment runs (and the impact report).
    let empty = Function {
        config_store: MemoryObjectStore::default(),
        ..function(MemoryFeatureStore::default())
    };
    let summary = empty.handle(event(FIXTURE)).await.expect("run");
    let ids: Vec<&str> = summary
        .reports
        .iter()
        .map(|r| r.experiment_id.as_str())
        .collect();
    assert_eq!(ids, ["cart-recovery", "universal-holdout"]);
    assert!(summary.failed.is_empty() && summary.refused.is_empty());
}

/// The recovery experiment is read on its own metrics, from the units' windowed outcomes: the
/// recovered-cart rate and revenue within 7 days of the first recovery decision, and the unsubscribe
/// rate as a guardrail.
#[tokio::test]
async fn the_recovery_experiment_is_read_on_recovered_carts_revenue_and_unsubscribes() {
    let store = MemoryFeatureStore::default();
    let exposed = Utc.with_ymd_and_hms(2025, 11, 18, 9, 0, 0).unwrap();
    for i in 0..1_000u32 {
        let holdout = i % 10 == 0;
        let recovered = if holdout { i % 50 == 0 } else { i % 8 == 0 };
        store.insert(Doc::ExperimentUnit(ExperimentUnit {
            experiment_id: "cart-recovery".into(),
            user_id: format!("p{i:04}"),
            variant: if holdout { "holdout" } else { "treatment" }.into(),
            first_exposure_at: exposed,
            decision_id: format!("rcv-{i}"),
            variants_seen: 1,
            // Orders after the window count in the unbounded outcome only.
            orders_after: u32::from(recovered) + u32::from(i % 3 == 0),
            revenue_after: Money::from([("USD".into(), 9_999)]),
            orders_before: 0,
            revenue_before: Money::new(),
            orders_in_window: u32::from(recovered),
            revenue_in_window: Money::from([("USD".into(), if recovered { 4_000 } else { 0 })]),
            unsubscribed_after: i % 40 == 1,
            complete: true,
            expires_at: 4_000_000_000,
            cohort: Default::default(),
            orders: Vec::new(),
        }));
    }
    let f = Function {
        config_store: MemoryObjectStore::default(),
        ..function(store)
    };
    let summary = f.handle(event(FIXTURE)).await.expect("run");
    let outcome = &summary.reports[0];
    assert_eq!(outcome.experiment_id, "cart-recovery");
    assert_eq!(outcome.units.as_deref(), Some(&[100, 900][..]));
    let report: Value =
        serde_json::from_slice(&f.reports.object(&outcome.json_key).unwrap()).unwrap();
    let metric = |name: &str| {
        report["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {report}"))
            .clone()
    };
    let means = |name: &str| -> Vec<f64> {
        metric(name)["arms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["mean"].as_f64().unwrap())
            .collect()
    };
    // holdout: i ≡ 0 (mod 10), recovered when i ≡ 0 (mod 50): 20 of 100; treatment: i ≡ 0 (mod 8) and
    // not ≡ 0 (mod 10): 125 − 25 = 100 of 900.
    assert_eq!(means("recovered_cart_rate"), vec![0.2, 100.0 / 900.0]);
    assert_eq!(
        means("revenue_per_abandoned_cart"),
        vec![800.0, 4_000.0 * 100.0 / 900.0]
    );
    // i ≡ 1 (mod 40) is never ≡ 0 (mod 10): 25 units, all treated.
    assert_eq!(means("unsubscribe_rate"), vec![0.0, 25.0 / 900.0]);
    assert_eq!(metric("unsubscribe_rate")["role"], "guardrail");
    assert_eq!(metric("unsubscribe_rate")["inverse"], true);
    let readout: Vec<&str> = outcome.readout.iter().map(|r| r.metric.as_str()).collect();
    assert!(readout.contains(&"recovered_cart_rate"));
    let docs = experiment_evaluator::metrics(&summary).documents(window_end());
    let names = checkout_aws::emf::check_documents(
        &docs,
        experiment_evaluator::SERVICE,
        experiment_evaluator::METRICS,
    )
    .expect("valid EMF documents of the function's own metrics");
    for name in [
        "Units",
        "RecoveredCartRate",
        "RevenuePerAbandonedCart",
        "UnsubscribeRate",
    ] {
        assert_eq!(names[name], ["service", "experiment", "variant"], "{name}");
    }
}

#[tokio::test]
async fn an_unreachable_decision_config_fails_the_run_for_a_retry() {
    let f = function(MemoryFeatureStore::default());
    f.config_store
        .unreachable
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let e = f.handle(event(FIXTURE)).await.unwrap_err();
    assert!(e.retryable(), "{e}");
    assert_eq!(e.reason_code(), "config_unreadable");
}

/// Both running experiments with 40 units each, over a unit store that misbehaves as `faults` says.
fn two_experiments(
    faults: Faults,
) -> Function<MemoryFeatureStore, MemoryObjectStore, MemoryObjectStore> {
    let store = MemoryFeatureStore::new(faults);
    for doc in units("checkout-offers", 40)
        .into_iter()
        .chain(units("express-checkout", 40))
    {
        store.insert(doc);
    }
    function(store)
}

#[tokio::test]
async fn a_permanent_store_error_refuses_that_experiment_and_the_run_succeeds() {
    // Call 1 (the first experiment's only page) fails for good; the second experiment is evaluated.
    let f = two_experiments(Faults {
        permanent_calls: vec![1],
        ..Faults::default()
    });
    let summary = f
        .handle(event(FIXTURE))
        .await
        .expect("a refusal is a success");
    assert_eq!(summary.refused.len(), 1, "{summary:?}");
    assert_eq!(
        summary.refused[0].experiment_id.as_deref(),
        Some("checkout-offers")
    );
    assert_eq!(summary.refused[0].reason, "store");
    assert!(summary.failed.is_empty());
    let outcomes: Vec<&str> = summary.reports.iter().map(|o| o.outcome).collect();
    assert_eq!(
        outcomes,
        ["written", "written"],
        "the other experiment and the impact report"
    );
}

#[tokio::test]
async fn a_failing_store_fails_the_run_after_writing_what_it_could() {
    // Call 1 (the first experiment's only page) fails; the second experiment's page succeeds.
    let f = two_experiments(Faults {
        transient_calls: vec![1],
        ..Faults::default()
    });
    let e = f.handle(event(FIXTURE)).await.unwrap_err();
    assert!(e.retryable(), "{e}");
    let e = e.to_string();
    assert!(
        e.contains("1 of 3 experiments hit a transient fault: checkout-offers"),
        "{e}"
    );
    let (failed_key, _) = report_keys("checkout-offers", window_end());
    let (written_key, _) = report_keys("express-checkout", window_end());
    assert!(f.reports.object(&failed_key).is_none());
    assert!(f.reports.object(&written_key).is_some());
    // The retry finishes the window.
    let summary = f.handle(event(FIXTURE)).await.expect("retry");
    let outcomes: Vec<&str> = summary.reports.iter().map(|o| o.outcome).collect();
    assert_eq!(
        outcomes,
        ["written", "exists", "exists"],
        "the impact report was written by the first run"
    );
}

/// `n` decisions of the compiled-in model at `at` + i seconds, every one scored on the same (empty)
/// session: as far from the training distribution as inputs get.
async fn decisions_logged(
    log: &checkout_domain::memory::MemoryLog,
    prefix: &str,
    at: DateTime<Utc>,
    n: usize,
) {
    use checkout_domain::decision::engine::{decide, Features, Inputs};
    use checkout_domain::decision::request::parse_request;
    use checkout_domain::ingest::LogEntry;
    use checkout_domain::ports::BatchSink;
    let model = checkout_domain::model::registry::fallback_model().unwrap();
    let config = DecisionConfig::default();
    let mut entries = Vec::new();
    for i in 0..n {
        let request = parse_request(
            format!(r#"{{"session_id": "{prefix}s-{i}", "placement": "cart"}}"#).as_bytes(),
        )
        .unwrap();
        let id = format!("{prefix}d-{i}");
        let d = decide(
            &request,
            Ok(&Features::default()),
            Inputs {
                decision_id: &id,
                now: at + chrono::Duration::seconds(i as i64),
                unit: None,
                model: &model,
                config: &config,
                policy: None,
                shadow: None,
                risk_model: None,
            },
        );
        entries.push(LogEntry::of(&d.event, i64::MAX).unwrap());
    }
    for chunk in entries.chunks(25) {
        let refs: Vec<&LogEntry> = chunk.iter().collect();
        log.put(&refs).await.unwrap();
    }
}

#[tokio::test]
async fn the_hourly_run_reports_input_drift_from_the_decision_log() {
    use checkout_domain::memory::MemoryLog;
    let log = MemoryLog::new(25, Faults::default());
    let hour = window_end() - chrono::Duration::hours(1);
    decisions_logged(&log, "", hour, 600).await;
    // Decisions of the hour before the window are not in it.
    decisions_logged(&log, "early-", hour - chrono::Duration::minutes(30), 10).await;
    let f = Function {
        config: config(),
        units: MemoryFeatureStore::default(),
        config_store: {
            let s = MemoryObjectStore::default();
            s.insert(DEFAULT_CONFIG_KEY, decision_config());
            s
        },
        reports: MemoryObjectStore::default(),
        log: Some(log),
        readout: None,
    };
    let summary = f.handle(event(FIXTURE)).await.expect("run");
    let drift = summary.drift.as_ref().expect("the monitor ran");
    assert_eq!(drift.window_start, Some(hour));
    assert_eq!(drift.decisions_read, 600);
    assert_eq!(drift.without_inputs, 0);
    assert_eq!(drift.reports.len(), 1);
    let r = &drift.reports[0];
    assert_eq!(
        (r.model_id.as_str(), r.model_version.as_str()),
        ("purchase-propensity", "builtin-uci-2")
    );
    assert_eq!(r.decisions, 600);
    assert_eq!(
        r.status, "alarm",
        "identical empty sessions are nothing like the training data"
    );
    assert!(r.alarmed > 0 && r.max_psi.unwrap() >= 0.25);
    assert_eq!(r.psi_by_column.len(), 18, "17 inputs and the score");
    let report: Value = serde_json::from_slice(&f.reports.object(&r.json_key).unwrap()).unwrap();
    assert_eq!(report["format"], "checkout-ai/drift-report");
    assert_eq!(report["columns"].as_array().unwrap().len(), 18);
    assert!(f
        .reports
        .object("drift/purchase-propensity/latest.json")
        .is_some());
    let html = String::from_utf8(f.reports.object(&r.html_key).unwrap()).unwrap();
    assert!(html.contains("Major shift") && html.contains("<svg class=\"bars\""));
    // Its metrics.
    let docs = experiment_evaluator::metrics(&summary).documents(window_end());
    let names = checkout_aws::emf::check_documents(
        &docs,
        experiment_evaluator::SERVICE,
        experiment_evaluator::METRICS,
    )
    .expect("valid EMF documents of the function's own metrics");
    assert_eq!(names["DriftPsi"], ["service", "input"]);
    for name in [
        "DriftDecisions",
        "DriftMaxPsi",
        "DriftWarnings",
        "DriftAlarms",
    ] {
        assert_eq!(names[name], ["service"], "{name}");
    }
    let max = docs.iter().find_map(|d| d.get("DriftMaxPsi")).unwrap();
    assert_eq!(max.as_f64(), r.max_psi);
    assert!(!drift.sampled);

    // A cap on the decisions read: a sample, flagged as one.
    let mut f = f;
    f.config.drift_max_decisions = 100;
    let capped = f.handle(event(FIXTURE)).await.expect("run");
    let drift = capped.drift.as_ref().unwrap();
    assert_eq!((drift.decisions_read, drift.sampled), (100, true));

    // A window below the minimum is reported, never alarmed.
    let small = MemoryLog::new(25, Faults::default());
    decisions_logged(&small, "", hour, 50).await;
    let f = Function {
        log: Some(small),
        ..f
    };
    let summary = f.handle(event(FIXTURE)).await.expect("run");
    let r = &summary.drift.as_ref().unwrap().reports[0];
    assert_eq!((r.status.as_str(), r.alarmed), ("insufficient", 0));
}

#[test]
fn the_sql_readout_is_off_unless_sized_and_then_needs_its_workgroup_and_database() {
    assert_eq!(config().sql_readout, None);
    let base = [
        ("FEATURES_TABLE", "features"),
        ("MODELS_BUCKET", "models"),
        ("REPORTS_BUCKET", "reports"),
        ("SQL_READOUT_MIN_UNITS", "1000000"),
    ];
    assert!(Config::from_env(&Env::from_pairs(base)).is_err());
    let c = Config::from_env(&Env::from_pairs(
        base.into_iter()
            .chain([("ARCHIVE_WORKGROUP", "wg"), ("ARCHIVE_DATABASE", "db")]),
    ))
    .expect("config");
    assert_eq!(
        c.sql_readout,
        Some(experiment_evaluator::SqlReadout {
            min_units: 1_000_000,
            workgroup: "wg".into(),
            database: "db".into(),
        })
    );
}
