"""The provisioned alert rules: every rule's SQL (as written in the provisioning document)
runs on TimescaleDB with Grafana's macros expanded for an evaluation instant, then the
rule's own reduce and threshold decide what fires. Each rule has a fixture where it must
fire (and on what, with which figure) and a change after which it must clear; the truths
are computed here from the seeded facts, not by the rule's SQL."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.types.json import Jsonb

from dashboards.alerts import RULES, message
from devices.pilots import load_pilot
from kcity.grafana import alerting
from tests.fixtures.services import as_reader
from tests.grafana_macros import expand

ROOT = Path(__file__).resolve().parents[1]
T = datetime(2026, 10, 10, 12, 0, tzinfo=UTC)  # the evaluation instant
DOC = alerting("ko")
BY_UID = {r["uid"]: r for r in DOC["groups"][0]["rules"]}


@pytest.fixture
def tx(db_url: str) -> Iterator[psycopg.Connection]:
    """A connection whose writes are rolled back after the test: every test seeds its own."""
    with psycopg.connect(db_url) as c:
        yield c
        c.rollback()


def evaluate(conn: psycopg.Connection, uid: str, at: datetime = T) -> dict[tuple[str, ...], float]:
    """What Grafana would find firing: labels → value, after reduce(last) and threshold."""
    rule = BY_UID[uid]
    query, reduce, threshold = rule["data"]
    assert (reduce["model"]["type"], reduce["model"]["expression"]) == ("reduce", "A")
    assert (threshold["model"]["expression"], rule["condition"]) == ("B", "C")
    span = timedelta(seconds=query["relativeTimeRange"]["from"])
    sql = expand(query["model"]["rawSql"], start=at - span, end=at)
    with as_reader(conn):  # Grafana's login: a rule reading a secret or a raw table fails
        cur = conn.execute(sql)
        names = [c.name for c in cur.description or []]
        rows = cur.fetchall()
    series: dict[tuple[str, ...], float] = {}
    for row in rows:
        labels = tuple(str(v) for v, n in zip(row, names, strict=True) if isinstance(v, str))
        numbers = [float(v) for v in row if isinstance(v, float | int) and not isinstance(v, bool)]
        assert len(numbers) == 1, f"{uid}: one value column per row, got {names}"
        series[labels] = numbers[0]  # reduce: last
    (cond,) = threshold["model"]["conditions"]
    kind, (limit,) = cond["evaluator"]["type"], cond["evaluator"]["params"]
    fires = {"gt": lambda v: v > limit, "lt": lambda v: v < limit}[kind]
    return {labels: v for labels, v in series.items() if fires(v)}


def _pilot(conn: psycopg.Connection, toml: str, **drone: Any) -> None:
    p = load_pilot(ROOT / "pilots" / toml)
    definition = p.to_json()
    if drone:
        definition["drone"].update(drone)
    conn.execute(
        "INSERT INTO pilots (id, name, kind, country, city, timezone, latitude, longitude,"
        " definition) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
        (
            p.id,
            p.name,
            p.kind,
            p.country,
            p.city,
            p.timezone,
            p.latitude,
            p.longitude,
            Jsonb(definition),
        ),
    )


def _device(
    conn: psycopg.Connection, dev: str, pilot: str, last_seen: datetime | None, **extra: Any
) -> None:
    kind = "streetlight" if pilot == "madiun" else "hybrid_drone"
    conn.execute(
        "INSERT INTO devices (id, pilot_id, kind, password_hash, created_at, last_seen,"
        " revoked_at) VALUES (%s,%s,%s,'x',%s,%s,%s)",
        (dev, pilot, kind, T - timedelta(days=300), last_seen, extra.get("revoked_at")),
    )
    if "state" in extra:
        conn.execute(
            "INSERT INTO device_status VALUES (%s,%s,'{}',%s)", (dev, extra["state"], last_seen)
        )


def _both(conn: psycopg.Connection) -> None:
    _pilot(conn, "madiun.toml")
    _pilot(conn, "mukdahan.toml")


# --- the document ------------------------------------------------------------------------


def test_document_has_every_rule_a_contact_point_and_a_policy() -> None:
    assert len(BY_UID) == len(RULES) == 8
    (point,) = DOC["contactPoints"]
    assert {r["type"] for r in point["receivers"]} == {"email", "webhook"}
    assert point["receivers"][0]["settings"]["addresses"] == "$ALERT_EMAILS"
    assert DOC["policies"][0]["receiver"] == point["name"]
    assert "pilot" in DOC["policies"][0]["group_by"]


def test_messages_are_korean_and_english_and_name_pilot_device_and_figure() -> None:
    hangul = re.compile(r"[\uac00-\ud7a3]")
    for uid, rule in BY_UID.items():
        notes = rule["annotations"]
        assert hangul.search(rule["title"]) and hangul.search(notes["summary"])
        assert hangul.search(notes["summary_ko"]) and not hangul.search(notes["summary_en"])
        assert notes["summary_ko"] in notes["description"]
        assert notes["summary_en"] in notes["description"]
        assert "$values.B.Value" in notes["summary"], uid
        if uid != "kcity-ingest-worker-disconnected":
            assert "{{ $labels.pilot }}" in notes["summary"], uid
    for uid in ("kcity-device-silent", "kcity-lamp-faults", "kcity-day-burning"):
        assert "{{ $labels.device }}" in BY_UID[uid]["annotations"]["summary_en"]
    assert "{{ $labels.segment }}" in BY_UID["kcity-border-uncovered"]["annotations"]["summary"]
    assert message("{pilot} {value}") == '{{ $labels.pilot }} {{ printf "%.1f" $values.B.Value }}'
    en = alerting("en")["groups"][0]["rules"][0]
    assert not hangul.search(en["title"]) and en["uid"] == "kcity-device-silent"


# --- each rule, firing and clearing ------------------------------------------------------


def test_device_silent_for_more_than_three_intervals(tx: psycopg.Connection) -> None:
    _both(tx)
    _device(tx, "madiun-sl-001", "madiun", T - timedelta(minutes=5))
    _device(tx, "madiun-sl-002", "madiun", T - timedelta(minutes=16))  # > 3 × 5 min
    _device(tx, "madiun-sl-003", "madiun", T - timedelta(minutes=14))
    _device(tx, "madiun-sl-004", "madiun", T - timedelta(hours=2), revoked_at=T)
    _device(tx, "mukdahan-dr-01", "mukdahan", T - timedelta(seconds=10), state="online")
    _device(tx, "mukdahan-dr-02", "mukdahan", T - timedelta(hours=1), state="offline")
    fired = evaluate(tx, "kcity-device-silent")
    assert set(fired) == {("madiun", "madiun-sl-002"), ("mukdahan", "mukdahan-dr-01")}
    assert fired["madiun", "madiun-sl-002"] == pytest.approx(16.0)
    tx.execute("UPDATE devices SET last_seen = %s WHERE id = 'madiun-sl-002'", (T,))
    assert ("madiun", "madiun-sl-002") not in evaluate(tx, "kcity-device-silent")


def test_pilot_without_data_for_an_hour(tx: psycopg.Connection) -> None:
    _both(tx)
    _device(tx, "madiun-sl-001", "madiun", T - timedelta(minutes=30))
    _device(tx, "mukdahan-dr-01", "mukdahan", T - timedelta(hours=3))
    _device(tx, "mukdahan-dr-02", "mukdahan", T - timedelta(hours=2))
    assert evaluate(tx, "kcity-pilot-no-data") == {("mukdahan",): pytest.approx(120.0)}
    tx.execute("UPDATE devices SET last_seen = %s WHERE id = 'mukdahan-dr-01'", (T,))
    assert evaluate(tx, "kcity-pilot-no-data") == {}


def test_completeness_of_yesterday_below_90(tx: psycopg.Connection) -> None:
    _both(tx)
    for dev in ("madiun-sl-001", "madiun-sl-002"):
        _device(tx, dev, "madiun", T)
    zone = ZoneInfo("Asia/Jakarta")
    local_today = T.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = local_today - timedelta(days=1), local_today  # yesterday, local time
    slots = [start + timedelta(minutes=5 * k) for k in range(288)]

    def lights(dev: str, times: list[datetime]) -> None:
        with tx.cursor() as cur:
            cur.executemany(
                "INSERT INTO streetlight_readings (device_id, ts, power_w, dim_pct, lamp_on)"
                " VALUES (%s, %s, 30, 100, true)",
                [(dev, ts) for ts in times],
            )

    lights("madiun-sl-001", [*slots, end, end + timedelta(hours=1)])  # today's don't count
    lights("madiun-sl-002", slots[:200])
    fired = evaluate(tx, "kcity-completeness-yesterday")
    assert fired == {("madiun",): pytest.approx(round(100 * 488 / 576, 1))}
    lights("madiun-sl-002", slots[200:])
    assert evaluate(tx, "kcity-completeness-yesterday") == {}


def test_active_lamp_faults(tx: psycopg.Connection) -> None:
    _both(tx)
    for dev in ("madiun-sl-001", "madiun-sl-002", "madiun-sl-003"):
        _device(tx, dev, "madiun", T)

    def event(dev: str, hours: float, kind: str, code: str | None) -> None:
        tx.execute(
            "INSERT INTO events (device_id, ts, type, data) VALUES (%s,%s,%s,%s)",
            (dev, T - timedelta(hours=hours), kind, Jsonb({"code": code} if code else {})),
        )

    event("madiun-sl-001", 2, "fault", "lamp_failure")
    event("madiun-sl-001", 1, "fault", "dimming_failure")
    event("madiun-sl-002", 3, "fault", "supply_loss")
    event("madiun-sl-002", 1, "fault_cleared", "supply_loss")
    event("madiun-sl-003", 5, "fault", "comm_failure")
    event("madiun-sl-003", 4, "fault_cleared", None)  # clears every code
    assert evaluate(tx, "kcity-lamp-faults") == {
        ("madiun", "madiun-sl-001", "dimming_failure, lamp_failure"): 2.0
    }
    event("madiun-sl-001", 0.5, "fault_cleared", "lamp_failure")
    event("madiun-sl-002", 0.2, "fault", "supply_loss")  # it failed again
    assert evaluate(tx, "kcity-lamp-faults") == {
        ("madiun", "madiun-sl-001", "dimming_failure"): 1.0,
        ("madiun", "madiun-sl-002", "supply_loss"): 1.0,
    }
    # Seen from before the new failure, the cleared luminaire was fine.
    earlier = evaluate(tx, "kcity-lamp-faults", at=T - timedelta(hours=0.4))
    assert ("madiun", "madiun-sl-002", "supply_loss") not in earlier


def test_day_burning(tx: psycopg.Connection) -> None:
    _both(tx)
    for dev in ("madiun-sl-001", "madiun-sl-002", "madiun-sl-003", "madiun-sl-004"):
        _device(tx, dev, "madiun", T)
    zone = ZoneInfo("Asia/Jakarta")
    noon = T.astimezone(zone).replace(hour=11, minute=0)  # T is 19:00 there: 8 h ago
    night = noon.replace(hour=22) - timedelta(days=1)
    rows = [
        *[("madiun-sl-001", noon + timedelta(minutes=5 * k), True) for k in range(3)],
        *[("madiun-sl-002", night + timedelta(minutes=5 * k), True) for k in range(6)],
        ("madiun-sl-003", noon.replace(hour=12), True),  # one record is not a pattern
        *[("madiun-sl-004", noon + timedelta(minutes=5 * k), False) for k in range(6)],
    ]
    with tx.cursor() as cur:
        cur.executemany(
            "INSERT INTO streetlight_readings (device_id, ts, power_w, dim_pct, lamp_on)"
            " VALUES (%s,%s,30,100,%s)",
            rows,
        )
    assert evaluate(tx, "kcity-day-burning") == {("madiun", "madiun-sl-001"): 0.25}
    assert evaluate(tx, "kcity-day-burning", at=T + timedelta(days=1)) == {}


def _edges(border: dict[str, Any]) -> list[tuple[list[float], list[float]]]:
    coords = border["coordinates"]
    return list(itertools.pairwise(coords))


def _km(a: list[float], b: list[float]) -> float:
    """Great-circle distance [km] (haversine): an independent measure of the border."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


