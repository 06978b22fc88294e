"""Streaming a pilot simulator through MQTT with the device SDK, as field devices would.

The simulators (`devices.sim`) are pure: they say what each device sends and when. Here
each simulated device is provisioned (fresh credentials, installed in the broker), gets a
`DeviceClient` with its own durable outbox, and publishes its batches in the order the
devices could send them — as fast as possible, or in real time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

from devices.commands import DimmingProfile
from devices.pilots import Pilot
from devices.sdk import DeviceClient
from devices.sim import (
    Batch,
    DroneSimConfig,
    StreetlightSimConfig,
    simulate_drones,
    simulate_streetlights,
)
from kcity.errors import KcityError
from kcity.provisioning import provision_device
from kcity.settings import Settings
from kcity.stack.broker_admin import platform_admin


class SimulationError(KcityError):
    pass


@dataclass
class Streamed:
    """What a simulation run published, per device."""

    records: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)

    @property
    def total_records(self) -> int:
        return sum(self.records.values())


def streetlight_config(
    pilot: Pilot,
    *,
    devices: int,
    days: int,
    start: date,
    seed: int,
    faults: bool = True,
    dimming: DimmingProfile | None = None,
) -> StreetlightSimConfig:
    sl = pilot.streetlight
    if sl is None:
        raise SimulationError(f"{pilot.id} is a {pilot.kind} pilot, not a streetlight pilot")
    return StreetlightSimConfig(
        start=start,
        days=days,
        seed=seed,
        pilot_id=pilot.id,
        latitude=pilot.latitude,
        longitude=pilot.longitude,
        timezone=pilot.timezone,
        devices=devices,
        control_group=tuple(sl.control_group),
        rated_power_w=sl.rated_power_w,
        record_interval_s=int(sl.record_interval_s),
        baseline_start=sl.baseline_start,
        baseline_end=sl.baseline_end,
        faults=faults,
        dimming=dimming,
    )


def _line(geometry: dict[str, Any]) -> list[tuple[float, float]]:
    coords = geometry["coordinates"]
    if geometry["type"].startswith("Multi"):
        coords = max(coords, key=len)
    if geometry["type"].endswith("Polygon"):
        coords = coords[0]
    return [(float(x), float(y)) for x, y, *_ in coords]


def drone_config(
    pilot: Pilot, *, devices: int, days: int, start: date, seed: int, faults: bool = True
) -> DroneSimConfig:
    d = pilot.drone
    if d is None:
        raise SimulationError(f"{pilot.id} is a {pilot.kind} pilot, not a drone pilot")
    border, aoi = _line(d.border), _line(d.aoi)
    base = (
        (d.base_lat, d.base_lon)
        if d.base_lat is not None and d.base_lon is not None
        else (pilot.latitude, pilot.longitude)
    )
    return DroneSimConfig(
        start=start,
        days=days,
        seed=seed,
        pilot_id=pilot.id,
        border=border,
        aoi=aoi,
        base=base,
        devices=devices,
        timezone=pilot.timezone,
        record_interval_s=d.record_interval_s,
        hfov_deg=d.hfov_deg,
        glitches=faults,
    )


def simulator(pilot: Pilot, kind: str, **options: Any) -> Any:
    if kind == "streetlights":
        return simulate_streetlights(streetlight_config(pilot, **options))
    return simulate_drones(drone_config(pilot, **options))


def stream(
    conn: psycopg.Connection,
    settings: Settings,
    pilot: Pilot,
    batches: Iterable[Batch],
    *,
    realtime: bool = False,
    progress: Callable[[int], None] = lambda n: None,
    flush_timeout: float = 600.0,
) -> Streamed:
    """Publish `batches` through one SDK client per device; return what was published."""
    outboxes = settings.data_dir / "outbox"
    outboxes.mkdir(parents=True, exist_ok=True)
    clients: dict[str, tuple[int, DeviceClient]] = {}
    passwords: dict[str, str] = {}
    streamed = Streamed()
    first: tuple[float, float] | None = None
    with platform_admin(settings) as admin:
        try:
            for batch in batches:
                if realtime:
                    first = first or (batch.deliver_at, time.monotonic())
                    time.sleep(
                        max(0.0, batch.deliver_at - first[0] - (time.monotonic() - first[1]))
                    )
                if batch.device_id not in passwords:
                    creds = provision_device(conn, admin, pilot.id, batch.device_id, pilot.kind)
                    conn.commit()  # the ingest service must see the device before its data
                    passwords[batch.device_id] = creds.password
                client = _client(clients, batch, pilot, settings, passwords, outboxes)
                if batch.channel == "telemetry":
                    client.publish(batch.items)
                    streamed.records[batch.device_id] = streamed.records.get(
                        batch.device_id, 0
                    ) + len(batch.items)
                else:
                    client.publish_events(batch.items)
                    streamed.events[batch.device_id] = streamed.events.get(
                        batch.device_id, 0
                    ) + len(batch.items)
                progress(len(batch.items))
        finally:
            for _, client in clients.values():
                _finish(client, flush_timeout)
    return streamed


def _client(
    clients: dict[str, tuple[int, DeviceClient]],
    batch: Batch,
    pilot: Pilot,
    settings: Settings,
    passwords: dict[str, str],
    outboxes: Path,
) -> DeviceClient:
    """The device's client for this batch's boot: a reboot closes the old one first."""
    current = clients.get(batch.device_id)
    if current and current[0] == batch.boot:
        return current[1]
    if current:
        _finish(current[1], 600.0)
    client = DeviceClient(
        pilot.id,
        batch.device_id,
        pilot.kind,
        settings.mqtt_host,
        settings.mqtt_port,
        batch.device_id,
        passwords[batch.device_id],
        outbox_path=outboxes / f"{batch.device_id}.sqlite",
        boot=batch.boot,
    )
    client.connect()
    clients[batch.device_id] = (batch.boot, client)
    return client


def _finish(client: DeviceClient, timeout: float) -> None:
    try:
        if not client.flush(timeout):
            raise SimulationError("the broker did not acknowledge every message in time")
    finally:
        client.close()


def wait_until_stored(
    conn: psycopg.Connection,
    table: str,
    streamed: Streamed,
    timeout: float = 600.0,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Wait for the ingest service to commit what was streamed; return the rows found."""
    ids = list(streamed.records)
    deadline = time.monotonic() + timeout
    stored = 0
    while time.monotonic() < deadline:
        row = conn.execute(
            f"SELECT count(*) FROM {table} WHERE device_id = ANY(%s)", (ids,)
        ).fetchone()
        conn.commit()
        progress(int(row[0]) - stored if row else 0)
        stored = int(row[0]) if row else 0
        if stored >= streamed.total_records:
            return stored
        time.sleep(0.5)
    raise SimulationError(
        f"only {stored:,} of {streamed.total_records:,} records reached the database in "
        f"{timeout:.0f} s: is the ingest service running? (kcity status)"
    )
