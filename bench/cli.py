"""CLI start-up benchmark: the wall time of `kcity` verbs that do little, as a firm's
2 a.m. `kcity devices provision`, a cron job's `kcity retention apply` and every
`python -m kcity` the tests spawn pay it before doing anything.

Each command runs as a fresh `python -m kcity …` process `--runs` times (median reported);
the floor is a bare `python -c pass` and `python -c "import typer.main"` (what any Typer
CLI pays) in the same run. `kcity pilots list` and `kcity status` run against a private
stack (TimescaleDB and Mosquitto, no services) with one pilot registered. With
`--before DIR`, the same commands also run from another checkout (its `.venv` and tree:
`python -m` puts the working directory first), alternating with this one, for a
before/after in the same run on the same machine.

Run: `flock /work/bench.lock .venv/bin/python bench/cli.py [--runs N] [--before DIR]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# Run as a script, this file's folder would shadow the `ingest` package: use the repo root.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.common import header, private_stack  # noqa: E402
from devices.pilots import load_pilot  # noqa: E402
from kcity.db import connect  # noqa: E402
from kcity.registry import apply_pilot  # noqa: E402
from kcity.schema import migrate  # noqa: E402
from kcity.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def median_walls(argv: list[str], env: dict[str, str], runs: int, trees: list[Path]) -> list[float]:
    """Median wall time [s] of `runs` fresh processes per checkout, the checkouts taking
    turns (after one warm-up run each), so load changes hit them alike."""
    times: list[list[float]] = [[] for _ in trees]
    for i in range(runs + 1):
        for k, tree in enumerate(trees):
            python = str(tree / ".venv" / "bin" / "python")
            t0 = time.perf_counter()
            subprocess.run([python, *argv], env=env, cwd=tree, capture_output=True, check=False)
            if i:
                times[k].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


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
    parser.add_argument("--before", type=Path, help="Another checkout to compare (its .venv).")
    args = parser.parse_args()
    trees = [ROOT] if args.before is None else [args.before.resolve(), ROOT]
    header(f"CLI start-up, median of {args.runs} fresh processes (load {os.getloadavg()[0]:.1f})")
    with private_stack() as stack:
        s = stack.settings
        with connect(s.database_url) as conn:
            migrate(conn)
            apply_pilot(conn, load_pilot(ROOT / "pilots" / "madiun.toml"))
        env = stack_env(s)
        cases = [
            ("python -c pass (floor)", ["-c", "pass"]),
            ("python -c 'import typer.main' (any Typer CLI)", ["-c", "import typer.main"]),
            ("kcity --help", ["-m", "kcity", "--help"]),
            ("kcity status --help", ["-m", "kcity", "status", "--help"]),
            ("kcity pilots list (1 pilot)", ["-m", "kcity", "pilots", "list"]),
            ("kcity status (database and broker up)", ["-m", "kcity", "status"]),
        ]
        if args.before is not None:
            print(f"  {'':<50} {'before':>8} {'after':>8}  ({args.before} → {ROOT})")
        for name, argv in cases:
            walls = median_walls(argv, env, args.runs, trees)
            print(f"  {name:<50} " + " ".join(f"{w:7.3f}s" for w in walls), flush=True)
    print(f"  load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
