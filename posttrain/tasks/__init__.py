"""The five post-training tasks by name."""

from posttrain.config import PosttrainConfig
from posttrain.tasks.base import Task
from posttrain.tasks.dense import AlbedoTask, NormalTask, PointmapTask
from posttrain.tasks.pose import PoseTask
from posttrain.tasks.segmentation import SegmentationTask

TASK_CLASSES: dict[str, type[Task]] = {
    task.name: task for task in (PoseTask, SegmentationTask, PointmapTask, NormalTask, AlbedoTask)
}


def build_task(cfg: PosttrainConfig) -> Task:
    return TASK_CLASSES[cfg.task](cfg)
