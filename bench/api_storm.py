"""`/health` under a storm of heavy API requests (issue #17).

The API runs as `kcity api run` (its own process, its least-privilege database login) on a
private stack with 30 days of 60 Madiun luminaires (5-minute data). Twelve clients then
send heavy requests back to back — report jobs (`POST .../reports`) and savings — while a
poller asks `/health` every 20 ms; twice: clients that wait the `Retry-After` of a 429 (as
the API asks), then clients that ignore it and hammer. Printed: `/health` p50/p99/max idle
(the reference measured in this run) and during each storm, against the 500 ms target, and
what the heavy requests got (200/202/429).

Run: `.venv/bin/python bench/api_storm.py [SECONDS] [both|reports|savings]` (default 30 s
of storm, both kinds of heavy request).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import psycopg

# Run as a script, this file's folder would shadow the `analytics` package: use the repo root.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import analytics as data  # noqa: E402
from bench.common import header, private_stack, verdict  # noqa: E402
from kcity.stack.processes import wait_for_port  # noqa: E402
from kcity.tokens import create_token  # noqa: E402

data.LUMINAIRES, data.DAYS = 60, 30
CLIENTS = 12
TARGET_P99_MS = 500.0


def percentiles(samples_ms: list[float]) -> tuple[float, float, float]:
    a = np.asarray(samples_ms)
    return float(np.percentile(a, 50)), float(np.percentile(a, 99)), float(a.max())


def health_samples(base: str, stop: threading.Event, out: list[tuple[float, int]]) -> None:
    with httpx.Client(base_url=base, timeout=30) as h:
        while not stop.is_set():
            t0 = time.perf_counter()
            code = h.get("/health").status_code
            out.append(((time.perf_counter() - t0) * 1000, code))
            time.sleep(0.02)


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    kinds = sys.argv[2] if len(sys.argv) > 2 else "both"
    header(f"/health during {CLIENTS} concurrent heavy requests ({seconds:.0f} s)")
    with private_stack() as stack:
        s = stack.settings
        with psycopg.connect(s.database_url) as conn:
            data.register_madiun(conn)
            conn.commit()
            rows = data.load_streetlights(conn)
            token = create_token(conn, "evaluator", label="bench")[0]
            conn.commit()
        start, end = data.START + timedelta(days=7), data.START + timedelta(days=data.DAYS - 1)
        window = f"from={start}&to={end}"
        print(f"  {rows:,} readings; window {start} .. {end}; API as {s.api_db_url.split('@')[0]}")
        env = {
            **os.environ,
            "KCITY_DATA_DIR": str(s.data_dir),
            "KCITY_DATABASE_URL": s.database_url,
            "KCITY_API_PORT": str(s.api_port),
            "KCITY_MQTT_URL": s.mqtt_url,
        }
        api = subprocess.Popen(
            [sys.executable, "-m", "kcity", "api", "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port("127.0.0.1", s.api_port, 60, "the API")
            base = f"http://127.0.0.1:{s.api_port}"
            idle = idle_health(base)
            ok = storm(base, token, window, seconds, idle, kinds, polite=True)
            ok = storm(base, token, window, seconds, idle, kinds, polite=False) and ok
            return 0 if ok else 1
        finally:
            api.terminate()
            api.wait(30)


def idle_health(base: str) -> list[float]:
    idle: list[float] = []
    with httpx.Client(base_url=base, timeout=30) as h:
        for _ in range(300):
            t0 = time.perf_counter()
            h.get("/health")
            idle.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.02)
    return idle


def storm(
    base: str,
    token: str,
    window: str,
    seconds: float,
    idle: list[float],
    kinds: str,
    *,
    polite: bool,
) -> bool:
    print(f"  -- clients {'waiting Retry-After' if polite else 'ignoring Retry-After'}")
    heavy = [
        ("POST", f"/api/v1/pilots/madiun/reports?{window}"),
        ("GET", f"/api/v1/pilots/madiun/savings?{window}"),
    ]
    heavy = {"reports": heavy[:1], "savings": heavy[1:]}.get(kinds, heavy)
    answers: Counter[tuple[str, int]] = Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, timeout=300, headers=headers) as c:
            i = n
            while not stop.is_set():
                method, path = heavy[i % len(heavy)]
                answer = c.request(method, path)
                with lock:
                    answers[(method, answer.status_code)] += 1
                i += 1
                if polite and answer.status_code == 429:
                    stop.wait(int(answer.headers["retry-after"]))

    during: list[tuple[float, int]] = []
    poller = threading.Thread(target=health_samples, args=(base, stop, during))
    workers = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in [*workers, poller]:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in [*workers, poller]:
        t.join()
    i50, i99, imax = percentiles(idle)
    d50, d99, dmax = percentiles([ms for ms, _ in during])
    bad = sum(1 for _, code in during if code != 200)
    print(
        f"  /health idle    p50 {i50:7.1f} ms  p99 {i99:7.1f} ms  max {imax:7.1f} ms"
        f"  (n={len(idle)})"
    )
    print(
        f"  /health storm   p50 {d50:7.1f} ms  p99 {d99:7.1f} ms  max {dmax:7.1f} ms"
        f"  (n={len(during)}, non-200: {bad})"
    )
    print(
        "  heavy answers   " + ", ".join(f"{m} {c}: {n}" for (m, c), n in sorted(answers.items()))
    )
    print(f"  storm p99 / idle p99: {d99 / i99:.1f}×")
    ok = verdict(
        "/health p99 during the storm", d99, TARGET_P99_MS, higher_is_better=False, unit=" ms"
    )
    ok = (
        verdict(
            "/health answers 200 during the storm [%]",
            100 * (1 - bad / len(during)),
            100.0,
            higher_is_better=True,
            unit=" %",
        )
        and ok
    )
    return ok


if __name__ == "__main__":
    raise SystemExit(main())
