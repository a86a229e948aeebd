"""Stage 4: head pose of the largest person from YOLO pose keypoints. Stored for balancing and the report."""

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pyarrow as pa

from common.config import bounded
from common.image_decode import DecodeConfig
from common.schemas import HEAD_POSE_TYPE
from curation.models.registry import YoloConfig
from curation.stages.base import Stage, StageResources, StageResult
from curation.stages.detect import model_resources
from curation.stages.pixels import decode_batch
from curation.stages.yaw import UNKNOWN, yaw_class


@dataclass
class HeadPoseStageConfig:
    min_keypoint_conf: float = bounded(0.5, ge=0, le=1)  # a keypoint counts as seen from this visibility score
    resources: StageResources = field(default_factory=model_resources)


class HeadPoseStage(Stage):
    name = "head_pose"
    needs_model = True
    fields: ClassVar[list[pa.Field]] = [pa.field("head_pose", HEAD_POSE_TYPE)]

    def __init__(self, config: HeadPoseStageConfig, model: YoloConfig, decode: DecodeConfig) -> None:
        super().__init__(config.resources)
        self.config, self.model_config, self.decode = config, model, decode
        self.estimator = None

    def setup(self) -> None:
        from curation.models.yolo import PoseEstimator  # imports ultralytics: only inside the worker

        self.estimator = PoseEstimator(self.model_config)

    def process(self, batch: pa.Table) -> StageResult:
        poses = []
        for found in self.estimator(decode_batch(batch, self.decode)):
            if len(found.boxes) == 0:
                poses.append({"yaw_class": UNKNOWN, "face_keypoints_visible": 0})
                continue
            areas = (found.boxes[:, 2] - found.boxes[:, 0]) * (found.boxes[:, 3] - found.boxes[:, 1])
            largest = int(np.argmax(areas))
            yaw, seen = yaw_class(found.keypoints[largest].tolist(), self.config.min_keypoint_conf)
            poses.append({"yaw_class": yaw, "face_keypoints_visible": seen})
        return StageResult(columns={"head_pose": poses})
