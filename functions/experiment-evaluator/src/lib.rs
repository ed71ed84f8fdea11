//! `ExperimentEvaluatorFunction`: on an EventBridge Scheduler schedule, evaluates every running experiment
//! of the decision config over the window ending at the scheduled time, and writes its report to S3
//! (see `checkout_domain::experiment::evaluation` for the keys and the idempotency rule).
//!
//! Input (the schedule's target input): `{"window_end": "<aws.scheduler.scheduled-time>"}`, optionally
//! with `"experiment_id"` to evaluate one experiment. Without `window_end` the window ends now.
//!
//! A run evaluates every due experiment even when one fails, then fails if any did, so the retry
//! (Lambda's asynchronous retries, then the dead-letter queue) redoes only the windows not yet written.

use checkout_aws::features::DynamoUnitSource;
use checkout_aws::s3::{s3_client, S3ObjectStore};
use checkout_aws::{load_sdk_config, ConfigError, Env};
use checkout_domain::decision::config::{DecisionConfig, DEFAULT_CONFIG_KEY};
use checkout_domain::experiment::evaluation::{due, evaluate_experiment, Outcome};
use checkout_domain::ports::ObjectStore;
use checkout_domain::ports::UnitSource;
use checkout_domain::stats::analysis::{Settings, Test};
use checkout_domain::stats::correction::Correction;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use lambda_runtime::{Error, LambdaEvent};
use serde::{Deserialize, Serialize};

/// A window may end at most this far in the future (clock skew); a later one is refused, because its
/// report would be written before its units are in.
pub const MAX_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);

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
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub window_end: DateTime<Utc>,
    pub reports: Vec<Outcome>,
    pub failed: Vec<Failure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub experiment_id: String,
    pub error: String,
}

/// The handler with its ports; generic so tests run it over in-memory stores.
pub struct Function<U = DynamoUnitSource, C = S3ObjectStore, R = S3ObjectStore> {
    pub config: Config,
    pub units: U,
    /// Where the decision config lives (the models bucket).
    pub config_store: C,
    pub reports: R,
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
            config,
        })
    }
}

impl<U: UnitSource, C: ObjectStore, R: ObjectStore> Function<U, C, R> {
    /// The Lambda entry point: any JSON object with the optional fields of [`Invocation`].
    pub async fn handle(&self, event: LambdaEvent<serde_json::Value>) -> Result<RunSummary, Error> {
        let invocation: Invocation = serde_json::from_value(event.payload).map_err(|e| {
            format!("invalid input: {e} (expected {{\"window_end\": RFC 3339 time, \"experiment_id\": optional}})")
        })?;
        let summary = self.run(&invocation, Utc::now()).await?;
        tracing::info!(summary = %serde_json::to_string(&summary).unwrap_or_default(), "evaluation run");
        if summary.failed.is_empty() {
            Ok(summary)
        } else {
            Err(format!(
                "{} of {} experiments failed: {}",
                summary.failed.len(),
                summary.failed.len() + summary.reports.len(),
                summary
                    .failed
                    .iter()
                    .map(|f| format!("{}: {}", f.experiment_id, f.error))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
            .into())
        }
    }

    /// One run at `now`. Fails as a whole only when the decision config cannot be read or the window is
    /// in the future; per-experiment failures are listed.
    pub async fn run(
        &self,
        invocation: &Invocation,
        now: DateTime<Utc>,
    ) -> Result<RunSummary, Error> {
        let end = invocation.window_end.unwrap_or(now);
        if end > now + MAX_CLOCK_SKEW {
            return Err(format!("window_end {end} is in the future (now {now})").into());
        }
        let window_end = end.duration_trunc(TimeDelta::minutes(1)).unwrap_or(end);
        let experiments = match self
            .config_store
            .get(&self.config.decision_config_key)
            .await?
        {
            Some(object) => DecisionConfig::decode(&object.bytes)?.experiments,
            None => Vec::new(),
        };
        let mut summary = RunSummary {
            window_end,
            reports: Vec::new(),
            failed: Vec::new(),
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
            let result = evaluate_experiment(
                &self.units,
                &self.reports,
                experiment,
                &self.config.settings,
                &self.config.currency,
                &source,
                window_end,
                now,
            )
            .await;
            match result {
                Ok(outcome) => summary.reports.push(outcome),
                Err(e) => {
                    tracing::error!(experiment = %experiment.id, error = %e, "evaluation failed");
                    summary.failed.push(Failure {
                        experiment_id: experiment.id.clone(),
                        error: e.to_string(),
                    });
                }
            }
        }
        if let Some(id) = &invocation.experiment_id {
            if summary.reports.is_empty() && summary.failed.is_empty() {
                return Err(format!("experiment {id:?} is not running (or not configured)").into());
            }
        }
        Ok(summary)
    }
}
