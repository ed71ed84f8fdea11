//! `ExperimentEvaluatorFunction`: on an EventBridge Scheduler schedule, evaluates every running experiment
//! of the decision config over the window ending at the scheduled time, and writes its report to S3
//! (see `checkout_domain::experiment::evaluation` for the keys and the idempotency rule).
//!
//! Input (the schedule's target input): `{"window_end": "<aws.scheduler.scheduled-time>"}`, optionally
//! with `"experiment_id"` to evaluate one experiment. Without `window_end` the window ends now.
//!
//! Errors decide retries ([`RunError::retryable`]):
//! - a **refusal** no retry can fix (bad input, a window in the future, an experiment that is not
//!   running, an invalid decision config, a report that cannot be encoded) is logged as an error and
//!   listed in the summary's `refused`, and the run **succeeds**, so Lambda does not retry it into the
//!   dead-letter queue;
//! - a **transient fault** (a throttled or unreachable store, a raced `latest.json`) fails the run after
//!   every other due experiment was evaluated, so the retry (Lambda's asynchronous retries, then the
//!   dead-letter queue) redoes only the windows not yet written.

use checkout_aws::athena::{Athena, AthenaReadout};
use checkout_aws::dynamo::DynamoLogIndex;
use checkout_aws::emf::{Metrics, Unit};
use checkout_aws::features::DynamoUnitSource;
use checkout_aws::s3::{s3_client, S3ObjectStore};
use checkout_aws::{load_sdk_config, ConfigError, Env};
use checkout_domain::decision::config::{DecisionConfig, InvalidConfig, DEFAULT_CONFIG_KEY};
use checkout_domain::experiment::evaluation::{
    due, evaluate_experiment_with, EvaluationError, ImpactSettings, LargeExperiments, Outcome,
};
use checkout_domain::experiment::impact::evaluate_impact;
use checkout_domain::model::drift_monitor::{monitor, MonitorError, MonitorOutcome};
use checkout_domain::ports::{LogIndex, ObjectStore, StoreError, UnitSource};
use checkout_domain::stats::analysis::{Settings, Test};
use checkout_domain::stats::correction::Correction;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use lambda_runtime::{Error, LambdaEvent};
use serde::{Deserialize, Serialize};

/// A window may end at most this far in the future (the scheduled functions' clock skew); a later one is
/// refused, because its report would be written before its units are in.
pub use checkout_aws::schedule::MAX_CLOCK_SKEW;

/// Everything the function reads from its environment, once, at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    pub features_table: String,
    pub models_bucket: String,
    pub decision_config_key: String,
    pub reports_bucket: String,
    /// Revenue metrics count this currency; units with revenue in another are left out of them.
    pub currency: String,
    pub settings: Settings,
    pub page_size: Option<i32>,
    /// The event log, whose `decisions-by-hour` index the drift monitor reads; `None` turns it off.
    pub event_log_table: Option<String>,
    /// Complete hours of decisions each drift report covers.
    pub drift_window_hours: u32,
    /// At most this many decisions a drift window reads (a uniform sample beyond).
    pub drift_max_decisions: usize,
    /// Experiments whose latest report counted at least this many units are read with the archive's
    /// SQL on Athena (`SQL_READOUT_MIN_UNITS`, 0 or unset: never), in `ARCHIVE_WORKGROUP` over
    /// `ARCHIVE_DATABASE`.
    pub sql_readout: Option<SqlReadout>,
}

