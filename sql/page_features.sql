-- Page features from the event archive, exactly as the feature updater's folds make them
-- (shared/domain/src/features/session.rs, `page_contributions`; aggregate.rs, `PageFeatures`): per
-- page, its views, the sessions that viewed it (unique views), entrances, bounces (sessions of a single
-- page view, on it), exits, the last view and the latest expiry of its views; and its value, per
-- currency: the revenue of the orders each session placed at or after its first view of the page. One
-- file for DuckDB and Athena (Trino), over the table `archive_events` (sql/archive_events.sql).
-- Parameter (`?`): now, epoch seconds; events past retention at it are left out.
-- Page views are page views and product views (`page_path`), ordered by time, then event id.
-- Output: `row_kind` 'page' (the counters; `currency`, `amount` NULL) or 'value' (one currency's
-- amount, when it is not zero). `last_event_at` is the timestamp as text.
WITH params AS (
    SELECT CAST(? AS BIGINT) AS now_epoch
),
-- Firehose delivers at least once and the log redelivers: one row per event.
ev AS (
    SELECT DISTINCT
        a.event_id, a.event_type, a.occurred_at, a.session_id, a.expires_at, a.page_path,
        a.order_total_minor, a.order_currency
    FROM archive_events a CROSS JOIN params p
    WHERE a.expires_at > p.now_epoch
      -- Erased sessions stay in the immutable Parquet files; they are left out here (sql/erased_sessions.sql).
      AND NOT EXISTS (SELECT 1 FROM erased_sessions x WHERE x.session_id = a.session_id)
      AND (a.page_path IS NOT NULL OR a.event_type = 'order_placed')
),
page_views AS (
    SELECT
        session_id, page_path, occurred_at, expires_at,
        ROW_NUMBER() OVER (PARTITION BY session_id ORDER BY occurred_at, event_id) AS nth,
        COUNT(*) OVER (PARTITION BY session_id) AS session_views
    FROM ev
    WHERE page_path IS NOT NULL
),
visits AS (
    SELECT
        session_id, page_path,
        COUNT(*) AS views,
        MIN(occurred_at) AS first_at, MAX(occurred_at) AS last_at, MAX(expires_at) AS expires_at,
        MAX(CASE WHEN nth = 1 THEN 1 ELSE 0 END) AS entrances,
        MAX(CASE WHEN nth = 1 AND session_views = 1 THEN 1 ELSE 0 END) AS bounces,
        MAX(CASE WHEN nth = session_views THEN 1 ELSE 0 END) AS exits
    FROM page_views
    GROUP BY session_id, page_path
),
pages AS (
    SELECT
        page_path,
        SUM(views) AS views, COUNT(*) AS unique_views,
        SUM(entrances) AS entrances, SUM(bounces) AS bounces, SUM(exits) AS exits,
        MAX(last_at) AS last_at, MAX(expires_at) AS expires_at
    FROM visits
    GROUP BY page_path
),
page_value AS (
    SELECT v.page_path, o.order_currency AS currency, SUM(o.order_total_minor) AS amount
    FROM visits v
    JOIN ev o
      ON o.session_id = v.session_id AND o.event_type = 'order_placed' AND o.occurred_at >= v.first_at
    GROUP BY v.page_path, o.order_currency
)
SELECT
    'page' AS row_kind, page_path, CAST(NULL AS VARCHAR) AS currency, CAST(NULL AS BIGINT) AS amount,
    views, unique_views, entrances, bounces, exits,
    CAST(last_at AS VARCHAR) AS last_event_at, expires_at
FROM pages
UNION ALL
SELECT
    'value' AS row_kind, page_path, currency, amount,
    0 AS views, 0 AS unique_views, 0 AS entrances, 0 AS bounces, 0 AS exits,
    CAST(NULL AS VARCHAR) AS last_event_at, CAST(NULL AS BIGINT) AS expires_at
FROM page_value
WHERE amount <> 0
ORDER BY page_path, row_kind, currency