def test_border_segment_not_covered_within_max_revisit(tx: psycopg.Connection) -> None:
    _pilot(tx, "madiun.toml")
    _pilot(tx, "mukdahan.toml", max_revisit_s=4 * 3600)
    _device(tx, "mukdahan-dr-01", "mukdahan", T)
    border = load_pilot(ROOT / "pilots" / "mukdahan.toml").drone.border
    edges = _edges(border)
    assert len(edges) == 6

    def fly(edge: int, when: datetime, mode: str = "patrol", camera: bool = True) -> None:
        (lon1, lat1), (lon2, lat2) = edges[edge]
        steps = math.ceil(_km(edges[edge][0], edges[edge][1]) * 1000 / 50)  # a point per 50 m
        with tx.cursor() as cur:
            cur.executemany(
                "INSERT INTO drone_readings (device_id, ts, flight_id, lat, lon, agl_m, mode,"
                " camera_on, gps_fix) VALUES ('mukdahan-dr-01',%s,'f',%s,%s,100,%s,%s,3)",
                [
                    (
                        when + timedelta(seconds=k),
                        lat1 + (lat2 - lat1) * k / steps,
                        lon1 + (lon2 - lon1) * k / steps,
                        mode,
                        camera,
                    )
                    for k in range(steps + 1)
                ],
            )

    for e in (0, 1, 2):
        fly(e, T - timedelta(hours=3.9 - e / 10))  # within the 4 h
    for e in (3, 4):
        fly(e, T - timedelta(hours=5 - (e - 3) / 10))  # too long ago: about 300 min
    fly(5, T - timedelta(hours=1), mode="transit")  # not patrolling: never covered
    fly(5, T - timedelta(hours=0.5), camera=False)
    fired = evaluate(tx, "kcity-border-uncovered")
    lengths = [_km(a, b) for a, b in edges]
    start = [sum(lengths[:i]) for i in range(len(lengths))]
    km = {labels: float(labels[1].removeprefix("km ")) for labels in fired}
    assert {labels[0] for labels in fired} == {"mukdahan"}
    # Every piece of edges 3–5 and none of 0–2 (positions within 0.2 km of the truth).
    assert min(km.values()) == pytest.approx(start[3] + 0.5, abs=0.3)
    assert max(km.values()) == pytest.approx(sum(lengths) - 0.5, abs=0.3)
    assert len(fired) == pytest.approx(sum(lengths[3:]), abs=3)
    for labels, value in fired.items():
        if km[labels] < start[5] - 0.3:  # flown 5 h to 4.85 h ago (3 min an edge)
            assert 290.0 <= value <= 300.0
        else:  # never seen in the 8 h looked back
            assert value == 480.0
    for e in (3, 4, 5):
        fly(e, T - timedelta(hours=e / 10 - 0.2))
    assert evaluate(tx, "kcity-border-uncovered") == {}
    # A pilot without max_revisit_s has no border rule at all.
    tx.execute("UPDATE pilots SET definition = definition #- '{drone,max_revisit_s}'")
    assert evaluate(tx, "kcity-border-uncovered", at=T + timedelta(days=1)) == {}


