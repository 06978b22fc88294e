"""Provisioning on the running broker through Mosquitto's dynamic-security API.

Commands are JSON documents published to `$CONTROL/dynamic-security/v1`; the plugin answers
on `.../response`. Nothing here restarts the broker: a new device can connect at once, and a
deleted one is disconnected by the plugin.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from devices.ids import is_reserved
from ingest.config import BROKER_STATS
from kcity.errors import BrokerError
from kcity.settings import Settings

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
INGEST_ROLE = "kcity-ingest"


def device_acls(pilot: str, device: str) -> list[dict[str, Any]]:
    """DESIGN §4: publish only under its own prefix, read only its own `cmd` and `feedback`."""
    prefix = f"kcity/v1/{pilot}/{device}"
    return [
        {"acltype": "publishClientSend", "topic": f"{prefix}/telemetry", "allow": True},
        {"acltype": "publishClientSend", "topic": f"{prefix}/event", "allow": True},
        {"acltype": "publishClientSend", "topic": f"{prefix}/status", "allow": True},
        {"acltype": "subscribePattern", "topic": f"{prefix}/cmd", "allow": True},
        {"acltype": "publishClientReceive", "topic": f"{prefix}/cmd", "allow": True},
        {"acltype": "subscribePattern", "topic": f"{prefix}/feedback", "allow": True},
        {"acltype": "publishClientReceive", "topic": f"{prefix}/feedback", "allow": True},
    ]


def ingest_acls() -> list[dict[str, Any]]:
    return [
        {"acltype": "subscribePattern", "topic": "kcity/v1/#", "allow": True},
        {"acltype": "subscribePattern", "topic": "$share/kcity-ingest/kcity/v1/#", "allow": True},
        {"acltype": "publishClientReceive", "topic": "kcity/v1/#", "allow": True},
        {"acltype": "publishClientSend", "topic": "kcity/v1/+/+/cmd", "allow": True},
        {"acltype": "publishClientSend", "topic": "kcity/v1/+/+/feedback", "allow": True},
        # The broker's own counters of what it dropped and holds (ingest exports them).
        *({"acltype": "subscribeLiteral", "topic": topic, "allow": True} for topic in BROKER_STATS),
    ]


class BrokerAdmin:
    """A short-lived admin connection that sends dynamic-security commands and awaits answers."""

    def __init__(self, host: str, port: int, username: str, password: str, timeout: float = 10.0):
        self._timeout = timeout
        self._pending: dict[str, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._ready = threading.Event()
        self._refused: str | None = None
        # paho loads with the first connection, not with the module: `kcity status` and the
        # broker's config (ingest_acls) do without it.
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"kcity-admin-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self._client.username_pw_set(username, password)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *args: self._ready.set()
        try:
            self._client.connect(host, port, keepalive=30)
        except OSError as exc:
            raise BrokerError(f"cannot reach the broker at {host}:{port}: {exc}") from exc
        self._client.loop_start()
        if not self._ready.wait(timeout) or self._refused:
            self.close()
            raise BrokerError(
                f"the broker at {host}:{port} refused the admin account: "
                f"{self._refused or 'no answer'}"
            )

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        if rc.is_failure:
            self._refused = str(rc)
            self._ready.set()
        else:
            client.subscribe(CONTROL_TOPIC + "/response", qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic != CONTROL_TOPIC + "/response":
            return
        body = json.loads(msg.payload)
        for response in body.get("responses", []):
            waiter = self._pending.get(response.get("correlationData", ""))
            if waiter:
                waiter[1].append(response)
                waiter[0].set()

    def command(
        self, command: dict[str, Any], *, ok_errors: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """Send one command; raise BrokerError unless it succeeds (or fails with `ok_errors`)."""
        corr = uuid.uuid4().hex
        waiter: tuple[threading.Event, list[dict[str, Any]]] = (threading.Event(), [])
        self._pending[corr] = waiter
        body = json.dumps({"commands": [{**command, "correlationData": corr}]})
        self._client.publish(CONTROL_TOPIC, body, qos=1)
        try:
            if not waiter[0].wait(self._timeout):
                raise BrokerError(f"the broker did not answer {command['command']}")
        finally:
            self._pending.pop(corr, None)
        response = waiter[1][0]
        error = response.get("error")
        if error and not any(e in error for e in ok_errors):
            raise BrokerError(f"broker refused {command['command']}: {error}")
        return response

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    # -- what the platform asks of the broker ------------------------------------------

    # Mosquitto 2.0.11 crashes when a role still held by a client is deleted: always delete
    # the client first, then its role, then create both afresh.

    def _put(
        self,
        username: str,
        password: str,
        rolename: str,
        acls: list[dict[str, Any]],
        clientid: str | None = None,
    ) -> None:
        self._delete(username, rolename)
        self.command({"command": "createRole", "rolename": rolename, "acls": acls})
        client: dict[str, Any] = {
            "command": "createClient",
            "username": username,
            "password": password,
            "roles": [{"rolename": rolename}],
        }
        if clientid is not None:
            client["clientid"] = clientid
        self.command(client)

    def _delete(self, username: str, rolename: str) -> None:
        self.command({"command": "deleteClient", "username": username}, ok_errors=("not found",))
        self.command({"command": "deleteRole", "rolename": rolename}, ok_errors=("not found",))

    def add_device(self, pilot: str, device: str, password: str) -> None:
        """The device's client, bound to its own client id (= its device id): with any other
        id, such as the ingest consumer's or another device's, the broker refuses it rather
        than hand it that session (Mosquitto lets a new connection take a client id over)."""
        _not_platform(device)
        self._put(device, password, f"device-{device}", device_acls(pilot, device), device)

    def sync_device_acls(self, pilot: str, device: str) -> None:
        """Add what `device_acls` grants today to an existing device's role (an upgrade that
        adds a topic, such as `feedback`) and bind its client id, without touching its
        password."""
        _not_platform(device)
        self.command({"command": "setClientId", "username": device, "clientid": device})
        for acl in device_acls(pilot, device):
            self.command(
                {"command": "addRoleACL", "rolename": f"device-{device}", **acl},
                ok_errors=("already exists",),
            )

    def remove_device(self, device: str) -> None:
        """Delete the device's client (the plugin disconnects it) and its role."""
        _not_platform(device)
        self._delete(device, f"device-{device}")

    def add_ingest_account(self, username: str, password: str) -> None:
        self._put(username, password, INGEST_ROLE, ingest_acls())


