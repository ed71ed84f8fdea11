//! `ArchiverFunction`: the event log's stream in (INSERTs only, filtered by the mapping), one archive
//! row per admitted event out, to the Firehose delivery stream that writes them to S3 as Parquet by
//! event date and hour (`checkout_domain::archive`).
//!
//! The log is the archive's source, not the Kinesis stream: what reaches it is validated and
//! pseudonymized, and never holds a card number. Delivery is at least once (a retried batch puts its
//! rows again), so every reader of the archive counts an event id once (`sql/experiment_readout.sql`
//! does).
//!
//! Errors decide retries: a row Firehose would not take after the retry policy is a batch item failure
//! at its record, so Lambda retries from there; a log item that is no event (it was validated at
//! ingest, so a bug or a tampered item) is logged, counted (`Unarchivable`) and skipped, since no retry
//! changes it.

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use checkout_aws::emf::Metrics;
use checkout_aws::firehose::FirehoseArchive;
use checkout_aws::{load_sdk_config, ConfigError, Env};
use checkout_domain::archive::ArchiveRow;
use checkout_domain::delivery::{deliver, RetryPolicy};
use checkout_domain::ingest::LogEntry;
use checkout_domain::ports::BatchSink;
use lambda_runtime::{Error, LambdaEvent};
use serde::Serialize;

/// The `service` dimension of this function's metrics.
pub const SERVICE: &str = "archiver";

/// Every metric this function emits (besides `ColdStart`); the dashboard check reads it.
pub const METRICS: &[&str] = &["Archived", "Unarchivable", "RetriedRecords"];

/// What one batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ArchiveCounts {
    pub records: usize,
    pub archived: usize,
    /// Log items that are no event (skipped; no retry changes them).
    pub unarchivable: usize,
    /// Records handed back to Lambda (undelivered rows and everything after the first of them).
    pub retried: usize,
    pub put_requests: u64,
}

/// The handler with its port; generic so tests run it over an in-memory sink.
pub struct Function<S = FirehoseArchive> {
    pub sink: S,
    pub retry: RetryPolicy,
}

impl Function {
    /// Cold start: config and client. A missing setting fails here, not on the first batch.
    pub async fn from_env() -> Result<Self, Error> {
        Ok(Self::new(&Env::from_process(), &load_sdk_config().await)?)
    }

    pub fn new(env: &Env, sdk: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            sink: FirehoseArchive {
                client: aws_sdk_firehose::Client::new(sdk),
                delivery_stream: env.required("ARCHIVE_DELIVERY_STREAM")?.to_string(),
            },
            retry: RetryPolicy::default(),
        })
    }
}

/// The archive row of one event-log stream record's new image (an INSERT's).
pub fn archive_row(record: &EventRecord) -> Result<ArchiveRow, String> {
    let entry: LogEntry =
        serde_dynamo::from_item(record.change.new_image.clone()).map_err(|e| e.to_string())?;
    ArchiveRow::of(&entry).map_err(|e| e.to_string())
}

impl<S: BatchSink<ArchiveRow>> Function<S> {
    pub async fn handle(
        &self,
        event: LambdaEvent<StreamEvent>,
    ) -> Result<DynamoDbEventResponse, Error> {
        let (response, counts) = self.process(event.payload).await;
        let mut m = Metrics::new(SERVICE);
        m.count("Archived", counts.archived);
        m.count("Unarchivable", counts.unarchivable);
        m.count("RetriedRecords", counts.retried);
        m.flush();
        tracing::info!(counts = %serde_json::to_string(&counts).unwrap_or_default(), "archive batch");
        Ok(response)
    }

    /// Maps the batch's INSERTs to rows and delivers them in order; the first undelivered row's record
    /// is the checkpoint Lambda retries from.
    pub async fn process(&self, event: StreamEvent) -> (DynamoDbEventResponse, ArchiveCounts) {
        let mut counts = ArchiveCounts::default();
        let mut rows = Vec::new();
        let mut sequence = Vec::new();
        for record in event.records.iter().filter(|r| r.event_name == "INSERT") {
            counts.records += 1;
            match archive_row(record) {
                Ok(row) => {
                    rows.push(row);
                    sequence.push(record.change.sequence_number.clone());
                }
                Err(e) => {
                    tracing::error!(error = %e, "log item not archived");
                    counts.unarchivable += 1;
                }
            }
        }
        let delivery = deliver(&self.sink, &rows, &self.retry).await;
        counts.put_requests = delivery.stats.requests;
        let first_missing = delivery.accepted.iter().position(|a| !a);
        counts.archived = first_missing.unwrap_or(rows.len());
        let mut response = DynamoDbEventResponse::default();
        if let Some(i) = first_missing {
            if let Some(e) = &delivery.error {
                tracing::warn!(error = %e, "archive delivery stopped; Lambda retries from the first row not delivered");
            }
            counts.retried = rows.len() - i;
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = sequence[i].clone();
            response.batch_item_failures.push(failure);
        }
        (response, counts)
    }
}
