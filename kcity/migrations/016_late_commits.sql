-- Version 16: batches ingest committed long after it stamped their `received_at` (a batch
-- held through a database outage, retried until the database came back). The rollups and
-- the kept savings nights find what changed through `received_at` since their last horizon,
-- less a slack of minutes: such a batch fell behind the horizon and was never counted. The
-- writer notes each late batch here, in the batch's own transaction, and every refresh looks
-- back to the oldest stamp noted since its horizon (kcity/late_commits.py).
CREATE TABLE IF NOT EXISTS late_commits (
    committed_at timestamptz NOT NULL DEFAULT now(),
    oldest       timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS late_commits_committed ON late_commits (committed_at);
