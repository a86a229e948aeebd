"""Head yaw class from the COCO face keypoints (nose, eyes, ears) of one person."""

from collections.abc import Sequence

FRONTAL, THREE_QUARTER, PROFILE, BACK, UNKNOWN = "frontal", "three_quarter", "profile", "back", "unknown"
YAW_CLASSES = (FRONTAL, THREE_QUARTER, PROFILE, BACK, UNKNOWN)
NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR = range(5)  # COCO keypoint order
FRONTAL_MAX_OFFSET = 0.25  # nose within a quarter of the eye distance of the eyes' midpoint


def yaw_class(keypoints: Sequence[Sequence[float]], min_visibility: float = 0.5) -> tuple[str, int]:
    """(yaw class, number of the 5 face keypoints seen) from rows of (x, y, visibility) in COCO order.

    Both eyes and the nose: frontal when the nose sits between the eyes, else three-quarter; one eye: profile;
    ears but no eyes or nose: the back of the head.
    """
    seen = [k[2] >= min_visibility for k in keypoints[:5]]
    n_seen = sum(seen)
    eyes = seen[LEFT_EYE] + seen[RIGHT_EYE]
    if eyes == 2 and seen[NOSE]:
        (lx, _), (rx, _), (nx, _) = (keypoints[i][:2] for i in (LEFT_EYE, RIGHT_EYE, NOSE))
        eye_distance = abs(lx - rx)
        if eye_distance == 0:
            return PROFILE, n_seen
        offset = abs(nx - (lx + rx) / 2) / eye_distance
        return (FRONTAL if offset <= FRONTAL_MAX_OFFSET else THREE_QUARTER), n_seen
    if eyes == 2:
        return THREE_QUARTER, n_seen
    if eyes == 1:
        return PROFILE, n_seen
    if seen[NOSE]:
        return PROFILE, n_seen
    if seen[LEFT_EAR] or seen[RIGHT_EAR]:
        return BACK, n_seen
    return UNKNOWN, n_seen
