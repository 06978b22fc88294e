"""Write the broker's dynamic-security file for the compose deployment (run by init.sh).

The same code as the local stack (`kcity.stack.dynsec_file`): the admin account, and the
ingest account when its password is set, hashed with PBKDF2-SHA512 at 100,000 rounds, in a
file created 0600. Passwords come from the environment, never from a command line (where
`mosquitto_ctrl dynsec init` would take them). Run before the broker starts.
"""

from __future__ import annotations

import sys
from pathlib import Path

from kcity.settings import load_settings
from kcity.stack.broker_admin import INGEST_ROLE, ingest_acls
from kcity.stack.dynsec_file import ADMIN_ACLS, platform_accounts


def main(path: Path) -> None:
    s = load_settings()
    if not s.mqtt_admin_password:
        sys.exit("broker-init: set KCITY_MQTT_ADMIN_PASSWORD")
    accounts = {s.mqtt_admin_username: (s.mqtt_admin_password, "admin", ADMIN_ACLS)}
    if s.mqtt_password:
        accounts[s.mqtt_username] = (s.mqtt_password, INGEST_ROLE, ingest_acls())
    written = platform_accounts(path, accounts)
    print(f"broker-init: dynamic-security file {'written' if written else 'up to date'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
