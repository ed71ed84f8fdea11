-- The sessions an erasure took out (`checkout-ai erase`): one JSON line `{"session_id": "…"}` per session
-- under erasures/ in the archive bucket, declared to Glue as template.yaml's `ErasedSessionsTable`. The
-- archive's Parquet files are immutable, so every query over `archive_events` leaves these sessions out
-- (sql/experiment_readout.sql, sql/item_features.sql, sql/page_features.sql); the local archive drops
-- them itself (its stream's REMOVE records), and reads this table from <archive>/erasures/*.json.
CREATE TABLE erased_sessions (
    session_id VARCHAR
);
