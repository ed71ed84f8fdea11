//! `IngestFunction`: Kinesis records in, event-log items and quarantine messages out, batch item
//! failures reported from the first record that is not durably handled.

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use checkout_aws::config::secret;
use checkout_aws::dynamo::DynamoEventLog;
use checkout_aws::emf::{Metrics, Unit};
use checkout_aws::quarantine::SqsQuarantine;
use checkout_aws::s3::{s3_client, S3ObjectStore};
use checkout_aws::{load_sdk_config, ConfigError, Env};
use checkout_domain::delivery::RetryPolicy;
use checkout_domain::ingest::{
    Admission, BatchCounts, Ingestor, LogEntry, QuarantineRecord, SourceRecord, Tombstones,
    DEFAULT_MAX_RECORD_BYTES, TOMBSTONES_KEY,
};
use checkout_domain::ports::{BatchSink, ObjectStore};
use checkout_domain::pseudonym::Pseudonymizer;
use lambda_runtime::{Error, LambdaEvent};
use std::time::Duration;

/// Everything the function reads from its environment, once, at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    pub event_log_table: String,
    pub quarantine_queue_url: String,
    pub quarantine_bucket: String,
    pub retention_days: i64,
    pub max_record_bytes: usize,
    pub max_future_skew_seconds: i64,
    pub retry: RetryPolicy,
    /// The bucket holding the erasure tombstones (`erasure/tombstones.json`); `None`: none are read.
    pub tombstones_bucket: Option<String>,
    /// How often the tombstones are re-read.
    pub tombstones_refresh: Duration,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let retention_days: i64 = env.parsed("EVENT_RETENTION_DAYS", 400)?;
        if retention_days < 1 {
            return Err(ConfigError::Invalid {
                name: "EVENT_RETENTION_DAYS",
                reason: "must be at least 1".into(),
            });
        }
        let defaults = RetryPolicy::default();
        Ok(Self {
            event_log_table: env.required("EVENT_LOG_TABLE")?.to_string(),
            quarantine_queue_url: env.required("QUARANTINE_QUEUE_URL")?.to_string(),
            quarantine_bucket: env.required("QUARANTINE_BUCKET")?.to_string(),
            retention_days,
            max_record_bytes: env.parsed("MAX_RECORD_BYTES", DEFAULT_MAX_RECORD_BYTES)?,
            max_future_skew_seconds: env.parsed("MAX_FUTURE_SKEW_SECONDS", 900)?,
            retry: RetryPolicy {
                max_attempts: env
                    .parsed("WRITE_MAX_ATTEMPTS", defaults.max_attempts)?
                    .max(1),
                base: Duration::from_millis(env.parsed("WRITE_BACKOFF_BASE_MS", 25)?),
                cap: Duration::from_millis(env.parsed("WRITE_BACKOFF_CAP_MS", 1000)?),
            },
            tombstones_bucket: env
                .optional("TOMBSTONES_BUCKET")
                .filter(|b| !b.is_empty())
                .map(str::to_string),
            tombstones_refresh: Duration::from_secs(env.parsed("TOMBSTONES_REFRESH_SECONDS", 60)?),
        })
    }

    pub fn admission(&self, pseudonymizer: Pseudonymizer) -> Admission {
        Admission {
            max_record_bytes: self.max_record_bytes,
            retention: chrono::Duration::days(self.retention_days),
            max_future_skew: chrono::Duration::seconds(self.max_future_skew_seconds),
            pseudonymizer,
        }
    }
}

