//! The system impact report: the universal holdout against everyone else, over a rolling window and
//! since the holdout began, on what the merchant pays for (conversion, revenue, average order value,
//! incentive cost, margin, repeat purchase), with lift by cohort and the minimum detectable effect at
//! the current sample size.
//!
//! | key (reports bucket) | what |
//! |---|---|
//! | `reports/<holdout>/impact/<window-end>.html` | the page, written first |
//! | `reports/<holdout>/impact/<window-end>.json` | the report, written once |
//! | `reports/<holdout>/impact/latest.json` | the newest window's report |
//!
//! The units are the holdout's experiment units: every decision for a known user logs the user's arm
//! (`decision_served.holdout`), and the feature updater keeps the first as an exposure like any
//! experiment's. Sequential tests by default: the report is read every hour, for as long as the holdout
//! lasts.

use super::evaluation::{
    for_each_unit, read_latest, update_latest, write_report, EvaluationError, ImpactSettings,
    Outcome, UnitFold,
};
use super::holdout::UniversalHoldout;
use crate::ports::{ObjectStore, UnitSource};
use crate::stats::analysis::{Settings, Test};
use crate::stats::report::{Direction, Report, Window};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

pub const IMPACT_FORMAT: &str = "checkout-ai.impact-report";
pub const IMPACT_VERSION: u32 = 1;
/// A reading shorter than this is too early whatever its sample: two whole weekly cycles.
pub const MIN_DAYS: i64 = 14;

#[derive(Debug, Clone, Serialize)]
pub struct ImpactReport {
    pub format: &'static str,
    pub version: u32,
    pub holdout: HoldoutSection,
    pub window: Window,
    pub generated_at: DateTime<Utc>,
    pub settings: ImpactSettings,
    /// `too_early` until both arms have the minimum sample and the reading covers two weeks.
    pub too_early: bool,
    pub summary: String,
    pub reasons: Vec<String>,
    pub since_start: Reading,
    pub rolling: Reading,
}

