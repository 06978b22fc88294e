"""Expand a panel's SQL the way Grafana does before it reaches PostgreSQL, so the tests can
run every dashboard query against a real TimescaleDB.

No Grafana server can be installed on the development machines; this follows Grafana's
own PostgreSQL data source instead:
- template variables, as the frontend interpolates them for SQL data sources: a
  single-value variable is inserted with its quotes doubled (the query supplies the
  quotes: ``'$pilot'``); a multi-value or include-all variable becomes a list of quoted
  literals (``IN ($device)``); ``${var:csv}``, ``${var:sqlstring}``, ``${var:raw}``;
- ``$__interval_ms``/``$__interval`` (``gtime.FormatInterval``: 1y, 1d, 1h, 1m, 1s, 1ms),
  ``$__unixEpochFrom()``/``$__unixEpochTo()``;
- the macros of ``pkg/tsdb/grafana-postgresql-datasource/macros.go``: ``$__time``,
  ``$__timeEpoch``, ``$__timeFilter``, ``$__timeFrom``, ``$__timeTo``, ``$__timeGroup``
  (``time_bucket`` when the data source has TimescaleDB switched on, else
  ``floor(extract(epoch from col)/secs)*secs``; followed by a comma it acts as
  ``$__timeGroupAlias``), ``$__timeGroupAlias``, ``$__unixEpochFilter``,
  ``$__unixEpochGroup``, ``$__unixEpochGroupAlias``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")
_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}"
)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


@dataclass(frozen=True)
class Variable:
    """A dashboard variable's current value, as Grafana knows it when interpolating."""

    value: str | Sequence[str]
    multi: bool = False
    include_all: bool = False


def rfc3339(t: datetime) -> str:
    """Go's ``time.RFC3339Nano`` of a UTC time: fraction without trailing zeros, then Z."""
    t = t.astimezone(UTC)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        text += f".{t.microsecond:06d}".rstrip("0")
    return text + "Z"


def format_interval(interval: timedelta) -> str:
    """Grafana's ``gtime.FormatInterval``: the largest whole unit."""
    ms = int(interval.total_seconds() * 1000)
    for unit, size_ms in (
        ("y", 31536000000),
        ("d", 86400000),
        ("h", 3600000),
        ("m", 60000),
        ("s", 1000),
    ):
        if ms >= size_ms:
            return f"{ms // size_ms}{unit}"
    return f"{max(ms, 1)}ms"


def parse_interval(text: str) -> float:
    """Seconds of an interval argument such as ``'5m'``, ``1h`` or ``30s``."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", text.strip().strip("'"))
    if not match:
        raise ValueError(f"error parsing interval {text}")
    return float(match[1]) * _UNITS[match[2]]


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _format(var: Variable, fmt: str | None) -> str:
    values = [var.value] if isinstance(var.value, str) else list(var.value)
    if fmt == "csv":
        return ",".join(values)
    if fmt == "sqlstring":
        return ",".join(_quote(v) for v in values)
    if fmt == "raw":
        return ",".join(values)
    if fmt is not None:
        raise ValueError(f"format {fmt!r} is not modelled here")
    # The SQL data sources' default interpolation.
    if isinstance(var.value, str) and not (var.multi or var.include_all):
        return var.value.replace("'", "''")
    return ",".join(_quote(v) for v in values)


def interpolate_variables(sql: str, variables: Mapping[str, Variable]) -> str:
    """Replace ``$var``, ``${var}``, ``${var:fmt}`` and ``[[var]]`` of known variables."""

    def replace(m: re.Match[str]) -> str:
        name = m[1] or m[2] or m[4]
        fmt = m[3] or m[6]
        if name not in variables:
            return m[0]  # Grafana leaves unknown names (and macros) alone
        return _format(variables[name], fmt)

    return _VARIABLE.sub(replace, sql)


def _time_group(args: list[str], timescaledb: bool) -> str:
    if len(args) < 2:
        raise ValueError("macro $__timeGroup needs time column and interval")
    secs = parse_interval(args[1])
    if timescaledb:
        return f"time_bucket('{secs:.3f}s',{args[0]})"
    return f"floor(extract(epoch from {args[0]})/{_num(secs)})*{_num(secs)}"


def _num(x: float) -> str:
    return str(int(x)) if x == int(x) else repr(x)


def _macro(name: str, args: list[str], start: datetime, end: datetime, timescaledb: bool) -> str:
    col = args[0] if args and args[0] else None
    if name in ("__time", "__timeEpoch", "__timeFilter", "__unixEpochFilter") and col is None:
        raise ValueError(f"missing time column argument for macro {name}")
    if name == "__time":
        return f'{col} AS "time"'
    if name == "__timeEpoch":
        return f'extract(epoch from {col}) as "time"'
    if name == "__timeFilter":
        return f"{col} BETWEEN '{rfc3339(start)}' AND '{rfc3339(end)}'"
    if name == "__timeFrom":
        return f"'{rfc3339(start)}'"
    if name == "__timeTo":
        return f"'{rfc3339(end)}'"
    if name == "__timeGroup":
        return _time_group(args, timescaledb)
    if name == "__timeGroupAlias":
        return _time_group(args, timescaledb) + ' AS "time"'
    if name == "__unixEpochFilter":
        return f"{col} >= {int(start.timestamp())} AND {col} <= {int(end.timestamp())}"
    if name in ("__unixEpochGroup", "__unixEpochGroupAlias"):
        secs = _num(parse_interval(args[1]))
        alias = ' AS "time"' if name.endswith("Alias") else ""
        return f"floor(({args[0]})/{secs})*{secs}{alias}"
    raise ValueError(f"unknown macro {name!r}")


def expand(
    sql: str,
    *,
    start: datetime,
    end: datetime,
    interval: timedelta = timedelta(minutes=1),
    variables: Mapping[str, Variable] | None = None,
    timescaledb: bool = True,
) -> str:
    """The SQL Grafana would send for this time range, interval and variable values."""
    sql = interpolate_variables(sql, variables or {})
    sql = sql.replace("$__interval_ms", str(int(interval.total_seconds() * 1000)))
    sql = sql.replace("$__interval", format_interval(interval))
    sql = sql.replace("$__unixEpochFrom()", str(int(start.timestamp())))
    sql = sql.replace("$__unixEpochTo()", str(int(end.timestamp())))

    def replace(m: re.Match[str]) -> str:
        name = m[1]
        # Grafana < 5.3 compatibility: "$__timeGroup(...)," means the aliased form.
        after = sql.find(m[0])
        if name == "__timeGroup" and after >= 0:
            nxt = after + len(m[0])
            if nxt < len(sql) and sql[nxt] == ",":
                name = "__timeGroupAlias"
        args = [a.strip() for a in m[2].split(",")]
        return _macro(name, args, start, end, timescaledb)

    expanded = _MACRO.sub(replace, sql)
    leftover = re.search(r"\$\w+|\[\[\w+", expanded)
    if leftover:
        raise ValueError(f"unexpanded variable or macro {leftover[0]!r} in:\n{expanded}")
    return expanded
