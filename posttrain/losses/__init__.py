"""Post-training losses; each returns a dict {"loss": total, "<term>": value, ...}."""

from posttrain.losses.albedo_loss import AlbedoLoss as AlbedoLoss
from posttrain.losses.keypoint_mse_ohkm import KeypointMSEOHKMLoss as KeypointMSEOHKMLoss
from posttrain.losses.normal_loss import NormalLoss as NormalLoss
from posttrain.losses.pointmap_loss import PointmapLoss as PointmapLoss
from posttrain.losses.segmentation_ce_dice import SegmentationCEDiceLoss as SegmentationCEDiceLoss
