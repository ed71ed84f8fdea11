//! `RecoverySweepFunction`: on an EventBridge Scheduler schedule (every 5 minutes), the abandoned
//! carts whose next check is due, each checked against the event log as of now, then deferred, ended,
//! or decided and sent to the outbound queue (`checkout_domain::recovery::sweep`).
//!
//! Input (the schedule's target input): `{"now": "<aws.scheduler.scheduled-time>"}`; without `now` the
//! sweep runs as of the current time. A `now` in the past sweeps as of then (a replay); one in the
//! future beyond the clock skew is refused.
//!
//! Errors decide retries: bad input and an invalid decision config are refused (logged, the run
//! succeeds: no retry can fix them, and an invalid config must not send anything); a store fault on any
//! item fails the run after every other item was handled, so Lambda retries it (then the dead-letter
//! queue). A retry redoes only what is still due: every step is idempotent.

use checkout_aws::dynamo::{DynamoEventLog, DynamoLogIndex};
use checkout_aws::emf::{Metrics, Unit};
use checkout_aws::features::DynamoFeatureStore;
use checkout_aws::s3::{s3_client, S3ObjectStore};
pub use checkout_aws::schedule::{FutureNow, Invocation, MAX_CLOCK_SKEW};
use checkout_aws::sqs::SqsOutbound;
use checkout_aws::{load_sdk_config, ConfigError, Env};
use checkout_domain::decision::config::{DecisionConfig, InvalidConfig, DEFAULT_CONFIG_KEY};
use checkout_domain::decision::learned::{load_policies, PolicyArtifact, DEFAULT_POLICY_NAME};
use checkout_domain::decision::read::PageCache;
use checkout_domain::delivery::RetryPolicy;
use checkout_domain::ingest::LogEntry;
use checkout_domain::model::registry::load_or_fallback;
use checkout_domain::model::scorer::Model;
use checkout_domain::ports::{
    BatchSink, DueIndex, FeatureWriter, LogIndex, ObjectStore, StoreError,
};
use checkout_domain::recovery::sweep::{OutboundMessage, Sweep, SweepInputs, SweepReport};
use checkout_domain::recovery::RecoverySettings;
use chrono::{DateTime, Duration, Utc};
use lambda_runtime::{Error, LambdaEvent};

/// Everything the function reads from its environment, once, at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    pub event_log_table: String,
    pub features_table: String,
    pub models_bucket: String,
    pub decision_config_key: String,
    pub model_name: String,
    pub policy_name: String,
    pub outbound_queue_url: String,
    pub retention_days: i64,
    pub settings: RecoverySettings,
    pub lookback_hours: i64,
    pub max_per_bucket: usize,
    pub concurrency: usize,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            event_log_table: env.required("EVENT_LOG_TABLE")?.to_string(),
            features_table: env.required("FEATURES_TABLE")?.to_string(),
            models_bucket: env.required("MODELS_BUCKET")?.to_string(),
            decision_config_key: env
                .optional("DECISION_CONFIG_KEY")
                .unwrap_or(DEFAULT_CONFIG_KEY)
                .to_string(),
            model_name: env
                .optional("MODEL_NAME")
                .unwrap_or("purchase-propensity")
                .to_string(),
            policy_name: env
                .optional("POLICY_NAME")
                .unwrap_or(DEFAULT_POLICY_NAME)
                .to_string(),
            outbound_queue_url: env.required("OUTBOUND_QUEUE_URL")?.to_string(),
            retention_days: env.parsed("RETENTION_DAYS", 400i64)?.clamp(1, 3_650),
            settings: env.recovery_settings()?,
            lookback_hours: env.parsed("SWEEP_LOOKBACK_HOURS", 48i64)?.clamp(1, 24 * 14),
            max_per_bucket: env.parsed("SWEEP_MAX_PER_BUCKET", 1_000usize)?.max(1),
            concurrency: env.parsed("SWEEP_CONCURRENCY", 8usize)?.max(1),
        })
    }
}

