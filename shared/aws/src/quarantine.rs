//! The quarantine: an SQS queue of [`QuarantineRecord`] JSON messages, with a claim check in S3 for
//! payloads too large to travel inline.

use crate::error::store_error;
use crate::sqs::{send_batch, SEND_BATCH_MAX};
use checkout_domain::ingest::QuarantineRecord;
use checkout_domain::ports::{BatchSink, StoreError};

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
        let mut records = Vec::with_capacity(items.len());
        for r in items {
            let inline = r.payload_base64.as_ref().map_or(0, String::len);
            records.push(if inline > INLINE_LIMIT {
                self.claim_check(r).await?
            } else {
                (*r).clone()
            });
        }
        let mut messages = Vec::with_capacity(records.len());
        for r in &records {
            let body = serde_json::to_string(r)
                .map_err(|e| StoreError::permanent("SendMessageBatch", e))?;
            messages.push((body, r.reason.as_str()));
        }
        send_batch(&self.sqs, &self.queue_url, &messages).await
    }
}
