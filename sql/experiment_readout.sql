-- The experiment readout from the event archive: per variant, the units and the sufficient statistics
-- (moments) of the experiment's three metrics, exactly as the evaluator tallies experiment units from
-- DynamoDB (shared/domain/src/experiment/evaluation.rs, `UnitFold`). One file for both engines: it
-- uses only SQL that DuckDB and Athena (Trino) read the same way, over the table `archive_events`
-- (sql/archive_events.sql). Parameters, in order (`?`):
--   1. experiment id
--   2. recovery: TRUE for the recovery placement's metrics (recovered cart, revenue per abandoned cart,
--      unsubscribes), FALSE for the decision API's (conversion, revenue per user, average order value)
--   3. window end, 'YYYY-MM-DD HH:MM:SS' UTC: units first exposed at or after it are excluded
--   4. now, epoch seconds: units past retention are excluded
--   5. the report's currency
-- Unit definition (features::aggregate::ExperimentUnit): a pseudonymous user's first exposure (earliest
-- time, then decision id) to the experiment; their orders at or after it, in the 30 days before it
-- (the CUPED covariate) and in the 7 days from it; whether they opted out at or after it.
-- Output: one row per (variant, status); status is `ok`, `expired`, `exposed_after_window` or
-- `multi_variant`. Moments are integer sums (exact in both engines); m0, m1, m2 are the design's
-- metrics in order, each with n, Σx, Σx², Σy, Σy², Σxy.
WITH params AS (
    SELECT
        CAST(? AS VARCHAR) AS experiment_id,
        CAST(? AS BOOLEAN) AS recovery,
        CAST(? AS TIMESTAMP) AS window_end,
        CAST(? AS BIGINT) AS now_epoch,
        CAST(? AS VARCHAR) AS currency
),
-- Firehose delivers at least once and the log redelivers: one row per event.
ev AS (
    SELECT DISTINCT
        event_id, event_type, occurred_at, user_id, expires_at, decision_id, experiment_id, variant,
        order_total_minor, order_currency, opted_out
    FROM archive_events a
    WHERE user_id IS NOT NULL
      -- Erased sessions stay in the immutable Parquet files; they are left out here (sql/erased_sessions.sql).
      AND NOT EXISTS (SELECT 1 FROM erased_sessions x WHERE x.session_id = a.session_id)
),
exposures AS (
    SELECT
        e.user_id, e.variant, e.occurred_at, e.decision_id,
        ROW_NUMBER() OVER (PARTITION BY e.user_id ORDER BY e.occurred_at, e.decision_id) AS rank_in_user
    FROM ev e CROSS JOIN params p
    WHERE e.event_type = 'decision_served' AND e.experiment_id = p.experiment_id AND e.variant IS NOT NULL
),
seen AS (
    SELECT user_id, COUNT(DISTINCT variant) AS variants_seen FROM exposures GROUP BY user_id
),
units AS (
    SELECT f.user_id, f.variant, f.occurred_at AS first_at, s.variants_seen
    FROM exposures f JOIN seen s ON s.user_id = f.user_id
    WHERE f.rank_in_user = 1
),
expiry AS (
    SELECT e.user_id, MAX(e.expires_at) AS expires_at
    FROM ev e
    WHERE e.user_id IN (SELECT user_id FROM units)
    GROUP BY e.user_id
),
opt_outs AS (
    SELECT e.user_id, MAX(e.occurred_at) AS last_at
    FROM ev e
    WHERE e.opted_out
    GROUP BY e.user_id
),
-- Per unit: orders and revenue in the report's currency, and whether another currency has some.
orders AS (
    SELECT
        u.user_id,
        SUM(CASE WHEN o.occurred_at >= u.first_at THEN 1 ELSE 0 END) AS orders_after,
        SUM(CASE WHEN o.occurred_at >= u.first_at AND o.order_currency = p.currency
                 THEN o.order_total_minor ELSE 0 END) AS revenue_after,
        SUM(CASE WHEN o.occurred_at >= u.first_at AND o.order_currency <> p.currency
                      AND o.order_total_minor <> 0 THEN 1 ELSE 0 END) AS foreign_after,
        SUM(CASE WHEN o.occurred_at < u.first_at AND o.occurred_at >= u.first_at - INTERVAL '30' DAY
                 THEN 1 ELSE 0 END) AS orders_before,
        SUM(CASE WHEN o.occurred_at < u.first_at AND o.occurred_at >= u.first_at - INTERVAL '30' DAY
                      AND o.order_currency = p.currency
                 THEN o.order_total_minor ELSE 0 END) AS revenue_before,
        SUM(CASE WHEN o.occurred_at < u.first_at AND o.occurred_at >= u.first_at - INTERVAL '30' DAY
                      AND o.order_currency <> p.currency AND o.order_total_minor <> 0
                 THEN 1 ELSE 0 END) AS foreign_before,
        SUM(CASE WHEN o.occurred_at >= u.first_at AND o.occurred_at < u.first_at + INTERVAL '7' DAY
                 THEN 1 ELSE 0 END) AS orders_in_window,
        SUM(CASE WHEN o.occurred_at >= u.first_at AND o.occurred_at < u.first_at + INTERVAL '7' DAY
                      AND o.order_currency = p.currency
                 THEN o.order_total_minor ELSE 0 END) AS revenue_in_window,
        SUM(CASE WHEN o.occurred_at >= u.first_at AND o.occurred_at < u.first_at + INTERVAL '7' DAY
                      AND o.order_currency <> p.currency AND o.order_total_minor <> 0
                 THEN 1 ELSE 0 END) AS foreign_in_window
    FROM units u
    CROSS JOIN params p
    JOIN ev o ON o.user_id = u.user_id AND o.event_type = 'order_placed'
    GROUP BY u.user_id
),
unit_values AS (
    SELECT
        u.variant,
        CASE
            WHEN x.expires_at <= p.now_epoch THEN 'expired'
            WHEN u.first_at >= p.window_end THEN 'exposed_after_window'
            WHEN u.variants_seen > 1 THEN 'multi_variant'
            ELSE 'ok'
        END AS status,
        p.recovery,
        COALESCE(o.orders_after, 0) AS orders_after,
        COALESCE(o.revenue_after, 0) AS revenue_after,
        COALESCE(o.orders_before, 0) AS orders_before,
        COALESCE(o.revenue_before, 0) AS revenue_before,
        COALESCE(o.orders_in_window, 0) AS orders_in_window,
        COALESCE(o.revenue_in_window, 0) AS revenue_in_window,
        CASE WHEN p.recovery
             THEN COALESCE(o.foreign_in_window, 0) + COALESCE(o.foreign_before, 0)
             ELSE COALESCE(o.foreign_after, 0) + COALESCE(o.foreign_before, 0)
        END = 0 AS currency_ok,
        CASE WHEN oo.last_at >= u.first_at THEN 1 ELSE 0 END AS unsubscribed_after
    FROM units u
    CROSS JOIN params p
    JOIN expiry x ON x.user_id = u.user_id
    LEFT JOIN orders o ON o.user_id = u.user_id
    LEFT JOIN opt_outs oo ON oo.user_id = u.user_id
),
-- The metrics' (x, y) per unit; m1 only where the revenue is all in the currency, m2 too except for
-- the recovery design's unsubscribe rate.
metric_values AS (
    SELECT
        variant, status, currency_ok,
        CASE WHEN recovery THEN CASE WHEN orders_in_window > 0 THEN 1 ELSE 0 END
             ELSE CASE WHEN orders_after > 0 THEN 1 ELSE 0 END END AS m0_x,
        orders_before AS m0_y,
        CASE WHEN recovery THEN revenue_in_window ELSE revenue_after END AS m1_x,
        revenue_before AS m1_y,
        CASE WHEN recovery THEN unsubscribed_after ELSE revenue_after END AS m2_x,
        CASE WHEN recovery THEN 0 ELSE orders_after END AS m2_y,
        CASE WHEN recovery THEN TRUE ELSE currency_ok END AS m2_observed
    FROM unit_values
)
SELECT
    variant,
    status,
    COUNT(*) AS units,
    SUM(CASE WHEN currency_ok THEN 0 ELSE 1 END) AS currency_mismatch,
    COUNT(*) AS m0_n,
    SUM(m0_x) AS m0_sx, SUM(CAST(m0_x * m0_x AS DECIMAL(38, 0))) AS m0_sxx,
    SUM(m0_y) AS m0_sy, SUM(CAST(m0_y AS DECIMAL(38, 0)) * m0_y) AS m0_syy, SUM(CAST(m0_x AS DECIMAL(38, 0)) * m0_y) AS m0_sxy,
    SUM(CASE WHEN currency_ok THEN 1 ELSE 0 END) AS m1_n,
    SUM(CASE WHEN currency_ok THEN m1_x ELSE 0 END) AS m1_sx,
    SUM(CASE WHEN currency_ok THEN CAST(m1_x AS DECIMAL(38, 0)) * m1_x ELSE 0 END) AS m1_sxx,
    SUM(CASE WHEN currency_ok THEN m1_y ELSE 0 END) AS m1_sy,
    SUM(CASE WHEN currency_ok THEN CAST(m1_y AS DECIMAL(38, 0)) * m1_y ELSE 0 END) AS m1_syy,
    SUM(CASE WHEN currency_ok THEN CAST(m1_x AS DECIMAL(38, 0)) * m1_y ELSE 0 END) AS m1_sxy,
    SUM(CASE WHEN m2_observed THEN 1 ELSE 0 END) AS m2_n,
    SUM(CASE WHEN m2_observed THEN m2_x ELSE 0 END) AS m2_sx,
    SUM(CASE WHEN m2_observed THEN CAST(m2_x AS DECIMAL(38, 0)) * m2_x ELSE 0 END) AS m2_sxx,
    SUM(CASE WHEN m2_observed THEN m2_y ELSE 0 END) AS m2_sy,
    SUM(CASE WHEN m2_observed THEN CAST(m2_y AS DECIMAL(38, 0)) * m2_y ELSE 0 END) AS m2_syy,
    SUM(CASE WHEN m2_observed THEN CAST(m2_x AS DECIMAL(38, 0)) * m2_y ELSE 0 END) AS m2_sxy
FROM metric_values
GROUP BY variant, status
ORDER BY variant, status
