//! The quarantine: an SQS queue of [`QuarantineRecord`] JSON messages, with a claim check in S3 for
//! payloads too large to travel inline.

use crate::error::store_error;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use checkout_domain::ingest::QuarantineRecord;
use checkout_domain::ports::{BatchSink, StoreError};

/// `SendMessageBatch` takes at most 10 entries and 256 KiB in total.
pub const SEND_BATCH_MAX: usize = 10;
/// Inline payloads up to this many encoded bytes; larger ones go to S3 (ten of them still fit a batch).
pub const INLINE_LIMIT: usize = 24 * 1024;

#[derive(Debug, Clone)]
pub struct SqsQuarantine {
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub queue_url: String,
    /// Bucket for payloads over [`INLINE_LIMIT`], under `quarantine/`.
    pub bucket: String,
}

impl SqsQuarantine {
    /// Moves an oversize payload to S3 and points the record at it.
    async fn claim_check(&self, record: &QuarantineRecord) -> Result<QuarantineRecord, StoreError> {
        let mut r = record.clone();
        let Some(payload) = r.payload() else {
            return Ok(r);
        };
        let key = format!(
            "quarantine/{}/{}.bin",
            r.quarantined_at.format("%Y/%m/%d"),
            r.sequence_number
        );
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(payload.into())
            .send()
            .await
            .map_err(|e| store_error("PutObject", e))?;
        r.payload_base64 = None;
        r.payload_ref = Some(format!("s3://{}/{key}", self.bucket));
        Ok(r)
    }
}

impl BatchSink<QuarantineRecord> for SqsQuarantine {
    fn max_batch(&self) -> usize {
        SEND_BATCH_MAX
    }

    async fn put(&self, items: &[&QuarantineRecord]) -> Result<Vec<usize>, StoreError> {
        let mut entries = Vec::with_capacity(items.len());
        for (i, r) in items.iter().enumerate() {
            let inline = r.payload_base64.as_ref().map_or(0, String::len);
            let record = if inline > INLINE_LIMIT {
                self.claim_check(r).await?
            } else {
                (*r).clone()
            };
            let body = serde_json::to_string(&record)
                .map_err(|e| StoreError::permanent("SendMessageBatch", e))?;
            let reason = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(&record.reason)
                .build()
                .map_err(|e| StoreError::permanent("SendMessageBatch", e))?;
            let entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(body)
                .message_attributes("reason", reason)
                .build()
                .map_err(|e| StoreError::permanent("SendMessageBatch", e))?;
            entries.push(entry);
        }
        let out = self
            .sqs
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| store_error("SendMessageBatch", e))?;
        Ok(out
            .failed()
            .iter()
            .filter_map(|f| f.id().parse::<usize>().ok())
            .collect())
    }
}
