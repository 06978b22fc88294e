"""The PostgreSQL/TimescaleDB query target, which the Foundation SDK does not ship.

The SDK has typed builders for Prometheus, Loki, ... but none for Grafana's built-in
PostgreSQL data source, so this module supplies one: a ``Dataquery`` variant that encodes
to the JSON the PostgreSQL query editor saves in code mode (``rawSql``, ``format``,
``rawQuery``, ``editorMode``), and a builder the SDK's panel builders accept in
``with_target``. Every panel references the data source by its fixed uid.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import AnnotationQuery, DataSourceRef

DATASOURCE_UID = "kcity-timescaledb"
DATASOURCE_TYPE = "grafana-postgresql-datasource"
DATASOURCE_NAME = "K-City TimescaleDB"


def datasource() -> DataSourceRef:
    """The reference every panel and variable uses: the provisioned TimescaleDB by uid."""
    return DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)


class Format(StrEnum):
    """How Grafana turns the rows into frames: a time series needs a ``time`` column."""

    TABLE = "table"
    TIME_SERIES = "time_series"


class SqlQuery(cogvariants.Dataquery):
    """One raw-SQL query of a panel, in the PostgreSQL data source's saved form."""

    def __init__(self, ref_id: str = "A", raw_sql: str = "", fmt: Format = Format.TABLE) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.format = fmt

    def to_json(self) -> dict[str, object]:
        ds = datasource()
        return {
            "refId": self.ref_id,
            "datasource": {"type": ds.type_val, "uid": ds.uid},
            "editorMode": "code",
            "rawQuery": True,
            "format": self.format.value,
            "rawSql": self.raw_sql,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(str(data["refId"]), str(data["rawSql"]), Format(data.get("format", "table")))


class Sql(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder of a ``SqlQuery``: ``Sql(\"SELECT ...\").ref_id(\"B\").time_series()``."""

    def __init__(self, raw_sql: str) -> None:
        self._internal = SqlQuery(raw_sql=dedent_sql(raw_sql))

    def build(self) -> SqlQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def time_series(self) -> Self:
        self._internal.format = Format.TIME_SERIES
        return self

    def table(self) -> Self:
        self._internal.format = Format.TABLE
        return self


def dedent_sql(sql: str) -> str:
    """Strip the indentation of a triple-quoted query so the JSON stays readable."""
    lines = [line.rstrip() for line in sql.strip("\n").splitlines()]
    indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    cut = min(indents, default=0)
    return "\n".join(line[cut:] for line in lines).strip()


class SqlAnnotationQuery(AnnotationQuery):
    """Annotations from one SQL query (columns ``time``, ``timeend``, ``text``, ``tags``),
    saved as the PostgreSQL data source saves them; the SDK's ``AnnotationTarget`` knows
    only the built-in tag query, so the target is written here."""

    def __init__(self, name: str, raw_sql: str, color: str) -> None:
        super().__init__(name=name, enable=True, icon_color=color)
        self.raw_sql = dedent_sql(raw_sql)

    def to_json(self) -> dict[str, object]:
        ds = datasource()
        source = {"type": ds.type_val, "uid": ds.uid}
        return {
            "name": self.name,
            "enable": self.enable,
            "hide": False,
            "iconColor": self.icon_color,
            "datasource": source,
            "target": {
                "refId": "Anno",
                "datasource": source,
                "editorMode": "code",
                "rawQuery": True,
                "format": Format.TABLE.value,
                "rawSql": self.raw_sql,
            },
        }


class SqlAnnotation(cogbuilder.Builder[AnnotationQuery]):
    """Builder of a ``SqlAnnotationQuery`` for ``Dashboard.annotation``."""

    def __init__(self, name: str, raw_sql: str, color: str) -> None:
        self._internal = SqlAnnotationQuery(name, raw_sql, color)

    def build(self) -> SqlAnnotationQuery:
        return self._internal
