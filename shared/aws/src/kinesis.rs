//! Producing to Kinesis with `PutRecords`: at most 500 records per call, failed records retried.

use crate::error::store_error;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use checkout_domain::ports::{BatchSink, OutRecord, StoreError};

/// `PutRecords` takes at most 500 records (and 5 MiB).
pub const PUT_RECORDS_MAX: usize = 500;

#[derive(Debug, Clone)]
pub struct KinesisProducer {
    pub client: aws_sdk_kinesis::Client,
    pub stream: String,
}

impl BatchSink<OutRecord> for KinesisProducer {
    fn max_batch(&self) -> usize {
        PUT_RECORDS_MAX
    }

    async fn put(&self, items: &[&OutRecord]) -> Result<Vec<usize>, StoreError> {
        let mut entries = Vec::with_capacity(items.len());
        for r in items {
            entries.push(
                PutRecordsRequestEntry::builder()
                    .partition_key(&r.partition_key)
                    .data(Blob::new(r.data.clone()))
                    .build()
                    .map_err(|e| StoreError::permanent("PutRecords", e))?,
            );
        }
        let out = self
            .client
            .put_records()
            .stream_name(&self.stream)
            .set_records(Some(entries))
            .send()
            .await
            .map_err(|e| store_error("PutRecords", e))?;
        // Results are positional; a record with an error code was not written.
        Ok(out
            .records()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.error_code().is_some())
            .map(|(i, _)| i)
            .collect())
    }
}
