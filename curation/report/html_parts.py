"""HTML building blocks. Every number goes through `stat`, which tags it with its dotted path in stats.json
(`data-stat`), so a reader or a test can trace each shown number back to the file."""

import base64
import html
from collections.abc import Iterable, Sequence
from typing import Any

from curation.report.numbers import lookup

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td[data-stat], span[data-stat] { font-variant-numeric: tabular-nums; }
.not-run { color: #888; font-style: italic; } figure { margin: 1em 0; } figcaption { color: #666; font-size: 0.85em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
"""


PHASE_OUTPUTS = {
    "score": "stats.json and candidates/part-*.parquet (humans1b curate score)",
    "select": "select_stats.json, selection.parquet and select/rejected.parquet",
    "write": "manifest.json and shards/",
}
CAPTIONS = {
    "funnel": "Rows surviving each step, all phases in order.",
    "rejections": "Rows rejected per step and reason; hatched: what audit-mode filters would reject.",
    "person_short_side": "Short side of the largest confident person box (0: none).",
    "resolution": "Image width x height and short side, with the decode minimum.",
    "head_pose": "Yaw classes of kept candidates and of selected rows.",
    "duplicates": "Rows the select phase removed as duplicates, per method.",
    "cluster_sizes": "Cluster sizes per level, largest first (log scale), before and after balanced sampling.",
    "score_": "Scores of the candidates that have one; dashed: the threshold, with the rows beyond it.",
    "dup_pairs_": "Removed image (left) next to the kept image it duplicates; grey: bytes no longer readable.",
    "top_cluster_": "A seeded sample of the cluster's selected rows; grey: bytes no longer readable.",
}


def _caption(name: str) -> str:
    """The caption of a plot, or of its family (score_*, dup_pairs_*, top_cluster_*)."""
    family = next((prefix for prefix in CAPTIONS if prefix.endswith("_") and name.startswith(prefix)), name)
    return CAPTIONS.get(family, "")


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def format_number(value: int | float) -> str:
    return f"{value:,}" if isinstance(value, int) else repr(value)


def stat(stats: dict, path: str, tag: str = "span") -> str:
    """The number at `path`, tagged with it; None or a missing value shows as n/a, untagged."""
    try:
        value = lookup(stats, path)
    except (KeyError, IndexError):
        value = None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"<{tag}>n/a</{tag}>" if value is None else f"<{tag}>{esc(value)}</{tag}>"
    return f'<{tag} data-stat="{esc(path)}">{format_number(value)}</{tag}>'


def cell(stats: dict, path: str) -> str:
    return stat(stats, path, "td")


def text_cell(text: Any) -> str:
    return f"<td>{esc(text)}</td>"


def counts_cell(stats: dict, path: str, counts: dict) -> str:
    """A dict of {reason: n} as one `reason: n` line each."""
    lines = [f"{esc(k)}: {stat(stats, f'{path}.{k}')}" for k in counts]
    return f"<td>{'<br>'.join(lines) or '&ndash;'}</td>"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(png: bytes, name: str, caption: str = "") -> str:
    """The PNG inline as a data URI: the page needs no other file."""
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{esc(caption or name)}</figcaption>"
    return f'<figure><img alt="{esc(name)}" src="data:image/png;base64,{data}">{cap}</figure>'


def stat_value(stats: dict, path: str, value: Any) -> str:
    """A number, or a list of numbers comma-separated, each tagged."""
    if isinstance(value, list):
        return ", ".join(stat(stats, f"{path}.{i}") for i in range(len(value)))
    return stat(stats, path)


def not_run(message: str) -> str:
    return f'<p class="not-run">{esc(message)}</p>'


def missing(section: str, phase: str) -> str:
    return not_run(f"{section}: not run yet; the {phase} phase writes {PHASE_OUTPUTS[phase]}.")


def figures(stats: dict, images: dict[str, bytes], names: Iterable[str]) -> list[str]:
    """The named plots that were drawn, each with its file name and what it shows."""
    return [figure(images[n], stats["plots"][n], f"{stats['plots'][n]}: {_caption(n)}") for n in names if n in images]


def page(title: str, body: Iterable[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
