"""The ingest health dashboard: is field data arriving, and what is being refused or lost.

Throughput comes from ``ingest_messages`` (one row per accepted message, indexed by
``received_at``), over long ranges from its rollups (dashboards/long_range.py): per pilot
and hour for rates and totals, per device and day (hours at the range's edges) for the
device tables; the
workers' counters come from ``ingest_stats``, which holds cumulative counter snapshots per
worker, so the panels show their increase per interval (a drop means the worker restarted
and its counter began again from zero). Sequence gaps are counted per channel: each
channel numbers its own messages.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash

from dashboards.long_range import BUCKET_S, HOUR_BUCKET, LONG_RANGE, edge_hours, hours, whole_days
from dashboards.panels import (
    Labels,
    dashboard_of_kind,
    device_links,
    fields,
    hidden,
    new_dashboard,
    pilot_variable,
    stat,
    table,
    timeseries,
)

UID = "kcity-ingest"
DASHBOARD_OF_KIND = dashboard_of_kind("d.kind")
# Messages of the selected pilots' devices; dead letters of those pilots, and those whose
# pilot could not be read from the topic (they belong to no pilot, so every view shows them).
OF_PILOTS = "device_id IN (SELECT id FROM devices WHERE pilot_id IN ($pilot))"
DEAD_OF_PILOTS = "(pilot_id IN ($pilot) OR pilot_id IS NULL)"

COUNTERS = ("received", "stored", "duplicates", "dead_lettered", "seq_gaps")

THROUGHPUT_SQL = f"""
    SELECT $__timeGroupAlias(received_at, $__interval),
           count(*) / ($__interval_ms / 1000.0) AS messages_per_s,
           sum(records) / ($__interval_ms / 1000.0) AS records_per_s
    FROM ingest_messages
    WHERE $__timeFilter(received_at) AND {OF_PILOTS} AND NOT {LONG_RANGE}
    GROUP BY 1
    UNION ALL
    SELECT {HOUR_BUCKET} AS time,
           sum(messages) / {BUCKET_S} AS messages_per_s,
           sum(records) / {BUCKET_S} AS records_per_s
    FROM ingest_pilot_hourly
    WHERE {hours()} AND pilot_id IN ($pilot)
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
           max(batch_latency_ms) AS batch_latency_ms
    FROM ingest_stats
    WHERE $__timeFilter(ts) AND batch_latency_ms IS NOT NULL
    GROUP BY 1, 2
    ORDER BY 1
"""

# Mosquitto's count of messages it dropped beyond a session's queue bounds (issue #18), as
# the workers snapshot it: broker-wide and since the broker started, the same for every
# worker (max, not sum); a fall is a broker restart.
BROKER_DROPPED_SQL = """
    SELECT time_bucket('$__interval'::interval, ts) AS time,
           max(broker_dropped) AS broker_dropped
    FROM ingest_stats
    WHERE $__timeFilter(ts) AND broker_dropped IS NOT NULL
    GROUP BY 1
    ORDER BY 1
"""

DEAD_LETTERS_SQL = f"""
    SELECT $__timeGroupAlias(received_at, $__interval), stage AS metric, count(*) AS dead_letters
    FROM dead_letters
    WHERE $__timeFilter(received_at) AND {DEAD_OF_PILOTS}
    GROUP BY 1, 2
    ORDER BY 1
"""

DEAD_REASONS_SQL = f"""
    SELECT stage, reason, count(*) AS messages, count(DISTINCT device_id) AS devices,
           max(received_at) AS last_seen, min(topic) AS example_topic
    FROM dead_letters
    WHERE $__timeFilter(received_at) AND {DEAD_OF_PILOTS}
    GROUP BY stage, reason
    ORDER BY messages DESC
    LIMIT 100
"""

# Dead letters a device sent beyond its budget of the minute: counted, not kept (issue #18).
SUPPRESSED_SQL = f"""
    SELECT s.device_id, s.pilot_id, {DASHBOARD_OF_KIND} AS dashboard, s.stage, s.reason,
           sum(s.suppressed) AS suppressed, count(DISTINCT s.minute) AS minutes,
           max(s.minute) AS last_minute
    FROM dead_letters_suppressed s LEFT JOIN devices d ON d.id = s.device_id
    WHERE $__timeFilter(s.minute) AND (s.pilot_id IN ($pilot) OR s.pilot_id IS NULL)
    GROUP BY s.device_id, s.pilot_id, d.kind, s.stage, s.reason
    ORDER BY suppressed DESC
    LIMIT 100
"""

SEQ_GAPS_SQL = f"""
    SELECT d.pilot_id, g.device_id, {DASHBOARD_OF_KIND} AS dashboard,
           sum(g.lost) AS lost_messages, sum(g.received) AS received,
           round((100.0 * sum(g.lost) / nullif(sum(g.lost + g.received), 0))::numeric, 2)
             AS lost_pct
    FROM (
      SELECT device_id, boot, channel, count(*) AS received,
             max(seq) - min(seq) + 1 - count(*) AS lost
      FROM ingest_messages
      WHERE $__timeFilter(received_at) AND NOT {LONG_RANGE}
      GROUP BY device_id, boot, channel
      UNION ALL
      SELECT device_id, boot, channel, sum(messages),
             max(max_seq) - min(min_seq) + 1 - sum(messages)
      FROM (
        SELECT device_id, boot, channel, messages, min_seq, max_seq
        FROM ingest_messages_hourly
        WHERE {edge_hours()} AND {OF_PILOTS}
        UNION ALL
        SELECT device_id, boot, channel, messages, min_seq, max_seq
        FROM ingest_messages_daily
        WHERE {whole_days()} AND {OF_PILOTS}
      ) h
      GROUP BY device_id, boot, channel
    ) g
    JOIN devices d ON d.id = g.device_id
    WHERE d.pilot_id IN ($pilot)
    GROUP BY d.pilot_id, g.device_id, d.kind
    HAVING sum(g.lost) > 0
    ORDER BY lost_messages DESC
    LIMIT 200
