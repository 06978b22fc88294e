"""The SQL of the alert rules: one query per rule, each returning one row per pilot, device,
border segment or worker with its figure, for Grafana's multi-dimensional alerting (string
columns become labels, the numeric column the value).

``$__timeTo()`` stands for "now", so a rule evaluates the same way in Grafana (where it is
the evaluation time) and in the tests (where it is a chosen instant). Rules whose limit
differs per pilot or device (a record interval, ``max_revisit_s``) return only the rows
over their limit, with a positive figure; the others return every row and leave the limit
to the rule's threshold.
"""

from __future__ import annotations

# A device is silent after this many nominal record intervals without a message.
SILENT_INTERVALS = 3
# Day-burning: the lamp on between these local hours (daylight below the polar circles).
DAY_FROM, DAY_TO = "10:00", "14:00"
# Border coverage is judged on pieces of about this length [km].
SEGMENT_KM = 1.0
# Dead-letter spike: more than this many in 15 minutes and more than SPIKE_FACTOR times the
# pilot's 15-minute mean of the previous day.
SPIKE_MIN = 20
SPIKE_FACTOR = 5
# The border rule's grid [°] and the margin on a footprint's box (floating-point rounding).
CELL_DEG = 0.01
_MARGIN = 1.000001

_NOW = "(SELECT $__timeTo()::timestamptz AS now) t"

DEVICE_SILENT = f"""
    SELECT d.pilot_id AS pilot, d.id AS device,
           round((extract(epoch FROM t.now - coalesce(d.last_seen, d.created_at)) / 60)::numeric,
                 1)::float8 AS silent_min
    FROM devices d
    JOIN pilots p ON p.id = d.pilot_id
    LEFT JOIN device_status s ON s.device_id = d.id
    CROSS JOIN {_NOW}
    CROSS JOIN LATERAL (
      SELECT coalesce(p.definition->'streetlight'->>'record_interval_s',
                      p.definition->'drone'->>'record_interval_s')::float8 AS interval_s) iv
    WHERE d.revoked_at IS NULL
      AND (p.kind = 'streetlight' OR s.state = 'online')
      AND coalesce(d.last_seen, d.created_at)
          < t.now - make_interval(secs => {SILENT_INTERVALS} * iv.interval_s)
    ORDER BY 1, 2
"""

PILOT_NO_DATA = f"""
    SELECT p.id AS pilot,
           round((extract(epoch FROM t.now - coalesce(max(d.last_seen), min(d.created_at)))
                  / 60)::numeric, 1)::float8 AS minutes_since_data
    FROM pilots p
    JOIN devices d ON d.pilot_id = p.id AND d.revoked_at IS NULL
    CROSS JOIN {_NOW}
    GROUP BY p.id, t.now
    ORDER BY 1
"""

# Completeness of each pilot's local yesterday as the data-quality method counts it
# (analytics/quality.py, `kcity quality`): every registered device in service that day (its
# commissioning dates; revoked or not), a silent one at 0 %; records over the records its
# day holds, capped per device; a drone over its flights' spans only (a day without flights
# expects nothing). Read from the per-device-day rollup (`quality_device_day`, kept by the
# rollup job), so the portfolio's column is this query, not a second count.
COMPLETENESS_YESTERDAY = f"""
    SELECT p.id AS pilot,
           round((100.0 * sum(least(coalesce(q.records, 0)::float8, e.expected))
                  / sum(e.expected))::numeric, 2)::float8 AS completeness_pct
    FROM pilots p
    CROSS JOIN {_NOW}
    CROSS JOIN LATERAL (
      SELECT (t.now AT TIME ZONE p.timezone)::date - 1 AS day,
             coalesce(p.definition->'streetlight'->>'record_interval_s',
                      p.definition->'drone'->>'record_interval_s')::float8 AS interval_s) y
    JOIN devices d ON d.pilot_id = p.id
                  AND (d.commissioned_on IS NULL OR y.day >= d.commissioned_on)
                  AND (d.decommissioned_on IS NULL OR y.day < d.decommissioned_on)
    LEFT JOIN quality_device_day q ON q.device_id = d.id AND q.day = y.day
    CROSS JOIN LATERAL (
      SELECT CASE WHEN p.kind = 'hybrid_drone'
                  THEN coalesce(q.flight_span_s::float8 / y.interval_s + q.flights, 0.0)
                  ELSE extract(epoch FROM ((y.day + 1)::timestamp AT TIME ZONE p.timezone)
                                        - (y.day::timestamp AT TIME ZONE p.timezone))
                       / y.interval_s
             END AS expected) e
    WHERE y.interval_s > 0
    GROUP BY p.id
    HAVING sum(e.expected) > 0
    ORDER BY 1
"""

