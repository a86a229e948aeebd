"""Evaluation metrics for the post-training tasks: accumulators with update(...) over batches and compute() -> dict."""

from posttrain.metrics.albedo import AlbedoMetric
from posttrain.metrics.keypoint_ap import KeypointAP
from posttrain.metrics.normal import NormalMetric
from posttrain.metrics.pointmap import PointmapMetric
from posttrain.metrics.segmentation import SegmentationMetric

__all__ = ["AlbedoMetric", "KeypointAP", "NormalMetric", "PointmapMetric", "SegmentationMetric"]
