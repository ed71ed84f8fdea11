//! `ItemPageBatchFunction`: on an EventBridge Scheduler schedule (every 15 minutes, enabled when the
//! stack's `ItemPageFeatures` is `batch`), the item and page features from the event archive with Athena
//! (`sql/item_features.sql`, `sql/page_features.sql`, the files DuckDB runs locally), folded into the
//! features table's items and pages, each one that changed since the last run written once
//! (`checkout_domain::features::batch`). The feature updater then keeps sessions, users, risk profiles
//! and the recovery schedule only.
//!
//! Input (the schedule's target input): `{"now": "<aws.scheduler.scheduled-time>"}`; without `now` the
//! run is as of the current time. Events past retention at `now` are left out, as the updater's readers
//! leave them out.
//!
//! Errors decide retries: a transient Athena or DynamoDB fault, a query still running at the deadline, or
//! a conflict with another writer fails the run, and Lambda retries it (then the dead-letter queue); a run
//! is idempotent, writing only what still differs. Bad input, a `now` in the future, and a result row the
//! fold cannot use (a broken query) are refused: logged, counted as `RunsRefused` (alarmed), and not
//! retried, since no retry fixes them.

use checkout_aws::athena::{feature_rows, Athena};
use checkout_aws::emf::Metrics;
use checkout_aws::features::DynamoFeatureStore;
pub use checkout_aws::schedule::{FutureNow, Invocation, MAX_CLOCK_SKEW};
use checkout_aws::{load_sdk_config, ConfigError, Env};
use checkout_domain::features::batch::{self, RunCounts};
use checkout_domain::ports::{FeatureWriter, StoreError};
use chrono::{DateTime, Utc};
use lambda_runtime::{Error, LambdaEvent};
use std::time::Duration;

/// Everything the function reads from its environment, once, at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    pub features_table: String,
    pub archive_workgroup: String,
    pub archive_database: String,
    /// Writes in flight at once.
    pub concurrency: usize,
    /// How long a query may run before the run fails for a retry.
    pub max_query_wait: Duration,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            features_table: env.required("FEATURES_TABLE")?.to_string(),
            archive_workgroup: env.required("ARCHIVE_WORKGROUP")?.to_string(),
            archive_database: env.required("ARCHIVE_DATABASE")?.to_string(),
            concurrency: env.parsed("BATCH_CONCURRENCY", 16usize)?.max(1),
            max_query_wait: Duration::from_secs(
                env.parsed("MAX_QUERY_WAIT_SECONDS", 600u64)?.max(1),
            ),
        })
    }
}

/// The `service` dimension of this function's metrics.
pub const SERVICE: &str = "item-page-batch";

/// Every metric this function emits (besides `ColdStart`); the dashboard check reads it.
pub const METRICS: &[&str] = &[
    "ItemsAndPagesComputed",
    "ItemsAndPagesWritten",
    "ItemsAndPagesUnchanged",
    "WriteUnits",
    "RunsRefused",
];