LAMP_FAULTS = f"""
    SELECT d.pilot_id AS pilot, f.device_id AS device,
           string_agg(f.code, ', ' ORDER BY f.code) AS codes,
           count(*)::float8 AS active_faults
    FROM (
      SELECT DISTINCT ON (e.device_id, e.data->>'code')
             e.device_id, e.ts, coalesce(e.data->>'code', 'unknown') AS code
      FROM events e CROSS JOIN {_NOW}
      WHERE e.type = 'fault' AND e.ts > t.now - interval '30 days' AND e.ts <= t.now
      ORDER BY e.device_id, e.data->>'code', e.ts DESC
    ) f
    JOIN devices d ON d.id = f.device_id AND d.revoked_at IS NULL
    CROSS JOIN {_NOW}
    WHERE NOT EXISTS (
      SELECT 1 FROM events c
      WHERE c.device_id = f.device_id AND c.type = 'fault_cleared'
        AND c.ts >= f.ts AND c.ts <= t.now
        AND (c.data->>'code' IS NULL OR c.data->>'code' = f.code))
    GROUP BY d.pilot_id, f.device_id
    ORDER BY 1, 2
"""

# Only the readings of the pilot's local day-time spans of today and yesterday are read (in
# UTC, per pilot); the time-of-day test itself stays as it is.
DAY_BURNING = f"""
    SELECT d.pilot_id AS pilot, r.device_id AS device,
           round((count(*) * iv.interval_s / 3600.0)::numeric, 2)::float8 AS hours_lit_by_day
    FROM pilots p
    CROSS JOIN {_NOW}
    CROSS JOIN LATERAL (
      SELECT (p.definition->'streetlight'->>'record_interval_s')::float8 AS interval_s) iv
    CROSS JOIN LATERAL (
      SELECT ((t.now AT TIME ZONE p.timezone)::date - k + time '{DAY_FROM}')
               AT TIME ZONE p.timezone AS span_from,
             ((t.now AT TIME ZONE p.timezone)::date - k + time '{DAY_TO}')
               AT TIME ZONE p.timezone AS span_to
      FROM (VALUES (0), (1)) v(k)) w
    CROSS JOIN LATERAL (  -- OFFSET 0: each span bounds its own index scan
      SELECT r.device_id, r.ts FROM streetlight_readings r
      WHERE r.ts >= greatest(w.span_from, t.now - interval '24 hours')
        AND r.ts <= least(w.span_to, t.now) AND r.lamp_on
      OFFSET 0) r
    JOIN devices d ON d.id = r.device_id AND d.pilot_id = p.id AND d.revoked_at IS NULL
    WHERE p.kind = 'streetlight'
      AND r.ts > t.now - interval '24 hours' AND r.ts <= t.now
      AND (r.ts AT TIME ZONE p.timezone)::time BETWEEN '{DAY_FROM}' AND '{DAY_TO}'
    GROUP BY d.pilot_id, r.device_id, iv.interval_s
    HAVING count(*) >= 2
    ORDER BY 1, 2
"""

