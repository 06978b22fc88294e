"""Bulk onboarding (`kcity devices import FILE.csv --pilot P`): all devices or none.

The CSV is checked whole before anything is written, and every bad row is named in one
line; then the devices are registered and installed in the broker in one transaction.
The credentials are handed to ``deliver`` (a 0600 file, or JSON on stdout) *before* the
commit, so a device never exists without someone holding its password.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final, TypeVar

import psycopg

from devices.errors import DevicesError
from devices.ids import device_prefix, validate_id
from devices.kinds import get_kind
from kcity import registry
from kcity.errors import KcityError
from kcity.provisioning import Credentials
from kcity.stack.broker_admin import BrokerAdmin

COLUMNS: Final = (
    "device_id",
    "kind",
    "dev_eui",
    "commissioned_on",
    "latitude",
    "longitude",
    "notes",
)
MAX_NOTES: Final = 500
MAX_ROWS: Final = 10_000
_HEX16: Final = re.compile(r"^[0-9a-f]{16}$")
_T = TypeVar("_T")


class OnboardingError(KcityError):
    """The file cannot be imported; ``problems`` has one line per bad row."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        shown = "; ".join(self.problems[:20])
        more = f" (and {len(self.problems) - 20} more)" if len(self.problems) > 20 else ""
        super().__init__(f"nothing imported: {shown}{more}")


class OnboardingValueError(KcityError, ValueError):
    """One value of a device that cannot be used (a malformed DevEUI)."""


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """One device of the file, checked."""

    line: int
    device_id: str
    kind: str | None
    dev_eui: str | None
    commissioned_on: date | None
    latitude: float | None
    longitude: float | None
    notes: str | None


def normalize_dev_eui(value: str) -> str:
    """16 hex digits, lower case; separators (``:``, ``-``, spaces) are dropped."""
    eui = re.sub(r"[\s:-]", "", value).lower()
    if not _HEX16.match(eui):
        raise OnboardingValueError(f"dev_eui {value!r} is not 16 hexadecimal digits")
    return eui


def check_dev_eui(conn: psycopg.Connection, device_id: str, dev_eui: str) -> None:
    """``KcityError`` when another device already has this DevEUI."""
    owner = conn.execute(
        "SELECT id FROM devices WHERE dev_eui = %s AND id <> %s", (dev_eui, device_id)
    ).fetchone()
    conn.commit()
    if owner is not None:
        raise KcityError(f"dev_eui {dev_eui} already belongs to device {owner[0]}")


def set_dev_eui(conn: psycopg.Connection, device_id: str, dev_eui: str) -> None:
    """Give a provisioned device its LoRaWAN DevEUI (unique across devices)."""
    check_dev_eui(conn, device_id, dev_eui)
    conn.execute("UPDATE devices SET dev_eui = %s WHERE id = %s", (dev_eui, device_id))
    conn.commit()


def _coordinate(text: str, name: str, limit: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a number") from None
    if not math.isfinite(value) or not -limit <= value <= limit:
        raise ValueError(f"{name} {text!r} is not within ±{limit:g} degrees")
    return value


def _row(line: int, cells: dict[str, str]) -> DeviceRow:
    """One row, or ``ValueError`` saying everything that is wrong with it."""
    problems: list[str] = []

    def check(parse: Callable[[], _T]) -> _T | None:
        try:
            return parse()
        except (ValueError, DevicesError) as exc:
            problems.append(str(exc))
            return None

    device_id = cells.get("device_id", "").strip()
    check(lambda: validate_id(device_id, "device id"))
    kind_text = cells.get("kind", "").strip()
    kind = check(lambda: get_kind(kind_text).name) if kind_text else None
    eui_text = cells.get("dev_eui", "").strip()
    eui = check(lambda: normalize_dev_eui(eui_text)) if eui_text else None
    day_text = cells.get("commissioned_on", "").strip()
    day = check(lambda: _day(day_text)) if day_text else None
    lat_text, lon_text = cells.get("latitude", "").strip(), cells.get("longitude", "").strip()
    lat = lon = None
    if bool(lat_text) != bool(lon_text):
        problems.append("give both latitude and longitude, or neither")
    elif lat_text:
        lat = check(lambda: _coordinate(lat_text, "latitude", 90))
        lon = check(lambda: _coordinate(lon_text, "longitude", 180))
    notes = cells.get("notes", "").strip() or None
    if notes is not None and (len(notes) > MAX_NOTES or "\x00" in notes):
        problems.append(f"notes longer than {MAX_NOTES} characters (or holding NUL)")
    if problems:
        raise ValueError("; ".join(problems))
    return DeviceRow(line, device_id, kind, eui, day, lat, lon, notes)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"commissioned_on {text!r} is not a date (YYYY-MM-DD)") from None