/// Where the archive's readout runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlReadout {
    pub min_units: u64,
    pub workgroup: String,
    pub database: String,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let test = match env.optional("REPORT_TEST").unwrap_or("sequential") {
            "sequential" => Test::Sequential,
            "two_sided" => Test::TwoSided,
            other => {
                return Err(ConfigError::Invalid {
                    name: "REPORT_TEST",
                    reason: format!("`{other}`: sequential or two_sided"),
                })
            }
        };
        let alpha: f64 = env.parsed("REPORT_ALPHA", 0.05)?;
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(ConfigError::Invalid {
                name: "REPORT_ALPHA",
                reason: format!("`{alpha}`: must be in (0, 1)"),
            });
        }
        let page_size: i32 = env.parsed("QUERY_PAGE_SIZE", 0)?;
        Ok(Self {
            features_table: env.required("FEATURES_TABLE")?.to_string(),
            models_bucket: env.required("MODELS_BUCKET")?.to_string(),
            decision_config_key: env
                .optional("DECISION_CONFIG_KEY")
                .unwrap_or(DEFAULT_CONFIG_KEY)
                .to_string(),
            reports_bucket: env.required("REPORTS_BUCKET")?.to_string(),
            currency: env.optional("REPORT_CURRENCY").unwrap_or("USD").to_string(),
            settings: Settings {
                alpha,
                test,
                correction: env.parsed("REPORT_CORRECTION", Correction::Holm)?,
                bayesian: env.parsed("REPORT_BAYESIAN", true)?,
                min_sample_per_arm: env.parsed(
                    "MIN_SAMPLE_PER_ARM",
                    checkout_domain::stats::analysis::MIN_SAMPLE_PER_ARM,
                )?,
                ..Settings::default()
            },
            page_size: (page_size > 0).then_some(page_size),
            event_log_table: env
                .optional("EVENT_LOG_TABLE")
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            drift_window_hours: env.parsed("DRIFT_WINDOW_HOURS", 1u32)?.clamp(1, 24 * 7),
            drift_max_decisions: env.parsed("DRIFT_MAX_DECISIONS", 50_000usize)?.max(1),
            sql_readout: match env.parsed("SQL_READOUT_MIN_UNITS", 0u64)? {
                0 => None,
                min_units => Some(SqlReadout {
                    min_units,
                    workgroup: env.required("ARCHIVE_WORKGROUP")?.to_string(),
                    database: env.required("ARCHIVE_DATABASE")?.to_string(),
                }),
            },
        })
    }
}

/// The schedule's input.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Invocation {
    #[serde(default)]
    pub window_end: Option<DateTime<Utc>>,
    #[serde(default)]
    pub experiment_id: Option<String>,
    /// Overrides `DRIFT_WINDOW_HOURS` for this run (a backfill, or the demo's day of decisions).
    #[serde(default)]
    pub drift_window_hours: Option<u32>,
}

/// The `service` dimension of this function's metrics.
pub const SERVICE: &str = "experiment-evaluator";

/// Every metric this function emits (besides `ColdStart`); the dashboard check reads it.
pub const METRICS: &[&str] = &[
    "DriftDecisions",
    "DriftMaxPsi",
    "DriftWarnings",
    "DriftAlarms",
    "DriftPsi",
    "ExperimentsEvaluated",
    "SrmAlarms",
    "ReportFailures",
    "ReportFailuresByReason",
    "Units",
    "Conversion",
    "RevenuePerUser",
    "AverageOrderValue",
    "RecoveredCartRate",
    "RevenuePerAbandonedCart",
    "UnsubscribeRate",
];

/// The readout metric of each report metric (the dashboard's per-arm widgets).
pub const READOUTS: [(&str, &str); 6] = [
    ("conversion", "Conversion"),
    ("revenue_per_user", "RevenuePerUser"),
    ("average_order_value", "AverageOrderValue"),
    ("recovered_cart_rate", "RecoveredCartRate"),
    ("revenue_per_abandoned_cart", "RevenuePerAbandonedCart"),
    ("unsubscribe_rate", "UnsubscribeRate"),
];

/// The first metric of each design: its arms' `n` is the `Units` readout.
const UNIT_METRICS: [&str; 2] = ["conversion", "recovered_cart_rate"];

impl RunSummary {
    /// Lists one experiment's (or the impact report's) outcome, or its failure: retryable or refused.
    fn record(&mut self, id: &str, result: Result<Outcome, EvaluationError>) {
        match result.map_err(RunError::from) {
            Ok(outcome) => self.reports.push(outcome),
            Err(e) => {
                tracing::error!(experiment = %id, reason = e.reason_code(), error = %e, "evaluation failed");
                let failure = e.failure(Some(id));
                if e.retryable() {
                    self.failed.push(failure);
                } else {
                    self.refused.push(failure);
                }
            }
        }
    }
}

