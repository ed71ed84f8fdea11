-- The event archive's columns (shared/domain/src/archive.rs, `ArchiveRow`), as the local archiver
-- writes them to Parquet and template.yaml's `ArchiveEventsTable` declares them to Glue; a check in
-- `make test` (infra/check_archive_schema.py) keeps the three equal. Partitioned by `dt` and `hour`
-- (event time, UTC) in the object path, Hive style: events/dt=YYYY-MM-DD/hour=HH/.
CREATE TABLE archive_events (
    event_id VARCHAR,
    event_type VARCHAR,
    schema_version INTEGER,
    occurred_at TIMESTAMP,
    session_id VARCHAR,
    user_id VARCHAR,
    expires_at BIGINT,
    decision_id VARCHAR,
    experiment_id VARCHAR,
    variant VARCHAR,
    order_id VARCHAR,
    order_total_minor BIGINT,
    order_currency VARCHAR,
    opted_out BOOLEAN,
    context VARCHAR,
    data VARCHAR,
    product_id VARCHAR,
    page_path VARCHAR,
    order_lines VARCHAR[],
    -- decision_served: the decision's cohort (features::aggregate::Cohort), NULL when not recorded.
    device VARCHAR,
    country VARCHAR,
    visitor_type VARCHAR,
    placement VARCHAR
);