def test_dead_letter_spike_per_pilot(tx: psycopg.Connection) -> None:
    _both(tx)

    def letters(pilot: str | None, times: list[datetime]) -> None:
        with tx.cursor() as cur:
            cur.executemany(
                "INSERT INTO dead_letters (received_at, topic, payload, stage, reason, pilot_id)"
                " VALUES (%s,'kcity/v1/x',''::bytea,'decode','invalid JSON',%s)",
                [(ts, pilot) for ts in times],
            )

    day = [T - timedelta(minutes=15 * (k + 1) + 1) for k in range(95)]  # one per 15 min
    letters("madiun", day)
    letters("madiun", [T - timedelta(seconds=20 * k) for k in range(25)])  # 25 > 20 > 5 × 1
    letters("mukdahan", [T - timedelta(seconds=30 * k) for k in range(15)])  # ≤ 20
    letters(None, [t for t in day for _ in range(10)])  # a noisy day: mean 10 per 15 min
    letters(None, [T - timedelta(seconds=10 * k) for k in range(40)])  # 40 < 5 × 10
    assert evaluate(tx, "kcity-dead-letter-spike") == {("madiun",): 25.0}
    assert evaluate(tx, "kcity-dead-letter-spike", at=T + timedelta(minutes=20)) == {}