def parse_devices_csv(text: str) -> list[DeviceRow]:
    """Every row of the file, or ``OnboardingError`` listing each bad row by line number."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    if "device_id" not in header:
        raise OnboardingError(
            [f"line 1: the header needs a device_id column ({', '.join(COLUMNS)})"]
        )
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise OnboardingError([f"line 1: unknown column(s) {', '.join(unknown)}"])
    reader.fieldnames = header
    rows: list[DeviceRow] = []
    problems: list[str] = []
    seen_ids: dict[str, int] = {}
    seen_euis: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        if None in record:
            problems.append(f"line {line}: more cells than columns")
            continue
        if not any((v or "").strip() for v in record.values()):
            continue  # blank line
        try:
            row = _row(line, {k: v or "" for k, v in record.items()})
        except ValueError as exc:
            problems.append(f"line {line}: {exc}")
            continue
        if row.device_id in seen_ids:
            problems.append(
                f"line {line}: device {row.device_id} repeats line {seen_ids[row.device_id]}"
            )
        seen_ids.setdefault(row.device_id, line)
        if row.dev_eui is not None:
            if row.dev_eui in seen_euis:
                problems.append(
                    f"line {line}: dev_eui {row.dev_eui} repeats line {seen_euis[row.dev_eui]}"
                )
            seen_euis.setdefault(row.dev_eui, line)
        rows.append(row)
    if len(rows) > MAX_ROWS:
        problems.append(f"{len(rows)} devices; import at most {MAX_ROWS} per file")
    if not rows and not problems:
        problems.append("the file lists no devices")
    if problems:
        raise OnboardingError(problems)
    return rows


def _registry_problems(conn: psycopg.Connection, rows: Sequence[DeviceRow]) -> list[str]:
    ids = [r.device_id for r in rows]
    euis = [r.dev_eui for r in rows if r.dev_eui]
    taken: dict[str, str] = dict(
        conn.execute("SELECT id, pilot_id FROM devices WHERE id = ANY(%s)", (ids,)).fetchall()
    )
    eui_owner: dict[str, str] = dict(
        conn.execute("SELECT dev_eui, id FROM devices WHERE dev_eui = ANY(%s)", (euis,)).fetchall()
    )
    problems = []
    for r in rows:
        if r.device_id in taken:
            problems.append(
                f"line {r.line}: device {r.device_id} already exists (pilot"
                f" {taken[r.device_id]}); 'kcity devices provision' rotates its password"
            )
        if r.dev_eui in eui_owner:
            problems.append(f"line {r.line}: dev_eui {r.dev_eui} is device {eui_owner[r.dev_eui]}")
    return problems


def set_details(conn: psycopg.Connection, device_id: str, row: DeviceRow) -> None:
    """Store the onboarding columns of one device."""
    conn.execute(
        "UPDATE devices SET dev_eui = %s, commissioned_on = %s, latitude = %s, longitude = %s,"
        " notes = %s WHERE id = %s",
        (row.dev_eui, row.commissioned_on, row.latitude, row.longitude, row.notes, device_id),
    )


def import_devices(
    conn: psycopg.Connection,
    admin: BrokerAdmin,
    pilot_id: str,
    rows: Sequence[DeviceRow],
    deliver: Callable[[list[Credentials]], None],
    *,
    mqtt_host: str = "127.0.0.1",
    mqtt_port: int = 1883,
    mqtt_tls_port: int = 8883,
) -> list[Credentials]:
    """Register and install every device, hand over their credentials, then commit."""
    registry.get_pilot(conn, pilot_id)  # NotFound for an unknown pilot
    installed: list[str] = []
    try:
        with conn.transaction():
            problems = _registry_problems(conn, rows)
            if problems:
                raise OnboardingError(problems)
            made: list[Credentials] = []
            for r in rows:
                password = registry.create_device(conn, pilot_id, r.device_id, r.kind)
                set_details(conn, r.device_id, r)
                kind = registry.get_device(conn, r.device_id).kind
                made.append(
                    Credentials(
                        device_id=r.device_id,
                        pilot=pilot_id,
                        kind=kind,
                        username=r.device_id,
                        password=password,
                        mqtt_host=mqtt_host,
                        mqtt_port=mqtt_port,
                        mqtt_tls_port=mqtt_tls_port,
                        topic_prefix=device_prefix(pilot_id, r.device_id),
                        rotated=False,
                    )
                )
            for c in made:
                admin.add_device(pilot_id, c.device_id, c.password)
                installed.append(c.device_id)
            deliver(made)
    except BaseException:
        for device_id in installed:  # the registry rolled back: so does the broker
            admin.remove_device(device_id)
        raise
    return made
