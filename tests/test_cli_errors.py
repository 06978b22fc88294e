"""User mistakes end in one readable line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kcity.stack.processes import free_port


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("KCITY_")}
    full.update({"KCITY_DATA_DIR": str(tmp_path / ".kcity"), **env})
    return subprocess.run(
        [sys.executable, "-m", "kcity", *args],
        env=full,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("kcity: error:")
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0]


def test_unreachable_database(tmp_path: Path) -> None:
    url = f"postgresql://kcity@127.0.0.1:{free_port()}/kcity"
    assert_one_line_error(
        run(["db", "migrate"], tmp_path, KCITY_DATABASE_URL=url), "cannot reach the database"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KCITY_DATABASE_URL", "mysql://nowhere"),
        ("KCITY_DATABASE_URL", "postgresql://h:notaport/db"),
        ("KCITY_MQTT_URL", "tcp//broker"),
        ("KCITY_API_PORT", "eighty"),
    ],
)
def test_malformed_settings(tmp_path: Path, name: str, value: str) -> None:
    assert_one_line_error(run(["status"], tmp_path, **{name: value}), name)


def test_unknown_command_and_option(tmp_path: Path) -> None:
    assert_one_line_error(run(["fly"], tmp_path), "fly")
    assert_one_line_error(run(["status", "--colour"], tmp_path), "--colour")
