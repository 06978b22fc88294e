-- Version 7: rollups kept by an incremental job (kcity/rollups.py), because the Apache-2
-- edition has no continuous aggregates. A refresh recomputes every (device, bucket) that
-- rows received since the last refresh touch, from the raw rows, so late data, duplicates
-- and conflicts land in their own bucket and a bucket always equals a full recomputation.

-- How far each source table has been rolled up: rows received at or after `horizon` are
-- looked at again by the next refresh.
CREATE TABLE IF NOT EXISTS rollup_horizons (
    source   text PRIMARY KEY,
    horizon  timestamptz NOT NULL
);

-- The time zone each device's local days were cut in; a device missing here, or whose
-- pilot moved zone, is rebuilt whole (new devices, re-applied pilots, first refresh).
CREATE TABLE IF NOT EXISTS rollup_devices (
    device_id  text PRIMARY KEY,
    timezone   text NOT NULL
);

-- Data quality per device and local day of its pilot (DESIGN §6). `expected` is not kept:
-- it follows from the registry and the pilot's interval at read time (drones: from the
-- flights' spans kept here). The skew percentiles are exact (percentile_cont of the day's
-- rows); `skew_bins`/`skew_counts` are the day's sketch (analytics/skew_sketch.py), from
-- which percentiles over many days are read.
CREATE TABLE IF NOT EXISTS quality_device_day (
    device_id      text NOT NULL,
    day            date NOT NULL,
    records        integer NOT NULL DEFAULT 0,
    skew_p50_s     double precision,
    skew_p95_s     double precision,
    skew_bins      smallint[] NOT NULL DEFAULT '{}',
    skew_counts    integer[] NOT NULL DEFAULT '{}',
    flight_span_s  numeric,                 -- drones: sum of the flights' spans [s]
    flights        integer,
    seq_gaps       bigint NOT NULL DEFAULT 0,
    duplicates     bigint NOT NULL DEFAULT 0,
    seq_reuse      bigint NOT NULL DEFAULT 0,
    dead_letters   integer NOT NULL DEFAULT 0,
    conflicts      integer NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, day)
);
CREATE INDEX IF NOT EXISTS quality_device_day_day ON quality_device_day (day);

-- Streetlight panels over long ranges (dashboards/streetlight.py) read hours, not 5-minute
-- rows: averages are sums over `records`, burning hours are `lamp_on` records × interval.
CREATE TABLE IF NOT EXISTS streetlight_hourly (
    device_id  text NOT NULL,
    hour       timestamptz NOT NULL,
    records    integer NOT NULL,
    power_sum  double precision NOT NULL,
    dim_sum    double precision NOT NULL,
    lamp_on    integer NOT NULL,              -- records with the lamp lit
    vehicles   bigint,                        -- NULL when no record counted vehicles
    PRIMARY KEY (device_id, hour)
);
CREATE INDEX IF NOT EXISTS streetlight_hourly_hour ON streetlight_hourly (hour);

-- Ingest panels and annotations over long ranges read messages per device, channel, boot
-- and hour of arrival (`received_at`), not one row per message.
CREATE TABLE IF NOT EXISTS ingest_messages_hourly (
    device_id       text NOT NULL,
    channel         text NOT NULL,
    boot            integer NOT NULL,
    hour            timestamptz NOT NULL,
    messages        integer NOT NULL,
    records         bigint NOT NULL,
    min_seq         bigint NOT NULL,
    max_seq         bigint NOT NULL,
    first_received  timestamptz NOT NULL,
    last_received   timestamptz NOT NULL,
    min_sent        timestamptz NOT NULL,   -- coalesce(sent_at, received_at)
    max_sent        timestamptz NOT NULL,
    max_skew_s      double precision,       -- received_at − sent_at
    PRIMARY KEY (device_id, channel, boot, hour)
);
CREATE INDEX IF NOT EXISTS ingest_messages_hourly_hour ON ingest_messages_hourly (hour);

-- Finding what arrived since the horizon without scanning the readings: BRIN on
-- `received_at` (rows are appended roughly in arrival order, late data too), nearly free
-- for ingest to maintain.
CREATE INDEX IF NOT EXISTS streetlight_readings_received
    ON streetlight_readings USING brin (received_at) WITH (pages_per_range = 32, autosummarize = on);
CREATE INDEX IF NOT EXISTS drone_readings_received
    ON drone_readings USING brin (received_at) WITH (pages_per_range = 32, autosummarize = on);
CREATE INDEX IF NOT EXISTS generic_readings_received
    ON generic_readings USING brin (received_at) WITH (pages_per_range = 32, autosummarize = on);

