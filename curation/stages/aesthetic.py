"""Stage 6: LAION aesthetic score on the CLIP embedding; `low_aesthetic` under the threshold."""

from dataclasses import dataclass, field, replace
from typing import ClassVar

import pyarrow as pa

from common.config import bounded
from common.reasons import RejectReason
from curation.models.registry import AestheticConfig
from curation.stages.base import FilterMode, Stage, StageResources, StageResult
from curation.stages.clip_embed import clip_column
from curation.stages.resources import head_resources, stage_device


@dataclass
class AestheticStageConfig:
    mode: FilterMode = "reject"
    # LAION scale 1-10 (the range allows 0-10); LAION-Aesthetics and SD v1 used 5.0, we keep a little more
    threshold: float = bounded(4.5, ge=0, le=10)
    resources: StageResources = field(default_factory=head_resources)


class AestheticStage(Stage):
    name = "aesthetic"
    needs_model = True
    fields: ClassVar[list[pa.Field]] = [pa.field("aesthetic", pa.float32())]
    reasons: ClassVar[tuple[str, ...]] = (RejectReason.LOW_AESTHETIC,)

    def __init__(self, config: AestheticStageConfig, model: AestheticConfig) -> None:
        super().__init__(config.resources)
        self.config, self.model_config = config, model
        self.predictor = None

    def setup(self) -> None:
        from curation.models.aesthetic import load_aesthetic

        self.predictor = load_aesthetic(
            replace(self.model_config, device=stage_device(self.model_config.device, self.resources))
        )

    def process(self, batch: pa.Table) -> StageResult:
        scores = self.predictor.score(clip_column(batch)).tolist()
        fails = [s < self.config.threshold for s in scores]
        return StageResult(
            columns={"aesthetic": scores}, **self.verdicts(fails, RejectReason.LOW_AESTHETIC, self.config.mode)
        )
