"""The ingest health dashboard: is field data arriving, and what is being refused or lost.

Throughput comes from ``ingest_messages`` (one row per accepted message, indexed by
``received_at``); the workers' counters come from ``ingest_stats``, which holds cumulative
counter snapshots per worker, so the panels show their increase per interval (a drop means
the worker restarted and its counter began again from zero).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash

from dashboards.panels import new_dashboard, pilot_variable, stat, table, timeseries

UID = "kcity-ingest"
TITLE = "K-City ingest health"

COUNTERS = ("received", "stored", "duplicates", "dead_lettered", "seq_gaps")

THROUGHPUT_SQL = """
    SELECT $__timeGroupAlias(received_at, $__interval),
           count(*) / ($__interval_ms / 1000.0) AS "messages/s",
           sum(records) / ($__interval_ms / 1000.0) AS "records/s"
    FROM ingest_messages
    WHERE $__timeFilter(received_at)
    GROUP BY 1
    ORDER BY 1
"""


def _increase(counter: str) -> str:
    """The increase of a cumulative counter since the worker's previous snapshot."""
    prev = f"lag({counter}) OVER w"
    return (
        f"CASE WHEN {prev} IS NULL THEN 0 WHEN {counter} >= {prev} "
        f"THEN {counter} - {prev} ELSE {counter} END"
    )


COUNTERS_SQL = f"""
    SELECT time_bucket('$__interval'::interval, ts) AS time,
           {", ".join(f'sum({c}) AS "{c.replace("_", " ")}"' for c in COUNTERS if c != "received")}
    FROM (
      SELECT ts,
             {", ".join(f"{_increase(c)} AS {c}" for c in COUNTERS)}
      FROM ingest_stats
      WHERE ts BETWEEN $__timeFrom()::timestamptz - interval '15 minutes' AND $__timeTo()
      WINDOW w AS (PARTITION BY worker ORDER BY ts)
    ) deltas
    WHERE $__timeFilter(ts)
    GROUP BY 1
    ORDER BY 1
"""

LATENCY_SQL = """
    SELECT time_bucket('$__interval'::interval, ts) AS time,
           worker AS metric,
           max(batch_latency_ms) AS "batch latency [ms]"
    FROM ingest_stats
    WHERE $__timeFilter(ts) AND batch_latency_ms IS NOT NULL
    GROUP BY 1, 2
    ORDER BY 1
"""

DEAD_LETTERS_SQL = """
    SELECT $__timeGroupAlias(received_at, $__interval), stage AS metric, count(*) AS dead_letters
    FROM dead_letters
    WHERE $__timeFilter(received_at)
    GROUP BY 1, 2
    ORDER BY 1
"""

DEAD_REASONS_SQL = """
    SELECT stage, reason, count(*) AS messages, count(DISTINCT device_id) AS devices,
           max(received_at) AS last_seen, min(topic) AS example_topic
    FROM dead_letters
    WHERE $__timeFilter(received_at)
    GROUP BY stage, reason
    ORDER BY messages DESC
    LIMIT 100
"""

SEQ_GAPS_SQL = """
    SELECT d.pilot_id, g.device_id, sum(g.lost) AS lost_messages, sum(g.received) AS received,
           round((100.0 * sum(g.lost) / nullif(sum(g.lost + g.received), 0))::numeric, 2)
             AS lost_pct
    FROM (
      SELECT device_id, boot, count(DISTINCT seq) AS received,
             max(seq) - min(seq) + 1 - count(DISTINCT seq) AS lost
      FROM ingest_messages
      WHERE $__timeFilter(received_at)
      GROUP BY device_id, boot
    ) g
    JOIN devices d ON d.id = g.device_id
    WHERE d.pilot_id IN ($pilot)
    GROUP BY d.pilot_id, g.device_id
    HAVING sum(g.lost) > 0
    ORDER BY lost_messages DESC
    LIMIT 200
"""

LAST_SEEN_SQL = """
    SELECT d.pilot_id, d.id AS device_id, d.kind, d.last_seen, s.state,
           s.received_at AS status_at, m.messages, m.max_skew_s
    FROM devices d
    LEFT JOIN device_status s ON s.device_id = d.id
    LEFT JOIN LATERAL (
      SELECT count(*) AS messages,
             max(extract(epoch FROM received_at - sent_at)) AS max_skew_s
      FROM ingest_messages im
      WHERE im.device_id = d.id AND $__timeFilter(im.received_at)) m ON true
    WHERE d.pilot_id IN ($pilot) AND d.revoked_at IS NULL
    ORDER BY d.last_seen NULLS FIRST, d.id
"""

TOTALS_SQL = """
    SELECT count(*) AS messages,
           coalesce(sum(records), 0) AS records,
           (SELECT count(*) FROM dead_letters WHERE $__timeFilter(received_at)) AS dead_letters
    FROM ingest_messages
    WHERE $__timeFilter(received_at)
"""


def build() -> dash.Dashboard:
    """The ingest dashboard; the ``pilot`` variable narrows the per-device tables."""
    return (
        new_dashboard(
            UID,
            TITLE,
            time_from="now-6h",
            description="MQTT ingest: throughput, dead letters, lost messages, latency.",
        )
        .with_variable(pilot_variable(None, multi=True))
        .with_panel(stat("In range", TOTALS_SQL, "none", span=24))
        .with_panel(timeseries("Throughput", THROUGHPUT_SQL, "short"))
        .with_panel(
            timeseries(
                "Worker counters per interval",
                COUNTERS_SQL,
                "short",
                bars=True,
                description="Increase of each worker's counters (ingest_stats) per interval.",
            )
        )
        .with_panel(timeseries("Dead letters by stage", DEAD_LETTERS_SQL, "short", bars=True))
        .with_panel(timeseries("Batch latency (worst per interval)", LATENCY_SQL, "ms"))
        .with_panel(table("Dead letters by reason", DEAD_REASONS_SQL, span=24))
        .with_panel(
            table(
                "Sequence gaps (lost messages)",
                SEQ_GAPS_SQL,
                description="Holes in each device's seq within a boot, for messages received "
                "in the time range.",
            )
        )
        .with_panel(
            table(
                "Devices: last seen",
                LAST_SEEN_SQL,
                description="max_skew_s: worst received_at − sent_at in the range (clock skew "
                "plus delivery delay).",
            )
        )
    )
