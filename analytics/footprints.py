"""Swath geometry: a patrol track cut into pieces buffered by the camera footprint.

Why: coverage unions the ground each camera saw; buffering every 1 Hz segment apart is
exact but far too slow, so `analytics.tracks` decides which points make a run and this
module turns runs into few, cheap-to-buffer pieces (and plain lines for maps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

if TYPE_CHECKING:
    from analytics.tracks import Track

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


# GEOS buffers a long line that crosses itself many times (an orbit, a lawnmower) in
# super-linear time; pieces this short keep buffering linear and the union cheap.
MAX_PIECE_SEGMENTS = 128


@dataclass(frozen=True, eq=False)
class SwathPieces:
    """Metric LineStrings/Points to buffer by ``radius_m`` [m], with their day index."""

    geoms: npt.NDArray[np.object_]
    radius_m: FloatArray
    day: IntArray

    @staticmethod
    def concat(parts: Sequence[SwathPieces]) -> SwathPieces:
        return SwathPieces(
            np.concatenate([p.geoms for p in parts] or [np.empty(0, dtype=object)]),
            np.concatenate([p.radius_m for p in parts] or [np.empty(0)]),
            np.concatenate([p.day for p in parts] or [np.empty(0, dtype=np.int64)]),
        )

    def footprint(self, day: int, quad_segs: int) -> BaseGeometry:
        """Union of the buffered pieces of one day, round caps and joins."""
        sel = self.day == day
        buffered = shapely.buffer(self.geoms[sel], self.radius_m[sel], quad_segs=quad_segs)
        union: BaseGeometry = shapely.union_all(buffered)
        return union


def swath_pieces(
    track: Track, day: IntArray, *, simplify_m: float, width_tolerance: float
) -> SwathPieces:
    """Cut a track into pieces that are each buffered once by a single radius.

    Buffering every segment apart and unioning is exact but far too slow (a week is
    ~400k segments), so runs are cut into *pieces*: at a change of day (of a segment's
    first point), where segment widths (mean of the endpoints' W) would spread by more
    than a factor ``1 + width_tolerance``, and every ``MAX_PIECE_SEGMENTS``. A piece is
    simplified by ``simplify_m`` and gets half its length-weighted mean segment width as
    radius — so the swept area of a straight piece is exact and widths only shift along
    the track within a piece. A lone point is kept as a point (a disk of its own W).
    """
    joined = track.joined()
    seg = np.flatnonzero(joined[1:])  # segment k runs from point seg[k] to seg[k] + 1
    alone = ~joined & ~track.joined_next()
    points = SwathPieces(
        np.asarray(shapely.points(track.x[alone], track.y[alone]), dtype=object),
        track.width_m[alone] / 2.0,
        day[alone],
    )
    if seg.size == 0:
        return points
    width = (track.width_m[seg] + track.width_m[seg + 1]) / 2.0
    length = np.hypot(track.x[seg + 1] - track.x[seg], track.y[seg + 1] - track.y[seg])
    cut = np.ones(seg.size, dtype=np.bool_)
    cut[1:] = (np.diff(seg) != 1) | (day[seg[1:]] != day[seg[:-1]])
    piece = _cap_length(_width_pieces(width, cut, width_tolerance), MAX_PIECE_SEGMENTS)
    first_seg = np.flatnonzero(np.append(True, piece[1:] != piece[:-1]))
    n_seg = np.diff(np.append(first_seg, seg.size))
    p0 = seg[first_seg]
    n_pts = n_seg + 1
    coord_piece = np.repeat(np.arange(p0.size), n_pts)
    offset = np.arange(coord_piece.size) - np.repeat(np.cumsum(n_pts) - n_pts, n_pts)
    pt = p0[coord_piece] + offset
    lines = shapely.linestrings(track.x[pt], track.y[pt], indices=coord_piece)
    if simplify_m > 0:
        lines = shapely.simplify(lines, simplify_m, preserve_topology=False)
    piece_len = np.bincount(piece, weights=length)
    weighted = np.bincount(piece, weights=width * length)
    plain = np.bincount(piece, weights=width) / n_seg
    mean_w = np.where(piece_len > 0, weighted / np.where(piece_len > 0, piece_len, 1.0), plain)
    lines_part = SwathPieces(np.asarray(lines, dtype=object), mean_w / 2.0, day[p0])
    return SwathPieces.concat([lines_part, points])


def _cap_length(piece: IntArray, max_segments: int) -> IntArray:
    """Renumber pieces so that none has more than `max_segments` segments."""
    first = np.flatnonzero(np.append(True, piece[1:] != piece[:-1]))
    rank = np.arange(piece.size) - np.repeat(first, np.diff(np.append(first, piece.size)))
    new = (rank % max_segments) == 0
    return np.cumsum(new) - 1


def _width_pieces(width: FloatArray, cut: BoolArray, tolerance: float) -> IntArray:
    """Piece number per segment: a new piece at `cut`, or where max/min > 1 + tolerance.

    Blocks between cuts whose widths already fit are settled at once; only the others
    are walked segment by segment.
    """
    starts = np.flatnonzero(cut)
    fits = np.maximum.reduceat(width, starts) <= (1 + tolerance) * np.minimum.reduceat(
        width, starts
    )
    new = cut.copy()
    ends = np.append(starts[1:], width.size)
    for lo, hi in zip(starts[~fits].tolist(), ends[~fits].tolist(), strict=True):
        low = high = width[lo]
        for k, w in enumerate(width[lo + 1 : hi].tolist(), start=lo + 1):
            low, high = min(low, w), max(high, w)
            if high > (1 + tolerance) * low:
                new[k] = True
                low = high = w
    return np.cumsum(new) - 1


def track_lines(track: Track, simplify_m: float) -> npt.NDArray[np.object_]:
    """The runs of a track as metric LineStrings (lone points left out)."""
    in_line = track.joined() | track.joined_next()
    if not in_line.any():
        return np.empty(0, dtype=object)
    _, line_no = np.unique(track.run[in_line], return_inverse=True)
    lines = shapely.linestrings(track.x[in_line], track.y[in_line], indices=line_no)
    if simplify_m > 0:
        lines = shapely.simplify(lines, simplify_m, preserve_topology=False)
    return np.asarray(lines, dtype=object)
