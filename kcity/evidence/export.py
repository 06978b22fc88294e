"""`kcity export`: write a pilot's raw rows, definition, registry and stored results over a
window to one zip that `kcity verify` re-computes without our database.

Rows stream: each table leaves PostgreSQL by `COPY … TO STDOUT (FORMAT CSV)` into a
temporary file, and pyarrow converts it block by block to Parquet (or typed CSV), so no
table is ever held whole in memory. Everything is read in one repeatable-read snapshot, so
the stored results and the rows they name belong together.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg.pq import TransactionStatus

from analytics.coverage_result import METHOD_VERSION as COVERAGE_VERSION
from analytics.quality import METHOD_VERSION as QUALITY_VERSION
from analytics.savings_result import METHOD_VERSION as SAVINGS_VERSION
from devices.pilots import Pilot
from kcity import analyses
from kcity.errors import BundleError
from kcity.evidence.pilot_files import pilot_files
from kcity.evidence.tables import SECRET_COLUMNS, UTC_US, Table, span, tables_for
from kcity.registry import get_pilot
from kcity.window import Window

FORMAT = "kcity-evidence/1"
FORMATS = ("parquet", "csv")
_BLOCK = 1 << 22  # bytes of CSV pyarrow converts at a time
Progress = Callable[[str, int, int], None]  # (table, rows done, rows in all)

ANALYSES = {"streetlight": ("savings", "quality"), "hybrid_drone": ("coverage", "quality")}


@dataclass(frozen=True)
class Exported:
    path: Path
    sha256: str  # of the whole zip file
    manifest: dict[str, Any]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextmanager
def _snapshot(conn: psycopg.Connection) -> Iterator[None]:
    """A read-only repeatable-read transaction, if the connection is not in one already."""
    if conn.autocommit or conn.info.transaction_status != TransactionStatus.IDLE:
        yield
        return
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        yield
    finally:
        conn.rollback()


def _convert(csv_path: Path, table: Table, out: Path, fmt: str, meta: dict[bytes, bytes]) -> int:
    """PostgreSQL's CSV of `table` into a typed Parquet or CSV file, block by block; return
    the number of rows."""
    raw_types = {n: (pa.int64() if k == UTC_US else k) for n, _, k in table.columns}
    schema = table.schema.with_metadata(meta)
    if csv_path.stat().st_size == 0:  # no rows: a typed empty file
        empty = schema.empty_table()
        pq.write_table(empty, out) if fmt == "parquet" else pacsv.write_csv(empty, out)
        return 0
    reader = pacsv.open_csv(
        csv_path,
        read_options=pacsv.ReadOptions(
            column_names=list(raw_types), use_threads=False, block_size=_BLOCK
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=raw_types,
            true_values=["t"],
            false_values=["f"],
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    writer: Any = (
        pq.ParquetWriter(out, schema, compression="zstd")
        if fmt == "parquet"
        else pacsv.CSVWriter(out, schema)
    )
    rows = 0
    with writer:
        for batch in reader:
            cols = [c.cast(f.type) for c, f in zip(batch.columns, schema, strict=True)]
            writer.write_batch(pa.record_batch(cols, schema=schema))
            rows += batch.num_rows
    return rows


def _copy_table(
    conn: psycopg.Connection,
    table: Table,
    params: dict[str, Any],
    csv_path: Path,
    progress: Progress | None,
) -> None:
    """COPY the table's selected rows to `csv_path`, reporting lines written as progress."""
    bound = psycopg.ClientCursor(conn).mogrify(table.select(), params)
    total = 0
    if progress is not None:
        row = conn.execute(f"SELECT count(*) FROM {table.source} WHERE {table.where}", params)
        total = int(row.fetchone()[0])  # type: ignore[index]
        progress(table.name, 0, total)
    lines = 0
    with (
        csv_path.open("wb") as fh,
        conn.cursor() as cur,
        cur.copy(f"COPY ({bound}) TO STDOUT (FORMAT CSV)") as copy,
    ):
        for chunk in copy:
            fh.write(chunk)
            if progress is not None:
                lines += bytes(chunk).count(b"\n")  # a row per line but for quoted newlines
                progress(table.name, min(lines, total), total)


def _registry(conn: psycopg.Connection, pilot_id: str) -> pa.Table:
    """The pilot's device rows, every column but secrets (columns other issues add too)."""
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM devices WHERE pilot_id = %s ORDER BY id", (pilot_id,))
        names = [d.name for d in cur.description or ()]
        keep = [i for i, n in enumerate(names) if n not in SECRET_COLUMNS]
        rows = [{names[i]: r[i] for i in keep} for r in cur.fetchall()]
    if not rows:
        return pa.table({names[i]: pa.array([], pa.string()) for i in keep})
    return pa.Table.from_pylist(rows)


