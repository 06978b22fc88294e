"""Evaluation reports (`kcity report`): the savings or coverage of a window as HTML and PDF.

An evaluator signs the report and the ministry reads it, so it must show exactly the
numbers of `kcity savings|coverage --json` for the same window: it renders the very `body`
dicts of `kcity.analyses` (every number carries its JSON key in a `data-key` attribute),
adds figures (`kcity.reports.figures`) and the few extra series of `kcity.reports.data`, and
ends with what is needed to reproduce it: method versions, parameters, input hashes,
result ids, software version and generation time.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import jinja2
import psycopg
import shapely
from markupsafe import Markup, escape

from analytics.coverage import CoverageResult
from analytics.geo import LINEAR, POLYGONAL, geometry_from_geojson
from analytics.nights import NightCalendar, night_calendar
from devices.pilots import Pilot
from kcity.analyses import Window, run_coverage, run_quality, run_savings
from kcity.errors import KcityError
from kcity.registry import get_pilot, list_devices
from kcity.reports import figures
from kcity.reports.data import CompletenessGrid, HourProfile, hour_profile, night_completeness
from kcity.reports.i18n import LANGS, SOURCES_STREETLIGHT, drone_sources, labels

DISTRIBUTION = "kcity-pilot-telemetry"
POINT_COLUMNS = ("points", "not_airborne", "not_patrol", "camera_off", "bad_fix", "no_footprint",
                 "glitches", "kept")  # fmt: skip


class ReportError(KcityError):
    """The report cannot be made: bad language, unsupported pilot kind, unwritable output."""


@dataclass(frozen=True)
class ReportFiles:
    """What `build` wrote: the HTML, the PDF and the figures the HTML links to."""

    html: Path
    pdf: Path
    figures: tuple[Path, ...]


def software_version() -> str:
    try:
        return f"{DISTRIBUTION} {metadata.version(DISTRIBUTION)}"
    except metadata.PackageNotFoundError:
        return f"{DISTRIBUTION} (not installed)"


def prepare_output(out_dir: Path, lang: str) -> None:
    """Refuse an unknown language and make `out_dir`, each with one readable line."""
    if lang not in LANGS:
        raise ReportError(f"--lang must be one of {', '.join(LANGS)}, not {lang!r}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create {out_dir}: {exc.strerror}") from exc


def fmt(value: Any, spec: str = ",.1f") -> str:
    """A number for the page; None and NaN as an em dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if spec.endswith("d"):
        value = round(value)
    text = format(value, spec)
    if text.startswith("-") and text.strip("-0.,") == "":
        text = text[1:]  # no "-0.0"
    return text.replace("-", "\u2212", 1)  # a typographic minus


