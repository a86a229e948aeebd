"""Sections 2 and 3a: distributions of the model scores and of the largest person box, against their thresholds.
Over every candidate whose value is not null (a stage skipped on an already-rejected row leaves it null)."""

from pathlib import Path

from omegaconf import DictConfig

from curation.report.candidate_scan import PERSON_COLUMN, SCORE_COLUMNS, CandidateScan
from curation.report.histograms import draw_threshold_histogram
from curation.report.thresholds import threshold_stats

SCORES = {  # label per column of candidate_scan.SCORE_COLUMNS
    "aesthetic": "LAION aesthetic score",
    "nsfw": "NSFW: P(nsfw), LAION CLIP detector",
    "realism": "realism: P(photo)",
    "text_overlay": "text overlay: P(text / watermark / logo)",
}


def score_section(scan: CandidateScan, run_config: DictConfig | None, out_dir: Path) -> tuple[dict, dict[str, Path]]:
    """{score: summary + threshold} and one histogram PNG per score the candidates have (runs scored before the
    nsfw stage existed have no `nsfw` column)."""
    stats, plots = {}, {}
    for column in SCORE_COLUMNS:
        if column not in scan.columns:
            continue
        label = SCORES[column]
        stream = scan.columns[column]
        stats[column] = threshold_stats(column, run_config, stream)
        name = f"score_{column}"
        plots[name] = draw_threshold_histogram(stream, stats[column], label, column, out_dir / f"{name}.png")
    return stats, plots


def person_section(scan: CandidateScan, run_config: DictConfig | None, out_dir: Path) -> tuple[dict, dict[str, Path]]:
    """Largest confident person box per image (0 = none found); the detect stage keeps it from the threshold up."""
    stream = scan.columns[PERSON_COLUMN]
    stats = threshold_stats(PERSON_COLUMN, run_config, stream)
    stats["no_person_box"] = stream.zeros
    path = draw_threshold_histogram(
        stream, stats, "Largest person box, short side", "px", out_dir / "person_short_side.png"
    )
    return stats, {"person_short_side": path}
