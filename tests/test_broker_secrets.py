"""Issue #17's secrets on disk and in argv: the broker's security file is 0600 and owned by
the broker's user, the platform's accounts are hashed with a strong PBKDF2 iteration count,
and `stack.env` is created private (never chmod'ed after it was written)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import stat
from pathlib import Path

import pytest

from kcity.settings import Settings
from kcity.stack.broker_admin import BrokerAdmin
from kcity.stack.dynsec_file import ITERATIONS, write_private
from kcity.stack.local import LocalStack, ensure_secrets
from kcity.stack.mosquitto import SERVER_USER


def check_private(path: Path) -> None:
    info = path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600, oct(info.st_mode)
    if os.geteuid() == 0:
        assert info.st_uid == pwd.getpwnam(SERVER_USER).pw_uid


def test_security_file_is_private_and_platform_hashes_are_strong(
    stack: LocalStack, broker_admin: BrokerAdmin, uid: str
) -> None:
    s = stack.settings
    path = stack.mosquitto.dynsec
    check_private(path)
    clients = {c["username"]: c for c in json.loads(path.read_text())["clients"]}
    for username, password in (
        (s.mqtt_admin_username, s.mqtt_admin_password),
        (s.mqtt_username, s.mqtt_password),
    ):
        c = clients[username]
        assert c["iterations"] >= ITERATIONS >= 100_000
        # Recomputed with hashlib's PBKDF2 as Mosquitto documents it (SHA-512, 64 bytes).
        digest = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(c["salt"]), c["iterations"], 64
        )
        assert base64.b64encode(digest).decode() == c["password"]
    # The running plugin rewrites the file when a device is provisioned: still private.
    broker_admin.add_device("madiun", f"sec-{uid}", "a-device-password")
    assert f"sec-{uid}" in path.read_text()
    check_private(path)


def test_stack_env_is_created_private_and_never_chmoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_chmod(*args: object, **kw: object) -> None:
        raise AssertionError("chmod after the secret was written")

    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(Path, "chmod", no_chmod)
    monkeypatch.setenv("KCITY_DATA_DIR", str(tmp_path / "kc"))
    settings = ensure_secrets(Settings(data_dir=tmp_path / "kc"))
    env = tmp_path / "kc" / "stack.env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert settings.mqtt_password and settings.mqtt_password in env.read_text()
    write_private(tmp_path / "other", "x")
    assert stat.S_IMODE((tmp_path / "other").stat().st_mode) == 0o600