"""

LAST_SEEN_SQL = f"""
    SELECT d.pilot_id, d.id AS device_id, d.kind, {DASHBOARD_OF_KIND} AS dashboard,
           d.last_seen, s.state,
           s.received_at AS status_at, m.messages, m.max_skew_s
    FROM devices d
    LEFT JOIN device_status s ON s.device_id = d.id
    LEFT JOIN (
      SELECT device_id, sum(n)::bigint AS messages, max(skew) AS max_skew_s FROM (
        SELECT device_id, count(*) AS n, max(extract(epoch FROM received_at - sent_at)) AS skew
        FROM ingest_messages
        WHERE $__timeFilter(received_at) AND {OF_PILOTS} AND NOT {LONG_RANGE}
        GROUP BY device_id
        UNION ALL
        SELECT device_id, messages, max_skew_s
        FROM ingest_messages_hourly
        WHERE {edge_hours()} AND {OF_PILOTS}
        UNION ALL
        SELECT device_id, messages, max_skew_s
        FROM ingest_messages_daily
        WHERE {whole_days()} AND {OF_PILOTS}) x
      GROUP BY device_id) m ON m.device_id = d.id
    WHERE d.pilot_id IN ($pilot) AND d.revoked_at IS NULL
    ORDER BY d.last_seen NULLS FIRST, d.id
"""

TOTALS_SQL = f"""
    SELECT coalesce(sum(n), 0)::bigint AS messages,
           coalesce(sum(r), 0)::bigint AS records,
           (SELECT count(*) FROM dead_letters
            WHERE $__timeFilter(received_at) AND {DEAD_OF_PILOTS}) AS dead_letters
    FROM (
      SELECT count(*) AS n, sum(records) AS r
      FROM ingest_messages
      WHERE $__timeFilter(received_at) AND {OF_PILOTS} AND NOT {LONG_RANGE}
      UNION ALL
      SELECT sum(messages), sum(records)
      FROM ingest_pilot_hourly
      WHERE {hours()} AND pilot_id IN ($pilot)) x
"""


def build(t: Labels) -> dash.Dashboard:
    """The ingest dashboard; the ``pilot`` variable narrows everything that has a pilot
    (the workers' own counters and latency belong to no pilot)."""
    totals = fields(
        stat(t["dash_in_totals"], TOTALS_SQL, "none", span=24),
        t,
        {
            "messages": ("dash_f_messages", "short"),
            "records": ("dash_f_records", "short"),
            "dead_letters": ("dash_f_dead_letters", "short"),
        },
    )
    throughput = fields(
        timeseries(t["dash_in_throughput"], THROUGHPUT_SQL, "short"),
        t,
        {
            "messages_per_s": ("dash_f_messages_per_s", "short"),
            "records_per_s": ("dash_f_records_per_s", "short"),
        },
    )
    last_seen = hidden(
        device_links(
            table(t["dash_in_last_seen"], LAST_SEEN_SQL, description=t["dash_in_last_seen_desc"]),
            t,
            "${__data.fields.dashboard}",
        ),
        "dashboard",
    )
    return (
        new_dashboard(
            UID, t["dash_in_title"], time_from="now-6h", description=t["dash_in_desc"], t=t
        )
        .with_variable(pilot_variable(None, t, multi=True))
        .with_panel(totals)
        .with_panel(throughput)
        .with_panel(
            timeseries(
                t["dash_in_counters"],
                COUNTERS_SQL,
                "short",
                bars=True,
                description=t["dash_in_counters_desc"],
            )
        )
        .with_panel(
            timeseries(
                t["dash_in_dead"],
                DEAD_LETTERS_SQL,
                "short",
                bars=True,
                description=t["dash_in_dead_desc"],
            )
        )
        .with_panel(timeseries(t["dash_in_latency"], LATENCY_SQL, "ms"))
        .with_panel(table(t["dash_in_reasons"], DEAD_REASONS_SQL, span=24))
        .with_panel(
            hidden(
                device_links(
                    table(
                        t["dash_in_suppressed"],
                        SUPPRESSED_SQL,
                        span=24,
                        description=t["dash_in_suppressed_desc"],
                    ),
                    t,
                    "${__data.fields.dashboard}",
                ),
                "dashboard",
            )
        )
        .with_panel(
            hidden(
                device_links(
                    table(t["dash_in_gaps"], SEQ_GAPS_SQL, description=t["dash_in_gaps_desc"]),
                    t,
                    "${__data.fields.dashboard}",
                ),
                "dashboard",
            )
        )
        .with_panel(last_seen)
        .with_panel(
            fields(
                timeseries(
                    t["dash_in_broker_dropped"],
                    BROKER_DROPPED_SQL,
                    "short",
                    description=t["dash_in_broker_dropped_desc"],
                ),
                t,
                {"broker_dropped": ("dash_f_broker_dropped", "short")},
            )
        )
    )
