import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest

from posttrain.keypoints import BUILTIN_SPECS, KeypointSpecError, load_spec

EXPECTED_K = {"coco17": 17, "coco_wholebody133": 133, "sapiens308": 308}
# Published COCO OKS sigmas: pycocotools cocoeval.py writes them as this list divided by 10.
COCO_SIGMAS_X10 = [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]
COCO_SIGMAS = [
    0.026,
    0.025,
    0.025,
    0.035,
    0.035,
    0.079,
    0.079,
    0.072,
    0.072,
    0.062,
    0.062,
    0.107,
    0.107,
    0.087,
    0.087,
    0.089,
    0.089,
]


def mirror_by_name(name: str) -> str | None:
    """The mirror partner a name implies: left_/right_ or l_/r_ prefixes, or an _l_/_r_ infix."""
    for a, b in (("left_", "right_"), ("right_", "left_"), ("l_", "r_"), ("r_", "l_")):
        if name.startswith(a):
            return b + name[len(a) :]
    m = re.search(r"_(l|r)_", name)
    if m:
        return name[: m.start()] + ("_r_" if m.group(1) == "l" else "_l_") + name[m.end() :]
    return None


@pytest.mark.parametrize("name", BUILTIN_SPECS)
def test_builtin_loads_with_consistent_flip(name: str) -> None:
    spec = load_spec(name)
    k = EXPECTED_K[name]
    assert spec.num_keypoints == len(spec.names) == len(spec.colors) == len(spec.flip_index) == k
    assert spec.sigmas is not None and spec.sigmas.shape == (k,) and (spec.sigmas > 0).all()
    flip = np.array(spec.flip_index)
    np.testing.assert_array_equal(flip[flip], np.arange(k))  # involution
    for i, j in spec.flip_pairs:
        assert i < j and spec.flip_index[i] == j and spec.flip_index[j] == i
    for i, n in enumerate(spec.names):
        partner = mirror_by_name(n)
        if partner in spec.names:
            assert spec.names[spec.flip_index[i]] == partner, n
    # groups tile the keypoints without gaps or overlaps
    bounds = sorted(spec.groups.values())
    assert bounds[0][0] == 0 and bounds[-1][1] == k
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))


def test_coco17_matches_published_data() -> None:
    spec = load_spec("coco17")
    assert spec.sigmas.tolist() == COCO_SIGMAS  # the decimal values, exactly
    np.testing.assert_allclose(spec.sigmas, np.array(COCO_SIGMAS_X10) / 10, rtol=1e-15, atol=0)
    assert spec.names[:3] == ("nose", "left_eye", "right_eye") and spec.names[16] == "right_ankle"
    assert spec.flip_pairs == ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
    assert len(spec.skeleton) == 19 and (spec.index("left_ankle"), spec.index("left_knee")) in spec.skeleton


def test_wholebody_layout_and_published_sigmas() -> None:
    spec = load_spec("coco_wholebody133")
    assert spec.sigmas[:17].tolist() == COCO_SIGMAS  # the body part reuses COCO's sigmas
    # Spot values from the COCO-WholeBody evaluation code: feet, first face point, hand roots, right pinky tip.
    assert spec.sigmas[17] == 0.068 and spec.sigmas[23] == 0.042 and spec.sigmas[91] == 0.029
    assert spec.sigmas[112] == 0.029 and spec.sigmas[132] == 0.031
    np.testing.assert_array_equal(spec.sigmas[91:112], spec.sigmas[112:133])  # both hands share sigmas
    face = spec.groups["face"][0]
    # iBUG-68: jaw 0<->16, eye corners 36<->45, nose tip 30 and chin 8 on the axis.
    assert spec.flip_index[face + 0] == face + 16 and spec.flip_index[face + 36] == face + 45
    assert spec.flip_index[face + 30] == face + 30 and spec.flip_index[face + 8] == face + 8
    assert spec.flip_index[spec.index("left_hand_root")] == spec.index("right_hand_root")


def test_sapiens308_layout() -> None:
    spec = load_spec("sapiens308")
    sizes = {g: b - a for g, (a, b) in spec.groups.items()}
    assert sizes == {"body": 15, "feet": 6, "right_hand": 21, "left_hand": 21, "extra_body": 7, "face": 238}
    # 17 COCO body points are all present (the wrists sit at the end of the hand blocks).
    assert set(load_spec("coco17").names) <= set(spec.names)
    assert spec.names[41] == "right_wrist" and spec.names[62] == "left_wrist" and spec.names[69] == "neck"
    assert spec.sigmas[spec.index("left_wrist")] == 0.062 and spec.sigmas[spec.index("neck")] == 0.079
    assert spec.sigmas[spec.index("tip_of_chin")] == 0.010


def write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "custom.json"
    path.write_text(json.dumps(doc))
    return path


def tiny_doc() -> dict:
    return {
        "name": "tiny",
        "keypoints": [
            {"name": "head", "sigma": 0.05, "color": [255, 0, 0], "swap": ""},
            {"name": "left_hand", "sigma": 0.03, "color": [0, 255, 0], "swap": "right_hand"},
            {"name": "right_hand", "sigma": None, "color": [0, 0, 255], "swap": "left_hand"},
        ],
        "skeleton": [["head", "left_hand", [1, 2, 3]], ["head", "right_hand", [4, 5, 6]]],
    }


def test_user_file_loads(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, tiny_doc()))
    assert spec.name == "tiny" and spec.names == ("head", "left_hand", "right_hand")
    assert spec.flip_index == (0, 2, 1) and spec.flip_pairs == ((1, 2),)
    assert spec.sigmas is None  # one sigma unknown
    assert spec.skeleton == ((0, 1), (0, 2)) and spec.skeleton_colors == ((1, 2, 3), (4, 5, 6))
    assert spec.groups == {}


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["keypoints"].append(dict(d["keypoints"][0])), "duplicate keypoint name 'head'"),
        (lambda d: d["keypoints"][2].update(swap=""), "asymmetric swap: keypoint 'left_hand'"),
        (lambda d: d["keypoints"][1].update(swap="right_foot"), "'left_hand' swaps with 'right_foot'"),
        (lambda d: d["skeleton"].append(["head", "tail", [0, 0, 0]]), "'tail'"),
        (lambda d: d["keypoints"][0].update(sigma=0), "keypoint 'head' has sigma 0"),
        (lambda d: d["keypoints"][0].update(color=[0, 0]), "keypoint 'head': color"),
        (lambda d: d.update(extra=1), "unknown keys ['extra']"),
        (lambda d: d.update(groups={"body": [0, 4]}), "group 'body'"),
    ],
)
def test_malformed_spec_names_file_and_keypoint(tmp_path: Path, mutate, expected: str) -> None:
    doc = tiny_doc()
    mutate(doc)
    path = write(tmp_path, doc)
    with pytest.raises(KeypointSpecError) as info:
        load_spec(path)
    assert expected in str(info.value) and str(path) in str(info.value)


def test_unknown_name_says_what_exists(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="coco17"):
        load_spec(tmp_path / "missing.json")
