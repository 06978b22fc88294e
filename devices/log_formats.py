"""Which autopilot log a file is, from its first bytes (never from its name), and its reader.

Why: ground stations and autopilots name logs freely (``00000042.BIN``, ``flight.log``,
``log_3_2026-10-1-09-12-01.ulg``); the content says what it is.
"""

from __future__ import annotations

from pathlib import Path

from devices.flight_log import FlightLog, LogError, LogOptions

ULOG_MAGIC = b"ULog\x01\x12\x35"
DATAFLASH_MAGIC = b"\xa3\x95\x80"  # HEAD1, HEAD2, then the FMT message's id (128)
FORMATS = ("tlog", "bin", "ulg")


def detect(path: Path) -> str:
    """``tlog``, ``bin`` (ArduPilot DataFlash) or ``ulg`` (PX4 ULog); `LogError` otherwise."""
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        raise LogError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if head.startswith(ULOG_MAGIC):
        return "ulg"
    if head.startswith(DATAFLASH_MAGIC):
        return "bin"
    if len(head) >= 9 and head[8] in (0xFE, 0xFD):  # 8-byte receive time, then a frame
        return "tlog"
    if not head:
        raise LogError(f"{path}: empty file; nothing imported")
    raise LogError(f"{path}: not a MAVLink .tlog, DataFlash .bin or PX4 .ulg log")


def read_log(path: Path, opts: LogOptions) -> FlightLog:
    """Read any supported log into records and events (the format detected from content)."""
    fmt = detect(path)
    if fmt == "tlog":
        from devices.mavlink import read_tlog

        return read_tlog(path, opts)
    if fmt == "bin":
        from devices.dataflash import read_dataflash

        return read_dataflash(path, opts)
    from devices.ulog import read_ulog

    return read_ulog(path, opts)
