"""Limits of HTTP ingest per device, so one device's flood costs it, not the others.

- Each device may post ``per_minute`` messages a minute (a token bucket; 429 with
  ``Retry-After`` beyond), as the broker's per-client queue bounds an MQTT device.
- A password is checked with scrypt once: a (device, stored hash, password digest) that
  verified is remembered, so a device posting every few seconds costs one database read,
  not 50 ms of CPU. A rotated password changes the stored hash, a revocation the row the
  read finds, so neither waits for the memory to expire.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from typing import Final

MAX_REMEMBERED: Final = 100_000


class DeviceGate:
    """Per-device rate limit and verified-credential memory, shared by the app's threads."""

    def __init__(self, per_minute: int = 600) -> None:
        self.per_minute = per_minute
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # device -> (tokens, at)
        self._verified: OrderedDict[tuple[str, str, bytes], None] = OrderedDict()

    def admit(self, device: str, now: float | None = None) -> float:
        """0 when the device may post now, else the seconds until it may."""
        now = time.monotonic() if now is None else now
        rate = self.per_minute / 60.0
        with self._lock:
            tokens, at = self._buckets.get(device, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - at) * rate)
            if tokens < 1.0:
                self._buckets[device] = (tokens, now)
                return (1.0 - tokens) / rate
            self._buckets[device] = (tokens - 1.0, now)
            return 0.0

    @staticmethod
    def _key(device: str, stored_hash: str, password: str) -> tuple[str, str, bytes]:
        return device, stored_hash, hashlib.sha256(password.encode()).digest()

    def known(self, device: str, stored_hash: str, password: str) -> bool:
        with self._lock:
            return self._key(device, stored_hash, password) in self._verified

    def remember(self, device: str, stored_hash: str, password: str) -> None:
        with self._lock:
            self._verified[self._key(device, stored_hash, password)] = None
            while len(self._verified) > MAX_REMEMBERED:
                self._verified.popitem(last=False)
