"""How often each part of the area of interest is seen again: revisit intervals on a grid.

Area coverage says *whether* ground was seen in a window; police patrols also care *how
often*. Following the idleness of multi-agent patrolling (Machado et al., 2002), the AOI
is cut into square cells (``cell_m`` on a side, metric, aligned on the AOI's bounding
box; a cell belongs to the AOI when its centre does). A cell is *seen* at a record's time
when its centre lies within W/2 of the drone (inside that record's footprint). A *visit*
is a run of sightings no more than ``visit_gap_s`` apart (the gap the track itself would
bridge); a *revisit interval* is the unseen time between the end of one visit and the
start of the next. A cell seen once has no interval; one never seen is reported as such.

Sightings are found per point, not by rasterising swath polygons: for each point only
the few cells whose centres can lie within W/2 are tested, in vectorised chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from analytics.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MAX_GRID_CELLS = 4_000_000
_CHUNK_PAIRS = 2_000_000


@dataclass(frozen=True, eq=False)
class CellGrid:
    """A metric grid over the AOI; ``index`` maps a raster cell to its AOI cell (−1: outside)."""

    x0: float
    y0: float
    cell_m: float
    nx: int
    ny: int
    index: IntArray
    centre_x: FloatArray
    centre_y: FloatArray

    @property
    def cells(self) -> int:
        return int(self.centre_x.shape[0])


def grid_over(aoi_m: BaseGeometry, cell_m: float) -> CellGrid:
    """The cells of side `cell_m` [m] whose centres lie in the metric AOI."""
    if not cell_m > 0:
        raise InputError(f"grid cell size must be positive, got {cell_m}")
    minx, miny, maxx, maxy = aoi_m.bounds
    nx = max(int(np.ceil((maxx - minx) / cell_m)), 1)
    ny = max(int(np.ceil((maxy - miny) / cell_m)), 1)
    if nx * ny > MAX_GRID_CELLS:
        raise InputError(f"a {cell_m} m grid over this AOI has {nx * ny} cells; use larger cells")
    cx = minx + (np.arange(nx) + 0.5) * cell_m
    cy = miny + (np.arange(ny) + 0.5) * cell_m
    gx, gy = np.meshgrid(cx, cy)
    inside = shapely.contains_xy(aoi_m, gx.ravel(), gy.ravel())
    index = np.full(nx * ny, -1, dtype=np.int64)
    index[inside] = np.arange(int(np.count_nonzero(inside)))
    return CellGrid(minx, miny, cell_m, nx, ny, index, gx.ravel()[inside], gy.ravel()[inside])


def sightings(
    grid: CellGrid, x: FloatArray, y: FloatArray, radius_m: FloatArray, ts: FloatArray
) -> tuple[IntArray, FloatArray]:
    """(cell, time) pairs: each AOI cell whose centre is within `radius_m` of a point."""
    if x.size == 0 or grid.cells == 0:
        return np.empty(0, dtype=np.int64), np.empty(0)
    g = grid.cell_m
    span = int(np.floor(2.0 * float(np.max(radius_m)) / g)) + 1
    off = np.arange(span)
    chunk = max(_CHUNK_PAIRS // (span * span), 1)
    cells_out: list[IntArray] = []
    times_out: list[FloatArray] = []
    for lo in range(0, x.size, chunk):
        px, py = x[lo : lo + chunk], y[lo : lo + chunk]
        r, t = radius_m[lo : lo + chunk], ts[lo : lo + chunk]
        ix0 = np.ceil((px - grid.x0) / g - 0.5 - r / g).astype(np.int64)
        iy0 = np.ceil((py - grid.y0) / g - 0.5 - r / g).astype(np.int64)
        ix = (ix0[:, None, None] + off[None, None, :]).repeat(span, axis=1)
        iy = (iy0[:, None, None] + off[None, :, None]).repeat(span, axis=2)
        dx = grid.x0 + (ix + 0.5) * g - px[:, None, None]
        dy = grid.y0 + (iy + 0.5) * g - py[:, None, None]
        ok = (dx * dx + dy * dy <= (r * r)[:, None, None]) & (ix >= 0) & (ix < grid.nx)
        ok &= (iy >= 0) & (iy < grid.ny)
        flat = iy[ok] * grid.nx + ix[ok]
        cell = grid.index[flat]
        inside = cell >= 0
        cells_out.append(cell[inside])
        times_out.append(np.broadcast_to(t[:, None, None], ok.shape)[ok][inside])
    return np.concatenate(cells_out), np.concatenate(times_out)


@dataclass(frozen=True, eq=False)
class RevisitStats:
    """Revisit intervals pooled over all cells, and per-cell visit counts."""

    cells: int
    intervals_s: FloatArray
    visits_per_cell: IntArray
    max_interval_per_cell_s: FloatArray

    @property
    def never_visited_cells(self) -> int:
        return int(np.count_nonzero(self.visits_per_cell == 0))

    @property
    def visited_cells(self) -> int:
        return self.cells - self.never_visited_cells

    @property
    def mean_s(self) -> float | None:
        return float(np.mean(self.intervals_s)) if self.intervals_s.size else None

    @property
    def p95_s(self) -> float | None:
        return float(np.percentile(self.intervals_s, 95)) if self.intervals_s.size else None

    @property
    def max_s(self) -> float | None:
        return float(np.max(self.intervals_s)) if self.intervals_s.size else None


def revisit_stats(cells: int, cell: IntArray, t: FloatArray, *, visit_gap_s: float) -> RevisitStats:
    """Group sightings into visits per cell and measure the unseen time between visits."""
    visits = np.zeros(cells, dtype=np.int64)
    worst = np.full(cells, np.nan)
    if cell.size == 0:
        return RevisitStats(cells, np.empty(0), visits, worst)
    order = np.lexsort((t, cell))
    c, tt = cell[order], t[order]
    new = np.ones(c.size, dtype=np.bool_)
    new[1:] = (c[1:] != c[:-1]) | (np.diff(tt) > visit_gap_s)
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, c.size - 1)
    vcell, vstart, vend = c[first], tt[first], tt[last]
    np.add.at(visits, vcell, 1)
    same = vcell[1:] == vcell[:-1]
    intervals = (vstart[1:] - vend[:-1])[same]
    np.fmax.at(worst, vcell[1:][same], intervals)
    return RevisitStats(cells, intervals, visits, worst)
