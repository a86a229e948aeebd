"""Task heads on top of a Sapiens2 backbone feature map."""

from posttrain.heads.albedo_head import AlbedoHead as AlbedoHead
from posttrain.heads.normal_head import NormalHead as NormalHead
from posttrain.heads.pixel_shuffle_upsampler import PixelShuffleUpsampler as PixelShuffleUpsampler
from posttrain.heads.pointmap_head import PointmapHead as PointmapHead
from posttrain.heads.pose_heatmap_head import PoseHeatmapHead as PoseHeatmapHead
from posttrain.heads.segmentation_head import SegmentationHead as SegmentationHead