/// The `service` dimension of this function's metrics.
pub const SERVICE: &str = "recovery-sweep";

/// Every metric this function emits (besides `ColdStart`); the dashboard check reads it.
pub const METRICS: &[&str] = &[
    "DueItems",
    "MessagesRequested",
    "MessagesRequestedByStep",
    "HoldoutDecisions",
    "SkippedDecisions",
    "DeferredQuietHours",
    "DeferredCap",
    "Waiting",
    "SequencesEnded",
    "SequencesEndedByReason",
    "Conflicts",
    "SweepFailures",
    "ZoneFallbacks",
    "RunsRefused",
];

/// A run's metrics (EMF, service `recovery-sweep`).
pub fn metrics(report: &SweepReport, refused: bool) -> Metrics {
    let mut m = Metrics::new(SERVICE);
    let n = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    m.count("RunsRefused", usize::from(refused));
    m.count("DueItems", n(report.due_items));
    m.count("MessagesRequested", n(report.sent()));
    for (step, count) in &report.sent_by_step {
        let step = step.to_string();
        m.add_with(
            &[("step", step.as_str())],
            "MessagesRequestedByStep",
            Unit::Count,
            *count as f64,
        );
    }
    m.count("HoldoutDecisions", n(report.holdout));
    m.count("SkippedDecisions", n(report.skipped));
    m.count("DeferredQuietHours", n(report.deferred_quiet_hours));
    m.count("DeferredCap", n(report.deferred_cap));
    m.count("Waiting", n(report.waiting));
    m.count("SequencesEnded", n(report.ended.values().sum()));
    for (reason, count) in &report.ended {
        m.add_with(
            &[("reason", reason.as_str())],
            "SequencesEndedByReason",
            Unit::Count,
            *count as f64,
        );
    }
    m.count("Conflicts", n(report.conflicts));
    m.count("SweepFailures", n(report.failed));
    m.count("ZoneFallbacks", n(report.zone_fallbacks));
    m
}

