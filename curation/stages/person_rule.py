"""Sapiens2's person rule on detector output: keep an image if one confident person box is large enough."""

from collections.abc import Sequence

Box = Sequence[float]  # x0, y0, x1, y1 in pixels


def box_short_side(box: Box) -> float:
    return min(box[2] - box[0], box[3] - box[1])


def max_person_short_side(boxes: Sequence[Box], confs: Sequence[float], min_conf: float) -> float:
    """Largest short side among boxes with confidence >= min_conf; 0 when there is none."""
    sides = [box_short_side(b) for b, c in zip(boxes, confs, strict=True) if c >= min_conf]
    return max(sides, default=0.0)


def has_person(boxes: Sequence[Box], confs: Sequence[float], *, min_conf: float, min_short_side: float) -> bool:
    return max_person_short_side(boxes, confs, min_conf) >= min_short_side
