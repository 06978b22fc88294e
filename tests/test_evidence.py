"""Evidence bundles against a real database: export both pilot kinds, verify offline, and
catch tampering (a flipped byte, a changed reading re-hashed so only the figures catch it).

The rows are the report tests' synthetic pilots, plus ingest messages with a known sequence
gap and duplicate and two dead letters, so data quality has counts to re-compute.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from kcity.analyses import run_coverage, run_quality, run_savings
from kcity.cli import app
from kcity.evidence.export import export_bundle, sha256_file
from kcity.evidence.verify import verify_bundle
from kcity.settings import Settings
from tests.test_report import (
    DR_PILOT,
    DR_WINDOW,
    LUMINAIRES,
    REPORT_FROM,
    SILENT,
    SL_PILOT,
    SL_WINDOW,
    seed_drones,
    seed_streetlights,
)

GAP_DAY = REPORT_FROM + dt.timedelta(days=1)


def _seed_quality(conn: psycopg.Connection) -> None:
    """Messages 1, 2, 3, 5, 6 of boot 0 (one lost) with message 2 twice, and two dead
    letters, all on GAP_DAY for the first two luminaires."""
    noon = dt.datetime.combine(GAP_DAY, dt.time(12), ZoneInfo("Asia/Jakarta"))
    for seq in (1, 2, 3, 5, 6):
        conn.execute(
            "INSERT INTO ingest_messages (device_id, boot, seq, channel, received_at, records,"
            " copies, first_ts) VALUES (%s, 0, %s, 'telemetry', %s, 1, %s, %s)",
            (LUMINAIRES[0], seq, noon, 2 if seq == 2 else 1, noon + dt.timedelta(minutes=seq)),
        )
    for k in range(2):
        conn.execute(
            "INSERT INTO dead_letters (received_at, topic, payload, stage, reason, pilot_id,"
            " device_id) VALUES (%s, 't', %s, 'record', 'power_w < 0', %s, %s)",
            (noon + dt.timedelta(minutes=k), b"{bad", SL_PILOT, LUMINAIRES[1]),
        )


@pytest.fixture(scope="module")
def bundles(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bundles")
    with psycopg.connect(db_url, autocommit=True) as conn:
        seed_streetlights(conn)
        seed_drones(conn)
        _seed_quality(conn)
    with psycopg.connect(db_url) as conn:
        stored = {
            "savings": run_savings(conn, SL_PILOT, SL_WINDOW)[0],
            "sl-quality": run_quality(conn, SL_PILOT, SL_WINDOW),
            "coverage": run_coverage(conn, DR_PILOT, DR_WINDOW)[0],
            "dr-quality": run_quality(conn, DR_PILOT, DR_WINDOW),
        }
        made = {
            "sl": export_bundle(conn, SL_PILOT, SL_WINDOW, out / "sl.zip"),
            "dr": export_bundle(conn, DR_PILOT, DR_WINDOW, out / "dr.zip"),
            "sl-csv": export_bundle(conn, SL_PILOT, SL_WINDOW, out / "sl-csv.zip", fmt="csv"),
        }
    return {"stored": stored, "made": made, "db": db_url}


def _rezip(src: Path, dst: Path, change: dict[str, bytes]) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, change.get(info.filename, zin.read(info.filename)))


def test_bundle_holds_the_rows_and_results(bundles: dict[str, Any]) -> None:
    made, stored = bundles["made"]["sl"], bundles["stored"]
    m = made.manifest
    assert made.sha256 == sha256_file(made.path)
    with psycopg.connect(bundles["db"]) as conn:
        zone = ZoneInfo("Asia/Jakarta")
        lo = dt.datetime.combine(dt.date(2026, 9, 29), dt.time(), zone)  # the baseline's start
        hi = dt.datetime.combine(SL_WINDOW.end + dt.timedelta(days=1), dt.time(), zone)
        (n,) = conn.execute(
            "SELECT count(*) FROM streetlight_readings WHERE ts >= %s AND ts < %s", (lo, hi)
        ).fetchone() or (0,)
    assert m["tables"]["streetlight_readings"]["rows"] == n > 10_000
    assert m["tables"]["dead_letters"]["rows"] == 2 and m["tables"]["ingest_messages"]["rows"] == 5
    assert m["timezone"] == "Asia/Jakarta" and m["devices"] == [*LUMINAIRES, SILENT]
    assert m["results"]["savings"]["input_sha256"] == stored["savings"]["input_sha256"]
    assert m["results"]["savings"]["result_id"] == stored["savings"]["result_id"]
    assert m["results"]["quality"]["input_sha256"] == stored["sl-quality"]["input_hash"]
    with zipfile.ZipFile(made.path) as zf:
        registry = pq.read_table(io.BytesIO(zf.read("data/devices.parquet")))
        readings = pq.read_table(io.BytesIO(zf.read("data/streetlight_readings.parquet")))
        assert "password_hash" not in registry.column_names and registry.num_rows == 7
        assert str(readings.schema.field("ts").type) == "timestamp[us, tz=UTC]"
        assert readings.schema.metadata[b"kcity.timezone"] == b"Asia/Jakarta"
        for name, entry in m["files"].items():
            import hashlib

            assert hashlib.sha256(zf.read(name)).hexdigest() == entry["sha256"], name
        assert b"[streetlight]" in zf.read("pilot/pilot.toml")


@pytest.mark.parametrize("name", ["sl", "dr", "sl-csv"])
def test_verify_recomputes_every_figure(bundles: dict[str, Any], name: str) -> None:
    verdict = verify_bundle(bundles["made"][name].path)
    failed = [c for c in verdict.checks if not c.ok]
    assert verdict.ok, failed
    kinds = {(c.kind, c.analysis) for c in verdict.checks}
    analysis = "coverage" if name == "dr" else "savings"
    assert {("input", analysis), ("input", "quality"), ("definition", "pilot")} <= kinds
    figures = {c.name for c in verdict.checks if c.kind == "figure" and c.analysis == analysis}
    must = {"area_coverage_pct", "covered_km2", "fuel_l"} if name == "dr" else {
        "savings_kwh", "ci90_kwh", "per_luminaire", "completeness_pct"}  # fmt: skip
    assert must <= figures


def test_quality_counts_match_the_seeded_truth(bundles: dict[str, Any]) -> None:
    verdict = verify_bundle(bundles["made"]["sl"].path)
    got = {c.name: c.recomputed for c in verdict.checks if c.analysis == "quality"}
    assert got["seq_gaps"] == 1 and got["duplicates"] == 1 and got["dead_letters"] == 2
    day = [r for r in got["per_device_day"] if r["day"] == GAP_DAY.isoformat()]
    first = next(r for r in day if r["device_id"] == LUMINAIRES[0])
    assert first["seq_gaps"] == 1 and first["records"] == 288


def test_a_flipped_byte_is_caught(bundles: dict[str, Any], tmp_path: Path) -> None:
    src = bundles["made"]["sl"].path
    with zipfile.ZipFile(src) as zf:
        data = bytearray(zf.read("data/streetlight_readings.parquet"))
    data[len(data) // 2] ^= 0x01
    bad = tmp_path / "flipped.zip"
    _rezip(src, bad, {"data/streetlight_readings.parquet": bytes(data)})
    verdict = verify_bundle(bad)
    assert not verdict.ok
    (failed,) = [c for c in verdict.checks if c.kind == "file" and not c.ok]
    assert failed.name == "data/streetlight_readings.parquet"
    # The same flip in the zip itself: the archive's own CRC fails on reading.
    raw = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        info = zf.getinfo("data/streetlight_readings.parquet")
    raw[info.header_offset + 200] ^= 0x01
    inplace = tmp_path / "inplace.zip"
    inplace.write_bytes(bytes(raw))
    assert not verify_bundle(inplace).ok
    done = CliRunner().invoke(app, ["verify", str(inplace)])
    assert done.exit_code == 1 and "MISMATCH" in done.output


def test_a_changed_reading_rehashed_is_caught_by_the_figures(
    bundles: dict[str, Any], tmp_path: Path
) -> None:
    src = bundles["made"]["sl"].path
    name = "data/streetlight_readings.parquet"
    with zipfile.ZipFile(src) as zf:
        table = pq.read_table(io.BytesIO(zf.read(name)))
        manifest = json.loads(zf.read("manifest.json"))
    rows = table.to_pylist()
    target = next(
        i for i, r in enumerate(rows)
        if r["device_id"] == LUMINAIRES[3] and r["lamp_on"] and r["ts"].date() > REPORT_FROM
    )  # fmt: skip
    rows[target]["power_w"] += 50.0
    buf = io.BytesIO()
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), buf)
    import hashlib

    manifest["files"][name]["sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    bad = tmp_path / "rehashed.zip"
    _rezip(src, bad, {name: buf.getvalue(), "manifest.json": json.dumps(manifest).encode()})
    verdict = verify_bundle(bad)
    assert all(c.ok for c in verdict.checks if c.kind == "file")
    failed = {(c.kind, c.analysis, c.name) for c in verdict.checks if not c.ok}
    assert ("input", "savings", "input hash") in failed
    assert any(kind == "figure" and a == "savings" for kind, a, _ in failed), failed
    done = CliRunner().invoke(app, ["verify", str(bad), "--json"])
    assert done.exit_code == 1 and json.loads(done.stdout)["ok"] is False


def test_cli_export_and_errors(bundles: dict[str, Any], settings: Settings, tmp_path: Path) -> None:
    env = {"KCITY_DATABASE_URL": settings.database_url, "KCITY_DATA_DIR": str(tmp_path)}
    out = tmp_path / "cli.zip"
    args = ["export", DR_PILOT, "--from", str(DR_WINDOW.start), "--to", str(DR_WINDOW.end)]
    done = CliRunner().invoke(app, [*args, "--out", str(out), "--quiet"], env=env)
    assert done.exit_code == 0, done.output
    assert f"sha256:{sha256_file(out)}" in done.stdout
    done = CliRunner().invoke(app, ["verify", str(out), "--json"], env=env)
    assert done.exit_code == 0 and json.loads(done.stdout)["ok"] is True
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    for argv in (["verify", str(tmp_path / "junk.zip")],
                 [*args, "--out", str(out), "--format", "xlsx"],
                 ["export", "nope", "--from", "2026-01-01", "--to", "2026-01-02",
                  "--out", str(out)]):  # fmt: skip
        import subprocess
        import sys

        run = subprocess.run(
            [sys.executable, "-c", "from kcity.cli import main; main()", *argv],
            capture_output=True, text=True, env={**env, "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        assert run.returncode == 1, run.stderr
        assert run.stderr.startswith("kcity: error:") and run.stderr.count("\n") == 1, run.stderr


def test_report_names_the_bundle_and_the_command(bundles: dict[str, Any], tmp_path: Path) -> None:
    from kcity.reports.render import BundleRef, build

    made = bundles["made"]["sl"]
    ref = BundleRef(made.path.name, made.sha256)
    with psycopg.connect(bundles["db"]) as conn:
        named = build(conn, SL_PILOT, SL_WINDOW, tmp_path / "a", "en", persist=False, bundle=ref)
        plain = build(conn, SL_PILOT, SL_WINDOW, tmp_path / "b", "ko", persist=False)
    html = named.html.read_text(encoding="utf-8")
    assert f"sha256:{made.sha256}" in html and f"kcity verify {made.path.name}" in html
    other = plain.html.read_text(encoding="utf-8")
    assert f"kcity export {SL_PILOT} --from {SL_WINDOW.start}" in other