/// The batch's metrics (EMF, service `ingest`): `Records`, `Appended`, `Duplicates` (in the batch),
/// `Quarantined` (and by `reason`), `WriteRetries` (log writes retried), `RetriedRecords` (handed back to
/// Lambda from the checkpoint), `Erased` (dropped by a tombstone).
pub fn metrics(c: &BatchCounts) -> Metrics {
    let mut m = Metrics::new(SERVICE);
    m.count("Records", c.records);
    m.count("Appended", c.appended);
    m.count("Duplicates", c.duplicates_in_batch);
    m.count("Quarantined", c.quarantined);
    m.count("WriteRetries", c.log_write_retries as usize);
    m.count("RetriedRecords", c.retry_from_checkpoint);
    m.count("Erased", c.erased);
    for (reason, n) in &c.quarantined_by_reason {
        m.add_with(
            &[("reason", reason)],
            "QuarantinedByReason",
            Unit::Count,
            *n as f64,
        );
    }
    m
}

/// The `service` dimension of this function's metrics.
pub const SERVICE: &str = "ingest";

/// Every metric this function emits (besides `ColdStart`); the dashboard check reads it.
pub const METRICS: &[&str] = &[
    "Erased",
    "Records",
    "Appended",
    "Duplicates",
    "Quarantined",
    "WriteRetries",
    "RetriedRecords",
    "QuarantinedByReason",
];

/// The handler with its ports; generic so unit tests run it over in-memory stores.
pub struct Function<L = DynamoEventLog, Q = SqsQuarantine, T = S3ObjectStore> {
    pub ingestor: Ingestor<L, Q>,
    /// Where the tombstones are read from, and when they last were.
    pub tombstones: Option<TombstoneSource<T>>,
}