def stored_results(
    conn: psycopg.Connection, pilot: Pilot, window: Window
) -> dict[str, dict[str, Any]]:
    """Each analysis's latest stored result of exactly this window, or one computed now
    (not stored: an export writes nothing) where none is stored."""
    out: dict[str, dict[str, Any]] = {}
    for analysis in ANALYSES.get(pilot.kind, ("quality",)):
        row = conn.execute(
            "SELECT id, method, method_version, parameters, input_hash, result, computed_at"
            " FROM analytics_results WHERE pilot_id = %s AND analysis = %s"
            " AND window_from = %s AND window_to = %s ORDER BY computed_at DESC, id DESC LIMIT 1",
            (pilot.id, analysis, window.start, window.end),
        ).fetchone()
        if row is not None:
            out[analysis] = {
                "source": "stored",
                "result_id": row[0],
                "method": row[1],
                "method_version": row[2],
                "parameters": row[3],
                "input_sha256": row[4],
                "computed_at": row[6].isoformat(),
                "result": row[5],
            }
            continue
        body = _compute(conn, pilot.id, analysis, window)
        digest = body.get("input_sha256") or body.get("input_hash")
        out[analysis] = {
            "source": "computed at export",
            "method": body.get("method"),
            "method_version": body.get("method_version"),
            "input_sha256": digest,
            "result": json.loads(json.dumps(body, default=str)),
        }
    return out


def _compute(conn: psycopg.Connection, pilot_id: str, analysis: str, window: Window) -> Any:
    if analysis == "savings":
        return analyses.run_savings(conn, pilot_id, window, persist=False)[0]
    if analysis == "coverage":
        return analyses.run_coverage(conn, pilot_id, window, persist=False)[0]
    return analyses.run_quality(conn, pilot_id, window, persist=False, from_rollup=False)


def export_bundle(
    conn: psycopg.Connection,
    pilot_id: str,
    window: Window,
    out: Path,
    *,
    fmt: str = "parquet",
    progress: Progress | None = None,
) -> Exported:
    """Write the bundle of `pilot_id` over `window` to `out` (a zip); return its hash."""
    if fmt not in FORMATS:
        raise BundleError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with _snapshot(conn), tempfile.TemporaryDirectory(prefix="kcity-export-") as tmp:
        pilot = get_pilot(conn, pilot_id)
        start, end = span(pilot, window)
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM devices WHERE pilot_id = %s ORDER BY id", (pilot.id,)
        )]  # fmt: skip
        params = {"ids": ids, "pilot": pilot.id, "start": start, "end": end}
        meta = {b"kcity.pilot": pilot.id.encode(), b"kcity.timezone": pilot.timezone.encode()}
        members: dict[str, Path] = {}
        tables: dict[str, Any] = {}
        for table in tables_for(pilot):
            raw = Path(tmp, f"{table.name}.pg.csv")
            _copy_table(conn, table, params, raw, progress)
            name = f"data/{table.name}.{fmt}"
            members[name] = Path(tmp, f"{table.name}.{fmt}")
            rows = _convert(raw, table, members[name], fmt, meta)
            raw.unlink()
            tables[table.name] = {"file": name, "rows": rows, "select": table.where}
        registry = _registry(conn, pilot.id)
        name = f"data/devices.{fmt}"
        members[name] = Path(tmp, f"devices.{fmt}")
        if fmt == "parquet":
            pq.write_table(registry, members[name])
        else:
            pacsv.write_csv(registry, members[name])
        tables["devices"] = {"file": name, "rows": registry.num_rows, "select": "pilot_id"}
        for rel, data in pilot_files(pilot).items():
            members[f"pilot/{rel}"] = Path(tmp, "pilot", rel)
            members[f"pilot/{rel}"].parent.mkdir(parents=True, exist_ok=True)
            members[f"pilot/{rel}"].write_bytes(data)
        members["pilot.json"] = Path(tmp, "pilot.json")
        members["pilot.json"].write_text(json.dumps(pilot.to_json(), indent=1))
        results = stored_results(conn, pilot, window)
        manifest = {
            "format": FORMAT,
            "pilot": pilot.id,
            "kind": pilot.kind,
            "timezone": pilot.timezone,
            "from": window.start.isoformat(),
            "to": window.end.isoformat(),
            "span_utc": [start.isoformat(), end.isoformat()],
            "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "data_format": fmt,
            "timestamps": "UTC (timestamp[us, UTC]); local dates use the pilot's timezone",
            "devices": ids,
            "method_versions": {
                "savings": SAVINGS_VERSION,
                "coverage": COVERAGE_VERSION,
                "quality": QUALITY_VERSION,
            },
            "tables": tables,
            "results": results,
            "files": {
                name: {"sha256": sha256_file(path), "bytes": path.stat().st_size}
                for name, path in sorted(members.items())
            },
            "verify": "kcity verify BUNDLE.zip",
        }
        part = out.with_name(out.name + ".part")
        with zipfile.ZipFile(part, "w") as zf:
            zf.writestr("manifest.json", json.dumps(manifest, indent=1, default=str))
            for name, path in sorted(members.items()):
                kind = zipfile.ZIP_STORED if name.endswith(".parquet") else zipfile.ZIP_DEFLATED
                zf.write(path, name, compress_type=kind)
        part.replace(out)
    return Exported(out, sha256_file(out), manifest)
