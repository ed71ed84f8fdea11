//! Local stand-ins for Lambda's Kinesis and DynamoDB Streams event source mappings, for the demo and the integration tests
//! (moto runs no event source mappings).
//!
//! Like the real one it reads each shard in order, hands the function batches of at most `batch_size`
//! records in the Lambda event shape (base64 data, `eventID` = `shardId:sequence`), and, when the function
//! reports a batch item failure, re-reads the shard from that sequence number. After `max_retries`
//! consecutive failures at the same position it gives up on that batch, as the real mapping does, and
//! sends the batch's coordinates to the on-failure destination, if one is configured.

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::{DynamoDbEventResponse, KinesisEventResponse};
use aws_sdk_kinesis::types::ShardIteratorType;
use base64::Engine as _;
use serde_json::json;
use std::future::Future;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where to read and how the mapping is configured (taken from template.yaml by the local stack).
#[derive(Debug, Clone)]
pub struct KinesisMapping {
    pub kinesis: aws_sdk_kinesis::Client,
    pub stream_name: String,
    pub stream_arn: String,
    pub batch_size: usize,
    pub max_retries: u32,
    /// The on-failure destination (an SQS queue URL).
    pub on_failure: Option<(aws_sdk_sqs::Client, String)>,
}

/// What a drain did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DrainReport {
    pub shards: usize,
    /// Records handed to the function, counting re-deliveries after a failure.
    pub records_delivered: usize,
    pub invocations: usize,
    /// Invocations that reported a batch item failure.
    pub partial_failures: usize,
    /// Batches given up after `max_retries` and sent to the on-failure destination.
    pub batches_abandoned: usize,
    /// Each shard's last sequence number read: a later drain can resume after it.
    #[serde(skip)]
    pub positions: std::collections::BTreeMap<String, String>,
}

/// Where a drain resumes, per shard (shards not listed are read from the start).
pub type Positions = std::collections::BTreeMap<String, String>;

/// Where a shard iterator starts.
#[derive(Debug, Clone, Copy)]
enum Position<'a> {
    Start,
    At(&'a str),
    After(&'a str),
}

/// One `GetRecords` page.
struct Page<E> {
    /// The Lambda event for the page's records that pass the mapping's filter, and how many they are;
    /// `None` when none do.
    event: Option<(E, usize)>,
    /// The page's last sequence number; `None` for an empty page (the shard's current end).
    last: Option<String>,
    next: Option<String>,
}

/// What the shared loop needs of a mapping's configuration.
struct Settings<'a> {
    stream_arn: &'a str,
    max_retries: u32,
    on_failure: &'a Option<(aws_sdk_sqs::Client, String)>,
}

