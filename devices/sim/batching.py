"""Turn per-device record columns into timed messages, as a field device would send them.

Both simulators compute their records as numpy columns; this module decides which records
travel together (`batch_records` per message, a new message at every boot), when the
device can send them (`deliver_at`: when the message is complete, or when a lost link
comes back, so catch-up arrives late in messages of up to 1000 records) and merges all
devices into one stream ordered by simulated delivery time.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

MAX_ITEMS: Final = 1000  # DESIGN §4: 1 to 1000 records per message

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Batch:
    """One message a device sends: its records or events and when it can send them.

    ``deliver_at`` is simulated epoch seconds; ``boot`` the device's boot counter, which a
    driver copies into the message envelope (the driver numbers ``seq`` itself).
    """

    device_id: str
    channel: Literal["telemetry", "event"]
    items: list[dict[str, Any]]
    deliver_at: float
    boot: int


@dataclass(frozen=True)
class DeviceStream:
    """Everything one device sends: record columns, their message plan, and its events.

    ``plan`` rows are (start, stop, deliver_at, boot) over the rows of ``columns``;
    ``events`` rows are (event, deliver_at, boot).
    """

    device_id: str
    columns: Mapping[str, np.ndarray[Any, Any]]
    plan: Sequence[tuple[int, int, float, int]]
    events: Sequence[tuple[dict[str, Any], float, int]]

    def batches(self) -> Iterator[Batch]:
        """This device's messages in order of ``deliver_at`` (records before events on ties)."""
        order = sorted(
            [(p[2], 0, i) for i, p in enumerate(self.plan)]
            + [(e[1], 1, i) for i, e in enumerate(self.events)]
        )
        names = list(self.columns)
        for deliver_at, rank, i in order:
            if rank == 0:
                start, stop, _, boot = self.plan[i]
                cols = [self.columns[n][start:stop].tolist() for n in names]
                items = [dict(zip(names, row, strict=True)) for row in zip(*cols, strict=True)]
                yield Batch(self.device_id, "telemetry", items, deliver_at, boot)
            else:
                event, _, boot = self.events[i]
                yield Batch(self.device_id, "event", [dict(event)], deliver_at, boot)


def merge_streams(streams: Sequence[DeviceStream]) -> Iterator[Batch]:
    """All devices' messages merged in order of ``deliver_at`` (ties: device order)."""
    return heapq.merge(*(s.batches() for s in streams), key=lambda b: b.deliver_at)


def iso_ms(epoch_s: FloatArray) -> npt.NDArray[np.str_]:
    """RFC 3339 UTC text with millisecond precision and a 'Z', for an array of epoch seconds."""
    ms = np.round(np.asarray(epoch_s, dtype=np.float64) * 1000.0).astype(np.int64)
    text = np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms")
    return np.char.add(text, "Z")


def iso_ms_one(epoch_s: float) -> str:
    """`iso_ms` for one instant (events)."""
    return str(iso_ms(np.array([epoch_s]))[0])


def ready_times(ts: FloatArray, outages: Sequence[tuple[float, float]]) -> FloatArray:
    """When each record could leave the device: its own time, or the end of the outage
    (link restoration) it was produced in."""
    ready = np.array(ts, dtype=np.float64, copy=True)
    for lost, restored in outages:
        inside = (ts >= lost) & (ts < restored)
        ready[inside] = restored
    return ready


def plan_messages(
    ts: FloatArray,
    boot: IntArray,
    ready: FloatArray,
    t0: float,
    window_s: float,
    max_items: int = MAX_ITEMS,
) -> list[tuple[int, int, float, int]]:
    """Group streamed records (sorted by ts) into messages.

    A message holds the records of one boot within one window of ``window_s`` seconds
    (``batch_records`` × interval) counted from ``t0``; it leaves when its last record is
    ready. Consecutive messages held back by the same outage are re-packed into catch-up
    messages of up to ``max_items`` records (keep them under the 256 KiB payload limit),
    all sent at link restoration.
    """
    n = len(ts)
    if n == 0:
        return []
    window = np.floor((ts - t0) / window_s).astype(np.int64)
    new = np.ones(n, dtype=bool)
    new[1:] = (window[1:] != window[:-1]) | (boot[1:] != boot[:-1])
    starts = np.flatnonzero(new)
    stops = np.append(starts[1:], n)
    plan: list[tuple[int, int, float, int]] = []
    run_start = -1  # start of the current run of held-back groups
    run_key: tuple[float, int] = (0.0, 0)
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        deliver = float(ready[stop - 1])
        b = int(boot[start])
        late = deliver > float(ts[stop - 1])
        if late and run_start >= 0 and run_key == (deliver, b):
            continue  # extends the held-back run
        if run_start >= 0:
            plan.extend(_chunks(run_start, start, run_key, max_items))
            run_start = -1
        if late:
            run_start, run_key = start, (deliver, b)
        else:
            plan.append((start, stop, deliver, b))
    if run_start >= 0:
        plan.extend(_chunks(run_start, n, run_key, max_items))
    return plan


def late_records(plan: Sequence[tuple[int, int, float, int]], ts: FloatArray) -> int:
    """Records sent in catch-up messages, i.e. after the time of the message's last record."""
    return sum(stop - start for start, stop, deliver, _ in plan if deliver > ts[stop - 1])


def _chunks(
    start: int, stop: int, key: tuple[float, int], size: int
) -> list[tuple[int, int, float, int]]:
    return [(s, min(s + size, stop), key[0], key[1]) for s in range(start, stop, size)]
