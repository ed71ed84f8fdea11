//! Experiment definitions and deterministic assignment of a unit to a variation.

use super::assign::{bucket_ranges, choose_variation, hash, in_namespace, Namespace};
use crate::placement::Placement;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Draft,
    Running,
    Stopped,
}

/// One experiment, as configured (a DynamoDB config item or an S3 JSON document).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub id: String,
    /// Defaults to the id (GrowthBook's default).
    #[serde(default)]
    pub hash_seed: Option<String>,
    /// GrowthBook hash version; 2 unless set.
    #[serde(default = "two")]
    pub hash_version: u32,
    /// Variation keys; the first is the control.
    pub variations: Vec<String>,
    #[serde(default)]
    pub weights: Option<Vec<f64>>,
    #[serde(default = "one")]
    pub coverage: f64,
    #[serde(default)]
    pub namespace: Option<Namespace>,
    pub placement: Placement,
    pub status: Status,
    #[serde(default)]
    pub start: Option<DateTime<Utc>>,
    #[serde(default)]
    pub end: Option<DateTime<Utc>>,
    /// Days after the experiment stops (status `stopped` with an `end`) that its units are still read,
    /// so that the final report shows whether the effect held, faded or reversed.
    #[serde(default = "thirty", skip_serializing_if = "is_thirty")]
    pub tail_days: u32,
}

/// The default long-run tail.
pub const DEFAULT_TAIL_DAYS: u32 = 30;

fn thirty() -> u32 {
    DEFAULT_TAIL_DAYS
}

fn is_thirty(d: &u32) -> bool {
    *d == DEFAULT_TAIL_DAYS
}

fn two() -> u32 {
    2
}

fn one() -> f64 {
    1.0
}

/// A unit's place in an experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assignment {
    pub experiment_id: String,
    pub variation: usize,
    pub variant: String,
    /// The unit's hash in `[0, 1)` (for audit).
    pub bucket: f64,
}

impl Experiment {
    /// Whether the experiment serves `placement` at `now`.
    pub fn is_live(&self, placement: Placement, now: DateTime<Utc>) -> bool {
        self.status == Status::Running
            && self.placement == placement
            && self.variations.len() >= 2
            && self.start.is_none_or(|s| now >= s)
            && self.end.is_none_or(|e| now < e)
    }

    /// The unit's variation, or `None` when it is outside the namespace or the coverage.
    pub fn assign(&self, unit: &str) -> Option<Assignment> {
        if let Some(ns) = &self.namespace {
            if !in_namespace(unit, ns) {
                return None;
            }
        }
        let seed = self.hash_seed.as_deref().unwrap_or(&self.id);
        let bucket = hash(seed, unit, self.hash_version)?;
        let ranges = bucket_ranges(
            self.variations.len(),
            self.coverage,
            self.weights.as_deref(),
        );
        let variation = choose_variation(bucket, &ranges)?;
        Some(Assignment {
            experiment_id: self.id.clone(),
            variation,
            variant: self.variations[variation].clone(),
            bucket,
        })
    }
}

/// The first live experiment for `placement` that takes the unit.
pub fn assign(
    experiments: &[Experiment],
    placement: Placement,
    unit: &str,
    now: DateTime<Utc>,
) -> Option<Assignment> {
    experiments
        .iter()
        .filter(|e| e.is_live(placement, now))
        .find_map(|e| e.assign(unit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn experiment() -> Experiment {
        serde_json::from_value(serde_json::json!({
            "id": "checkout-offers", "variations": ["control", "treatment"],
            "placement": "cart", "status": "running"
        }))
        .unwrap()
    }

    #[test]
    fn assignment_is_deterministic_and_splits_near_the_weights() {
        let e = experiment();
        let now = Utc::now();
        let mut treated = 0;
        for i in 0..20_000 {
            let unit = format!("user-{i}");
            let a = assign(std::slice::from_ref(&e), Placement::Cart, &unit, now).unwrap();
            assert_eq!(Some(a.clone()), e.assign(&unit), "same unit, same answer");
            treated += a.variation;
        }
        assert!(
            (9_700..=10_300).contains(&treated),
            "{treated} of 20,000 treated"
        );
    }

    #[test]
    fn only_running_experiments_of_the_placement_within_their_dates_assign() {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let mut e = experiment();
        assert!(assign(std::slice::from_ref(&e), Placement::Checkout, "u", now).is_none());
        e.status = Status::Stopped;
        assert!(assign(std::slice::from_ref(&e), Placement::Cart, "u", now).is_none());
        e.status = Status::Running;
        e.start = Some(now + chrono::Duration::hours(1));
        assert!(assign(std::slice::from_ref(&e), Placement::Cart, "u", now).is_none());
        e.start = None;
        e.end = Some(now);
        assert!(assign(std::slice::from_ref(&e), Placement::Cart, "u", now).is_none());
        e.end = None;
        e.coverage = 0.0;
        assert!(assign(std::slice::from_ref(&e), Placement::Cart, "u", now).is_none());
    }
}