def _json_value(value: Any) -> str:
    """The exact JSON text of a value, for `data-value` attributes."""
    return json.dumps(value, allow_nan=False)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("kcity.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    env.filters["jv"] = _json_value
    return env


def _repro(
    analysis: str, body: dict[str, Any], t: dict[str, str], prefix: str = ""
) -> dict[str, Any]:
    return {
        "analysis": t[f"an_{analysis}"],
        "method": body.get("method", analysis),
        "version": body.get("method_version", "—"),
        "input_hash": body.get("input_hash") or body.get("input_sha256") or "—",
        "result_id": body.get("result_id"),
        "prefix": prefix,
    }


def _parameters_text(parameters: dict[str, Any]) -> str:
    return "; ".join(f"{k} = {json.dumps(v, ensure_ascii=False, default=str)}"
                     for k, v in parameters.items())  # fmt: skip


@dataclass(frozen=True)
class Inputs:
    """What a report shows, wherever it was computed: the database or an evidence bundle."""

    body: dict[str, Any]  # the savings or coverage JSON
    quality: dict[str, Any]
    profile: HourProfile | None = None  # streetlights
    grid: CompletenessGrid | None = None  # streetlights
    coverage: CoverageResult | None = None  # drones


def report_nights(pilot: Pilot, window: Window) -> NightCalendar:
    """The nights a streetlight report shows, one per local date of the window."""
    return night_calendar(window.start, window.end - dt.timedelta(days=1),
                          timezone=pilot.timezone, latitude=pilot.latitude,
                          longitude=pilot.longitude)  # fmt: skip


def db_inputs(conn: psycopg.Connection, pilot: Pilot, window: Window, persist: bool) -> Inputs:
    """The report's inputs from the database (the analyses stored unless `persist` is off)."""
    quality = run_quality(conn, pilot.id, window, persist=persist)
    if pilot.kind == "hybrid_drone":
        body, result = run_coverage(conn, pilot.id, window, persist=persist)
        return Inputs(body, quality, coverage=result)
    body, _ = run_savings(conn, pilot.id, window, persist=persist)
    sl = pilot.streetlight
    assert sl is not None
    devices = [d.id for d in list_devices(conn, pilot.id)]
    treated = [d for d in devices if d not in set(sl.control_group)]
    profile = hour_profile(conn, device_ids=devices, treated_ids=treated,
                           timezone=pilot.timezone, interval_s=sl.record_interval_s,
                           start=window.start, end=window.end)  # fmt: skip
    grid = night_completeness(conn, device_ids=devices, calendar=report_nights(pilot, window),
                              interval_s=sl.record_interval_s)  # fmt: skip
    return Inputs(body, quality, profile=profile, grid=grid)


def _streetlight(pilot: Pilot, stem: Path, t: dict[str, str], inputs: Inputs) -> dict[str, Any]:
    body, quality, profile, grid = inputs.body, inputs.quality, inputs.profile, inputs.grid
    assert profile is not None and grid is not None
    params = body["parameters"]
    conf = fmt(100 * float(body["confidence"]), ".0f")
    sufficiency = 100 * float(params.get("sufficiency", 0.9))
    night_labels = [d.isoformat()[5:] for d in profile.nights]
    hours = [f"{h:02d}" for h in profile.hours]
    fig = {
        "nightly": figures.nightly_savings(body["per_night"], t, conf, _png(stem, "nightly")),
        "dim": figures.heatmap(profile.dim_pct, night_labels, hours, _png(stem, "dim"), t=t,
                               xlabel=t["ax_hour"], cbar_label=t["ax_dim"], cmap="cividis"),
        "vehicles": figures.vehicles_per_hour(profile.hours, profile.vehicles_per_h, t,
                                              _png(stem, "vehicles")),
        "completeness": figures.heatmap(
            grid.pct, list(grid.device_ids), [d.isoformat()[5:] for d in grid.nights],
            _png(stem, "completeness"), t=t, xlabel=t["night"],
            cbar_label=t["ax_completeness"], cmap="RdYlGn", below=sufficiency - 1e-9),
    }  # fmt: skip
    if body.get("control_group"):
        fig["control"] = figures.control_group(body["control_group"], t, _png(stem, "control"))
    baseline = float(body["baseline_kwh"] or 0.0)
    lo, hi = body["ci90_kwh"]

    def reason(e: dict[str, Any]) -> str:
        if not e.get("completeness_pct"):
            return t["reason_none"]
        return t["reason_low"].format(pct=fmt(e["completeness_pct"], ".1f"),
                                      min=fmt(sufficiency, ".0f"))  # fmt: skip

    return {
        "template": "streetlight.html.j2",
        "title": t["title_streetlight"],
        "body": body,
        "quality": quality,
        "params": params,
        "fig": {k: p.name for k, p in fig.items()},
        "figure_paths": tuple(fig.values()),
        "pct_lo": 100 * lo / baseline if baseline and lo is not None else None,
        "pct_hi": 100 * hi / baseline if baseline and hi is not None else None,
        "sufficiency_pct": fmt(sufficiency, ".0f"),
        "excluded_reason": reason,
        "window_extra": t["nights_note"],
        "warnings": body.get("warnings", []),
        "repro": [_repro("savings", body, t), _repro("quality", quality, t, "quality.")],
        "primary_hash": _repro("savings", body, t)["input_hash"],
        "parameters": _parameters_text(params),
        "verb": "savings",
        "sources": SOURCES_STREETLIGHT,
    }


def _drone(pilot: Pilot, stem: Path, t: dict[str, str], inputs: Inputs) -> dict[str, Any]:
    body, quality, result = inputs.body, inputs.quality, inputs.coverage
    assert result is not None
    d = pilot.drone
    assert d is not None
    proj = result.projection
    aoi = proj.geometry_to_metres(geometry_from_geojson(d.aoi, POLYGONAL))
    border = proj.geometry_to_metres(geometry_from_geojson(d.border, LINEAR))
    tracks = result.tracks_m if result.tracks_m is not None else shapely.MultiLineString()
    fig = {
        "map": figures.coverage_map(aoi, border, result.covered_m, tracks, t, _png(stem, "map")),
        "revisit": figures.revisit_histogram(result.revisit_intervals_s, t,
                                             _png(stem, "revisit")),
        "per_day": figures.coverage_per_day(body["per_day"], t, _png(stem, "per-day")),
        "energy": figures.energy_per_day(body["per_day"], t, _png(stem, "energy")),
    }  # fmt: skip
    parameters = body.get("parameters", {})
    return {
        "template": "drone.html.j2",
        "title": t["title_drone"],
        "body": body,
        "quality": quality,
        "fig": {k: p.name for k, p in fig.items()},
        "figure_paths": tuple(fig.values()),
        "cell_m": parameters.get("grid_cell_m", d.grid_cell_m),
        "point_columns": [c for c in POINT_COLUMNS
                          if all(c in p for p in body.get("points", {}).values())],
        "window_extra": "",
        "warnings": body.get("warnings", []),
        "repro": [_repro("coverage", body, t), _repro("quality", quality, t, "quality.")],
        "primary_hash": _repro("coverage", body, t)["input_hash"],
        "parameters": _parameters_text(parameters),
        "verb": "coverage",
        "sources": drone_sources(proj.epsg, proj.crs_name, pilot.city),
    }  # fmt: skip


@dataclass(frozen=True)
class BundleRef:
    """The evidence bundle a report names: its file name and SHA-256."""

    name: str
    sha256: str


def _png(stem: Path, name: str) -> Path:
    return stem.with_name(f"{stem.name}-{name}.png")


def build(conn: psycopg.Connection, pilot_id: str, window: Window, out_dir: Path,
          lang: str = "en", *, now: dt.datetime | None = None,
          persist: bool = True, bundle: BundleRef | None = None) -> ReportFiles:  # fmt: skip
    """Compute the pilot's analyses for `window` and write the report into `out_dir`.

    Files: ``<pilot>-<from>-<to>-<lang>.html`` and ``.pdf`` and the figures
    ``<pilot>-<from>-<to>-<lang>-<figure>.png`` the HTML links to (relative paths).
    The analyses' runs are stored unless `persist` is false (a GET must write nothing).
    Given the window's evidence `bundle`, the reproducibility block names its hash and the
    command that re-derives every figure from it.
    """
    if lang not in LANGS:
        raise ReportError(f"--lang must be one of {', '.join(LANGS)}, not {lang!r}")
    pilot = get_pilot(conn, pilot_id)
    if pilot.kind not in ("streetlight", "hybrid_drone"):
        raise ReportError(f"no evaluation report for {pilot.kind} pilots yet ({pilot.id})")
    inputs = db_inputs(conn, pilot, window, persist)
    return render(pilot, window, out_dir, lang, inputs, now=now, bundle=bundle)


def render(pilot: Pilot, window: Window, out_dir: Path, lang: str, inputs: Inputs, *,
           now: dt.datetime | None = None, bundle: BundleRef | None = None,
           from_bundle: bool = False) -> ReportFiles:  # fmt: skip
    """Write the report of `inputs`; `from_bundle`: they were re-computed from `bundle`."""
    prepare_output(out_dir, lang)
    stem = out_dir / f"{pilot.id}-{window.start}-{window.end}-{lang}"
    t = dict(labels(lang))
    if pilot.kind == "streetlight":
        context = _streetlight(pilot, stem, t, inputs)
    elif pilot.kind == "hybrid_drone":
        context = _drone(pilot, stem, t, inputs)
    else:
        raise ReportError(f"no evaluation report for {pilot.kind} pilots yet ({pilot.id})")
    generated = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    context |= {
        "lang": lang,
        "t": t,
        "pilot": pilot,
        "window_from": window.start.isoformat(),
        "window_to": window.end.isoformat(),
        "software": software_version(),
        "generated": generated.isoformat(timespec="seconds").replace("+00:00", " UTC"),
        "css": resources.files("kcity.reports.templates").joinpath("report.css").read_text(),
    }
    command = f"kcity {context['verb']} {pilot.id} --from {window.start} --to {window.end} --json"
    note = "repro_note"
    if from_bundle and bundle is not None:
        command, note = (
            f"kcity report --bundle {bundle.name} --out DIR --lang {lang}",
            "repro_bundle",
        )
    context["repro_note"] = Markup(escape(t[note])).format(
        cmd=Markup("<code>{}</code>").format(command)
    )
    context["bundle"] = bundle
    if bundle is not None:
        again = f"kcity verify {bundle.name}"
        context["bundle_note"] = Markup(escape(t["bundle_note"])).format(
            cmd=Markup("<code>{}</code>").format(again)
        )
    else:
        export = (f"kcity export {pilot.id} --from {window.start} --to {window.end}"
                  f" --out {pilot.id}-{window.start}-{window.end}-evidence.zip")  # fmt: skip
        context["bundle_note"] = Markup(escape(t["bundle_none"])).format(
            cmd=Markup("<code>{}</code>").format(export)
        )
    html = environment().get_template(context["template"]).render(context)
    html_path, pdf_path = write_pages(html, stem)
    return ReportFiles(html_path, pdf_path, context["figure_paths"])


def write_pages(html: str, stem: Path) -> tuple[Path, Path]:
    """``stem.html`` and its PDF (figures resolve beside it); return both paths."""
    import weasyprint  # heavy (pango, fonts): only when a report is written

    html_path, pdf_path = stem.with_suffix(".html"), stem.with_suffix(".pdf")
    try:
        html_path.write_text(html, encoding="utf-8")
        weasyprint.HTML(string=html, base_url=str(stem.parent)).write_pdf(pdf_path)
    except OSError as exc:
        raise ReportError(f"cannot write into {stem.parent}: {exc.strerror}") from exc
    return html_path, pdf_path


__all__ = ["Inputs", "ReportError", "ReportFiles", "build", "db_inputs", "fmt", "render",
           "report_nights", "software_version", "write_pages"]  # fmt: skip
