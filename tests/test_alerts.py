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
from kcity.analyses import run_quality
from kcity.grafana import alerting, build_all
from kcity.rollups import refresh
from kcity.window import Window
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
    assert len(BY_UID) == len(RULES) == 9
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
        if uid not in ("kcity-ingest-worker-disconnected", "kcity-broker-dropped"):
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


# --- completeness: the data-quality method's count, read from the rollup -----------------
# These tests commit (the rollup job reads committed rows), then empty the tables again.

JAKARTA, BANGKOK = ZoneInfo("Asia/Jakarta"), ZoneInfo("Asia/Bangkok")


@pytest.fixture
def committed(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url) as c:
        yield c
        c.rollback()
        c.execute(
            "TRUNCATE pilots, devices, device_status, streetlight_readings, drone_readings,"
            " quality_device_day, rollup_devices, rollup_horizons, streetlight_hourly,"
            " drone_minutely, ingest_messages_hourly CASCADE"
        )
        c.commit()


def _yesterday(zone: ZoneInfo, at: datetime = T) -> tuple[datetime, datetime]:
    """The local day before `at`, as UTC instants [start, end)."""
    today = at.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=1), today


def _lights(conn: psycopg.Connection, dev: str, times: list[datetime]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO streetlight_readings (device_id, ts, power_w, dim_pct, lamp_on)"
            " VALUES (%s, %s, 30, 100, false)",
            [(dev, ts) for ts in times],
        )


def _service(conn: psycopg.Connection, dev: str, *, on: Any = None, off: Any = None,
             revoked: datetime | None = None) -> None:  # fmt: skip
    conn.execute(
        "UPDATE devices SET commissioned_on = %s, decommissioned_on = %s, revoked_at = %s"
        " WHERE id = %s",
        (on, off, revoked, dev),
    )


def _quality(conn: psycopg.Connection, pilot: str, zone: ZoneInfo, *, raw: bool) -> Any:
    """The evaluation method's completeness of the local yesterday (`kcity quality`)."""
    day = _yesterday(zone)[0].astimezone(zone).date()
    window = Window(day, day + timedelta(days=1))
    body = run_quality(conn, pilot, window, persist=False, from_rollup=not raw)
    return body["completeness_pct"]


def test_completeness_of_yesterday_is_the_quality_methods(committed: psycopg.Connection) -> None:
    """Every device in service yesterday is expected (revoked or not, created before or
    after), a silent one at 0 %, a device's surplus records capped; late records update
    the figure on the next refresh and clear the alert."""
    tx = committed
    _both(tx)
    start, end = _yesterday(JAKARTA)
    slots = [start + timedelta(minutes=5 * k) for k in range(288)]
    for dev in ("madiun-sl-001", "madiun-sl-002", "madiun-sl-003", "madiun-sl-004",
                "madiun-sl-005", "madiun-sl-006", "madiun-sl-007"):  # fmt: skip
        _device(tx, dev, "madiun", T)
    _lights(tx, "madiun-sl-001", [*slots, end, end + timedelta(hours=1)])  # today's don't count
    _lights(tx, "madiun-sl-002", slots[:100])
    _service(tx, "madiun-sl-003", on=end.astimezone(JAKARTA).date())  # from today: not expected
    _service(tx, "madiun-sl-004", off=start.astimezone(JAKARTA).date())  # gone before yesterday
    _lights(tx, "madiun-sl-004", slots[:10])  # reported anyway: counts for nothing
    _service(tx, "madiun-sl-005", revoked=T - timedelta(days=5))  # credentials gone, in service
    _lights(tx, "madiun-sl-005", slots)
    _lights(tx, "madiun-sl-006", [*slots, *(s + timedelta(minutes=1) for s in slots[:100])])
    tx.execute("UPDATE devices SET created_at = %s WHERE id = 'madiun-sl-007'", (T,))  # silent
    tx.commit()
    refresh(tx, slack_s=0.0)
    # By hand: 001, 002, 005, 006 and 007 expected 288 each; 288 + 100 + 288 + 288 + 0.
    expected = round(100 * (288 + 100 + 288 + 288 + 0) / (5 * 288), 2)
    assert evaluate(tx, "kcity-completeness-yesterday") == {("madiun",): expected}
    assert _quality(tx, "madiun", JAKARTA, raw=False) == expected
    assert _quality(tx, "madiun", JAKARTA, raw=True) == expected
    tx.rollback()

    _lights(tx, "madiun-sl-002", slots[100:])  # caught up after the refresh
    _lights(tx, "madiun-sl-007", slots)
    tx.commit()
    assert evaluate(tx, "kcity-completeness-yesterday") == {("madiun",): expected}  # not yet
    tx.rollback()
    refresh(tx, slack_s=0.0)
    assert evaluate(tx, "kcity-completeness-yesterday") == {}
    assert _quality(tx, "madiun", JAKARTA, raw=True) == 100.0
    tx.rollback()