# The border (GeoJSON LineString or MultiLineString in the pilot definition) cut into
# pieces of about SEGMENT_KM; a piece is covered when a patrol point's footprint
# (half-width agl·tan(hfov/2); recording as the pilot's `sensor` says; in one of its
# `patrol_modes`, default "patrol"; usable fix) reaches its midpoint (within 0.05° of it).
# Points meet midpoints through a grid of CELL_DEG cells: a midpoint looks in every cell
# within the widest footprint's box around it (the cosine of latitude bounded over the
# 0.05°, a margin for rounding), so the distance is computed for nearby pairs only and the
# result is that of comparing every point with every midpoint.
BORDER_UNCOVERED = f"""
    WITH pil AS (
      SELECT p.id AS pilot,
             (p.definition->'drone'->>'max_revisit_s')::float8 AS max_revisit_s,
             (p.definition->'drone'->>'hfov_deg')::float8 AS hfov_deg,
             coalesce(p.definition->'drone'->>'sensor', 'auto') AS sensor,
             coalesce((SELECT array_agg(m) FROM jsonb_array_elements_text(
                         p.definition->'drone'->'patrol_modes') m), ARRAY[]::text[])
               AS patrol_modes,
             p.definition->'drone'->'border' AS border
      FROM pilots p
      WHERE p.definition->'drone'->>'max_revisit_s' IS NOT NULL
    ), vertices AS (
      SELECT pil.pilot, l.line_no, v.n, (v.pt->>0)::float8 AS lon, (v.pt->>1)::float8 AS lat
      FROM pil,
           jsonb_array_elements(CASE pil.border->>'type'
             WHEN 'LineString' THEN jsonb_build_array(pil.border->'coordinates')
             ELSE pil.border->'coordinates' END) WITH ORDINALITY AS l(line, line_no),
           jsonb_array_elements(l.line) WITH ORDINALITY AS v(pt, n)
    ), edges AS (
      SELECT pilot, line_no, n, lon AS lon1, lat AS lat1,
             lead(lon) OVER w AS lon2, lead(lat) OVER w AS lat2
      FROM vertices
      WINDOW w AS (PARTITION BY pilot, line_no ORDER BY n)
    ), edges_km AS (
      SELECT *, sqrt(power((lon2 - lon1) * 111.32 * cos(radians((lat1 + lat2) / 2)), 2)
                     + power((lat2 - lat1) * 110.57, 2)) AS km
      FROM edges WHERE lon2 IS NOT NULL
    ), edges_at AS (
      SELECT *, greatest(ceil(km / {SEGMENT_KM})::int, 1) AS parts,
             sum(km) OVER (PARTITION BY pilot, line_no ORDER BY n) - km AS start_km
      FROM edges_km
    ), segments AS (
      SELECT pilot, line_no, n, k,
             lon1 + (lon2 - lon1) * (k + 0.5) / parts AS lon,
             lat1 + (lat2 - lat1) * (k + 0.5) / parts AS lat,
             start_km + km * (k + 0.5) / parts AS at_km
      FROM edges_at, generate_series(0, parts - 1) AS k
    ), points AS MATERIALIZED (  -- per pilot (OFFSET 0: its time range bounds the index scan)
      SELECT pil.pilot, r.ts, r.lat, r.lon,
             floor(r.lon / {CELL_DEG})::int AS cx, floor(r.lat / {CELL_DEG})::int AS cy,
             r.agl_m * tan(radians(coalesce(r.hfov_deg, pil.hfov_deg) / 2)) AS reach_m
      FROM pil
      CROSS JOIN {_NOW}
      CROSS JOIN LATERAL (
        SELECT r.* FROM drone_readings r JOIN devices d ON d.id = r.device_id
        WHERE d.pilot_id = pil.pilot
          AND r.ts > t.now - make_interval(secs => 2 * pil.max_revisit_s) AND r.ts <= t.now
        OFFSET 0) r
      WHERE CASE pil.sensor WHEN 'log' THEN coalesce(r.camera_on, false)
                            WHEN 'always' THEN true
                            ELSE coalesce(r.camera_on, true) END
        AND (r.mode = ANY(pil.patrol_modes)
             OR (cardinality(pil.patrol_modes) = 0 AND r.mode = 'patrol'))
        AND coalesce(r.gps_fix, -1) NOT IN (0, 1, 2)
        AND r.agl_m > 0
    ), reach AS (  -- the half-extent of the widest footprint [°], at most the 0.05° box
      SELECT pilot, least(max(reach_m) * {_MARGIN} / 110570, 0.05) AS dlat,
             least(max(reach_m * {_MARGIN}
                       / (111320 * cos(radians(least(abs(lat) + 0.05, 89.9))))), 0.05) AS dlon
      FROM points GROUP BY pilot
    ), near AS MATERIALIZED (  -- every grid cell a point covering the midpoint can lie in
      SELECT s.pilot, s.line_no, s.n, s.k, s.lon, s.lat, cx, cy
      FROM segments s
      JOIN reach w ON w.pilot = s.pilot,
           generate_series(floor((s.lon - w.dlon) / {CELL_DEG})::int,
                           floor((s.lon + w.dlon) / {CELL_DEG})::int) cx,
           generate_series(floor((s.lat - w.dlat) / {CELL_DEG})::int,
                           floor((s.lat + w.dlat) / {CELL_DEG})::int) cy
    ), covered AS (
      SELECT s.pilot, s.line_no, s.n, s.k, max(p.ts) AS last_covered
      FROM near s
      JOIN points p ON p.pilot = s.pilot AND p.cx = s.cx AND p.cy = s.cy
      WHERE abs(p.lat - s.lat) < 0.05 AND abs(p.lon - s.lon) < 0.05
        AND sqrt(power((p.lon - s.lon) * 111320 * cos(radians(s.lat)), 2)
                 + power((p.lat - s.lat) * 110570, 2)) <= p.reach_m
      GROUP BY 1, 2, 3, 4
    )
    SELECT s.pilot,
           CASE WHEN s.line_no > 1 THEN 'line ' || s.line_no || ' ' ELSE '' END
             || 'km ' || to_char(s.at_km, 'FM9990.0') AS segment,
           round((extract(epoch FROM t.now - coalesce(c.last_covered,
                   t.now - make_interval(secs => 2 * pil.max_revisit_s))) / 60)::numeric,
                 1)::float8 AS uncovered_min
    FROM segments s
    JOIN pil ON pil.pilot = s.pilot
    CROSS JOIN {_NOW}
    LEFT JOIN covered c
      ON c.pilot = s.pilot AND c.line_no = s.line_no AND c.n = s.n AND c.k = s.k
    WHERE c.last_covered IS NULL
       OR c.last_covered < t.now - make_interval(secs => pil.max_revisit_s)
    ORDER BY 1, s.line_no, s.at_km
"""

