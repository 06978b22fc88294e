"""The broker's dynamic-security file, written by us rather than by `mosquitto_ctrl`.

Why: `mosquitto_ctrl dynsec init` takes the admin password on its command line (visible in
`/proc/*/cmdline` to every local user), creates the file world-readable, and hashes with
Mosquitto 2.0's fixed 101 PBKDF2 iterations. The plugin reads each client's own iteration
count from the file, so the platform's accounts (admin, ingest) are written here with
`ITERATIONS` rounds of PBKDF2-SHA512, in a file created 0600 (never chmod'ed after), while
the broker is stopped. Device clients created at run time through the plugin's API keep
Mosquitto 2.0's 101 rounds (the API offers no other); their passwords are 192-bit random
strings, for which the iteration count adds nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any, Final

ITERATIONS: Final = 100_000  # per login of a platform account: ~0.1 s of broker CPU
SALT_BYTES: Final = 12

ADMIN_ACLS: Final = [
    {"acltype": "publishClientSend", "topic": "$CONTROL/dynamic-security/#", "allow": True},
    {"acltype": "publishClientReceive", "topic": "$CONTROL/dynamic-security/#", "allow": True},
    {"acltype": "subscribePattern", "topic": "$CONTROL/dynamic-security/#", "allow": True},
    {"acltype": "publishClientReceive", "topic": "$SYS/#", "allow": True},
    {"acltype": "subscribePattern", "topic": "$SYS/#", "allow": True},
    {"acltype": "publishClientReceive", "topic": "#", "allow": True},
    {"acltype": "subscribePattern", "topic": "#", "allow": True},
    {"acltype": "unsubscribePattern", "topic": "#", "allow": True},
]
DEFAULT_ACCESS: Final = {
    "publishClientSend": False,
    "publishClientReceive": True,
    "subscribe": False,
    "unsubscribe": True,
}


def pbkdf2(password: str, salt: bytes, iterations: int) -> bytes:
    """Mosquitto's `pw_sha512_pbkdf2`: PBKDF2-HMAC-SHA512, 64 bytes."""
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)


def verifies(client: dict[str, Any], password: str) -> bool:
    """Whether the client's stored hash is `password` (and strong enough to keep)."""
    try:
        salt = base64.b64decode(client["salt"])
        want = base64.b64decode(client["password"])
        rounds = int(client["iterations"])
    except (KeyError, ValueError, TypeError):
        return False
    return rounds >= ITERATIONS and hmac.compare_digest(pbkdf2(password, salt, rounds), want)


def _hashed(password: str) -> dict[str, Any]:
    salt = secrets.token_bytes(SALT_BYTES)
    digest = pbkdf2(password, salt, ITERATIONS)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": ITERATIONS,
    }


def platform_accounts(
    path: Path, accounts: dict[str, tuple[str, str, list[dict[str, Any]]]]
) -> bool:
    """Create or refresh `path` so each `username -> (password, rolename, acls)` logs in
    with a strong hash; keep every other client and role. True when the file was written.

    Only while the broker is stopped: the running plugin rewrites the file itself.
    """
    config: dict[str, Any] = (
        json.loads(path.read_text())
        if path.exists()
        else {"clients": [], "roles": [], "defaultACLAccess": DEFAULT_ACCESS}
    )
    clients = {c["username"]: c for c in config.setdefault("clients", [])}
    roles = {r["rolename"]: r for r in config.setdefault("roles", [])}
    changed = not path.exists()
    for username, (password, rolename, acls) in accounts.items():
        role = roles.get(rolename)
        if role is None or role.get("acls") != acls:
            if role is None:
                role = {"rolename": rolename}
                config["roles"].append(role)
                roles[rolename] = role
            role["acls"] = acls
            changed = True
        client = clients.get(username)
        if client is None:
            client = {"username": username, "roles": [{"rolename": rolename}]}
            config["clients"].append(client)
            clients[username] = client
            changed = True
        if not verifies(client, password):
            client.update(_hashed(password))
            changed = True
        if {"rolename": rolename} not in client.setdefault("roles", []):
            client["roles"].append({"rolename": rolename})
            changed = True
    if changed:
        write_private(path, json.dumps(config, indent=2))
    return changed


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text` through a file created 0600 (readable by its owner only
    from its first byte: no window between write and chmod)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