#[derive(Debug, Clone, Serialize)]
pub struct HoldoutSection {
    pub id: String,
    pub share: f64,
    pub since: Option<DateTime<Utc>>,
    /// The randomisation the report reads: the configured holdout, or, when the config changed it
    /// without re-randomising, the one before, which every later report keeps until a valid change.
    pub randomisation: UniversalHoldout,
    /// Why the configured holdout breaks the comparison, when it does: no verdict then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reshuffled: Option<String>,
    /// Units analysed since the start: held out, and served.
    pub holdout_units: u64,
    pub served_units: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reading {
    /// Units first seen from this instant (the holdout's start, or the rolling window's).
    pub from: Option<DateTime<Utc>>,
    /// The minimum detectable effect of each metric at this sample size.
    pub power: Vec<Power>,
    pub report: Report,
}

/// What the reading can detect now.
#[derive(Debug, Clone, Serialize)]
pub struct Power {
    pub metric: String,
    /// The smallest true effect (relative, or absolute as the settings say) the test would find with the
    /// configured power at the current sample: the interval's half-width plus `z(power)` standard errors.
    /// `None` when the effect cannot be computed yet.
    pub mde: Option<f64>,
    pub effect: Option<f64>,
    pub direction: Direction,
}

pub fn impact_keys(holdout_id: &str, end: DateTime<Utc>) -> (String, String) {
    let base = format!(
        "reports/{holdout_id}/impact/{}",
        super::evaluation::window_name(end)
    );
    (format!("{base}.json"), format!("{base}.html"))
}

pub fn impact_latest_key(holdout_id: &str) -> String {
    format!("reports/{holdout_id}/impact/latest.json")
}

fn power(report: &Report, power: f64) -> Vec<Power> {
    let z = Normal::new(0.0, 1.0).map_or(0.84, |n| n.inverse_cdf(power));
    report
        .metrics
        .iter()
        .filter_map(|m| {
            let c = m.comparisons.first()?;
            let ok = c.error.is_none() && c.effect_stddev > 0.0;
            Some(Power {
                metric: m.name.clone(),
                mde: ok.then(|| (c.ci[1] - c.ci[0]) / 2.0 + z * c.effect_stddev),
                effect: ok.then_some(c.effect),
                direction: c.direction,
            })
        })
        .collect()
}

/// The verdict: too early, or what the holdout shows.
fn verdict(
    since: &Reading,
    holdout: &UniversalHoldout,
    settings: &Settings,
    covered: Duration,
    reshuffled: Option<&str>,
) -> (bool, String, Vec<String>) {
    let units = &since.report.arms;
    let small: Vec<String> = units
        .iter()
        .filter(|a| a.units < settings.min_sample_per_arm)
        .map(|a| format!("{} has {} units", a.variant, a.units))
        .collect();
    let days = covered.num_seconds() as f64 / 86_400.0;
    let mut reasons = Vec::new();
    if !small.is_empty() {
        reasons.push(format!(
            "Below the minimum sample of {} units per arm: {}.",
            settings.min_sample_per_arm,
            small.join(", ")
        ));
    }
    if covered < Duration::days(MIN_DAYS) {
        reasons.push(format!(
            "The holdout has run {days:.1} days; a reading needs at least {MIN_DAYS} (two whole weeks), and \
             repeat purchase and the long run need months."
        ));
    }
    for p in &since.power {
        if let Some(mde) = p.mde {
            reasons.push(format!(
                "{}: the smallest change this sample would detect is ±{:.1}%.",
                p.metric,
                mde * 100.0
            ));
        }
    }
    let too_early = !small.is_empty() || covered < Duration::days(MIN_DAYS);
    if let Some(why) = reshuffled {
        reasons.insert(0, why.to_string());
        let summary = format!(
            "No verdict: the universal holdout was changed without a re-randomisation, so users moved \
             between the arms and the comparison is broken. {why}"
        );
        return (true, summary, reasons);
    }
    let summary = if too_early {
        format!(
            "Too early to say what checkout-ai adds: {} of {} users are held out ({:.0}%), over {days:.1} days. \
             Nothing here is evidence either way yet.",
            units.first().map_or(0, |a| a.units),
            units.iter().map(|a| a.units).sum::<u64>(),
            holdout.share * 100.0
        )
    } else {
        let goal = |name: &str| {
            since
                .report
                .metrics
                .iter()
                .find(|m| m.name == name)
                .and_then(|m| m.comparisons.first())
        };
        match goal("margin_per_visitor") {
            Some(c) if c.direction == Direction::Better => format!(
                "checkout-ai adds margin: {:+.2}% margin per visitor against the holdout [{:+.2}%, {:+.2}%].",
                c.effect * 100.0,
                c.ci[0] * 100.0,
                c.ci[1] * 100.0
            ),
            Some(c) if c.direction == Direction::Worse => format!(
                "checkout-ai costs margin: {:+.2}% margin per visitor against the holdout [{:+.2}%, {:+.2}%]. \
                 Review the incentives.",
                c.effect * 100.0,
                c.ci[0] * 100.0,
                c.ci[1] * 100.0
            ),
            _ => "No significant difference in margin per visitor between the served and the holdout yet."
                .into(),
        }
    };
    (too_early, summary, reasons)
}

/// The randomisation the newest impact report read, if there is one (a report from before it was
/// recorded, or one that cannot be read, gives none: the configured holdout is then taken as it is).
async fn previous_randomisation<R: ObjectStore>(
    reports: &R,
    holdout_id: &str,
) -> Result<Option<UniversalHoldout>, EvaluationError> {
    Ok(read_latest(reports, &impact_latest_key(holdout_id))
        .await?
        .and_then(|mut v| serde_json::from_value(v["holdout"]["randomisation"].take()).ok()))
}

/// Writes the impact report of the window ending at `window_end` (once; `latest.json` never goes back).
#[allow(clippy::too_many_arguments)]
pub async fn evaluate_impact<U: UnitSource, R: ObjectStore>(
    units: &U,
    reports: &R,
    holdout: &UniversalHoldout,
    impact: &ImpactSettings,
    settings: &Settings,
    currency: &str,
    source: &str,
    window_end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Outcome, EvaluationError> {
    let (json_key, html_key) = impact_keys(&holdout.id, window_end);
    let mut outcome = Outcome::exists(&holdout.id, &json_key, &html_key);
    if reports.get(&json_key).await?.is_some() {
        return Ok(outcome);
    }
    // The config is checked against its predecessor when the CLI changes it; one uploaded by hand is
    // not, so the report checks it against the randomisation its last window read.
    let (randomisation, reshuffled) = match previous_randomisation(reports, &holdout.id).await? {
        Some(before) => match holdout.change_problem(&before) {
            Some(why) => (before, Some(why)),
            None => (holdout.randomisation(), None),
        },
        None => (holdout.randomisation(), None),
    };
    let settings = Settings {
        test: Test::Sequential,
        ..*settings
    };
    let rolling_from = window_end - Duration::days(i64::from(impact.rolling_days));
    let rolling_from = Some(holdout.since.map_or(rolling_from, |s| s.max(rolling_from)));
    let name = format!("{source}/experiment#{}", holdout.id);
    let fold = |from| {
        UnitFold::impact(
            holdout,
            impact,
            name.clone(),
            from,
            window_end,
            now,
            currency,
        )
    };
    let (mut all, mut recent) = (fold(holdout.since), fold(rolling_from));
    for_each_unit(units, &holdout.id, |unit| {
        recent.add(unit.clone());
        all.add(unit);
    })
    .await?;
    let start = holdout.since.or(all.first_exposure());
    let reading = |fold: UnitFold, from| {
        let report = fold.report(&settings, now);
        Reading {
            from,
            power: power(&report, impact.power),
            report,
        }
    };
    let since_start = reading(all, holdout.since);
    let rolling = reading(recent, rolling_from);
    let covered = start.map_or(Duration::zero(), |s| window_end - s);
    let (too_early, summary, reasons) = verdict(
        &since_start,
        holdout,
        &settings,
        covered,
        reshuffled.as_deref(),
    );
    let report = ImpactReport {
        format: IMPACT_FORMAT,
        version: IMPACT_VERSION,
        holdout: HoldoutSection {
            id: holdout.id.clone(),
            share: holdout.share,
            since: holdout.since,
            randomisation,
            reshuffled,
            holdout_units: since_start.report.arms.first().map_or(0, |a| a.units),
            served_units: since_start.report.arms.get(1).map_or(0, |a| a.units),
        },
        window: Window { end: window_end },
        generated_at: now,
        settings: *impact,
        too_early,
        summary,
        reasons,
        since_start,
        rolling,
    };
    write_report(
        reports,
        &report,
        &json_key,
        &html_key,
        crate::stats::html::render_impact(&report),
    )
    .await?;
    outcome.outcome = "written";
    outcome.units = Some(vec![
        report.holdout.holdout_units,
        report.holdout.served_units,
    ]);
    outcome.latest_updated = update_latest(
        reports,
        &impact_latest_key(&holdout.id),
        Some(report.window),
        serde_json::to_vec_pretty(&report)?,
    )
    .await?;
    Ok(outcome)
}