-- A duplicate or reused message number updates its `ingest_messages` row without a new
-- `received_at`: stamp the update, so the refresh sees the day it changes. Only updates fire
-- (rare: re-sends); inserts keep ingest's path untouched.
ALTER TABLE ingest_messages ADD COLUMN IF NOT EXISTS changed_at timestamptz;
CREATE INDEX IF NOT EXISTS ingest_messages_changed
    ON ingest_messages (changed_at) WHERE changed_at IS NOT NULL;
CREATE OR REPLACE FUNCTION kcity_stamp_message_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.changed_at := clock_timestamp();
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS ingest_messages_changed ON ingest_messages;
CREATE TRIGGER ingest_messages_changed BEFORE UPDATE ON ingest_messages
    FOR EACH ROW EXECUTE FUNCTION kcity_stamp_message_change();

-- Recomputing one device-day reads its messages and dead letters by the day they count on.
CREATE INDEX IF NOT EXISTS ingest_messages_device_day
    ON ingest_messages (device_id, (coalesce(first_ts, sent_at, received_at)));
CREATE INDEX IF NOT EXISTS dead_letters_device_day
    ON dead_letters (device_id, (coalesce(record_ts, received_at)));

-- No JIT for this database's sessions: dashboard, alert and rollup queries are short, but
-- their plans carry the cost of the raw branch a long-range panel skips, and compiling them
-- took seconds (the portfolio query: 14.7 s of JIT for 2.3 s of execution at 500
-- luminaires × 90 days). Only the database's owner may set it; elsewhere it stays as it is.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET jit = off', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'jit left as it is: not the owner of the database';
END $$;

-- Completeness of a pilot's local day from the per-device-day rows (a silent device in
-- service counts at 0 %), for dashboards and the portfolio: "completeness yesterday" is
-- `WHERE day = (now() AT TIME ZONE timezone)::date - 1`. Drones expect records over their
-- flights' spans only. Fresh as of the last refresh (`kcity rollups refresh`, or the
-- running stack's job).
CREATE OR REPLACE VIEW pilot_day_quality AS
WITH days AS (
    SELECT p.id AS pilot_id, p.timezone, p.kind,
           coalesce(p.definition->'streetlight'->>'record_interval_s',
                    p.definition->'drone'->>'record_interval_s')::float8 AS interval_s,
           d.id AS device_id, q.day, q.records, q.flight_span_s, q.flights,
           q.seq_gaps, q.duplicates, q.dead_letters,
           (d.commissioned_on IS NULL OR q.day >= d.commissioned_on)
             AND (d.decommissioned_on IS NULL OR q.day < d.decommissioned_on) AS in_service
    FROM pilots p
    JOIN devices d ON d.pilot_id = p.id
    JOIN quality_device_day q ON q.device_id = d.id
    UNION ALL  -- in-service days without a row, from the pilot's first day to today: silent
    SELECT p.id, p.timezone, p.kind,
           coalesce(p.definition->'streetlight'->>'record_interval_s',
                    p.definition->'drone'->>'record_interval_s')::float8,
           d.id, g.day::date, 0, NULL, NULL, 0, 0, 0, true
    FROM pilots p
    JOIN devices d ON d.pilot_id = p.id
    CROSS JOIN LATERAL (SELECT min(q.day) AS first_day FROM quality_device_day q
                        JOIN devices o ON o.id = q.device_id WHERE o.pilot_id = p.id) s
    CROSS JOIN LATERAL generate_series(s.first_day, (now() AT TIME ZONE p.timezone)::date,
                                       interval '1 day') g(day)
    WHERE (d.commissioned_on IS NULL OR g.day >= d.commissioned_on)
      AND (d.decommissioned_on IS NULL OR g.day < d.decommissioned_on)
      AND NOT EXISTS (SELECT 1 FROM quality_device_day q
                      WHERE q.device_id = d.id AND q.day = g.day::date)
), expected AS (
    SELECT *,
           CASE WHEN NOT in_service THEN 0.0
                WHEN kind = 'hybrid_drone'
                THEN coalesce(flight_span_s / interval_s + flights, 0.0)
                ELSE extract(epoch FROM ((day + 1)::timestamp AT TIME ZONE timezone)
                                      - (day::timestamp AT TIME ZONE timezone)) / interval_s
           END AS expected
    FROM days
)
SELECT pilot_id, day,
       count(DISTINCT device_id) FILTER (WHERE in_service) AS devices,
       count(DISTINCT device_id) FILTER (WHERE in_service AND records = 0) AS silent_devices,
       sum(records)::bigint AS records,
       round(sum(expected)::numeric, 1) AS expected_records,
       round((100.0 * sum(least(records::float8, expected)) / nullif(sum(expected), 0))::numeric,
             2) AS completeness_pct,
       sum(seq_gaps)::bigint AS seq_gaps,
       sum(duplicates)::bigint AS duplicates,
       sum(dead_letters)::bigint AS dead_letters
FROM expected
GROUP BY pilot_id, day;
