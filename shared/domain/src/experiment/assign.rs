//! Deterministic assignment compatible with GrowthBook's SDK specification (hashing, bucket ranges,
//! namespaces), so teams already on GrowthBook see the same buckets. Checked against the specification's
//! conformance cases (`../shared/data/growthbook/all_cases.json`) by `shared/domain/tests/growthbook.rs`.

/// 32-bit FNV-1a over the string's UTF-16 code units, as the JavaScript reference SDK computes it.
pub fn fnv1a32(value: &str) -> u32 {
    value.encode_utf16().fold(0x811c_9dc5u32, |h, unit| {
        (h ^ u32::from(unit)).wrapping_mul(16_777_619)
    })
}

/// GrowthBook's `hash(seed, value, version)`: a number in `[0, 1)`, or `None` for an unknown version.
/// - version 1: `fnv1a32(value + seed) % 1000 / 1000`
/// - version 2: `fnv1a32(decimal(fnv1a32(seed + value))) % 10000 / 10000`
pub fn hash(seed: &str, value: &str, version: u32) -> Option<f64> {
    match version {
        1 => Some(f64::from(fnv1a32(&format!("{value}{seed}")) % 1000) / 1000.0),
        2 => {
            let first = fnv1a32(&format!("{seed}{value}"));
            Some(f64::from(fnv1a32(&first.to_string()) % 10_000) / 10_000.0)
        }
        _ => None,
    }
}

/// `n` equal weights (empty for `n ≤ 0`).
pub fn equal_weights(n: i64) -> Vec<f64> {
    if n <= 0 {
        return Vec::new();
    }
    vec![1.0 / n as f64; n as usize]
}

/// The `[start, end)` bucket of each variation: cumulative weights, each range shrunk to `coverage` of
/// its weight. Coverage is clamped to `[0, 1]`; weights of the wrong length or not summing to 1 ± 0.01 are
/// replaced by equal weights.
pub fn bucket_ranges(variations: usize, coverage: f64, weights: Option<&[f64]>) -> Vec<(f64, f64)> {
    let coverage = if coverage.is_nan() {
        0.0
    } else {
        coverage.clamp(0.0, 1.0)
    };
    let weights = match weights {
        Some(w) if w.len() == variations && (0.99..=1.01).contains(&w.iter().sum::<f64>()) => {
            w.to_vec()
        }
        _ => equal_weights(variations as i64),
    };
    let mut cumulative = 0.0;
    weights
        .iter()
        .map(|w| {
            let start = cumulative;
            cumulative += w;
            (start, start + coverage * w)
        })
        .collect()
}

/// The variation whose range holds `n`, or `None` (the unit is outside the experiment's coverage).
pub fn choose_variation(n: f64, ranges: &[(f64, f64)]) -> Option<usize> {
    ranges
        .iter()
        .position(|&(start, end)| n >= start && n < end)
}

/// A namespace slice: units hashing into `[start, end)` of the namespace take part.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Namespace {
    pub id: String,
    pub start: f64,
    pub end: f64,
}

/// Whether `unit` falls in the namespace slice (hash version 1 with seed `__<id>`, as the specification).
pub fn in_namespace(unit: &str, namespace: &Namespace) -> bool {
    hash(&format!("__{}", namespace.id), unit, 1)
        .is_some_and(|n| n >= namespace.start && n < namespace.end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_published_test_vectors() {
        assert_eq!(fnv1a32(""), 0x811c_9dc5);
        assert_eq!(fnv1a32("a"), 0xe40c_292c);
        assert_eq!(fnv1a32("foobar"), 0xbf9c_f968);
    }

    #[test]
    fn non_ascii_hashes_over_utf16_code_units() {
        // "é" is one UTF-16 unit (0xE9), "😀" two (a surrogate pair): not their UTF-8 bytes.
        assert_eq!(
            fnv1a32("é"),
            (0x811c_9dc5u32 ^ 0xE9).wrapping_mul(16_777_619)
        );
        let pair = [0xD83Du32, 0xDE00];
        let expected = pair
            .iter()
            .fold(0x811c_9dc5u32, |h, u| (h ^ u).wrapping_mul(16_777_619));
        assert_eq!(fnv1a32("😀"), expected);
    }
}
