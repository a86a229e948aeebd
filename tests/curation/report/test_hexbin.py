import numpy as np
import pytest

from curation.report.hexbin import HexCounts
from curation.report.plotting import new_figure


def cells(collection) -> dict[tuple[float, float], float]:
    """{cell centre (rounded): value} of a hexbin PolyCollection."""
    offsets = np.round(collection.get_offsets(), 6)
    return dict(zip(map(tuple, offsets.tolist()), collection.get_array().tolist(), strict=True))


@pytest.mark.parametrize(
    "x, y",
    [
        (np.random.default_rng(0).integers(300, 4000, 5000), np.random.default_rng(1).integers(300, 3000, 5000)),
        (np.random.default_rng(2).normal(800, 100, 3000), np.random.default_rng(3).normal(600, 300, 3000)),
        (np.full(50, 640), np.random.default_rng(4).integers(400, 500, 50)),  # one width: a widened extent
        (np.zeros(9), np.zeros(9)),
    ],
)
def test_streamed_counts_draw_what_hexbin_of_every_point_draws(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    ax = new_figure().add_subplot()
    expected = ax.hexbin(x, y, gridsize=30, mincnt=1)

    hexes = HexCounts((x.min(), x.max(), y.min(), y.max()), 30)
    for part in np.array_split(np.arange(x.size), 7):
        hexes.add(x[part], y[part])
    assert hexes.counts.sum() == x.size
    ax2 = new_figure().add_subplot()
    drawn = hexes.draw(ax2)
    assert cells(drawn) == cells(expected)
    expected_limits = ax.dataLim.get_points()
    np.testing.assert_allclose(ax2.dataLim.get_points(), expected_limits)
