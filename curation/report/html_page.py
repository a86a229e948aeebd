"""The report page, rendered from the stats dict alone (plus the PNG bytes), so page and stats.json agree."""

from curation.report.html_parts import (
    PHASE_OUTPUTS,
    cell,
    counts_cell,
    esc,
    figures,
    missing,
    page,
    stat_value,
    table,
    text_cell,
)
from curation.report.html_score_sections import head_pose_section, scores_section, sizes_section
from curation.report.html_select_sections import cluster_sizes_section, duplicates_section, top_clusters_section

TITLE = "Humans-1B curation report"
FUNNEL_HEADERS = ["step", "phase", "in", "kept", "rejected", "would reject (audit mode)", "details"]
WRITTEN_KEYS = ["shards", "samples", "failed"]


def funnel_section(stats: dict, images: dict[str, bytes]) -> list[str]:
    out = ["<h2>1. Funnel</h2>"]
    rows = stats["funnel"]
    out += [missing(f"{p} steps", p) for p in PHASE_OUTPUTS if not any(r["phase"] == p for r in rows)]
    if not rows:
        return out
    out += figures(stats, images, ["funnel", "rejections"])
    body = []
    for i, r in enumerate(rows):
        p = f"funnel.{i}"
        details = [f"{esc(k)}: {stat_value(stats, f'{p}.details.{k}', v)}" for k, v in r["details"].items()]
        body.append(
            [
                text_cell(r["step"]),
                text_cell(r["phase"]),
                cell(stats, f"{p}.in"),
                cell(stats, f"{p}.kept"),
                counts_cell(stats, f"{p}.rejected", r["rejected"]),
                counts_cell(stats, f"{p}.would_reject", r["would_reject"]),
                f"<td>{'<br>'.join(details) or '&ndash;'}</td>",
            ]
        )
    return [*out, table(FUNNEL_HEADERS, body)]


def written_section(stats: dict, images: dict[str, bytes]) -> list[str]:
    out = ["<h2>8. Written shards</h2>"]
    if stats["written"] is None:
        return [*out, missing("Shards", "write")]
    return [*out, table(WRITTEN_KEYS, [[cell(stats, f"written.{k}") for k in WRITTEN_KEYS]])]


SECTIONS = [
    funnel_section,
    scores_section,
    sizes_section,
    head_pose_section,
    duplicates_section,
    cluster_sizes_section,
    top_clusters_section,
    written_section,
]


def render_html(stats: dict, images: dict[str, bytes]) -> str:
    ran = ", ".join(stats["phases"]) or "none"
    header = f"<h1>{TITLE}</h1><p>Run: <code>{esc(stats['run_dir'])}</code>. Phases run: {esc(ran)}.</p>"
    return page(TITLE, [header, *(part for section in SECTIONS for part in section(stats, images))])
