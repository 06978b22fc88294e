"""Evidence bundle benchmark: export and offline verify of 90 days of Madiun (60 luminaires
of 5-minute data, the demo's pilot size), printed as a ratio against a limit measured in
this run: export + verify within 3× the time the database path takes to compute the same
figures (savings and data quality, not stored).

Run: `.venv/bin/python bench/evidence.py`. It starts a private stack.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import psycopg

# Run as a script, this file's folder would shadow the `analytics` package: use the repo root.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import analytics as data  # noqa: E402
from bench.common import header, private_stack, verdict  # noqa: E402
from kcity.analyses import Window, run_quality, run_savings  # noqa: E402
from kcity.evidence.export import export_bundle  # noqa: E402
from kcity.evidence.verify import verify_bundle  # noqa: E402

data.LUMINAIRES = 60  # the demo's Madiun pilot


def main() -> int:
    header("evidence bundle benchmark (90 days, 60 luminaires)")
    with private_stack() as stack, psycopg.connect(stack.settings.database_url) as conn:
        data.register_madiun(conn)
        conn.commit()
        rows = data.load_streetlights(conn)
        window = Window(data.START + timedelta(days=7), data.START + timedelta(days=data.DAYS - 1))
        t0 = time.perf_counter()
        run_savings(conn, "madiun", window, persist=False)
        run_quality(conn, "madiun", window, persist=False)
        analyses = time.perf_counter() - t0
        run_savings(conn, "madiun", window)  # stored, so the bundle names stored results
        run_quality(conn, "madiun", window)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp, "madiun.zip")
            t0 = time.perf_counter()
            export_bundle(conn, "madiun", window, out)
            export = time.perf_counter() - t0
            t0 = time.perf_counter()
            verdict_ = verify_bundle(out)
            check = time.perf_counter() - t0
            size = out.stat().st_size
        print(f"  {rows:,} rows; bundle {size / 1e6:.1f} MB; verified: {verdict_.ok}")
        print(f"  analyses from the database {analyses:.2f} s; export {export:.2f} s;"
              f" verify {check:.2f} s")  # fmt: skip
    ok = verdict_.ok and verdict(
        "(export + verify) ÷ database analyses", (export + check) / analyses, 3.0,
        higher_is_better=False,
    )  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
