"""Sections 2 and 3a: distributions of the model scores and of the largest person box, against their thresholds.
Over every candidate whose value is not null (a stage skipped on an already-rejected row leaves it null)."""

from pathlib import Path

from omegaconf import DictConfig

from curation.report.histograms import draw_threshold_histogram
from curation.report.inputs import RunInputs
from curation.report.numbers import non_null, summarize
from curation.report.thresholds import threshold_stats

SCORES = {
    "aesthetic": "LAION aesthetic score",
    "nsfw": "NSFW: P(nsfw), LAION CLIP detector",
    "realism": "realism: P(photo)",
    "text_overlay": "text overlay: P(text / watermark / logo)",
}
PERSON_COLUMN = "max_person_short_side"


def _column_stats(inputs: RunInputs, column: str, run_config: DictConfig | None) -> tuple[dict, object]:
    values = non_null(inputs.candidates, column)
    return summarize(values) | threshold_stats(column, run_config, values), values


def score_section(inputs: RunInputs, out_dir: Path) -> tuple[dict, dict[str, Path]]:
    """{score: summary + threshold} and one histogram PNG per score the candidates have (runs scored before the
    nsfw stage existed have no `nsfw` column)."""
    stats, plots = {}, {}
    for column, label in SCORES.items():
        if column not in inputs.candidates.column_names:
            continue
        stats[column], values = _column_stats(inputs, column, inputs.run_config)
        name = f"score_{column}"
        plots[name] = draw_threshold_histogram(values, stats[column], label, column, out_dir / f"{name}.png")
    return stats, plots


def person_section(inputs: RunInputs, out_dir: Path) -> tuple[dict, dict[str, Path]]:
    """Largest confident person box per image (0 = none found); the detect stage keeps it from the threshold up."""
    stats, values = _column_stats(inputs, PERSON_COLUMN, inputs.run_config)
    stats["no_person_box"] = int((values == 0).sum())
    path = draw_threshold_histogram(
        values, stats, "Largest person box, short side", "px", out_dir / "person_short_side.png"
    )
    return stats, {"person_short_side": path}
