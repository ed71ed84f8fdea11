//! Sending JSON messages to an SQS queue with `SendMessageBatch`: the quarantine, the feature
//! updater's on-failure destination and the recovery sweep's outbound FIFO queue all go through
//! [`send_batch`].

use crate::error::store_error;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use checkout_domain::features::updater::UpdateFailure;
use checkout_domain::ports::{BatchSink, StoreError};
use checkout_domain::recovery::sweep::OutboundMessage;

/// `SendMessageBatch` takes at most 10 entries and 256 KiB in total.
pub const SEND_BATCH_MAX: usize = 10;

/// One message: its JSON body, a `reason` message attribute (for filtering and redrive tooling), and
/// for a FIFO queue its message group and de-duplication id.
pub struct Outgoing<'a> {
    pub body: String,
    pub reason: &'a str,
    pub fifo: Option<(&'a str, &'a str)>,
}

/// Sends messages in one call. Returns the indices the queue did not accept.
pub async fn send_batch(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: &[Outgoing<'_>],
) -> Result<Vec<usize>, StoreError> {
    let mut entries = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let reason = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(m.reason)
            .build()
            .map_err(|e| StoreError::permanent("SendMessageBatch", e))?;
        let entry = SendMessageBatchRequestEntry::builder()
            .id(i.to_string())
            .message_body(&m.body)
            .message_attributes("reason", reason)
            .set_message_group_id(m.fifo.map(|(group, _)| group.to_string()))
            .set_message_deduplication_id(m.fifo.map(|(_, dedup)| dedup.to_string()))
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
            messages.push(Outgoing {
                body: json(f)?,
                reason: f.reason.as_str(),
                fifo: None,
            });
        }
        send_batch(&self.client, &self.queue_url, &messages).await
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::permanent("SendMessageBatch", e))
}

/// The recovery sweep's outbound destination: a FIFO queue the merchant's messaging service consumes.
/// The message group is the user's pseudonym (their messages stay in order); the de-duplication id is
/// the message's idempotency key, so a resend within SQS's 5-minute window is dropped by the queue.
#[derive(Debug, Clone)]
pub struct SqsOutbound {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
}

impl BatchSink<OutboundMessage> for SqsOutbound {
    fn max_batch(&self) -> usize {
        SEND_BATCH_MAX
    }

    async fn put(&self, items: &[&OutboundMessage]) -> Result<Vec<usize>, StoreError> {
        let mut messages = Vec::with_capacity(items.len());
        for m in items {
            messages.push(Outgoing {
                body: json(m)?,
                reason: m.action.as_str(),
                fifo: Some((m.user.as_str(), m.idempotency_key.as_str())),
            });
        }
        send_batch(&self.client, &self.queue_url, &messages).await
    }
}
