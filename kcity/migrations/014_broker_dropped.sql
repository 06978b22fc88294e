-- Version 14: the broker's count of messages it dropped beyond a session's queue bounds
-- (Mosquitto's $SYS/broker/publish/messages/dropped, issue #18), snapshotted by each ingest
-- worker with its counters. Broker-wide and counted since the broker started: every worker
-- records the same value (take the max across workers), and it restarts at 0 with the broker.
ALTER TABLE ingest_stats ADD COLUMN IF NOT EXISTS broker_dropped bigint;
