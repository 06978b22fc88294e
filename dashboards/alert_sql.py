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

COMPLETENESS_YESTERDAY = f"""
    WITH w AS (
      SELECT p.id AS pilot,
             (date_trunc('day', t.now AT TIME ZONE p.timezone) - interval '1 day')
               AT TIME ZONE p.timezone AS day_start,
             date_trunc('day', t.now AT TIME ZONE p.timezone) AT TIME ZONE p.timezone
               AS day_end,
             (p.definition->'streetlight'->>'record_interval_s')::float8 AS interval_s
      FROM pilots p CROSS JOIN {_NOW}
      WHERE p.kind = 'streetlight'
    )
    SELECT w.pilot,
           least(100, round((100.0 * count(r.ts) / (count(DISTINCT d.id)
             * extract(epoch FROM w.day_end - w.day_start) / w.interval_s))::numeric, 1)
           )::float8 AS completeness_pct
    FROM w
    JOIN devices d ON d.pilot_id = w.pilot AND d.revoked_at IS NULL
                  AND d.created_at < w.day_end
    LEFT JOIN streetlight_readings r
      ON r.device_id = d.id AND r.ts >= w.day_start AND r.ts < w.day_end
    GROUP BY w.pilot, w.day_start, w.day_end, w.interval_s
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

DAY_BURNING = f"""
    SELECT d.pilot_id AS pilot, r.device_id AS device,
           round((count(*) * iv.interval_s / 3600.0)::numeric, 2)::float8 AS hours_lit_by_day
    FROM streetlight_readings r
    JOIN devices d ON d.id = r.device_id AND d.revoked_at IS NULL
    JOIN pilots p ON p.id = d.pilot_id
    CROSS JOIN {_NOW}
    CROSS JOIN LATERAL (
      SELECT (p.definition->'streetlight'->>'record_interval_s')::float8 AS interval_s) iv
    WHERE r.ts > t.now - interval '24 hours' AND r.ts <= t.now AND r.lamp_on
      AND (r.ts AT TIME ZONE p.timezone)::time BETWEEN '{DAY_FROM}' AND '{DAY_TO}'
    GROUP BY d.pilot_id, r.device_id, iv.interval_s
    HAVING count(*) >= 2
    ORDER BY 1, 2
"""

# The border (GeoJSON LineString or MultiLineString in the pilot definition) cut into
# pieces of about SEGMENT_KM; a piece is covered when a patrol point's footprint
# (half-width agl·tan(hfov/2); recording as the pilot's `sensor` says; in one of its
# `patrol_modes`, default "patrol"; usable fix) reaches its midpoint.
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
      SELECT pilot, line_no,
             lon1 + (lon2 - lon1) * (k + 0.5) / parts AS lon,
             lat1 + (lat2 - lat1) * (k + 0.5) / parts AS lat,
             start_km + km * (k + 0.5) / parts AS at_km
      FROM edges_at, generate_series(0, parts - 1) AS k
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
    LEFT JOIN LATERAL (
      SELECT max(r.ts) AS last_covered
      FROM drone_readings r
      JOIN devices d ON d.id = r.device_id AND d.pilot_id = s.pilot
      WHERE r.ts > t.now - make_interval(secs => 2 * pil.max_revisit_s) AND r.ts <= t.now
        AND CASE pil.sensor WHEN 'log' THEN coalesce(r.camera_on, false)
                            WHEN 'always' THEN true
                            ELSE coalesce(r.camera_on, true) END
        AND (r.mode = ANY(pil.patrol_modes)
             OR (cardinality(pil.patrol_modes) = 0 AND r.mode = 'patrol'))
        AND coalesce(r.gps_fix, -1) NOT IN (0, 1, 2)
        AND r.agl_m > 0
        AND abs(r.lat - s.lat) < 0.05 AND abs(r.lon - s.lon) < 0.05
        AND sqrt(power((r.lon - s.lon) * 111320 * cos(radians(s.lat)), 2)
                 + power((r.lat - s.lat) * 110570, 2))
            <= r.agl_m * tan(radians(coalesce(r.hfov_deg, pil.hfov_deg) / 2))
    ) c ON true
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
