"""`kcity import tlog FILE --pilot P --device D`: replay a drone's MAVLink log through MQTT.

The log goes through the device SDK with the device's own credentials, exactly as a live
gateway would send it, so it is checked, deduplicated and stored by the same ingest path.
Credentials: pass `--password`; without it a device that does not exist yet is provisioned
on the fly (its new password is printed once), while an existing device is refused rather
than having its password rotated under a gateway in the field. The device's outbox lives
in `<data_dir>/outbox/`, so an import cut short is completed by the next one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from devices.mavlink import read_tlog
from devices.payloads import MAX_ITEMS, DroneRecord
from devices.sdk import DeviceClient
from kcity import provisioning, registry
from kcity.db import connect
from kcity.errors import BrokerError, KcityError
from kcity.settings import Settings
from kcity.stack.broker_admin import broker_admin

app = typer.Typer(help="Import recorded device data.", no_args_is_help=True)

KIND = "hybrid_drone"


@app.command()
def tlog(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="MAVLink telemetry log (.tlog).")],
    pilot: Annotated[str, typer.Option("--pilot", help="Pilot id (a hybrid_drone pilot).")],
    device: Annotated[str, typer.Option("--device", help="Device id of the drone.")],
    password: Annotated[
        str | None, typer.Option("--password", help="The device's MQTT password.")
    ] = None,
    flight_id: Annotated[
        str | None, typer.Option("--flight-id", help="Flight id (default: the file name).")
    ] = None,
    hfov: Annotated[
        float | None, typer.Option("--hfov", help="Camera horizontal field of view [deg].")
    ] = None,
    fuel_capacity_l: Annotated[
        float | None, typer.Option("--fuel-capacity-l", help="Tank size, for fuel remaining.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the broker.")] = 120.0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Stream a MAVLink telemetry log as hybrid_drone records of one device."""
    s: Settings = ctx.obj
    flight = flight_id or file.stem[:64] or "flight"
    good, skipped, first_problem = _convert(file, flight, hfov, fuel_capacity_l)
    if not good:
        raise KcityError(f"{file}: no usable GLOBAL_POSITION_INT in the log")
    with connect(s.database_url) as conn:
        if registry.get_pilot(conn, pilot).kind != KIND:
            raise KcityError(f"pilot {pilot!r} is not a {KIND} pilot")
        provisioned = None
        if password is None:
            if registry.device_exists(conn, device):
                raise KcityError(
                    f"device {device!r} exists: pass its --password (or issue a new one with "
                    "'kcity devices provision', which cuts off the old one)"
                )
            with broker_admin(
                s.mqtt_host, s.mqtt_port, s.mqtt_admin_username, s.mqtt_admin_password
            ) as admin:
                provisioned = provisioning.provision_device(
                    conn,
                    admin,
                    pilot,
                    device,
                    KIND,
                    mqtt_host=s.mqtt_host,
                    mqtt_port=s.mqtt_port,
                    mqtt_tls_port=s.mqtt_tls_port,
                )
            password = provisioned.password
        else:
            found = registry.get_device(conn, device)
            if found.pilot_id != pilot or found.kind != KIND:
                raise KcityError(f"device {device!r} is a {found.kind} of pilot {found.pilot_id}")
            if not registry.check_password(conn, device, password):
                raise KcityError(f"wrong password for device {device!r} (or it is revoked)")
    outbox = s.data_dir / "outbox" / f"{device}.sqlite"
    with DeviceClient(
        pilot, device, KIND, s.mqtt_host, s.mqtt_port, device, password, outbox_path=outbox
    ) as client:
        if not client.connect(timeout=min(timeout, 15.0)):
            raise BrokerError(f"cannot reach the broker at {s.mqtt_host}:{s.mqtt_port}")
        for start in range(0, len(good), MAX_ITEMS):
            client.publish(good[start : start + MAX_ITEMS])
        if not client.flush(timeout):
            raise BrokerError(
                f"the broker has not acknowledged {client.backlog} records within {timeout} s; "
                f"they wait in {outbox} and go out with the next import"
            )
    _report(file, flight, device, pilot, len(good), skipped, first_problem, provisioned, as_json)


def _convert(
    file: Path, flight: str, hfov: float | None, fuel_capacity_l: float | None
) -> tuple[list[dict[str, Any]], int, str | None]:
    """Records that pass the contract, how many did not, and the first reason why."""
    good: list[dict[str, Any]] = []
    skipped = 0
    first: str | None = None
    for record in read_tlog(file, flight, hfov, fuel_capacity_l=fuel_capacity_l):
        try:
            DroneRecord.model_validate(record)
        except ValidationError as exc:
            skipped += 1
            if first is None:
                err = exc.errors(include_url=False)[0]
                first = f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            continue
        good.append(record)
    return good, skipped, first


def _report(
    file: Path,
    flight: str,
    device: str,
    pilot: str,
    sent: int,
    skipped: int,
    first_problem: str | None,
    provisioned: provisioning.Credentials | None,
    as_json: bool,
) -> None:
    if as_json:
        body: dict[str, Any] = {
            "file": str(file),
            "pilot": pilot,
            "device_id": device,
            "flight_id": flight,
            "records": sent,
            "skipped": skipped,
            "skipped_reason": first_problem,
            "provisioned": provisioned is not None,
        }
        if provisioned is not None:
            body["password"] = provisioned.password
        print(json.dumps(body, indent=2))
        return
    if provisioned is not None:
        print(f"provisioned device {device} for pilot {pilot}; password: {provisioned.password}")
    print(f"sent {sent} records of flight {flight} from {file} as {device}")
    if skipped:
        print(f"skipped {skipped} records that break the contract, e.g. {first_problem}")
