"""Section 7: what the largest top-level clusters look like, a seeded sample of thumbnails from each."""

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


def _top_level_ids(cluster_ids: pa.ChunkedArray) -> pa.ChunkedArray:
    """The last element of each row's cluster_ids (leaf level first, top level last)."""
    if pa.types.is_fixed_size_list(cluster_ids.type):
        return pc.list_element(cluster_ids, cluster_ids.type.list_size - 1)
    return pa.chunked_array([pa.array([ids[-1] if ids else None for ids in cluster_ids.to_pylist()], pa.int32())])


def pick_top_clusters(selection: pa.Table | None, config: ReportConfig) -> list[dict]:
    """[{rank, cluster, selected, locations}] for the `top_clusters` largest top-level clusters by selected rows
    (ties: lower id first); locations are a seeded choice of up to `thumbs_per_cluster` rows, in key order."""
    if selection is None or selection.num_rows == 0 or config.top_clusters == 0:
        return []
    table = selection.append_column("top", _top_level_ids(selection["cluster_ids"])).sort_by("key")
    counts = pc.value_counts(pc.drop_null(table["top"]))
    ranked = sorted(
        zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True),
        key=lambda vc: (-vc[1], vc[0]),
    )
    picks = []
    for rank, (cluster, selected) in enumerate(ranked[: config.top_clusters], start=1):
        rows = table.filter(pc.equal(table["top"], cluster))
        n = min(config.thumbs_per_cluster, rows.num_rows)
        chosen = np.sort(
            np.random.default_rng([config.seed, cluster % 2**32]).choice(rows.num_rows, size=n, replace=False)
        )
        sources, members = rows["source"].to_pylist(), rows["member"].to_pylist()
        locations = [(sources[i], members[i]) for i in chosen.tolist()]
        picks.append({"rank": rank, "cluster": cluster, "selected": selected, "locations": locations})
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
