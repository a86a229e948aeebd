"""Target codecs: keypoints <-> training targets (heatmaps)."""

from posttrain.codecs.udp_heatmap import decode, encode

__all__ = ["decode", "encode"]
