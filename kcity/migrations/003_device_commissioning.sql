-- Version 3: a registered device is expected to report from its commissioning to its
-- decommissioning date (both optional, local dates of the pilot). Provisioning time is not
-- commissioning: pilots backfill history. Issue #20's migration adds the same columns with
-- IF NOT EXISTS, so both orders work.
ALTER TABLE devices
    ADD COLUMN IF NOT EXISTS commissioned_on date,
    ADD COLUMN IF NOT EXISTS decommissioned_on date;

-- A message number `(boot, seq)` that arrives again with other content is not a duplicate:
-- `digest` fingerprints the first content stored, `reuses` counts arrivals that differ.
ALTER TABLE ingest_messages
    ADD COLUMN IF NOT EXISTS digest bytea,
    ADD COLUMN IF NOT EXISTS reuses integer NOT NULL DEFAULT 0;

-- The time of the record a dead letter is about, where there is one (a `conflict`): data
-- quality counts it on that day, not on the day a catching-up device resent it.
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS record_ts timestamptz;