/// A stream the local mapping reads: Kinesis or DynamoDB Streams.
trait ShardSource {
    type Event;
    type Response;
    /// The field of the on-failure message that locates the abandoned batch.
    const BATCH_INFO: &'static str;
    fn settings(&self) -> Settings<'_>;
    async fn shards(&self) -> Result<Vec<String>, BoxError>;
    async fn iterator(&self, shard_id: &str, from: Position<'_>) -> Result<String, BoxError>;
    async fn page(&self, shard_id: &str, iterator: String) -> Result<Page<Self::Event>, BoxError>;
    /// The sequence number the function reported as its first failure, if any.
    fn failed_at(response: &Self::Response) -> Option<String>;
}

/// The event source mapping's loop, shared by both stream kinds: per shard, in order, one invocation
/// per page; after a batch item failure the shard is re-read from that sequence number, and after
/// `max_retries` consecutive failures the batch is given up to the on-failure destination and skipped.
async fn drain<S, H, Fut>(
    source: &S,
    from: &Positions,
    mut handler: H,
) -> Result<DrainReport, BoxError>
where
    S: ShardSource,
    H: FnMut(S::Event) -> Fut,
    Fut: Future<Output = Result<S::Response, BoxError>>,
{
    let settings = source.settings();
    let mut report = DrainReport::default();
    for shard_id in source.shards().await? {
        report.shards += 1;
        let start = match from.get(&shard_id) {
            Some(seq) => {
                report.positions.insert(shard_id.clone(), seq.clone());
                Position::After(seq)
            }
            None => Position::Start,
        };
        let mut iterator = Some(source.iterator(&shard_id, start).await?);
        let mut failures_here = 0u32;
        while let Some(it) = iterator.take() {
            let page = source.page(&shard_id, it).await?;
            let Some(last) = page.last else { break };
            let Some((event, delivered)) = page.event else {
                report.positions.insert(shard_id.clone(), last);
                iterator = page.next;
                continue;
            };
            report.invocations += 1;
            report.records_delivered += delivered;
            let response = handler(event).await?;
            iterator = match S::failed_at(&response) {
                None => {
                    failures_here = 0;
                    report.positions.insert(shard_id.clone(), last);
                    page.next
                }
                Some(seq) if failures_here < settings.max_retries => {
                    report.partial_failures += 1;
                    failures_here += 1;
                    Some(source.iterator(&shard_id, Position::At(&seq)).await?)
                }
                Some(seq) => {
                    report.partial_failures += 1;
                    report.batches_abandoned += 1;
                    failures_here = 0;
                    let info = batch_info(&shard_id, &seq, &last, delivered, settings.stream_arn);
                    notify(
                        settings.on_failure,
                        settings.max_retries,
                        S::BATCH_INFO,
                        info,
                    )
                    .await?;
                    let next = source.iterator(&shard_id, Position::After(&last)).await?;
                    report.positions.insert(shard_id.clone(), last);
                    Some(next)
                }
            };
        }
    }
    Ok(report)
}

impl KinesisMapping {
    /// Reads every shard from the start to its current end, invoking `handler` per batch, resuming each shard after
    /// the position a previous drain reported in `from` (empty: from the start).
    pub async fn drain<H, Fut>(&self, from: &Positions, handler: H) -> Result<DrainReport, BoxError>
    where
        H: FnMut(KinesisEvent) -> Fut,
        Fut: Future<Output = Result<KinesisEventResponse, BoxError>>,
    {
        drain(self, from, handler).await
    }
}

impl ShardSource for KinesisMapping {
    type Event = KinesisEvent;
    type Response = KinesisEventResponse;
    const BATCH_INFO: &'static str = "KinesisBatchInfo";

    fn settings(&self) -> Settings<'_> {
        Settings {
            stream_arn: &self.stream_arn,
            max_retries: self.max_retries,
            on_failure: &self.on_failure,
        }
    }

    async fn shards(&self) -> Result<Vec<String>, BoxError> {
        let out = self
            .kinesis
            .list_shards()
            .stream_name(&self.stream_name)
            .send()
            .await?;
        Ok(out
            .shards()
            .iter()
            .map(|s| s.shard_id().to_string())
            .collect())
    }

    async fn iterator(&self, shard_id: &str, from: Position<'_>) -> Result<String, BoxError> {
        let (kind, seq) = match from {
            Position::Start => (ShardIteratorType::TrimHorizon, None),
            Position::At(s) => (ShardIteratorType::AtSequenceNumber, Some(s)),
            Position::After(s) => (ShardIteratorType::AfterSequenceNumber, Some(s)),
        };
        let out = self
            .kinesis
            .get_shard_iterator()
            .stream_name(&self.stream_name)
            .shard_id(shard_id)
            .shard_iterator_type(kind)
            .set_starting_sequence_number(seq.map(str::to_string))
            .send()
            .await?;
        out.shard_iterator()
            .map(str::to_string)
            .ok_or_else(|| "GetShardIterator returned no iterator".into())
    }

    async fn page(&self, shard_id: &str, iterator: String) -> Result<Page<KinesisEvent>, BoxError> {
        let out = self
            .kinesis
            .get_records()
            .shard_iterator(iterator)
            .limit(self.batch_size as i32)
            .send()
            .await?;
        let records = out.records();
        Ok(Page {
            event: if records.is_empty() {
                None
            } else {
                Some((self.event(shard_id, records)?, records.len()))
            },
            last: records.last().map(|r| r.sequence_number().to_string()),
            next: out.next_shard_iterator().map(str::to_string),
        })
    }

    fn failed_at(response: &KinesisEventResponse) -> Option<String> {
        response
            .batch_item_failures
            .iter()
            .find_map(|f| f.item_identifier.clone())
    }
}

