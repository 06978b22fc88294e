"""The pilot and device registry on a real database: pilots, passwords, rotation, revocation."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from devices.errors import InvalidId, UnknownKind
from devices.pilots import Pilot, load_pilot
from kcity import provisioning, registry
from kcity.errors import BrokerError, NotFound
from kcity.registry import DeviceConflict, IdUnavailable
from kcity.settings import Settings
from kcity.stack.broker_admin import BrokerAdmin

PILOTS = Path(__file__).resolve().parents[1] / "pilots"


def a_pilot(pilot_id: str, file: str = "madiun.toml") -> Pilot:
    return load_pilot(PILOTS / file).model_copy(update={"id": pilot_id})


@pytest.fixture
def pilot(conn: psycopg.Connection, uid: str) -> Pilot:
    p = a_pilot(f"reg-{uid}")
    registry.apply_pilot(conn, p)
    return p


def test_apply_pilot_creates_then_updates(conn: psycopg.Connection, uid: str) -> None:
    p = a_pilot(f"apply-{uid}")
    assert registry.apply_pilot(conn, p) is True
    renamed = p.model_copy(update={"name": "Madiun, phase two"})
    assert registry.apply_pilot(conn, renamed) is False
    back = registry.get_pilot(conn, p.id)
    assert back == renamed
    assert back.streetlight is not None and back.streetlight.control_group[0] == "madiun-sl-001"
    listed = {s.id: s for s in registry.list_pilots(conn)}
    assert listed[p.id].name == "Madiun, phase two"
    assert listed[p.id].devices == 0


def test_drone_pilot_keeps_its_geometry(conn: psycopg.Connection, uid: str) -> None:
    p = a_pilot(f"drone-{uid}", "mukdahan.toml")
    registry.apply_pilot(conn, p)
    back = registry.get_pilot(conn, p.id)
    assert back.drone is not None and p.drone is not None
    assert back.drone.aoi == p.drone.aoi
    assert back.kind == "hybrid_drone"


def test_unknown_pilot(conn: psycopg.Connection) -> None:
    with pytest.raises(NotFound, match="unknown pilot 'atlantis'"):
        registry.get_pilot(conn, "atlantis")
    with pytest.raises(NotFound):
        registry.create_device(conn, "atlantis", "atlantis-01")
    with pytest.raises(NotFound):
        registry.list_devices(conn, "atlantis")


def test_password_is_strong_and_only_hashed(
    conn: psycopg.Connection, pilot: Pilot, uid: str
) -> None:
    device = f"sl-{uid}"
    password = registry.create_device(conn, pilot.id, device)
    assert len(password) >= 32
    row = conn.execute(
        "SELECT password_hash, kind FROM devices WHERE id = %s", (device,)
    ).fetchone()
    assert row is not None
    stored, kind = row
    assert password not in stored and stored.startswith("scrypt$")
    assert kind == "streetlight"  # the pilot's kind by default
    assert registry.check_password(conn, device, password)
    assert not registry.check_password(conn, device, password + "x")
    other = registry.create_device(conn, pilot.id, f"sl2-{uid}")
    assert other != password
    assert registry.hash_password(password) != stored  # salted


def test_explicit_and_unknown_kind(conn: psycopg.Connection, pilot: Pilot, uid: str) -> None:
    registry.create_device(conn, pilot.id, f"gen-{uid}", "generic")
    assert registry.get_device(conn, f"gen-{uid}").kind == "generic"
    with pytest.raises(UnknownKind, match="submarine"):
        registry.create_device(conn, pilot.id, f"sub-{uid}", "submarine")
    assert not registry.device_exists(conn, f"sub-{uid}")


@pytest.mark.parametrize("bad", ["A", "Lamp-01", "lamp_01", "-lamp", "x" * 64, "lamp/01", "+"])
def test_bad_device_id(conn: psycopg.Connection, pilot: Pilot, bad: str) -> None:
    with pytest.raises(InvalidId):
        registry.create_device(conn, pilot.id, bad)


def test_reprovision_rotates_the_password(conn: psycopg.Connection, pilot: Pilot, uid: str) -> None:
    device = f"rot-{uid}"
    first = registry.create_device(conn, pilot.id, device)
    registry.revoke_device(conn, device)
    second = registry.create_device(conn, pilot.id, device)
    assert first != second
    assert not registry.check_password(conn, device, first)
    assert registry.check_password(conn, device, second)
    assert registry.get_device(conn, device).active  # re-activated


def test_device_ids_are_global(conn: psycopg.Connection, pilot: Pilot, uid: str) -> None:
    other = a_pilot(f"other-{uid}")
    registry.apply_pilot(conn, other)
    device = f"dup-{uid}"
    registry.create_device(conn, pilot.id, device)
    with pytest.raises(IdUnavailable, match="not available") as refused:
        registry.create_device(conn, other.id, device)
    assert pilot.id not in str(refused.value)
    with pytest.raises(DeviceConflict, match="'streetlight' device"):
        registry.create_device(conn, pilot.id, device, "generic")


def test_revoke_and_list(conn: psycopg.Connection, pilot: Pilot, uid: str) -> None:
    keep, drop = f"keep-{uid}", f"drop-{uid}"
    registry.create_device(conn, pilot.id, keep)
    password = registry.create_device(conn, pilot.id, drop)
    revoked = registry.revoke_device(conn, drop)
    assert revoked.revoked_at is not None and not revoked.active
    assert registry.revoke_device(conn, drop).revoked_at == revoked.revoked_at  # idempotent
    assert not registry.check_password(conn, drop, password)
    with pytest.raises(NotFound):
        registry.revoke_device(conn, f"ghost-{uid}")
    listed = {d.id: d for d in registry.list_devices(conn, pilot.id)}
    assert set(listed) == {keep, drop}
    assert listed[keep].active and not listed[drop].active
    assert {keep, drop} <= {d.id for d in registry.list_devices(conn)}
    counts = {s.id: s.devices for s in registry.list_pilots(conn)}
    assert counts[pilot.id] == 1  # only active devices count


def test_last_seen_comes_from_status_and_messages(
    conn: psycopg.Connection, pilot: Pilot, uid: str
) -> None:
    device = f"seen-{uid}"
    registry.create_device(conn, pilot.id, device)
    assert registry.get_device(conn, device).last_seen is None
    conn.execute(
        "INSERT INTO device_status (device_id, state, payload, received_at)"
        " VALUES (%s, 'online', '{}', '2030-01-02T03:04:05Z')",
        (device,),
    )
    seen = registry.get_device(conn, device).last_seen
    assert seen is not None and seen.year == 2030
    conn.execute("UPDATE devices SET last_seen = '2031-01-01T00:00:00Z' WHERE id = %s", (device,))
    later = registry.get_device(conn, device).last_seen
    assert later is not None and later.year == 2031


def test_broker_refusal_rolls_the_registry_back(
    conn: psycopg.Connection, pilot: Pilot, uid: str, settings: Settings
) -> None:
    s = settings
    admin = BrokerAdmin(
        s.mqtt_host, s.mqtt_port, s.mqtt_admin_username, s.mqtt_admin_password, timeout=1.0
    )
    admin.close()  # commands now go unanswered
    device = f"rollback-{uid}"
    with pytest.raises(BrokerError):
        provisioning.provision_device(conn, admin, pilot.id, device)
    assert not registry.device_exists(conn, device)
