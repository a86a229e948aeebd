import pytest

from curation.stages.person_rule import has_person, max_person_short_side
from curation.stages.yaw import BACK, FRONTAL, PROFILE, THREE_QUARTER, UNKNOWN, yaw_class


@pytest.mark.parametrize(
    ("boxes", "confs", "expected"),
    [
        ([[0, 0, 384, 1000]], [0.5], True),  # short side exactly 384, confidence exactly 0.5: kept
        ([[0, 0, 383, 1000]], [0.9], False),  # one pixel short
        ([[10, 10, 1010, 394]], [0.99], True),  # the short side may be the height
        ([[10, 10, 1010, 393]], [0.99], False),
        ([[0, 0, 800, 800]], [0.49], False),  # large but not confident
        ([[0, 0, 800, 800], [0, 0, 100, 100]], [0.3, 0.9], False),  # confident one too small, large one unsure
        ([[0, 0, 800, 800], [0, 0, 500, 400]], [0.3, 0.6], True),
        ([], [], False),
    ],
)
def test_person_rule_edges(boxes, confs, expected):
    assert has_person(boxes, confs, min_conf=0.5, min_short_side=384) is expected


def test_max_short_side_counts_confident_boxes_only():
    assert max_person_short_side([[0, 0, 800, 900], [0, 0, 400, 450]], [0.2, 0.8], 0.5) == 400
    assert max_person_short_side([[0, 0, 800, 900]], [0.2], 0.5) == 0.0
    assert has_person([[0, 0, 300, 300]], [0.9], min_conf=0.5, min_short_side=256)  # both numbers configurable


def kp(nose=None, left_eye=None, right_eye=None, left_ear=None, right_ear=None):
    return [[*p, 0.9] if p else [0.0, 0.0, 0.1] for p in (nose, left_eye, right_eye, left_ear, right_ear)] + [
        [0, 0, 0.9]
    ] * 12


@pytest.mark.parametrize(
    ("keypoints", "expected"),
    [
        (kp((50, 60), (60, 50), (40, 50), (70, 55), (30, 55)), (FRONTAL, 5)),
        (kp((54, 60), (60, 50), (40, 50), (70, 55)), (FRONTAL, 4)),  # offset 0.2 of the eye distance
        (kp((58, 60), (60, 50), (40, 50), (70, 55)), (THREE_QUARTER, 4)),  # offset 0.4
        (kp((70, 60), (60, 50), None, (50, 55)), (PROFILE, 3)),
        (kp(None, None, None, (70, 55), (30, 55)), (BACK, 2)),
        (kp(), (UNKNOWN, 0)),
    ],
)
def test_yaw_classes(keypoints, expected):
    assert yaw_class(keypoints) == expected
