//! The template's operations dashboard: its body is valid dashboard JSON once `!Sub` has filled it in,
//! every widget is placed on the grid, and every checkout-ai metric it draws is one that the function
//! named by its `service` dimension emits (each function's `METRICS`), with dimensions it emits them
//! with. The metrics the operators need (the list) are all drawn.

use serde_json::Value;
use serde_yaml_ng::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};

fn template() -> Yaml {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
        .expect("template.yaml");
    serde_yaml_ng::from_str(&text).expect("template.yaml is YAML")
}

/// The value of a `!Sub` string, its `${...}` references replaced by placeholders, and the references.
fn substituted(v: &Yaml) -> (String, BTreeSet<String>) {
    let Yaml::Tagged(tagged) = v else {
        panic!("DashboardBody is a !Sub string: {v:?}")
    };
    assert_eq!(tagged.tag.to_string(), "!Sub");
    let text = tagged.value.as_str().expect("a string");
    let mut out = String::new();
    let mut refs = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find('}').expect("closed reference") + at;
        let name = &rest[at + 2..end];
        refs.insert(name.to_string());
        out.push_str(&format!("REF_{}", name.replace("::", "_")));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    (out, refs)
}

/// Metric name → the dimension names it is emitted with, per service.
fn emitted() -> BTreeMap<&'static str, BTreeMap<&'static str, Vec<&'static str>>> {
    let with = |dims: &[(&'static str, &[&'static str])], all: &[&'static str]| {
        all.iter()
            .map(|m| {
                let d = dims
                    .iter()
                    .find(|(name, _)| name == m)
                    .map_or(vec![], |(_, d)| d.to_vec());
                (*m, d)
            })
            .collect::<BTreeMap<_, _>>()
    };
    BTreeMap::from([
        (
            ingest::SERVICE,
            with(&[("QuarantinedByReason", &["reason"])], ingest::METRICS),
        ),
        (
            feature_updater::SERVICE,
            with(&[], feature_updater::METRICS),
        ),
        (
            scorer::SERVICE,
            with(
                &[
                    ("Decisions", &["placement", "action", "variant"]),
                    ("DecisionsByAction", &["action"]),
                    ("DegradedByReason", &["reason"]),
                    ("Rejected", &["status"]),
                ],
                scorer::METRICS,
            ),
        ),
        (
            experiment_evaluator::SERVICE,
            with(
                &[
                    ("ReportFailuresByReason", &["reason"]),
                    ("Units", &["experiment", "variant"]),
                    ("Conversion", &["experiment", "variant"]),
                    ("RevenuePerUser", &["experiment", "variant"]),
                    ("AverageOrderValue", &["experiment", "variant"]),
                    ("RecoveredCartRate", &["experiment", "variant"]),
                    ("RevenuePerAbandonedCart", &["experiment", "variant"]),
                    ("UnsubscribeRate", &["experiment", "variant"]),
                    ("DriftPsi", &["input"]),
                ],
                experiment_evaluator::METRICS,
            ),
        ),
        (
            recovery_sweep::SERVICE,
            with(
                &[
                    ("MessagesRequestedByStep", &["step"]),
                    ("SequencesEndedByReason", &["reason"]),
                ],
                recovery_sweep::METRICS,
            ),
        ),
    ])
}

