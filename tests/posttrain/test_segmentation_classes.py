import numpy as np
import pytest
import torch

from posttrain.segmentation_classes import BACKGROUND, CLASSES, FLIP_INDEX, NUM_CLASSES, PALETTE, hflip_labels

# The body-part list of DESIGN.md, with each Left/Right pair expanded.
_PARTS = ("Foot", "Hand", "Lower_Arm", "Lower_Leg", "Shoe", "Sock", "Upper_Arm", "Upper_Leg")


def test_the_29_classes_of_the_design_in_the_sapiens2_order():
    design = {"Background", "Apparel", "Eyeglass", "Face_Neck", "Hair", "Lower_Clothing", "Torso", "Upper_Clothing"}
    design |= {"Lower_Lip", "Upper_Lip", "Lower_Teeth", "Upper_Teeth", "Tongue"}
    design |= {f"{side}_{part}" for side in ("Left", "Right") for part in _PARTS}
    assert NUM_CLASSES == len(CLASSES) == len(set(CLASSES)) == 29
    assert set(CLASSES) == design
    assert CLASSES[BACKGROUND] == "Background"
    # Spot checks against the index table of the Sapiens2 release (docs/SEG.md).
    assert [CLASSES[i] for i in (2, 5, 12, 13, 14, 21, 22, 23, 24, 28)] == [
        "Eyeglass",
        "Left_Foot",
        "Left_Upper_Leg",
        "Lower_Clothing",
        "Right_Foot",
        "Right_Upper_Leg",
        "Torso",
        "Upper_Clothing",
        "Lower_Lip",
        "Tongue",
    ]


def test_flip_index_swaps_left_and_right_and_is_an_involution():
    assert len(FLIP_INDEX) == NUM_CLASSES
    assert all(FLIP_INDEX[FLIP_INDEX[i]] == i for i in range(NUM_CLASSES))
    for i, name in enumerate(CLASSES):
        if name.startswith("Left_"):
            assert CLASSES[FLIP_INDEX[i]] == "Right_" + name.removeprefix("Left_")
        elif name.startswith("Right_"):
            assert CLASSES[FLIP_INDEX[i]] == "Left_" + name.removeprefix("Right_")
        else:
            assert FLIP_INDEX[i] == i
    assert sum(FLIP_INDEX[i] != i for i in range(NUM_CLASSES)) == 2 * len(_PARTS)


def test_palette_has_one_distinct_read_only_colour_per_class():
    assert PALETTE.shape == (NUM_CLASSES, 3) and PALETTE.dtype == np.uint8
    assert len({tuple(c) for c in PALETTE.tolist()}) == NUM_CLASSES
    assert PALETTE[BACKGROUND].tolist() == [0, 0, 0]
    with pytest.raises(ValueError):
        PALETTE[0, 0] = 1


def test_hflip_labels_mirrors_pixels_and_swaps_sides():
    left_hand, right_hand, torso = CLASSES.index("Left_Hand"), CLASSES.index("Right_Hand"), CLASSES.index("Torso")
    labels = torch.tensor([[[left_hand, torso, 255, 0]]], dtype=torch.uint8)  # [1, 1, 4]
    assert hflip_labels(labels).tolist() == [[[0, 255, torso, right_hand]]]
    assert hflip_labels(labels).dtype == torch.uint8


def test_hflip_labels_twice_is_the_identity():
    labels = torch.randint(0, NUM_CLASSES, (2, 5, 7), generator=torch.Generator().manual_seed(0))
    labels[0, 1, 2] = 255
    assert torch.equal(hflip_labels(hflip_labels(labels)), labels)


def test_hflip_labels_rejects_unknown_labels():
    with pytest.raises(ValueError, match="ignore_index"):
        hflip_labels(torch.tensor([[3, 29]]))
