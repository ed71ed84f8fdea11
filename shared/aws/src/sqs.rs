//! Sending JSON messages to an SQS queue with `SendMessageBatch`: the quarantine and the feature
//! updater's on-failure destination both go through [`send_batch`].

use crate::error::store_error;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use checkout_domain::features::updater::UpdateFailure;
use checkout_domain::ports::{BatchSink, StoreError};

/// `SendMessageBatch` takes at most 10 entries and 256 KiB in total.
pub const SEND_BATCH_MAX: usize = 10;

/// Sends `(body, reason)` messages in one call, the reason as a `reason` message attribute (for filtering
/// and redrive tooling). Returns the indices the queue did not accept.
pub async fn send_batch(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: &[(String, &str)],
) -> Result<Vec<usize>, StoreError> {
    let mut entries = Vec::with_capacity(messages.len());
    for (i, (body, reason)) in messages.iter().enumerate() {
        let reason = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(*reason)
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
    let out = client
        .send_message_batch()
        .queue_url(queue_url)
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

/// The feature updater's on-failure destination: sessions it gave up on for a permanent reason.
#[derive(Debug, Clone)]
pub struct SqsFailureQueue {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
}

impl BatchSink<UpdateFailure> for SqsFailureQueue {
    fn max_batch(&self) -> usize {
        SEND_BATCH_MAX
    }

    async fn put(&self, items: &[&UpdateFailure]) -> Result<Vec<usize>, StoreError> {
        let mut messages = Vec::with_capacity(items.len());
        for f in items {
            let body = serde_json::to_string(f)
                .map_err(|e| StoreError::permanent("SendMessageBatch", e))?;
            messages.push((body, f.reason.as_str()));
        }
        send_batch(&self.client, &self.queue_url, &messages).await
    }
}
