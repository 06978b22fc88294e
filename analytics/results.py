"""Persisting analytics results so that an evaluator can reproduce them.

Every result is stored with its method, method version, parameters and a hash of the input
rows; the same inputs and parameters always give the same hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import date
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb


def input_hash(arrays: Iterable[np.ndarray | str | bytes]) -> str:
    """SHA-256 over the input arrays' bytes in order (strings and ids included)."""
    h = hashlib.sha256()
    for item in arrays:
        if isinstance(item, str):
            h.update(item.encode())
        elif isinstance(item, bytes):
            h.update(item)
        elif item.dtype == object or item.dtype.kind in "US":
            h.update("\x1f".join(map(str, item.tolist())).encode())
        else:
            h.update(np.ascontiguousarray(item).tobytes())
        h.update(b"\x1e")
    return "sha256:" + h.hexdigest()


def save_result(
    conn: psycopg.Connection,
    *,
    pilot_id: str,
    analysis: str,
    method: str,
    method_version: str,
    window: tuple[date, date],
    parameters: dict[str, Any],
    input_digest: str,
    result: dict[str, Any],
) -> int:
    row = conn.execute(
        "INSERT INTO analytics_results (pilot_id, analysis, method, method_version, window_from,"
        " window_to, parameters, input_hash, result)"
        " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s::jsonb) RETURNING id",
        (
            pilot_id,
            analysis,
            method,
            method_version,
            window[0],
            window[1],
            Jsonb(parameters),
            input_digest,
            # The text Jsonb(json.loads(json.dumps(…))) would send, written once: 0.25 s
            # instead of 1.4 s for a 90-day quality result of 500 devices (11 MB).
            json.dumps(result, default=str),
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])
