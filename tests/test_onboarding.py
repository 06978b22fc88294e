"""Bulk onboarding (`kcity devices import`): a good file registers every device and its
credentials work on the broker; a file with a bad row registers none and names the row."""

from __future__ import annotations

import csv
import json
import stat
from pathlib import Path

import psycopg
import pytest

from kcity.onboarding import OnboardingError, parse_devices_csv
from kcity.settings import Settings
from tests.test_api import connack
from tests.test_provisioning import cli_env, kcity, ok

HEADER = "device_id,kind,dev_eui,commissioned_on,latitude,longitude,notes\n"


@pytest.fixture
def env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    environment = cli_env(settings, tmp_path)
    ok(kcity(environment, "pilots", "apply", "pilots/madiun.toml"))
    return environment


def test_good_file_registers_every_device(
    env: dict[str, str], settings: Settings, tmp_path: Path, uid: str, db_url: str
) -> None:
    a, b = f"imp-a-{uid}", f"imp-b-{uid}"
    eui = uid + "00000001"
    (tmp_path / "devices.csv").write_text(
        HEADER
        + f"{a},,{eui[:8].upper()}:{eui[8:]},2026-09-01,-7.6301,111.5202,pole 14 by the bridge\n"
        + f"{b},generic,,,,,\n"
    )
    out = tmp_path / "creds.csv"
    done = ok(
        kcity(
            env,
            "devices",
            "import",
            str(tmp_path / "devices.csv"),
            "--pilot",
            "madiun",
            "--out",
            str(out),
        )
    )
    assert "imported 2 devices" in done
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    creds = {row["device_id"]: row for row in csv.DictReader(out.read_text().splitlines())}
    assert set(creds) == {a, b}
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT id, kind, dev_eui, commissioned_on::text, latitude, longitude, notes"
            " FROM devices WHERE id IN (%s, %s) ORDER BY id",
            (a, b),
        ).fetchall()
    assert rows == [
        (a, "streetlight", eui, "2026-09-01", -7.6301, 111.5202, "pole 14 by the bridge"),
        (b, "generic", None, None, None, None, None),
    ]
    # The broker accepts the device with the password from the file, and only that one.
    assert connack(settings, a, creds[a]["password"]) == 0
    assert connack(settings, a, creds[b]["password"]) != 0


def test_bad_row_imports_nothing(
    env: dict[str, str], tmp_path: Path, uid: str, db_url: str
) -> None:
    good, bad, twice = f"imp-g-{uid}", f"imp-x-{uid}", f"imp-t-{uid}"
    (tmp_path / "devices.csv").write_text(
        HEADER
        + f"{good},,,,,,\n"
        + f"{bad},,not-an-eui,2026-13-01,,,\n"
        + f"{twice},,,,-7.6,,\n"
        + f"{good},,,,,,\n"
    )
    done = kcity(
        env, "devices", "import", str(tmp_path / "devices.csv"), "--pilot", "madiun", "--json"
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert [line.split(": ")[3] for line in lines[:-1]] == ["line 3", "line 4", "line 5"]
    assert "dev_eui" in lines[0] and "latitude" in lines[1] and "repeats line 2" in lines[2]
    assert lines[-1] == "kcity: error: nothing imported (3 problems)"
    assert done.stdout == ""
    with psycopg.connect(db_url) as conn:
        found = conn.execute("SELECT count(*) FROM devices WHERE id LIKE %s", (f"imp-%-{uid}",))
        assert found.fetchone() == (0,)


def test_existing_device_refused_and_json_output(
    env: dict[str, str], tmp_path: Path, uid: str
) -> None:
    old, new = f"imp-o-{uid}", f"imp-n-{uid}"
    ok(kcity(env, "devices", "provision", "madiun", old))
    (tmp_path / "d.csv").write_text(f"device_id\n{new}\n{old}\n")
    done = kcity(env, "devices", "import", str(tmp_path / "d.csv"), "--pilot", "madiun", "--json")
    assert done.returncode == 1 and f"line 3: device {old} already exists" in done.stderr
    (tmp_path / "e.csv").write_text(f"device_id\n{new}\n")
    creds = json.loads(
        ok(kcity(env, "devices", "import", str(tmp_path / "e.csv"), "--pilot", "madiun", "--json"))
    )
    assert [c["device_id"] for c in creds] == [new] and len(creds[0]["password"]) >= 32


def test_parse_rejects_unknown_columns_and_bad_kinds() -> None:
    with pytest.raises(OnboardingError, match="unknown column"):
        parse_devices_csv("device_id,colour\nx1,red\n")
    with pytest.raises(OnboardingError, match=r"line 2: .*kind"):
        parse_devices_csv("device_id,kind\nab-1,toaster\n")
    rows = parse_devices_csv("device_id,dev_eui\nab-1,70-B3-D5-7E-D0-00-00-01\n")
    assert rows[0].dev_eui == "70b3d57ed0000001"


def test_provision_with_a_dev_eui(env: dict[str, str], uid: str, db_url: str) -> None:
    device, other = f"eui-a-{uid}", f"eui-b-{uid}"
    eui = uid + "0000abcd"
    ok(kcity(env, "devices", "provision", "madiun", device, "--dev-eui", eui.upper(), "--json"))
    taken = kcity(env, "devices", "provision", "madiun", other, "--dev-eui", eui)
    assert taken.returncode == 1 and f"belongs to device {device}" in taken.stderr
    bad = kcity(env, "devices", "provision", "madiun", other, "--dev-eui", "12")
    assert bad.returncode == 1 and "16 hexadecimal digits" in bad.stderr
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT id, dev_eui FROM devices WHERE id IN (%s, %s)", (device, other)
        ).fetchall()
    assert rows == [(device, eui)]
