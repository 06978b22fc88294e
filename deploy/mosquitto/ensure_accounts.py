"""Create or refresh the ingest service's broker account (compose service "broker-accounts").

Runs once the broker is healthy, with the same code `kcity up` uses for the local stack:
the admin account (created by init.sh) adds the ingest role and client through the
dynamic-security API. Idempotent: a second run re-creates the account with the current
password and ACLs. The client is deleted *before* its role is replaced: Mosquitto 2.0.11
(Debian 12) crashes when a role still attached to a client is deleted.
"""

from __future__ import annotations

from kcity.settings import load_settings
from kcity.stack.broker_admin import broker_admin


def main() -> None:
    s = load_settings()
    with broker_admin(
        s.mqtt_host, s.mqtt_port, s.mqtt_admin_username, s.mqtt_admin_password
    ) as admin:
        admin.command(
            {"command": "deleteClient", "username": s.mqtt_username}, ok_errors=("not found",)
        )
        admin.add_ingest_account(s.mqtt_username, s.mqtt_password)
    print(f"broker-accounts: ingest account {s.mqtt_username!r} ready")


if __name__ == "__main__":
    main()
