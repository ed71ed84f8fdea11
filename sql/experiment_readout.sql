-- The experiment readout from the event archive: per variant, the units and the sufficient statistics
-- (moments) of the experiment's metrics, exactly as the evaluator tallies experiment units from
-- DynamoDB (shared/domain/src/experiment/evaluation.rs, `UnitFold`), overall and in the report's slices:
-- lift by cohort, by day of first exposure, and the long-run tail. One file for both engines: it uses
-- only SQL that DuckDB and Athena (Trino) read the same way, over the table `archive_events`
-- (sql/archive_events.sql). Parameters, in order (`?`):
--   1. experiment id
--   2. recovery: TRUE for the recovery placement's metrics (recovered cart, revenue per abandoned cart,
--      unsubscribes), FALSE for the decision API's (conversion, revenue per user, average order value)
--   3. window end, 'YYYY-MM-DD HH:MM:SS' UTC: units first exposed at or after it are excluded
--   4. now, epoch seconds: units past retention are excluded
--   5. the report's currency
--   6. long run: TRUE once the experiment has stopped (the `long_run` rows are computed)
--   7. the stop, 'YYYY-MM-DD HH:MM:SS' UTC (the window end when not stopped)
--   8. the tail's end, 'YYYY-MM-DD HH:MM:SS' UTC: the stop plus the tail's days
-- Unit definition (features::aggregate::ExperimentUnit): a pseudonymous user's first exposure (earliest
-- time, then decision id) to the experiment, with that decision's cohort (device, visitor type,
-- country, placement; `unknown` when not recorded); their orders at or after it, in the 30 days before
-- it (the CUPED covariate) and in the 7 days from it; whether they opted out at or after it.
-- Output: one row per (dimension, cohort, variant, status):
--   - dimension '' (cohort ''): every unit, by status: `ok`, `expired`, `exposed_after_window` or
--     `multi_variant`; m0, m1, m2 are the design's metrics in order;
--   - dimensions 'device', 'visitor', 'country', 'placement' (the first exposure's cohort) and 'day'
--     (of first exposure, YYYY-MM-DD): the `ok` units of each cohort, the same metrics;
--   - dimension 'long_run' (cohort ''): the `ok` units, m0..m3 the long-run metrics (revenue from the
--     first exposure to the stop, revenue in the tail, whether it ordered before the stop, in the tail).
-- Moments are integer sums (exact in both engines): per metric n, Σx, Σx², Σy, Σy², Σxy. `first_at_ms`
-- is the row's earliest first exposure, epoch milliseconds.
WITH params AS (
    SELECT
        CAST(? AS VARCHAR) AS experiment_id,
        CAST(? AS BOOLEAN) AS recovery,
        CAST(? AS TIMESTAMP) AS window_end,
        CAST(? AS BIGINT) AS now_epoch,
        CAST(? AS VARCHAR) AS currency,
        CAST(? AS BOOLEAN) AS long_run,
        CAST(? AS TIMESTAMP) AS stop_at,
        CAST(? AS TIMESTAMP) AS tail_end
),
-- Firehose delivers at least once and the log redelivers: one row per event.
ev AS (
    SELECT DISTINCT
        event_id, event_type, occurred_at, user_id, expires_at, decision_id, experiment_id, variant,
        order_total_minor, order_currency, opted_out, device, country, visitor_type, placement
    FROM archive_events a
    WHERE user_id IS NOT NULL
      -- Erased sessions stay in the immutable Parquet files; they are left out here (sql/erased_sessions.sql).
      AND NOT EXISTS (SELECT 1 FROM erased_sessions x WHERE x.session_id = a.session_id)
),
exposures AS (
    SELECT
        e.user_id, e.variant, e.occurred_at, e.decision_id,
        e.device, e.country, e.visitor_type, e.placement,
        ROW_NUMBER() OVER (PARTITION BY e.user_id ORDER BY e.occurred_at, e.decision_id) AS rank_in_user
    FROM ev e CROSS JOIN params p
    WHERE e.event_type = 'decision_served' AND e.experiment_id = p.experiment_id AND e.variant IS NOT NULL
),
seen AS (
    SELECT user_id, COUNT(DISTINCT variant) AS variants_seen FROM exposures GROUP BY user_id
),
units AS (
    SELECT
        f.user_id, f.variant, f.occurred_at AS first_at, s.variants_seen,
        COALESCE(f.device, 'unknown') AS device, COALESCE(f.visitor_type, 'unknown') AS visitor,
        COALESCE(f.country, 'unknown') AS country, COALESCE(f.placement, 'unknown') AS placement
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
                 THEN 1 ELSE 0 END) AS foreign_in_window,
        -- The long run: orders from the first exposure to the stop, and from the stop to the tail's end.
        SUM(CASE WHEN o.occurred_at >= u.first_at AND o.occurred_at < p.stop_at
                 THEN 1 ELSE 0 END) AS orders_to_stop,
        SUM(CASE WHEN o.occurred_at >= u.first_at AND o.occurred_at < p.stop_at
                      AND o.order_currency = p.currency
                 THEN o.order_total_minor ELSE 0 END) AS revenue_to_stop,
        SUM(CASE WHEN o.occurred_at >= u.first_at AND o.occurred_at < p.stop_at
                      AND o.order_currency <> p.currency AND o.order_total_minor <> 0
                 THEN 1 ELSE 0 END) AS foreign_to_stop,
        SUM(CASE WHEN o.occurred_at >= u.first_at AND o.occurred_at >= p.stop_at AND o.occurred_at < p.tail_end
                 THEN 1 ELSE 0 END) AS orders_in_tail,
        SUM(CASE WHEN o.occurred_at >= u.first_at AND o.occurred_at >= p.stop_at AND o.occurred_at < p.tail_end
                      AND o.order_currency = p.currency
                 THEN o.order_total_minor ELSE 0 END) AS revenue_in_tail,
        SUM(CASE WHEN o.occurred_at >= u.first_at AND o.occurred_at >= p.stop_at AND o.occurred_at < p.tail_end
                      AND o.order_currency <> p.currency AND o.order_total_minor <> 0
                 THEN 1 ELSE 0 END) AS foreign_in_tail
    FROM units u
    CROSS JOIN params p
    JOIN ev o ON o.user_id = u.user_id AND o.event_type = 'order_placed'
    GROUP BY u.user_id
),
unit_values AS (
    SELECT
        u.variant, u.first_at, u.device, u.visitor, u.country, u.placement,
        CAST(CAST(u.first_at AS DATE) AS VARCHAR) AS day,
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
        CASE WHEN oo.last_at >= u.first_at THEN 1 ELSE 0 END AS unsubscribed_after,
        COALESCE(o.revenue_to_stop, 0) AS revenue_to_stop,
        COALESCE(o.revenue_in_tail, 0) AS revenue_in_tail,
        CASE WHEN COALESCE(o.orders_to_stop, 0) > 0 THEN 1 ELSE 0 END AS ordered_to_stop,
        CASE WHEN COALESCE(o.orders_in_tail, 0) > 0 THEN 1 ELSE 0 END AS ordered_in_tail,
        COALESCE(o.foreign_to_stop, 0) + COALESCE(o.foreign_in_tail, 0) = 0 AS long_run_currency_ok
    FROM units u
    CROSS JOIN params p
    JOIN expiry x ON x.user_id = u.user_id
    LEFT JOIN orders o ON o.user_id = u.user_id
    LEFT JOIN opt_outs oo ON oo.user_id = u.user_id
),
-- The metrics' (x, y) per unit, and whether the unit is observed in each: m1 only where the revenue is
-- all in the currency, m2 too except for the recovery design's unsubscribe rate; no m3.
metric_values AS (
    SELECT
        variant, status, currency_ok, first_at, device, visitor, country, placement, day,
        CASE WHEN recovery THEN CASE WHEN orders_in_window > 0 THEN 1 ELSE 0 END
             ELSE CASE WHEN orders_after > 0 THEN 1 ELSE 0 END END AS m0_x,
        orders_before AS m0_y,
        TRUE AS m0_observed,
        CASE WHEN recovery THEN revenue_in_window ELSE revenue_after END AS m1_x,
        revenue_before AS m1_y,
        currency_ok AS m1_observed,
        CASE WHEN recovery THEN unsubscribed_after ELSE revenue_after END AS m2_x,
        CASE WHEN recovery THEN 0 ELSE orders_after END AS m2_y,
        CASE WHEN recovery THEN TRUE ELSE currency_ok END AS m2_observed,
        0 AS m3_x, 0 AS m3_y, FALSE AS m3_observed
    FROM unit_values
),
-- The long-run metrics of the `ok` units, in the same columns: revenue to the stop and in the tail
-- (where both are all in the currency), and whether the unit ordered to the stop, in the tail.
long_run_values AS (
    SELECT
        v.variant, v.status, v.currency_ok, v.first_at, v.device, v.visitor, v.country, v.placement, v.day,
        v.revenue_to_stop AS m0_x, 0 AS m0_y, v.long_run_currency_ok AS m0_observed,
        v.revenue_in_tail AS m1_x, 0 AS m1_y, v.long_run_currency_ok AS m1_observed,
        v.ordered_to_stop AS m2_x, 0 AS m2_y, TRUE AS m2_observed,
        v.ordered_in_tail AS m3_x, 0 AS m3_y, TRUE AS m3_observed
    FROM unit_values v CROSS JOIN params p
    WHERE p.long_run AND v.status = 'ok'
),
dimensions AS (
    SELECT * FROM (VALUES (''), ('device'), ('visitor'), ('country'), ('placement'), ('day')) AS d (dimension)
),
-- Every unit once overall, and each `ok` unit once per dimension, in its cohort.
sliced AS (
    SELECT
        d.dimension,
        CASE d.dimension
            WHEN 'device' THEN m.device
            WHEN 'visitor' THEN m.visitor
            WHEN 'country' THEN m.country
            WHEN 'placement' THEN m.placement
            WHEN 'day' THEN m.day
            ELSE ''
        END AS cohort,
        m.*
    FROM metric_values m CROSS JOIN dimensions d
    WHERE d.dimension = '' OR m.status = 'ok'
    UNION ALL
    SELECT 'long_run' AS dimension, '' AS cohort, l.* FROM long_run_values l
)
SELECT
    dimension,
    cohort,
    variant,
    status,
    MIN(date_diff('millisecond', TIMESTAMP '1970-01-01 00:00:00', first_at)) AS first_at_ms,
    COUNT(*) AS units,
    SUM(CASE WHEN currency_ok THEN 0 ELSE 1 END) AS currency_mismatch,
    SUM(CASE WHEN m0_observed THEN 1 ELSE 0 END) AS m0_n,
    SUM(CASE WHEN m0_observed THEN m0_x ELSE 0 END) AS m0_sx,
    SUM(CASE WHEN m0_observed THEN CAST(m0_x AS DECIMAL(38, 0)) * m0_x ELSE 0 END) AS m0_sxx,
    SUM(CASE WHEN m0_observed THEN m0_y ELSE 0 END) AS m0_sy,
    SUM(CASE WHEN m0_observed THEN CAST(m0_y AS DECIMAL(38, 0)) * m0_y ELSE 0 END) AS m0_syy,
    SUM(CASE WHEN m0_observed THEN CAST(m0_x AS DECIMAL(38, 0)) * m0_y ELSE 0 END) AS m0_sxy,
    SUM(CASE WHEN m1_observed THEN 1 ELSE 0 END) AS m1_n,
    SUM(CASE WHEN m1_observed THEN m1_x ELSE 0 END) AS m1_sx,
    SUM(CASE WHEN m1_observed THEN CAST(m1_x AS DECIMAL(38, 0)) * m1_x ELSE 0 END) AS m1_sxx,
    SUM(CASE WHEN m1_observed THEN m1_y ELSE 0 END) AS m1_sy,
    SUM(CASE WHEN m1_observed THEN CAST(m1_y AS DECIMAL(38, 0)) * m1_y ELSE 0 END) AS m1_syy,
    SUM(CASE WHEN m1_observed THEN CAST(m1_x AS DECIMAL(38, 0)) * m1_y ELSE 0 END) AS m1_sxy,
    SUM(CASE WHEN m2_observed THEN 1 ELSE 0 END) AS m2_n,
    SUM(CASE WHEN m2_observed THEN m2_x ELSE 0 END) AS m2_sx,
    SUM(CASE WHEN m2_observed THEN CAST(m2_x AS DECIMAL(38, 0)) * m2_x ELSE 0 END) AS m2_sxx,
    SUM(CASE WHEN m2_observed THEN m2_y ELSE 0 END) AS m2_sy,
    SUM(CASE WHEN m2_observed THEN CAST(m2_y AS DECIMAL(38, 0)) * m2_y ELSE 0 END) AS m2_syy,
    SUM(CASE WHEN m2_observed THEN CAST(m2_x AS DECIMAL(38, 0)) * m2_y ELSE 0 END) AS m2_sxy,
    SUM(CASE WHEN m3_observed THEN 1 ELSE 0 END) AS m3_n,
    SUM(CASE WHEN m3_observed THEN m3_x ELSE 0 END) AS m3_sx,
    SUM(CASE WHEN m3_observed THEN CAST(m3_x AS DECIMAL(38, 0)) * m3_x ELSE 0 END) AS m3_sxx,
    SUM(CASE WHEN m3_observed THEN m3_y ELSE 0 END) AS m3_sy,
    SUM(CASE WHEN m3_observed THEN CAST(m3_y AS DECIMAL(38, 0)) * m3_y ELSE 0 END) AS m3_syy,
    SUM(CASE WHEN m3_observed THEN CAST(m3_x AS DECIMAL(38, 0)) * m3_y ELSE 0 END) AS m3_sxy
FROM sliced
GROUP BY dimension, cohort, variant, status
ORDER BY dimension, cohort, variant, status
