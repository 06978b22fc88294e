"""The docker-compose deployment, kept honest without Docker (DESIGN §3): the files parse,
images are pinned, ports and KCITY_* names agree with the settings, services that need the
database wait for its health, every command and mounted path exists, and the broker and
database init scripts work against a real Mosquitto and TimescaleDB."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

import paho.mqtt.client as mqtt
import psycopg
import pytest
import typer
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from dashboards.sql import DATASOURCE_TYPE, DATASOURCE_UID
from kcity.cli import app
from kcity.grafana import build_all
from kcity.settings import Settings
from kcity.stack.local import LocalStack
from kcity.stack.mosquitto import (
    BROKER_INFLIGHT,
    BROKER_MESSAGE_LIMIT,
    BROKER_PACKET_LIMIT,
    dynsec_plugin,
    queue_bounds,
)
from kcity.stack.processes import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DB_SERVICES_EXTRA = {"grafana"}  # reads the database without a KCITY_DATABASE_URL
_VAR = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


DEFAULTS = Settings.model_construct()  # field defaults only: no environment, no .env


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _env_example() -> dict[str, str]:
    out = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _interpolate(value: str, env: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name, op, arg = m[1], m[2], m[3]
        if env.get(name):
            return env[name]
        if op in (":-", "-"):
            return arg
        raise AssertionError(f"${{{name}}} is required but not in .env.example")

    return _VAR.sub(sub, value).replace("$$", "$")


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: _interpolate(str(v), _env_example()) for k, v in env.items()}


def _settings(service: dict[str, Any]) -> Settings:
    """The settings the service's KCITY_* environment gives (validated, nothing else read)."""
    env = _environment(service)
    return Settings.model_validate(
        {k.removeprefix("KCITY_").lower(): v for k, v in env.items() if k.startswith("KCITY_")}
    )


def _published(service: dict[str, Any]) -> dict[int, int]:
    """Published host port → container port."""
    out = {}
    for spec in service.get("ports", []):
        parts = str(spec).split(":")
        out[int(parts[-2])] = int(parts[-1])
    return out


# --- the compose file --------------------------------------------------------------------


def test_compose_parses_and_has_the_services() -> None:
    services = _services()
    assert {"timescaledb", "mosquitto", "grafana", "ingest", "api"} <= set(services)
    volumes = set(_compose()["volumes"])
    for name, svc in services.items():
        for mount in svc.get("volumes", []):
            source = str(mount).split(":")[0]
            if not source.startswith("."):
                assert source in volumes, f"{name}: volume {source} is not declared"


