//! GrowthBook SDK specification conformance: every `hash`, `getBucketRange`, `chooseVariation`,
//! `inNamespace` and `getEqualWeights` case of `../shared/data/growthbook/all_cases.json`.

use checkout_domain::experiment::assign::{self as gb, Namespace};
use serde_json::Value;

fn cases() -> Option<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/growthbook/all_cases.json");
    match std::fs::read(&path) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).expect("all_cases.json is JSON")),
        Err(e) => {
            eprintln!("SKIPPED: {}: {e}", path.display());
            None
        }
    }
}

fn group<'a>(all: &'a Value, name: &str) -> &'a [Value] {
    let cases = all[name]
        .as_array()
        .unwrap_or_else(|| panic!("no `{name}` cases"));
    assert!(!cases.is_empty(), "no `{name}` cases");
    cases
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"))
}

fn ranges(v: &Value) -> Vec<(f64, f64)> {
    v.as_array()
        .expect("ranges")
        .iter()
        .map(|r| (f(&r[0]), f(&r[1])))
        .collect()
}

/// The specification prints some expectations rounded (e.g. 0.33333333), and float sums such as
/// 0.2 + 0.2·0.3 differ in the last bit between languages.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn hash() {
    let Some(all) = cases() else { return };
    for case in group(&all, "hash") {
        let (seed, value) = (case[0].as_str().unwrap(), case[1].as_str().unwrap());
        let version = case[2].as_u64().unwrap() as u32;
        let got = gb::hash(seed, value, version);
        match case[3].as_f64() {
            Some(expected) => assert_eq!(got, Some(expected), "{case}"),
            None => assert_eq!(got, None, "{case}"),
        }
    }
}

#[test]
fn get_bucket_range() {
    let Some(all) = cases() else { return };
    for case in group(&all, "getBucketRange") {
        let args = &case[1];
        let weights: Option<Vec<f64>> = args[2].as_array().map(|w| w.iter().map(f).collect());
        let got = gb::bucket_ranges(
            args[0].as_u64().unwrap() as usize,
            f(&args[1]),
            weights.as_deref(),
        );
        let expected = ranges(&case[2]);
        assert_eq!(got.len(), expected.len(), "{case}");
        for (g, e) in got.iter().zip(&expected) {
            assert!(
                close(g.0, e.0) && close(g.1, e.1),
                "{}: got {got:?}",
                case[0]
            );
        }
    }
}

#[test]
fn choose_variation() {
    let Some(all) = cases() else { return };
    for case in group(&all, "chooseVariation") {
        let got = gb::choose_variation(f(&case[1]), &ranges(&case[2]));
        let expected = case[3].as_i64().unwrap();
        assert_eq!(got.map_or(-1, |i| i as i64), expected, "{}", case[0]);
    }
}

#[test]
fn in_namespace() {
    let Some(all) = cases() else { return };
    for case in group(&all, "inNamespace") {
        let ns = &case[2];
        let namespace = Namespace {
            id: ns[0].as_str().unwrap().into(),
            start: f(&ns[1]),
            end: f(&ns[2]),
        };
        let got = gb::in_namespace(case[1].as_str().unwrap(), &namespace);
        assert_eq!(got, case[3].as_bool().unwrap(), "{}", case[0]);
    }
}

#[test]
fn get_equal_weights() {
    let Some(all) = cases() else { return };
    for case in group(&all, "getEqualWeights") {
        let got = gb::equal_weights(case[0].as_i64().unwrap());
        let expected: Vec<f64> = case[1].as_array().unwrap().iter().map(f).collect();
        assert_eq!(got.len(), expected.len(), "{case}");
        assert!(
            got.iter().zip(&expected).all(|(g, e)| close(*g, *e)),
            "{case}: {got:?}"
        );
    }
}
