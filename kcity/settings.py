"""One settings object, read once by the entry point and passed down.

Values come from `KCITY_*` environment variables, a `.env` file, and the secrets that
`kcity up` generated for the local stack (`<data_dir>/stack.env`); explicit environment
variables win. The defaults point at the local stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit, urlunsplit

from pydantic import ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kcity.errors import SettingsError

STACK_ENV = "stack.env"
PGPASS = "pgpass"  # <data_dir>/pgpass: the local cluster's passwords (libpq format, 0600)
LOCAL_DB_HOSTS = ("127.0.0.1", "localhost", "::1")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KCITY_", extra="ignore")

    data_dir: Path = Path(".kcity")
    # The owner (migrations, the CLI). A local URL without a password reads it from the
    # local stack's password file (`?passfile=` is added).
    database_url: str = "postgresql://kcity@127.0.0.1:54329/kcity"
    # The services' least-privilege logins; empty = database_url as kcity_ingest / kcity_api.
    ingest_database_url: str = ""
    api_database_url: str = ""
    # What Grafana's data source logs in as (`kcity dashboards push --create-datasource`);
    # empty = database_url as grafana_reader, with its password from the password file.
    grafana_database_url: str = ""
    mqtt_url: str = "mqtt://127.0.0.1:18839"
    mqtt_tls_port: int = 18840
    mqtt_username: str = "kcity-ingest"
    mqtt_password: str = ""
    mqtt_admin_username: str = "kcity-admin"
    mqtt_admin_password: str = ""
    api_host: str = "127.0.0.1"
    api_port: int = 8087
    metrics_port: int = 9108
    metrics_host: str = "127.0.0.1"  # the ingest /metrics page lists device ids: local only
    api_max_window_days: int = 400  # longer evaluation windows are refused (422)
    api_heavy_slots: int = 0  # concurrent heavy API work (reports, analyses); 0 = one per core
    api_max_jobs: int = 0  # report jobs queued or running at once; 0 = twice the slots
    token_days: int = 90  # default lifetime of a new API token
    ingest_batch_size: int = 10000  # rows per transaction (ingest.config.IngestConfig)
    ingest_batch_age_s: float = 0.2
    ingest_max_inflight: int = 20000
    ingest_shared: bool = False
    ingest_workers: int = 0  # ingest processes `kcity up` starts; 0 = one per core
    ingest_dead_letters_per_minute: int = 100  # kept in full per device, minute and worker
    # The broker's per-session queue (the ingest workers' while they are away) holds this
    # long an outage at this message rate of all pilots together, twice over (headroom).
    broker_outage_hours: float = 24.0
    broker_messages_per_s: float = 10.0
    broker_message_bytes: int = 1024  # mean message size assumed for the byte bound
    http_ingest_per_minute: int = 600  # messages a device may POST a minute
    ingest_feedback_per_minute: int = 30  # verdicts per device and minute; 0 turns them off
    # Licensed edition (compose): raw readings older than this many days go by the server's
    # retention policy (set at `kcity db migrate`); 0 keeps them. The Apache edition uses
    # each pilot's `retain_raw_days` through `kcity retention apply` instead.
    retain_raw_days: int = 0
    # How long a row may commit after its `received_at` stamp and still be rolled up; ingest
    # notes a batch older than 30 s (`late_commits`), which a refresh looks back to.
    rollup_slack_s: float = 300.0

    @field_validator(
        "database_url", "ingest_database_url", "api_database_url", "grafana_database_url"
    )
    @classmethod
    def _check_database_url(cls, value: str, info: ValidationInfo) -> str:
        if not value and info.field_name != "database_url":
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
            raise ValueError("must look like postgresql://user@host:port/dbname")
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError as exc:
            raise ValueError(f"bad port: {exc}") from exc
        data_dir = info.data.get("data_dir")
        query = parse_qs(parts.query)
        if (
            parts.hostname in LOCAL_DB_HOSTS
            and parts.password is None
            and "passfile" not in query
            and isinstance(data_dir, Path)
        ):
            query["passfile"] = [str((data_dir / PGPASS).resolve())]
            value = urlunsplit(parts._replace(query=urlencode(query, doseq=True, safe="/")))
        return value

    def database_url_as(self, user: str) -> str:
        """database_url with another login (its password from the same password file)."""
        parts = urlsplit(self.database_url)
        netloc = f"{user}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def ingest_db_url(self) -> str:
        from kcity.grants import INGEST_ROLE  # grants loads psycopg: not at start-up

        return self.ingest_database_url or self.database_url_as(INGEST_ROLE)

    @property
    def api_db_url(self) -> str:
        from kcity.grants import API_ROLE

        return self.api_database_url or self.database_url_as(API_ROLE)

    @property
    def grafana_db_url(self) -> str:
        """Grafana stores a password, not a file name: the reader's URL with its password."""
        from kcity.grants import READER_ROLE

        url = self.grafana_database_url or self.database_url_as(READER_ROLE)
        parts = urlsplit(url)
        passfile = parse_qs(parts.query).get("passfile")
        if parts.password is not None or not passfile or not parts.username:
            return url
        password = passfile_password(Path(passfile[0]), parts.username)
        if password is None:
            return url
        host = f"{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        netloc = f"{quote(parts.username)}:{quote(password, safe='')}@{host}"
        return urlunsplit(parts._replace(netloc=netloc, query=""))

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str) -> str:
        parts = urlsplit(value)
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"bad port: {exc}") from exc
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or port is None:
            raise ValueError("must look like mqtt://host:port")
        return value

    @property
    def mqtt_host(self) -> str:
        return urlsplit(self.mqtt_url).hostname or "127.0.0.1"

    @property
    def mqtt_port(self) -> int:
        return urlsplit(self.mqtt_url).port or 1883

    @property
    def database_port(self) -> int:
        return urlsplit(self.database_url).port or 5432

    @property
    def database_name(self) -> str:
        return urlsplit(self.database_url).path.lstrip("/") or "kcity"

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"


def passfile_password(passfile: Path, user: str) -> str | None:
    """`user`'s password in a libpq password file written by the local stack."""
    try:
        lines = passfile.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":")
        if len(parts) == 5 and parts[3] == user:
            return parts[4]
    return None


def load_settings(**overrides: Any) -> Settings:
    """Read the settings once: `.env`, then the local stack's secrets, then the environment."""
    try:
        base = Settings(_env_file=".env", **overrides)  # type: ignore[call-arg]
        stack_env = base.data_dir / STACK_ENV
        if stack_env.exists():
            return Settings(_env_file=(stack_env, ".env"), **overrides)  # type: ignore[call-arg]
        return base
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "settings"
        raise SettingsError(f"bad setting KCITY_{field.upper()}: {first['msg']}") from exc