def _portfolio_rows(conn: psycopg.Connection, at: datetime) -> dict[str, dict[str, Any]]:
    table = next(p for p in build_all("en")["kcity-portfolio"]["panels"] if p["type"] == "table")
    sql = expand(table["targets"][0]["rawSql"], start=at - timedelta(days=1), end=at)
    with as_reader(conn):
        cur = conn.execute(sql)
        names = [c.name for c in cur.description or []]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    return {r["pilot"]: r for r in rows}


def test_completeness_alert_and_portfolio_agree(committed: psycopg.Connection) -> None:
    """What `make demo` showed: devices registered today, their data weeks old, so
    yesterday is 0 % on the portfolio — and the alert must say so too. A drone is judged
    over its flights only; a pilot whose devices start today, or a drone that did not fly,
    expects nothing and fires nothing."""
    tx = committed
    _both(tx)
    demo = T - timedelta(days=20)
    for dev in ("madiun-sl-001", "madiun-sl-002"):
        _device(tx, dev, "madiun", demo)
        tx.execute("UPDATE devices SET created_at = %s WHERE id = %s", (T, dev))
        _lights(tx, dev, [demo - timedelta(minutes=5 * k) for k in range(288)])
    start, _ = _yesterday(BANGKOK)
    takeoff = start + timedelta(hours=10)
    _device(tx, "mukdahan-dr-01", "mukdahan", takeoff)
    _device(tx, "mukdahan-dr-02", "mukdahan", None)  # did not fly: expects nothing
    with tx.cursor() as cur:  # 601 s at 1 Hz, every other point lost but the ends: 302
        cur.executemany(
            "INSERT INTO drone_readings (device_id, ts, flight_id, lat, lon)"
            " VALUES ('mukdahan-dr-01', %s, 'f1', 16.5, 104.7)",
            [(takeoff + timedelta(seconds=k),) for k in range(601) if k % 2 == 0 or k == 599],
        )
    tx.commit()
    refresh(tx, slack_s=0.0)
    fired = evaluate(tx, "kcity-completeness-yesterday")
    drone = round(100 * 302 / 601, 2)
    assert fired == {("madiun",): 0.0, ("mukdahan",): drone}
    assert _quality(tx, "madiun", JAKARTA, raw=True) == 0.0
    assert _quality(tx, "mukdahan", BANGKOK, raw=True) == drone
    rows = _portfolio_rows(tx, T)
    assert rows["madiun"]["completeness_yesterday_pct"] == 0.0
    assert rows["mukdahan"]["completeness_yesterday_pct"] == drone
    for pilot in ("madiun", "mukdahan"):
        assert "Data completeness yesterday (1)" in rows[pilot]["alert_rules"]
    tx.rollback()

    # The luminaires start service today, the flight was the day before yesterday: silence.
    later = T + timedelta(days=1)
    tx.execute("UPDATE devices SET commissioned_on = %s WHERE pilot_id = 'madiun'",
               (later.astimezone(JAKARTA).date(),))  # fmt: skip
    tx.commit()
    assert evaluate(tx, "kcity-completeness-yesterday", at=later) == {}
    rows = _portfolio_rows(tx, later)
    assert rows["madiun"]["completeness_yesterday_pct"] is None
    assert rows["mukdahan"]["completeness_yesterday_pct"] is None
    assert not any("Data completeness" in r["alert_rules"] for r in rows.values())
    tx.rollback()


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


def test_broker_dropping_messages(tx: psycopg.Connection) -> None:
    """Cumulative counts snapshotted by two workers (the same broker-wide figure): the rule
    fires on what was dropped in the last 15 minutes, across a broker restart too."""

    def snap(worker: str, minutes_ago: float, dropped: int | None) -> None:
        tx.execute(
            "INSERT INTO ingest_stats (ts, worker, received, stored, duplicates,"
            " dead_lettered, seq_gaps, batches, broker_dropped) VALUES (%s,%s,0,0,0,0,0,0,%s)",
            (T - timedelta(minutes=minutes_ago), worker, dropped),
        )

    for worker in ("w1", "w2"):
        snap(worker, 40, 500)  # dropped long ago: before the window
        snap(worker, 20, 700)
        snap(worker, 10, 700)
        snap(worker, 0.2, 700)
    assert evaluate(tx, "kcity-broker-dropped") == {}  # 200 dropped, 20 min ago: over
    snap("w1", 0.1, 730)  # 30 more, seen by w1 first
    assert evaluate(tx, "kcity-broker-dropped") == {(): 30.0}
    snap("w2", 0.05, 12)  # the broker restarted and has dropped 12 since
    snap("w1", 0.0, 12)
    assert evaluate(tx, "kcity-broker-dropped") == {(): 42.0}  # 30 before it, 12 after
    assert evaluate(tx, "kcity-broker-dropped", at=T + timedelta(minutes=16)) == {}


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


