"""`kcity report --bundle FILE.zip`: the evaluation report regenerated from an evidence
bundle alone — no database, no network.

The analyses are re-computed from the bundle's rows by `kcity.evidence.verify` (the same
shell functions the database path calls); the report's extra series (dim level and traffic
by hour of night, completeness per luminaire-night) are counted here from the same rows by
the rules of `kcity.reports.data`'s SQL. A bundle whose files differ from its manifest, or
whose rows no longer hash to its stored results, is refused: a report from it would prove
nothing. The result ids and the commanded dimming profiles are context, taken from the
stored results the bundle carries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analytics.errors import AnalyticsError
from analytics.nights import NightCalendar
from devices.pilots import Pilot
from kcity.errors import BundleError
from kcity.evidence.bundle import Bundle
from kcity.evidence.export import sha256_file
from kcity.evidence.inputs import epoch_us
from kcity.evidence.verify import coverage_of, pilot_of, recompute
from kcity.reports.data import CompletenessGrid, HourProfile, grid_from_counts, profile_from_rows
from kcity.reports.render import (
    BundleRef,
    Inputs,
    ReportError,
    ReportFiles,
    render,
    report_nights,
)
from kcity.window import Window

_DIGEST = {"savings": "input_sha256", "coverage": "input_sha256", "quality": "input_hash"}
_CONTEXT = ("result_id", "dimming_profiles")


def _in(table: pa.Table, ids: Sequence[str]) -> pa.Table:
    return table.filter(pc.is_in(table["device_id"], pa.array(list(ids), pa.string())))


def hour_profile(readings: pa.Table, pilot: Pilot, window: Window) -> HourProfile:
    """`reports.data.hour_profile` over a bundle's streetlight rows of the pilot's devices
    (same selection, same arithmetic: nights from local noon, each record's local hour)."""
    sl = pilot.streetlight
    assert sl is not None
    zone = ZoneInfo(pilot.timezone)
    noon = dt.time(12)
    lo = epoch_us(dt.datetime.combine(window.start, noon, zone))
    hi = epoch_us(dt.datetime.combine(window.end, noon, zone))
    rows = readings
    ts = pc.cast(rows["ts"], pa.int64())
    keep = pc.and_(
        pc.and_(pc.fill_null(rows["lamp_on"], False), pc.greater_equal(ts, lo)), pc.less(ts, hi)
    )
    rows = rows.filter(keep)
    local = pc.local_timestamp(pc.cast(rows["ts"], pa.timestamp("us", tz=pilot.timezone)))
    night = pc.cast(pc.subtract(local, pa.scalar(dt.timedelta(hours=12))), pa.date32())
    hour = pc.hour(local)
    treated = pc.invert(pc.is_in(rows["device_id"], pa.array(list(sl.control_group), pa.string())))
    out: list[tuple[dt.date, int, float | None, float | None]] = []
    keys = pa.table({"night": night, "hour": hour})
    groups: dict[tuple[dt.date, int], list[int]] = {}
    for k, (n, h) in enumerate(
        zip(keys["night"].to_pylist(), keys["hour"].to_pylist(), strict=True)
    ):
        groups.setdefault((n, h), []).append(k)
    dim = rows["dim_pct"].to_pylist()
    vehicles = rows["vehicles"].to_pylist()
    is_treated = treated.to_pylist()
    for (n, h), members in groups.items():
        dims = [dim[k] for k in members if is_treated[k] and dim[k] is not None]
        cars = [vehicles[k] for k in members if vehicles[k] is not None]
        mean = float(np.sum(np.asarray(dims, np.float64))) / len(dims) if dims else None
        rate = float(sum(cars)) / len(cars) * 3600.0 / float(sl.record_interval_s) if cars else None
        out.append((n, int(h), mean, rate))
    return profile_from_rows(out, window.start, window.end)


def night_completeness(
    readings: pa.Table, ids: Sequence[str], calendar: NightCalendar, interval_s: float
) -> CompletenessGrid:
    """`reports.data.night_completeness` over a bundle: records with dusk < ts <= dawn."""
    ids = sorted(ids)
    utc = dt.UTC
    dusk = [epoch_us(dt.datetime.fromtimestamp(t, utc)) for t in calendar.dusk.tolist()]
    dawn = [epoch_us(dt.datetime.fromtimestamp(t, utc)) for t in calendar.dawn.tolist()]
    rows: list[tuple[str, dt.date, int]] = []
    for device in ids:
        mine = readings.filter(pc.equal(readings["device_id"], device))
        ts = np.sort(np.asarray(pc.cast(mine["ts"], pa.int64()).to_numpy(), np.int64))
        for night, a, b in zip(calendar.dates, dusk, dawn, strict=True):
            n = int(np.searchsorted(ts, b, "right") - np.searchsorted(ts, a, "right"))
            if n:
                rows.append((device, night, n))
    return grid_from_counts(rows, ids, calendar, interval_s)


def _with_context(analysis: str, body: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """The re-computed JSON, refused unless its input hash is the stored result's; the
    stored result id and context keys added."""
    fresh, kept = body.get(_DIGEST[analysis]), stored.get("input_sha256")
    if fresh != kept:
        raise BundleError(
            f"the bundle's rows do not reproduce its stored {analysis} result (input hash"
            f" {str(kept)[:19]}…, re-computed {str(fresh)[:19]}…); run kcity verify"
        )
    out = dict(body)
    for key in _CONTEXT:
        if key in stored.get("result", {}):
            out[key] = stored["result"][key]
    if stored.get("result_id") is not None:
        out["result_id"] = stored["result_id"]
    return out


def bundle_inputs(bundle: Bundle, pilot: Pilot, window: Window) -> Inputs:
    """Everything the report shows, from the bundle's rows."""
    results = bundle.manifest.get("results", {})
    primary = {"streetlight": "savings", "hybrid_drone": "coverage"}.get(pilot.kind)
    if primary is None or primary not in results or "quality" not in results:
        raise ReportError(f"no evaluation report for {pilot.kind} pilots yet ({pilot.id})")
    quality = _with_context("quality", recompute(bundle, pilot, window, "quality"),
                            results["quality"])  # fmt: skip
    if primary == "coverage":
        body, result = coverage_of(bundle, pilot, window)
        return Inputs(_with_context(primary, body, results[primary]), quality, coverage=result)
    sl = pilot.streetlight
    assert sl is not None
    readings = bundle.table("streetlight_readings")
    ids = list(bundle.manifest["devices"])
    body = _with_context(primary, recompute(bundle, pilot, window, primary), results[primary])
    profile = hour_profile(_in(readings, ids), pilot, window)
    grid = night_completeness(
        _in(readings, ids), ids, report_nights(pilot, window), sl.record_interval_s
    )
    return Inputs(body, quality, profile=profile, grid=grid)


def build_from_bundle(path: Path, out_dir: Path, lang: str = "en", *,
                      now: dt.datetime | None = None) -> ReportFiles:  # fmt: skip
    """Write the evaluation report of the bundle at `path` into `out_dir`."""
    if not path.is_file():
        raise BundleError(f"{path}: no such bundle")
    digest = sha256_file(path)
    with Bundle(path) as bundle:
        bad = [f.name for f in bundle.check_files() if not f.ok]
        if bad:
            raise BundleError(
                f"{path}: {len(bad)} file(s) differ from the manifest ({', '.join(bad[:3])});"
                " run kcity verify"
            )
        m = bundle.manifest
        try:
            window = Window.parse(date.fromisoformat(m["from"]), date.fromisoformat(m["to"]))
            pilot, definition = pilot_of(bundle)
            if not definition.ok:
                raise BundleError(f"{path}: pilot.toml and pilot.json disagree")
            inputs = bundle_inputs(bundle, pilot, window)
        except (KeyError, ValueError, AnalyticsError) as exc:
            raise BundleError(f"{path}: cannot re-compute the report ({exc})") from exc
    ref = BundleRef(path.name, digest)
    return render(pilot, window, out_dir, lang, inputs, now=now, bundle=ref, from_bundle=True)


__all__ = ["build_from_bundle", "bundle_inputs", "hour_profile", "night_completeness"]
