//! Delivering archive rows to Kinesis Data Firehose with `PutRecordBatch`: one JSON line per row, at most
//! 500 records per call, the records Firehose refused retried by [`checkout_domain::delivery::deliver`].

use crate::error::store_error;
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use checkout_domain::archive::ArchiveRow;
use checkout_domain::ports::{BatchSink, StoreError};

/// `PutRecordBatch` takes at most 500 records (and 4 MiB; a row is far below 8 KiB).
pub const PUT_RECORD_BATCH_MAX: usize = 500;

#[derive(Debug, Clone)]
pub struct FirehoseArchive {
    pub client: aws_sdk_firehose::Client,
    pub delivery_stream: String,
}

impl BatchSink<ArchiveRow> for FirehoseArchive {
    fn max_batch(&self) -> usize {
        PUT_RECORD_BATCH_MAX
    }

    async fn put(&self, items: &[&ArchiveRow]) -> Result<Vec<usize>, StoreError> {
        let mut records = Vec::with_capacity(items.len());
        for row in items {
            // Newline-delimited: the JSON deserializer Firehose converts with reads one object per line.
            let mut data =
                serde_json::to_vec(row).map_err(|e| StoreError::permanent("encode", e))?;
            data.push(b'\n');
            records.push(
                Record::builder()
                    .data(Blob::new(data))
                    .build()
                    .map_err(|e| StoreError::permanent("PutRecordBatch", e))?,
            );
        }
        let out = self
            .client
            .put_record_batch()
            .delivery_stream_name(&self.delivery_stream)
            .set_records(Some(records))
            .send()
            .await
            .map_err(|e| store_error("PutRecordBatch", e))?;
        // Responses are positional; a record with an error code was not taken.
        Ok(out
            .request_responses()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.error_code().is_some())
            .map(|(i, _)| i)
            .collect())
    }
}