impl KinesisMapping {
    /// The Lambda event for a batch, field for field as Lambda sends it.
    fn event(
        &self,
        shard_id: &str,
        records: &[aws_sdk_kinesis::types::Record],
    ) -> Result<KinesisEvent, BoxError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let recs: Vec<_> = records
            .iter()
            .map(|r| {
                let arrival = r
                    .approximate_arrival_timestamp()
                    .map_or(0.0, |t| t.as_secs_f64());
                json!({
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": r.partition_key(),
                        "sequenceNumber": r.sequence_number(),
                        "data": b64.encode(r.data().as_ref()),
                        "approximateArrivalTimestamp": arrival,
                    },
                    "eventSource": "aws:kinesis",
                    "eventVersion": "1.0",
                    "eventID": format!("{shard_id}:{}", r.sequence_number()),
                    "eventName": "aws:kinesis:record",
                    "invokeIdentityArn": "arn:aws:iam::123456789012:role/local",
                    "awsRegion": "us-east-1",
                    "eventSourceARN": self.stream_arn,
                })
            })
            .collect();
        Ok(serde_json::from_value(json!({ "Records": recs }))?)
    }
}

fn batch_info(
    shard_id: &str,
    first: &str,
    last: &str,
    size: usize,
    arn: &str,
) -> serde_json::Value {
    json!({
        "shardId": shard_id,
        "startSequenceNumber": first,
        "endSequenceNumber": last,
        "batchSize": size,
        "streamArn": arn,
    })
}

/// Sends an abandoned batch's coordinates to the on-failure queue, in Lambda's message shape.
async fn notify(
    on_failure: &Option<(aws_sdk_sqs::Client, String)>,
    max_retries: u32,
    info_field: &str,
    info: serde_json::Value,
) -> Result<(), BoxError> {
    let Some((sqs, url)) = on_failure else {
        return Ok(());
    };
    let mut body = json!({
        "requestContext": { "condition": "RetryAttemptsExhausted", "approximateInvokeCount": max_retries + 1 },
    });
    body[info_field] = info;
    sqs.send_message()
        .queue_url(url)
        .message_body(body.to_string())
        .send()
        .await?;
    Ok(())
}

/// The same for a DynamoDB stream: reads every shard from the start, applies the mapping's filter the way
/// Lambda does (moto's event source mappings do not), and hands the function batches in the Lambda
/// DynamoDB event shape, re-reading from a reported `SequenceNumber` after a batch item failure.
#[derive(Debug, Clone)]
pub struct DynamoStreamMapping {
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub stream_arn: String,
    pub batch_size: usize,
    pub max_retries: u32,
    /// The `eventName`s the mapping's filter lets through (empty: all). The template filters on INSERT.
    pub event_names: Vec<String>,
    /// The on-failure destination (an SQS queue URL).
    pub on_failure: Option<(aws_sdk_sqs::Client, String)>,
}

impl DynamoStreamMapping {
    /// Reads every shard to its current end, invoking `handler` per batch of matching records, resuming each shard after
    /// the position a previous drain reported in `from` (empty: from the start).
    pub async fn drain<H, Fut>(&self, from: &Positions, handler: H) -> Result<DrainReport, BoxError>
    where
        H: FnMut(aws_lambda_events::event::dynamodb::Event) -> Fut,
        Fut: Future<Output = Result<DynamoDbEventResponse, BoxError>>,
    {
        drain(self, from, handler).await
    }
}

impl ShardSource for DynamoStreamMapping {
    type Event = aws_lambda_events::event::dynamodb::Event;
    type Response = DynamoDbEventResponse;
    const BATCH_INFO: &'static str = "DDBStreamBatchInfo";

