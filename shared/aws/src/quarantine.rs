//! The quarantine: an SQS queue of [`QuarantineRecord`] JSON messages, with a claim check in S3 for
//! payloads too large to travel inline.

use crate::error::store_error;
use crate::s3::S3ObjectStore;
use crate::sqs::{send_batch, SEND_BATCH_MAX};
use checkout_domain::ingest::QuarantineRecord;
use checkout_domain::ports::{BatchSink, ObjectStore, StoreError};

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
            messages.push(crate::sqs::Outgoing {
                body,
                reason: r.reason.as_str(),
                fifo: None,
            });
        }
        send_batch(&self.sqs, &self.queue_url, &messages).await
    }
}

/// What [`SqsQuarantine::erase_matching`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QuarantineErasure {
    pub messages_scanned: usize,
    pub messages_deleted: usize,
    pub objects_scanned: usize,
    pub objects_deleted: usize,
    pub requests: usize,
}

/// Whether `payload` carries any of `needles` (each as it appears in JSON: a quoted string).
pub fn carries(payload: &[u8], needles: &[String]) -> bool {
    needles.iter().any(|n| {
        let quoted = format!("\"{n}\"");
        payload
            .windows(quoted.len())
            .any(|w| w == quoted.as_bytes())
    })
}

impl SqsQuarantine {
    /// Erasure: deletes every quarantined message whose payload (inline, or claim-checked in S3)
    /// carries one of `needles`, and every claim-checked object that does. Quarantined payloads are the
    /// raw records, before pseudonymization, so the raw id is what they carry. Messages that do not
    /// match are made visible again at once. The queue is read until a receive brings nothing new.
    pub async fn erase_matching(
        &self,
        needles: &[String],
    ) -> Result<QuarantineErasure, StoreError> {
        let mut out = QuarantineErasure::default();
        let mut seen = std::collections::HashSet::new();
        let mut keep: Vec<String> = Vec::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(120)
                .wait_time_seconds(0)
                .send()
                .await
                .map_err(|e| store_error("ReceiveMessage", e))?;
            out.requests += 1;
            let messages = received.messages();
            let mut fresh = 0;
            for m in messages {
                let (Some(id), Some(handle)) = (m.message_id(), m.receipt_handle()) else {
                    continue;
                };
                if !seen.insert(id.to_string()) {
                    keep.push(handle.to_string());
                    continue;
                }
                fresh += 1;
                out.messages_scanned += 1;
                let record: Option<QuarantineRecord> =
                    m.body().and_then(|b| serde_json::from_str(b).ok());
                let inline = record.as_ref().and_then(QuarantineRecord::payload);
                let body_matches = m.body().is_some_and(|b| carries(b.as_bytes(), needles));
                if body_matches || inline.as_deref().is_some_and(|p| carries(p, needles)) {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .map_err(|e| store_error("DeleteMessage", e))?;
                    out.requests += 1;
                    out.messages_deleted += 1;
                } else {
                    keep.push(handle.to_string());
                }
            }
            if fresh == 0 {
                break;
            }
        }
        for handle in keep {
            self.sqs
                .change_message_visibility()
                .queue_url(&self.queue_url)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await
                .map_err(|e| store_error("ChangeMessageVisibility", e))?;
            out.requests += 1;
        }
        // Claim-checked payloads.
        let payloads = S3ObjectStore {
            client: self.s3.clone(),
            bucket: self.bucket.clone(),
        };
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix("quarantine/")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| store_error("ListObjectsV2", e))?;
            out.requests += 1;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                let object = payloads.get(key).await?;
                out.requests += 1;
                // Gone meanwhile (the 14-day expiry): nothing to erase.
                let Some(object) = object else { continue };
                out.objects_scanned += 1;
                if carries(&object.bytes, needles) {
                    self.s3
                        .delete_object()
                        .bucket(&self.bucket)
                        .key(key)
                        .send()
                        .await
                        .map_err(|e| store_error("DeleteObject", e))?;
                    out.requests += 1;
                    out.objects_deleted += 1;
                }
            }
        }
        Ok(out)
    }
}