def test_ingest_worker_disconnected(tx: psycopg.Connection) -> None:
    with tx.cursor() as cur:
        cur.executemany(
            "INSERT INTO ingest_stats VALUES (%s,%s,10,10,0,0,0,1,5.0)",
            [
                (T - timedelta(seconds=10), "w1"),
                (T - timedelta(minutes=10), "w2"),
                (T - timedelta(minutes=11), "w2"),
                (T - timedelta(days=2), "w3"),  # retired long ago: forgotten
            ],
        )
    assert evaluate(tx, "kcity-ingest-worker-disconnected") == {("w2",): 10.0}
    tx.execute("INSERT INTO ingest_stats VALUES (%s,'w2',10,10,0,0,0,1,5.0)", (T,))
    assert evaluate(tx, "kcity-ingest-worker-disconnected") == {}


def test_provisioned_alerting_file_is_up_to_date() -> None:
    """deploy/grafana/provisioning/alerting is what compose loads: rebuild when this fails."""
    from dashboards.alerts import FILE, dump

    path = ROOT / "deploy" / "grafana" / "provisioning" / "alerting" / FILE
    assert path.read_text(encoding="utf-8") == dump(DOC), (
        "run: kcity dashboards build --out deploy/grafana/dashboards"
        " --alerting deploy/grafana/provisioning/alerting"
    )


