"""Page sections drawn from the select phase: duplicates, cluster sizes and the largest clusters' thumbnails."""

from curation.report.html_parts import cell, figures, missing, not_run, stat, stat_value, table, text_cell

CLUSTER_KEYS = ["level", "count", "min", "median", "max", "entropy", "gini"]
TOP_KEYS = ["rank", "cluster", "selected", "shown"]


def duplicates_section(stats: dict, images: dict[str, bytes]) -> list[str]:
    out = ["<h2>5. Duplicates</h2>"]
    if stats["duplicates"] is None:
        return [*out, missing("Duplicates", "select")]
    if not stats["duplicates"]:
        out.append(not_run("No dedup step has run yet."))
    else:
        rows = [[text_cell(m), cell(stats, f"duplicates.{m}")] for m in stats["duplicates"]]
        out.append(table(["method", "rows removed"], rows))
    pairs = [f"dup_pairs_{m}" for m in stats["duplicate_examples"]]
    return out + figures(stats, images, ["duplicates", *pairs])


def cluster_sizes_section(stats: dict, images: dict[str, bytes]) -> list[str]:
    out = ["<h2>6. Cluster sizes</h2>"]
    c = stats["clusters"]
    if c is None:
        return [*out, missing("Cluster sizes", "select")]
    line = f"Levels: {stat(stats, 'clusters.levels')}"
    if "clusters_per_level" in c:
        per_level = stat_value(stats, "clusters.clusters_per_level", c["clusters_per_level"])
        line += f"; clusters per level, leaf first: {per_level}"
    out.append(f"<p>{line}.</p>")
    rows = [
        [text_cell(phase)] + [cell(stats, f"clusters.{phase}.{i}.{k}") for k in CLUSTER_KEYS]
        for phase in ("before", "after")
        for i in range(len(c[phase]))
    ]
    out.append(table(["sizes", *CLUSTER_KEYS], rows))
    return out + figures(stats, images, ["cluster_sizes"])


def top_clusters_section(stats: dict, images: dict[str, bytes]) -> list[str]:
    out = ["<h2>7. Largest top-level clusters</h2>"]
    top = stats["top_clusters"]
    if top is None:
        return [*out, missing("Cluster thumbnails", "select")]
    if not top:
        return [*out, not_run("No selected rows to show.")]
    out.append(table(TOP_KEYS, [[cell(stats, f"top_clusters.{i}.{k}") for k in TOP_KEYS] for i in range(len(top))]))
    return out + figures(stats, images, [f"top_cluster_{t['rank']:02d}" for t in top])
