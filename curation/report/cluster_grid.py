"""Section 7: what the largest top-level clusters look like, a seeded sample of thumbnails from each."""

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from curation.readers.fetch import Location
from curation.report.config import ReportConfig
from curation.report.plotting import save_image
from curation.report.thumbnails import grid_image, tile_for

GRID_COLUMNS = 8


def top_level_ids(cluster_ids: pa.Array) -> pa.Array:
    """The last element of each row's cluster_ids (leaf level first, top level last); null for a null or empty list."""
    if pa.types.is_fixed_size_list(cluster_ids.type):
        return pc.list_element(cluster_ids, cluster_ids.type.list_size - 1)
    if len(cluster_ids.values) == 0:
        return pa.nulls(len(cluster_ids), cluster_ids.type.value_type)
    offsets = cluster_ids.offsets.to_numpy()
    has = (offsets[1:] > offsets[:-1]) & cluster_ids.is_valid().to_numpy(zero_copy_only=False)
    last = cluster_ids.values.take(pa.array(np.where(has, offsets[1:] - 1, 0)))
    return pc.if_else(pa.array(has), last, pa.scalar(None, last.type))


def rank_clusters(selected: Counter, examples: dict[int, pa.Table], config: ReportConfig) -> list[dict]:
    """[{rank, cluster, selected, locations}] for the `top_clusters` largest top-level clusters by selected rows
    (ties: lower id first); locations are the cluster's seeded examples (row_sample), in key order."""
    ranked = sorted(selected.items(), key=lambda vc: (-vc[1], vc[0]))
    picks = []
    for rank, (cluster, count) in enumerate(ranked[: config.top_clusters], start=1):
        rows = examples.get(cluster)
        locations = (
            [] if rows is None else list(zip(rows["source"].to_pylist(), rows["member"].to_pylist(), strict=True))
        )
        picks.append({"rank": rank, "cluster": cluster, "selected": count, "locations": locations})
    return picks


def cluster_grid_stats(picks: list[dict]) -> list[dict]:
    return [{k: p[k] for k in ("rank", "cluster", "selected")} | {"shown": len(p["locations"])} for p in picks]


def draw_cluster_grids(
    picks: list[dict], tiles: dict[Location, Image.Image], size: int, out_dir: Path
) -> dict[str, Path]:
    """One PNG per cluster, named by rank: top_cluster_01.png is the largest."""
    plots = {}
    for p in picks:
        images = [tile_for(tiles, loc, size) for loc in p["locations"]]
        title = f"#{p['rank']}: top-level cluster {p['cluster']}, {p['selected']:,} selected rows"
        name = f"top_cluster_{p['rank']:02d}"
        plots[name] = save_image(grid_image(images, GRID_COLUMNS, size, title), out_dir / f"{name}.png")
    return plots
