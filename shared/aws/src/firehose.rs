//! Delivering archive rows to Kinesis Data Firehose with `PutRecordBatch`. Rows are packed as JSON lines
//! into records of at most 500 rows and 900 KB (Firehose bills a record as at least 5 KB, and a row is
//! about 0.7 KB: one row per record would pay about seven times over); the delivery stream's multi-record
//! de-aggregation (`RecordDeAggregation`, JSON) splits them again before partitioning and conversion. A
//! record Firehose refuses fails all its rows, which [`checkout_domain::delivery::deliver`] retries.

use crate::error::store_error;
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use checkout_domain::archive::ArchiveRow;
use checkout_domain::ports::{BatchSink, StoreError};

/// Rows per `PutRecordBatch` call (packed into a few records; the call takes 4 MiB).
pub const ROWS_PER_CALL: usize = 2000;

/// Firehose de-aggregates at most 500 JSON objects from one record.
pub const ROWS_PER_RECORD: usize = 500;

/// A record's payload stays under this (Firehose takes 1,000 KiB).
pub const RECORD_BYTES: usize = 900 * 1024;

/// Packs encoded rows (one JSON line each) into records; each record lists the rows it carries.
pub fn pack(lines: &[Vec<u8>]) -> Vec<(Vec<u8>, Vec<usize>)> {
    let mut out: Vec<(Vec<u8>, Vec<usize>)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        match out.last_mut() {
            Some((data, rows))
                if rows.len() < ROWS_PER_RECORD && data.len() + line.len() <= RECORD_BYTES =>
            {
                data.extend_from_slice(line);
                rows.push(i);
            }
            _ => out.push((line.clone(), vec![i])),
        }
    }
    out
}

#[derive(Debug, Clone)]
pub struct FirehoseArchive {
    pub client: aws_sdk_firehose::Client,
    pub delivery_stream: String,
}

impl BatchSink<ArchiveRow> for FirehoseArchive {
    fn max_batch(&self) -> usize {
        ROWS_PER_CALL
    }

    async fn put(&self, items: &[&ArchiveRow]) -> Result<Vec<usize>, StoreError> {
        let mut lines = Vec::with_capacity(items.len());
        for row in items {
            let mut line =
                serde_json::to_vec(row).map_err(|e| StoreError::permanent("encode", e))?;
            line.push(b'\n');
            lines.push(line);
        }
        let packed = pack(&lines);
        let mut records = Vec::with_capacity(packed.len());
        for (data, _) in &packed {
            records.push(
                Record::builder()
                    .data(Blob::new(data.clone()))
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
        // Responses are positional; a record with an error code was not taken, nor were its rows.
        Ok(out
            .request_responses()
            .iter()
            .zip(&packed)
            .filter(|(r, _)| r.error_code().is_some())
            .flat_map(|(_, (_, rows))| rows.iter().copied())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_pack_into_records_of_at_most_500_rows_and_900_kb() {
        let small: Vec<Vec<u8>> = (0..1200).map(|_| vec![b'x'; 700]).collect();
        let packed = pack(&small);
        assert_eq!(
            packed.iter().map(|(_, r)| r.len()).collect::<Vec<_>>(),
            [500, 500, 200]
        );
        assert_eq!(packed[0].0.len(), 500 * 700);
        let big: Vec<Vec<u8>> = (0..5).map(|_| vec![b'x'; 400 * 1024]).collect();
        let packed = pack(&big);
        assert_eq!(
            packed.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
            [vec![0, 1], vec![2, 3], vec![4]]
        );
        assert!(packed.iter().all(|(d, _)| d.len() <= RECORD_BYTES));
    }
}
