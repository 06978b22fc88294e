"""`kcity verify`: re-compute a bundle's figures with no database and no network.

Every file is checked against the manifest's SHA-256; the pilot definition is read back
from the bundle's TOML and GeoJSON; savings, coverage and data quality are re-computed by
the same shell functions the database path calls (`kcity.analyses.*_from`), with the same
parameters, from inputs built out of the bundle's rows; each stored figure is compared with
its re-computation, and each stored input hash with the hash of the bundle's rows.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from analytics.coverage import CoverageResult
from analytics.errors import AnalyticsError
from analytics.luminaire_nights import pool_parts
from analytics.nights import NO_NIGHTS
from analytics.savings_baseline import summarise_baseline
from devices.errors import DevicesError
from devices.pilots import Pilot, load_pilot
from kcity import analyses
from kcity.errors import BundleError
from kcity.evidence import inputs
from kcity.evidence.bundle import Bundle
from kcity.evidence.export import sha256_file
from kcity.window import Window

_NOT_FIGURES = {"result_id", "computed_at"}
_CONTEXT = {"dimming_profiles"}  # read beside the figures from the command log, not computed
_DIGEST_KEY = {"savings": "input_sha256", "coverage": "input_sha256", "quality": "input_hash"}


@dataclass(frozen=True)
class Check:
    """One line of the verdict: a file hash, an input hash or a figure."""

    kind: str  # "file", "input", "figure", "definition"
    analysis: str
    name: str
    stored: Any
    recomputed: Any
    ok: bool


@dataclass(frozen=True)
class Verdict:
    bundle: Path
    sha256: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": str(self.bundle),
            "bundle_sha256": self.sha256,
            "ok": self.ok,
            "mismatches": sum(not c.ok for c in self.checks),
            "checks": [
                {
                    "kind": c.kind,
                    "analysis": c.analysis,
                    "name": c.name,
                    "stored": c.stored,
                    "recomputed": c.recomputed,
                    "match": c.ok,
                }
                for c in self.checks
            ],
        }


def same(a: Any, b: Any) -> bool:
    """Equal as JSON, floats to 1e-9 relative (the same arithmetic gives the same bits;
    the slack only absorbs a decimal round trip through jsonb)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def pilot_of(bundle: Bundle) -> tuple[Pilot, Check]:
    """The definition from the bundle's TOML and GeoJSON, checked against pilot.json."""
    stored = Pilot.from_json(bundle.read("pilot.json"))
    with tempfile.TemporaryDirectory(prefix="kcity-verify-") as tmp:
        for name in bundle.manifest.get("files", {}):
            if name.startswith("pilot/"):
                target = Path(tmp, name)
                if not target.resolve().is_relative_to(Path(tmp).resolve()):
                    raise BundleError(f"unsafe file name in bundle: {name}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(bundle.read(name))
        try:
            pilot = load_pilot(Path(tmp, "pilot", "pilot.toml"))
        except DevicesError as exc:
            raise BundleError(f"the bundle's pilot.toml does not load: {exc}") from exc
    return pilot, Check("definition", "pilot", "pilot.toml = pilot.json", "", "", pilot == stored)


def coverage_of(
    bundle: Bundle, pilot: Pilot, window: Window
) -> tuple[dict[str, Any], CoverageResult]:
    """Coverage from the bundle's drone rows: the JSON and the geometry the report draws."""
    ids = list(bundle.manifest["devices"])
    events = bundle.table("events")
    wstart, wend = window.utc(pilot.timezone)
    detections = inputs.count_events(events, ids, "detection", wstart, wend)
    tracks = inputs.drones(bundle.table("drone_readings"), ids, wstart, wend)
    return analyses.coverage_from(pilot, window, tracks, detections)


def recompute(bundle: Bundle, pilot: Pilot, window: Window, analysis: str) -> dict[str, Any]:
    """One analysis's JSON from the bundle's rows, through the shell's shared function."""
    ids = list(bundle.manifest["devices"])
    readings_name = {"streetlight": "streetlight_readings", "hybrid_drone": "drone_readings"}
    readings = bundle.table(readings_name.get(pilot.kind, "generic_readings"))
    events = bundle.table("events")
    if analysis == "savings":
        reads = analyses.savings_reads(pilot, window)
        series = inputs.luminaires(
            readings, ids, reads.start, reads.end, reads.nights, reads.lead_s
        )
        baseline = None
        if (b := reads.baseline) is not None:
            nightly = inputs.luminaires(
                readings, ids, b.start, b.end, b.calendar, b.lead_s, every_lamp_on=False
            )
            baseline = summarise_baseline(nightly, analyses.savings_params(pilot))
        control = set(reads.control) & set(ids)
        body, _ = analyses.savings_from(
            pilot,
            window,
            series,
            inputs.events(events, ids, reads.start, reads.end),
            ids,
            baseline=baseline,
            pool=lambda: pool_parts(
                inputs.luminaires(readings, sorted(control), *reads.pool_span, NO_NIGHTS, 0.0),
                control,
            ),
        )
        return body
    if analysis == "coverage":
        return coverage_of(bundle, pilot, window)[0]
    devices = inputs.registered(bundle.table("devices"))
    rows = inputs.quality_rows(
        kind=pilot.kind,
        ids=ids,
        timezone=pilot.timezone,
        interval_s=analyses.quality_interval(pilot),
        start=window.start,
        end=window.end,
        readings=readings,
        messages=bundle.table("ingest_messages"),
        dead_letters=bundle.table("dead_letters"),
        registered=devices,
    )
    skew = inputs.quality_skew(
        kind=pilot.kind,
        ids=ids,
        timezone=pilot.timezone,
        start=window.start,
        end=window.end,
        readings=readings,
    )
    return analyses.quality_from(pilot, window, rows, devices, skew)


def _figures(analysis: str, stored: dict[str, Any], body: dict[str, Any]) -> list[Check]:
    fresh = json.loads(json.dumps(body, default=str))
    return [
        Check("context", analysis, key, value, "not re-computed (context)", True)
        if key in _CONTEXT
        else Check("figure", analysis, key, value, fresh.get(key), same(value, fresh.get(key)))
        for key, value in stored.items()
        if key not in _NOT_FIGURES
    ]


def verify_bundle(path: Path) -> Verdict:
    """Check every file and re-compute every stored result of the bundle at `path`."""
    digest = sha256_file(path)
    with Bundle(path) as bundle:
        files = bundle.check_files()
        checks = [Check("file", "", f.name, f.expected, f.actual, f.ok) for f in files]
        m = bundle.manifest
        if not all(f.ok for f in files):  # figures from altered rows would prove nothing
            skipped = "skipped: files differ from the manifest"
            checks.append(Check("figure", "", "re-computation", "", skipped, False))
            return Verdict(path, digest, tuple(checks))
        try:
            window = Window.parse(date.fromisoformat(m["from"]), date.fromisoformat(m["to"]))
            pilot, definition = pilot_of(bundle)
            checks.append(definition)
            for analysis, entry in m.get("results", {}).items():
                body = recompute(bundle, pilot, window, analysis)
                fresh = body.get(_DIGEST_KEY.get(analysis, "input_sha256"))
                stored = entry.get("input_sha256")
                ok = stored == fresh
                checks.append(Check("input", analysis, "input hash", stored, fresh, ok))
                checks += _figures(analysis, entry.get("result", {}), body)
        except (BundleError, AnalyticsError, KeyError, ValueError) as exc:
            checks.append(Check("figure", "", "re-computation", "", f"failed: {exc}", False))
    return Verdict(path, digest, tuple(checks))
