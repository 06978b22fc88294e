-- Version 10 (issue #19): what the long-range dashboard queries read instead of a million
-- device-hours, kept by the same refresh as migration 007 (kcity/dashboard_rollups.py),
-- each equal to a recomputation from the hourly rollups (and so from the raw rows).

-- Streetlight hours summed over a pilot's devices that are not revoked (what the `device`
-- variable's "All" selects): a 90-day power panel reads 2,160 rows, not 1.08 million.
CREATE TABLE IF NOT EXISTS streetlight_pilot_hourly (
    pilot_id   text NOT NULL,
    hour       timestamptz NOT NULL,
    records    bigint NOT NULL,
    power_sum  double precision NOT NULL,
    dim_sum    double precision NOT NULL,
    lamp_on    bigint NOT NULL,
    vehicles   bigint,                         -- NULL when no record counted vehicles
    PRIMARY KEY (pilot_id, hour)
);

-- The devices those sums hold, as of the last refresh: a panel uses the pilot's sums only
-- when its selection is exactly this set; a change of the set rebuilds the pilot.
CREATE TABLE IF NOT EXISTS streetlight_pilot_devices (
    device_id  text PRIMARY KEY,
    pilot_id   text NOT NULL
);
CREATE INDEX IF NOT EXISTS streetlight_pilot_devices_pilot
    ON streetlight_pilot_devices (pilot_id, device_id);

-- Messages per device, channel, boot and UTC day of arrival (from ingest_messages_hourly):
-- per-device tables over 30 or 90 days read whole days here and only the partial days at
-- the range's edges from the hours.
CREATE TABLE IF NOT EXISTS ingest_messages_daily (
    device_id       text NOT NULL,
    channel         text NOT NULL,
    boot            integer NOT NULL,
    day             timestamptz NOT NULL,      -- UTC midnight
    messages        bigint NOT NULL,
    records         bigint NOT NULL,
    min_seq         bigint NOT NULL,
    max_seq         bigint NOT NULL,
    first_received  timestamptz NOT NULL,
    last_received   timestamptz NOT NULL,
    min_sent        timestamptz NOT NULL,
    max_sent        timestamptz NOT NULL,
    max_skew_s      double precision,
    PRIMARY KEY (device_id, channel, boot, day)
);
CREATE INDEX IF NOT EXISTS ingest_messages_daily_day ON ingest_messages_daily (day);
CREATE INDEX IF NOT EXISTS ingest_messages_daily_device
    ON ingest_messages_daily (device_id, day);

-- Messages per pilot (NULL: a device not in the registry) and hour of arrival: throughput
-- and totals over a pilot read one row an hour.
CREATE TABLE IF NOT EXISTS ingest_pilot_hourly (
    pilot_id  text,
    hour      timestamptz NOT NULL,
    messages  bigint NOT NULL,
    records   bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (pilot_id, hour)
);
CREATE INDEX IF NOT EXISTS ingest_pilot_hourly_hour ON ingest_pilot_hourly (hour);

-- Communication outages: more than an hour between two messages (any channel) a device
-- sent, by reception time, kept as intervals instead of a lag over every device-hour.
CREATE TABLE IF NOT EXISTS ingest_outages (
    device_id  text NOT NULL,
    start_at   timestamptz NOT NULL,           -- the last message before the silence
    end_at     timestamptz NOT NULL,           -- the first message after it
    PRIMARY KEY (device_id, end_at)
);
CREATE INDEX IF NOT EXISTS ingest_outages_end ON ingest_outages (end_at);
