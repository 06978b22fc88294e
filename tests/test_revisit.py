"""Revisit intervals on the metric grid: cells, sightings and visits."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from analytics.errors import InputError
from analytics.revisit import grid_over, revisit_stats, sightings


def test_grid_keeps_cells_whose_centre_is_in_the_aoi() -> None:
    triangle = shapely.Polygon([(0, 0), (1000, 0), (0, 1000)])
    grid = grid_over(triangle, 250.0)
    assert (grid.nx, grid.ny) == (4, 4)
    # centres at 125, 375, 625, 875: inside when x + y < 1000
    assert grid.cells == 6
    assert np.all(grid.centre_x + grid.centre_y < 1000)


def test_grid_too_fine_is_an_input_error() -> None:
    with pytest.raises(InputError):
        grid_over(shapely.box(0, 0, 100_000, 100_000), 1.0)


def test_sightings_match_brute_force() -> None:
    rng = np.random.default_rng(7)
    aoi = shapely.Polygon([(0, 0), (3000, 0), (3000, 2000), (500, 2500)])
    grid = grid_over(aoi, 100.0)
    n = 400
    x, y = rng.uniform(-200, 3200, n), rng.uniform(-200, 2700, n)
    radius = rng.uniform(5, 260, n)
    ts = np.arange(n, dtype=float)
    cell, t = sightings(grid, x, y, radius, ts)
    got = set(zip(cell.tolist(), t.tolist(), strict=True))
    d2 = (grid.centre_x[None, :] - x[:, None]) ** 2 + (grid.centre_y[None, :] - y[:, None]) ** 2
    p, c = np.nonzero(d2 <= radius[:, None] ** 2)
    expected = set(zip(c.tolist(), ts[p].tolist(), strict=True))
    assert got == expected
    assert len(got) > n  # the case exercises multi-cell footprints


def test_visits_and_intervals() -> None:
    # cell 0: seen 0–2 s, 100–101 s, 300 s → 3 visits, unseen for 98 s and 199 s
    # cell 1: seen at 50 s and 55 s — within the 10 s visit gap, so a single visit
    # cell 2: never seen
    cell = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    t = np.array([2.0, 0.0, 1.0, 101.0, 100.0, 300.0, 55.0, 50.0])
    stats = revisit_stats(3, cell, t, visit_gap_s=10.0)
    assert stats.visits_per_cell.tolist() == [3, 1, 0]
    assert sorted(stats.intervals_s.tolist()) == [98.0, 199.0]
    assert stats.never_visited_cells == 1 and stats.visited_cells == 2
    assert stats.mean_s == pytest.approx(148.5)
    assert stats.max_s == 199.0
    assert stats.p95_s == pytest.approx(np.percentile([98.0, 199.0], 95))
    assert stats.max_interval_per_cell_s[0] == 199.0
    assert np.isnan(stats.max_interval_per_cell_s[1:]).all()


def test_no_sightings_means_no_intervals() -> None:
    stats = revisit_stats(4, np.empty(0, dtype=np.int64), np.empty(0), visit_gap_s=10.0)
    assert stats.never_visited_cells == 4
    assert stats.mean_s is None and stats.p95_s is None and stats.max_s is None