/// Why a run did not sweep, or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid input: {0} (expected {{\"now\": RFC 3339 time, optional}})")]
    InvalidInput(#[source] serde_json::Error),
    #[error(transparent)]
    FutureNow(#[from] FutureNow),
    #[error("reading the decision config: {0}")]
    ConfigUnreadable(#[source] StoreError),
    #[error(transparent)]
    InvalidConfig(InvalidConfig),
    #[error("{failed} due items hit a store fault (first: {first}); they stay due for the retry")]
    Transient { failed: u64, first: String },
}

impl RunError {
    pub fn retryable(&self) -> bool {
        match self {
            RunError::InvalidInput(_) | RunError::FutureNow(_) | RunError::InvalidConfig(_) => {
                false
            }
            RunError::ConfigUnreadable(e) => e.retryable,
            RunError::Transient { .. } => true,
        }
    }

    pub fn reason_code(&self) -> &'static str {
        match self {
            RunError::InvalidInput(_) => "invalid_input",
            RunError::FutureNow(_) => "future_now",
            RunError::ConfigUnreadable(_) => "config_unreadable",
            RunError::InvalidConfig(_) => "invalid_config",
            RunError::Transient { .. } => "transient",
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

/// The handler with its ports; generic so tests run it over in-memory stores.
pub struct Function<
    L = DynamoLogIndex,
    W = DynamoEventLog,
    S = DynamoFeatureStore,
    O = SqsOutbound,
    C = S3ObjectStore,
> {
    pub config: Config,
    pub log: L,
    pub log_sink: W,
    pub store: S,
    pub outbound: O,
    /// The models bucket: the decision config.
    pub config_store: C,
    pub model: Model,
    /// The learned policy, run in shadow at the recovery placement when one is promoted.
    pub shadow: Option<PolicyArtifact>,
    pub pages: PageCache,
}

impl Function {
    /// Cold start: config, clients, the model and the learned policy.
    pub async fn from_env() -> Result<Self, Error> {
        Self::new(&Env::from_process(), &load_sdk_config().await).await
    }

    pub async fn new(env: &Env, sdk: &aws_config::SdkConfig) -> Result<Self, Error> {
        let config = Config::from_env(env)?;
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let models = S3ObjectStore {
            client: s3_client(sdk),
            bucket: config.models_bucket.clone(),
        };
        let budget = std::time::Duration::from_secs(10);
        let (model, policies) = tokio::join!(
            load_or_fallback(&models, &config.model_name, budget),
            load_policies(&models, &config.policy_name, None, budget),
        );
        Ok(Self {
            log: DynamoLogIndex {
                client: dynamodb.clone(),
                table: config.event_log_table.clone(),
            },
            log_sink: DynamoEventLog {
                client: dynamodb.clone(),
                table: config.event_log_table.clone(),
            },
            store: DynamoFeatureStore {
                client: dynamodb,
                table: config.features_table.clone(),
            },
            outbound: SqsOutbound {
                client: aws_sdk_sqs::Client::new(sdk),
                queue_url: config.outbound_queue_url.clone(),
            },
            config_store: models,
            model: model?.model,
            shadow: policies.champion,
            pages: PageCache::new(std::time::Duration::from_secs(300), 10_000),
            config,
        })
    }
}

impl<L, W, S, O, C> Function<L, W, S, O, C>
where
    L: LogIndex,
    W: BatchSink<LogEntry>,
    S: FeatureWriter + DueIndex,
    O: BatchSink<OutboundMessage>,
    C: ObjectStore,
{
    /// The Lambda entry point. Succeeds unless a transient fault left items for a retry.
    pub async fn handle(
        &self,
        event: LambdaEvent<serde_json::Value>,
    ) -> Result<SweepReport, RunError> {
        let result = match serde_json::from_value::<Invocation>(event.payload) {
            Ok(invocation) => self.run(&invocation, Utc::now()).await,
            Err(e) => Err(RunError::InvalidInput(e)),
        };
        match result {
            Ok(report) if report.failed == 0 => {
                tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "recovery sweep");
                metrics(&report, false).flush();
                Ok(report)
            }
            Ok(report) => {
                tracing::warn!(report = %serde_json::to_string(&report).unwrap_or_default(), "recovery sweep hit store faults; failing for a retry");
                metrics(&report, false).flush();
                Err(RunError::Transient {
                    failed: report.failed,
                    first: report.first_failure.unwrap_or_default(),
                })
            }
            Err(e) if e.retryable() => {
                tracing::warn!(error = %e, "recovery sweep failed; Lambda retries it");
                metrics(&SweepReport::default(), false).flush();
                Err(e)
            }
            Err(e) => {
                tracing::error!(reason = e.reason_code(), error = %e, "recovery sweep refused");
                metrics(&SweepReport::default(), true).flush();
                Ok(SweepReport::default())
            }
        }
    }

    /// One sweep as of `invocation.now` (else `clock`).
    pub async fn run(
        &self,
        invocation: &Invocation,
        clock: DateTime<Utc>,
    ) -> Result<SweepReport, RunError> {
        let now = invocation.at(clock)?;
        let config = match self
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
        let sweep = Sweep {
            log: &self.log,
            log_sink: &self.log_sink,
            store: &self.store,
            outbound: &self.outbound,
            pages: &self.pages,
            settings: &self.config.settings,
            retention: Duration::days(self.config.retention_days),
            lookback: Duration::hours(self.config.lookback_hours),
            max_per_bucket: self.config.max_per_bucket,
            concurrency: self.config.concurrency,
            retry: RetryPolicy::default(),
        };
        Ok(sweep
            .run(SweepInputs {
                now,
                config: &config,
                model: &self.model,
                shadow: self.shadow.as_ref(),
            })
            .await)
    }
}
