//! The hourly drift monitor: the decisions of the last complete hours, read from the event log's
//! `decisions-by-hour` index (their logged `model_input` and `score`, schema v3), compared per model
//! version with the reference in that version's artifact ([`super::drift`]). One report per model
//! version and window lands in the reports bucket as JSON and HTML:
//! `drift/<model>/<window-end>.json|.html`, and `drift/<model>/latest.json`.
//!
//! **Volume.** At most `max_decisions` a window (`DRIFT_MAX_DECISIONS`, 50,000 by default), split evenly
//! over its hours: the index's shards are a hash of the event id, so reading shard after shard until the
//! cap is a uniform sample, and 50,000 puts the noise floor near 0.0002, far below the warning line, at a
//! bounded memory and read cost (about 100 MB of 1 MB pages at most).
//!
//! **Source.** The decision log, not the features table: it holds exactly what the scorer scored (the
//! features table holds the current projection, which moves on after the decision), and each decision
//! names the model version whose reference applies.

use super::drift::{drift, overall, ColumnDrift, Status, Window, ALARM, EPSILON, MIN_WINDOW, WARN};
use super::registry::load_served_version;
use crate::event::EventBody;
use crate::ingest::hour_of;
use crate::ports::{Condition, LogIndex, ObjectStore, PutError, StoreError};
use crate::stats::html::{escape, STYLE};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

pub const REPORT_FORMAT: &str = "checkout-ai/drift-report";
pub const REPORT_VERSION: u32 = 1;

/// One model version's drift over a window.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub format: &'static str,
    pub version: u32,
    pub model_id: String,
    pub model_version: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub generated_at: DateTime<Utc>,
    /// Decisions scored by this model version with logged inputs.
    pub decisions: usize,
    pub reference_rows: Option<u64>,
    /// `no_reference` when the artifact has none (format 1) or is not in the registry.
    pub status: String,
    pub max_psi: Option<f64>,
    pub thresholds: Thresholds,
    pub columns: Vec<ColumnDrift>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Thresholds {
    pub warn: f64,
    pub alarm: f64,
    pub epsilon: f64,
    pub min_window: usize,
}

/// What one monitor run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MonitorOutcome {
    pub window_start: Option<DateTime<Utc>>,
    pub window_end: Option<DateTime<Utc>>,
    pub decisions_read: usize,
    /// Degraded decisions (nothing was scored) and decisions before schema v3 (no inputs logged).
    pub without_inputs: usize,
    /// Whether some hour had more decisions than its share of the cap, so a uniform sample was read.
    pub sampled: bool,
    pub reports: Vec<ReportOutcome>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportOutcome {
    pub model_id: String,
    pub model_version: String,
    pub decisions: usize,
    pub status: String,
    pub max_psi: Option<f64>,
    /// Columns at warn or worse, and at alarm.
    pub warned: usize,
    pub alarmed: usize,
    pub psi_by_column: BTreeMap<String, f64>,
    pub json_key: String,
    pub html_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("encode the drift report: {0}")]
    Encode(#[from] serde_json::Error),
}

impl MonitorError {
    pub fn retryable(&self) -> bool {
        match self {
            MonitorError::Store(e) => e.retryable,
            MonitorError::Encode(_) => false,
        }
    }
}

/// The window of `hours` complete hours ending at or before `end`.
pub fn window(end: DateTime<Utc>, hours: u32) -> (DateTime<Utc>, DateTime<Utc>) {
    let end = end.duration_trunc(TimeDelta::hours(1)).unwrap_or(end);
    (end - TimeDelta::hours(i64::from(hours.max(1))), end)
}

