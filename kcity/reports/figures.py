"""The figures of the evaluation reports: result dicts and arrays in, PNG files out.

Pure plotting: no database, no pyplot state (each figure is its own `Figure` on the Agg
canvas, so reports can be built in a server thread). Text uses the Noto CJK font the
bootstrap installs, so Korean labels render; the same font serves English, for one look.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import matplotlib as mpl
import numpy as np
import numpy.typing as npt
import shapely
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch
from matplotlib.path import Path as MplPath
from matplotlib.ticker import FuncFormatter
from shapely.geometry.base import BaseGeometry

FloatArray = npt.NDArray[np.float64]
Labels = Mapping[str, str]

FONTS = ["Noto Sans CJK KR", "Noto Sans CJK JP", "DejaVu Sans"]
DPI = 150
BLUE, ORANGE, GREEN, GREY, RED = "#1f5fa8", "#e07b00", "#2e8b57", "#8a8f98", "#c0392b"
_STYLE: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": FONTS,
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e3e5e8",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "legend.frameon": False,
    "axes.unicode_minus": False,
}


@contextmanager
def _figure(path: Path, width: float = 6.8, height: float = 2.6) -> Iterator[Figure]:
    """A fresh figure in the report style, saved to `path` when the block ends."""
    with mpl.rc_context(cast(Any, _STYLE)):
        fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        yield fig
        fig.savefig(path, dpi=DPI, facecolor="white")


def _short(day: str) -> str:
    return day[5:] if len(day) == 10 else day  # YYYY-MM-DD → MM-DD


def _date_axis(ax: Axes, days: Sequence[str]) -> None:
    step = max(1, math.ceil(len(days) / 16))
    ax.set_xticks(range(0, len(days), step), [_short(d) for d in days[::step]])
    ax.set_xlim(-0.6, len(days) - 0.4)


def _legend(ax: Axes, handles: tuple[list[Any], list[str]] | None = None) -> None:
    """Legend in one row above the plot, where it never hides data."""
    h, names = handles or ax.get_legend_handles_labels()
    ax.legend(h, names, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=max(1, len(h)),
              borderaxespad=0.2, handlelength=1.6)  # fmt: skip


def _no_data(ax: Axes, t: Labels) -> None:
    ax.text(0.5, 0.5, t["ax_no_data"], ha="center", va="center", transform=ax.transAxes,
            color=GREY)  # fmt: skip


def nightly_savings(per_night: Sequence[Mapping[str, Any]], t: Labels, conf_pct: str,
                    path: Path) -> Path:  # fmt: skip
    """Savings per night [kWh] as bars with the interval as error bars."""
    with _figure(path) as fig:
        ax = fig.subplots()
        days = [str(n["night"]) for n in per_night]
        if not days:
            _no_data(ax, t)
        else:
            x = np.arange(len(days))
            s = np.array([float(n["savings_kwh"]) for n in per_night])
            lo = np.array([float(n.get("savings_lo_kwh") or n["savings_kwh"]) for n in per_night])
            hi = np.array([float(n.get("savings_hi_kwh") or n["savings_kwh"]) for n in per_night])
            ax.bar(x, s, color=BLUE, width=0.7, label=t["ax_savings_kwh"])
            ax.errorbar(x, s, yerr=[s - lo, hi - s], fmt="none", ecolor="#222",
                        elinewidth=1.0, capsize=3,
                        label=t["ax_interval"].format(conf=conf_pct))  # fmt: skip
            _date_axis(ax, days)
            _legend(ax)
        ax.set_ylabel(t["ax_savings_kwh"])
        ax.axhline(0, color="#444", linewidth=0.6)
    return path


def heatmap(
    values: FloatArray,
    rows: Sequence[str],
    cols: Sequence[str],
    path: Path,
    *,
    t: Labels,
    xlabel: str,
    cbar_label: str,
    cmap: str = "viridis",
    vmin: float = 0.0,
    vmax: float = 100.0,
    below: float | None = None,
) -> Path:
    """A rows × cols grid of values (NaN blank); `below` marks cells under a threshold."""
    height = min(7.5, max(1.8, 0.9 + 0.22 * len(rows)))
    with _figure(path, height=height) as fig:
        ax = fig.subplots()
        if values.size == 0:
            _no_data(ax, t)
            return path
        colours = mpl.colormaps[cmap].resampled(256)
        image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap=colours,
                          vmin=vmin, vmax=vmax, interpolation="nearest")  # fmt: skip
        ax.grid(False)
        step = max(1, math.ceil(len(cols) / 24))
        ax.set_xticks(range(0, len(cols), step), list(cols)[::step])
        rstep = max(1, math.ceil(len(rows) / 30))
        ax.set_yticks(range(0, len(rows), rstep), list(rows)[::rstep])
        ax.set_xlabel(xlabel)
        if values.shape[0] * values.shape[1] <= 200:
            for (i, j), v in np.ndenumerate(values):
                if np.isfinite(v):
                    dark = (v - vmin) / (vmax - vmin) < 0.55
                    ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=6.5,
                            color="white" if dark else "black")  # fmt: skip
        if below is not None:
            ii, jj = np.nonzero(np.nan_to_num(values, nan=-1.0) < below)
            ax.scatter(jj, ii, s=90, facecolors="none", edgecolors=RED, linewidths=1.3)
        fig.colorbar(image, ax=ax, label=cbar_label, fraction=0.04, pad=0.01)
    return path


def vehicles_per_hour(hours: Sequence[int], per_h: FloatArray, t: Labels, path: Path) -> Path:
    """Detections per luminaire-hour by local hour: each night thin, the mean bold."""
    with _figure(path, height=2.3) as fig:
        ax = fig.subplots()
        if per_h.size == 0 or not np.isfinite(per_h).any():
            _no_data(ax, t)
            return path
        x = np.arange(len(hours))
        for k, row in enumerate(per_h):
            ax.plot(x, row, color=GREY, linewidth=0.6, alpha=0.6,
                    label=t["ax_each_night"] if k == 0 else None)  # fmt: skip
        with np.errstate(invalid="ignore"):
            counts = np.isfinite(per_h).sum(axis=0)
            mean = np.where(counts > 0, np.nansum(per_h, axis=0) / np.maximum(counts, 1), np.nan)
        ax.plot(x, mean, color=ORANGE, linewidth=2.0, marker="o", markersize=3,
                label=t["ax_mean"])  # fmt: skip
        ax.set_xticks(x, [f"{h:02d}" for h in hours])
        ax.set_xlabel(t["ax_hour"])
        ax.set_ylabel(t["ax_vehicles"])
        ax.set_ylim(bottom=0)
        _legend(ax)
    return path


def control_group(did: Mapping[str, Any], t: Labels, path: Path) -> Path:
    """Mean energy per luminaire-night, treated vs control, baseline vs reporting."""
    periods = [("baseline", t["baseline_period"]), ("reporting", t["reporting_period"])]
    periods = [p for p in periods if did.get(f"treated_{p[0]}_mean_kwh") is not None]
    with _figure(path, width=4.6, height=2.3) as fig:
        ax = fig.subplots()
        x = np.arange(len(periods))
        for k, (group, colour) in enumerate((("treated", BLUE), ("control", GREY))):
            heights = [float(did[f"{group}_{p}_mean_kwh"] or 0.0) for p, _ in periods]
            bars = ax.bar(x + (k - 0.5) * 0.36, heights, width=0.34, color=colour,
                          label=t[group])  # fmt: skip
            ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
        ax.set_xticks(x, [name for _, name in periods])
        ax.set_ylabel(t["ax_kwh_night"])
        ax.margins(y=0.15)
        _legend(ax)
    return path


def _path(geom: BaseGeometry) -> MplPath | None:
    """A matplotlib path of a (multi)polygon in km, holes included."""
    verts: list[FloatArray] = []
    codes: list[npt.NDArray[np.uint8]] = []
    for poly in getattr(geom, "geoms", [geom]):
        if poly.geom_type != "Polygon" or poly.is_empty:
            continue
        for ring in (poly.exterior, *poly.interiors):
            xy = np.asarray(ring.coords, dtype=np.float64) / 1000.0
            c = np.full(len(xy), MplPath.LINETO, dtype=np.uint8)
            c[0], c[-1] = MplPath.MOVETO, MplPath.CLOSEPOLY
            verts.append(xy)
            codes.append(c)
    return MplPath(np.concatenate(verts), np.concatenate(codes)) if verts else None


def _lines(ax: Axes, geom: BaseGeometry, label: str, **style: Any) -> None:
    """Plot every line part of `geom` [m] in km, labelled once."""
    parts = [g for g in shapely.get_parts(geom) if g.geom_type == "LineString" and not g.is_empty]
    for k, line in enumerate(parts):
        xy = np.asarray(line.coords, dtype=np.float64) / 1000.0
        ax.plot(xy[:, 0], xy[:, 1], label=label if k == 0 else None, **style)


def _polygons(geoms: Sequence[BaseGeometry]) -> BaseGeometry:
    """Polygonal parts only (an intersection can leave stray lines)."""
    parts = [p for g in geoms for p in shapely.get_parts(g) if p.geom_type == "Polygon"]
    return shapely.MultiPolygon(parts) if parts else shapely.MultiPolygon()


def coverage_map(aoi: BaseGeometry, border: BaseGeometry | None, covered: BaseGeometry,
                 tracks: BaseGeometry, t: Labels, path: Path) -> Path:  # fmt: skip
    """Overview of the AOI and a detail around the tracks; geometry in UTM metres."""
    covered = _polygons([covered])
    with _figure(path, width=6.8, height=4.6) as fig:
        overview, detail = fig.subplots(1, 2, width_ratios=[1, 1.5])
        focus = tracks if not tracks.is_empty else (covered if not covered.is_empty else aoi)
        for ax in (overview, detail):
            aoi_path = _path(aoi)
            if aoi_path is not None:
                ax.add_patch(PathPatch(aoi_path, facecolor="#eef3f8", edgecolor=BLUE,
                                       linewidth=0.8, label=t["ax_aoi"]))  # fmt: skip
            cov_path = _path(covered)
            if cov_path is not None:
                ax.add_patch(PathPatch(cov_path, facecolor=GREEN, alpha=0.55, linewidth=0,
                                       label=t["ax_covered"]))  # fmt: skip
            if border is not None and not border.is_empty:
                _lines(ax, border, color=RED, linewidth=1.2, linestyle="--", label=t["ax_border"])
            if ax is detail and not tracks.is_empty:
                _lines(ax, tracks, color="#222", linewidth=0.5, label=t["ax_tracks"])
            ax.set_aspect("equal")
            ax.set_xlabel(t["ax_easting"])
            ax.ticklabel_format(useOffset=False, style="plain")
        x0, y0, x1, y1 = (np.asarray(aoi.bounds) / 1000.0).tolist()
        pad = 0.05 * max(x1 - x0, y1 - y0)
        overview.set_xlim(x0 - pad, x1 + pad)
        overview.set_ylim(y0 - pad, y1 + pad)
        overview.set_ylabel(t["ax_northing"])
        fx0, fy0, fx1, fy1 = (np.asarray(focus.bounds) / 1000.0).tolist()
        half = max(fx1 - fx0, fy1 - fy0, 1.0) * 0.6
        cx, cy = (fx0 + fx1) / 2, (fy0 + fy1) / 2
        detail.set_xlim(cx - half, cx + half)
        detail.set_ylim(cy - half, cy + half)
        overview.add_patch(PathPatch(
            MplPath([(cx - half, cy - half), (cx + half, cy - half), (cx + half, cy + half),
                     (cx - half, cy + half), (cx - half, cy - half)], closed=True),
            facecolor="none", edgecolor="#222", linewidth=0.8))  # fmt: skip
        for ax in (overview, detail):
            ax.tick_params(axis="x", labelrotation=30)
        handles, names = detail.get_legend_handles_labels()
        fig.legend(handles, names, loc="outside upper center", ncols=len(handles))
    return path


def revisit_histogram(intervals_s: FloatArray, t: Labels, path: Path) -> Path:
    """Histogram of revisit intervals on log-spaced bins [min]."""
    with _figure(path, height=2.3) as fig:
        ax = fig.subplots()
        minutes = np.asarray(intervals_s, dtype=np.float64) / 60.0
        minutes = minutes[np.isfinite(minutes) & (minutes > 0)]
        if minutes.size == 0:
            _no_data(ax, t)
        else:
            lo, hi = float(minutes.min()), float(minutes.max())
            if hi > 20 * lo:  # spans decades: log-spaced bins
                bins = np.logspace(math.log10(lo) - 0.02, math.log10(hi) + 0.02, 36)
                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            else:
                bins = np.linspace(lo * 0.95, hi * 1.05 + 1e-9, 30)
            ax.hist(minutes, bins=bins.tolist(), color=BLUE, edgecolor="white", linewidth=0.4)
            for q, style in ((50, ":"), (95, "--")):
                v = float(np.percentile(minutes, q))
                ax.axvline(v, color=ORANGE, linestyle=style, linewidth=1.2,
                           label=f"p{q} = {v:,.1f} {t['unit_min']}")  # fmt: skip
            _legend(ax)
        ax.set_xlabel(t["ax_interval_min"])
        ax.set_ylabel(t["ax_count"])
    return path


def coverage_per_day(per_day: Sequence[Mapping[str, Any]], t: Labels, path: Path) -> Path:
    """Area and border coverage [%] per local day."""
    with _figure(path, height=2.3) as fig:
        ax = fig.subplots()
        days = [str(d["day"]) for d in per_day]
        x = np.arange(len(days))
        for k, (key, name, colour) in enumerate((
            ("area_coverage_pct", t["area_coverage"], GREEN),
            ("linear_coverage_pct", t["linear_coverage"], RED),
        )):  # fmt: skip
            v = [float(d.get(key) or 0.0) for d in per_day]
            bars = ax.bar(x + (k - 0.5) * 0.38, v, width=0.36, color=colour, label=name)
            if len(days) <= 10:
                ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
        if days:
            _date_axis(ax, days)
        ax.set_ylabel(t["ax_coverage_pct"])
        ax.margins(y=0.18)
        _legend(ax)
    return path


def energy_per_day(per_day: Sequence[Mapping[str, Any]], t: Labels, path: Path) -> Path:
    """Battery and generator energy [kWh] stacked per day, fuel [L] on its own axis."""
    with _figure(path, height=2.3) as fig:
        ax = fig.subplots()
        days = [str(d["day"]) for d in per_day]
        x = np.arange(len(days))
        battery = np.array([float(d.get("battery_kwh") or 0.0) for d in per_day])
        generator = np.array([float(d.get("generator_kwh") or 0.0) for d in per_day])
        ax.bar(x, battery, width=0.6, color=BLUE, label=t["battery_kwh"])
        ax.bar(x, generator, width=0.6, bottom=battery, color=ORANGE, label=t["generator_kwh"])
        ax.set_ylabel(t["ax_kwh"])
        ax.margins(y=0.2)
        fuel_ax = ax.twinx()
        fuel = [float(d.get("fuel_l") or 0.0) for d in per_day]
        fuel_ax.plot(x, fuel, color="#222", marker="D", markersize=4, linewidth=0.8,
                     linestyle=":", label=t["fuel_l"])  # fmt: skip
        fuel_ax.set_ylabel(t["ax_fuel"])
        fuel_ax.set_ylim(bottom=0, top=max([*fuel, 0.0]) * 1.3 or 1.0)
        fuel_ax.grid(False)
        fuel_ax.spines["right"].set_visible(True)
        if days:
            _date_axis(ax, days)
        handles = ax.get_legend_handles_labels()
        extra = fuel_ax.get_legend_handles_labels()
        _legend(ax, (handles[0] + extra[0], handles[1] + extra[1]))
    return path


__all__ = [
    "control_group",
    "coverage_map",
    "coverage_per_day",
    "energy_per_day",
    "heatmap",
    "nightly_savings",
    "revisit_histogram",
    "vehicles_per_hour",
]


def pilot_map(points: Sequence[tuple[float, float, str, bool]], t: Labels, path: Path) -> Path:
    """Pilots on a longitude/latitude graticule (equirectangular), one marker each
    (``(lat, lon, label, alerting)``), red where an alert fires; the view spans the pilots
    with at least 40° around them, labels alternate above and below so neighbours stay
    legible. No coastlines: none ship with the project."""
    lats = [p[0] for p in points] or [0.0]
    lons = [p[1] for p in points] or [0.0]
    half = max(20.0, (max(lons) - min(lons)) / 2 + 8, (max(lats) - min(lats)) / 2 + 8)
    cx, cy = (max(lons) + min(lons)) / 2, (max(lats) + min(lats)) / 2
    with _figure(path, width=5.2, height=3.6) as fig:
        ax = fig.subplots()
        ax.set_xlim(max(-180.0, cx - half), min(180.0, cx + half))
        ax.set_ylim(max(-85.0, cy - half * 0.7), min(85.0, cy + half * 0.7))
        ax.set_aspect("equal")
        ax.axhline(0, color=GREY, linewidth=0.6)
        order = sorted(range(len(points)), key=lambda k: (points[k][1], points[k][0]))
        for n, k in enumerate(order):
            lat, lon, label, alerting = points[k]
            ax.scatter([lon], [lat], s=40, color=RED if alerting else GREEN, zorder=3,
                       edgecolors="white", linewidths=0.6)  # fmt: skip
            ax.annotate(label, (lon, lat), xytext=(5, 6 if n % 2 == 0 else -11),
                        textcoords="offset points", fontsize=7.5)  # fmt: skip
        ax.set_xlabel(t["ax_lon"])
        ax.set_ylabel(t["ax_lat"])
    return path
