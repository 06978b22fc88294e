"""`kcity up` with its services, as issue #17 attacked it: the ingest consumer's session
exists before any device can publish (a device's message is queued, never answered "no
matching subscribers" and dropped), and `kcity status` calls ingest healthy only while it
is connected to the broker and subscribed."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from kcity.settings import Settings, load_settings
from kcity.stack.broker_admin import BrokerAdmin
from kcity.stack.local import LocalStack, ingest_healthy
from kcity.stack.processes import free_port, stop_pid
from tests.fixtures.ingest import (
    add_rogue_client,
    forget_session,
    ingest_config,
    running_ingest,
)
from tests.test_acl import Probe
from tests.test_stack import kcity

ROOT = Path(__file__).resolve().parents[1]


def ok(done: object) -> str:
    assert done.returncode == 0, done.stderr  # type: ignore[attr-defined]
    return str(done.stdout)  # type: ignore[attr-defined]


class ArgvScanner:
    """Reads every process's command line, over and over, while something runs."""

    def __init__(self) -> None:
        self.seen: set[bytes] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread()

    def _scan(self) -> None:
        while not self._stop.is_set():
            for proc in Path("/proc").glob("[0-9]*"):
                try:
                    self.seen.add((proc / "cmdline").read_bytes())
                except OSError:
                    continue  # ended meanwhile

    def __enter__(self) -> ArgvScanner:
        self._stop.clear()
        self._thread = threading.Thread(target=self._scan, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def leaked(self, *secrets: str) -> list[str]:
        return [s[:4] + "…" for s in secrets if any(s.encode() in c for c in self.seen)]


def reading(seq: int) -> bytes:
    ts = f"2026-10-01T12:0{seq}:00Z"
    record = {"ts": ts, "power_w": 36.0, "dim_pct": 30, "lamp_on": True}
    return json.dumps({"v": 1, "boot": 0, "seq": seq, "records": [record]}).encode()


def services(env: dict[str, str], cwd: Path) -> dict[str, bool]:
    info = json.loads(kcity(["status", "--json"], env, cwd).stdout)
    return dict(info["services"])


@pytest.fixture
def own_dir() -> Iterator[Path]:
    """A private directory outside pytest's (other runs on the machine prune and lock it)."""
    root = Path(tempfile.mkdtemp(prefix="kcity-up-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_up_makes_the_ingest_session_first_and_status_tells_the_truth(
    own_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp_path = own_dir
    # Messages queued for a stopped ingest service survive the next `kcity up`, whose
    # session check must not consume them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KCITY_")}
    ports = {
        "KCITY_DATA_DIR": str(tmp_path / ".kcity"),
        "KCITY_DATABASE_URL": f"postgresql://kcity@127.0.0.1:{free_port()}/kcity",
        "KCITY_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}",
        "KCITY_MQTT_TLS_PORT": str(free_port()),
        "KCITY_API_PORT": str(free_port()),
        "KCITY_METRICS_PORT": str(free_port()),
    }
    env.update(ports)
    for key, value in ports.items():
        monkeypatch.setenv(key, value)
    with ArgvScanner() as argv:
        ok(kcity(["up"], env, tmp_path))
    try:
        assert services(env, tmp_path) == dict.fromkeys(
            ("timescaledb", "mosquitto", "ingest", "api", "bridge"), True
        )
        # One ingest worker per core, each its own process, session and /metrics page.
        info = json.loads(kcity(["status", "--json"], env, tmp_path).stdout)
        workers = info["ingest_workers"]
        assert sorted(workers) == [f"w{i}" for i in range(1, (os.cpu_count() or 1) + 1)]
        assert all(w["healthy"] for w in workers.values())
        assert len({w["metrics_url"] for w in workers.values()}) == len(workers)
        assert "ingest w1" in kcity(["status"], env, tmp_path).stdout
        ok(kcity(["pilots", "apply", str(ROOT / "pilots" / "madiun.toml")], env, tmp_path))
        device = f"sl-up-{uuid.uuid4().hex[:6]}"
        with argv:
            creds = json.loads(
                ok(kcity(["devices", "provision", "madiun", device, "--json"], env, tmp_path))
            )
        # No password of the platform or of the device was on any command line meanwhile.
        stack_env = (tmp_path / ".kcity" / "stack.env").read_text()
        secrets = [line.split("=", 1)[1] for line in stack_env.splitlines() if "=" in line]
        assert len(secrets) >= 2 and len(argv.seen) > 10
        assert argv.leaked(*secrets, creds["password"]) == []
        # The ingest service stops and its session is gone (the attack's state): status says
        # so and the broker drops a device's message (0x10). The session `kcity up` makes
        # first queues the next one (PUBACK 0) until the service is back.
        run = Path(env["KCITY_DATA_DIR"]) / "run"
        assert stop_pid(run / "ingest-w1.pid")
        assert services(env, tmp_path)["ingest"] is False  # one worker down is not healthy
        for name in workers:
            stop_pid(run / f"ingest-{name}.pid")
        stack = LocalStack(load_settings())
        for name in workers:
            forget_session(ingest_config(stack.settings, name))
        dev = Probe(creds["mqtt_host"], creds["mqtt_port"], creds["username"], creds["password"])
        topic = creds["topic_prefix"] + "telemetry"
        try:
            assert dev.publish(topic, reading(0)) == 0x10
            stack.ensure_ingest_sessions()
            assert dev.publish(topic, reading(1)) == 0
        finally:
            dev.close()
        assert "ingest" in ok(kcity(["up"], env, tmp_path))
        assert services(env, tmp_path)["ingest"] is True
        sql = "SELECT count(*) FROM streetlight_readings WHERE device_id = %s"
        deadline = time.monotonic() + 60
        stored = 0
        while stored == 0 and time.monotonic() < deadline:
            with psycopg.connect(stack.settings.database_url) as c:
                row = c.execute(sql, (device,)).fetchone()
            stored = row[0] if row else 0
            time.sleep(0.2)
        with psycopg.connect(stack.settings.database_url) as c:
            dead = c.execute("SELECT stage, reason FROM dead_letters").fetchall()
        assert (stored, dead) == (1, [])
    finally:
        ok(kcity(["down"], env, tmp_path))


@pytest.mark.parametrize("refused", [False, True])
def test_ingest_health_needs_its_subscriptions(
    settings: Settings, broker_admin: BrokerAdmin, uid: str, refused: bool
) -> None:
    config = ingest_config(settings, f"health-{uid}")
    if refused:  # an account the broker lets connect but not subscribe
        add_rogue_client(broker_admin, f"nosub-{uid}")
        config = ingest_config(
            settings, f"health-{uid}", mqtt_username=f"nosub-{uid}", mqtt_password="device-secret"
        )
    with running_ingest(config, forget=not refused) as running:
        url = f"http://127.0.0.1:{config.metrics_port}/metrics"
        deadline = time.monotonic() + 10
        while running.service.consumer.subscribed is refused and time.monotonic() < deadline:
            time.sleep(0.05)  # wait for a SUBACK that grants (or for the refusal to settle)
        assert running.service.consumer.connected
        assert ingest_healthy(url) is not refused
