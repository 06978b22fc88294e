"""`kcity report --bundle`: the evaluation report regenerated from an evidence bundle alone
(the CLI is given a database address where nothing listens) carries exactly the figures of
the report made from the database — every marked number and every figure's pixels — names
the bundle's SHA-256 and the commands that re-derive it; an altered bundle is refused."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import psycopg
import pytest
from PIL import Image, ImageChops

from kcity.evidence.export import export_bundle
from kcity.reports.render import build
from tests.test_report import (
    DR_PILOT,
    DR_WINDOW,
    SL_PILOT,
    SL_WINDOW,
    numbers,
    seed_drones,
    seed_streetlights,
)

CASES = {"sl": (SL_PILOT, SL_WINDOW), "dr": (DR_PILOT, DR_WINDOW)}


def _dead_database() -> str:
    """A database URL on a port nothing listens on: any connection attempt fails."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql://nobody@127.0.0.1:{port}/none?connect_timeout=1"


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KCITY_")}
    env |= {"KCITY_DATA_DIR": str(tmp_path / ".kcity"), "KCITY_DATABASE_URL": _dead_database()}
    return subprocess.run([sys.executable, "-m", "kcity", "report", *args], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def made(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Per pilot: the database report (its analyses stored), then the window's bundle."""
    root = tmp_path_factory.mktemp("bundle-report")
    out: dict[str, Any] = {}
    with psycopg.connect(db_url, autocommit=True) as conn:
        seed_streetlights(conn)
        seed_drones(conn)
    with psycopg.connect(db_url) as conn:
        for case, (pilot, window) in CASES.items():
            files = build(conn, pilot, window, root / f"db-{case}", "en")
            bundle = export_bundle(conn, pilot, window, root / f"{pilot}.zip").path
            out[case] = {"db": files, "bundle": bundle}
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_bundle_report_has_the_database_reports_figures(
    made: dict[str, Any], tmp_path: Path, case: str
) -> None:
    db_files, bundle = made[case]["db"], made[case]["bundle"]
    done = _cli(tmp_path, "--bundle", str(bundle), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    html_path, pdf_path = (Path(p) for p in done.stdout.split())
    html, db_html = html_path.read_text(), db_files.html.read_text()
    got, want = numbers(html), numbers(db_html)
    assert len(want) > 20 and got == want  # every figure: key, exact value, shown text
    for figure in db_files.figures:
        mine = html_path.parent / figure.name
        with Image.open(figure) as a, Image.open(mine) as b:
            assert a.size == b.size, figure.name
            diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getbbox()
            assert diff is None, (figure.name, diff)
    assert pdf_path.read_bytes().startswith(b"%PDF")
    # The reproducibility block: the bundle's hash, the command that re-derives every
    # figure, and the one that makes this report again.
    digest = subprocess.run(["sha256sum", str(bundle)], capture_output=True, text=True)
    assert f"sha256:{digest.stdout.split()[0]}" in html
    assert f"kcity verify {bundle.name}" in html
    assert f"kcity report --bundle {bundle.name}" in html
    text = subprocess.run(["pdftotext", str(pdf_path), "-"], capture_output=True, text=True)
    assert digest.stdout.split()[0][:32] in "".join(text.stdout.split())


def test_altered_bundle_is_refused_in_one_line(made: dict[str, Any], tmp_path: Path) -> None:
    good = made["sl"]["bundle"]
    bad = tmp_path / "altered.zip"
    shutil.copy(good, bad)
    with zipfile.ZipFile(good) as z:
        name = "data/events.parquet"
        info = z.getinfo(name)
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data = bytearray(bad.read_bytes())
    data[start + info.compress_size // 2] ^= 0xFF  # one byte of the stored Parquet file
    bad.write_bytes(bytes(data))
    done = _cli(tmp_path, "--bundle", str(bad), "--out", str(tmp_path / "out"))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert "differ from the manifest" in lines[0] and "events.parquet" in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([SL_PILOT, "--bundle", "x.zip"], ["--bundle takes the pilot and window"]),
        (["--bundle", "missing.zip"], ["missing.zip", "no such bundle"]),
        ([SL_PILOT], ["give PILOT, --from and --to"]),
    ],
)
def test_bad_bundle_arguments_are_one_line(tmp_path: Path, args: list[str],
                                           words: list[str]) -> None:  # fmt: skip
    done = _cli(tmp_path, *args, "--out", str(tmp_path / "out"))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert all(w in lines[0] for w in words), lines[0]
