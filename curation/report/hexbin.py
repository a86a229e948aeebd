"""Hexagon counts of (x, y) points accumulated batch by batch, on the grid matplotlib's `Axes.hexbin` lays over the
data's extent, so drawing the counts at the cell centres gives the figure hexbin of every point would give."""

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection


def widened(low: float, high: float, expander: float = 0.1) -> tuple[float, float]:
    """A one-valued range widened as hexbin widens it (by 10 % of the value each side, or +-0.1 around zero)."""
    low, high = float(low), float(high)
    if high - low > max(abs(low), abs(high)) * 1e-15:
        return low, high
    if low == 0 and high == 0:
        return -expander, expander
    return low - expander * abs(low), high + expander * abs(high)


class HexCounts:
    """Points per cell of a `gridsize`-wide hexagon grid over [x_min, x_max] x [y_min, y_max] (known up front)."""

    def __init__(self, extent: tuple[float, float, float, float], gridsize: int) -> None:
        x_min, x_max = widened(extent[0], extent[1])
        y_min, y_max = widened(extent[2], extent[3])
        self.extent = (x_min, x_max, y_min, y_max)
        self.gridsize = gridsize
        self.nx, self.ny = gridsize, int(gridsize / np.sqrt(3))
        pad = 1.0e-9 * (x_max - x_min)  # hexbin pads x against round-off
        self.x0, self.y0 = x_min - pad, y_min
        self.sx, self.sy = (x_max + pad - self.x0) / self.nx, (y_max - y_min) / self.ny
        self.counts = np.zeros((self.nx + 1) * (self.ny + 1) + self.nx * self.ny, dtype=np.int64)

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        """Each point goes to the nearer centre of two interleaved lattices, as hexbin assigns it."""
        ix = (np.asarray(x, float) - self.x0) / self.sx
        iy = (np.asarray(y, float) - self.y0) / self.sy
        ix1, iy1 = np.round(ix).astype(int), np.round(iy).astype(int)
        ix2, iy2 = np.floor(ix).astype(int), np.floor(iy).astype(int)
        nx1, ny1, n1 = self.nx + 1, self.ny + 1, (self.nx + 1) * (self.ny + 1)
        first = (ix - ix1) ** 2 + 3.0 * (iy - iy1) ** 2 < (ix - ix2 - 0.5) ** 2 + 3.0 * (iy - iy2 - 0.5) ** 2
        in1 = first & (ix1 >= 0) & (ix1 < nx1) & (iy1 >= 0) & (iy1 < ny1)
        in2 = ~first & (ix2 >= 0) & (ix2 < self.nx) & (iy2 >= 0) & (iy2 < self.ny)
        cells = np.concatenate([(ix1 * ny1 + iy1)[in1], n1 + (ix2 * self.ny + iy2)[in2]])
        self.counts += np.bincount(cells, minlength=self.counts.size)

    def centres(self) -> np.ndarray:
        """[cells, 2] x, y of every cell centre, first lattice then second, in the order of `counts`."""
        nx1, ny1 = self.nx + 1, self.ny + 1
        first = np.stack([np.repeat(np.arange(nx1), ny1), np.tile(np.arange(ny1), nx1)], axis=1).astype(float)
        second = np.stack([np.repeat(np.arange(self.nx), self.ny), np.tile(np.arange(self.ny), self.nx)], axis=1)
        xy = np.concatenate([first, second + 0.5])
        return xy * [self.sx, self.sy] + [self.x0, self.y0]

    def draw(self, ax: Axes, **kwargs) -> PolyCollection:
        """hexbin of the occupied cells' centres, each weighted by its count, over the same extent."""
        occupied = self.counts > 0
        xy = self.centres()[occupied]
        return ax.hexbin(
            xy[:, 0],
            xy[:, 1],
            C=self.counts[occupied],
            reduce_C_function=np.sum,
            gridsize=self.gridsize,
            extent=self.extent,
            mincnt=1,
            **kwargs,
        )