def _destination(lon: float, lat: float, bearing: float, km: float) -> tuple[float, float]:
    """The point `km` from (lon, lat) along `bearing` [rad] on the sphere of `_km`."""
    d, phi, lam = km / 6371.0088, math.radians(lat), math.radians(lon)
    phi2 = math.asin(math.sin(phi) * math.cos(d) + math.cos(phi) * math.sin(d) * math.cos(bearing))
    lam2 = lam + math.atan2(
        math.sin(bearing) * math.sin(d) * math.cos(phi),
        math.cos(d) - math.sin(phi) * math.sin(phi2),
    )
    return math.degrees(lam2), math.degrees(phi2)


def test_border_rule_finds_every_footprint_that_reaches_a_midpoint(tx: psycopg.Connection) -> None:
    """The rule meets points and midpoints through a grid of 0.01° cells; held here to every
    point against every midpoint (haversine). First small footprints just across the cell
    boundaries the border runs along (a rule that looked in the midpoint's own cell only
    would miss them), then footprints from 20 m to 2 km, just inside or just outside their
    reach, recent and stale."""
    import random

    rng = random.Random(5)
    # Along a parallel 0.0002° north of a cell boundary, then along a meridian 0.0002° east
    # of one; lengths well away from whole kilometres (pieces: ceil(km) by any formula).
    south = _destination(104.6702, 16.7002, math.pi, 4.5)[1]
    border = {
        "type": "LineString",
        "coordinates": [[104.6102, 16.7002], [104.6702, 16.7002], [104.6702, south]],
    }
    _pilot(tx, "mukdahan.toml", max_revisit_s=4 * 3600, border=border)
    _device(tx, "mukdahan-dr-01", "mukdahan", T)
    mids: list[tuple[float, float, float]] = []  # lon, lat, km along the border
    along = 0.0
    for (lon1, lat1), (lon2, lat2) in _edges(border):
        km = _km([lon1, lat1], [lon2, lat2])
        assert abs(km - round(km)) > 0.1
        parts = math.ceil(km)
        for k in range(parts):
            f = (k + 0.5) / parts
            mids.append((lon1 + (lon2 - lon1) * f, lat1 + (lat2 - lat1) * f, along + km * f))
        along += km
    hfov = 70.0

    def reach_km(agl: float) -> float:
        return agl * math.tan(math.radians(hfov / 2)) / 1000

    points: list[tuple[datetime, float, float, float]] = []  # ts, lon, lat, agl

    def add(lon: float, lat: float, agl: float, ratio: float, bearing: float) -> None:
        plon, plat = _destination(lon, lat, bearing, reach_km(agl) * ratio)
        # Away from every midpoint's reach boundary: the rule's flat-earth metric and the
        # haversine here differ by under 1 %.
        if any(0.97 < _km([plon, plat], [m[0], m[1]]) / reach_km(agl) < 1.03 for m in mids):
            return
        ago = rng.choice((rng.uniform(0.1, 3.9), rng.uniform(4.1, 7.9), rng.uniform(8.1, 9)))
        points.append((T - timedelta(hours=ago), plon, plat, agl))

    def check() -> None:
        tx.execute("DELETE FROM drone_readings")
        with tx.cursor() as cur:
            cur.executemany(
                "INSERT INTO drone_readings (device_id, ts, flight_id, lat, lon, agl_m, mode,"
                " camera_on, gps_fix) VALUES ('mukdahan-dr-01', %s, 'f', %s, %s, %s,"
                " 'patrol', true, 3)",
                [(ts, plat, plon, agl) for ts, plon, plat, agl in points],
            )
        # Per midpoint the newest point whose footprint reaches it, looking back 8 h.
        truth: dict[int, float] = {}
        for i, (mlon, mlat, _) in enumerate(mids):
            seen = [
                ts
                for ts, plon, plat, agl in points
                if ts > T - timedelta(hours=8) and _km([plon, plat], [mlon, mlat]) <= reach_km(agl)
            ]
            last = max(seen, default=None)
            if last is None or last < T - timedelta(hours=4):
                truth[i] = round((T - last).total_seconds() / 60, 1) if last else 480.0
        got: dict[int, float] = {}
        for (_, label), value in evaluate(tx, "kcity-border-uncovered").items():
            km = float(label.removeprefix("km "))  # the nearest midpoint (within 0.1 km)
            i = min(range(len(mids)), key=lambda j: abs(mids[j][2] - km))
            assert i not in got
            got[i] = value
        assert 0 < len(truth) < len(mids)
        assert got == pytest.approx(truth, abs=0.051)

    for i, (lon, lat, _) in enumerate(mids):  # 100 m footprints, 94 m away, across the line
        if i % 4:
            add(lon, lat, 150.0, 0.9, math.pi if lat == 16.7002 else 1.5 * math.pi)
    check()
    for lon, lat, _ in mids:
        for _ in range(rng.randint(0, 3)):
            agl = rng.choice((30.0, 150.0, rng.uniform(20, 2800)))
            add(lon, lat, agl, rng.choice((rng.uniform(0.2, 0.96), rng.uniform(1.04, 1.6))),
                rng.uniform(0, 2 * math.pi))  # fmt: skip
    check()