    fn settings(&self) -> Settings<'_> {
        Settings {
            stream_arn: &self.stream_arn,
            max_retries: self.max_retries,
            on_failure: &self.on_failure,
        }
    }

    async fn shards(&self) -> Result<Vec<String>, BoxError> {
        let described = self
            .streams
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await?;
        let shards = described.stream_description().map(|d| d.shards());
        Ok(shards
            .into_iter()
            .flatten()
            .filter_map(|s| s.shard_id().map(str::to_string))
            .collect())
    }

    async fn iterator(&self, shard_id: &str, from: Position<'_>) -> Result<String, BoxError> {
        use aws_sdk_dynamodbstreams::types::ShardIteratorType as It;
        let (kind, seq) = match from {
            Position::Start => (It::TrimHorizon, None),
            Position::At(s) => (It::AtSequenceNumber, Some(s)),
            Position::After(s) => (It::AfterSequenceNumber, Some(s)),
        };
        let out = self
            .streams
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard_id)
            .shard_iterator_type(kind)
            .set_sequence_number(seq.map(str::to_string))
            .send()
            .await?;
        out.shard_iterator()
            .map(str::to_string)
            .ok_or_else(|| "GetShardIterator returned no iterator".into())
    }

    /// A page of records; the event holds the ones the mapping's filter lets through.
    async fn page(&self, _shard_id: &str, iterator: String) -> Result<Page<Self::Event>, BoxError> {
        let out = self
            .streams
            .get_records()
            .shard_iterator(iterator)
            .limit(self.batch_size.min(1000) as i32)
            .send()
            .await?;
        let all = out.records();
        let matching: Vec<_> = all
            .iter()
            .filter(|r| {
                self.event_names.is_empty()
                    || r.event_name()
                        .is_some_and(|n| self.event_names.iter().any(|x| x == n.as_str()))
            })
            .collect();
        let last = all.last().map(|r| {
            r.dynamodb()
                .and_then(|d| d.sequence_number())
                .unwrap_or_default()
                .to_string()
        });
        Ok(Page {
            event: if matching.is_empty() {
                None
            } else {
                Some((self.event(&matching)?, matching.len()))
            },
            last,
            next: out.next_shard_iterator().map(str::to_string),
        })
    }

    fn failed_at(response: &DynamoDbEventResponse) -> Option<String> {
        response
            .batch_item_failures
            .iter()
            .find_map(|f| f.item_identifier.clone())
    }
}

impl DynamoStreamMapping {
    /// The Lambda event for a batch, field for field as Lambda sends it.
    fn event(
        &self,
        records: &[&aws_sdk_dynamodbstreams::types::Record],
    ) -> Result<aws_lambda_events::event::dynamodb::Event, BoxError> {
        let recs: Vec<_> = records
            .iter()
            .map(|r| {
                let d = r.dynamodb();
                let image = |m: Option<&std::collections::HashMap<String, StreamValue>>| {
                    serde_json::Value::Object(
                        m.into_iter()
                            .flatten()
                            .map(|(k, v)| (k.clone(), attribute_json(v)))
                            .collect(),
                    )
                };
                json!({
                    "eventID": r.event_id(),
                    "eventName": r.event_name().map(|n| n.as_str()),
                    "eventVersion": r.event_version(),
                    "eventSource": "aws:dynamodb",
                    "awsRegion": r.aws_region().unwrap_or("us-east-1"),
                    "eventSourceARN": self.stream_arn,
                    "dynamodb": {
                        "ApproximateCreationDateTime": d
                            .and_then(|d| d.approximate_creation_date_time())
                            .map_or(0.0, |t| t.as_secs_f64()),
                        "Keys": image(d.and_then(|d| d.keys())),
                        "NewImage": image(d.and_then(|d| d.new_image())),
                        "SequenceNumber": d.and_then(|d| d.sequence_number()),
                        "SizeBytes": d.and_then(|d| d.size_bytes()).unwrap_or(0),
                        "StreamViewType": d.and_then(|d| d.stream_view_type()).map(|v| v.as_str()),
                    },
                })
            })
            .collect();
        Ok(serde_json::from_value(json!({ "Records": recs }))?)
    }
}

type StreamValue = aws_sdk_dynamodbstreams::types::AttributeValue;

/// An attribute value in DynamoDB's JSON form (`{"S": "…"}`), as Lambda events carry them.
fn attribute_json(v: &StreamValue) -> serde_json::Value {
    let b64 = |b: &aws_sdk_dynamodbstreams::primitives::Blob| {
        base64::engine::general_purpose::STANDARD.encode(b.as_ref())
    };
    match v {
        StreamValue::S(s) => json!({ "S": s }),
        StreamValue::N(n) => json!({ "N": n }),
        StreamValue::B(b) => json!({ "B": b64(b) }),
        StreamValue::Bool(b) => json!({ "BOOL": b }),
        StreamValue::Null(b) => json!({ "NULL": b }),
        StreamValue::Ss(v) => json!({ "SS": v }),
        StreamValue::Ns(v) => json!({ "NS": v }),
        StreamValue::Bs(v) => json!({ "BS": v.iter().map(b64).collect::<Vec<_>>() }),
        StreamValue::L(l) => json!({ "L": l.iter().map(attribute_json).collect::<Vec<_>>() }),
        StreamValue::M(m) => json!({
            "M": m.iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect::<serde_json::Map<_, _>>()
        }),
        _ => json!({ "NULL": true }),
    }
}
