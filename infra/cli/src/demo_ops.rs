//! The demo's operations phase: explain one of its decisions, run the drift monitor over its day of
//! decisions, erase one of its shoppers, and check the features table against a rebuild afterwards.

use crate::demo_loop::CartVisit;
use crate::local::stack::LocalStack;
use crate::BoxError;
use checkout_aws::dynamo::DynamoLogIndex;
use checkout_aws::s3::{s3_client, S3ObjectStore};
use checkout_domain::event::EventBody;
use checkout_domain::ingest::hour_of;
use checkout_domain::ports::{LogIndex, ObjectStore};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct OperationsSummary {
    pub explained_decision: String,
    pub explain_discrepancies: Vec<String>,
    pub explain_hash_matches: Option<bool>,
    pub drift_status: Vec<(String, String, usize, Option<f64>)>,
    pub drift_report: Option<String>,
    pub erasure: crate::erase::Receipt,
    /// Differences between the live features table and a rebuild from the log, after the erasure.
    pub rebuild_differences_after_erasure: usize,
    /// The batch run after the erasure (a stack in batch mode).
    pub batch_run: Option<checkout_domain::features::batch::RunCounts>,
}

/// Runs the phase; writes `explain.json`, `drift.json`, `drift.html` and `erasure-receipt.json` to `out`.
pub async fn run(
    stack: &LocalStack,
    visits: &[CartVisit],
    out: &Path,
) -> Result<OperationsSummary, BoxError> {
    let first = visits.iter().map(|v| v.at).min().ok_or("no decisions")?;
    let last = visits.iter().map(|v| v.at).max().ok_or("no decisions")?;
    let sdk = stack.sdk_config().await;
    let env = stack.env("FeatureUpdaterFunction")?;
    let log = DynamoLogIndex {
        client: aws_sdk_dynamodb::Client::new(&sdk),
        table: env.required("EVENT_LOG_TABLE")?.to_string(),
    };

    // 1. Explain the first scored decision of the first hour with one.
    let mut decision = None;
    let mut hour = first.duration_trunc(TimeDelta::hours(1))?;
    while decision.is_none() && hour <= last {
        decision = log
            .decisions_in_hour(&hour_of(hour), 100)
            .await?
            .into_iter()
            .filter_map(|e| e.event().ok())
            .find(|e| matches!(&e.body, EventBody::DecisionServed(d) if !d.degraded))
            .map(|e| e.event_id);
        hour += TimeDelta::hours(1);
    }
    let decision = decision.ok_or("no scored decision in the log")?;
    let explanation = crate::explain::run(stack, &decision, None, 24).await?;
    std::fs::write(
        out.join("explain.json"),
        serde_json::to_vec_pretty(&explanation)?,
    )?;
    crate::explain::print(&explanation);

    // 2. The drift monitor over the decisions' hours (the demo's day), as the hourly run does it.
    let function =
        experiment_evaluator::Function::new(&stack.env("ExperimentEvaluatorFunction")?, &sdk)
            .map_err(|e| e.to_string())?;
    let window_end: DateTime<Utc> =
        (last + TimeDelta::hours(1)).duration_trunc(TimeDelta::hours(1))?;
    let hours = u32::try_from((window_end - first).num_hours() + 1).unwrap_or(24);
    let run = function
        .run(
            &experiment_evaluator::Invocation {
                window_end: Some(window_end),
                experiment_id: None,
                drift_window_hours: Some(hours),
            },
            Utc::now(),
        )
        .await?;
    let drift = run.drift.unwrap_or_default();
    let reports = S3ObjectStore {
        client: s3_client(&sdk),
        bucket: stack.resource("ReportsBucket")?.name.clone(),
    };
    let mut drift_report = None;
    for r in &drift.reports {
        for (key, name) in [(&r.json_key, "drift.json"), (&r.html_key, "drift.html")] {
            if let Some(o) = reports.get(key).await? {
                std::fs::write(out.join(name), o.bytes)?;
            }
        }
        drift_report = Some(r.html_key.clone());
        println!(
            "  drift     {} {} over {} decisions: {} (largest PSI {:.3}; {} columns at warn or worse, {} at alarm)",
            r.model_id,
            r.model_version,
            r.decisions,
            r.status,
            r.max_psi.unwrap_or(f64::NAN),
            r.warned,
            r.alarmed
        );
    }

    // 3. Erase the shopper of the explained decision's session, and check the rebuild.
    let user = visits
        .iter()
        .find(|v| v.session_id == explanation.session_id)
        .map(|v| v.user_id.clone())
        .ok_or("the explained decision's shopper is not among the visits")?;
    let erasure = crate::erase::run(stack, &user).await?;
    crate::erase::print(&erasure);
    std::fs::write(
        out.join("erasure-receipt.json"),
        serde_json::to_vec_pretty(&erasure)?,
    )?;
    // On a stack in batch mode the erased sessions leave items and pages at the next batch run.
    let batch_run = crate::archive::batch_run_if_batch(stack, &out.join("archive")).await?;
    let rebuild = crate::rebuild::rebuild_features(stack).await?;
    println!(
        "  after the erasure, the features table against a rebuild from the log: {} differences",
        rebuild.differences
    );
    Ok(OperationsSummary {
        explained_decision: decision,
        explain_discrepancies: explanation.discrepancies.clone(),
        explain_hash_matches: explanation.inputs.hash_matches,
        drift_status: drift
            .reports
            .iter()
            .map(|r| {
                (
                    r.model_version.clone(),
                    r.status.clone(),
                    r.decisions,
                    r.max_psi,
                )
            })
            .collect(),
        drift_report,
        erasure,
        rebuild_differences_after_erasure: rebuild.differences,
        batch_run,
    })
}
