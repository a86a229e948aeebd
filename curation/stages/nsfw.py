"""Stage 7: the LAION CLIP NSFW detector's P(nsfw) on the CLIP embedding; `nsfw` strictly above the threshold."""

from dataclasses import dataclass, field, replace
from typing import ClassVar

import pyarrow as pa

from common.config import bounded
from common.reasons import RejectReason
from curation.models.registry import NsfwConfig
from curation.stages.base import FilterMode, Stage, StageResources, StageResult
from curation.stages.clip_embed import clip_column
from curation.stages.resources import head_resources, stage_device


@dataclass
class NsfwStageConfig:
    mode: FilterMode = "reject"
    threshold: float = bounded(0.5, ge=0, le=1)  # P(nsfw); a score exactly at the threshold is kept
    resources: StageResources = field(default_factory=head_resources)


class NsfwStage(Stage):
    name = "nsfw"
    needs_model = True
    fields: ClassVar[list[pa.Field]] = [pa.field("nsfw", pa.float32())]
    reasons: ClassVar[tuple[str, ...]] = (RejectReason.NSFW,)

    def __init__(self, config: NsfwStageConfig, model: NsfwConfig) -> None:
        super().__init__(config.resources)
        self.config, self.model_config = config, model
        self.predictor = None

    def setup(self) -> None:
        from curation.models.nsfw import load_nsfw

        self.predictor = load_nsfw(
            replace(self.model_config, device=stage_device(self.model_config.device, self.resources))
        )

    def process(self, batch: pa.Table) -> StageResult:
        scores = self.predictor.score(clip_column(batch)).tolist()
        fails = [s > self.config.threshold for s in scores]
        return StageResult(columns={"nsfw": scores}, **self.verdicts(fails, RejectReason.NSFW, self.config.mode))
