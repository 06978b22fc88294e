-- Version 2: data quality per device and day needs, for each message, how often it arrived
-- and which day it belongs to (its earliest record, not when a catching-up device sent it).
ALTER TABLE ingest_messages
    ADD COLUMN IF NOT EXISTS copies integer NOT NULL DEFAULT 1,  -- > 1: arrived again (duplicate)
    ADD COLUMN IF NOT EXISTS first_ts timestamptz;               -- its earliest record
CREATE INDEX IF NOT EXISTS ingest_messages_first_ts ON ingest_messages (first_ts);