#[test]
fn the_dashboard_is_valid_and_draws_only_metrics_the_functions_emit() {
    let t = template();
    let resources = t["Resources"].as_mapping().expect("Resources");
    let dashboard = &t["Resources"]["OperationsDashboard"];
    assert_eq!(
        dashboard["Type"].as_str(),
        Some("AWS::CloudWatch::Dashboard")
    );
    let (body, refs) = substituted(&dashboard["Properties"]["DashboardBody"]);
    for r in &refs {
        assert!(
            r.starts_with("AWS::") || resources.contains_key(r.as_str()),
            "${{{r}}} names no resource"
        );
    }
    let body: Value = serde_json::from_str(&body).expect("the body is JSON");
    let widgets = body["widgets"].as_array().expect("widgets");
    assert!(widgets.len() >= 8);
    let emitted = emitted();
    let mut drawn: BTreeSet<(String, String)> = BTreeSet::new();
    for w in widgets {
        for field in ["x", "y", "width", "height"] {
            assert!(w[field].is_u64(), "{field} of {w}");
        }
        assert!(w["x"].as_u64().unwrap() + w["width"].as_u64().unwrap() <= 24);
        match w["type"].as_str() {
            Some("text") => assert!(w["properties"]["markdown"].is_string()),
            Some("metric") => {
                let p = &w["properties"];
                assert!(
                    p["title"].is_string() && p["region"] == "REF_AWS_Region",
                    "{w}"
                );
                assert!(p["period"].as_u64().is_some_and(|s| s % 60 == 0), "{w}");
                let rows = p["metrics"].as_array().expect("metrics");
                assert!(!rows.is_empty());
                let ids: BTreeSet<&str> = rows
                    .iter()
                    .filter_map(|r| r.as_array()?.last()?["id"].as_str())
                    .collect();
                for row in rows {
                    let row = row.as_array().expect("a metric row is an array");
                    if let Some(expr) = row[0]["expression"].as_str() {
                        check_expression(expr, &ids, &emitted, &mut drawn);
                        continue;
                    }
                    let names: Vec<&str> = row.iter().filter_map(Value::as_str).collect();
                    assert!(names.len() >= 2 && names.len().is_multiple_of(2), "{row:?}");
                    let (namespace, metric) = (names[0], names[1]);
                    let dims: BTreeMap<&str, &str> =
                        names[2..].chunks(2).map(|c| (c[0], c[1])).collect();
                    match namespace {
                        "checkout-ai" => {
                            let service = dims.get("service").expect("a service dimension");
                            let known = emitted
                                .get(service)
                                .unwrap_or_else(|| panic!("no service {service}"));
                            let expected = known.get(metric).unwrap_or_else(|| {
                                panic!("{service} emits no {metric} (dashboard row {row:?})")
                            });
                            let extra: Vec<&str> =
                                dims.keys().filter(|k| **k != "service").copied().collect();
                            assert_eq!(&extra, expected, "dimensions of {metric}");
                            drawn.insert((service.to_string(), metric.to_string()));
                        }
                        "AWS/Lambda" => {
                            assert!(["Errors", "IteratorAge", "Duration"].contains(&metric));
                            drawn.insert(("lambda".into(), format!("{metric} {:?}", dims)));
                        }
                        other => panic!("unexpected namespace {other}"),
                    }
                }
            }
            other => panic!("widget type {other:?}"),
        }
    }
    // What an operator must see (decisions and mix, degraded share, latency, errors and quarantines,
    // lag, iterator age of both streams, the experiment readouts).
    for (service, metric) in [
        ("scorer", "DecisionCount"),
        ("scorer", "DecisionsByAction"),
        ("scorer", "Degraded"),
        ("scorer", "DecisionLatency"),
        ("scorer", "FeatureReadLatency"),
        ("scorer", "EventPutFailures"),
        ("ingest", "Quarantined"),
        ("feature-updater", "ProjectionLag"),
        ("experiment-evaluator", "Conversion"),
        ("experiment-evaluator", "RevenuePerUser"),
        ("experiment-evaluator", "AverageOrderValue"),
        ("experiment-evaluator", "SrmAlarms"),
        ("experiment-evaluator", "DriftMaxPsi"),
        ("experiment-evaluator", "DriftPsi"),
        ("experiment-evaluator", "RecoveredCartRate"),
        ("experiment-evaluator", "UnsubscribeRate"),
        ("recovery-sweep", "MessagesRequestedByStep"),
        ("recovery-sweep", "SequencesEndedByReason"),
        ("recovery-sweep", "SweepFailures"),
    ] {
        assert!(
            drawn.contains(&(service.to_string(), metric.to_string())),
            "the dashboard draws {service} {metric}"
        );
    }
    for f in ["IngestFunction", "FeatureUpdaterFunction"] {
        let key = format!(
            "IteratorAge {:?}",
            BTreeMap::from([("FunctionName", format!("REF_{f}").as_str())])
        );
        assert!(
            drawn.contains(&("lambda".to_string(), key)),
            "iterator age of {f}"
        );
    }
}

/// A metric-math expression: either arithmetic over the widget's ids, or a SEARCH over a schema whose
/// metric the functions emit with exactly those dimensions.
fn check_expression(
    expr: &str,
    ids: &BTreeSet<&str>,
    emitted: &BTreeMap<&'static str, BTreeMap<&'static str, Vec<&'static str>>>,
    drawn: &mut BTreeSet<(String, String)>,
) {
    if let Some(search) = expr.strip_prefix("SEARCH('{") {
        let (schema, rest) = search.split_once('}').expect("a schema");
        let mut parts = schema.split(',');
        assert_eq!(parts.next(), Some("checkout-ai"));
        let dims: Vec<&str> = parts.collect();
        assert_eq!(dims[0], "service");
        let metric = rest
            .split_once("MetricName=\"")
            .and_then(|(_, m)| m.split_once('"'))
            .map(|(m, _)| m)
            .expect("a MetricName");
        let service = emitted
            .iter()
            .find(|(_, metrics)| metrics.get(metric).is_some_and(|d| d[..] == dims[1..]))
            .map(|(s, _)| *s)
            .unwrap_or_else(|| panic!("no function emits {metric} with {dims:?}"));
        drawn.insert((service.to_string(), metric.to_string()));
    } else {
        for token in expr.split(|c: char| !c.is_ascii_alphanumeric() && c != '_') {
            if token
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
            {
                assert!(ids.contains(token), "{token} in {expr} is no metric id");
            }
        }
    }
}