/// A run's metrics (EMF, service `experiment-evaluator`): `ExperimentsEvaluated` (reports written),
/// `SrmAlarms`, `ReportFailures` (refused or failed, and by `reason`), and per experiment and arm
/// (dimensions `experiment`, `variant`) the readout of each written report: `Units`, `Conversion`,
/// `RevenuePerUser`, `AverageOrderValue` (the arm's means), and for the recovery experiment
/// `RecoveredCartRate`, `RevenuePerAbandonedCart`, `UnsubscribeRate`.
pub fn metrics(summary: &RunSummary) -> Metrics {
    let mut m = Metrics::new(SERVICE);
    let written: Vec<&Outcome> = summary
        .reports
        .iter()
        .filter(|o| o.outcome == "written")
        .collect();
    m.count("ExperimentsEvaluated", written.len());
    m.count(
        "SrmAlarms",
        written.iter().filter(|o| o.srm_alarm == Some(true)).count(),
    );
    m.count(
        "ReportFailures",
        summary.refused.len() + summary.failed.len(),
    );
    for f in summary.refused.iter().chain(&summary.failed) {
        m.add_with(
            &[("reason", f.reason)],
            "ReportFailuresByReason",
            Unit::Count,
            1.0,
        );
    }
    if let Some(drift) = &summary.drift {
        m.count("DriftDecisions", drift.decisions_read);
        let max = drift
            .reports
            .iter()
            .filter(|r| r.status != "insufficient" && r.status != "no_reference")
            .filter_map(|r| r.max_psi)
            .reduce(f64::max);
        if let Some(max) = max {
            m.add("DriftMaxPsi", Unit::None, max);
        }
        m.count(
            "DriftWarnings",
            drift.reports.iter().map(|r| r.warned).sum(),
        );
        m.count("DriftAlarms", drift.reports.iter().map(|r| r.alarmed).sum());
        for r in &drift.reports {
            for (column, psi) in &r.psi_by_column {
                m.add_with(&[("input", column)], "DriftPsi", Unit::None, *psi);
            }
        }
    }
    for o in written {
        for r in &o.readout {
            let dims = [
                ("experiment", o.experiment_id.as_str()),
                ("variant", r.variant.as_str()),
            ];
            if let Some((_, name)) = READOUTS.iter().find(|(metric, _)| *metric == r.metric) {
                m.add_with(&dims, name, Unit::None, r.mean);
            }
            if UNIT_METRICS.contains(&r.metric.as_str()) {
                m.add_with(&dims, "Units", Unit::Count, r.n as f64);
            }
        }
    }
    m
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// The window's end, once known (a refused input has none).
    pub window_end: Option<DateTime<Utc>>,
    pub reports: Vec<Outcome>,
    /// What was refused for a reason no retry fixes: the whole run (no `experiment_id`) or one
    /// experiment.
    pub refused: Vec<Failure>,
    /// Experiments that hit a transient fault; the run fails when there is any, and is retried.
    pub failed: Vec<Failure>,
    /// The drift monitor's run over the last complete hours (`None`: off, or one experiment was asked
    /// for).
    pub drift: Option<MonitorOutcome>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub experiment_id: Option<String>,
    /// [`RunError::reason_code`].
    pub reason: &'static str,
    pub error: String,
}

/// Why a run, or one experiment of it, produced no report.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid input: {0} (expected {{\"window_end\": RFC 3339 time, \"experiment_id\": optional}})")]
    InvalidInput(#[source] serde_json::Error),
    #[error("window_end {end} is in the future (now {now})")]
    FutureWindow {
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    #[error("experiment {0:?} is not running (or not configured)")]
    NotRunning(String),
    #[error("reading the decision config: {0}")]
    ConfigUnreadable(#[source] StoreError),
    #[error(transparent)]
    InvalidConfig(InvalidConfig),
    #[error(transparent)]
    Evaluation(#[from] EvaluationError),
    #[error("drift monitor: {0}")]
    Drift(#[from] MonitorError),
    #[error("{} of {total} experiments hit a transient fault: {}", .failed.len(),
        .failed.iter().map(|f| format!("{}: {}", f.experiment_id.as_deref().unwrap_or("-"), f.error))
            .collect::<Vec<_>>().join("; "))]
    Transient { failed: Vec<Failure>, total: usize },
}

impl RunError {
    /// Whether a retry of the same run may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            RunError::InvalidInput(_)
            | RunError::FutureWindow { .. }
            | RunError::NotRunning(_)
            | RunError::InvalidConfig(_) => false,
            RunError::ConfigUnreadable(e) => e.retryable,
            RunError::Evaluation(e) => e.retryable(),
            RunError::Drift(e) => e.retryable(),
            RunError::Transient { .. } => true,
        }
    }

    /// A stable, machine-readable reason code.
    pub fn reason_code(&self) -> &'static str {
        match self {
            RunError::InvalidInput(_) => "invalid_input",
            RunError::FutureWindow { .. } => "future_window",
            RunError::NotRunning(_) => "not_running",
            RunError::ConfigUnreadable(_) => "config_unreadable",
            RunError::InvalidConfig(_) => "invalid_config",
            RunError::Evaluation(EvaluationError::Store(_)) => "store",
            RunError::Evaluation(EvaluationError::Encode(_)) => "encode",
            RunError::Evaluation(EvaluationError::LatestRaced) => "latest_raced",
            RunError::Drift(MonitorError::Store(_)) => "drift_store",
            RunError::Drift(MonitorError::Encode(_)) => "drift_encode",
            RunError::Transient { .. } => "transient",
        }
    }

    fn failure(&self, experiment_id: Option<&str>) -> Failure {
        Failure {
            experiment_id: experiment_id.map(str::to_string),
            reason: self.reason_code(),
            error: self.to_string(),
        }
    }
}

