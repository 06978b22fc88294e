-- Version 15: the raw-reading spans `kcity retention apply` dropped (kcity/retention.py), with
-- the evidence bundles that hold them. Rows that arrive late into such a span can no longer be
-- counted against the rows beside them: the rollups keep those buckets as they were, and
-- analyses that would read the span refuse and point to the bundles (kcity/dropped.py).
CREATE TABLE IF NOT EXISTS raw_dropped (
    table_name  text NOT NULL,
    start_ts    timestamptz NOT NULL,
    end_ts      timestamptz NOT NULL,
    bundles     text[] NOT NULL,
    dropped_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, start_ts),
    CHECK (end_ts > start_ts)
);
