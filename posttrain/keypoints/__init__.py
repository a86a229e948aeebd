"""Keypoint sets as data (names, flip pairs, OKS sigmas, skeleton) and horizontal flip helpers."""

from posttrain.keypoints.flip import flip_heatmaps, flip_keypoints
from posttrain.keypoints.spec import BUILTIN_SPECS, KeypointSpec, KeypointSpecError, load_spec, parse_spec

__all__ = [
    "BUILTIN_SPECS",
    "KeypointSpec",
    "KeypointSpecError",
    "flip_heatmaps",
    "flip_keypoints",
    "load_spec",
    "parse_spec",
]
