-- The ClickHouse table of the clickstream example's page views:
--   clickhouse-client --multiquery < examples/clickstream/clickhouse.sql
-- or over HTTP:
--   curl 'http://127.0.0.1:18123/' --data-binary @examples/clickstream/clickhouse.sql
-- (one statement per request over HTTP: run the two separately).
--
-- A ReplacingMergeTree keyed by (user_id, ts_ms, url): a replayed page view
-- is the same row again and collapses in merges and under FINAL.
CREATE DATABASE IF NOT EXISTS analytics;
CREATE TABLE IF NOT EXISTS analytics.page_views (
    user_id String,
    url     String,
    ts      DateTime,
    ts_ms   UInt64
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (user_id, ts_ms, url);