/// The tombstones' object, re-read every `refresh`.
pub struct TombstoneSource<T> {
    pub store: T,
    pub refresh: Duration,
    pub loaded_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// Why a batch could not be ingested as a whole.
#[derive(Debug, thiserror::Error)]
#[error("the erasure tombstones were never read, so erased users cannot be told apart: {0}")]
pub struct TombstonesUnavailable(#[source] checkout_domain::ports::StoreError);

impl Function {
    /// Cold start: config, key, clients. A missing setting fails here, not on the first batch.
    pub async fn from_env() -> Result<Self, Error> {
        Self::new(&Env::from_process(), &load_sdk_config().await).await
    }

    /// Builds the function from an explicit environment and SDK config (the local stream driver and tests).
    pub async fn new(env: &Env, sdk: &aws_config::SdkConfig) -> Result<Self, Error> {
        let config = Config::from_env(env)?;
        let key = secret(env, sdk, "PSEUDONYM_KEY_PARAMETER", "PSEUDONYM_KEY").await?;
        let pseudonymizer = Pseudonymizer::new(key.as_bytes())?;
        let log = DynamoEventLog {
            client: aws_sdk_dynamodb::Client::new(sdk),
            table: config.event_log_table.clone(),
        };
        let quarantine = SqsQuarantine {
            sqs: aws_sdk_sqs::Client::new(sdk),
            s3: aws_sdk_s3::Client::new(sdk),
            queue_url: config.quarantine_queue_url.clone(),
            bucket: config.quarantine_bucket.clone(),
        };
        let tombstones = config
            .tombstones_bucket
            .clone()
            .map(|bucket| TombstoneSource {
                store: S3ObjectStore {
                    client: s3_client(sdk),
                    bucket,
                },
                refresh: config.tombstones_refresh,
                loaded_at: std::sync::Mutex::new(None),
            });
        Ok(Function {
            ingestor: Ingestor {
                admission: config.admission(pseudonymizer),
                log,
                quarantine,
                retry: config.retry,
                tombstones: Default::default(),
            },
            tombstones,
        })
    }
}

impl<L: BatchSink<LogEntry>, Q: BatchSink<QuarantineRecord>, T: ObjectStore> Function<L, Q, T> {
    /// Re-reads the tombstones when they are older than the refresh interval. A failed re-read keeps
    /// the last set (and is logged); a first read that fails is an error, because ingesting without
    /// them could resurrect an erased user.
    pub async fn refresh_tombstones(&self) -> Result<(), TombstonesUnavailable> {
        let Some(source) = &self.tombstones else {
            return Ok(());
        };
        let loaded_at = *source.loaded_at.lock().unwrap_or_else(|p| p.into_inner());
        if loaded_at.is_some_and(|at| at.elapsed() < source.refresh) {
            return Ok(());
        }
        match source.store.get(TOMBSTONES_KEY).await {
            Ok(object) => {
                let set = match object {
                    Some(o) => serde_json::from_slice::<Tombstones>(&o.bytes).unwrap_or_else(|e| {
                        tracing::error!(error = %e, "the tombstones object is unreadable; keeping none");
                        Tombstones::default()
                    }),
                    None => Tombstones::default(),
                };
                *self
                    .ingestor
                    .tombstones
                    .write()
                    .unwrap_or_else(|p| p.into_inner()) = set;
                *source.loaded_at.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(std::time::Instant::now());
                Ok(())
            }
            Err(e) if loaded_at.is_none() => Err(TombstonesUnavailable(e)),
            Err(e) => {
                tracing::warn!(error = %e, "re-reading the tombstones failed; keeping the last set");
                Ok(())
            }
        }
    }

    /// Handles one batch from one shard.
    pub async fn handle(
        &self,
        event: LambdaEvent<KinesisEvent>,
    ) -> Result<KinesisEventResponse, Error> {
        self.refresh_tombstones().await?;
        let (response, counts) = self.process(event.payload, chrono::Utc::now()).await;
        metrics(&counts).flush();
        Ok(response)
    }

    /// [`Self::handle`] at a given ingest time (deterministic tests).
    pub async fn handle_at(
        &self,
        event: KinesisEvent,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<KinesisEventResponse, Error> {
        self.refresh_tombstones().await?;
        Ok(self.process(event, now).await.0)
    }

    /// One batch: the Lambda response plus the batch's counters (the local stream driver sums them).
    pub async fn process(
        &self,
        event: KinesisEvent,
        now: chrono::DateTime<chrono::Utc>,
    ) -> (KinesisEventResponse, BatchCounts) {
        let records: Vec<SourceRecord<'_>> = event
            .records
            .iter()
            .map(|r| SourceRecord {
                sequence_number: &r.kinesis.sequence_number,
                partition_key: &r.kinesis.partition_key,
                data: &r.kinesis.data.0,
                arrived_at: Some(r.kinesis.approximate_arrival_timestamp.0),
            })
            .collect();
        let source = event
            .records
            .first()
            .and_then(|r| r.event_source_arn.as_deref());
        let outcome = self.ingestor.ingest(&records, source, now).await;
        let c = &outcome.counts;
        let checkpoint = outcome
            .checkpoint
            .map(|i| records[i].sequence_number.to_string());
        let counts = serde_json::to_string(&c.quarantined_by_reason).unwrap_or_default();
        tracing::info!(
            records = c.records,
            appended = c.appended,
            duplicates_in_batch = c.duplicates_in_batch,
            quarantined = c.quarantined,
            quarantined_by_reason = %counts,
            log_write_requests = c.log_write_requests,
            log_write_retries = c.log_write_retries,
            quarantine_requests = c.quarantine_requests,
            "batch ingested"
        );
        if let Some(seq) = &checkpoint {
            let errors: Vec<String> = outcome
                .errors
                .iter()
                .map(|e| format!("{e}: {:?}", e.source))
                .collect();
            tracing::warn!(
                checkpoint = %seq,
                retry_from_checkpoint = c.retry_from_checkpoint,
                errors = ?errors,
                "batch partially ingested; reporting a batch item failure at the checkpoint"
            );
        }
        let mut response = KinesisEventResponse::default();
        if let Some(seq) = checkpoint {
            let mut failure = KinesisBatchItemFailure::default();
            failure.item_identifier = Some(seq);
            response.batch_item_failures.push(failure);
        }
        (response, outcome.counts)
    }
}
