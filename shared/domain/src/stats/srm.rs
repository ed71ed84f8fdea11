//! Sample-ratio mismatch: Pearson's chi-square of the units per arm against the configured weights, as
//! gbstats 0.8.0's `check_srm` computes it (arms with weight ≤ 0 are left out of the statistic but not
//! of the degrees of freedom).

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// The alarm threshold.
pub const SRM_ALPHA: f64 = 0.001;
/// Units every arm needs before the check can alarm.
pub const SRM_MIN_UNITS: u64 = 8;

/// The SRM p-value of `units` per arm against `weights` (1 when there are no units).
pub fn srm_p_value(units: &[u64], weights: &[f64]) -> f64 {
    let total: u64 = units.iter().sum();
    if total == 0 || units.len() < 2 {
        return 1.0;
    }
    let total_weight: f64 = weights.iter().sum();
    let mut x = 0.0;
    for (o, w) in units.iter().zip(weights) {
        if *w <= 0.0 {
            continue;
        }
        let e = w / total_weight * total as f64;
        x += (*o as f64 - e).powi(2) / e;
    }
    match ChiSquared::new((units.len() - 1) as f64) {
        Ok(chi2) => chi2.sf(x),
        Err(_) => 1.0,
    }
}

/// Whether to raise the SRM alarm: p < 0.001 with at least 8 units in every arm.
pub fn srm_alarm(units: &[u64], weights: &[f64]) -> bool {
    units.iter().all(|&u| u >= SRM_MIN_UNITS) && srm_p_value(units, weights) < SRM_ALPHA
}
