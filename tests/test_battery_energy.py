"""`battery_kwh` end to end: a drone flight with a known battery voltage and current profile
is stored in TimescaleDB, `kcity coverage --json` reports its energy, and the figure must
match the profile's exact integral (closed form), not a rectangle sum of the same samples."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from devices.pilots import load_pilot
from kcity.registry import apply_pilot
from kcity.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PILOT = load_pilot(ROOT / "pilots" / "mukdahan.toml")
TAKEOFF = datetime(2026, 11, 5, 2, tzinfo=UTC)  # 09:00 on 2026-11-05 in Bangkok
FLIGHT_S = 3600
# Pack voltage sags linearly a -> a + b*T; current oscillates c + d*sin(w t) (always > 0).
A_V, B_V_PER_S, C_A, D_A, W_RAD_S = 52.0, -6.0 / FLIGHT_S, 18.0, 12.0, 2 * math.pi / 900


def _volts(t: float) -> float:
    return A_V + B_V_PER_S * t


def _amps(t: float) -> float:
    return C_A + D_A * math.sin(W_RAD_S * t)


def _exact_kwh(t_end: float) -> float:
    """∫0^T (a + b t)(c + d sin wt) dt, by parts, in kWh."""
    a, b, c, d, w = A_V, B_V_PER_S, C_A, D_A, W_RAD_S
    joules = (
        a * c * t_end
        + b * c * t_end**2 / 2
        + a * d * (1 - math.cos(w * t_end)) / w
        + b * d * (math.sin(w * t_end) / w**2 - t_end * math.cos(w * t_end) / w)
    )
    return joules / 3.6e6


def test_battery_kwh_matches_the_integral_of_the_flown_power_profile(
    settings: Settings, db_url: str
) -> None:
    assert PILOT.drone is not None and PILOT.drone.record_interval_s == 1.0
    with psycopg.connect(db_url) as conn:
        apply_pilot(conn, PILOT)
        conn.execute(
            "INSERT INTO devices (id, pilot_id, kind, password_hash)"
            " VALUES ('mukdahan-dr-e1', %s, 'hybrid_drone', 'x')",
            (PILOT.id,),
        )
        with conn.cursor().copy(
            "COPY drone_readings (device_id, ts, flight_id, lat, lon, agl_m, mode, camera_on,"
            " gps_fix, battery_v, battery_a, gen_power_w, fuel_l) FROM STDIN"
        ) as copy:
            for k in range(FLIGHT_S):  # 1 Hz samples; the last one stands for 1 s
                copy.write_row(
                    (
                        "mukdahan-dr-e1",
                        TAKEOFF + timedelta(seconds=k),
                        "e1",
                        PILOT.latitude + k * 1e-5,
                        PILOT.longitude,
                        80.0,
                        "patrol",
                        True,
                        3,
                        _volts(k),
                        _amps(k),
                        0.0,
                        10.0,
                    )
                )
        conn.commit()
    env = {
        "KCITY_DATABASE_URL": db_url,
        "PATH": "/usr/bin:/bin",
        "KCITY_DATA_DIR": str(settings.data_dir),
    }
    done = subprocess.run(
        [sys.executable, "-m", "kcity", "coverage", PILOT.id, "--from", "2026-11-05",
         "--to", "2026-11-06", "--json"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    truth = _exact_kwh(FLIGHT_S)
    assert 0.8 < truth < 1.0  # ~50 V x ~18 A for an hour
    # A left sum of 1 s steps differs from the integral by ~(P(T) - P(0)) x 0.5 s: < 1e-4.
    assert math.isclose(body["battery_kwh"], truth, rel_tol=1e-3)
    assert body["battery_charged_kwh"] == 0
    assert math.isclose(body["flight_hours"], 1.0, rel_tol=1e-6)
