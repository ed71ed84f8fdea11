//! EMF documents against the specification: its structure as a JSON schema (written here from the
//! published "Specification: Embedded metric format" page), its limits, and the rule that every metric a
//! directive names, and every dimension, is a member of the root.

use checkout_aws::emf::{validate, Metrics, Unit, MAX_METRICS, MAX_VALUES, NAMESPACE};
use chrono::TimeZone;
use serde_json::{json, Value};

fn spec() -> Value {
    json!({
        "type": "object",
        "required": ["_aws"],
        "properties": {
            "_aws": {
                "type": "object",
                "required": ["Timestamp", "CloudWatchMetrics"],
                "properties": {
                    "Timestamp": {"type": "integer", "minimum": 0},
                    "CloudWatchMetrics": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["Namespace", "Dimensions", "Metrics"],
                            "additionalProperties": false,
                            "properties": {
                                "Namespace": {"type": "string", "minLength": 1, "maxLength": 1024},
                                "Dimensions": {
                                    "type": "array",
                                    "items": {
                                        "type": "array",
                                        "maxItems": 30,
                                        "items": {"type": "string", "minLength": 1, "maxLength": 250}
                                    }
                                },
                                "Metrics": {
                                    "type": "array",
                                    "maxItems": 100,
                                    "items": {
                                        "type": "object",
                                        "required": ["Name"],
                                        "additionalProperties": false,
                                        "properties": {
                                            "Name": {"type": "string", "minLength": 1, "maxLength": 1024},
                                            "Unit": {"enum": [
                                                "Seconds", "Microseconds", "Milliseconds", "Bytes",
                                                "Kilobytes", "Megabytes", "Gigabytes", "Terabytes", "Bits",
                                                "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent",
                                                "Count", "Bytes/Second", "Kilobytes/Second",
                                                "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second",
                                                "Bits/Second", "Kilobits/Second", "Megabits/Second",
                                                "Gigabits/Second", "Terabits/Second", "Count/Second", "None"
                                            ]},
                                            "StorageResolution": {"enum": [1, 60]}
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// Validates one document: the schema, then the cross-member rules the schema cannot say, by hand here
/// and by [`validate`] (which the functions' tests use).
pub fn check(doc: &Value) {
    let validator = jsonschema::validator_for(&spec()).expect("the schema compiles");
    let errors: Vec<String> = validator.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{doc}: {errors:?}");
    assert_eq!(validate(doc), Ok(()));
    for directive in doc["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
        assert_eq!(directive["Namespace"], NAMESPACE);
        for set in directive["Dimensions"].as_array().unwrap() {
            assert_eq!(set[0], "service", "every dimension set starts with service");
            for name in set.as_array().unwrap() {
                let value = &doc[name.as_str().unwrap()];
                assert!(
                    value.is_string(),
                    "dimension {name} is a string member: {doc}"
                );
            }
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            let value = &doc[metric["Name"].as_str().unwrap()];
            match value {
                Value::Number(_) => {}
                Value::Array(values) => {
                    assert!(!values.is_empty() && values.len() <= MAX_VALUES, "{doc}");
                    assert!(values.iter().all(Value::is_number));
                }
                other => panic!("metric {metric} is {other}"),
            }
        }
    }
}

fn at() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc.with_ymd_and_hms(2026, 11, 30, 5, 0, 0).unwrap()
}

#[test]
fn a_document_names_its_namespace_service_dimensions_and_values() {
    let mut m = Metrics::warm("scorer");
    m.count("Decisions", 1);
    m.add("TotalLatency", Unit::Milliseconds, 3.5);
    m.add("TotalLatency", Unit::Milliseconds, 4.5);
    m.add_with(
        &[("placement", "checkout"), ("action", "wallet_first")],
        "DecisionsByAction",
        Unit::Count,
        1.0,
    );
    let docs = m.documents(at());
    assert_eq!(docs.len(), 2);
    for d in &docs {
        check(d);
    }
    let plain = &docs[0];
    assert_eq!(plain["_aws"]["Timestamp"], 1_796_014_800_000i64);
    assert_eq!(
        plain["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["service"]])
    );
    assert_eq!(plain["service"], "scorer");
    assert_eq!(plain["Decisions"], 1.0);
    assert_eq!(plain["TotalLatency"], json!([3.5, 4.5]));
    let units: Vec<&Value> = plain["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["Unit"])
        .collect();
    assert_eq!(units, [&json!("Count"), &json!("Milliseconds")]);
    let by_action = &docs[1];
    assert_eq!(
        by_action["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["service", "placement", "action"]])
    );
    assert_eq!(by_action["action"], "wallet_first");
    assert!(
        m.documents(at()).is_empty(),
        "documents drain the collector"
    );
}

#[test]
fn more_than_a_hundred_metrics_or_values_split_into_more_documents() {
    const NAMES: [&str; 130] = {
        // 130 distinct static names without allocation.
        let mut names = [""; 130];
        let table = [
            "a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "b0", "b1", "b2", "b3",
            "b4", "b5", "b6", "b7", "b8", "b9", "c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7",
            "c8", "c9", "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9", "e0", "e1",
            "e2", "e3", "e4", "e5", "e6", "e7", "e8", "e9", "f0", "f1", "f2", "f3", "f4", "f5",
            "f6", "f7", "f8", "f9", "g0", "g1", "g2", "g3", "g4", "g5", "g6", "g7", "g8", "g9",
            "h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9", "i0", "i1", "i2", "i3",
            "i4", "i5", "i6", "i7", "i8", "i9", "j0", "j1", "j2", "j3", "j4", "j5", "j6", "j7",
            "j8", "j9", "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "l0", "l1",
            "l2", "l3", "l4", "l5", "l6", "l7", "l8", "l9", "m0", "m1", "m2", "m3", "m4", "m5",
            "m6", "m7", "m8", "m9",
        ];
        let mut i = 0;
        while i < 130 {
            names[i] = table[i];
            i += 1;
        }
        names
    };
    let mut m = Metrics::warm("feature-updater");
    for name in NAMES {
        m.count(name, 1);
    }
    for i in 0..250 {
        m.add("Lag", Unit::Milliseconds, f64::from(i));
    }
    m.add("Lag", Unit::Milliseconds, f64::NAN); // dropped: CloudWatch rejects non-finite values
    let docs = m.documents(at());
    for d in &docs {
        check(d);
        let declared = d["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap();
        assert!(declared.len() <= MAX_METRICS);
    }
    // Every value arrives exactly once.
    let mut lag: Vec<f64> = Vec::new();
    let mut counts = 0;
    for d in &docs {
        match &d["Lag"] {
            Value::Array(v) => lag.extend(v.iter().map(|x| x.as_f64().unwrap())),
            Value::Number(n) => lag.push(n.as_f64().unwrap()),
            _ => {}
        }
        counts += NAMES.iter().filter(|n| d.get(**n).is_some()).count();
    }
    assert_eq!(lag, (0..250).map(f64::from).collect::<Vec<_>>());
    assert_eq!(counts, 130);
    assert_eq!(
        docs.len(),
        3,
        "131 metrics, then Lag's 2nd and 3rd hundred values"
    );
}

#[test]
fn the_first_collector_of_a_container_records_the_cold_start_once() {
    let mut first = Metrics::new("ingest");
    let mut second = Metrics::new("ingest");
    let docs = first.documents(at());
    assert_eq!(docs.len(), 1);
    check(&docs[0]);
    assert_eq!(docs[0]["ColdStart"], 1.0);
    assert_eq!(
        docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["service", "function_name"]])
    );
    assert!(second.documents(at()).is_empty());
}

#[test]
fn an_empty_or_long_dimension_value_stays_within_the_limits() {
    let mut m = Metrics::warm("scorer");
    let long = "x".repeat(2000);
    m.add_with(
        &[("reason", ""), ("variant", &long)],
        "Degraded",
        Unit::Count,
        1.0,
    );
    let docs = m.documents(at());
    check(&docs[0]);
    assert_eq!(docs[0]["reason"], "none");
}

#[test]
fn validate_refuses_what_the_specification_refuses() {
    let mut m = Metrics::warm("scorer");
    m.add_with(&[("action", "none")], "Decisions", Unit::Count, 1.0);
    let good = m.documents(at()).remove(0);
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut d = good.clone();
        f(&mut d);
        d
    };
    let cases = [
        broken(&|d| {
            d.as_object_mut().unwrap().remove("Decisions");
        }),
        broken(&|d| {
            d.as_object_mut().unwrap().remove("action");
        }),
        broken(&|d| d["Decisions"] = json!("1")),
        broken(&|d| d["Decisions"] = json!(vec![1.0; 101])),
        broken(&|d| d["_aws"]["Timestamp"] = json!("now")),
        broken(&|d| d["_aws"]["CloudWatchMetrics"][0]["Namespace"] = json!("other")),
    ];
    for case in &cases {
        assert!(validate(case).is_err(), "{case}");
    }
    let schema = jsonschema::validator_for(&spec()).unwrap();
    assert!(
        !schema.is_valid(&cases[4]),
        "the schema agrees on the timestamp"
    );
}

#[test]
fn a_collector_never_flushed_stops_growing() {
    let mut m = Metrics::warm("scorer");
    for i in 0..(checkout_aws::emf::MAX_BUFFERED_VALUES + 10) {
        m.add("DecisionLatency", Unit::Milliseconds, i as f64);
    }
    assert_eq!(m.len(), checkout_aws::emf::MAX_BUFFERED_VALUES);
    let docs = m.documents(at());
    assert_eq!(m.len(), 0);
    let values: usize = docs
        .iter()
        .map(|d| d["DecisionLatency"].as_array().map_or(1, Vec::len))
        .sum();
    assert_eq!(values, checkout_aws::emf::MAX_BUFFERED_VALUES);
}
