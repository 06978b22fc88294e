-- Version 6: dead letters bounded per device (issue #18). Each ingest worker keeps the first
-- N dead letters of a device a minute in full (in dead_letters); the rest are only counted
-- here, per device, minute and reason, so one device's flood costs counters, not gigabytes.
CREATE TABLE IF NOT EXISTS dead_letters_suppressed (
    minute      timestamptz NOT NULL,   -- start of the minute (UTC) the messages arrived in
    device_id   text NOT NULL,          -- '' when the topic names no device
    pilot_id    text,
    stage       text NOT NULL,
    reason      text NOT NULL,          -- the short machine label (e.g. record_schema)
    suppressed  bigint NOT NULL,
    PRIMARY KEY (device_id, minute, stage, reason)
);
CREATE INDEX IF NOT EXISTS dead_letters_suppressed_minute ON dead_letters_suppressed (minute);