/// Reads the window's decisions, compares each model version's with its reference, and writes the
/// reports. A model version missing from the registry is reported as `no_reference`, not an error.
#[allow(clippy::too_many_arguments)]
pub async fn monitor<L: LogIndex, M: ObjectStore, R: ObjectStore>(
    log: &L,
    models: &M,
    reports: &R,
    end: DateTime<Utc>,
    hours: u32,
    max_decisions: usize,
    now: DateTime<Utc>,
) -> Result<MonitorOutcome, MonitorError> {
    let (start, end) = window(end, hours);
    // A uniform sample of at most `max_decisions`, spread evenly over the hours.
    let per_hour = (max_decisions / hours.max(1) as usize).max(1);
    let mut outcome = MonitorOutcome {
        window_start: Some(start),
        window_end: Some(end),
        ..MonitorOutcome::default()
    };
    let mut windows: BTreeMap<(String, String), Window> = BTreeMap::new();
    let mut t = start;
    while t < end {
        let entries = log.decisions_in_hour(&hour_of(t), per_hour).await?;
        outcome.sampled |= entries.len() >= per_hour;
        for entry in entries {
            let Ok(event) = entry.event() else { continue };
            let EventBody::DecisionServed(d) = &event.body else {
                continue;
            };
            outcome.decisions_read += 1;
            match d.score {
                Some(score) if !d.degraded && !d.model_input.is_empty() => {
                    let w = windows
                        .entry((d.model_id.clone(), d.model_version.clone()))
                        .or_default();
                    w.inputs.push(d.model_input.clone());
                    w.scores.push(score);
                }
                _ => outcome.without_inputs += 1,
            }
        }
        t += TimeDelta::hours(1);
    }
    for ((model_id, model_version), w) in windows {
        let model = load_served_version(models, &model_id, &model_version).await?;
        let reference = model.as_ref().and_then(|m| m.artifact().reference.as_ref());
        let columns = reference.map(|r| drift(r, &w)).unwrap_or_default();
        let status = match reference {
            None => "no_reference".to_string(),
            Some(_) => status_name(overall(&columns)).to_string(),
        };
        let report = DriftReport {
            format: REPORT_FORMAT,
            version: REPORT_VERSION,
            model_id: model_id.clone(),
            model_version: model_version.clone(),
            window_start: start,
            window_end: end,
            generated_at: now,
            decisions: w.scores.len(),
            reference_rows: reference.map(|r| r.rows),
            max_psi: columns.iter().map(|c| c.psi).reduce(f64::max),
            status,
            thresholds: Thresholds {
                warn: WARN,
                alarm: ALARM,
                epsilon: EPSILON,
                min_window: MIN_WINDOW,
            },
            columns,
        };
        let base = format!(
            "drift/{model_id}/{}-{model_version}",
            end.format("%Y-%m-%dT%H%MZ")
        );
        let (json_key, html_key) = (format!("{base}.json"), format!("{base}.html"));
        let json = serde_json::to_vec_pretty(&report)?;
        // The page first, the JSON after it, `latest.json` last.
        let latest = format!("drift/{model_id}/latest.json");
        for (key, bytes) in [
            (&html_key, render(&report).into_bytes()),
            (&json_key, json.clone()),
            (&latest, json),
        ] {
            reports
                .put(key, bytes, Condition::Always)
                .await
                .map_err(put_error)?;
        }
        let at = |s: Status| report.columns.iter().filter(|c| c.status >= s).count();
        outcome.reports.push(ReportOutcome {
            model_id,
            model_version,
            decisions: report.decisions,
            status: report.status.clone(),
            max_psi: report.max_psi,
            warned: at(Status::Warn),
            alarmed: at(Status::Alarm),
            psi_by_column: report
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.psi))
                .collect(),
            json_key,
            html_key,
        });
    }
    Ok(outcome)
}

fn put_error(e: PutError) -> MonitorError {
    match e {
        PutError::Store(e) => MonitorError::Store(e),
        PutError::Precondition => MonitorError::Store(StoreError::permanent(
            "PutObject",
            "unexpected precondition",
        )),
    }
}

pub fn status_name(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Insufficient => "insufficient",
        Status::Warn => "warn",
        Status::Alarm => "alarm",
    }
}