/// A run's metrics (EMF, service `item-page-batch`).
pub fn metrics(counts: &RunCounts, refused: bool) -> Metrics {
    let mut m = Metrics::new(SERVICE);
    m.count("RunsRefused", usize::from(refused));
    m.count("ItemsAndPagesComputed", counts.computed);
    m.count("ItemsAndPagesWritten", counts.written);
    m.count("ItemsAndPagesUnchanged", counts.unchanged);
    m.count(
        "WriteUnits",
        usize::try_from(counts.write_units).unwrap_or(usize::MAX),
    );
    m
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid input: {0} (expected {{\"now\": RFC 3339 time, optional}})")]
    InvalidInput(#[source] serde_json::Error),
    #[error(transparent)]
    FutureNow(#[from] FutureNow),
    #[error("the features query: {0}")]
    Query(#[source] StoreError),
    #[error(transparent)]
    Run(#[from] batch::RunError),
}

impl RunError {
    pub fn retryable(&self) -> bool {
        match self {
            RunError::InvalidInput(_) | RunError::FutureNow(_) => false,
            RunError::Query(e) => e.retryable,
            RunError::Run(e) => e.retryable(),
        }
    }

    pub fn reason_code(&self) -> &'static str {
        match self {
            RunError::InvalidInput(_) => "invalid_input",
            RunError::FutureNow(_) => "future_now",
            RunError::Query(_) => "query",
            RunError::Run(batch::RunError::Rows(_)) => "bad_rows",
            RunError::Run(_) => "store",
        }
    }
}

impl From<RunError> for lambda_runtime::Diagnostic {
    fn from(e: RunError) -> Self {
        Self {
            error_type: e.reason_code().to_string(),
            error_message: e.to_string(),
        }
    }
}

/// The handler with its ports: Athena for the rows, the features table for the writes.
pub struct Function<S = DynamoFeatureStore> {
    pub athena: Athena,
    pub store: S,
    pub config: Config,
}

impl Function {
    /// Cold start: config and clients. A missing setting fails here, not on the first run.
    pub async fn from_env() -> Result<Self, Error> {
        Self::new(&Env::from_process(), &load_sdk_config().await)
    }

    /// Builds the function from an explicit environment and SDK config (tests and local runs).
    pub fn new(env: &Env, sdk: &aws_config::SdkConfig) -> Result<Self, Error> {
        let config = Config::from_env(env)?;
        Ok(Function {
            athena: Athena {
                client: aws_sdk_athena::Client::new(sdk),
                workgroup: config.archive_workgroup.clone(),
                database: config.archive_database.clone(),
                poll: Duration::from_secs(1),
                max_wait: config.max_query_wait,
            },
            store: DynamoFeatureStore {
                client: aws_sdk_dynamodb::Client::new(sdk),
                table: config.features_table.clone(),
            },
            config,
        })
    }
}

impl<S: FeatureWriter> Function<S> {
    /// One scheduled run; see the module docs for what fails and what is refused.
    pub async fn handle(
        &self,
        event: LambdaEvent<serde_json::Value>,
    ) -> Result<RunCounts, RunError> {
        let result = match serde_json::from_value::<Invocation>(event.payload) {
            Ok(invocation) => self.run(&invocation, Utc::now()).await,
            Err(e) => Err(RunError::InvalidInput(e)),
        };
        match result {
            Ok(counts) => {
                tracing::info!(counts = %serde_json::to_string(&counts).unwrap_or_default(), "item and page batch run");
                metrics(&counts, false).flush();
                Ok(counts)
            }
            Err(e) if e.retryable() => {
                tracing::warn!(error = %e, "item and page batch run failed; Lambda retries it");
                metrics(&RunCounts::default(), false).flush();
                Err(e)
            }
            Err(e) => {
                tracing::error!(reason = e.reason_code(), error = %e, "item and page batch run refused");
                metrics(&RunCounts::default(), true).flush();
                Ok(RunCounts::default())
            }
        }
    }

    /// One run as of `invocation.now` (else `clock`).
    pub async fn run(
        &self,
        invocation: &Invocation,
        clock: DateTime<Utc>,
    ) -> Result<RunCounts, RunError> {
        let now = invocation.at(clock)?;
        let (items, pages) = feature_rows(&self.athena, now.timestamp())
            .await
            .map_err(RunError::Query)?;
        Ok(batch::run(&self.store, &items, &pages, now, self.config.concurrency).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_its_settings_and_refuses_a_missing_table() {
        let env = Env::from_pairs([
            ("FEATURES_TABLE", "features"),
            ("ARCHIVE_WORKGROUP", "wg"),
            ("ARCHIVE_DATABASE", "db"),
            ("BATCH_CONCURRENCY", "0"),
        ]);
        let c = Config::from_env(&env).expect("config");
        assert_eq!(
            (c.features_table.as_str(), c.concurrency, c.max_query_wait),
            ("features", 1, Duration::from_secs(600))
        );
        assert!(Config::from_env(&Env::from_pairs([("ARCHIVE_WORKGROUP", "wg")])).is_err());
    }

    #[test]
    fn only_transient_faults_are_retried() {
        let bad: RunError = serde_json::from_str::<Invocation>(r#"{"when": 1}"#)
            .map_err(RunError::InvalidInput)
            .unwrap_err();
        assert!(!bad.retryable());
        let rows = RunError::Run(batch::RunError::Rows(batch::BatchError {
            query: "item_features",
            id: "p".into(),
            detail: "unknown row kind".into(),
        }));
        assert_eq!((rows.retryable(), rows.reason_code()), (false, "bad_rows"));
        let busy = RunError::Query(StoreError {
            operation: "Athena query",
            retryable: true,
            source: "still running".into(),
        });
        assert!(busy.retryable());
        let conflict = RunError::Run(batch::RunError::Commit(
            checkout_domain::ports::CommitError::Conflict,
        ));
        assert!(conflict.retryable());
    }
}
