"""CLI start-up benchmark: the wall time of `kcity` verbs that do little, as a firm's
2 a.m. `kcity devices provision`, a cron job's `kcity retention apply` and every
`python -m kcity` the tests spawn pay it before doing anything.

Each command runs as a fresh `python -m kcity …` process `--runs` times (median reported);
the floor is a bare `python -c pass` and `python -c "import typer.main"` (what any Typer
CLI pays) in the same run. `kcity pilots list` and `kcity status` run against a private
stack (TimescaleDB and Mosquitto, no services) with one pilot registered.

Run: `flock /work/bench.lock .venv/bin/python bench/cli.py [--runs N]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# Run as a script, this file's folder would shadow nothing, but keep the repo root first.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.common import header, private_stack  # noqa: E402
from devices.pilots import load_pilot  # noqa: E402
from kcity.db import connect  # noqa: E402
from kcity.registry import apply_pilot  # noqa: E402
from kcity.schema import migrate  # noqa: E402
from kcity.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def median_wall(argv: list[str], env: dict[str, str], runs: int) -> float:
    """Median wall time [s] of `runs` fresh processes (one warm-up run first)."""
    times = []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, check=False)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def stack_env(s: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KCITY_")}
    env.update(
        {
            "KCITY_DATA_DIR": str(s.data_dir),
            "KCITY_DATABASE_URL": s.database_url,
            "KCITY_MQTT_URL": s.mqtt_url,
            "KCITY_MQTT_TLS_PORT": str(s.mqtt_tls_port),
            "KCITY_MQTT_PASSWORD": s.mqtt_password,
            "KCITY_MQTT_ADMIN_PASSWORD": s.mqtt_admin_password,
            "KCITY_API_PORT": str(s.api_port),
            "KCITY_METRICS_PORT": str(s.metrics_port),
        }
    )
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="Processes per command (median).")
    args = parser.parse_args()
    py = sys.executable
    header(f"CLI start-up, median of {args.runs} fresh processes (load {os.getloadavg()[0]:.1f})")
    with private_stack() as stack:
        s = stack.settings
        with connect(s.database_url) as conn:
            migrate(conn)
            apply_pilot(conn, load_pilot(ROOT / "pilots" / "madiun.toml"))
        env = stack_env(s)
        cases = [
            ("python -c pass (floor)", [py, "-c", "pass"]),
            ("python -c 'import typer.main' (any Typer CLI)", [py, "-c", "import typer.main"]),
            ("kcity --help", [py, "-m", "kcity", "--help"]),
            ("kcity status --help", [py, "-m", "kcity", "status", "--help"]),
            ("kcity pilots list (1 pilot)", [py, "-m", "kcity", "pilots", "list"]),
            ("kcity status (database and broker up)", [py, "-m", "kcity", "status"]),
        ]
        for name, argv in cases:
            print(f"  {name:<50} {median_wall(argv, env, args.runs):6.3f} s", flush=True)
    print(f"  load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
