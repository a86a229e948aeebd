"""Pictures of post-training predictions, written next to the raw outputs by `humans1b posttrain predict`."""

from posttrain.visualize.dense import albedo_to_rgb, depth_to_rgb, normals_to_rgb, points_to_depth, save_image
from posttrain.visualize.parts import colorize_parts, legend_image, overlay_parts
from posttrain.visualize.skeleton import draw_skeleton

__all__ = [
    "albedo_to_rgb",
    "colorize_parts",
    "depth_to_rgb",
    "draw_skeleton",
    "legend_image",
    "normals_to_rgb",
    "overlay_parts",
    "points_to_depth",
    "save_image",
]