def _not_platform(username: str) -> None:
    """Device operations never delete or recreate the platform's own clients (`kcity-…`)."""
    if is_reserved(username):
        raise BrokerError(f"refused: {username!r} is one of the platform's own broker accounts")


@contextmanager
def broker_admin(host: str, port: int, username: str, password: str) -> Iterator[BrokerAdmin]:
    admin = BrokerAdmin(host, port, username, password)
    try:
        yield admin
    finally:
        admin.close()


def platform_admin(s: Settings) -> AbstractContextManager[BrokerAdmin]:
    """The running platform's broker, with the admin account from `s`."""
    return broker_admin(s.mqtt_host, s.mqtt_port, s.mqtt_admin_username, s.mqtt_admin_password)


def create_session(
    host: str,
    port: int,
    username: str,
    password: str,
    *,
    client_id: str,
    topic_filters: tuple[str, ...],
    expiry_s: int,
    timeout: float = 10.0,
) -> None:
    """Open a persistent MQTT 5 session subscribed to `topic_filters`, then leave it.

    `kcity up` does this for the ingest consumer before any device can publish: from then on
    the broker queues device messages for it (instead of answering "no matching subscribers"
    and dropping them) until the consumer connects and takes the session over.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    done = threading.Event()
    outcome: list[str] = []
    # Never acknowledge: messages already queued in an existing session are delivered to us
    # at once; unacknowledged, the broker keeps them for the real consumer.
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True
    )
    client.username_pw_set(username, password)

    def on_connect(c: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            outcome.append(f"refused: {rc}")
            done.set()
        elif flags.session_present:
            done.set()  # the consumer's session is there, with its subscriptions
        else:
            c.subscribe([(f, 1) for f in topic_filters])

    def on_subscribe(c: mqtt.Client, u: Any, mid: int, codes: list[Any], props: Any) -> None:
        outcome.extend(str(rc) for rc in codes if rc.is_failure)
        done.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = expiry_s
    props.ReceiveMaximum = 1
    try:
        client.connect(host, port, keepalive=30, clean_start=False, properties=props)
    except OSError as exc:
        raise BrokerError(f"cannot reach the broker at {host}:{port}: {exc}") from exc
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise BrokerError(f"the broker did not set up the {client_id} session in time")
        if outcome:
            raise BrokerError(f"the broker refused the {client_id} session: {outcome[0]}")
    finally:
        client.disconnect()
        client.loop_stop()
        client._reset_sockets()  # paho frees its socket pair only in __del__