/// What Lambda records for a failed run: the reason code as the error type.
impl From<RunError> for lambda_runtime::Diagnostic {
    fn from(e: RunError) -> Self {
        Self {
            error_type: e.reason_code().to_string(),
            error_message: e.to_string(),
        }
    }
}

/// The handler with its ports; generic so tests run it over in-memory stores.
pub struct Function<U = DynamoUnitSource, C = S3ObjectStore, R = S3ObjectStore, L = DynamoLogIndex>
{
    pub config: Config,
    pub units: U,
    /// Where the decision config and the model registry live (the models bucket).
    pub config_store: C,
    pub reports: R,
    /// The event log's indexes (the drift monitor); `None` when it is off.
    pub log: Option<L>,
    /// The archive's readout on Athena, for large experiments; `None` when it is off.
    pub readout: Option<AthenaReadout>,
}

impl Function {
    /// Cold start: config and clients. A missing setting fails here, not on the first run.
    pub async fn from_env() -> Result<Self, Error> {
        Self::new(&Env::from_process(), &load_sdk_config().await)
    }

    pub fn new(env: &Env, sdk: &aws_config::SdkConfig) -> Result<Self, Error> {
        let config = Config::from_env(env)?;
        let s3 = s3_client(sdk);
        Ok(Self {
            units: DynamoUnitSource {
                client: aws_sdk_dynamodb::Client::new(sdk),
                table: config.features_table.clone(),
                page_size: config.page_size,
            },
            config_store: S3ObjectStore {
                client: s3.clone(),
                bucket: config.models_bucket.clone(),
            },
            reports: S3ObjectStore {
                client: s3,
                bucket: config.reports_bucket.clone(),
            },
            readout: config.sql_readout.as_ref().map(|r| {
                AthenaReadout(Athena {
                    client: aws_sdk_athena::Client::new(sdk),
                    workgroup: r.workgroup.clone(),
                    database: r.database.clone(),
                    poll: std::time::Duration::from_millis(500),
                    max_wait: std::time::Duration::from_secs(120),
                })
            }),
            log: config.event_log_table.clone().map(|table| DynamoLogIndex {
                client: aws_sdk_dynamodb::Client::new(sdk),
                table,
            }),
            config,
        })
    }
}

impl<U: UnitSource, C: ObjectStore, R: ObjectStore, L: LogIndex> Function<U, C, R, L> {
    /// The Lambda entry point: any JSON object with the optional fields of [`Invocation`]. Succeeds
    /// unless a transient fault stopped something a retry can finish.
    pub async fn handle(
        &self,
        event: LambdaEvent<serde_json::Value>,
    ) -> Result<RunSummary, RunError> {
        let result = match serde_json::from_value::<Invocation>(event.payload) {
            Ok(invocation) => self
                .run(&invocation, Utc::now())
                .await
                .map_err(|e| (e, invocation.experiment_id)),
            Err(e) => Err((RunError::InvalidInput(e), None)),
        };
        let summary = match result {
            Ok(summary) if summary.failed.is_empty() => summary,
            Ok(summary) => {
                metrics(&summary).flush();
                tracing::warn!(summary = %serde_json::to_string(&summary).unwrap_or_default(), "evaluation run hit transient faults; failing for a retry");
                let total = summary.reports.len() + summary.refused.len() + summary.failed.len();
                return Err(RunError::Transient {
                    failed: summary.failed,
                    total,
                });
            }
            Err((e, _)) if e.retryable() => {
                tracing::warn!(error = %e, "evaluation run failed; Lambda retries it");
                return Err(e);
            }
            Err((e, experiment_id)) => {
                tracing::error!(reason = e.reason_code(), error = %e, "evaluation run refused");
                RunSummary {
                    window_end: None,
                    reports: Vec::new(),
                    refused: vec![e.failure(experiment_id.as_deref())],
                    failed: Vec::new(),
                    drift: None,
                }
            }
        };
        tracing::info!(summary = %serde_json::to_string(&summary).unwrap_or_default(), "evaluation run");
        metrics(&summary).flush();
        Ok(summary)
    }

