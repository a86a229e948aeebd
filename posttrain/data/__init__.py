"""Post-training data: top-down keypoint crops, segmentation and dense-target folders, label-consistent augments."""

from posttrain.data.affine import (
    apply_affine_points,
    box_to_center_scale,
    fit_center_scale,
    invert_affine,
    warp_matrix,
)
from posttrain.data.augment import Augment, AugmentConfig, augment_generator, sample_augment
from posttrain.data.coco_keypoints import CocoKeypointDataset, crop_to_image
from posttrain.data.dense_folder import DenseFolder
from posttrain.data.image_io import IMAGENET_MEAN, IMAGENET_STD
from posttrain.data.segmentation_folder import SegmentationFolder

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Augment",
    "AugmentConfig",
    "CocoKeypointDataset",
    "DenseFolder",
    "SegmentationFolder",
    "apply_affine_points",
    "augment_generator",
    "box_to_center_scale",
    "crop_to_image",
    "fit_center_scale",
    "invert_affine",
    "sample_augment",
    "warp_matrix",
]
