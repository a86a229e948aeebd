"""Stage 3: person detection (ultralytics YOLO, person class); Sapiens2's rule rejects `no_person`."""

from dataclasses import dataclass, field
from typing import ClassVar

import pyarrow as pa

from common.config import bounded
from common.image_decode import DecodeConfig
from common.reasons import RejectReason
from common.schemas import PERSON_TYPE
from curation.models.registry import YoloConfig
from curation.stages.base import FilterMode, Stage, StageResources, StageResult
from curation.stages.person_rule import has_person, max_person_short_side
from curation.stages.pixels import decode_batch
from curation.stages.resources import AUTO


def model_resources() -> StageResources:
    """An image model's actor: CPU-bound on decode + preprocessing (~70 images/s each, docs/SCALING.md) while a GPU
    runs ~600 images/s of YOLO11m or CLIP L/14 in fp16, so a tenth of a GPU each lets several actors of every
    image-model stage share one GPU; the pool grows to what the GPUs allow."""
    return StageResources(num_cpus=1.0, num_gpus=0.1, batch_size=32, max_workers=AUTO)


@dataclass
class DetectStageConfig:
    mode: FilterMode = "reject"
    min_conf: float = bounded(0.5, ge=0, le=1)  # Sapiens2: a person box counts from confidence 0.5
    min_box_short_side: float = bounded(384.0, ge=0)  # Sapiens2: ... and a short side of 384 px
    resources: StageResources = field(default_factory=model_resources)


class DetectStage(Stage):
    name = "detect"
    needs_model = True
    fields: ClassVar[list[pa.Field]] = [
        pa.field("persons", pa.list_(PERSON_TYPE)),
        pa.field("max_person_short_side", pa.float32()),
    ]
    reasons: ClassVar[tuple[str, ...]] = (RejectReason.NO_PERSON,)

    def __init__(self, config: DetectStageConfig, model: YoloConfig, decode: DecodeConfig) -> None:
        super().__init__(config.resources)
        self.config, self.model_config, self.decode = config, model, decode
        self.detector = None

    def setup(self) -> None:
        from curation.models.yolo import PersonDetector  # imports ultralytics: only inside the worker

        self.detector = PersonDetector(self.model_config)

    def process(self, batch: pa.Table) -> StageResult:
        c = self.config
        persons, sides, fails = [], [], []
        for found in self.detector(decode_batch(batch, self.decode)):
            boxes, confs = found.boxes.tolist(), found.conf.tolist()
            persons.append([{"box": b, "conf": s} for b, s in zip(boxes, confs, strict=True)])
            sides.append(max_person_short_side(boxes, confs, c.min_conf))
            fails.append(not has_person(boxes, confs, min_conf=c.min_conf, min_short_side=c.min_box_short_side))
        columns = {"persons": persons, "max_person_short_side": sides}
        return StageResult(columns=columns, **self.verdicts(fails, RejectReason.NO_PERSON, c.mode))
