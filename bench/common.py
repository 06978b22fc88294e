"""Shared pieces of the benchmarks: a private stack on free ports, and figure printing.

Every target is a ratio against a limit measured in the same run on the same machine,
because this machine is shared and noisy.
"""

from __future__ import annotations

import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from kcity.settings import Settings
from kcity.stack.local import LocalStack
from kcity.stack.mosquitto import new_secret
from kcity.stack.processes import free_port


@contextmanager
def private_stack(keep: Path | None = None) -> Iterator[LocalStack]:
    """A stack under a fresh temporary folder, removed afterwards; or under `keep`, left
    in place (stopped) so a later run can reuse its data."""
    root = keep or Path(tempfile.mkdtemp(prefix="kcity-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    stack = LocalStack(
        Settings(
            data_dir=root,
            database_url=f"postgresql://kcity@127.0.0.1:{free_port()}/kcity",
            mqtt_url=f"mqtt://127.0.0.1:{free_port()}",
            mqtt_tls_port=free_port(),
            mqtt_password=new_secret(),
            mqtt_admin_password=new_secret(),
            api_port=free_port(),
            metrics_port=free_port(),
        )
    )
    stack.up(services=False)
    try:
        yield stack
    finally:
        stack.down()
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)  # 4-8 GB at pilot scale


def best_of(n: int, fn: Callable[[], object]) -> float:
    """The fastest of `n` runs [s]: the least disturbed by the rest of the machine."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def header(title: str) -> None:
    print(
        f"\n== {title}  ({date.today()}, {platform.machine()}, "
        f"{platform.python_implementation()} {platform.python_version()})"
    )


def verdict(
    name: str, value: float, limit: float, *, higher_is_better: bool, unit: str = "×"
) -> bool:
    ok = value >= limit if higher_is_better else value <= limit
    sign = "≥" if higher_is_better else "≤"
    print(
        f"  {name:<58} {value:8.2f}{unit}  target {sign} {limit}{unit}  {'MET' if ok else 'MISSED'}"
    )
    return ok
