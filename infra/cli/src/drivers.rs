//! The local stand-ins for Lambda's event source mappings: the real ingest and feature-updater handlers
//! driven shard by shard from Kinesis and from the event log's DynamoDB stream (moto runs no poller).

use crate::local::esm::{DrainReport, DynamoStreamMapping, KinesisMapping, Positions};
use crate::local::stack::LocalStack;
use crate::BoxError;
use checkout_domain::features::updater::UpdateCounts;
use checkout_domain::features::updater::UpdateFailure;
use checkout_domain::ingest::BatchCounts;
use checkout_domain::ports::{BatchSink, FeatureWriter, SessionLog};
use serde::Serialize;

/// What a local ingest run did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct IngestRun {
    pub stream: DrainReport,
    pub counts: BatchCounts,
}

/// Runs the real ingest handler over the stream, as Lambda's event source mapping would.
pub async fn drive_ingest(stack: &LocalStack) -> Result<IngestRun, BoxError> {
    drive_ingest_after(stack, &Positions::new()).await
}

/// [`drive_ingest`], resuming each shard after where a previous run stopped.
pub async fn drive_ingest_after(
    stack: &LocalStack,
    from: &Positions,
) -> Result<IngestRun, BoxError> {
    let sdk = stack.sdk_config().await;
    let function = ingest::Function::new(&stack.env("IngestFunction")?, &sdk)
        .await
        .map_err(|e| -> BoxError { e.to_string().into() })?;
    drive_ingest_with(stack, &sdk, &function, from).await
}

/// [`drive_ingest`] with a given function (tests pass one whose clients inject faults).
pub async fn drive_ingest_with<L, Q>(
    stack: &LocalStack,
    sdk: &aws_config::SdkConfig,
    function: &ingest::Function<L, Q>,
    from: &Positions,
) -> Result<IngestRun, BoxError>
where
    L: checkout_domain::ports::BatchSink<checkout_domain::ingest::LogEntry>,
    Q: checkout_domain::ports::BatchSink<checkout_domain::ingest::QuarantineRecord>,
{
    let source = stack.event_source("IngestFunction", "Kinesis")?;
    let stream = stack.resource(source.source.as_deref().unwrap_or("EventStream"))?;
    let on_failure = stack.on_failure_queue(source, sdk);
    let mapping = KinesisMapping {
        kinesis: aws_sdk_kinesis::Client::new(sdk),
        stream_name: stream.name.clone(),
        stream_arn: stream.arn.clone(),
        batch_size: source.batch_size,
        max_retries: source.maximum_retry_attempts.unwrap_or(10),
        on_failure,
    };
    let totals = std::cell::RefCell::new(BatchCounts::default());
    let report = mapping
        .drain(from, |event| {
            let totals = &totals;
            async move {
                function
                    .refresh_tombstones()
                    .await
                    .map_err(|e| e.to_string())?;
                let (response, c) = function.process(event, chrono::Utc::now()).await;
                *totals.borrow_mut() += &c;
                Ok(response)
            }
        })
        .await?;
    Ok(IngestRun {
        stream: report,
        counts: totals.into_inner(),
    })
}

/// What a local feature-updater run did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct FeaturesRun {
    pub stream: DrainReport,
    pub counts: UpdateCounts,
    /// Sessions handed back to Lambda (retried by the driver) over the run.
    pub failed_sessions: usize,
}

/// Runs the real feature-updater handler over the event log's DynamoDB stream, as Lambda's event source
/// mapping would, applying the template's filter (moto does not).
pub async fn drive_features(stack: &LocalStack) -> Result<FeaturesRun, BoxError> {
    drive_features_after(stack, &Positions::new()).await
}

/// [`drive_features`], resuming each shard after where a previous run stopped.
pub async fn drive_features_after(
    stack: &LocalStack,
    from: &Positions,
) -> Result<FeaturesRun, BoxError> {
    let sdk = stack.sdk_config().await;
    let function = feature_updater::Function::new(&stack.env("FeatureUpdaterFunction")?, &sdk)
        .map_err(|e| -> BoxError { e.to_string().into() })?;
    drive_features_with(stack, &sdk, &function, from).await
}

/// [`drive_features`] with a given function.
pub async fn drive_features_with<L: SessionLog, S: FeatureWriter, F: BatchSink<UpdateFailure>>(
    stack: &LocalStack,
    sdk: &aws_config::SdkConfig,
    function: &feature_updater::Function<L, S, F>,
    from: &Positions,
) -> Result<FeaturesRun, BoxError> {
    let source = stack.event_source("FeatureUpdaterFunction", "DynamoDB")?;
    let table = stack.resource(source.source.as_deref().unwrap_or("EventLogTable"))?;
    let stream_arn = table
        .stream_arn
        .clone()
        .ok_or("the event log table has no stream")?;
    let on_failure = stack.on_failure_queue(source, sdk);
    let mapping = DynamoStreamMapping {
        streams: aws_sdk_dynamodbstreams::Client::new(sdk),
        stream_arn,
        batch_size: source.batch_size,
        max_retries: source.maximum_retry_attempts.unwrap_or(10),
        event_names: source.event_names()?,
        on_failure,
    };
    let totals = std::cell::RefCell::new(FeaturesRun::default());
    let report = mapping
        .drain(from, |event| {
            let totals = &totals;
            async move {
                let (response, c) = function.process(event).await;
                let mut t = totals.borrow_mut();
                t.counts += &c;
                t.failed_sessions += response.batch_item_failures.len();
                Ok(response)
            }
        })
        .await?;
    let mut run = totals.into_inner();
    run.stream = report;
    Ok(run)
}