def test_border_rule_follows_the_pilots_patrol_modes_and_sensor(tx: psycopg.Connection) -> None:
    """A pilot whose autopilot calls patrol "AUTO" and whose camera always records (sensor
    "always") is covered by AUTO points without camera_on; plain "patrol" no longer counts."""
    _pilot(tx, "mukdahan.toml", max_revisit_s=3600, patrol_modes=["AUTO"], sensor="always")
    _device(tx, "mukdahan-dr-01", "mukdahan", T)
    border = load_pilot(ROOT / "pilots" / "mukdahan.toml").drone.border
    (lon1, lat1), (lon2, lat2) = border["coordinates"][0], border["coordinates"][1]
    steps = math.ceil(_km([lon1, lat1], [lon2, lat2]) * 1000 / 50)

    def fly(mode: str, when: datetime) -> None:
        with tx.cursor() as cur:
            cur.executemany(
                "INSERT INTO drone_readings (device_id, ts, flight_id, lat, lon, agl_m, mode,"
                " camera_on, gps_fix) VALUES ('mukdahan-dr-01',%s,'f',%s,%s,100,%s,NULL,3)",
                [
                    (
                        when + timedelta(seconds=k),
                        lat1 + (lat2 - lat1) * k / steps,
                        lon1 + (lon2 - lon1) * k / steps,
                        mode,
                    )
                    for k in range(steps + 1)
                ],
            )

    first_edge = _km([lon1, lat1], [lon2, lat2])

    def first_edge_fired() -> set[str]:
        fired = evaluate(tx, "kcity-border-uncovered")
        return {s for _, s in fired if float(s.removeprefix("km ")) < first_edge}

    fly("patrol", T - timedelta(minutes=30))
    assert first_edge_fired()  # "patrol" is not this pilot's patrol mode
    fly("AUTO", T - timedelta(minutes=20))
    assert first_edge_fired() == set()
