"""Figure helpers: the object-oriented matplotlib API on an Agg canvas (no pyplot, no global backend switch)."""

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

FIGSIZE = (8.0, 4.5)  # inches
DPI = 100
KEPT_COLOR = "#4c72b0"
REJECT_COLOR = "#c44e52"
AUDIT_COLOR = "#dd8452"
BEFORE_COLOR = "#8172b3"
AFTER_COLOR = "#55a868"


def new_figure(figsize: tuple[float, float] = FIGSIZE) -> Figure:
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: Path) -> Path:
    """PNG without a version stamp, so the same numbers give the same bytes; the figure is cleared after."""
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    fig.clear()
    return path


def save_image(image: Image.Image, path: Path) -> Path:
    image.save(path, format="PNG")
    return path


def no_data(ax: Axes, message: str = "no data") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])
