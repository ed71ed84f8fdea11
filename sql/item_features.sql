-- Item (product) features from the event archive, exactly as the feature updater's folds make them
-- (shared/domain/src/features/session.rs, `ItemTally`; aggregate.rs, `ItemFeatures`): per product, its
-- views, cart adds, purchases (order lines), units, the sessions that touched it, the last event touching
-- it and the latest expiry of those events; and its top 10 co-viewed and co-purchased products. One file
-- for DuckDB and Athena (Trino), over the table `archive_events` (sql/archive_events.sql).
-- Parameter (`?`): now, epoch seconds; events past retention at it are left out.
-- Co-views: products whose first views in a session are within 2 places of each other in the session's
-- order of first views (`CO_VIEW_WINDOW`); co-purchases: products bought in the same session. A session
-- of more than 40 distinct products (`MAX_COOCCURRENCE_ITEMS`) adds no pair of that kind. Events are
-- ordered by time, then event id.
-- Output: `row_kind` 'item' (the counters; `other_id`, `place` NULL) or 'co_viewed' / 'co_purchased'
-- (a partner, its sessions in `sessions` and its place in the top 10, 1 first: most sessions, then
-- product id). `last_event_at` is the timestamp as text.
WITH params AS (
    SELECT CAST(? AS BIGINT) AS now_epoch
),
-- Firehose delivers at least once and the log redelivers: one row per event.
ev AS (
    SELECT DISTINCT
        a.event_id, a.event_type, a.occurred_at, a.session_id, a.expires_at, a.product_id, a.order_lines
    FROM archive_events a CROSS JOIN params p
    WHERE a.expires_at > p.now_epoch
      -- Erased sessions stay in the immutable Parquet files; they are left out here (sql/erased_sessions.sql).
      AND NOT EXISTS (SELECT 1 FROM erased_sessions x WHERE x.session_id = a.session_id)
      AND a.event_type IN ('product_viewed', 'cart_item_added', 'order_placed')
),
touches AS (
    SELECT
        session_id, event_id, occurred_at, expires_at, product_id,
        CASE WHEN event_type = 'product_viewed' THEN 1 ELSE 0 END AS views,
        CASE WHEN event_type = 'cart_item_added' THEN 1 ELSE 0 END AS cart_adds,
        0 AS purchases,
        CAST(0 AS BIGINT) AS units
    FROM ev
    WHERE event_type IN ('product_viewed', 'cart_item_added')
    UNION ALL
    SELECT
        e.session_id, e.event_id, e.occurred_at, e.expires_at,
        substr(l.line, strpos(l.line, '|') + 1) AS product_id,
        0, 0, 1,
        CAST(substr(l.line, 1, strpos(l.line, '|') - 1) AS BIGINT)
    FROM ev e CROSS JOIN UNNEST(e.order_lines) AS l (line)
    WHERE e.event_type = 'order_placed'
),
per_session AS (
    SELECT
        product_id, session_id,
        SUM(views) AS views, SUM(cart_adds) AS cart_adds, SUM(purchases) AS purchases, SUM(units) AS units,
        MAX(occurred_at) AS last_at, MAX(expires_at) AS expires_at
    FROM touches
    GROUP BY product_id, session_id
),
items AS (
    SELECT
        product_id,
        SUM(views) AS views, SUM(cart_adds) AS cart_adds, SUM(purchases) AS purchases, SUM(units) AS units,
        COUNT(*) AS sessions, MAX(last_at) AS last_at, MAX(expires_at) AS expires_at
    FROM per_session
    GROUP BY product_id
),
views_in_order AS (
    SELECT
        session_id, product_id, occurred_at, event_id,
        ROW_NUMBER() OVER (PARTITION BY session_id, product_id ORDER BY occurred_at, event_id) AS nth
    FROM ev
    WHERE event_type = 'product_viewed'
),
first_views AS (
    SELECT
        session_id, product_id,
        ROW_NUMBER() OVER (PARTITION BY session_id ORDER BY occurred_at, event_id) AS place,
        COUNT(*) OVER (PARTITION BY session_id) AS viewed
    FROM views_in_order
    WHERE nth = 1
),
co_viewed AS (
    SELECT a.product_id, b.product_id AS other_id, COUNT(*) AS sessions
    FROM first_views a
    JOIN first_views b
      ON b.session_id = a.session_id AND b.product_id <> a.product_id
     AND b.place BETWEEN a.place - 2 AND a.place + 2
    WHERE a.viewed <= 40
    GROUP BY a.product_id, b.product_id
),
bought AS (
    SELECT session_id, product_id, COUNT(*) OVER (PARTITION BY session_id) AS products
    FROM per_session
    WHERE purchases > 0
),
co_purchased AS (
    SELECT a.product_id, b.product_id AS other_id, COUNT(*) AS sessions
    FROM bought a
    JOIN bought b ON b.session_id = a.session_id AND b.product_id <> a.product_id
    WHERE a.products <= 40
    GROUP BY a.product_id, b.product_id
),
pairs AS (
    SELECT 'co_viewed' AS kind, product_id, other_id, sessions FROM co_viewed
    UNION ALL
    SELECT 'co_purchased' AS kind, product_id, other_id, sessions FROM co_purchased
),
ranked AS (
    SELECT
        kind, product_id, other_id, sessions,
        ROW_NUMBER() OVER (PARTITION BY kind, product_id ORDER BY sessions DESC, other_id) AS place
    FROM pairs
)
SELECT
    'item' AS row_kind, product_id, CAST(NULL AS VARCHAR) AS other_id,
    views, cart_adds, purchases, units, sessions,
    CAST(last_at AS VARCHAR) AS last_event_at, expires_at, CAST(NULL AS BIGINT) AS place
FROM items
UNION ALL
SELECT
    kind AS row_kind, product_id, other_id,
    0 AS views, 0 AS cart_adds, 0 AS purchases, CAST(0 AS BIGINT) AS units, sessions,
    CAST(NULL AS VARCHAR) AS last_event_at, CAST(NULL AS BIGINT) AS expires_at, place
FROM ranked
WHERE place <= 10
ORDER BY product_id, row_kind, place