DEAD_LETTER_SPIKE = f"""
    SELECT coalesce(dl.pilot_id, 'unknown') AS pilot,
           count(*) FILTER (WHERE dl.received_at > t.now - interval '15 minutes')::float8
             AS dead_letters_15min
    FROM dead_letters dl CROSS JOIN {_NOW}
    WHERE dl.received_at > t.now - interval '24 hours' AND dl.received_at <= t.now
    GROUP BY 1
    HAVING count(*) FILTER (WHERE dl.received_at > t.now - interval '15 minutes')
           > greatest({SPIKE_MIN}, {SPIKE_FACTOR} * count(*) FILTER (
               WHERE dl.received_at <= t.now - interval '15 minutes') / 95.0)
    ORDER BY 1
"""

WORKER_DISCONNECTED = f"""
    SELECT s.worker,
           round((extract(epoch FROM t.now - max(s.ts)) / 60)::numeric, 1)::float8
             AS minutes_since_report
    FROM ingest_stats s CROSS JOIN {_NOW}
    WHERE s.ts > t.now - interval '24 hours' AND s.ts <= t.now
    GROUP BY s.worker, t.now
    ORDER BY 1
"""

# Messages the broker dropped beyond a session's queue bound in the last 15 minutes: data
# lost. The count is broker-wide and cumulative since the broker started, snapshotted by
# every worker (migration 014): per worker the increases between its snapshots (after a
# broker restart, the new count), the largest over workers.
BROKER_DROPPED = f"""
    SELECT coalesce(max(w.dropped), 0)::float8 AS dropped_15min
    FROM (
        SELECT x.worker, sum(CASE WHEN x.delta < 0 THEN x.broker_dropped ELSE x.delta END)
                 AS dropped
        FROM (
            SELECT s.worker, s.ts, t.now, s.broker_dropped,
                   s.broker_dropped - lag(s.broker_dropped)
                     OVER (PARTITION BY s.worker ORDER BY s.ts) AS delta
            FROM ingest_stats s CROSS JOIN {_NOW}
            WHERE s.broker_dropped IS NOT NULL
              AND s.ts > t.now - interval '1 hour' AND s.ts <= t.now
        ) x
        WHERE x.ts > x.now - interval '15 minutes' AND x.delta IS NOT NULL
        GROUP BY x.worker
    ) w
"""
