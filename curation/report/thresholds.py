"""The thresholds the report draws: from the run's config.yaml when it sets them, else the project defaults."""

from dataclasses import dataclass
from typing import Literal

import numpy as np
from omegaconf import DictConfig, OmegaConf

from common.image_decode import DecodeConfig
from curation.report.column_stream import ColumnStream
from curation.stages.aesthetic import AestheticStageConfig
from curation.stages.detect import DetectStageConfig
from curation.stages.nsfw import NsfwStageConfig
from curation.stages.zero_shot import ZeroShotStageConfig


@dataclass(frozen=True)
class Threshold:
    config_key: str  # dotted key in the run config
    default: float  # the stage's own default, used when the run config is absent or leaves the key out
    rejects: Literal["below", "above"]  # which side of the line a stage rejects (the line itself is kept)


# Keyed by the column (or derived value) each one applies to.
THRESHOLDS = {
    "aesthetic": Threshold("stages.aesthetic.threshold", AestheticStageConfig.threshold, "below"),
    "nsfw": Threshold("stages.nsfw.threshold", NsfwStageConfig.threshold, "above"),
    "realism": Threshold("stages.zero_shot.min_realism", ZeroShotStageConfig.min_realism, "below"),
    "text_overlay": Threshold("stages.zero_shot.max_text_overlay", ZeroShotStageConfig.max_text_overlay, "above"),
    "max_person_short_side": Threshold(
        "stages.detect.min_box_short_side", DetectStageConfig.min_box_short_side, "below"
    ),
    "short_side": Threshold("decode.min_short_side", DecodeConfig.min_short_side, "below"),
}


def threshold_line(name: str, run_config: DictConfig | None) -> dict:
    """{threshold, threshold_source, rejects}: the line a stage draws and which side of it the stage rejects."""
    spec = THRESHOLDS[name]
    value = OmegaConf.select(run_config, spec.config_key, default=None) if run_config is not None else None
    source = "config" if value is not None else "default"
    return {
        "threshold": float(spec.default if value is None else value),
        "threshold_source": source,
        "rejects": spec.rejects,
    }


def threshold_stream(name: str, run_config: DictConfig | None, dtype: np.dtype) -> ColumnStream:
    """A column summary that also counts the values beyond the line (`on_rejecting_side`)."""
    line = threshold_line(name, run_config)
    return ColumnStream(dtype, threshold=line["threshold"], rejects=line["rejects"])


def threshold_stats(name: str, run_config: DictConfig | None, stream: ColumnStream) -> dict:
    """The summary of a streamed column, then its line and how many values fall beyond it."""
    return stream.summary() | threshold_line(name, run_config) | {"on_rejecting_side": stream.beyond}