    /// One run at `now`. Fails as a whole only when the input is refused or the decision config cannot
    /// be read; each experiment's refusal or transient failure is listed.
    pub async fn run(
        &self,
        invocation: &Invocation,
        now: DateTime<Utc>,
    ) -> Result<RunSummary, RunError> {
        let end = invocation.window_end.unwrap_or(now);
        if end > now + MAX_CLOCK_SKEW {
            return Err(RunError::FutureWindow { end, now });
        }
        let window_end = end.duration_trunc(TimeDelta::minutes(1)).unwrap_or(end);
        let decisions = match self
            .config_store
            .get(&self.config.decision_config_key)
            .await
            .map_err(RunError::ConfigUnreadable)?
        {
            Some(object) => {
                DecisionConfig::decode(&object.bytes).map_err(RunError::InvalidConfig)?
            }
            None => DecisionConfig::default(),
        };
        let experiments = decisions.all_experiments();
        let mut summary = RunSummary {
            window_end: Some(window_end),
            reports: Vec::new(),
            refused: Vec::new(),
            failed: Vec::new(),
            drift: None,
        };
        let source = format!("dynamodb:{}", self.config.features_table);
        for experiment in due(&experiments, window_end) {
            if invocation
                .experiment_id
                .as_ref()
                .is_some_and(|id| id != &experiment.id)
            {
                continue;
            }
            let large = self
                .readout
                .as_ref()
                .zip(self.config.sql_readout.as_ref())
                .map(|(source, r)| LargeExperiments {
                    source,
                    min_units: r.min_units,
                });
            let result = evaluate_experiment_with(
                &self.units,
                large,
                &self.reports,
                experiment,
                &self.config.settings,
                &self.config.currency,
                &source,
                window_end,
                now,
            )
            .await;
            summary.record(&experiment.id, result);
        }
        // The system impact report: the universal holdout against everyone else.
        let holdout = &decisions.holdout;
        if holdout.share > 0.0
            && invocation
                .experiment_id
                .as_ref()
                .is_none_or(|id| id == &holdout.id)
        {
            let result = evaluate_impact(
                &self.units,
                &self.reports,
                holdout,
                &ImpactSettings::default(),
                &self.config.settings,
                &self.config.currency,
                &source,
                window_end,
                now,
            )
            .await;
            summary.record(&holdout.id, result);
        }
        if let Some(id) = &invocation.experiment_id {
            if summary.reports.is_empty() && summary.failed.is_empty() && summary.refused.is_empty()
            {
                return Err(RunError::NotRunning(id.clone()));
            }
        }
        if let (Some(log), None) = (&self.log, &invocation.experiment_id) {
            let hours = invocation
                .drift_window_hours
                .unwrap_or(self.config.drift_window_hours)
                .clamp(1, 24 * 7);
            let monitored = monitor(
                log,
                &self.config_store,
                &self.reports,
                end,
                hours,
                self.config.drift_max_decisions,
                now,
            );
            match monitored.await {
                Ok(outcome) => {
                    for r in &outcome.reports {
                        if r.status == "alarm" || r.status == "warn" {
                            tracing::warn!(model = %r.model_id, version = %r.model_version,
                                status = %r.status, max_psi = ?r.max_psi, report = %r.html_key, "input drift");
                        }
                    }
                    summary.drift = Some(outcome);
                }
                Err(e) => {
                    let e = RunError::Drift(e);
                    tracing::error!(reason = e.reason_code(), error = %e, "drift monitor failed");
                    if e.retryable() {
                        summary.failed.push(e.failure(None));
                    } else {
                        summary.refused.push(e.failure(None));
                    }
                }
            }
        }
        Ok(summary)
    }
}