/// The report as one self-contained page: a row per column with its PSI, status, missing and
/// out-of-vocabulary shares, and a small chart of the reference (grey) and live (blue) shares per bin.
pub fn render(r: &DriftReport) -> String {
    let mut h = String::with_capacity(32 * 1024);
    let title = format!("Input drift: {} {}", r.model_id, r.model_version);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{t}</title><style>{STYLE}\n.bars rect.ref{{fill:#b8bfcc}}.bars rect.live{{fill:#2563eb}}\
         td.chart{{text-align:left}}</style></head><body>\n<h1>{t}</h1>\n<p class=\"muted\">Decisions from {} to {} \
         ({} with logged inputs); reference: {} training rows. Generated {}.</p>\n",
        escape(&r.window_start.to_rfc3339()),
        escape(&r.window_end.to_rfc3339()),
        r.decisions,
        r.reference_rows.map_or("none".into(), |n| n.to_string()),
        escape(&r.generated_at.to_rfc3339()),
        t = escape(&title),
    );
    let (class, text) = match r.status.as_str() {
        "ok" => ("ok", "Stable: every input and the score are below the warning line.".to_string()),
        "warn" => ("warning", format!("Moderate shift: some column's PSI is at least {WARN}.")),
        "alarm" => ("failed", format!("Major shift: some column's PSI is at least {ALARM}.")),
        "insufficient" => (
            "warning",
            format!(
                "Too few decisions to judge ({} < {MIN_WINDOW}): the values are shown, nothing alarms.",
                r.decisions
            ),
        ),
        _ => ("warning", "No reference: the model artifact predates drift references (format 1) or is not in the registry.".into()),
    };
    let _ = writeln!(h, "<div class=\"banner {class}\">{}</div>", escape(&text));
    let _ = writeln!(
        h,
        "<p class=\"muted\">Population stability index over the reference's bins (deciles or categories) plus \
         missing and out-of-vocabulary bins, shares smoothed with ε = {EPSILON}. Warn at {WARN}, alarm at \
         {ALARM}. The noise floor is the PSI a same-sized sample of the reference itself would show.</p>"
    );
    h.push_str("<table><tr><th>column</th><th>kind</th><th>PSI</th><th>status</th><th>noise floor</th><th>missing (ref → live)</th><th>unseen</th><th>reference (grey) vs live (blue)</th></tr>\n");
    for c in &r.columns {
        let status_class = match c.status {
            Status::Alarm => "worse",
            Status::Warn => "worse",
            _ => "",
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"{status_class}\">{:.4}</td><td class=\"{status_class}\">{}</td>\
             <td>{:.4}</td><td>{:.1}% → {:.1}%</td><td>{}</td><td class=\"chart\">{}</td></tr>",
            escape(&c.name),
            c.kind,
            c.psi,
            status_name(c.status),
            c.noise_floor,
            100.0 * c.missing_share_reference,
            100.0 * c.missing_share_live,
            c.out_of_vocabulary_share
                .map_or("–".into(), |s| format!("{:.1}%", 100.0 * s)),
            bars(c)
        );
    }
    h.push_str("</table>\n</body></html>\n");
    h
}

/// Paired bars per bin: reference, then live.
fn bars(c: &ColumnDrift) -> String {
    let (w, height) = (6.0, 36.0);
    let max = c
        .bins
        .iter()
        .flat_map(|b| [b.reference, b.live])
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let width = c.bins.len() as f64 * (2.0 * w + 3.0);
    let mut s = format!(
        "<svg class=\"bars\" width=\"{width:.0}\" height=\"{height:.0}\" role=\"img\" aria-label=\"reference and live shares of {}\">",
        escape(&c.name)
    );
    for (i, b) in c.bins.iter().enumerate() {
        let x = i as f64 * (2.0 * w + 3.0);
        for (j, (v, class)) in [(b.reference, "ref"), (b.live, "live")]
            .into_iter()
            .enumerate()
        {
            let bh = (v / max * (height - 2.0)).max(if v > 0.0 { 1.0 } else { 0.0 });
            let _ = write!(
                s,
                "<rect class=\"{class}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{w}\" height=\"{bh:.1}\"><title>{}: {} {:.1}%</title></rect>",
                x + j as f64 * w,
                height - bh,
                escape(&b.label),
                if j == 0 { "reference" } else { "live" },
                100.0 * v
            );
        }
    }
    s.push_str("</svg>");
    s
}