def test_every_image_is_pinned() -> None:
    images = {name: svc["image"] for name, svc in _services().items() if "build" not in svc}
    assert {"timescaledb", "mosquitto", "grafana"} <= set(images)
    for name, image in images.items():
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and "/" not in tag, f"{name}: {image} not pinned"
    assert images["timescaledb"].startswith("timescale/timescaledb:")
    assert re.search(r"-pg(1[5-9])$", images["timescaledb"]), "TimescaleDB on PostgreSQL ≥ 15"
    assert images["mosquitto"].startswith("eclipse-mosquitto:")
    assert images["grafana"].startswith("grafana/grafana-oss:")
    base = re.search(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert base and base[1].startswith("python:3.11-slim"), "app image on python:3.11-slim"


def test_kcity_environment_names_and_values_are_settings() -> None:
    used = 0
    for name, svc in _services().items():
        env = {k: v for k, v in _environment(svc).items() if k.startswith("KCITY_")}
        for key in env:
            assert key.removeprefix("KCITY_").lower() in Settings.model_fields, f"{name}: {key}"
        if "KCITY_DATABASE_URL" in env:
            used += 1
            settings = _settings(svc)
            assert urlsplit(settings.database_url).hostname == "timescaledb"
            assert settings.mqtt_host == "mosquitto"
    assert used >= 2  # at least the ingest service and the API


def test_ports_agree_with_the_settings() -> None:
    services = _services()
    db = _published(services["timescaledb"])
    assert db == {DEFAULTS.database_port: 5432}
    assert _published(services["mosquitto"]) == {
        DEFAULTS.mqtt_port: DEFAULTS.mqtt_port,
        DEFAULTS.mqtt_tls_port: DEFAULTS.mqtt_tls_port,
    }
    assert _published(services["api"]) == {DEFAULTS.api_port: DEFAULTS.api_port}
    assert [int(p) for p in services["ingest"]["expose"]] == [DEFAULTS.metrics_port]
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    listeners = [int(p) for p in re.findall(r"^listener\s+(\d+)", conf, re.M)]
    assert listeners == [DEFAULTS.mqtt_port, DEFAULTS.mqtt_tls_port]
    for svc in ("ingest", "api"):
        env = _settings(services[svc])
        assert (env.mqtt_port, env.mqtt_tls_port) == (DEFAULTS.mqtt_port, DEFAULTS.mqtt_tls_port)
        assert (env.api_port, env.metrics_port) == (DEFAULTS.api_port, DEFAULTS.metrics_port)
        assert env.database_port == 5432  # inside the compose network


def test_broker_bounds_agree_with_the_settings() -> None:
    """The deployed broker's queue bounds are the local stack's, sized from the defaults."""
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    values = dict(re.findall(r"^(max_\w+|message_size_limit)\s+(\d+)", conf, re.M))
    messages, size = queue_bounds(
        DEFAULTS.broker_outage_hours, DEFAULTS.broker_messages_per_s, DEFAULTS.broker_message_bytes
    )
    assert (int(values["max_queued_messages"]), int(values["max_queued_bytes"])) == (
        messages,
        size,
    )
    assert messages == 24 * 3600 * 10 * 2  # a day at 10 msg/s, twice over
    assert int(values["max_inflight_messages"]) == BROKER_INFLIGHT
    assert int(values["message_size_limit"]) == BROKER_MESSAGE_LIMIT
    assert int(values["max_packet_size"]) == BROKER_PACKET_LIMIT


def test_database_users_wait_for_a_healthy_database() -> None:
    services = _services()
    assert "healthcheck" in services["timescaledb"]
    needing = {n for n, s in services.items() if "KCITY_DATABASE_URL" in _environment(s)}
    assert {"ingest", "api", "migrate"} <= needing
    for name in needing | DB_SERVICES_EXTRA:
        depends = services[name].get("depends_on", {})
        assert depends.get("timescaledb", {}).get("condition") == "service_healthy", name
    for name in ("ingest", "api", "grafana"):
        cond = services[name]["depends_on"]["migrate"]["condition"]
        assert cond == "service_completed_successfully"
    assert services["ingest"]["depends_on"]["mosquitto"]["condition"] == "service_healthy"


def test_long_running_services_have_health_checks() -> None:
    for name, svc in _services().items():
        if svc.get("restart") != "no":
            assert "healthcheck" in svc, f"{name} has no health check"


def _click_command(words: list[str]) -> Any:
    group: Any = typer.main.get_command(app)
    ctx = group.make_context("kcity", ["--help"], resilient_parsing=True)
    for word in words:
        sub = group.get_command(ctx, word)
        assert sub is not None, f"`kcity {' '.join(words)}`: no command {word!r} in the CLI"
        group = sub
    return group


def test_every_service_command_exists() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = re.findall(r"^COPY\s+(\S+)\s+(\S+)", dockerfile, re.M)
    for name, svc in _services().items():
        command = svc.get("command")
        if command is None:
            continue
        if command[0] == "kcity":
            _click_command([w for w in command[1:] if not w.startswith("-")])
        else:
            script = PurePosixPath(command[-1])
            rel = script.relative_to("/opt/kcity")
            assert (ROOT / rel).is_file(), f"{name}: {rel} missing"
            assert any(str(rel).startswith(src.rstrip("/")) for src, _ in copied), (
                f"{name}: the Dockerfile does not copy {rel}"
            )
    assert re.search(r"^RUN pip install \.$", dockerfile, re.M)
    for src, _ in copied:
        assert (ROOT / src.split()[0]).exists(), f"Dockerfile copies missing {src}"


def test_bind_mounts_exist() -> None:
    for name, svc in _services().items():
        for mount in svc.get("volumes", []):
            source = str(mount).split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"


def test_env_example_defines_every_required_variable() -> None:
    text = COMPOSE.read_text()
    required = {m[1] for m in _VAR.finditer(text) if m[2] in (":?", "?")}
    assert required <= set(_env_example()), required - set(_env_example())
    assert not (ROOT / ".env").exists() or ".env" in (ROOT / ".gitignore").read_text()


# --- Grafana provisioning ----------------------------------------------------------------


def _container_to_host(service: dict[str, Any], path: str) -> Path:
    """Where a path inside a container comes from on the host, through its bind mounts."""
    for mount in service.get("volumes", []):
        source, target = str(mount).split(":")[:2]
        if source.startswith(".") and (path == target or path.startswith(target + "/")):
            return ROOT / source / path[len(target) :].lstrip("/")
    raise AssertionError(f"{path} is not bind-mounted into the container")


def test_dashboard_provider_points_at_the_built_json() -> None:
    grafana = _services()["grafana"]
    provisioning = _container_to_host(grafana, "/etc/grafana/provisioning")
    providers = yaml.safe_load((provisioning / "dashboards" / "kcity.yaml").read_text())
    (provider,) = providers["providers"]
    folder = _container_to_host(grafana, provider["options"]["path"])
    assert {p.stem for p in folder.glob("*.json")} == set(build_all())
    home = _environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert _container_to_host(grafana, home).is_file()


def test_alerting_is_provisioned_and_its_addresses_come_from_the_environment() -> None:
    grafana = _services()["grafana"]
    folder = _container_to_host(grafana, "/etc/grafana/provisioning/alerting")
    (path,) = folder.glob("*.yaml")
    doc = yaml.safe_load(path.read_text())
    assert doc["groups"][0]["rules"] and doc["policies"][0]["receiver"]
    env = _environment(grafana)
    for point in doc["contactPoints"]:
        for receiver in point["receivers"]:
            for value in receiver["settings"].values():
                for name in re.findall(r"\$\{?(\w+)", str(value)):
                    assert name in env, f"Grafana needs {name} to expand {receiver['type']}"
    assert env["GF_SMTP_ENABLED"] == "true" and env["GF_SMTP_HOST"]


def test_datasource_matches_the_dashboards_and_the_database() -> None:
    grafana = _services()["grafana"]
    provisioning = _container_to_host(grafana, "/etc/grafana/provisioning")
    (ds,) = yaml.safe_load((provisioning / "datasources" / "timescaledb.yaml").read_text())[
        "datasources"
    ]
    assert (ds["uid"], ds["type"]) == (DATASOURCE_UID, DATASOURCE_TYPE)
    assert ds["jsonData"]["timescaledb"] is True
    db_env = _services()["timescaledb"]["environment"]
    assert ds["jsonData"]["database"] == db_env["POSTGRES_DB"]
    assert ds["url"] == "timescaledb:5432"
    secret = ds["secureJsonData"]["password"].lstrip("$").strip("{}")
    assert secret in _environment(grafana), "Grafana needs the password variable it expands"
    reader = (ROOT / "deploy/timescaledb/initdb/10-roles.sh").read_text()
    assert f"ROLE {ds['user']} WITH LOGIN" in reader


# --- the init scripts on real services --------------------------------------------------


def test_roles_script_gives_logins_that_the_migration_grants(
    stack: LocalStack, db_url: str, uid: str
) -> None:
    """The compose init script on the real cluster: its logins work with their passwords,
    and read/write exactly what kcity/grants.py gave them (the same as the local stack)."""
    parts = urlsplit(db_url)
    env = {
        **os.environ,
        "PGHOST": parts.hostname or "127.0.0.1",
        "PGPORT": str(parts.port),
        "PGPASSFILE": parse_qs(parts.query)["passfile"][0],
        "POSTGRES_USER": parts.username or "kcity",
        "POSTGRES_DB": parts.path.lstrip("/"),
        "GRAFANA_DB_PASSWORD": f"reader-{uid}",
        "INGEST_DB_PASSWORD": f"ingest-{uid}",
        "API_DB_PASSWORD": f"api-{uid}",
    }
    script = ROOT / "deploy/timescaledb/initdb/10-roles.sh"
    try:
        for _ in range(2):  # idempotent
            run = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True)
            assert run.returncode == 0, run.stderr

        def login(user: str, password: str) -> psycopg.Connection:
            netloc = f"{user}:{password}@{parts.hostname}:{parts.port}"
            return psycopg.connect(parts._replace(netloc=netloc, query="").geturl())

        with login("grafana_reader", f"reader-{uid}") as conn:
            assert conn.execute("SELECT count(*) FROM pilots").fetchone() == (0,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM public.pilots")
        with login("kcity_ingest", f"ingest-{uid}") as conn:
            assert conn.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT count(*) FROM api_tokens")
        with login("kcity_api", f"api-{uid}") as conn:
            assert conn.execute("SELECT count(*) FROM devices").fetchone() == (0,)
        with pytest.raises(psycopg.OperationalError):
            login("kcity_api", "wrong").close()
    finally:
        stack.postgres.start()  # give the session's logins their own passwords back


@pytest.fixture
def broker_dir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="kcity-compose-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _connect(port: int, user: str, password: str, ca: Path | None) -> str:
    """Connect once; return the CONNACK reason ("Success" or why it was refused)."""
    done = threading.Event()
    result: list[str] = []
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
    )
    client.username_pw_set(user, password)
    if ca is not None:
        client.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)

    def on_connect(c: mqtt.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
        result.append(str(rc))
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(10), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return result[0]


def test_broker_config_and_init_work_on_a_real_mosquitto(broker_dir: Path) -> None:
    """init.sh + mosquitto.conf (paths moved under a temp dir), then ensure_accounts.py."""
    owner = pwd.getpwnam("mosquitto").pw_uid if os.getuid() == 0 else os.getuid()
    admin_pw, ingest_pw = uuid.uuid4().hex, uuid.uuid4().hex
    env = {
        **os.environ,
        "MOSQUITTO_SECURITY_DIR": str(broker_dir / "security"),
        "MOSQUITTO_UID": str(owner),
        "KCITY_MQTT_ADMIN_USERNAME": "kcity-admin",
        "KCITY_MQTT_ADMIN_PASSWORD": admin_pw,
        "MQTT_TLS_HOSTNAME": "localhost",
        "KCITY_PYTHON": sys.executable,
    }
    init = subprocess.run(
        ["sh", str(ROOT / "deploy/mosquitto/init.sh")], env=env, capture_output=True, text=True
    )
    assert init.returncode == 0, init.stderr
    plain, tls = free_port(), free_port()
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    conf = conf.replace("/usr/lib/mosquitto_dynamic_security.so", dynsec_plugin())
    conf = conf.replace("/mosquitto/", f"{broker_dir}/")
    conf = conf.replace(f"listener {DEFAULTS.mqtt_port}\n", f"listener {plain} 127.0.0.1\n")
    conf = conf.replace(f"listener {DEFAULTS.mqtt_tls_port}\n", f"listener {tls} 127.0.0.1\n")
    (broker_dir / "data").mkdir()
    os.chown(broker_dir / "data", owner, owner)
    (broker_dir / "mosquitto.conf").write_text(conf)
    log = (broker_dir / "mosquitto.log").open("wb")
    broker = subprocess.Popen(
        ["mosquitto", "-c", str(broker_dir / "mosquitto.conf")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port("127.0.0.1", tls, 10, "mosquitto")
        ca = broker_dir / "security" / "certs" / "ca.crt"
        assert _connect(tls, "kcity-admin", admin_pw, ca) == "Success"
        assert _connect(plain, "kcity-admin", "wrong", None) != "Success"
        assert _connect(plain, "kcity-ingest", ingest_pw, None) != "Success"
        accounts_env = {
            **os.environ,
            "KCITY_DATA_DIR": str(broker_dir / "kcity"),
            "KCITY_MQTT_URL": f"mqtt://127.0.0.1:{plain}",
            "KCITY_MQTT_ADMIN_USERNAME": "kcity-admin",
            "KCITY_MQTT_ADMIN_PASSWORD": admin_pw,
            "KCITY_MQTT_USERNAME": "kcity-ingest",
            "KCITY_MQTT_PASSWORD": ingest_pw,
            "PYTHONPATH": str(ROOT),
        }
        for _ in range(2):  # idempotent
            run = subprocess.run(
                [sys.executable, str(ROOT / "deploy/mosquitto/ensure_accounts.py")],
                env=accounts_env,
                capture_output=True,
                text=True,
                cwd=broker_dir,
            )
            assert run.returncode == 0, f"{run.stderr} (broker exit status {broker.poll()})"
        assert _connect(tls, "kcity-ingest", ingest_pw, ca) == "Success"
    finally:
        broker.terminate()
        broker.wait(10)
        log.close()


def test_plain_listeners_are_local_and_health_checks_carry_no_password() -> None:
    """Issue #17: the API and plain MQTT are published on the host's loopback only (TLS is
    the way in from outside), and no health check puts a password on a command line."""
    services = _services()
    for name, port in (("api", DEFAULTS.api_port), ("mosquitto", DEFAULTS.mqtt_port)):
        specs = [str(p) for p in services[name]["ports"]]
        assert f"127.0.0.1:{port}:{port}" in specs, (name, specs)
        assert not any(s.endswith(f":{port}") and s.count(":") < 2 for s in specs), specs
    for name, svc in services.items():
        check = " ".join(str(w) for w in svc.get("healthcheck", {}).get("test", []))
        assert not re.search(r"(^|\s)-P\b|PASSWORD|--pw\b", check), (name, check)
