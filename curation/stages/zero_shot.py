"""Stage 8: realism and text-overlay scores from CLIP prompt ensembles (or linear probes); `not_photo`,
`text_overlay`. The prompts are embedded once per actor; images are not touched again."""

from dataclasses import dataclass, field, replace
from typing import ClassVar

import pyarrow as pa

from common.config import bounded
from common.reasons import RejectReason
from curation.models.registry import ClipConfig, ZeroShotConfig
from curation.stages.base import FilterMode, Stage, StageResources, StageResult
from curation.stages.clip_embed import clip_column
from curation.stages.resources import head_resources, stage_device


@dataclass
class ZeroShotStageConfig:
    mode: FilterMode = "reject"
    # P(photo), from the ensemble softmax or a probe's sigmoid: keep what CLIP finds more photo than not
    min_realism: float = bounded(0.5, ge=0, le=1)
    max_text_overlay: float = bounded(0.5, ge=0, le=1)  # P(text / watermark / logo) above this rejects
    resources: StageResources = field(default_factory=head_resources)


class ZeroShotStage(Stage):
    name = "zero_shot"
    needs_model = True
    fields: ClassVar[list[pa.Field]] = [pa.field("realism", pa.float32()), pa.field("text_overlay", pa.float32())]
    reasons: ClassVar[tuple[str, ...]] = (RejectReason.NOT_PHOTO, RejectReason.TEXT_OVERLAY)

    def __init__(self, config: ZeroShotStageConfig, prompts: ZeroShotConfig, clip: ClipConfig) -> None:
        super().__init__(config.resources)
        self.config, self.prompts, self.clip = config, prompts, clip
        self.scorer = None

    def setup(self) -> None:
        from curation.models.clip import load_clip
        from curation.models.zero_shot import ZeroShotScorer

        probes_only = all(getattr(self.prompts, head).probe for head in ("realism", "text_overlay"))
        clip = replace(self.clip, device=stage_device(self.clip.device, self.resources))
        encode = None if probes_only else load_clip(clip).encode_texts  # probes need no text tower
        self.scorer = ZeroShotScorer.from_config(self.prompts, encode)

    def process(self, batch: pa.Table) -> StageResult:
        c = self.config
        scores = self.scorer.score(clip_column(batch))
        realism, text = scores["realism"].tolist(), scores["text_overlay"].tolist()
        # The first failing check names the row: a painting with a caption is `not_photo`.
        reasons = [
            RejectReason.NOT_PHOTO
            if r < c.min_realism
            else RejectReason.TEXT_OVERLAY
            if t > c.max_text_overlay
            else None
            for r, t in zip(realism, text, strict=True)
        ]
        return StageResult(columns={"realism": realism, "text_overlay": text}, **self.route(reasons, c.mode))
